/**
 * Exactly once across SIGKILL (docs/spec/ingest.md, "Acknowledgement
 * order"), with the real mosquitto (MQTT 5, persistent sessions):
 *
 * 1. The subscriber's acknowledgements: messages received but not
 *    acknowledged when the connection dies without DISCONNECT (what a
 *    SIGKILL looks like to the broker) are all delivered again to the next
 *    connection of the same client id; once acknowledged, never again.
 * 2. The real CLI (`holdfast ingest`) is SIGKILLed twice at seeded random
 *    moments while devices publish, restarted each time; at the end the
 *    store holds every published record exactly once with its payload, and
 *    nothing was refused.
 *
 * Without mosquitto the tests skip; with CI set they fail (requireComponents).
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { findMosquitto, findMosquittoPasswd, LOOPBACK, requireComponents, skipUnless } from '../../tools/net/common.ts';
import { Subscriber, type IncomingMessage } from '../../tools/ingest/subscriber.ts';
import { PgliteStore } from '../../tools/ingest/store-pglite.ts';
import { Rng } from '../../tools/sim/rng.ts';
import { holdfast, start } from '../cli/cli-harness.ts';
import { deviceClient, INGEST_ACCOUNT, makeFleet, payloadOf, publishAll, publishInChunks, seal, startBroker, tempDir, waitUntil, writeInventory, type TestBroker } from './ingest-helpers.ts';

const needs = [findMosquitto(), findMosquittoPasswd()];
const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe('ingest: exactly once across SIGKILL (mosquitto)', { skip: skipUnless(needs) }, () => {
  it('unacknowledged messages come back after the connection dies; acknowledged ones do not', async () => {
    requireComponents(needs);
    const fleet = makeFleet(1);
    const broker = await startBroker('mosquitto', fleet);
    cleanups.push(() => broker.stop());
    const got: IncomingMessage[] = [];
    const make = () =>
      new Subscriber({ host: LOOPBACK, port: broker.port, clientId: 'ingest-ack-test', ...INGEST_ACCOUNT, protocolVersion: 5, topic: 'holdfast/+/telemetry/#', onMessage: (m) => got.push(m), onFatal: (e) => assert.fail(e) });
    let sub = make();
    sub.start();
    await sub.ready;
    const device = await deviceClient(broker, fleet[0]);
    cleanups.push(() => device.endAsync(true));
    await publishAll(device, fleet[0].topic, Array.from({ length: 50 }, (_, i) => seal(fleet[0], i + 1)));
    await waitUntil(() => got.length >= 50, 10_000, () => `first connection got ${got.length} of 50`);
    // Die without DISCONNECT and without acknowledging (as SIGKILL would).
    (sub as unknown as { stopping: boolean }).stopping = true;
    (sub as unknown as { socket: { destroy(): void } }).socket.destroy();
    const first = got.splice(0);
    sub = make();
    sub.start();
    await sub.ready;
    await waitUntil(() => got.length >= 50, 10_000, () => `second connection got ${got.length} of 50 again`);
    assert.deepEqual(got.map((m) => Buffer.from(m.payload).toString('hex')), first.map((m) => Buffer.from(m.payload).toString('hex')), 'the same 50 messages, in order');
    assert.ok(got.every((m) => m.dup), 'redelivered with DUP set');
    assert.equal(sub.ack(got), 50);
    await sub.stop();
    const again = got.splice(0);
    sub = make();
    sub.start();
    await sub.ready;
    await device.publishAsync(fleet[0].topic, Buffer.from(seal(fleet[0], 51)), { qos: 1 });
    await waitUntil(() => got.length >= 1, 10_000, () => 'the new message');
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(got.map((m) => Buffer.from(m.payload).toString('hex')), [Buffer.from(seal(fleet[0], 51)).toString('hex')], `after the acks only the new message arrives (acked: ${again.length})`);
    await sub.stop();
  });

  it('the CLI killed with SIGKILL twice at random moments and restarted: every record stored exactly once', async () => {
    requireComponents(needs);
    const seed = Number(process.env.HOLDFAST_INGEST_SEED ?? 20261206);
    const rng = new Rng(seed);
    const fleet = makeFleet(4, 7);
    const perDevice = 1500;
    const t = tempDir();
    cleanups.push(() => t.cleanup());
    const inventory = writeInventory(t.dir, fleet);
    const db = join(t.dir, 'db');
    const broker: TestBroker = await startBroker('mosquitto', fleet);
    cleanups.push(() => broker.stop());
    const args = ['ingest', '--broker', `mqtt://${LOOPBACK}:${broker.port}`, '--db', db, '--devices', inventory, '--username', INGEST_ACCOUNT.username, '--batch', '300', '--progress-ms', '0'];
    const env = { ...process.env, HOLDFAST_INGEST_PASSWORD: INGEST_ACCOUNT.password };
    const launch = () => {
      const run = start(args, { env });
      let stderr = '';
      run.child.stderr?.on('data', (d) => (stderr += String(d)));
      cleanups.push(() => {
        if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGKILL');
      });
      return { ...run, stderr: () => stderr };
    };
    let ingest = launch();
    await waitUntil(() => ingest.stderr().includes('subscribed to'), 120_000, () => `ingest did not subscribe: ${ingest.stderr()}`);

    // Devices publish in the background, in order, each record once (QoS 1 to the broker).
    const clients = await Promise.all(fleet.map((d) => deviceClient(broker, d)));
    cleanups.push(() => Promise.all(clients.map((c) => c.endAsync(true))).then(() => undefined));
    const publishing = publishInChunks(clients, fleet, perDevice, 100, 50);

    for (let kill = 0; kill < 2; kill++) {
      // A seeded moment: after a random share of the traffic was published (the ingest is somewhere mid-batch).
      const at = rng.between(200, fleet.length * perDevice - 400);
      await waitUntil(() => publishing.published() >= at, 120_000, () => `publishers stuck at ${publishing.published()}`);
      await new Promise((r) => setTimeout(r, rng.below(40)));
      ingest.child.kill('SIGKILL');
      const dead = await ingest.done;
      assert.equal(dead.signal, 'SIGKILL', `kill ${kill} (seed ${seed}, at ${at} published): the ingest died of SIGKILL`);
      ingest = launch();
      await waitUntil(() => ingest.stderr().includes('subscribed to') || ingest.child.exitCode !== null, 120_000, () => `restarted ingest did not subscribe: ${ingest.stderr()}`);
      assert.ok(ingest.stderr().includes('subscribed to'), `restart ${kill}: ${ingest.stderr()}`);
      assert.match(ingest.stderr(), /rows read/, 'the restart names its cost');
    }
    await publishing.done;
    // Let the last run drain, then stop it gracefully (SIGTERM: commit, acknowledge, exit 0).
    const total = fleet.length * perDevice;
    await new Promise((r) => setTimeout(r, 500));
    ingest.child.kill('SIGTERM');
    const last = await ingest.done;
    assert.equal(last.status, 0, `graceful stop exits 0: ${last.stderr}`);
    // Anything still queued at the broker is taken by one more run that stops once the store holds everything.
    const mid = await holdfast(['ingest', 'report', '--db', db, '--json']);
    assert.equal(mid.status, 0, mid.stderr);
    const stored = JSON.parse(mid.stdout).totals.accepted as number;
    if (stored < total) {
      const final = await holdfast([...args, '--exit-after', String(total - stored)], { env, timeout: 180_000 });
      assert.equal(final.status, 0, `final drain: ${final.stderr}`);
    }

    const report = await holdfast(['ingest', 'report', '--db', db, '--json']);
    assert.equal(report.status, 0, report.stderr);
    const r = JSON.parse(report.stdout);
    assert.equal(r.totals.accepted, total, 'every record accepted');
    assert.equal(r.totals.replaysRejected, 0, 'no fresh record refused as stale');
    assert.equal(r.totals.forgeriesRejected, 0);
    const store = await PgliteStore.open(db);
    try {
      const records = await store.records();
      assert.equal(records.length, total, 'each record once (the primary key forbids a second row)');
      for (const d of fleet) {
        const mine = records.filter((x) => x.device === d.name);
        assert.deepEqual(mine.map((x) => x.counter), Array.from({ length: perDevice }, (_, i) => i + 1), `${d.name}: counters 1..${perDevice}`);
        for (const x of mine) assert.deepEqual(x.payload, payloadOf(d, x.counter));
      }
    } finally {
      await store.close();
    }
  });
});
