/**
 * Messaging end to end (issue #17): devices running the firmware's
 * telemetry path (sealed appends, persistent counter, flash outbox, MQTT
 * client) on the Node engine, power-cut at random flash operations, talk
 * through the hostile gateway (cuts mid-packet, duplicates, replays across
 * reconnects, reorders, forgeries, flipped bytes, a broker restart) to a
 * real broker; the ingest service subscribes behind it. Afterwards every
 * record whose append returned is in the ingest store exactly once, nothing
 * else is but records whose append a cut interrupted after they landed, and
 * the device's and the ingest's counts agree.
 *
 * mosquitto (MQTT 5) and aedes (MQTT 3.1.1, embedded). A failure prints
 * the seed; `HOLDFAST_E2E_SEED=<n>` replays that schedule.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findMosquitto, findMosquittoPasswd, findOpenssl, requireComponents, skipUnless, sleep, type BrokerHandle } from '../../tools/net/common.ts';
import { startMosquitto, type MosquittoBroker } from '../../tools/net/mosquitto.ts';
import type { Pki } from '../../tools/net/pki.ts';
import type { NodeTlsOptions } from '../../tools/net/node-stream.ts';
import { startAedes } from '../../tools/net/aedes-broker.ts';
import { startGateway, type HostileGateway, type Rule } from '../../tools/net/hostile-gateway.ts';
import { TelemetryDevice } from '../../tools/sim/telemetry-device.ts';
import { Rng, deriveSeed } from '../../tools/sim/rng.ts';
import { IngestService } from '../../tools/ingest/ingest.ts';
import { parseInventory } from '../../tools/ingest/inventory.ts';
import { PgliteStore } from '../../tools/ingest/store-pglite.ts';
import type { FlashMode, SimFlash, TearMode } from '../../tools/sim/flash/sim-flash.ts';
import { XsTelemetryDevice } from '../../tools/sim/xs-device-host.ts';

const mosquittoNeeds = [findMosquitto(), findMosquittoPasswd(), findOpenssl()];
const INGEST = { username: 'ingest', password: 'ingest-secret' };

interface Scenario {
  readonly name: string;
  readonly broker: 'mosquitto' | 'aedes';
  readonly protocolVersion: 4 | 5;
  readonly devices: number;
  /** Appends attempted per device. */
  readonly appends: number;
  /** Chance per device and step that a power cut is armed (it strikes within the next few flash operations). */
  readonly cutChance: number;
  readonly seed: number;
  readonly flashMode: FlashMode;
  readonly tls?: boolean;
  /** Where the device firmware runs (default node). */
  readonly engine?: 'node' | 'xs';
}

/** What the scenario needs of a device, in either engine. */
interface Device {
  readonly flash: SimFlash;
  readonly durable: ReadonlyMap<number, Uint8Array>;
  readonly uncertain: readonly Uint8Array[];
  readonly stats: { readonly powerCuts: number };
  readonly alive: boolean;
  readonly queued: number | undefined;
  boot(): void;
  reboot(): void;
  append(payload: Uint8Array): boolean;
  service(): void;
  armCut(afterOperations: number, seed: number, tear: TearMode): void;
  shutdown(): void;
}

interface Outcome {
  readonly durable: number;
  readonly accepted: number;
  readonly powerCuts: number;
  readonly gatewayEvents: Record<string, number>;
  readonly ingest: { duplicates: number; replays: number; forgeries: number };
}

/** The gateway's misbehaviour: every rule seeded, each bounded so the drain ends. */
function hostileRules(withRestart: boolean): Rule[] {
  return [
    { action: 'cut', mid: true, probability: 0.02, limit: 12 },
    { action: 'duplicate', probability: 0.05, limit: 40 },
    { action: 'replay', probability: 0.04, nextConnection: true, limit: 30 },
    { action: 'replay', probability: 0.03, afterMs: 20, times: 2, limit: 20 },
    { action: 'reorder', probability: 0.02, limit: 8 },
    { action: 'forge', probability: 0.04, limit: 30 },
    { action: 'flip', probability: 0.03, bits: 3, limit: 20 },
    { action: 'stall', ms: 30, probability: 0.01, limit: 5 },
    ...(withRestart ? [{ action: 'restartBroker' as const, nth: [120] }] : []),
  ];
}

function deviceId(index: number, seed: number): Uint8Array {
  const id = new Uint8Array(8);
  new Rng(deriveSeed(seed, 1, index)).fill(id);
  id[0] = index;
  return id;
}

function secret(index: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(32);
  new Rng(deriveSeed(seed, 2, index)).fill(bytes);
  return bytes;
}

async function run(s: Scenario): Promise<Outcome> {
  const ids = Array.from({ length: s.devices }, (_, i) => deviceId(i, s.seed));
  const hex = ids.map((id) => Buffer.from(id).toString('hex'));
  const credentials = hex.map((h) => ({ deviceId: h, password: `pw-${h}` }));
  // The ingest reads every device's telemetry and writes each device's receipts.
  const services = [{ username: INGEST.username, password: INGEST.password, write: ['holdfast/+/receipt'] }];
  const broker: BrokerHandle =
    s.broker === 'mosquitto'
      ? await startMosquitto({ devices: credentials, services, persistence: true, maxQueuedMessages: 0, ...(s.tls ? { tls: true } : {}) })
      : await startAedes({ devices: credentials, services, persistence: true });
  const dbDir = mkdtempSync(join(tmpdir(), 'holdfast-e2e-'));
  const cleanups: (() => Promise<void> | void)[] = [() => rmSync(dbDir, { recursive: true, force: true }), () => broker.stop()];
  try {
    const inventory = parseInventory(
      JSON.stringify({ format: 1, devices: hex.map((h, i) => ({ deviceId: h, keyId: 1, secret: Buffer.from(secret(i, s.seed)).toString('hex'), suite: 'hmac-sha256' })) }),
    );
    const store = await PgliteStore.open(dbDir);
    cleanups.unshift(() => store.close());
    const ingest = new IngestService({ host: broker.host, port: broker.port, protocolVersion: s.protocolVersion, username: INGEST.username, password: INGEST.password, store, loaded: await store.load(), inventory });
    await ingest.start();
    cleanups.unshift(() => ingest.stop());

    // TLS: the devices reach the broker's TLS listener directly (the gateway is a plain TCP proxy).
    const tlsPort = s.tls ? (broker as MosquittoBroker).tlsPort : undefined;
    const gateway: HostileGateway | undefined = s.tls ? undefined : await startGateway({ upstream: { port: broker.port }, broker, seed: s.seed, rules: hostileRules(s.broker === 'mosquitto') });
    if (gateway) cleanups.unshift(() => gateway.stop());
    const pki = s.tls ? (broker as MosquittoBroker).pki : undefined;

    const port = tlsPort ?? gateway!.port;
    const devices: Device[] = [];
    cleanups.unshift(() => devices.forEach((d) => d.shutdown()));
    for (const [i, id] of ids.entries()) {
      const common = { deviceId: id, secret: secret(i, s.seed), keyId: 1, host: broker.host, port, protocolVersion: s.protocolVersion, password: credentials[i].password, flashMode: s.flashMode, outboxBlocks: 8 };
      devices.push(
        s.engine === 'xs'
          ? await XsTelemetryDevice.open({ ...common, handle: 100 + i })
          : new TelemetryDevice({ ...common, seed: deriveSeed(s.seed, 3, i), ...(pki ? { tls: tlsOptions(pki, hex[i]) } : {}) }),
      );
    }
    for (const d of devices) d.boot();

    const rng = new Rng(deriveSeed(s.seed, 4));
    const darkUntil = devices.map(() => 0);
    for (let step = 0; step < s.appends; step++) {
      devices.forEach((device, i) => {
        if (!device.alive) {
          if (step >= darkUntil[i]) device.reboot();
          else return;
        }
        if (rng.chance(s.cutChance)) device.armCut(rng.below(6), rng.nextU32(), rng.chance(0.5) ? 'bit-subset' : 'prefix');
        device.append(new TextEncoder().encode(`{"d":${i},"step":${step}}`));
        if (!device.alive) darkUntil[i] = step + 1 + rng.below(8);
        device.service();
      });
      await sleep(3);
    }

    // Drain: power stays on, every device runs until its outbox is empty and the ingest holds all it made durable.
    for (const device of devices) {
      device.flash.disarmCut();
      if (!device.alive) device.reboot();
    }
    const expected = devices.reduce((n, d) => n + d.durable.size, 0);
    const deadline = Date.now() + 120_000;
    while (!(devices.every((d) => d.queued === 0) && ingest.counts.accepted >= expected)) {
      if (Date.now() > deadline) {
        throw new Error(`seed ${s.seed}: not drained: queued ${devices.map((d) => d.queued).join(',')}, accepted ${ingest.counts.accepted} of at least ${expected}`);
      }
      for (const d of devices) d.service();
      await sleep(10);
    }
    await gateway?.brokerRestarts();
    await ingest.stop();

    // Exactly once: every durable record once; the only others are cut appends that landed.
    const keys = await store.recordKeys();
    const seen = new Set<string>();
    for (const k of keys) {
      const key = `${k.device}/${k.counter}`;
      assert.ok(!seen.has(key), `seed ${s.seed}: ${key} stored twice`);
      seen.add(key);
    }
    devices.forEach((device, i) => {
      const mine = keys.filter((k) => k.device === hex[i]);
      for (const counter of device.durable.keys()) assert.ok(seen.has(`${hex[i]}/${counter}`), `seed ${s.seed}: device ${i} record ${counter} (durable) never accepted`);
      const extra = mine.filter((k) => !device.durable.has(k.counter)).length;
      assert.ok(extra <= device.uncertain.length, `seed ${s.seed}: device ${i}: ${extra} accepted records it never made durable, only ${device.uncertain.length} appends were cut`);
    });
    const events: Record<string, number> = {};
    for (const e of gateway?.events ?? []) events[e.action] = (events[e.action] ?? 0) + 1;
    return {
      durable: expected,
      accepted: keys.length,
      powerCuts: devices.reduce((n, d) => n + d.stats.powerCuts, 0),
      gatewayEvents: events,
      ingest: { duplicates: ingest.counts.duplicates, replays: ingest.counts.replays, forgeries: ingest.counts.forgeries },
    };
  } finally {
    for (const cleanup of cleanups) {
      try {
        await cleanup();
      } catch {
        // Cleanup of a failed run: the first error is the one that matters.
      }
    }
  }
}

/** The device's identity is its client certificate (mosquitto: use_identity_as_username binds the ACL to it). */
function tlsOptions(pki: Pki, id: string): NodeTlsOptions {
  const cert = pki.clients.get(id);
  if (!cert) throw new Error(`no certificate for ${id}`);
  return { ca: readFileSync(pki.caCert), cert: readFileSync(cert.cert), key: readFileSync(cert.key), servername: 'localhost' };
}

const seedFromEnv = process.env.HOLDFAST_E2E_SEED === undefined ? undefined : Number(process.env.HOLDFAST_E2E_SEED);

describe('messaging end to end: power cuts, a hostile gateway, a real broker, the ingest', { concurrency: false }, () => {
  it('mosquitto, MQTT 5, plain flash: every durable record exactly once', { skip: skipUnless(mosquittoNeeds) }, async (t) => {
    requireComponents(mosquittoNeeds);
    const seed = seedFromEnv ?? 1701;
    const outcome = await run({ name: 'mosquitto', broker: 'mosquitto', protocolVersion: 5, devices: 4, appends: 120, cutChance: 0.03, seed, flashMode: 'plain' });
    t.diagnostic(JSON.stringify(outcome));
    assert.ok(outcome.powerCuts > 0, 'power cuts struck');
    assert.ok((outcome.gatewayEvents.replay ?? 0) + (outcome.gatewayEvents.duplicate ?? 0) > 0, 'the gateway replayed or duplicated');
    assert.ok(outcome.ingest.forgeries > 0, 'forgeries reached the ingest and were refused');
  });

  it('mosquitto over TLS with per-device client certificates, MQTT 5, strict flash: every durable record exactly once', { skip: skipUnless(mosquittoNeeds) }, async (t) => {
    requireComponents(mosquittoNeeds);
    const seed = seedFromEnv ?? 3703;
    const outcome = await run({ name: 'mosquitto-tls', broker: 'mosquitto', protocolVersion: 5, devices: 2, appends: 60, cutChance: 0.04, seed, flashMode: 'strict', tls: true });
    t.diagnostic(JSON.stringify(outcome));
    assert.ok(outcome.powerCuts > 0, 'power cuts struck');
  });

  it('device firmware in XS: mosquitto, MQTT 5, strict flash: every durable record exactly once', { skip: skipUnless(mosquittoNeeds) }, async (t) => {
    requireComponents(mosquittoNeeds);
    const seed = seedFromEnv ?? 4704;
    const outcome = await run({ name: 'mosquitto-xs', broker: 'mosquitto', protocolVersion: 5, devices: 2, appends: 60, cutChance: 0.04, seed, flashMode: 'strict', engine: 'xs' });
    t.diagnostic(JSON.stringify(outcome));
    assert.ok(outcome.powerCuts > 0, 'power cuts struck');
  });

  it('aedes, MQTT 3.1.1, strict flash: every durable record exactly once', async (t) => {
    const seed = seedFromEnv ?? 2702;
    const outcome = await run({ name: 'aedes', broker: 'aedes', protocolVersion: 4, devices: 3, appends: 100, cutChance: 0.03, seed, flashMode: 'strict' });
    t.diagnostic(JSON.stringify(outcome));
    assert.ok(outcome.powerCuts > 0, 'power cuts struck');
  });
});
