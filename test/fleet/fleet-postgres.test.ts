/**
 * The fleet inventory in PostgreSQL (`--db postgres://…`,
 * tools/fleet/store-postgres.ts) against a throwaway cluster
 * (tools/net/postgres.ts):
 *
 * - `fleet import` moves a provisioned file inventory into the database in
 *   one transaction (a second import is refused); `fleet ls/show/export`
 *   from the database give what the file gives (the ingest export byte for
 *   byte); set, quarantine, release and revoke change it as they change the
 *   file, and a revoked device is left out of the ingest export;
 * - one writer at a time: 8 connections each read-modify-write the
 *   inventory at once (with a pause between read and save), and two CLI
 *   processes set and quarantine one device at once: no update is lost;
 * - `provision --db` registers its runs in the database;
 * - a newer schema version, a damaged row and an edited history are
 *   refused with one line; `--db` with `--inventory` is a usage error; a
 *   URL's password never appears in an error.
 *
 * Without PostgreSQL the tests skip; with CI set they fail.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { batch, expectExit, holdfast, jsonErrorOf } from '../cli/cli-harness.ts';
import { provision } from '../../tools/provision/provision.ts';
import { loadFleet, saveFleet } from '../../tools/fleet/inventory.ts';
import { PostgresFleetStore } from '../../tools/fleet/store-postgres.ts';
import { requireComponents, skipUnless } from '../../tools/net/common.ts';
import { findPostgres, startPostgres, type PostgresCluster } from '../../tools/net/postgres.ts';
import { KEY_2 } from '../security/provisioning.cases.ts';

const needs = [findPostgres()];

describe('holdfast fleet --db postgres://…', { skip: skipUnless(needs) }, () => {
  let cluster: PostgresCluster;
  let dir: string;
  let inv: string;
  let url: string;
  let ids: string[];

  before(async () => {
    requireComponents(needs);
    cluster = await startPostgres({ fsync: false });
    dir = mkdtempSync(join(tmpdir(), 'holdfast-fleet-pg-'));
    inv = join(dir, 'fleet.json');
    writeFileSync(join(dir, 'revocation.key'), `${'5a'.repeat(32)}\n`, { mode: 0o600 });
    const manifest = await provision({ boardId: 'esp32-devkitc', outDir: join(dir, 'made'), inventoryPath: inv, count: 6, keyId: 3, suite: 'chacha20-poly1305', commandKey: { keyId: 1, publicKey: KEY_2 }, cohort: 'c1', gateway: 'gw-7' });
    ids = manifest.devices.map((d) => d.deviceId);
    // Device 5 as after a key rotation (fleet rotate): key 3 retired with a bound, key 4 current with its own secret.
    const fleet = loadFleet(inv);
    const d5 = fleet.devices.find((d) => d.deviceId === ids[5])!;
    d5.keys[0] = { ...d5.keys[0]!, status: 'retired', untilCounter: 120 };
    d5.keys.push({ keyId: 4, publicKey: '22'.repeat(32), status: 'current', sinceCounter: 120, untilCounter: null, changedAt: d5.provisionedAt, secret: '7e'.repeat(32) });
    saveFleet(inv, fleet);
    url = await cluster.createDatabase('fleet');
  });
  after(async () => {
    await cluster?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('import, then ls, show, export, set, quarantine, release and revoke against the database', async () => {
    const key = join(dir, 'revocation.key');
    const [empty, imported, again, lsDb, lsFile, exportDb, exportFile, both, notUrl] = await batch([
      ['fleet', 'ls', '--db', url, '--json'],
      ['fleet', 'import', '--from', inv, '--db', url, '--json'],
      ['fleet', 'import', '--from', inv, '--db', url, '--json'],
      ['fleet', 'ls', '--db', url, '--json'],
      ['fleet', 'ls', '--inventory', inv, '--json'],
      ['fleet', 'export', '--format', 'ingest', '--db', url, '--out', join(dir, 'ingest-db.json')],
      ['fleet', 'export', '--format', 'ingest', '--inventory', inv, '--out', join(dir, 'ingest-file.json')],
      ['fleet', 'ls', '--db', url, '--inventory', inv, '--json'],
      ['fleet', 'ls', '--db', 'mysql://x/y'],
    ]);
    assert.match(jsonErrorOf(expectExit(empty!, 1, 'ls before import'), 'ls before import').error.message, /holds no inventory yet/, 'an empty database is refused as a missing file is');
    assert.deepEqual(JSON.parse(expectExit(imported!, 0, 'import').stdout), { ok: true, db: url.replace('holdfast@', ''), devices: 6, rollouts: [] });
    assert.match(jsonErrorOf(expectExit(again!, 1, 'second import'), 'second import').error.message, /already holds an inventory \(6 device/);
    assert.deepEqual(JSON.parse(expectExit(lsDb!, 0, 'ls db').stdout), JSON.parse(expectExit(lsFile!, 0, 'ls file').stdout));
    const store = await PostgresFleetStore.open(url);
    try {
      assert.deepEqual(await store.read(), loadFleet(inv), 'the database holds every field of the file (secrets, rotated keys, history)');
    } finally {
      await store.close();
    }
    expectExit(exportDb!, 0, 'export db');
    expectExit(exportFile!, 0, 'export file');
    assert.equal(readFileSync(join(dir, 'ingest-db.json'), 'utf8'), readFileSync(join(dir, 'ingest-file.json'), 'utf8'), 'the ingest export is the same from either backend');
    assert.ok(readFileSync(join(dir, 'ingest-db.json'), 'utf8').includes('7e'.repeat(32)), "a rotated key's own secret is kept");
    assert.equal(jsonErrorOf(expectExit(both!, 2, '--db and --inventory'), 'both').error.code, 'usage');
    expectExit(notUrl!, 2, 'not a postgres URL');

    const [set, q, rel, rev, show, relRevoked, exportAfter, broker] = await batch([
      ['fleet', 'set', ids[0], '--db', url, '--cohort', 'canary', '--firmware', '66304', '--json'],
      ['fleet', 'quarantine', ids[1], '--db', url, '--reason', 'tamper switch', '--json'],
      ['fleet', 'release', ids[1], '--db', url],
      ['fleet', 'revoke', ids[2], '--db', url, '--sign-with', key, '--list', join(dir, 'revocations.bin'), '--json'],
      ['fleet', 'show', ids[1], '--db', url, '--json'],
      ['fleet', 'release', ids[2], '--db', url, '--json'],
      ['fleet', 'export', '--format', 'ingest', '--db', url, '--out', join(dir, 'ingest-after.json'), '--json'],
      ['fleet', 'broker-config', '--db', url, '--out', join(dir, 'broker'), '--iterations', '1', '--json'],
    ]);
    assert.equal(JSON.parse(expectExit(set, 0, 'set').stdout).device.cohort, 'canary');
    expectExit(q, 0, 'quarantine');
    expectExit(rel, 0, 'release');
    assert.equal(JSON.parse(expectExit(rev, 0, 'revoke').stdout).number, 1);
    const shown = JSON.parse(expectExit(show, 0, 'show').stdout).device;
    assert.equal(shown.state, 'active');
    assert.deepEqual(shown.history.map((e: { event: string }) => e.event), ['provisioned', 'quarantined', 'released']);
    assert.equal(shown.history[1].detail, 'tamper switch');
    assert.equal(shown.secret, undefined, 'no secret shown');
    assert.match(jsonErrorOf(expectExit(relRevoked, 1, 'release revoked'), 'release revoked').error.message, /is revoked/);
    assert.equal(JSON.parse(expectExit(exportAfter, 0, 'export after').stdout).entries, 6, 'the revoked device is left out (5 devices, device 5 with two keys)');
    const exported = JSON.parse(readFileSync(join(dir, 'ingest-after.json'), 'utf8')) as { devices: { deviceId: string }[] };
    assert.ok(!exported.devices.some((d) => d.deviceId === ids[2]));
    const counts = JSON.parse(expectExit(broker, 0, 'broker-config').stdout).counts;
    assert.equal(counts.revoked, 1);
    assert.doesNotMatch(readFileSync(join(dir, 'broker', 'passwords'), 'utf8'), new RegExp(`^${ids[2]}:`, 'm'), 'no broker account for the revoked device');
    // The file is unchanged by what was done to the database.
    assert.equal(loadFleet(inv).devices.find((d) => d.deviceId === ids[2])?.state, 'active');
  });

  it('provision --db registers a production run in the database (a new one, then more), the manifest names it by host, port and name', async () => {
    const db = await cluster.createDatabase('made');
    writeFileSync(join(dir, 'command.pub'), Buffer.from(KEY_2).toString('hex'));
    const run = (out: string, count: number) => holdfast(['provision', '--board', 'esp32-devkitc', '--out', join(dir, out), '--db', db, '--count', String(count), '--command-key', join(dir, 'command.pub'), '--json']);
    const first = JSON.parse(expectExit(await run('run-1', 3), 0, 'first run').stdout) as { inventory: string; devices: { deviceId: string }[] };
    const second = JSON.parse(expectExit(await run('run-2', 2), 0, 'second run').stdout) as { inventory: string; devices: { deviceId: string }[] };
    assert.equal(first.inventory, db.replace('holdfast@', ''), 'the manifest names the database by host, port and name only');
    const listed = JSON.parse(expectExit(await holdfast(['fleet', 'ls', '--db', db, '--json']), 0, 'ls').stdout) as { devices: { deviceId: string }[] };
    assert.deepEqual(listed.devices.map((d) => d.deviceId).sort(), [...first.devices, ...second.devices].map((d) => d.deviceId).sort());
    const both = await holdfast(['provision', '--board', 'esp32-devkitc', '--out', join(dir, 'run-3'), '--db', db, '--inventory', inv, '--command-key', join(dir, 'command.pub'), '--json']);
    assert.match(jsonErrorOf(expectExit(both, 2, '--db with --inventory'), '--db with --inventory').error.message, /--db and --inventory/);
  });

  it('one writer at a time: concurrent read-modify-writes lose no update', async () => {
    const stores = await Promise.all(Array.from({ length: 8 }, () => PostgresFleetStore.open(url)));
    try {
      // Every store appends its own event to the same device and sets a label on its own device, pausing between read and save.
      await Promise.all(
        stores.map((store, i) =>
          store.withLock(async (tx) => {
            const fleet = await tx.load(false);
            const d = fleet.devices.find((x) => x.deviceId === ids[3])!;
            d.history.push({ at: new Date().toISOString(), event: 'changed', detail: `writer ${i}` });
            fleet.devices.find((x) => x.deviceId === ids[i % 6])!.gateway = `gw-w${i}`;
            await new Promise((r) => setTimeout(r, 20));
            await tx.save(fleet);
          }),
        ),
      );
      const after = await stores[0]!.read();
      const details = after.devices.find((x) => x.deviceId === ids[3])!.history.map((e) => e.detail).filter((d) => d?.startsWith('writer '));
      assert.deepEqual([...details].sort(), Array.from({ length: 8 }, (_, i) => `writer ${i}`).sort(), 'every writer\'s event is there');
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
    // Two CLI processes at once on one device: both changes are kept.
    const [s, q] = await Promise.all([holdfast(['fleet', 'set', ids[4], '--db', url, '--gateway', 'gw-both']), holdfast(['fleet', 'quarantine', ids[4], '--db', url])]);
    expectExit(s, 0, 'concurrent set');
    expectExit(q, 0, 'concurrent quarantine');
    const shown = JSON.parse(expectExit((await batch([['fleet', 'show', ids[4], '--db', url, '--json']]))[0]!, 0, 'show').stdout).device;
    assert.equal(shown.gateway, 'gw-both');
    assert.equal(shown.state, 'quarantined');
  });

  it('a newer schema, a damaged row and an edited history are refused with one line; a password is never printed', async () => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const ls = async (): Promise<string> => jsonErrorOf(expectExit((await batch([['fleet', 'ls', '--db', url, '--json']]))[0]!, 1, 'refused'), 'refused').error.message;
    try {
      await client.query(`UPDATE fleet_meta SET value = '2' WHERE key = 'schema'`);
      assert.match(await ls(), /schema is version "2", this holdfast reads 1/);
      await client.query(`UPDATE fleet_meta SET value = '1' WHERE key = 'schema'`);
      await client.query(`UPDATE fleet_device SET state = 'lost' WHERE device_id = $1`, [ids[5]]);
      assert.match(await ls(), /expected active, quarantined or revoked/);
      await client.query(`UPDATE fleet_device SET state = 'active' WHERE device_id = $1`, [ids[5]]);
      await client.query(`DELETE FROM fleet_event WHERE device_id = $1 AND seq = 0`, [ids[3]]);
      assert.match(await ls(), /history has event 1 after 0 others: damaged/);
    } finally {
      await client.end();
    }
    const secretUrl = url.replace('holdfast@', 'holdfast:pw-s3cret-9@').replace(/\/fleet$/, '/nosuchdb');
    const run = (await batch([['fleet', 'ls', '--db', secretUrl, '--json']]))[0]!;
    expectExit(run, 1, 'no such database');
    assert.doesNotMatch(run.stdout + run.stderr, /pw-s3cret-9/);
    assert.match(jsonErrorOf(run, 'no such database').error.message, /cannot connect to the inventory database postgres:\/\/127\.0\.0\.1:\d+\/nosuchdb/);
  });
});
