/**
 * A simulated device for the runtime cases (engine-neutral: Node and XS):
 * one cuttable flash carved into the runtime's partitions by label
 * (PartitionView), a virtual clock and watchdog, a fake network, a
 * recording actuator, and the fleet's command key to sign commands with.
 * `provision` formats every store as a factory would; the cases then damage
 * what they test.
 */
import * as ed from '@noble/ed25519';
import type { Actuator, ActuatorEffect } from '../../firmware/hal/actuator.ts';
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import type { Crypto } from '../../firmware/hal/crypto.ts';
import type { ResetReason } from '../../firmware/hal/system.ts';
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { commandKeyId, ed25519Signer, sealCommand } from '../../firmware/security/envelope-command.ts';
import { ReplayStore } from '../../firmware/security/replay-store.ts';
import { encodeRevocationBody, sealRevocationList, type RevocationEntry } from '../../firmware/security/revocation.ts';
import { RevocationStore } from '../../firmware/security/revocation-store.ts';
import { Counter } from '../../firmware/storage/counter.ts';
import { Outbox } from '../../firmware/storage/outbox.ts';
import { AuditLog, type AuditRead } from '../../firmware/storage/audit-log.ts';
import { FloorStore } from '../../firmware/update/floor-store.ts';
import { TrustStore } from '../../firmware/update/trust-store.ts';
import { CommandJournal, COMMAND_POLICY, encodeCommandPayload, type PolicyRow } from '../../firmware/runtime/commands.ts';
import { SafeModeStore } from '../../firmware/runtime/safe-mode.ts';
import { deriveAuditKey, PARTITION_LABELS, type PartitionKey } from '../../firmware/runtime/boot.ts';
import { startRuntime, type Runtime, type RuntimeConfig, type RuntimeHal } from '../../firmware/runtime/main.ts';
import { PartitionView } from '../../tools/sim/flash/partition-view.ts';
import { memoEd25519 } from '../../tools/sim/memo-ed25519.ts';
import { VirtualClock } from '../../tools/sim/clock.ts';
import { DeviceReset, SimWatchdog } from '../../tools/sim/watchdog.ts';
import type { SimFlashOptions, FlashMode } from '../../tools/sim/flash/sim-flash.ts';
import { FakeNet, xorshiftEntropy } from '../protocol/client-fakes.ts';
import { testWorld } from '../update/manifest-fixtures.ts';
import { TEST_DEVICE_ID, TEST_KEY_ID, testSecret } from '../support/test-device.ts';
import { ok } from '../support/check.ts';

export const BLOCK = 4096;
/** Blocks per partition, in flash order. */
export const LAYOUT: readonly (readonly [PartitionKey, number])[] = Object.freeze([
  ['counter', 2],
  ['replay', 2],
  ['journal', 2],
  ['floor', 2],
  ['safeMode', 2],
  ['trust', 2],
  ['audit', 3],
  ['outbox', 4],
] as const);
export const TOTAL_BLOCKS = LAYOUT.reduce((n, [, b]) => n + b, 0);

export function flashOptions(mode: FlashMode): SimFlashOptions {
  return { blocks: TOTAL_BLOCKS, blockLength: BLOCK, mode };
}

export type Parts = Record<PartitionKey, FlashPartition | undefined>;

export function partsOf(flash: FlashPartition): Parts {
  const parts: Partial<Parts> = {};
  let first = 0;
  for (const [key, blocks] of LAYOUT) {
    parts[key] = new PartitionView(flash, first, blocks);
    first += blocks;
  }
  return parts as Parts;
}

/** The fleet command key's seed: also the key rotation authority's (docs/spec/key-rotation.md). */
export const FLEET_SECRET = new Uint8Array(32).fill(0x5c);
const REVOCATION_SECRET = new Uint8Array(32).fill(0x6d);

export interface Fleet {
  readonly crypto: Crypto;
  readonly keyId: number;
  readonly publicKey: Uint8Array;
  /** A signed command for this device (or `deviceId`). */
  command(counter: number, name: string, values?: Record<string, number>, deviceId?: Uint8Array): Uint8Array;
  /** The fleet's root of trust, provisioned into the trust store. */
  readonly root: ReturnType<typeof testWorld>;
  /** The fleet's revocation-list key (public), and a list it signs. */
  readonly revocationKey: Uint8Array;
  revocationList(number: number, entries?: readonly RevocationEntry[]): Uint8Array;
}

/** Ed25519 verification memoised by the exact bytes: keeps the power-cut runs affordable in XS. */
export const memoCrypto = memoEd25519;

export function makeFleet(): Fleet {
  const crypto = memoCrypto(createNobleCrypto());
  const publicKey = ed.getPublicKey(FLEET_SECRET);
  const keyId = commandKeyId(crypto, publicKey);
  const sign = ed25519Signer(FLEET_SECRET);
  const root = testWorld(crypto);
  const revocationKey = ed.getPublicKey(REVOCATION_SECRET);
  const signRevocation = ed25519Signer(REVOCATION_SECRET);
  return {
    crypto,
    keyId,
    publicKey,
    root,
    revocationKey,
    revocationList: (number, entries = []) => {
      const body = encodeRevocationBody(crypto, { number, issuedAt: 0, entries }, revocationKey);
      return sealRevocationList(body, signRevocation(body));
    },
    command: (counter, name, values = {}, deviceId = TEST_DEVICE_ID) => sealCommand(encodeCommandPayload(policyRow(name), values), { deviceId, counter: { next: () => counter }, keyId, sign }),
  };
}

export function policyRow(name: string): PolicyRow {
  const r = COMMAND_POLICY.find((x) => x.name === name);
  if (r === undefined) throw new Error(`no policy row ${name}`);
  return r;
}

/** Format every store as a factory would; `skip` leaves those partitions as they are (blank on a fresh flash). */
export function provision(flash: FlashPartition, fleet: Fleet, skip: readonly PartitionKey[] = []): Parts {
  const p = partsOf(flash);
  const want = (k: PartitionKey): FlashPartition | undefined => (skip.includes(k) ? undefined : p[k]);
  const at = (k: PartitionKey) => want(k);
  const counter = at('counter');
  if (counter) Counter.format(counter);
  const replay = at('replay');
  if (replay) ReplayStore.format(replay);
  const journal = at('journal');
  if (journal) CommandJournal.format(journal);
  const floor = at('floor');
  if (floor) FloorStore.format(floor);
  const safe = at('safeMode');
  if (safe) SafeModeStore.format(safe);
  const trust = at('trust');
  if (trust) {
    // A factory erases before it writes, so provisioning again (after a cut during it) starts over.
    for (let b = 0; b < trust.status().blocks; b++) trust.eraseBlock(b);
    new TrustStore(trust, fleet.crypto).save(fleet.root.root1);
  }
  const audit = at('audit');
  if (audit) AuditLog.format(audit);
  const outbox = at('outbox');
  if (outbox) Outbox.format(outbox);
  const revocation = at('revocation');
  if (revocation) RevocationStore.format(revocation, fleet.crypto);
  return p;
}

export class RecordingActuator implements Actuator {
  readonly applied: { counter: number; effect: ActuatorEffect }[] = [];
  /** `onApply`: told of every application too (a power-cut scenario checks across boots). */
  constructor(private readonly onApply?: (counter: number) => void) {}
  apply(effect: ActuatorEffect, counter: number): void {
    ok(!this.applied.some((e) => e.counter === counter), `command ${counter} applied twice`);
    this.applied.push({ counter, effect: { ...effect } });
    this.onApply?.(counter);
  }
}

export interface Device {
  readonly runtime: Runtime;
  readonly clock: VirtualClock;
  readonly watchdog: SimWatchdog;
  readonly net: FakeNet;
  readonly actuator: RecordingActuator;
  readonly logs: string[];
}

export interface BootOptions {
  resetReason?: ResetReason;
  config?: Partial<RuntimeConfig>;
  /** Partitions the table lacks. */
  missing?: readonly PartitionKey[];
  startMs?: number;
  /** More partitions by label (the update's otadata, slots, progress log). */
  extraPartitions?: Readonly<Record<string, FlashPartition>>;
  bootControl?: RuntimeHal['bootControl'];
  /** Called on every application of a physical command (after the recording actuator's own check). */
  onApply?: (counter: number) => void;
}

export function deviceConfig(fleet: Fleet, extra: Partial<RuntimeConfig> = {}): RuntimeConfig {
  return {
    deviceId: TEST_DEVICE_ID,
    deviceSecret: testSecret(),
    keyId: TEST_KEY_ID,
    commandKey: { keyId: fleet.keyId, publicKey: fleet.publicKey },
    link: {
      host: 'broker.test',
      port: 1883,
      session: { protocolVersion: 5, clientId: 'd10000000000000a', keepAliveSec: 10, sessionExpirySec: 3600, maximumPacketSize: 4096, maxInFlight: 4, responseTimeoutMs: 5000 },
      client: { backoff: { baseMs: 10, capMs: 10 } },
    },
    counterReserve: 16,
    ...extra,
  };
}

/** One boot of the device over `flash`: fresh instances, as after a reset. */
export function bootDevice(flash: FlashPartition, fleet: Fleet, options: BootOptions = {}): Device {
  const parts = partsOf(flash);
  const clock = new VirtualClock(options.startMs ?? 0);
  const net = new FakeNet(clock);
  const actuator = new RecordingActuator(options.onApply);
  const logs: string[] = [];
  const missing = options.missing ?? [];
  const byLabel = new Map<string, FlashPartition>();
  for (const [key] of LAYOUT) if (!missing.includes(key)) byLabel.set(PARTITION_LABELS[key], parts[key] as FlashPartition);
  for (const [label, flash2] of Object.entries(options.extraPartitions ?? {})) byLabel.set(label, flash2);
  const watchdog = new SimWatchdog(clock);
  const hal: RuntimeHal = {
    system: {
      lastResetReason: () => options.resetReason ?? 'power-on',
      restart: (why: string): never => {
        throw new DeviceReset('software', why);
      },
    },
    log: { write: (level, area, message) => void logs.push(`${level} ${area}: ${message}`) },
    clock,
    entropy: xorshiftEntropy(7),
    watchdog,
    crypto: fleet.crypto,
    connector: net,
    actuator,
    partition: (label) => byLabel.get(label),
    ...(options.bootControl === undefined ? {} : { bootControl: options.bootControl }),
  };
  const runtime = startRuntime(hal, deviceConfig(fleet, options.config));
  return { runtime, clock, watchdog, net, actuator, logs };
}

/** The audit log as a verifier reads it: every entry, chain breaks, under the device's audit key. */
export function readAudit(flash: FlashPartition, fleet: Fleet): AuditRead {
  const audit = AuditLog.open(partsOf(flash).audit as FlashPartition, { crypto: fleet.crypto, key: deriveAuditKey(fleet.crypto, testSecret(), TEST_DEVICE_ID, TEST_KEY_ID), counter: { next: () => Number.MAX_SAFE_INTEGER } });
  return audit.read(0);
}

/** Kinds (with their reason/code where they have one) of every audit entry, in order. */
export function auditSummary(flash: FlashPartition, fleet: Fleet): string[] {
  return readAudit(flash, fleet).records.map((r) => {
    const e = r.event as Record<string, unknown> | undefined;
    if (e === undefined) return `undecodable:${r.kind}`;
    const detail = e.reason ?? e.code ?? '';
    return detail === '' ? String(e.kind) : `${String(e.kind)}:${e.store === undefined ? '' : `${String(e.store)}/`}${String(detail)}`;
  });
}
