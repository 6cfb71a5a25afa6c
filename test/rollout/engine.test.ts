/**
 * The rollout engine (tools/rollout/engine.ts, docs/spec/rollout.md): who
 * is offered at each stage, that only a device's own signed commit counts
 * as updated, the halt rule, timeouts and silence, the trail's hash chain,
 * and that a rollout restored from its snapshot at any point decides
 * exactly as one that never stopped.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { firstTrailBreak, Rollout, RolloutStateError, type Decision, type RolloutSignal } from '../../tools/rollout/engine.ts';
import { stageCount, type FleetMember } from '../../tools/rollout/cohort.ts';
import type { RolloutPlan } from '../../tools/rollout/plan.ts';
import { exampleFleet, examplePlan, TARGET } from './rollout-fixtures.ts';

type Behaviour = 'good' | 'bad' | 'silent' | 'slow';

interface Run {
  readonly rollout: Rollout;
  readonly trail: Decision[];
  readonly offeredAt: Map<string, number>;
}

/**
 * Drive a rollout minute by minute: a device offered the image reports 120 s
 * later as its behaviour says (good: committed; bad: rolled back; slow: only
 * seen; silent: nothing). `restoreAt`: snapshot and restore at that minute.
 */
function drive(plan: RolloutPlan, fleet: FleetMember[], behaviour: (device: string) => Behaviour, minutes: number, restoreAt?: number): Run {
  const started = Rollout.start(plan, fleet, 0);
  let rollout = started.rollout;
  const trail = [...started.decisions];
  const offeredAt = new Map<string, number>();
  const note = (ds: Decision[]) => {
    for (const d of ds) if (d.kind === 'offered') for (const dev of d.devices) offeredAt.set(dev, d.at);
  };
  note(trail);
  for (let minute = 1; minute <= minutes; minute++) {
    const now = minute * 60;
    if (minute === restoreAt) rollout = Rollout.restore(plan, JSON.parse(JSON.stringify(rollout.snapshot())));
    for (const [device, at] of offeredAt) {
      if (now - at !== 120) continue;
      const b = behaviour(device);
      const signal: RolloutSignal | undefined =
        b === 'good' ? { kind: 'committed', device, at: now, imageVersion: TARGET } : b === 'bad' ? { kind: 'rolled-back', device, at: now, imageVersion: TARGET, reason: 'health-check-failed' } : b === 'slow' ? { kind: 'seen', device, at: now } : undefined;
      if (signal) rollout.observe(signal);
    }
    // Devices that committed keep reporting.
    for (const device of offeredAt.keys()) if (rollout.outcomeOf(device)?.outcome === 'committed') rollout.observe({ kind: 'seen', device, at: now });
    const ds = rollout.step(fleet, now);
    note(ds);
    trail.push(...ds);
  }
  return { rollout, trail, offeredAt };
}

describe('rollout engine: stages', () => {
  it('stage 0 offers ceil(1 % of N) devices, the same ones every time', () => {
    const fleet = exampleFleet(300);
    const a = Rollout.start(examplePlan(), fleet, 0);
    const b = Rollout.start(examplePlan(), [...fleet].reverse(), 0);
    assert.equal(a.rollout.offered().length, stageCount(300, 1));
    assert.equal(a.rollout.offered().length, 3);
    assert.deepEqual(a.rollout.offered().sort(), b.rollout.offered().sort());
    const other = Rollout.start(examplePlan({ id: 'fw-1.4.0-b' }), fleet, 0);
    assert.notDeepEqual(other.rollout.offered().sort(), a.rollout.offered().sort(), 'another rollout id ranks devices differently');
  });

  it('a good image goes through every stage to every device and completes', () => {
    const run = drive(examplePlan(), exampleFleet(200), () => 'good', 120);
    assert.equal(run.rollout.status, 'completed');
    assert.deepEqual(run.rollout.counts(), { offered: 200, pending: 0, committed: 200, failed: 0, causes: {} });
    assert.deepEqual(
      run.trail.filter((d) => d.kind === 'stage-ended').map((d) => d.stage),
      [0, 1, 2, 3],
    );
    assert.equal(firstTrailBreak(run.trail), -1);
  });

  it('a stage waits for its reports and then its soak before the next offers', () => {
    const run = drive(examplePlan(), exampleFleet(200), () => 'good', 30);
    const reported = run.trail.find((d) => d.kind === 'stage-reported' && d.stage === 0)!;
    const ended = run.trail.find((d) => d.kind === 'stage-ended' && d.stage === 0)!;
    const nextOffer = run.trail.find((d) => d.kind === 'offered' && d.stage === 1)!;
    assert.equal(reported.at, 120, 'the canary devices reported 120 s after the offer');
    assert.equal(ended.at - reported.at, 600, 'then the soak');
    assert.equal(nextOffer.at, ended.at);
  });

  it('devices quarantined, revoked, outside the selection or already on the target are never offered', () => {
    const fleet = exampleFleet(40).map((m, i) => (i % 5 === 0 ? { ...m, standing: 'quarantined' as const } : i % 5 === 1 ? { ...m, standing: 'revoked' as const } : i % 5 === 2 ? { ...m, imageVersion: TARGET } : m));
    const run = drive(examplePlan({ select: { cohorts: ['line-a'] } }), fleet, () => 'good', 120);
    const offered = run.rollout.offered().map((d) => Number.parseInt(d, 16));
    assert.ok(offered.length > 0);
    for (const i of offered) {
      assert.ok(i % 5 >= 3, `device ${i} should not have been offered`);
      assert.equal(i % 2, 0, `device ${i} is not in line-a`);
    }
    assert.equal(run.rollout.status, 'completed');
  });
});

describe('rollout engine: what counts as updated', () => {
  it('only a signed commit of the target version counts; an offer, a record seen or a commit of another version do not', () => {
    const fleet = exampleFleet(100);
    const { rollout } = Rollout.start(examplePlan(), fleet, 0);
    const [device] = rollout.offered();
    rollout.observe({ kind: 'seen', device: device!, at: 10 });
    rollout.observe({ kind: 'committed', device: device!, at: 20, imageVersion: TARGET + 1 });
    assert.equal(rollout.outcomeOf(device!)?.outcome, 'pending');
    rollout.observe({ kind: 'committed', device: device!, at: 30, imageVersion: TARGET });
    assert.equal(rollout.outcomeOf(device!)?.outcome, 'committed');
    rollout.observe({ kind: 'committed', device: '00000000deadbeef', at: 30, imageVersion: TARGET });
    assert.equal(rollout.outcomeOf('00000000deadbeef'), undefined, 'a device never offered is not counted');
  });

  it('no commit in time is a timeout; nothing at all is silence; silence after a commit is a failure too', () => {
    const plan = examplePlan({ timeouts: { inProgressSeconds: 600, silentSeconds: 900 }, halt: { failureRatePercent: 100, minExecuted: 1000 } });
    const fleet = exampleFleet(300);
    const { rollout } = Rollout.start(plan, fleet, 0);
    const [slow, silent, good] = rollout.offered();
    rollout.observe({ kind: 'seen', device: slow!, at: 100 });
    rollout.observe({ kind: 'committed', device: good!, at: 100, imageVersion: TARGET });
    rollout.step(fleet, 600);
    assert.deepEqual(rollout.outcomeOf(slow!), { outcome: 'failed', cause: 'timeout', stage: 0 });
    assert.deepEqual(rollout.outcomeOf(silent!), { outcome: 'failed', cause: 'timeout', stage: 0 });
    rollout.step(fleet, 1000);
    assert.deepEqual(rollout.outcomeOf(good!), { outcome: 'failed', cause: 'silent-after-commit', stage: 0 });
    rollout.observe({ kind: 'committed', device: slow!, at: 1100, imageVersion: TARGET });
    assert.equal(rollout.outcomeOf(slow!)?.outcome, 'committed', 'a late signed commit is proof, and beats the timeout');
  });
});

describe('rollout engine: halting by itself', () => {
  it('a bad image that fails on a fraction halts at the canary stage, and nobody else is offered it', () => {
    const fleet = exampleFleet(1000);
    const run = drive(examplePlan(), fleet, (d) => (Number.parseInt(d, 16) % 3 === 0 ? 'bad' : 'good'), 240);
    assert.equal(run.rollout.status, 'halted');
    const halted = run.trail.find((d) => d.kind === 'halted')!;
    assert.equal(halted.stage, 0, 'halted in the canary stage');
    assert.ok(run.trail.every((d) => d.kind !== 'offered' || d.at <= halted.at), 'no offer after the halt');
    assert.ok(Number(halted.signals['cause.rolled-back:health-check-failed']) >= 1, 'the halt names its cause');
    assert.ok(run.rollout.offered().length <= stageCount(1000, 1));
    const grown = exampleFleet(3000);
    assert.deepEqual(run.rollout.step(grown, 240 * 60 + 60).filter((d) => d.kind === 'offered'), [], 'devices that join after the halt are not offered either');
  });

  it('roll-back on halt tells the devices that committed to go back', () => {
    const fleet = exampleFleet(1000);
    const run = drive(examplePlan({ onHalt: 'roll-back' }), fleet, (d) => (Number.parseInt(d, 16) % 3 === 0 ? 'bad' : 'good'), 60);
    const back = run.trail.find((d) => d.kind === 'roll-back');
    assert.ok(back, 'a roll-back decision');
    for (const device of back.devices) assert.equal(run.rollout.outcomeOf(device)?.outcome, 'committed');
  });

  it('property: whatever the failures, there is no offer after a halt, and a halt always had its threshold crossed', () => {
    fc.assert(
      fc.property(fc.integer({ min: 20, max: 400 }), fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 0, max: 2 ** 31 }), fc.constantFrom(5, 20, 50), (n, failShare, salt, rate) => {
        const plan = examplePlan({ halt: { failureRatePercent: rate, minExecuted: 3 } });
        const behaviour = (d: string): Behaviour => (((Number.parseInt(d, 16) * 2654435761 + salt) >>> 0) / 2 ** 32 < failShare ? 'bad' : 'good');
        const run = drive(plan, exampleFleet(n), behaviour, 90);
        const halt = run.trail.find((d) => d.kind === 'halted');
        if (halt) {
          assert.ok(run.trail.every((d) => d.kind !== 'offered' || d.at <= halt.at));
          assert.ok(Number(halt.signals.failed) * 100 >= rate * Number(halt.signals.executed));
          assert.ok(Number(halt.signals.executed) >= 3);
        }
        if (failShare === 0) assert.equal(halt, undefined);
        assert.equal(firstTrailBreak(run.trail), -1);
      }),
      { numRuns: 40 },
    );
  });
});

describe('rollout engine: state and trail', () => {
  it('property: restored from its snapshot at any minute, a rollout decides exactly as one that never stopped', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 0, max: 9 }), (restoreAt, badEvery) => {
        const behaviour = (d: string): Behaviour => (badEvery > 0 && Number.parseInt(d, 16) % (badEvery + 7) === 0 ? 'bad' : Number.parseInt(d, 16) % 11 === 0 ? 'silent' : 'good');
        const plain = drive(examplePlan(), exampleFleet(150), behaviour, 60);
        const restored = drive(examplePlan(), exampleFleet(150), behaviour, 60, restoreAt);
        assert.deepEqual(restored.trail, plain.trail);
        assert.deepEqual(restored.rollout.snapshot(), plain.rollout.snapshot());
      }),
      { numRuns: 25 },
    );
  });

  it('a state of another plan, another format or a damaged one is refused', () => {
    const { rollout } = Rollout.start(examplePlan(), exampleFleet(50), 0);
    const snap = rollout.snapshot();
    assert.throws(() => Rollout.restore(examplePlan({ onHalt: 'roll-back' }), snap), RolloutStateError);
    assert.throws(() => Rollout.restore(examplePlan(), { ...snap, format: 2 }), RolloutStateError);
    assert.throws(() => Rollout.restore(examplePlan(), { ...snap, status: 'paused' }), RolloutStateError);
    assert.throws(() => Rollout.restore(examplePlan(), { ...snap, stage: 9 }), /stage 9 is not in the plan/);
  });

  it('the trail is a hash chain: an edited, removed or reordered decision is found', () => {
    const run = drive(examplePlan(), exampleFleet(200), () => 'good', 60);
    const trail = run.trail;
    assert.ok(trail.length >= 5);
    assert.equal(firstTrailBreak(trail), -1);
    const edited = trail.map((d, i) => (i === 2 ? { ...d, devices: [...d.devices, 'ffffffffffffffff'] } : d));
    assert.equal(firstTrailBreak(edited), 2);
    assert.equal(firstTrailBreak([...trail.slice(0, 1), ...trail.slice(2)]), 1);
    assert.equal(firstTrailBreak([trail[1]!, trail[0]!, ...trail.slice(2)]), 0);
  });

  it('a manual halt offers nobody else, names the committed devices under roll-back, and is not repeated', () => {
    const fleet = exampleFleet(300);
    const { rollout } = Rollout.start(examplePlan({ onHalt: 'roll-back' }), fleet, 0);
    const [first] = rollout.offered();
    rollout.observe({ kind: 'committed', device: first!, at: 10, imageVersion: TARGET });
    const decisions = rollout.halt(20, 'operator saw field failures');
    assert.deepEqual(decisions.map((d) => d.kind), ['halted', 'roll-back']);
    assert.equal(decisions[0]!.signals.reason, 'operator saw field failures');
    assert.equal(decisions[0]!.signals.manual, 1);
    assert.deepEqual(decisions[1]!.devices, [first]);
    assert.equal(rollout.status, 'halted');
    assert.deepEqual(rollout.halt(30, 'again'), []);
    assert.deepEqual(rollout.step(fleet, 10_000).filter((d) => d.kind === 'offered'), [], 'nothing is offered after a halt');
  });
});
