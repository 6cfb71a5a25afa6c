/**
 * A fleet scenario (docs/design/fleet-sim.md): how many devices, which
 * engine runs their firmware, how long (simulated seconds), the seed, and
 * the fault rates. Everything a run does that can be decided in advance is
 * decided from these values (./schedule.ts), so the same scenario gives the
 * same fault schedule and the same deterministic counts.
 *
 * Host tool (Node).
 */

import type { UpdatePlan } from './fleet-firmware.ts';

export type Engine = 'xs' | 'node';

/** Where the broker comes from: started here (mosquitto when on PATH, else aedes), or one that already runs. */
export type BrokerChoice =
  | { readonly kind: 'auto' }
  /** aedes even when mosquitto is there (tests of the zero-install path). */
  | { readonly kind: 'aedes' }
  | { readonly kind: 'external'; readonly host: string; readonly port: number };

export interface Scenario {
  readonly devices: number;
  readonly engine: Engine;
  /** Simulated seconds; the run advances one simulated second per step. */
  readonly durationSec: number;
  readonly seed: number;
  /** Expected power cuts per device per simulated hour. */
  readonly powerCutsPerHour: number;
  /** Expected link losses per device per simulated hour. */
  readonly linkFlapsPerHour: number;
  /** Expected broker restarts per simulated hour (the whole fleet's broker). */
  readonly brokerRestartsPerHour: number;
  /** Chance per PUBLISH through the gateway of each hostile act (replay, replay on the next connection, duplicate, reorder, forge, flip). */
  readonly replays: number;
  readonly broker: BrokerChoice;
  /** Each device appends one record every this many simulated seconds (seeded phase). */
  readonly recordEverySec: number;
  /** Expected clock skews per device per simulated hour: the signed times the device sees jump by 3..30 minutes. */
  readonly clockSkewPerHour: number;
  /** Updates: the sim's own (a good one and, with `bad`, a bad one), none, or the given image and manifest. */
  readonly update: UpdatePlan;
  /** `--revoke`: what the operator revokes, and at which simulated second (absent: nothing is revoked). */
  readonly revoke?: RevokePlan;
}

/** A revocation the sim carries out as an operator would (docs/design/fleet-sim.md, "Revocation"): one device's identity, or the fleet's command key. */
export type RevokePlan = { readonly target: 'device'; readonly device: number; readonly atSec: number } | { readonly target: 'command-key'; readonly atSec: number };

/** Parse `--revoke`: `device@<s>` (device 0), `device:<index>@<s>`, or `command-key@<s>`; undefined when it is none of them. */
export function parseRevoke(spec: string): RevokePlan | undefined {
  const m = /^(device(?::(\d{1,4}))?|command-key)@(\d{1,6})$/.exec(spec);
  if (!m) return undefined;
  const atSec = Number(m[3]);
  return m[1] === 'command-key' ? { target: 'command-key', atSec } : { target: 'device', device: m[2] === undefined ? 0 : Number(m[2]), atSec };
}

/** The fixed parts of every scenario (not flags: they keep the run deterministic, docs/design/fleet-sim.md). */
export const FLEET_CONSTANTS = Object.freeze({
  /** Outbox sectors per device (4 KiB each): far more than a run can queue, so no append is refused for a full outbox. */
  outboxBlocks: 8,
  /** Receipt timeout of the simulated devices (device ms): a record a flipped byte spoiled is sent again this soon, four times within the slack a window's end gives (docs/design/fleet-sim.md, "Time"). */
  receiptTimeoutMs: 2000,
  /**
   * The most records a link loss may queue. Twice this stays under the
   * outbox's default unpersisted-ack bound (16), so acknowledgements always
   * ride on appends and never on a flush whose timing the network decides
   * (docs/design/fleet-sim.md, "Determinism").
   */
  maxBacklog: 7,
  /**
   * Device milliseconds per simulated millisecond: a simulated second is ten
   * seconds of the devices' own clocks, so the network has nearly ten device
   * seconds at a window's end (receipt timeouts, reconnect backoff) without
   * reaching the next whole simulated second, where the runtime's periodic
   * work happens (docs/design/fleet-sim.md, "Time").
   */
  timeScale: 100,
  /** XS engine: devices per XS machine (each device its own firmware instances and flash; parsing the firmware costs about a second per machine). */
  xsDevicesPerMachine: 10,
});

export const LIMITS = Object.freeze({
  devices: { min: 1, max: 5000 },
  durationSec: { min: 10, max: 7 * 24 * 3600 },
  ratePerHour: { min: 0, max: 3600 },
  replays: { min: 0, max: 0.5 },
  recordEverySec: { min: 1, max: 3600 },
});

export const DEFAULT_SCENARIO: Scenario = Object.freeze<Scenario>({
  devices: 20,
  engine: 'xs',
  durationSec: 600,
  seed: 1,
  powerCutsPerHour: 12,
  linkFlapsPerHour: 12,
  brokerRestartsPerHour: 6,
  replays: 0.05,
  broker: { kind: 'auto' },
  recordEverySec: 10,
  clockSkewPerHour: 6,
  update: { kind: 'sim', bad: 'hang' },
});

/** Parse `mqtt://host:port`; undefined when it is not one. */
export function parseBrokerUrl(url: string): { host: string; port: number } | undefined {
  const m = /^mqtt:\/\/([A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\]):(\d{1,5})\/?$/.exec(url);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 1 && port <= 65535)) return undefined;
  return { host: m[1].replace(/^\[|\]$/g, ''), port };
}
