/**
 * The ingest scaled out (docs/spec/ingest.md, "Several workers";
 * docs/design/scale-out.md): a throwaway PostgreSQL cluster
 * (tools/net/postgres.ts), mosquitto with persistent sessions, and N
 * ingest workers as real CLI processes behind one MQTT 5 shared
 * subscription ($share/<group>/holdfast/+/telemetry/#). mosquitto hands
 * the messages of one device to the workers in turn, so every batch of
 * every worker touches every device's window: the database decides.
 *
 * 1. PostgresStore alone: 4 connections judge overlapping batches at once
 *    (every record delivered 1-3 times, to random connections, in random
 *    order): each record stored once; each sender's versions are handed
 *    out once, in order, and every counter a returned (receipt) window
 *    marks is a stored record.
 * 2. 2 workers, the broker restarted mid-stream; 3. 4 workers, one
 *    SIGKILLed mid-stream and started again under its client id (its
 *    session holds its in-flight messages: mosquitto redelivers them to
 *    it). Both: every record each device sent is stored exactly once, with
 *    its payload (rows counted per (device, key id, counter)).
 *
 * Each device sends fewer than W = 1024 records, so no record can fall
 * below its window whatever the order: what is checked is exactly once,
 * not the window's reorder depth (test/ingest/window.test.ts).
 *
 * Without PostgreSQL or mosquitto the tests skip; with CI set they fail.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { findMosquitto, findMosquittoPasswd, LOOPBACK, requireComponents, skipUnless } from '../../tools/net/common.ts';
import { findPostgres, startPostgres, type PostgresCluster } from '../../tools/net/postgres.ts';
import { PostgresStore } from '../../tools/ingest/store-postgres.ts';
import { IngestWindow } from '../../tools/ingest/window.ts';
import type { Delivery } from '../../tools/ingest/decide.ts';
import type { RefusalCount, SenderState, SharedIngestStore } from '../../tools/ingest/store.ts';
import { IngestService } from '../../tools/ingest/ingest.ts';
import { parseInventory } from '../../tools/ingest/inventory.ts';
import { openReceipt } from '../../firmware/security/receipt.ts';
import mqtt from 'mqtt';
import pg from 'pg';
import { Rng } from '../../tools/sim/rng.ts';
import { holdfast } from '../cli/cli-harness.ts';
import { deviceClient, INGEST_ACCOUNT, inventoryJson, makeFleet, PRIMITIVES, publishAll, publishInChunks, seal, startBroker, tempDir, waitUntil, writeInventory, type TestDevice } from './ingest-helpers.ts';
import { acceptedSoFar, assertExactlyOnce, drainWithReceipts, launchWorker, ReceiptGateStandIn, stopWorkers, subscribed, type WorkerProcess } from './scale-helpers.ts';

const needs = [findPostgres(), findMosquitto(), findMosquittoPasswd()];
const cleanups: (() => Promise<void> | void)[] = [];
let cluster: PostgresCluster | undefined;
const SEED = Number(process.env.HOLDFAST_INGEST_SEED ?? 20261206);

describe('ingest scaled out: PostgreSQL, shared subscriptions, exactly once', { skip: skipUnless(needs) }, () => {
  before(async () => {
    requireComponents(needs);
    // No crash of the server is tested here: fsync off keeps the run short.
    cluster = await startPostgres({ fsync: false });
  });
  after(async () => {
    for (const c of cleanups.reverse()) await c();
    await cluster?.stop();
  });

  it('concurrent transactions on shared windows: each record once, receipts only from committed windows', async () => {
    const url = await (cluster as PostgresCluster).createDatabase('concurrent');
    const rng = new Rng(SEED);
    const devices = Array.from({ length: 6 }, (_, i) => `d2${i.toString(16).padStart(14, '0')}`);
    const perDevice = 600;
    // Every record delivered 1..3 times, shuffled, dealt to 4 connections in random batches.
    const deliveries: Delivery[] = [];
    for (const device of devices) {
      for (let c = 1; c <= perDevice; c++) {
        const copies = 1 + rng.below(3);
        for (let k = 0; k < copies; k++) deliveries.push({ device, keyId: 1, counter: c, payload: new Uint8Array([c & 0xff, c >> 8]), arrivedAt: Date.now() });
      }
    }
    // One more device whose counters jump by 2,700 (a reboot's skip): its low records are fresh or stale depending on
    // which commits first, so a record inserted before the window locks may have to be taken out again (stale).
    const jumper = 'd2ffffffffffffff';
    for (const range of [[1, 300], [3001, 3300]]) {
      for (let c = range[0]; c <= range[1]; c++) {
        const copies = 1 + rng.below(2);
        for (let k = 0; k < copies; k++) deliveries.push({ device: jumper, keyId: 1, counter: c, payload: new Uint8Array([c & 0xff, c >> 8]), arrivedAt: Date.now() });
      }
    }
    for (let i = deliveries.length - 1; i > 0; i--) {
      const j = rng.below(i + 1);
      [deliveries[i], deliveries[j]] = [deliveries[j], deliveries[i]];
    }
    const stores = await Promise.all([0, 1, 2, 3].map(() => PostgresStore.open(url)));
    cleanups.push(() => Promise.all(stores.map((s) => s.close())).then(() => undefined));
    // Each batch also adds refusal counts to a few shared (device, reason) rows, in random order.
    const reasons = ['bad-tag', 'unknown-key', 'malformed'];
    const queues: { deliveries: Delivery[]; refusals: RefusalCount[] }[][] = stores.map(() => []);
    let refused = 0;
    for (let at = 0; at < deliveries.length; ) {
      const size = 1 + rng.below(120);
      const refusals: RefusalCount[] = [];
      for (const device of devices) {
        const reason = reasons[rng.below(reasons.length)];
        if (rng.below(3) === 0 && !refusals.some((r) => r.device === device && r.reason === reason)) refusals.push({ device, reason, count: 1 + rng.below(3) });
      }
      refused += refusals.reduce((n, r) => n + r.count, 0);
      queues[rng.below(stores.length)].push({ deliveries: deliveries.slice(at, at + size), refusals: refusals.reverse() });
      at += size;
    }
    const committed: SenderState[] = [];
    let accepted = 0;
    let duplicates = 0;
    let replays = 0;
    await Promise.all(
      stores.map(async (store, i) => {
        for (const batch of queues[i]) {
          const d = await store.decide(batch);
          accepted += d.accepted;
          duplicates += d.duplicates;
          replays += d.replays;
          committed.push(...d.senders);
        }
      }),
    );
    const keys = await stores[0].recordKeys();
    assert.equal(accepted, keys.length, `seed ${SEED}: one row per acceptance`);
    assert.equal(keys.filter((k) => k.device !== jumper).length, devices.length * perDevice, 'every record of the steady devices once');
    assert.equal(duplicates + replays, deliveries.length - accepted, 'every other delivery a duplicate or stale');
    assert.equal(new Set(keys.map((k) => `${k.device}/${k.counter}`)).size, keys.length, 'no record twice');
    const jumped = keys.filter((k) => k.device === jumper);
    const jumperWindow = (await stores[0].load()).senders.find((x) => x.device === jumper);
    assert.equal(jumped.length, jumperWindow?.window.accepted, 'the jumping device: as many rows as its window accepted (a record found stale under the lock is not left behind)');
    assert.equal(jumped.filter((k) => k.counter > 3000).length, 300, 'the jumping device: every record above the jump');
    assert.equal(jumperWindow?.replays, jumperWindow === undefined ? 0 : replays, 'refusals as stale: the jumping device only');
    // Each sender's versions 1..n were each handed out by exactly one transaction; a window from version v covers a subset of v + 1's.
    const stored = new Set(keys.map((k) => `${k.device}/${k.counter}`));
    for (const device of devices) {
      const mine = committed.filter((s) => s.device === device).sort((a, b) => a.version - b.version);
      assert.deepEqual(mine.map((s) => s.version), Array.from({ length: mine.length }, (_, i) => i + 1), `${device}: versions handed out once each, none skipped`);
      let before: IngestWindow | undefined;
      for (const s of mine) {
        const w = new IngestWindow(s.window);
        for (let c = Math.max(1, w.highest - 1023); c <= w.highest; c++) {
          if (w.check(c) === 'duplicate') assert.ok(stored.has(`${device}/${c}`), `${device}: a receipt window of version ${s.version} marks ${c}, which is stored`);
          if (before && before.check(c) === 'duplicate') assert.equal(w.check(c), 'duplicate', `${device}: version ${s.version} keeps what ${s.version - 1} marked (${c})`);
        }
        before = w;
      }
      assert.equal(before?.accepted, perDevice, `${device}: the last window counts every record`);
    }
    const loaded = await stores[0].load();
    assert.equal(loaded.senders.reduce((n, s) => n + s.duplicates, 0), duplicates, 'duplicates counted in the windows');
    assert.equal(loaded.refusals.reduce((n, r) => n + r.count, 0), refused, 'refusal counts added by concurrent transactions, none lost');
  });

  it('a record inserted before the window lock and found stale under it is taken out again', async () => {
    const url = await (cluster as PostgresCluster).createDatabase('stale_under_lock');
    const store = await PostgresStore.open(url);
    cleanups.push(() => store.close());
    const device = 'd2eeeeeeeeeeeeee';
    const delivery = (counter: number): Delivery => ({ device, keyId: 1, counter, payload: new Uint8Array([counter & 0xff]), arrivedAt: Date.now() });
    await store.decide({ deliveries: [delivery(1)], refusals: [] });
    // Another writer holds the window and moves it 5,000 ahead, as a worker that accepted a record after a reboot's jump.
    const other = new pg.Client({ connectionString: url });
    await other.connect();
    cleanups.push(() => other.end());
    await other.query('BEGIN');
    const row = (await other.query(`SELECT first_counter, highest, bitmap, accepted, version FROM ingest_sender WHERE device = $1 AND key_id = 1 FOR UPDATE`, [device])).rows[0];
    const moved = new IngestWindow({ first: Number(row.first_counter), highest: Number(row.highest), bitmap: new Uint8Array(row.bitmap), accepted: Number(row.accepted) });
    moved.accept(5001);
    const state = moved.state();
    await other.query(`INSERT INTO ingest_record (device, key_id, counter, payload, arrived_at) VALUES ($1, 1, 5001, '\\x00', now())`, [device]);
    await other.query(`UPDATE ingest_sender SET highest = $2, bitmap = $3, accepted = $4, version = version + 1 WHERE device = $1 AND key_id = 1`, [device, state.highest, Buffer.from(state.bitmap), state.accepted]);
    // This batch reads the window before the other commits (counters 2..11 fresh), inserts them, then waits for the lock.
    const deciding = store.decide({ deliveries: [2, 3, 4, 5, 6, 7, 8, 9, 10, 11].map(delivery), refusals: [] });
    const watcher = new pg.Client({ connectionString: url });
    await watcher.connect();
    cleanups.push(() => watcher.end());
    await waitUntil(async () => Number((await watcher.query(`SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`)).rows[0].n) > 0, 30_000, () => 'the batch waits for the window lock');
    await other.query('COMMIT');
    const d = await deciding;
    assert.equal(d.accepted, 0, 'under the lock the window is 5,001: counters 2..11 are stale');
    assert.equal(d.replays, 10);
    assert.deepEqual((await store.recordKeys()).map((k) => k.counter), [1, 5001], 'the rows inserted before the lock were taken out again');
    const w = (await store.load()).senders.find((x) => x.device === device);
    assert.equal(w?.window.accepted, 2);
    assert.equal(w?.replays, 10);
  });

  it('a batch whose transaction fails publishes no receipt and is not acknowledged; the redelivered copy is judged against what committed', async () => {
    const url = await (cluster as PostgresCluster).createDatabase('receipts');
    const fleet = makeFleet(2, 21);
    const broker = await startBroker('mosquitto', fleet);
    cleanups.push(() => broker.stop());
    const real = await PostgresStore.open(url);
    cleanups.push(() => real.close());
    // A store whose transaction fails before anything commits ('before'), or commits and then reports a failure (an in-doubt COMMIT: 'after').
    let mode: 'before' | 'after' | 'pass' = 'before';
    const flaky: SharedIngestStore = {
      shared: true,
      load: () => real.load(),
      commit: (b) => real.commit(b),
      recordKeys: () => real.recordKeys(),
      close: async () => undefined,
      async decide(batch) {
        if (mode === 'before') throw new Error('injected: the transaction failed');
        const d = await real.decide(batch);
        if (mode === 'after') throw new Error('injected: the answer to COMMIT was lost');
        return d;
      },
    };
    const observer = await mqtt.connectAsync({ host: LOOPBACK, port: broker.port, ...INGEST_ACCOUNT, protocolVersion: 5, clientId: 'receipt-observer' });
    cleanups.push(() => observer.endAsync(true));
    const receipts: { phase: string; payload: Uint8Array }[] = [];
    let phase = 'before';
    observer.on('message', (_topic, payload) => receipts.push({ phase, payload: new Uint8Array(payload) }));
    await observer.subscribeAsync('holdfast/+/receipt', { qos: 0 });
    const inventory = parseInventory(inventoryJson(fleet));
    const service = async () => {
      const svc = new IngestService({ host: LOOPBACK, port: broker.port, protocolVersion: 5, clientId: 'receipt-w1', ...INGEST_ACCOUNT, topic: '$share/r/holdfast/+/telemetry/#', store: flaky, loaded: await flaky.load(), inventory, lingerMs: 0 });
      await svc.start();
      return svc;
    };
    const device = await deviceClient(broker, fleet[0]);
    cleanups.push(() => device.endAsync(true));

    let svc = await service();
    await publishAll(device, fleet[0].topic, [1, 2, 3, 4, 5].map((c) => seal(fleet[0], c)));
    await assert.rejects(svc.done, /injected: the transaction failed/);
    assert.equal((await real.recordKeys()).length, 0, 'nothing committed');

    phase = 'after';
    mode = 'after';
    // With lingerMs 0 a batch may hold fewer than the five (a busy machine delivers the first alone): each in-doubt
    // COMMIT stops the worker, and what was not acknowledged comes back to the next one under the same client id.
    for (let attempt = 1; (await real.recordKeys()).length < 5; attempt++) {
      assert.ok(attempt <= 5, `the unacknowledged records came back to the same client id and committed: ${(await real.recordKeys()).length} of 5 after ${attempt - 1} in-doubt commits`);
      svc = await service();
      await assert.rejects(svc.done, /injected: the answer to COMMIT was lost/);
    }

    phase = 'pass';
    mode = 'pass';
    svc = await service();
    await waitUntil(() => receipts.some((r) => r.phase === 'pass'), 30_000, () => 'a receipt after the redelivery');
    await svc.stop();
    assert.deepEqual(receipts.filter((r) => r.phase !== 'pass').map((r) => r.phase), [], 'no receipt from a batch whose transaction failed or whose COMMIT was in doubt');
    assert.equal(svc.counts.duplicates, 5, 'the second redelivery: five duplicates');
    assert.equal(svc.counts.accepted, 0);
    const opened = openReceipt(receipts.find((r) => r.phase === 'pass')?.payload as Uint8Array, fleet[0].keys, PRIMITIVES);
    assert.equal(opened.highest, 5);
    for (let c = 1; c <= 5; c++) assert.ok(opened.covers(c), `the receipt covers ${c}, which is stored`);
    assert.deepEqual((await real.recordKeys()).map((k) => k.counter), [1, 2, 3, 4, 5], 'each once');
  });

  /**
   * `workers` CLI workers; `fleet` devices publish `perDevice` records each in the background; `disrupt` runs once
   * `at` records were published. Then all are drained and checked.
   */
  async function scenario(name: string, workers: number, disrupt: (ctx: { broker: Awaited<ReturnType<typeof startBroker>>; pool: WorkerProcess[]; relaunch(i: number): Promise<void> }) => Promise<void>): Promise<{ results: Awaited<ReturnType<typeof stopWorkers>>; pool: WorkerProcess[]; resent: number }> {
    const fleet: TestDevice[] = makeFleet(8, 11);
    const perDevice = 1000;
    const url = await (cluster as PostgresCluster).createDatabase(name);
    const t = tempDir();
    cleanups.push(() => t.cleanup());
    const inventory = writeInventory(t.dir, fleet);
    const broker = await startBroker('mosquitto', fleet);
    cleanups.push(() => broker.stop());
    const pool: WorkerProcess[] = [];
    const all: WorkerProcess[] = [];
    cleanups.push(() => {
      for (const w of all) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
    });
    const launch = (i: number) => {
      const w = launchWorker(broker, url, inventory, 'ingest', `ingest-w${i + 1}`, ['--batch', '400', '--json']);
      all.push(w);
      pool[i] = w;
      return w;
    };
    for (let i = 0; i < workers; i++) launch(i);
    await Promise.all(pool.map((w) => subscribed(w)));

    const clients = await Promise.all(fleet.map((d) => deviceClient(broker, d)));
    cleanups.push(() => Promise.all(clients.map((c) => c.endAsync(true))).then(() => undefined));
    // Each device keeps every record until a receipt covers it, and resends what none covered (the receipt gate).
    const gates = await Promise.all(fleet.map((d, i) => ReceiptGateStandIn.attach(clients[i], d)));
    const publishing = publishInChunks(clients, fleet, perDevice, 50, 25);
    const total = fleet.length * perDevice;
    const at = new Rng(SEED + workers).between(Math.floor(total * 0.25), Math.floor(total * 0.6));
    await waitUntil(() => publishing.published() >= at, 120_000, () => `publishers stuck at ${publishing.published()}`);
    await disrupt({
      broker,
      pool,
      relaunch: async (i) => {
        await subscribed(launch(i));
      },
    });
    await publishing.done;
    // mosquitto 2.0.11 does not restore a shared subscription from its persistence file: what devices publish between
    // its restart and the workers' SUBSCRIBE is dropped after its PUBACK (docs/design/scale-out.md). The gate resends it.
    const drained = await drainWithReceipts(gates, perDevice, 5000, 10);
    assert.equal(gates.reduce((n, g) => n + g.refused, 0), 0, `${name}: every receipt opened with the device's keys`);

    const store = await PostgresStore.open(url);
    cleanups.push(() => store.close());
    let accepted = 0;
    await waitUntil(async () => (accepted = await acceptedSoFar(store)) >= total, 120_000, () => `${name}: ${accepted} of ${publishing.published()} published accepted; broker: ${(broker as { log(): string }).log().slice(-1500)}; workers: ${pool.map((w) => w.stderr().slice(-300)).join(' | ')}`, 100);
    const results = await stopWorkers(pool);
    for (const r of results) assert.equal(r.status, 0, `${name}: ${r.clientId} stops gracefully: ${r.stderr.slice(-500)}`);
    await assertExactlyOnce(store, fleet, perDevice, `${name} (seed ${SEED})`);
    // The report reads the same server.
    const report = await holdfast(['ingest', 'report', '--db', url, '--json']);
    assert.equal(report.status, 0, report.stderr);
    assert.equal(JSON.parse(report.stdout).totals.accepted, total);
    return { results, pool, resent: drained.resent };
  }

  it('2 workers, the broker restarted mid-stream: exactly once', async (t) => {
    const { results, resent } = await scenario('two_workers', 2, async ({ broker }) => {
      await broker.restart();
    });
    t.diagnostic(`records the devices sent again for want of a receipt: ${resent}`);
    const accepted = results.map((r) => Number(r.json?.accepted ?? 0));
    assert.ok(accepted.every((n) => n > 0), `both workers accepted records: ${accepted.join(', ')}`);
  });

  it('4 workers, one SIGKILLed mid-stream and started again under its client id: exactly once', async (t) => {
    let killed: { signal: NodeJS.Signals | null } | undefined;
    const { results, resent } = await scenario('four_workers', 4, async ({ pool, relaunch }) => {
      const victim = new Rng(SEED).below(4);
      pool[victim].child.kill('SIGKILL');
      killed = await pool[victim].done;
      await relaunch(victim);
    });
    t.diagnostic(`records the devices sent again for want of a receipt: ${resent}`);
    assert.equal(killed?.signal, 'SIGKILL');
    assert.equal(results.length, 4);
    assert.ok(results.every((r) => r.json?.store === 'postgres' && r.json?.sharedGroup === 'ingest'), 'each worker says it ran shared on PostgreSQL');
  });
});
