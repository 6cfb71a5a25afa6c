/**
 * The key rotation drill (issue #20, docs/spec/key-rotation.md "Drill"): a
 * runtime device (Node engine, the real firmware over a simulated flash)
 * connects through the hostile gateway (duplicates, replays) to an aedes
 * broker; the ingest (PGlite) takes its telemetry; the fleet authority
 * (`fleet rotate`'s functions over a file inventory) starts a rotation,
 * verifies the device's request from the ingest's stored records, records
 * the new key and confirms; the device commits, restarts and seals with
 * the new key. Checked: records before and after are accepted, an
 * old-key record replayed with a counter above the bound is refused
 * (`retired-key`), the inventory shows both keys with their counters, the
 * device's audit log shows `key-rotated`.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import mqtt from 'mqtt';
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { deviceTopic } from '../../firmware/protocol/telemetry/index.ts';
import { PARTITION_LABELS } from '../../firmware/runtime/boot.ts';
import { RECORD_TYPES } from '../../firmware/runtime/health-record.ts';
import { startRuntime, type Runtime, type RuntimeHal } from '../../firmware/runtime/main.ts';
import { deriveDeviceKeys } from '../../firmware/security/envelope-keys.ts';
import { envelopePrimitives } from '../../firmware/security/envelope-primitives.ts';
import { sealWithCounter } from '../../firmware/security/envelope.ts';
import { EnvelopeSuite } from '../../firmware/security/envelope-format.ts';
import { ed25519PublicKeyOf } from '../../firmware/security/key-ed25519.ts';
import { KeyStore } from '../../firmware/security/key-store.ts';
import { emptyFleet, fleetText, loadFleet, toIngestInventory, type FleetDevice } from '../../tools/fleet/inventory.ts';
import { fileFleetStore } from '../../tools/fleet/store.ts';
import { confirmRotation, recordKeyBound, rotateKeyCommand } from '../../tools/fleet/rotate.ts';
import { IngestService } from '../../tools/ingest/ingest.ts';
import { parseInventory } from '../../tools/ingest/inventory.ts';
import { PgliteStore } from '../../tools/ingest/store-pglite.ts';
import { startAedes, type AedesBroker } from '../../tools/net/aedes-broker.ts';
import { LOOPBACK, sleep } from '../../tools/net/common.ts';
import { startGateway, type HostileGateway } from '../../tools/net/hostile-gateway.ts';
import { NodeStreamConnector } from '../../tools/net/node-stream.ts';
import { PartitionView } from '../../tools/sim/flash/partition-view.ts';
import { SimFlash } from '../../tools/sim/flash/sim-flash.ts';
import { DeviceReset } from '../../tools/sim/watchdog.ts';
import { TEST_DEVICE_ID, TEST_KEY_ID, testSecret } from '../support/test-device.ts';
import { tempDir } from '../ingest/ingest-helpers.ts';
import { auditSummary, BLOCK, deviceConfig, FLEET_SECRET, LAYOUT, makeFleet, partsOf, provision, TOTAL_BLOCKS } from '../runtime/runtime-world.ts';
import { JumpClock, networkHal } from '../runtime/net-hal.ts';

const DEVICE = Buffer.from(TEST_DEVICE_ID).toString('hex');
const DEVICE_SEED = new Uint8Array(32).fill(0x3e);
const DEVICE_PASSWORD = 'pw-drill-device';
const INGEST = { username: 'ingest', password: 'pw-drill-ingest' };
const OPERATOR = { username: 'operator', password: 'pw-drill-operator' };

function inventoryDevice(): FleetDevice {
  return {
    deviceId: DEVICE,
    board: 'esp32-devkitc',
    suite: 'hmac-sha256',
    secret: Buffer.from(testSecret()).toString('hex'),
    state: 'active',
    cohort: null,
    gateway: null,
    firmware: { version: null, securityFloor: null },
    keys: [{ keyId: TEST_KEY_ID, publicKey: Buffer.from(ed25519PublicKeyOf(DEVICE_SEED)).toString('hex'), status: 'current', sinceCounter: 0, untilCounter: null, changedAt: '2026-01-01T00:00:00Z' }],
    provisionedAt: '2026-01-01T00:00:00Z',
    history: [],
  };
}

describe('key rotation drill: device -> hostile gateway -> aedes -> ingest', () => {
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  let broker: AedesBroker;
  let gateway: HostileGateway;
  let t: ReturnType<typeof tempDir>;
  before(async () => {
    t = tempDir('holdfast-rotate-drill-');
    broker = await startAedes({
      devices: [{ deviceId: DEVICE, password: DEVICE_PASSWORD }],
      services: [
        { ...INGEST, read: ['holdfast/#'], write: ['holdfast/+/receipt'] },
        { ...OPERATOR, read: [], write: ['holdfast/+/cmd'] },
      ],
      persistence: true,
    });
    gateway = await startGateway({
      upstream: { port: broker.port },
      seed: 2020,
      rules: [
        { action: 'duplicate', probability: 0.2, copies: 1 },
        { action: 'replay', probability: 0.1, times: 1, afterMs: 5 },
      ],
    });
  });
  after(async () => {
    for (const c of cleanups.reverse()) await c();
    await gateway?.stop();
    await broker?.stop();
    t?.cleanup();
  });

  it('rotate: records before and after accepted, an old-key record above the bound refused, both keys in the inventory, key-rotated in the audit log', async () => {
    const fleet = makeFleet();
    const inventoryPath = join(t.dir, 'fleet.json');
    writeFileSync(inventoryPath, fleetText({ ...emptyFleet(), devices: [inventoryDevice()] }));
    const inventory = fileFleetStore(inventoryPath);

    // The device's flash: the runtime world's stores, then hf_keys (blank: the provisioning key).
    const flash = new SimFlash({ blocks: TOTAL_BLOCKS + 2, blockLength: BLOCK, mode: 'plain' });
    provision(flash, fleet);
    const keysFlash = new PartitionView(flash, TOTAL_BLOCKS, 2);
    KeyStore.format(keysFlash);
    const connector = new NodeStreamConnector();
    cleanups.push(() => connector.closeAll());
    const clock = new JumpClock();
    const boot = (): Runtime => {
      const parts = partsOf(flash);
      const byLabel = new Map<string, FlashPartition>();
      for (const [key] of LAYOUT) byLabel.set(PARTITION_LABELS[key], parts[key] as FlashPartition);
      byLabel.set(PARTITION_LABELS.keys, keysFlash);
      const hal: RuntimeHal = networkHal({ clock, crypto: fleet.crypto, connector, partitions: byLabel });
      const base = deviceConfig(fleet, { deviceKeySeed: DEVICE_SEED });
      return startRuntime(hal, {
        ...base,
        link: { ...base.link, host: LOOPBACK, port: gateway.port, session: { ...base.link.session, protocolVersion: 4, clientId: DEVICE, username: DEVICE, password: new TextEncoder().encode(DEVICE_PASSWORD) } },
      });
    };

    // The ingest over PGlite, with the inventory's export.
    const store = await PgliteStore.open(join(t.dir, 'db'));
    cleanups.push(() => store.close());
    const startIngest = async (clientId: string): Promise<IngestService> => {
      const service = new IngestService({ host: LOOPBACK, port: broker.port, protocolVersion: 4, clientId, ...INGEST, store, loaded: await store.load(), inventory: parseInventory(JSON.stringify(toIngestInventory(loadFleet(inventoryPath)))), lingerMs: 5 });
      await service.start();
      return service;
    };
    let ingest = await startIngest('drill-ingest-1');
    cleanups.push(() => ingest.stop().catch(() => undefined));
    const operator = await mqtt.connectAsync(`mqtt://${LOOPBACK}:${broker.port}`, { ...OPERATOR, protocolVersion: 4, clean: true });
    cleanups.push(() => operator.endAsync(true));
    const sendCommand = (command: Uint8Array) => operator.publishAsync(deviceTopic(TEST_DEVICE_ID, 'cmd'), Buffer.from(command), { qos: 1 });

    let runtime = boot();
    /** Service the device until `until`, or until it restarts (returns the reset). */
    const run = async (until: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<DeviceReset | undefined> => {
      const end = Date.now() + timeoutMs;
      while (Date.now() < end) {
        try {
          runtime.service();
        } catch (error) {
          if (error instanceof DeviceReset) return error;
          throw error;
        }
        if (await until()) return undefined;
        await sleep(5);
      }
      throw new Error(`timed out waiting for ${what}: ingest ${JSON.stringify(ingest.counts)}, outbox ${JSON.stringify(runtime.outboxStats())}`);
    };
    const drained = () => runtime.outboxStats()?.queued === 0;
    const storedOf = async (keyId: number) => (await store.recordKeys()).filter((r) => r.device === DEVICE && r.keyId === keyId);

    // 1. Before: readings under the provisioning key, accepted and receipted.
    await run(() => runtime.status().linkConnected, 'the connection');
    for (let i = 0; i < 3; i++) assert.ok(runtime.append(Uint8Array.of(0xa0, i)).accepted);
    await run(async () => drained() && (await storedOf(TEST_KEY_ID)).length >= 4, 'the first records');

    // 2. rotate-key, signed by the command key; the device's request arrives in its telemetry.
    clock.jump += 61_000; // command rate limits start spent at boot
    let commandCounter = 1;
    const start = await rotateKeyCommand(inventory, DEVICE, { seed: FLEET_SECRET, counter: commandCounter++ });
    await sendCommand(start.command);
    let request: Uint8Array | undefined;
    await run(async () => {
      const records = (await store.records()).filter((r) => r.device === DEVICE && r.payload[0] === RECORD_TYPES.keyRotationRequest);
      request = records[0]?.payload.slice(1);
      return request !== undefined && drained();
    }, 'the rotation request');
    assert.equal(runtime.status().keyPending, TEST_KEY_ID + 1);

    // 3. The authority verifies it against the inventory, records the new key and confirms.
    const confirmed = await confirmRotation(inventory, request as Uint8Array, { seed: FLEET_SECRET, counter: commandCounter++ });
    assert.equal(confirmed.inventory, 'recorded');
    const lastOld = Math.max(...(await storedOf(TEST_KEY_ID)).map((r) => r.counter));
    await sendCommand(confirmed.command);
    const reset = await run(() => false, 'the commit and restart');
    assert.match(reset?.message ?? '', /key-rotated/);
    assert.ok(auditSummary(flash, fleet).includes('key-rotated'), 'the audit log shows key-rotated');

    // 4. The ingest gets both keys; the device restarts and seals with the new one.
    await ingest.stop();
    ingest = await startIngest('drill-ingest-2');
    connector.closeAll();
    runtime = boot();
    assert.equal(runtime.status().keyId, TEST_KEY_ID + 1);
    await run(() => runtime.status().linkConnected, 'the connection under the new key');
    for (let i = 0; i < 3; i++) assert.ok(runtime.append(Uint8Array.of(0xb0, i)).accepted);
    await run(async () => drained() && (await storedOf(TEST_KEY_ID + 1)).length >= 4, 'records under the new key');
    const fresh = await storedOf(TEST_KEY_ID + 1);
    const firstNew = Math.min(...fresh.map((r) => r.counter));
    assert.ok(firstNew > lastOld, `the new key starts (${firstNew}) above the old key's last record (${lastOld})`);
    assert.equal((await storedOf(TEST_KEY_ID)).length >= 4, true, 'the records before the rotation stay');

    // 5. A record under the old key replayed with a counter above the bound (a stolen old key): refused retired-key.
    const oldKeys = deriveDeviceKeys(fleet.crypto, testSecret(), TEST_DEVICE_ID, TEST_KEY_ID);
    const forged = sealWithCounter(envelopePrimitives(fleet.crypto), oldKeys, EnvelopeSuite.hmacSha256, firstNew + 50, Uint8Array.of(0x01, 0xee));
    const attacker = await mqtt.connectAsync(`mqtt://${LOOPBACK}:${gateway.port}`, { username: DEVICE, password: DEVICE_PASSWORD, clientId: `${DEVICE}-old`, protocolVersion: 4, clean: true });
    cleanups.push(() => attacker.endAsync(true));
    await attacker.publishAsync(deviceTopic(TEST_DEVICE_ID, 'telemetry'), Buffer.from(forged), { qos: 1 });
    await run(() => (ingest.counts.retired ?? 0) >= 1, 'the refusal of the old-key record');
    assert.equal((await storedOf(TEST_KEY_ID)).some((r) => r.counter === firstNew + 50), false, 'not stored');

    // 6. The inventory: both keys, with their counters once the bound is recorded.
    await recordKeyBound(inventory, DEVICE, TEST_KEY_ID + 1, firstNew);
    const keys = loadFleet(inventoryPath).devices[0].keys;
    assert.deepEqual(
      keys.map((k) => ({ keyId: k.keyId, status: k.status, sinceCounter: k.sinceCounter, untilCounter: k.untilCounter })),
      [
        { keyId: TEST_KEY_ID, status: 'retired', sinceCounter: 0, untilCounter: firstNew },
        { keyId: TEST_KEY_ID + 1, status: 'current', sinceCounter: firstNew, untilCounter: null },
      ],
    );
    assert.ok(gateway.events.some((e) => e.action === 'duplicate' || e.action === 'replay'), 'the gateway duplicated or replayed traffic');
    assert.ok(ingest.counts.duplicates > 0 || ingest.counts.replays > 0 || (await store.load()).senders.some((s) => s.duplicates > 0), 'the ingest saw the hostile copies');
    await ingest.stop();
  });
});
