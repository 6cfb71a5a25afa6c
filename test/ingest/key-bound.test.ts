/**
 * The ingest's key bound after a device key rotation (docs/spec/key-rotation.md,
 * "Ingest"; docs/spec/ingest.md): a record under a retired key is accepted
 * only below the first counter seen under a newer key id of the device (or
 * the inventory's untilCounter, when given); at or above it, it is refused
 * `retired-key`, counted, and the window does not move. The bound survives
 * a restart (it is the newer key's persisted window: ingest_sender.first_counter).
 * Embedded store (PGlite, behind aedes) and the PostgreSQL store's `decide`
 * (skipped without PostgreSQL; CI requires it).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { LOOPBACK, skipUnless } from '../../tools/net/common.ts';
import { findPostgres, startPostgres, type PostgresCluster } from '../../tools/net/postgres.ts';
import { IngestService } from '../../tools/ingest/ingest.ts';
import { InventoryError, parseInventory } from '../../tools/ingest/inventory.ts';
import { PgliteStore } from '../../tools/ingest/store-pglite.ts';
import { PostgresStore } from '../../tools/ingest/store-postgres.ts';
import { judge, keyBound, type Delivery, type KeyBounds } from '../../tools/ingest/decide.ts';
import { IngestWindow } from '../../tools/ingest/window.ts';
import { deriveDeviceKeys } from '../../firmware/security/envelope-keys.ts';
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { deviceClient, INGEST_ACCOUNT, makeFleet, publishAll, seal, startBroker, tempDir, waitUntil, type TestDevice } from './ingest-helpers.ts';

/** One device with key 1 (retired) and key 2 (its successor, another secret). */
function rotatedDevice(): { old: TestDevice; fresh: TestDevice; inventory: (until?: number) => string } {
  const [old] = makeFleet(1, 77, ['hmac-sha256']);
  const base = { ...old, keyId: 1 };
  const oldKeys = deriveDeviceKeys(createNobleCrypto(), new Uint8Array(Buffer.from(base.secretHex, 'hex')), new Uint8Array(Buffer.from(base.name, 'hex')), 1);
  const secretHex = 'ab'.repeat(32);
  const freshKeys = deriveDeviceKeys(createNobleCrypto(), new Uint8Array(Buffer.from(secretHex, 'hex')), new Uint8Array(Buffer.from(base.name, 'hex')), 2);
  const oldDevice = { ...base, keys: oldKeys };
  const freshDevice = { ...base, keyId: 2, secretHex, keys: freshKeys };
  return {
    old: oldDevice,
    fresh: freshDevice,
    inventory: (until) =>
      JSON.stringify({
        format: 1,
        devices: [
          { deviceId: base.name, keyId: 1, secret: base.secretHex, suite: 'hmac-sha256', ...(until === undefined ? {} : { untilCounter: until }) },
          { deviceId: base.name, keyId: 2, secret: secretHex, suite: 'hmac-sha256' },
        ],
      }),
  };
}

describe('key bound: judge and inventory', () => {
  it('judge refuses a retired key at or above the first counter of a newer key, counts it, leaves its window', () => {
    const windows = new Map<string, { device: string; keyId: number; window: IngestWindow; duplicates: number; replays: number }>();
    const senderOf = (device: string, keyId: number) => {
      const id = `${device}/${keyId}`;
      let s = windows.get(id);
      if (!s) windows.set(id, (s = { device, keyId, window: new IngestWindow(), duplicates: 0, replays: 0 }));
      return s;
    };
    const bounds: KeyBounds = { keyIdsOf: (d) => (d === 'a' ? [1, 2, 3] : undefined), untilCounterOf: () => undefined, firstOf: (d, k) => windows.get(`${d}/${k}`)?.window.first };
    const d = (keyId: number, counter: number, device = 'a'): Delivery => ({ device, keyId, counter, payload: new Uint8Array(1), arrivedAt: 0 });
    const judged = judge([d(1, 5), d(2, 10), d(1, 9), d(1, 10), d(1, 11), d(3, 20), d(2, 19), d(2, 20), d(1, 12, 'b'), d(1, 99, 'b')], senderOf, bounds);
    assert.deepEqual(judged.records.map((r) => `${r.keyId}:${r.counter}`), ['1:5', '2:10', '1:9', '3:20', '2:19', '1:12', '1:99']);
    assert.deepEqual([...judged.retired.entries()], [['a', 3]]);
    assert.equal(windows.get('a/1')?.window.highest, 9, 'a refused record does not move the window');
    assert.equal(keyBound(bounds, 'a', 1), 10);
    assert.equal(keyBound(bounds, 'a', 2), 20);
    assert.equal(keyBound(bounds, 'a', 3), undefined);
    const until: KeyBounds = { ...bounds, untilCounterOf: (dev, k) => (dev === 'a' && k === 1 ? 7 : undefined) };
    assert.equal(keyBound(until, 'a', 1), 7, 'the inventory untilCounter when lower');
  });

  it('the inventory takes an optional untilCounter and lists rotated devices; a bad one is refused by field', () => {
    const { inventory, old } = rotatedDevice();
    const parsed = parseInventory(inventory(40));
    assert.deepEqual(parsed.rotated.get(old.name), [1, 2]);
    assert.equal(parsed.keys.get(`${old.name}/1`)?.untilCounter, 40);
    assert.equal(parsed.keys.get(`${old.name}/2`)?.untilCounter, undefined);
    assert.throws(() => parseInventory(inventory(0)), (e: unknown) => e instanceof InventoryError && e.field === 'devices[0].untilCounter');
    assert.equal(parseInventory(inventory()).rotated.size, 1);
  });
});

describe('key bound: embedded ingest (PGlite) behind aedes, across a restart', () => {
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  let t: ReturnType<typeof tempDir>;
  before(() => {
    t = tempDir();
  });
  after(async () => {
    for (const c of cleanups.reverse()) await c();
    t.cleanup();
  });

  it('old key below the bound accepted, at or above refused retired-key (also after a restart); the inventory untilCounter bounds it before any new-key record', async () => {
    const { old, fresh, inventory } = rotatedDevice();
    const broker = await startBroker('aedes', [old]);
    cleanups.push(() => broker.stop());
    const run = async (inventoryText: string, clientId: string) => {
      const store = await PgliteStore.open(join(t.dir, 'db'));
      const service = new IngestService({ host: LOOPBACK, port: broker.port, protocolVersion: 4, clientId, ...INGEST_ACCOUNT, store, loaded: await store.load(), inventory: parseInventory(inventoryText), lingerMs: 0 });
      await service.start();
      return { store, service };
    };
    const client: MqttClient = await deviceClient({ port: broker.port, protocolVersions: [4] }, old);
    cleanups.push(() => client.endAsync(true));
    let { store, service } = await run(inventory(), 'ingest-bound-1');
    const send = async (envelopes: Uint8Array[], settled: () => boolean) => {
      await publishAll(client, old.topic, envelopes, 1);
      await waitUntil(settled, 20_000, () => JSON.stringify(service.counts));
    };
    await send([1, 2, 3].map((c) => seal(old, c)), () => service.counts.accepted === 3);
    await send([seal(fresh, 20)], () => service.counts.accepted === 4);
    await send([seal(old, 21), seal(old, 20)], () => service.counts.retired === 2);
    await send([seal(old, 7)], () => service.counts.accepted === 5);
    assert.equal(service.counts.forgeries, 0, 'retired is not counted as forgery');
    await service.stop();
    const reloaded = await store.load();
    assert.equal(reloaded.refusals.find((r) => r.device === old.name && r.reason === 'retired-key')?.count, 2, 'refusals persisted');
    await store.close();
    // Restart: the bound is the newer key's persisted window.
    ({ store, service } = await run(inventory(), 'ingest-bound-2'));
    await send([seal(old, 25)], () => service.counts.retired === 1);
    await send([seal(old, 8)], () => service.counts.accepted === 1);
    await service.stop();
    const keys = (await store.recordKeys()).map((r) => `${r.keyId}:${r.counter}`);
    assert.deepEqual(keys, ['1:1', '1:2', '1:3', '1:7', '1:8', '2:20']);
    await store.close();
    // The inventory's untilCounter bounds the old key with no new-key record seen (a fresh store).
    const t2 = tempDir();
    cleanups.push(() => t2.cleanup());
    const store2 = await PgliteStore.open(join(t2.dir, 'db'));
    const service2 = new IngestService({ host: LOOPBACK, port: broker.port, protocolVersion: 4, clientId: 'ingest-bound-3', ...INGEST_ACCOUNT, store: store2, loaded: await store2.load(), inventory: parseInventory(inventory(10)), lingerMs: 0 });
    await service2.start();
    await publishAll(client, old.topic, [seal(old, 9), seal(old, 10)], 1);
    await waitUntil(() => service2.counts.accepted === 1 && service2.counts.retired === 1, 20_000, () => JSON.stringify(service2.counts));
    await service2.stop();
    await store2.close();
  });
});

describe('key bound: PostgreSQL store decide', { skip: skipUnless([findPostgres()]) }, () => {
  let cluster: PostgresCluster;
  before(async () => {
    cluster = await startPostgres({ fsync: false });
  });
  after(async () => {
    await cluster?.stop();
  });

  it('decide refuses old-key deliveries at or above the newer key first counter, within a batch and in later batches, and adds retired-key refusals', async () => {
    const url = await cluster.createDatabase('keybound');
    const store = await PostgresStore.open(url);
    const d = (keyId: number, counter: number): Delivery => ({ device: 'd1aa', keyId, counter, payload: Uint8Array.of(keyId, counter), arrivedAt: 0 });
    const rotated = [{ device: 'd1aa', keyIds: [1, 2], untilCounters: [undefined, undefined] }];
    const first = await store.decide({ deliveries: [d(1, 1), d(1, 2), d(2, 10), d(1, 10), d(1, 9)], refusals: [], rotated });
    assert.equal(first.accepted, 4);
    assert.equal(first.retired, 1);
    const second = await store.decide({ deliveries: [d(1, 11), d(1, 5)], refusals: [], rotated });
    assert.equal(second.accepted, 1);
    assert.equal(second.retired, 1);
    const withUntil = await store.decide({ deliveries: [d(1, 8)], refusals: [], rotated: [{ device: 'd1aa', keyIds: [1, 2], untilCounters: [8, undefined] }] });
    assert.equal(withUntil.retired, 1, 'the inventory untilCounter is lower');
    const loaded = await store.load();
    assert.equal(loaded.refusals.find((r) => r.reason === 'retired-key')?.count, 3);
    assert.deepEqual((await store.recordKeys()).map((r) => `${r.keyId}:${r.counter}`), ['1:1', '1:2', '1:5', '1:9', '2:10']);
    await store.close();
  });
});
