/**
 * `holdfast sim --rollout` (tools/sim/fleet/rollout.ts, docs/spec/rollout.md):
 * 20 devices in Node, seed 2, no faults, the default plan (canary 10 %,
 * 50 %, 100 %; halt at 20 % failures of at least 2 outcomes; onHalt
 * roll-back). The image fails its self-test on rev-b boards (behind gw-3);
 * with seed 2 the canary holds one rev-a and one rev-b device. The rollout
 * must halt at the canary; nobody outside it is offered the image (or gets
 * a manifest); the rev-b device rolls back by itself (self-test); the rev-a
 * device that committed is told to roll back by a signed command and does
 * (its own signed update-rolled-back, reason commanded); every device runs
 * version 1 at the end; the invariants stay 0. And the CLI's refusals of a
 * bad plan.
 *
 * A failure prints the scenario: `holdfast sim --engine node --devices 20
 * --duration 150 --seed 2 --power-cuts 0 --link-flaps 0 --broker-restarts 0
 * --replays 0 --clock-skew 0 --rollout default` replays it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runFleet } from '../../tools/sim/fleet/runner.ts';
import { DEFAULT_SCENARIO, type Scenario } from '../../tools/sim/fleet/scenario.ts';
import { INVARIANTS } from '../../tools/sim/fleet/summary.ts';
import { DEFAULT_ROLLOUT_PLAN, REV_B_GATEWAY, simLabels } from '../../tools/sim/fleet/rollout.ts';
import { fleetDeviceId } from '../../tools/sim/fleet/fleet-device.ts';
import { assertOneLineError, batch, expectExit, jsonErrorOf } from '../cli/cli-harness.ts';

const REPLAY = 'holdfast sim --engine node --devices 20 --duration 150 --seed 2 --power-cuts 0 --link-flaps 0 --broker-restarts 0 --replays 0 --clock-skew 0 --rollout default';

describe('holdfast sim --rollout: a bad image halts the rollout at the canary', { concurrency: false }, () => {
  it('halts at the canary, offers nobody else, the rev-b device rolls back by itself, the committed rev-a device is told to and does; invariants 0', async (t) => {
    const plan = DEFAULT_ROLLOUT_PLAN;
    const s: Scenario = { ...DEFAULT_SCENARIO, engine: 'node', devices: 20, durationSec: 150, seed: 2, powerCutsPerHour: 0, linkFlapsPerHour: 0, brokerRestartsPerHour: 0, replays: 0, clockSkewPerHour: 0, update: { kind: 'sim', rollout: plan.target } };
    const { summary } = await runFleet(s, { rollout: plan });
    const r = summary.rollout;
    assert.ok(r !== undefined, 'the summary has the rollout');
    t.diagnostic(JSON.stringify({ state: r.state, stage: r.stage, offered: r.offered, committed: r.committed, failed: r.failed, rolledBack: r.rolledBack, byCommand: r.rolledBackByCommand, commands: r.rollBackCommandsSent, haltReason: r.haltReason }));
    const context = `${REPLAY}: ${JSON.stringify({ ...r, decisions: r.decisions.map((d) => `${d.at} ${d.kind} ${d.stage} ${d.devices.join(' ')}`) })}`;
    for (const name of INVARIANTS) assert.equal(summary[name], 0, `${name} must be 0: ${summary.failures.slice(0, 5).join('; ')}`);
    assert.equal(summary.ok, true, context);

    // Halted at the canary, on the failure rate, by the devices' signed word.
    assert.equal(r.state, 'halted', context);
    assert.equal(r.stage, 'canary', context);
    assert.equal(r.stageIndex, 0, context);
    assert.match(r.haltReason ?? '', /^failure rate 50 % ≥ 20 % \(1 failed of 2/, context);
    assert.equal(r.trailBreak, -1, 'the trail chains');
    assert.deepEqual(r.signals, { badTags: 0, undecodable: 0, unknownDevice: 0 });

    // Only the canary was offered: ceil(20 × 10 %) = 2 devices, none after the halt or in a later stage.
    assert.equal(r.offered, 2, context);
    assert.equal(r.offeredAfterCanary, 0, context);
    const offeredDecisions = r.decisions.filter((d) => d.kind === 'offered');
    assert.equal(offeredDecisions.length, 1, context);
    const canary = new Set(offeredDecisions[0].devices);
    const haltIndex = r.decisions.findIndex((d) => d.kind === 'halted');
    assert.ok(haltIndex > r.decisions.indexOf(offeredDecisions[0]), 'offered before the halt, never after');
    // The responder served manifests to the canary only (each device's update events name only canary devices).
    const labels = Array.from({ length: s.devices }, (_, i) => simLabels(s.seed, i));
    const hexOf = (i: number): string => Buffer.from(fleetDeviceId(i, s.seed, 0)).toString('hex');
    for (const o of summary.updates.outcomes) assert.ok(canary.has(hexOf(o.device)), `an update event of device ${o.device}, outside the canary`);
    assert.ok(summary.updates.manifestsSent >= 2 && summary.updates.manifestsSent <= 2 * 3, `manifests only for the two canary devices (pushes and resends): ${summary.updates.manifestsSent}`);

    // The rev-b canary rolled back by itself (self-test); the rev-a canary committed, was told to roll back, and did.
    const revB = r.byRevision['rev-b'];
    const revA = r.byRevision['rev-a'];
    assert.equal(`${revB.offered}:${revB.committed}:${revB.failed}`, '1:0:1', context);
    assert.ok(Object.keys(revB.causes).every((c) => c.startsWith('rolled-back:self-test')), `rev-b: ${JSON.stringify(revB.causes)}`);
    assert.equal(`${revA.offered}:${revA.committed}:${revA.failed}`, '1:0:1', context);
    assert.deepEqual(revA.causes, { 'rolled-back:commanded': 1 }, context);
    assert.equal(r.committed, 1, 'one signed commit');
    assert.equal(r.rolledBack, 2, 'both rolled back, by their signed word');
    assert.equal(r.rolledBackByCommand, 1, context);
    assert.equal(r.rollBackDevices, 1, context);
    assert.ok(r.rollBackCommandsSent >= 1, context);
    assert.ok((r.rollBackAnswers.accepted ?? 0) >= 1, `the device answered a roll-back command accepted (signed reply): ${context}`);
    const rollBack = r.decisions.find((d) => d.kind === 'roll-back');
    assert.ok(rollBack !== undefined && rollBack.devices.length === 1 && canary.has(rollBack.devices[0]), context);
    // By gateway: the failures by self-test are behind gw-3 only.
    for (const [gw, row] of Object.entries(r.byGateway)) {
      const selfTest = Object.entries(row.causes).filter(([c]) => c.startsWith('rolled-back:self-test')).reduce((n, [, v]) => n + v, 0);
      if (gw !== REV_B_GATEWAY) assert.equal(selfTest, 0, `${gw}: ${JSON.stringify(row)}`);
    }
    // Every device runs version 1 at the end (the committed one went back).
    const versions: Record<string, number> = {};
    for (const row of Object.values(r.byGateway)) for (const [v, n] of Object.entries(row.versions)) versions[v] = (versions[v] ?? 0) + n;
    assert.deepEqual(versions, { 1: 20 }, context);
    // The sim's own books agree: one commit, a self-test rollback and a commanded one.
    assert.equal(summary.committed, 1, context);
    assert.equal(summary.updates.rollbackCauses['commanded roll-back'], 1, JSON.stringify(summary.updates.rollbackCauses));
    assert.equal(labels.filter((l) => l.revision === 'rev-b').every((l) => l.gateway === REV_B_GATEWAY), true);
  });

  it('the CLI refuses a plan it cannot use, in one line, exit 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'holdfast-sim-rollout-'));
    try {
      const bad = join(dir, 'plan.json');
      writeFileSync(bad, JSON.stringify({ ...DEFAULT_ROLLOUT_PLAN, stages: [] }));
      const cases: [string[], RegExp][] = [
        [['--rollout', bad], /--rollout.*stages: expected at least one stage/],
        [['--rollout', join(dir, 'missing.json')], /cannot read the rollout plan .*ENOENT/],
        [['--rollout', 'default', '--no-update'], /--rollout offers the sim's own image/],
        [['--rollout', 'default', '--bad-update', 'hang'], /--rollout offers the sim's own image/],
      ];
      writeFileSync(join(dir, 'old.json'), JSON.stringify({ ...DEFAULT_ROLLOUT_PLAN, target: { imageVersion: 1, securityVersion: 1 } }));
      cases.push([['--rollout', join(dir, 'old.json')], /target.imageVersion 1 is no upgrade/]);
      const runs = await batch([...cases.map(([args]) => ['sim', '--engine', 'node', '--devices', '2', ...args]), ...cases.map(([args]) => ['sim', '--engine', 'node', '--devices', '2', ...args, '--json'])]);
      cases.forEach(([args, message], i) => {
        const what = args.join(' ');
        expectExit(runs[i], 2, what);
        assert.match(assertOneLineError(runs[i], 'sim', what), message, what);
        expectExit(runs[cases.length + i], 2, `${what} --json`);
        const error = jsonErrorOf(runs[cases.length + i], `${what} --json`).error;
        assert.equal(`${error.code} ${error.field}`, 'usage --rollout', what);
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
