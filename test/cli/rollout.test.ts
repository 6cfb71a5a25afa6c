/**
 * `holdfast rollout` contract (docs/cli.md, docs/spec/rollout.md): start
 * checks the plan against the signed manifest; step reads the ingest's
 * records and halts on a canary's signed rollback (a forged entry counted,
 * not believed); status by outcome, cause, cohort and gateway; halt by
 * hand; trail --verify; every failure one line (and one JSON object under
 * --json) with the documented exit code.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assertOneLineError, batch, expectExit, jsonErrorOf, type Run } from './cli-harness.ts';
import { covered } from '../../tools/rollout/cohort.ts';
import { auditRecord, committed, deviceId, healthRecord, makeWorld, rolledBack, TARGET, type World } from '../rollout/rollout-world.ts';
import { examplePlan } from '../rollout/rollout-fixtures.ts';

const ID = 'fw-1.4.0';

describe('holdfast rollout', () => {
  let world: World;
  let runs: Run[];
  let canary: string[];
  let jobs: Record<string, number>;

  before(async () => {
    const plan = examplePlan({ halt: { failureRatePercent: 20, minExecuted: 2 } });
    canary = covered(plan.id, Array.from({ length: 200 }, (_, i) => deviceId(i)), 1);
    assert.equal(canary.length, 2);
    const [bad, good] = canary as [string, string];
    const forged = auditRecord(good, 3, { kind: 'update-rolled-back', imageVersion: TARGET, reason: 'forged' }, 120, new Uint8Array(32).fill(1));
    world = await makeWorld(200, plan, [healthRecord(bad, 1, 50), rolledBack(bad, 2, 100, 'self-test'), committed(good, 1, 100), healthRecord(good, 2, 110), forged, committed(good, 4, 5000)]);
    const w = world;
    writeFileSync(join(w.dir, 'plan-b.json'), JSON.stringify(examplePlan({ id: 'fw-1.4.0-b', onHalt: 'roll-back' })));
    writeFileSync(join(w.dir, 'plan-other.json'), JSON.stringify(examplePlan({ id: 'other', target: { imageVersion: TARGET + 1, securityVersion: 3 } })));
    writeFileSync(join(w.dir, 'plan-bad.json'), JSON.stringify({ ...examplePlan(), stages: [] }));
    const inv = ['--inventory', w.inventory];
    const list: [string, string[]][] = [
      ['start', ['rollout', 'start', ...inv, '--plan', w.plan, '--manifest', w.manifest, '--at', '0', '--json']],
      ['start again', ['rollout', 'start', ...inv, '--plan', w.plan, '--manifest', w.manifest, '--at', '0', '--json']],
      ['start other target', ['rollout', 'start', ...inv, '--plan', join(w.dir, 'plan-other.json'), '--manifest', w.manifest, '--json']],
      ['start not a manifest', ['rollout', 'start', ...inv, '--plan', join(w.dir, 'plan-b.json'), '--manifest', w.plan]],
      ['start bad plan', ['rollout', 'start', ...inv, '--plan', join(w.dir, 'plan-bad.json'), '--manifest', w.manifest, '--json']],
      ['step', ['rollout', 'step', ...inv, '--id', ID, '--ingest-db', w.db, '--at', '200', '--json']],
      ['step back in time', ['rollout', 'step', ...inv, '--id', ID, '--ingest-db', w.db, '--at', '100']],
      ['step not a db', ['rollout', 'step', ...inv, '--id', ID, '--ingest-db', w.dir, '--at', '300', '--json']],
      ['status', ['rollout', 'status', ...inv, '--id', ID, '--json']],
      ['status text', ['rollout', 'status', ...inv, '--id', ID]],
      ['trail verify', ['rollout', 'trail', ...inv, '--id', ID, '--verify', '--json']],
      ['trail text', ['rollout', 'trail', ...inv, '--id', ID]],
      ['halt halted', ['rollout', 'halt', ...inv, '--id', ID, '--reason', 'again', '--json']],
      ['start b', ['rollout', 'start', ...inv, '--plan', join(w.dir, 'plan-b.json'), '--manifest', w.manifest, '--at', '0']],
      ['halt b', ['rollout', 'halt', ...inv, '--id', 'fw-1.4.0-b', '--reason', 'field reports of a bad sensor driver', '--at', '50', '--json']],
      ['status unknown', ['rollout', 'status', ...inv, '--id', 'nope', '--json']],
      ['step no id', ['rollout', 'step', ...inv, '--ingest-db', w.db]],
      ['step bad at', ['rollout', 'step', ...inv, '--id', ID, '--ingest-db', w.db, '--at', 'soon', '--json']],
      ['halt no reason', ['rollout', 'halt', ...inv, '--id', ID]],
    ];
    jobs = Object.fromEntries(list.map(([name], i) => [name, i]));
    runs = await batch(list.map(([, args]) => args));
  });

  after(() => rmSync(world.dir, { recursive: true, force: true }));

  const run = (name: string): Run => runs[jobs[name]!]!;

  it('start offers the canary and keeps the rollout beside the inventory', () => {
    const out = JSON.parse(expectExit(run('start'), 0, 'start').stdout);
    assert.equal(out.ok, true);
    assert.equal(out.offered, 2);
    assert.deepEqual(out.decisions.map((d: { kind: string }) => d.kind), ['started', 'offered']);
    assert.deepEqual([...out.decisions[1].devices].sort(), [...canary].sort());
    assert.equal(out.dir, `${world.inventory}.rollouts/${ID}`);
  });

  it('start refuses an existing id, a manifest of another version, a file that is not a manifest, an invalid plan', () => {
    assert.equal(jsonErrorOf(expectExit(run('start again'), 1, 'again'), 'again').error.code, 'exists');
    const other = jsonErrorOf(expectExit(run('start other target'), 1, 'other'), 'other');
    assert.match(other.error.message, /manifest is image 66560 .* target image 66561/);
    assert.match(assertOneLineError(expectExit(run('start not a manifest'), 1, 'not a manifest'), 'rollout start', 'not a manifest'), /not a signed image manifest/);
    const bad = jsonErrorOf(expectExit(run('start bad plan'), 1, 'bad plan'), 'bad plan');
    assert.match(bad.error.message, /stages: expected at least one stage/);
    for (const name of ['start again', 'start other target', 'start bad plan']) assertOneLineError(run(name), 'rollout start', name);
  });

  it("step: the canary's signed rollback halts the rollout; a forged entry is counted, not believed; later records wait for their time", () => {
    const out = JSON.parse(expectExit(run('step'), 0, 'step').stdout);
    assert.equal(out.status, 'halted');
    assert.equal(out.records, 5, 'the record at 5000 s arrives after --at 200');
    assert.equal(out.badTags, 1);
    const halted = out.decisions.find((d: { kind: string }) => d.kind === 'halted');
    assert.equal(halted.signals['cause.rolled-back:self-test'], 1);
    assert.equal(halted.signals.committed, 1);
    assert.deepEqual(out.counts, { offered: 2, pending: 0, committed: 1, failed: 1, causes: { 'rolled-back:self-test': 1 } });
  });

  it('step refuses time going back and a folder that is not an ingest database', () => {
    assert.match(assertOneLineError(expectExit(run('step back in time'), 1, 'back'), 'rollout step', 'back'), /before the rollout's clock 200/);
    const notDb = jsonErrorOf(expectExit(run('step not a db'), 1, 'not a db'), 'not a db');
    assert.equal(notDb.error.field, '--ingest-db');
  });

  it('status: outcome, cause, cohort and gateway', () => {
    const out = JSON.parse(expectExit(run('status'), 0, 'status').stdout);
    assert.equal(out.status, 'halted');
    assert.equal(out.stageName, 'canary');
    assert.equal(out.badTags, 1);
    const sum = (t: Record<string, { offered: number; failed: number }>) => Object.values(t).reduce((n, r) => n + r.offered, 0);
    assert.equal(sum(out.byCohort), 2);
    assert.equal(sum(out.byGateway), 2);
    assert.equal(Object.values(out.byGateway as Record<string, { failed: number }>).reduce((n, r) => n + r.failed, 0), 1);
    const text = expectExit(run('status text'), 0, 'status text').stdout;
    assert.match(text, /halted/);
    assert.match(text, /failed rolled-back:self-test: 1/);
    assert.match(text, /by gateway:/);
  });

  it('trail --verify, and the trail printed with its signals', () => {
    const out = JSON.parse(expectExit(run('trail verify'), 0, 'verify').stdout);
    assert.equal(out.verified, true);
    assert.equal(out.entries, 3);
    assert.match(expectExit(run('trail text'), 0, 'trail').stdout, /#3 at 200 halted stage canary devices 1 .*thresholdPercent=20/);
  });

  it('halt: a running rollout by hand (with roll-back policy); a halted one is refused', () => {
    assert.match(jsonErrorOf(expectExit(run('halt halted'), 1, 'halt halted'), 'halt halted').error.message, /is halted: expected a running rollout/);
    expectExit(run('start b'), 0, 'start b');
    const out = JSON.parse(expectExit(run('halt b'), 0, 'halt b').stdout);
    assert.equal(out.status, 'halted');
    assert.equal(out.decisions[0].kind, 'halted');
    assert.equal(out.decisions[0].signals.reason, 'field reports of a bad sensor driver');
    assert.equal(out.decisions[0].signals.manual, 1);
  });

  it('usage errors exit 2; unknown rollout exit 1; all one line', () => {
    assert.equal(jsonErrorOf(expectExit(run('status unknown'), 1, 'unknown'), 'unknown').error.code, 'not-found');
    assertOneLineError(expectExit(run('step no id'), 2, 'no id'), 'rollout step', 'no id');
    assert.equal(jsonErrorOf(expectExit(run('step bad at'), 2, 'bad at'), 'bad at').error.code, 'usage');
    assertOneLineError(expectExit(run('halt no reason'), 2, 'no reason'), 'rollout halt', 'no reason');
  });

  it('step refuses an ingest database a running ingest holds (PGlite is single-process)', async () => {
    writeFileSync(join(world.db, 'lock'), `${process.pid}\n`);
    try {
      const [held] = await batch([['rollout', 'step', '--inventory', world.inventory, '--id', ID, '--ingest-db', world.db, '--at', '300']]);
      assert.match(assertOneLineError(expectExit(held!, 1, 'held'), 'rollout step', 'held'), new RegExp(`in use by process ${process.pid}`));
    } finally {
      rmSync(join(world.db, 'lock'), { force: true });
    }
  });

  it('an edited trail is refused by every reader', async () => {
    const trail = join(`${world.inventory}.rollouts`, ID, 'trail.jsonl');
    writeFileSync(trail, readFileSync(trail, 'utf8').replace('"at":200', '"at":199'));
    const [verify] = await batch([['rollout', 'trail', '--inventory', world.inventory, '--id', ID, '--verify']]);
    assert.match(assertOneLineError(expectExit(verify!, 1, 'edited'), 'rollout trail', 'edited'), /entry 3 does not chain/);
  });
});
