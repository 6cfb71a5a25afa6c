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
import mqtt from 'mqtt';
import { createUpdateResponder, attachUpdateResponder, type UpdateOffer } from '../../update-server/responder.ts';
import { deriveDeviceKeys, type DeviceKeys } from '../../../firmware/security/envelope-keys.ts';
import { envelopePrimitives } from '../../../firmware/security/envelope-primitives.ts';
import { deriveAuditKey } from '../../../firmware/runtime/boot.ts';
import { verifyFlash } from '../../audit/verify.ts';
import { partitionsOf } from '../runtime-device.ts';
import { XS_RUNTIME_ENTRY } from './fleet-device.ts';
import { fleetFirmware, type FleetFirmware } from './fleet-firmware.ts';
import { undeliveredCounters } from './undelivered.ts';
import { SimRollout, simLabels } from './rollout.ts';
import type { RolloutPlan } from '../../rollout/plan.ts';
import { revocationSummary, type RevocationBooks } from './revocation.ts';
import { SlackClock } from './slack.ts';
import { simCommand, simRevocationList } from './fleet-firmware.ts';
import { commandKeyId } from '../../../firmware/security/envelope-command.ts';
import type { RevocationEntry } from '../../../firmware/security/revocation.ts';

const INGEST = { username: 'holdfast-ingest', password: 'ingest-secret' };
const UPDATES = { username: 'holdfast-updates', password: 'updates-secret' };
/** Where the fleet's signed revocation list is published, retained (the runtime's REVOCATION_TOPIC). */
const REVOCATION_TOPIC = 'holdfast/fleet/revocation';
/** How far the quiescence at a window's end may move the devices' clocks past the window's last second (device ms, short of the next simulated second: docs/design/fleet-sim.md, "Time"). */
const SLACK_MS = FLEET_CONSTANTS.timeScale * 1000 - 100;
/** A device is offered an update at most this many times (a rolled-back bad image is not offered again). */
const OFFER_ATTEMPTS = 2;
/** Windows between two pushes of the same manifest to a device that did not start on it. */
const OFFER_EVERY_WINDOWS = 3;
/**
 * Real ms without a byte moving (on any device's link, or through the ingest) after which the network counts as idle:
 * then device time jumps to the earliest timer of a device that still waits (docs/design/fleet-sim.md, "Time").
 */
const IDLE_MS = 50;
/**
 * Real ms a quiescence may stay idle with no timer left within the slack before it gives up on the window (a note
 * says so). Idle is what the runner sees: a broker busy restoring its sessions after a restart moves no byte for
 * seconds on a loaded machine, and its CONNACKs still come.
 */
const STUCK_IDLE_MS = 15_000;
/** Real ms after which a pushed manifest the device did not take is pushed again. */
const REPUSH_MS = 500;
/** Real time a step may take to quiesce before the run goes on without it (noted in the summary). */
const STEP_BOUND_MS = 60_000;
/** Real time the final drain may take. */
const DRAIN_BOUND_MS = 30_000;
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
  /** Devices running each offered image version (by version), and on a trial boot. */
  readonly versions: Readonly<Record<string, number>>;
  readonly onTrial: number;
  readonly committed: number;
  readonly rolledBack: number;
}

export interface FleetProgress {
  readonly t: number;
  readonly durationSec: number;
  readonly devices: number;
  readonly online: number;
  readonly appended: number;
  readonly accepted: number;
  readonly cutsSurvived: number;
  readonly committed?: number;
  readonly rolledBack?: number;
  readonly phase: 'starting' | 'running' | 'draining' | 'checking';
}

export interface FleetRunOptions {
  /** Called after each simulated second (and at phase changes). */
  readonly onProgress?: (progress: FleetProgress) => void;
  /** Write each device's flash image here after the run (.hfimg). */
  readonly keepFlashDir?: string;
  /** The keys, images and offers (default: made from the scenario, fleetFirmware). */
  readonly firmware?: FleetFirmware;
  /** Serve device 0's serial console on this serial device (a pty; Node engine). */
  readonly consolePty?: string;
  /** Offer the update by this staged rollout (./rollout.ts): devices get labels, the responder the rollout's gate. */
  readonly rollout?: RolloutPlan;
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
  const firmware: FleetFirmware = options.firmware ?? fleetFirmware(s.seed, s.durationSec, s.update, FLEET_CONSTANTS.outboxBlocks);
  const labels = options.rollout === undefined ? undefined : hex.map((_, i) => simLabels(s.seed, i));
  const rollout = options.rollout === undefined ? undefined : new SimRollout(options.rollout, firmware.updates[0]?.atSec ?? 0, hex, secrets.map((x) => Buffer.from(x).toString('hex')), labels!, firmware.crypto, firmware.commandPublicKey, firmware.commandSecret);
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
      const services = [
        { username: INGEST.username, password: INGEST.password, write: ['holdfast/+/receipt'] },
        // The backend's account: updates, and (--revoke) the retained revocation list and commands.
        { username: UPDATES.username, password: UPDATES.password, read: ['holdfast/+/telemetry'], write: ['holdfast/+/update', 'holdfast/+/cmd', REVOCATION_TOPIC] },
      ];
      const mosquitto = findMosquitto();
      if (s.broker.kind === 'auto' && mosquitto.ok && findMosquittoPasswd().ok) {
        broker = await startMosquitto({ devices: credentials, services, persistence: true, maxQueuedMessages: 0, deviceRead: [REVOCATION_TOPIC] });
        brokerInfo = { kind: 'mosquitto', protocol: 'MQTT 5', version: mosquitto.version };
        protocolVersion = 5;
      } else {
        broker = await startAedes({ devices: credentials, services, persistence: true, deviceRead: [REVOCATION_TOPIC] });
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

    // The devices, provisioned (each its own flash: every store formatted, the fleet's root, the factory image).
    const devices: FleetDevice[] = [];
    cleanups.unshift(() => devices.forEach((d) => d.shutdown()));
    const machines: XsDeviceMachine[] = [];
    cleanups.unshift(() => machines.forEach((m) => m.close()));
    if (s.engine === 'xs') {
      // Bundling runs in esbuild's own process: the machines start together.
      const count = Math.ceil(s.devices / FLEET_CONSTANTS.xsDevicesPerMachine);
      const opened = await Promise.allSettled(Array.from({ length: count }, () => XsDeviceMachine.open({ entry: XS_RUNTIME_ENTRY })));
      for (const o of opened) if (o.status === 'fulfilled') machines.push(o.value);
      const failed = opened.find((o) => o.status === 'rejected');
      if (failed) throw failed.reason;
    }
    for (let i = 0; i < s.devices; i++) {
      devices.push(FleetDevice.open({ machine: machines[Math.floor(i / FLEET_CONSTANTS.xsDevicesPerMachine)], index: i, engine: s.engine, seed: s.seed, deviceId: ids[i], secret: secrets[i], host: gateway.host, port: links.port(i), protocolVersion, password: credentials[i].password, firmware, ...(labels === undefined ? {} : { hardwareRevision: labels[i].revision }) }));
    }
    if (options.consolePty !== undefined) {
      const close = await devices[0].openConsole(options.consolePty);
      cleanups.unshift(close);
    }
    // The ingest, on a fresh store.
    const inventoryOf = (keep: (i: number) => boolean) =>
      parseInventory(JSON.stringify({ format: 1, devices: hex.flatMap((h, i) => (keep(i) ? [{ deviceId: h, keyId: 1, secret: Buffer.from(secrets[i]).toString('hex'), suite: 'hmac-sha256' }] : [])) }));
    const inventory = inventoryOf(() => true);
    const store = await storeOpening;
    const service = new IngestService({
      host, port: brokerPort, protocolVersion, clientId: `holdfast-sim-${salt.toString(16)}`,
      ...(s.broker.kind === 'external' ? {} : { username: INGEST.username, password: INGEST.password }),
      store: rollout?.tap(store) ?? store, loaded: await store.load(), inventory,
    });
    cleanups.unshift(() => service.stop().catch(() => undefined));
    const subscribed = await Promise.race([service.start().then(() => true), sleep(INGEST_START_BOUND_MS).then(() => false)]);
    if (!subscribed) throw new BrokerUnreachableError(`the ingest's ${brokerInfo.protocol} connection to ${host}:${brokerPort} was not accepted within ${INGEST_START_BOUND_MS / 1000} s`);

    // The update server: the responder behind its own broker account (straight to the broker, not through the gateway).
    const primitives = envelopePrimitives(firmware.crypto);
    const keysByHex = new Map<string, DeviceKeys>(hex.map((h, i) => [h, deriveDeviceKeys(firmware.crypto, secrets[i], ids[i], 1)]));
    const offers = new Map<string, UpdateOffer>();
    const responder = createUpdateResponder({
      offerFor: (h) => offers.get(h),
      keysFor: (id, keyId) => {
        const k = keysByHex.get(Buffer.from(id).toString('hex'));
        return k !== undefined && k.keyId === keyId ? k : undefined;
      },
      primitives,
      ...(rollout === undefined ? {} : { allow: rollout.allow }),
    });
    const updateClient = mqtt.connect(`mqtt://${host}:${brokerPort}`, {
      protocolVersion,
      clientId: `holdfast-sim-updates-${salt.toString(16)}`,
      clean: true,
      reconnectPeriod: 200,
      ...(s.broker.kind === 'external' ? {} : { username: UPDATES.username, password: UPDATES.password }),
    });
    cleanups.unshift(() => new Promise<void>((resolve) => updateClient.end(true, {}, () => resolve())));
    const connected = await Promise.race([new Promise<boolean>((resolve) => updateClient.once('connect', () => resolve(true))), sleep(INGEST_START_BOUND_MS).then(() => false)]);
    if (!connected) throw new BrokerUnreachableError(`the update server's connection to ${host}:${brokerPort} was not accepted within ${INGEST_START_BOUND_MS / 1000} s`);
    attachUpdateResponder(updateClient as unknown as Parameters<typeof attachUpdateResponder>[0], responder);

    const runStarted = performance.now();
    const scheduler = new FaultScheduler(s);
    const counts = { appended: 0, powerCuts: 0, linkFlaps: 0, brokerRestarts: 0, clockSkews: 0, offers: 0 };
    const linkDown = new Set<number>();
    const timeline: TimelineSample[] = [];
    const payloadRng = (i: number, n: number) => new Rng(deriveSeed(s.seed, 13, i, n));
    const skewRng = devices.map((_, i) => new Rng(deriveSeed(s.seed, 14, i)));
    const skewOffset = devices.map(() => 0);
    const pSkew = Math.min(1, (s.clockSkewPerHour * s.recordEverySec) / 3600);
    const online = () => devices.filter((d, i) => d.isAlive && !linkDown.has(i)).length;
    /** Manifests pushed and not yet seen by the device: device → its manifest count at the push. */
    const pushed = new Map<number, { manifests: number; at: number; sentAt: number }>();
    let nowMs = 0;

    const setTime = (ms: number): void => {
      nowMs = ms;
      FleetDevice.setTime(devices, ms);
      // A reset (the watchdog, the runtime's own restart) boots the device again at once.
      for (const d of devices) if (d.resetPending) d.boot(ms);
    };

    /** Run the network until no online device waits for a receipt, a download, or a pushed manifest (or the bound passes). */
    const quiesce = async (boundMs: number, what: string, free = false): Promise<boolean> => {
      const startedAt = performance.now();
      const deadline = startedAt + boundMs;
      const base = nowMs * FLEET_CONSTANTS.timeScale;
      const clock = new SlackClock(startedAt, free ? undefined : SLACK_MS, IDLE_MS);
      for (;;) {
        let pending = 0;
        const why: string[] = [];
        const states = FleetDevice.states(devices);
        let moved = service.counts.messages + service.counts.batches;
        /** The earliest timer of a device that still waits (device ms from now). */
        let due: number | undefined;
        devices.forEach((d, i) => {
          const st = states[i];
          moved += st.status?.io ?? 0;
          if (revocation.published !== undefined && !revocation.seenRealMs.has(i) && (st.status?.revocation?.number ?? 0) >= revocation.published) revocation.seenRealMs.set(i, performance.now() - revocation.publishedAtReal);
          if (!st.alive || linkDown.has(i)) return;
          const before = pending;
          if (revocation.published !== undefined && (st.status?.revocation?.number ?? 0) < revocation.published) {
            pending++;
            why.push(`${i} revocation list`);
          } else if (st.awaitingReceipt !== false && i !== revocation.revokedDevice) {
            pending++;
            why.push(`${i} receipt`);
          } else if (st.status?.downloading) {
            pending++;
            why.push(`${i} download`);
          } else {
            const p = pushed.get(i);
            if (p !== undefined && (st.status?.manifests ?? 0) <= p.manifests && st.status?.boots === p.at) {
              pending++;
              why.push(`${i} manifest`);
            }
          }
          const next = st.status?.nextDueMs;
          if (pending > before && next !== undefined && (due === undefined || next < due)) due = next;
        });
        if (pending === 0) {
          pushed.clear();
          return true;
        }
        const now = performance.now();
        // Time moves only when the network is idle, straight to the earliest timer of a device that still waits, never
        // to the next whole second (./slack.ts); the final drain has no second after it, so no bound there.
        const step = clock.poll(now, moved, due);
        if (step.slackMs !== undefined) FleetDevice.setDeviceTime(devices, base + step.slackMs);
        // Stuck: idle, and no waiting device has a timer within the second's slack (a lost push, a timer past the
        // next whole second): the next second's timers take it from there.
        if (now > deadline || clock.stuckFor(now) > STUCK_IDLE_MS) {
          if (process.env.HOLDFAST_SIM_DEBUG) for (const w of why) process.stderr.write(`${what} ${w}: ${JSON.stringify(devices[Number(w.split(' ')[0])].debug())}\n`);
          notes.push(`${what}: ${pending} device(s) still waited after ${((now - startedAt) / 1000).toFixed(1)} s of real time (device and what: ${why.slice(0, 8).join(', ')}); ${free ? 'what stays in flash is undelivered' : 'the next simulated second goes on from there'}`);
          pushed.clear();
          return false;
        }
        // A pushed manifest not taken soon (the device was between sessions): push it again.
        for (const [i, p] of pushed) {
          if (now - p.sentAt > REPUSH_MS && why.includes(`${i} manifest`)) {
            for (const out of responder.offer(hex[i])) updateClient.publish(out.topic, Buffer.from(out.payload), { qos: 1 });
            p.sentAt = now;
          }
        }
        await sleep(4);
      }
    };

    const sample = (t: number): void => {
      let depth = 0;
      const versions: Record<string, number> = {};
      let onTrial = 0;
      let committed = 0;
      let rolledBack = 0;
      const states = FleetDevice.states(devices);
      devices.forEach((d, i) => {
        const st = states[i];
        if (d.isAlive) depth += st.queued ?? 0;
        if (st.status?.alive && st.status.imageVersion !== undefined) versions[String(st.status.imageVersion)] = (versions[String(st.status.imageVersion)] ?? 0) + 1;
        if (st.status?.alive && st.status.trial === 'running') onTrial++;
        for (const e of d.events) {
          if (e.kind === 'committed') committed++;
          else rolledBack++;
        }
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
        versions,
        onTrial,
        committed,
        rolledBack,
      });
    };

    /** Offer each update whose time has come to every running device that does not run it yet and has not tried it too often. */
    const offerUpdates = (t: number, windowIndex: number): void => {
      const due = firmware.updates.filter((u) => u.atSec <= t);
      if (due.length === 0) return;
      const u = due[due.length - 1];
      devices.forEach((d, i) => {
        const st = d.last;
        if (!d.isAlive || st === undefined || linkDown.has(i) || st.trial === 'running' || st.downloading || i === revocation.revokedDevice) return;
        if ((st.imageVersion ?? 0) >= u.imageVersion) return;
        const tried = d.events.filter((e) => e.imageVersion === u.imageVersion).length;
        if (tried >= OFFER_ATTEMPTS || (tried > 0 && u.behaviour !== 'good')) return;
        if (rollout !== undefined && !rollout.allow(hex[i])) return;
        if (windowIndex % OFFER_EVERY_WINDOWS !== 0 && offers.get(hex[i])?.manifest === u.manifest) return;
        offers.set(hex[i], { manifest: u.manifest, image: u.image });
        for (const out of responder.offer(hex[i])) updateClient.publish(out.topic, Buffer.from(out.payload), { qos: 1 });
        pushed.set(i, { manifests: st.manifests, at: st.boots, sentAt: performance.now() });
        counts.offers++;
      });
    };

    /** --revoke: what was done when, and when each device was first seen refusing (docs/design/fleet-sim.md, "Revocation"). */
    const revocation: RevocationBooks = { published: undefined, publishedAtReal: 0, seenRealMs: new Map(), revokedDevice: undefined, at: undefined, reloadMs: 0, reloadedAtWall: 0, online: [], commandsSent: 0 };
    // Far above a rollout's roll-back commands (same command key, their own counter from 1): the two never collide in a device's window.
    let commandCounter = 0x4000_0000;
    const revokeAt = async (second: number): Promise<void> => {
      const plan = s.revoke;
      if (plan === undefined || revocation.at !== undefined || second < plan.atSec) return;
      revocation.at = second;
      revocation.online = devices.flatMap((d, i) => (d.isAlive && !linkDown.has(i) && (plan.target === 'command-key' || i === plan.device) ? [i] : []));
      // As an operator: the inventory first (the ingest refuses the identity's records from here on), then the signed list, retained.
      const before = performance.now();
      if (plan.target === 'device') {
        revocation.revokedDevice = plan.device;
        await service.reloadInventory(inventoryOf((i) => i !== plan.device));
      }
      revocation.reloadMs = performance.now() - before;
      revocation.reloadedAtWall = Date.now();
      const entries: RevocationEntry[] = plan.target === 'device' ? [{ kind: 'device', deviceId: ids[plan.device] }] : [{ kind: 'command-key', keyId: commandKeyId(firmware.crypto, firmware.commandPublicKey) }];
      const list = simRevocationList(firmware, 1, entries);
      revocation.publishedAtReal = performance.now();
      await new Promise<void>((resolve) => updateClient.publish(REVOCATION_TOPIC, Buffer.from(list), { qos: 1, retain: true }, () => resolve()));
      revocation.published = 1;
      // The network runs (device time at the slack's pace, as at a window's end) until every online device holds the list.
      await quiesce(STEP_BOUND_MS, `revocation at ${second} s`);
    };
    /** --revoke command-key: the backend keeps commanding with the revoked key, once per online device per window (each is refused key-revoked, audited command-revoked). */
    const commandAll = (): void => {
      if (s.revoke?.target !== 'command-key' || revocation.published === undefined) return;
      devices.forEach((d, i) => {
        if (!d.isAlive || linkDown.has(i)) return;
        updateClient.publish(`holdfast/${hex[i]}/cmd`, Buffer.from(simCommand(firmware, ids[i], ++commandCounter)), { qos: 1 });
        revocation.commandsSent++;
      });
    };

    /** One rollout step at simulated second `at`: the driver decides; its roll-back commands go out on the devices' command topics. */
    const rolloutStep = (at: number): void => {
      if (rollout === undefined) return;
      for (const c of rollout.step(at, devices.map((d) => d.last?.imageVersion))) updateClient.publish(c.topic, Buffer.from(c.payload), { qos: 1 });
    };

    for (const d of devices) d.boot(0);
    // Connect the fleet before the first window.
    await quiesce(STEP_BOUND_MS, 'start');
    sample(0);
    let t = 0;
    let windowIndex = 0;
    const totals = (): { committed: number; rolledBack: number } => {
      let committed = 0;
      let rolledBack = 0;
      for (const d of devices) for (const e of d.events) e.kind === 'committed' ? committed++ : rolledBack++;
      return { committed, rolledBack };
    };
    const report = (phase: FleetProgress['phase']): void =>
      progress({ t, durationSec: s.durationSec, devices: s.devices, online: online(), appended: counts.appended, accepted: service.counts.accepted, cutsSurvived: counts.powerCuts, ...totals(), phase });
    while (!scheduler.done) {
      const plan = scheduler.next();
      t = plan.t0;
      setTime(plan.t0 * 1000);
      if (plan.brokerRestart && broker) {
        await broker.restart();
        counts.brokerRestarts++;
      }
      for (const [i, actions] of plan.boundary) {
        for (const action of actions) {
          if (action.kind === 'reboot') devices[i].boot(nowMs);
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
      // Signed times: each device's own offset from the simulated wall clock; a skew moves it by minutes (a clock jump, audited).
      if (s.clockSkewPerHour > 0) {
        devices.forEach((d, i) => {
          const r = skewRng[i];
          const roll = r.nextU32() / 0x1_0000_0000;
          const jumpMin = r.between(1, 3) * (r.chance(0.5) ? 1 : -1);
          if (plan.t0 > 0 && roll < pSkew) {
            skewOffset[i] += jumpMin * 60_000;
            if (d.isAlive) counts.clockSkews++;
          }
          // In device time (the devices' clocks run timeScale times simulated time).
          d.noteSignedTime(WALL_EPOCH_MS + (plan.t0 * 1000 + skewOffset[i]) * FLEET_CONSTANTS.timeScale);
        });
      }
      offerUpdates(plan.t0, windowIndex++);
      await revokeAt(plan.t0);
      commandAll();
      let second = plan.t0;
      for (const a of plan.appends) {
        while (second < a.t) {
          // Simulated seconds pass: every device's clock moves, the progress view follows, sockets run meanwhile.
          second++;
          t = second;
          setTime(second * 1000);
          await revokeAt(second);
          report('running');
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
        const r = payloadRng(a.device, a.n);
        const payload = new TextEncoder().encode(JSON.stringify({ d: a.device, n: a.n, t: a.t, temp: Math.round((15 + r.below(150) / 10) * 10) / 10 }));
        const outcome = devices[a.device].append(payload, a.cut);
        if (outcome === 'durable') counts.appended++;
        if (a.cut) counts.powerCuts++;
      }
      while (second < plan.t0 + plan.seconds - 1) {
        second++;
        setTime(second * 1000);
        await revokeAt(second);
      }
      await quiesce(STEP_BOUND_MS, `window at ${plan.t0} s`);
      t = plan.t0 + plan.seconds;
      sample(t);
      rolloutStep(t);
      report('running');
    }

    // The final drain: every link back, every dark device on, trials finished, everything delivered.
    report('draining');
    for (const i of [...linkDown]) {
      linkDown.delete(i);
      links.up(i);
    }
    setTime(s.durationSec * 1000);
    for (const d of devices) if (!d.isAlive) d.boot(nowMs);
    const drainStarted = performance.now();
    await quiesce(DRAIN_BOUND_MS, 'final drain', true);
    // Trials still running end (commit or roll back) within their deadlines: time moves on, a second at a time.
    const trialEnd = s.durationSec * 1000 + RUNTIME_TRIAL_BOUND_MS;
    while (nowMs < trialEnd && devices.some((d) => d.last?.trial === 'running' || d.resetPending)) {
      setTime(nowMs + 1000);
      await quiesce(STEP_BOUND_MS, 'trials after the run');
    }
    // The rollout's last word: outcomes that arrived in the drain, and roll-backs it asked for still to be proven (bounded).
    rolloutStep(Math.floor(nowMs / 1000));
    const rollBackEnd = nowMs + ROLL_BACK_BOUND_MS;
    while (rollout?.awaitingRollBack === true && nowMs < rollBackEnd) {
      setTime(nowMs + 1000);
      // Real time for the command to cross the sockets: with nothing else pending a quiescence returns at once.
      await sleep(50);
      await quiesce(STEP_BOUND_MS, 'roll-backs after the run');
      rolloutStep(Math.floor(nowMs / 1000));
    }
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

    // Every device's audit chain, as `holdfast audit verify` checks it.
    const audits = devices.map((d, i) => {
      const part = partitionsOf(d.flash, firmware.layout).audit;
      const key = deriveAuditKey(firmware.crypto, secrets[i], ids[i], 1);
      return verifyFlash(firmware.crypto, key, part);
    });
    const undelivered = devices.map((d, i) => undeliveredCounters(d.flash, firmware, keysByHex.get(hex[i])!, ids[i]));

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
      audits,
      undelivered,
      revocation: revocationSummary(s, revocation, devices, records, audits),
      updates: firmware.updates.map((u) => ({ imageVersion: u.imageVersion, behaviour: u.behaviour, atSec: u.atSec, source: u.source })),
      responder: responder.stats(),
      ...(rollout === undefined ? {} : { rollout: rollout.summary(devices.map((d) => d.last?.imageVersion)) }),
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

/** The simulated wall clock at simulated second 0 (signed times are this plus simulated time plus the device's skew). */
export const WALL_EPOCH_MS = Date.UTC(2026, 0, 1);
/** How long after the run a rollout's roll-back commands may take to be proven (simulated ms: a few resends). */
const ROLL_BACK_BOUND_MS = 120_000;
/** How long after the run trials still running may take to end (virtual ms): the longest health-check deadline and a watchdog period. */
const RUNTIME_TRIAL_BOUND_MS = 130_000;
