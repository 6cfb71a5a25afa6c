/**
 * Killing `holdfast rollout step --db postgres://…` changes nothing
 * (docs/spec/rollout.md, "Where a rollout is kept"; tools/rollout/store-postgres.ts):
 * a child is SIGKILLed at a chosen point of its commit transaction (before
 * the trail INSERT, before the state UPDATE, before COMMIT, or just after
 * COMMIT was sent, before its answer: k drawn from a printed seed) or
 * after a random delay. After each kill the rollout reloads, its trail
 * verifies, and it is either the state before the step or the one after
 * it; the step run again then leaves state and trail byte for byte as a
 * run that was never killed. A file inventory with a started rollout moves
 * into PostgreSQL with `fleet import` and reads back the same.
 *
 * Without PostgreSQL the tests skip; with CI set they fail.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { createRequire } from 'node:module';
import { batch, expectExit, jsonErrorOf, start } from '../cli/cli-harness.ts';
import { PostgresFleetStore } from '../../tools/fleet/store-postgres.ts';
import { covered } from '../../tools/rollout/cohort.ts';
import { requireComponents, skipUnless } from '../../tools/net/common.ts';
import { findPostgres, startPostgres, type PostgresCluster } from '../../tools/net/postgres.ts';
import { committed, deviceId, healthRecord, killPicker, makeWorld, type World } from './rollout-world.ts';
import { examplePlan } from './rollout-fixtures.ts';

/** SIGKILLs the process at the HOLDFAST_KILL_AT-th point of the step's commit (counted from its trail INSERT). */
const INJECTOR = `
const pg = require(process.env.HOLDFAST_PG_MODULE);
const killAt = Number(process.env.HOLDFAST_KILL_AT || '0');
let armed = false;
let calls = 0;
const real = pg.Client.prototype.query;
pg.Client.prototype.query = function (text, ...rest) {
  const sql = typeof text === 'string' ? text : String(text && text.text);
  if (sql.startsWith('INSERT INTO rollout_trail')) armed = true;
  if (armed && ++calls === killAt) process.kill(process.pid, 'SIGKILL');
  const result = real.call(this, text, ...rest);
  // Point 4: COMMIT sent, its answer not yet read.
  if (armed && killAt === 4 && sql === 'COMMIT') setImmediate(() => process.kill(process.pid, 'SIGKILL'));
  return result;
};
`;

const ID = 'fw-1.4.0';
/** The injector runs from a temp folder: it loads the repository's node-postgres by path (the module the CLI loads). */
const PG_MODULE = createRequire(import.meta.url).resolve('pg');
/** Points of a commit: before INSERT trail, before UPDATE state, before COMMIT, after COMMIT sent. */
const POINTS = 4;

const needs = [findPostgres()];

describe('rollout step against PostgreSQL killed at any point', { skip: skipUnless(needs) }, () => {
  const { seed, next } = killPicker();
  let cluster: PostgresCluster;
  let world: World;
  let injector: string;
  let db: string;
  let refDb: string;
  let ref900: { state: string; trail: string };
  let ref200Lines: number;

  const snapshot = async (url: string): Promise<{ state: string; trail: string }> => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const state = (await client.query<{ state: string }>('SELECT state FROM rollout WHERE id = $1', [ID])).rows[0]!.state;
      const lines = (await client.query<{ line: string }>('SELECT line FROM rollout_trail WHERE id = $1 ORDER BY seq', [ID])).rows.map((r) => `${r.line}\n`);
      return { state, trail: lines.join('') };
    } finally {
      await client.end();
    }
  };
  const step = (url: string, at: string): string[] => ['rollout', 'step', '--db', url, '--id', ID, '--ingest-db', world.db, '--at', at];

  before(async () => {
    requireComponents(needs);
    cluster = await startPostgres({ fsync: false });
    const plan = examplePlan({ halt: { failureRatePercent: 60, minExecuted: 2 }, stages: [{ name: 'canary', percent: 3, minReports: 2, soakSeconds: 300 }, { name: 'all', percent: 100, minReports: 10, soakSeconds: 0 }] });
    const devices = Array.from({ length: 100 }, (_, i) => deviceId(i));
    const records = covered(plan.id, devices, 3).flatMap((d) => [committed(d, 1, 100), healthRecord(d, 2, 700)]);
    world = await makeWorld(100, plan, records);
    injector = join(world.dir, 'inject.cjs');
    writeFileSync(injector, INJECTOR);
    db = await cluster.createDatabase('world');
    refDb = await cluster.createDatabase('reference');
    const runs = await batch([
      ['fleet', 'import', '--from', world.inventory, '--db', db],
      ['fleet', 'import', '--from', world.inventory, '--db', refDb],
      ['rollout', 'start', '--db', db, '--plan', world.plan, '--manifest', world.manifest, '--at', '0'],
      ['rollout', 'start', '--db', refDb, '--plan', world.plan, '--manifest', world.manifest, '--at', '0'],
      step(refDb, '200'),
      step(refDb, '900'),
    ]);
    runs.forEach((r, i) => expectExit(r, 0, `setup ${i}`));
    ref900 = await snapshot(refDb);
    ref200Lines = 3;
  });

  after(async () => {
    await cluster?.stop();
    if (world !== undefined) rmSync(world.dir, { recursive: true, force: true });
  });

  /** After a kill: the rollout loads (state, plan, manifest, chain), and it is the one before the step or the one after it. */
  const checkAfterKill = async (before: { state: string; trail: string }, what: string, after?: { state: string; trail: string }): Promise<void> => {
    const store = await PostgresFleetStore.open(db);
    try {
      await store.rollouts.load(ID); // throws on a damaged state or a broken trail
    } finally {
      await store.close();
    }
    const now = await snapshot(db);
    if (now.state === before.state) assert.equal(now.trail, before.trail, `${what}: the trail the state committed`);
    else if (after !== undefined) {
      assert.equal(now.state, after.state, `${what}: the state is the one before the step or the one after it`);
      assert.equal(now.trail, after.trail, `${what}: the trail the state committed`);
    } else {
      assert.equal(JSON.parse(now.state).clock, 200, `${what}: the state is the one before the step or the one after it`);
      assert.equal(now.trail, ref900.trail.split('\n').slice(0, ref200Lines).join('\n') + '\n', `${what}: the trail the state committed`);
    }
    assert.ok(now.trail.startsWith(before.trail), `${what}: the committed trail was only appended to`);
  };

  it(`a kill at a point of the commit transaction (seed ${seed})`, async () => {
    const before = await snapshot(db);
    const k = next(POINTS);
    const run = await start(step(db, '200'), { nodeArgs: ['--require', injector], env: { ...process.env, HOLDFAST_KILL_AT: String(k), HOLDFAST_PG_MODULE: PG_MODULE } }).done;
    assert.ok(run.signal === 'SIGKILL' || run.status === 0, `killed at point ${k} (seed ${seed}): ${run.status} ${run.signal} ${run.stderr}`);
    if (k < 4) assert.equal(run.signal, 'SIGKILL', `point ${k} is reached by a step with decisions`);
    await checkAfterKill(before, `point ${k} (seed ${seed})`);
  });

  it(`a kill after a random delay, then at another point (seed ${seed})`, async () => {
    expectExit((await batch([step(db, '200')]))[0]!, 0, 'step 200 again');
    const before = await snapshot(db);
    const delay = next(2500);
    const child = start(step(db, '900'));
    const timer = setTimeout(() => child.child.kill('SIGKILL'), delay);
    const run = await child.done;
    clearTimeout(timer);
    assert.ok(run.signal === 'SIGKILL' || run.status === 0, `killed after ${delay} ms (seed ${seed}): ${run.status} ${run.stderr}`);
    await checkAfterKill(before, `${delay} ms (seed ${seed})`, ref900);
    const before2 = await snapshot(db);
    const k = next(POINTS);
    const second = await start(step(db, '900'), { nodeArgs: ['--require', injector], env: { ...process.env, HOLDFAST_KILL_AT: String(k), HOLDFAST_PG_MODULE: PG_MODULE } }).done;
    assert.ok(second.signal === 'SIGKILL' || second.status === 0, `killed at point ${k} (seed ${seed}): ${second.status} ${second.signal} ${second.stderr}`);
    await checkAfterKill(before2, `point ${k} (seed ${seed})`, ref900);
  });

  it('run again, the steps leave state and trail byte for byte as a run never killed; the trail verifies', async () => {
    const [again, verify] = await batch([step(db, '900'), ['rollout', 'trail', '--verify', '--db', db, '--id', ID, '--json']]);
    expectExit(again!, 0, 'step 900 again');
    const got = await snapshot(db);
    assert.equal(got.trail, ref900.trail);
    assert.equal(got.state, ref900.state);
    const kinds = ref900.trail.trim().split('\n').map((l) => (JSON.parse(l) as { kind: string }).kind);
    assert.deepEqual(kinds, ['started', 'offered', 'stage-reported', 'stage-ended', 'offered'], 'both steps had decisions to commit');
    const verified = JSON.parse(expectExit(verify!, 0, 'trail --verify').stdout);
    assert.equal(verified.verified, true);
    assert.equal(verified.entries, 5);
  });

  it('the trail is append-only, and an edited state is refused with one line', async () => {
    const client = new pg.Client({ connectionString: db });
    await client.connect();
    try {
      await assert.rejects(client.query(`UPDATE rollout_trail SET line = line WHERE id = $1`, [ID]), /append-only/);
      await assert.rejects(client.query(`DELETE FROM rollout_trail WHERE id = $1`, [ID]), /append-only/);
      await client.query(`UPDATE rollout SET state = replace(state, '"clock":900', '"clock":901') WHERE id = $1`, [ID]);
    } finally {
      await client.end();
    }
    const run = (await batch([['rollout', 'status', '--db', db, '--id', ID, '--json']]))[0]!;
    assert.match(jsonErrorOf(expectExit(run, 1, 'edited state'), 'edited state').error.message, /does not match its sha256/);
  });

  it('fleet import moves a file inventory with a started rollout; status and trail read back the same', async () => {
    const fileWorld = await makeWorld(20);
    try {
      const url = await cluster.createDatabase('imported');
      const [started, imported, fromFile, fromDb, verify] = await batch([
        ['rollout', 'start', '--inventory', fileWorld.inventory, '--plan', fileWorld.plan, '--manifest', fileWorld.manifest, '--at', '0'],
        ['fleet', 'import', '--from', fileWorld.inventory, '--db', url, '--json'],
        ['rollout', 'status', '--inventory', fileWorld.inventory, '--id', ID, '--json'],
        ['rollout', 'status', '--db', url, '--id', ID, '--json'],
        ['rollout', 'trail', '--verify', '--db', url, '--id', ID, '--json'],
      ]);
      expectExit(started!, 0, 'start on the file');
      assert.deepEqual(JSON.parse(expectExit(imported!, 0, 'import').stdout).rollouts, [ID]);
      assert.deepEqual(JSON.parse(expectExit(fromDb!, 0, 'status db').stdout), JSON.parse(expectExit(fromFile!, 0, 'status file').stdout));
      assert.equal(JSON.parse(expectExit(verify!, 0, 'verify').stdout).verified, true);
    } finally {
      rmSync(fileWorld.dir, { recursive: true, force: true });
    }
  });
});
