/**
 * The fleet runner (docs/design/fleet-sim.md): a broker (mosquitto when it
 * is on PATH, else aedes embedded, or one given), the ingest subscribed
 * behind it with a fresh PGlite store, the hostile gateway in front of it,
 * one link per device (./link-switch.ts), and N devices running the
 * firmware's telemetry path in XS or Node. The run advances one simulated
 * second per step: the scheduler (./schedule.ts) says what happens, the
 * runner does it, then lets the network run until every online device has
 * delivered what it holds and the ingest has receipted it (quiescence).
 * At the end every link comes back, every dark device boots, everything
 * drains, and the books are checked against the ingest's store
 * (./summary.ts).
 *
 * Quiescence after every step is what makes a run reproducible although
 * real sockets carry it: each device's flash sees the same operations in
 * the same order whatever the network's timing, so the counts that follow
 * from flash (appended, accepted, lost, ...) are the same for the same seed,
 * in either engine.
 *
 * Host tool (Node).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findMosquitto, findMosquittoPasswd, sleep, type BrokerHandle } from '../../net/common.ts';
import { startMosquitto } from '../../net/mosquitto.ts';
import { startAedes } from '../../net/aedes-broker.ts';
import { startGateway, type HostileGateway, type Rule } from '../../net/hostile-gateway.ts';
import { IngestService } from '../../ingest/ingest.ts';
import { parseInventory } from '../../ingest/inventory.ts';
import { saveImage } from '../flash/image-file.ts';
import { forgetOnExit, removeOnExit } from '../../cli/cleanup.ts';
import { deriveSeed, Rng } from '../rng.ts';
import { FleetDevice, fleetDeviceId, fleetDeviceSecret } from './fleet-device.ts';
import { LinkSwitch } from './link-switch.ts';
import { openFreshStore } from './store-template.ts';
import { FaultScheduler } from './schedule.ts';
import { FLEET_CONSTANTS, type Scenario } from './scenario.ts';
import { XsDeviceMachine } from '../xs-device-host.ts';
import { buildSummary, type BrokerInfo, type FleetSummary } from './summary.ts';

const INGEST = { username: 'holdfast-ingest', password: 'ingest-secret' };
/** Real time a step may take to quiesce before the run goes on without it (noted in the summary). */
const STEP_BOUND_MS = 60_000;
/** Real time the final drain may take. */
const DRAIN_BOUND_MS = 180_000;
/** Real time the ingest may take to connect and subscribe. */
const INGEST_START_BOUND_MS = 20_000;

/** The broker could not be reached or refused the ingest (a given --broker, mostly). */
export class BrokerUnreachableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BrokerUnreachableError';
  }
}

export interface TimelineSample {
  /** Simulated second. */
  readonly t: number;
  readonly online: number;
  readonly dark: number;
  readonly linksDown: number;
  /** Records in the fleet's outboxes not yet released by a receipt. */
  readonly outboxDepth: number;
  readonly appended: number;
  readonly accepted: number;
  readonly powerCuts: number;
  readonly linkFlaps: number;
  readonly brokerRestarts: number;
}

export interface FleetProgress {
  readonly t: number;
  readonly durationSec: number;
  readonly devices: number;
  readonly online: number;
  readonly appended: number;
  readonly accepted: number;
  readonly cutsSurvived: number;
  readonly phase: 'starting' | 'running' | 'draining' | 'checking';
}

export interface FleetRunOptions {
  /** Called after each simulated second (and at phase changes). */
  readonly onProgress?: (progress: FleetProgress) => void;
  /** Write each device's flash image here after the run (.hfimg). */
  readonly keepFlashDir?: string;
}

export interface FleetRun {
  readonly summary: FleetSummary;
  readonly timeline: readonly TimelineSample[];
  /** Flash images written with keepFlashDir. */
  readonly flashImages: readonly string[];
}

/** The gateway's misbehaviour at `rate`: each act fires on a PUBLISH with that chance (seeded per packet ordinal). */
export function hostileRules(rate: number): Rule[] {
  if (rate <= 0) return [];
  return [
    { action: 'replay', probability: rate, afterMs: 20 },
    { action: 'replay', probability: rate, nextConnection: true },
    { action: 'duplicate', probability: rate },
    { action: 'forge', probability: rate },
    { action: 'reorder', probability: rate / 2 },
    { action: 'flip', probability: rate / 2, bits: 3 },
  ];
}

export async function runFleet(s: Scenario, options: FleetRunOptions = {}): Promise<FleetRun> {
  const started = performance.now();
  const progress = options.onProgress ?? (() => undefined);
  // An external broker may keep retained receipts of an earlier run: fresh device ids per run there (the schedule does not depend on them).
  const salt = s.broker.kind === 'external' ? Date.now() >>> 0 : 0;
  const ids = Array.from({ length: s.devices }, (_, i) => fleetDeviceId(i, s.seed, salt));
  const secrets = Array.from({ length: s.devices }, (_, i) => fleetDeviceSecret(i, s.seed, salt));
  const hex = ids.map((id) => Buffer.from(id).toString('hex'));
  const credentials = hex.map((h) => ({ deviceId: h, password: `pw-${h}` }));
  const cleanups: (() => Promise<void> | void)[] = [];
  const notes: string[] = [];
  progress({ t: 0, durationSec: s.durationSec, devices: s.devices, online: 0, appended: 0, accepted: 0, cutsSurvived: 0, phase: 'starting' });
  try {
    // The ingest's store opens (seconds of WASM) while the broker, the gateway and the devices start.
    const dbDir = mkdtempSync(join(tmpdir(), 'holdfast-sim-'));
    // Removed at the end, and also when the process exits early (an interrupt).
    removeOnExit(dbDir);
    cleanups.unshift(() => {
      rmSync(dbDir, { recursive: true, force: true });
      forgetOnExit(dbDir);
    });
    const storeOpening = openFreshStore(join(dbDir, 'store'));
    storeOpening.catch(() => undefined);
    cleanups.unshift(async () => (await storeOpening.catch(() => undefined))?.close());

    // The broker.
    let broker: BrokerHandle | undefined;
    let brokerInfo: BrokerInfo;
    let protocolVersion: 4 | 5;
    if (s.broker.kind === 'external') {
      brokerInfo = { kind: 'external', protocol: 'MQTT 5', url: `mqtt://${s.broker.host}:${s.broker.port}` };
      protocolVersion = 5;
    } else {
      const services = [{ username: INGEST.username, password: INGEST.password, write: ['holdfast/+/receipt'] }];
      const mosquitto = findMosquitto();
      if (s.broker.kind === 'auto' && mosquitto.ok && findMosquittoPasswd().ok) {
        broker = await startMosquitto({ devices: credentials, services, persistence: true, maxQueuedMessages: 0 });
        brokerInfo = { kind: 'mosquitto', protocol: 'MQTT 5', version: mosquitto.version };
        protocolVersion = 5;
      } else {
        broker = await startAedes({ devices: credentials, services, persistence: true });
        brokerInfo = { kind: 'aedes', protocol: 'MQTT 3.1.1', version: 'embedded' };
        protocolVersion = 4;
      }
      const started = broker;
      cleanups.unshift(() => started.stop());
    }
    const host = s.broker.kind === 'external' ? s.broker.host : broker!.host;
    const brokerPort = s.broker.kind === 'external' ? s.broker.port : broker!.port;

    // The hostile gateway, and each device's own link in front of it.
    const gateway: HostileGateway = await startGateway({ upstream: { host, port: brokerPort }, seed: deriveSeed(s.seed, 12), rules: hostileRules(s.replays) });
    cleanups.unshift(() => gateway.stop());
    const links = await LinkSwitch.open(s.devices, { host: gateway.host, port: gateway.port });
    cleanups.unshift(() => links.close());

    // The devices, provisioned and booted.
    const devices: FleetDevice[] = [];
    cleanups.unshift(() => devices.forEach((d) => d.shutdown()));
    const machines: XsDeviceMachine[] = [];
    cleanups.unshift(() => machines.forEach((m) => m.close()));
    if (s.engine === 'xs') {
      // Bundling runs in esbuild's own process: the machines start together.
      const count = Math.ceil(s.devices / FLEET_CONSTANTS.xsDevicesPerMachine);
      const opened = await Promise.allSettled(Array.from({ length: count }, () => XsDeviceMachine.open()));
      for (const o of opened) if (o.status === 'fulfilled') machines.push(o.value);
      const failed = opened.find((o) => o.status === 'rejected');
      if (failed) throw failed.reason;
    }
    for (let i = 0; i < s.devices; i++) {
      devices.push(await FleetDevice.open({ machine: machines[Math.floor(i / FLEET_CONSTANTS.xsDevicesPerMachine)], index: i, engine: s.engine, seed: s.seed, deviceId: ids[i], secret: secrets[i], host: gateway.host, port: links.port(i), protocolVersion, password: credentials[i].password }));
    }
    // The ingest, on a fresh store.
    const inventory = parseInventory(
      JSON.stringify({ format: 1, devices: hex.map((h, i) => ({ deviceId: h, keyId: 1, secret: Buffer.from(secrets[i]).toString('hex'), suite: 'hmac-sha256' })) }),
    );
    const store = await storeOpening;
    const service = new IngestService({
      host, port: brokerPort, protocolVersion, clientId: `holdfast-sim-${salt.toString(16)}`,
      ...(s.broker.kind === 'external' ? {} : { username: INGEST.username, password: INGEST.password }),
      store, loaded: await store.load(), inventory,
    });
    cleanups.unshift(() => service.stop().catch(() => undefined));
    const subscribed = await Promise.race([service.start().then(() => true), sleep(INGEST_START_BOUND_MS).then(() => false)]);
    if (!subscribed) throw new BrokerUnreachableError(`the ingest's ${brokerInfo.protocol} connection to ${host}:${brokerPort} was not accepted within ${INGEST_START_BOUND_MS / 1000} s`);

    for (const d of devices) d.boot();

    const runStarted = performance.now();
    const scheduler = new FaultScheduler(s);
    const counts = { appended: 0, powerCuts: 0, linkFlaps: 0, brokerRestarts: 0 };
    const linkDown = new Set<number>();
    const timeline: TimelineSample[] = [];
    const payloadRng = (i: number, n: number) => new Rng(deriveSeed(s.seed, 13, i, n));
    const online = () => devices.filter((d, i) => d.isAlive && !linkDown.has(i)).length;

    /** Run the network until no online device waits for a receipt of a record it can deliver (or the bound passes). */
    const quiesce = async (boundMs: number, what: string): Promise<boolean> => {
      const deadline = performance.now() + boundMs;
      for (;;) {
        let pending = 0;
        for (const d of devices) d.service();
        const states = FleetDevice.states(devices);
        devices.forEach((d, i) => {
          if (d.isAlive && !linkDown.has(i) && states[i].awaitingReceipt !== false) pending++;
        });
        if (pending === 0) return true;
        if (performance.now() > deadline) {
          notes.push(`${what}: ${pending} device(s) still waited for a receipt after ${Math.round(boundMs / 1000)} s of real time`);
          return false;
        }
        await sleep(2);
      }
    };

    const sample = (t: number): void => {
      let depth = 0;
      const states = FleetDevice.states(devices);
      devices.forEach((d, i) => {
        if (d.isAlive) depth += states[i].queued ?? 0;
      });
      timeline.push({
        t,
        online: online(),
        dark: devices.filter((d) => !d.isAlive).length,
        linksDown: linkDown.size,
        outboxDepth: depth,
        appended: counts.appended,
        accepted: service.counts.accepted,
        powerCuts: counts.powerCuts,
        linkFlaps: counts.linkFlaps,
        brokerRestarts: counts.brokerRestarts,
      });
    };

    // Connect the fleet before the first window.
    await quiesce(STEP_BOUND_MS, 'start');
    sample(0);
    let t = 0;
    const report = (phase: FleetProgress['phase']): void =>
      progress({ t, durationSec: s.durationSec, devices: s.devices, online: online(), appended: counts.appended, accepted: service.counts.accepted, cutsSurvived: counts.powerCuts, phase });
    while (!scheduler.done) {
      const plan = scheduler.next();
      t = plan.t0;
      if (plan.brokerRestart && broker) {
        await broker.restart();
        counts.brokerRestarts++;
      }
      for (const [i, actions] of plan.boundary) {
        for (const action of actions) {
          if (action.kind === 'reboot') devices[i].boot();
          else if (action.kind === 'link-up') {
            linkDown.delete(i);
            links.up(i);
          } else {
            linkDown.add(i);
            links.down(i);
            counts.linkFlaps++;
          }
        }
      }
      let second = plan.t0;
      for (const a of plan.appends) {
        if (a.t !== second) {
          // Simulated seconds pass: the progress view follows them, sockets run meanwhile.
          second = a.t;
          t = second;
          report('running');
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
        const r = payloadRng(a.device, a.n);
        const payload = new TextEncoder().encode(JSON.stringify({ d: a.device, n: a.n, t: a.t, temp: Math.round((15 + r.below(150) / 10) * 10) / 10 }));
        const outcome = devices[a.device].append(payload, a.cut);
        if (outcome === 'durable') counts.appended++;
        if (a.cut) counts.powerCuts++;
      }
      await quiesce(STEP_BOUND_MS, `window at ${plan.t0} s`);
      t = plan.t0 + plan.seconds;
      sample(t);
      report('running');
    }

    // The final drain: every link back, every dark device on, everything delivered.
    report('draining');
    for (const i of [...linkDown]) {
      linkDown.delete(i);
      links.up(i);
    }
    for (const d of devices) if (!d.isAlive) d.boot();
    const drainStarted = performance.now();
    await quiesce(DRAIN_BOUND_MS, 'final drain');
    const drainEnded = performance.now();
    sample(s.durationSec);
    report('checking');
    await gateway.brokerRestarts();
    await service.stop();
    const records = await store.records();

    const flashImages: string[] = [];
    if (options.keepFlashDir !== undefined) {
      mkdirSync(options.keepFlashDir, { recursive: true });
      for (const d of devices) {
        const path = join(options.keepFlashDir, `device-${String(d.index).padStart(4, '0')}-${d.hexId}.hfimg`);
        saveImage(path, d.flash);
        flashImages.push(path);
      }
    }

    const gatewayEvents: Record<string, number> = {};
    for (const e of gateway.events) gatewayEvents[e.action] = (gatewayEvents[e.action] ?? 0) + 1;
    const summary = buildSummary({
      scenario: s,
      broker: brokerInfo,
      devices,
      records,
      ingest: service.counts,
      counts,
      gatewayEvents,
      notes,
      realSeconds: (performance.now() - started) / 1000,
      phases: { startSec: (runStarted - started) / 1000, runSec: (drainStarted - runStarted) / 1000, drainSec: (drainEnded - drainStarted) / 1000 },
    });
    return { summary, timeline, flashImages };
  } finally {
    for (const cleanup of cleanups) {
      try {
        await cleanup();
      } catch {
        // Cleanup after a failure: the first error is the one that matters.
      }
    }
  }
}
