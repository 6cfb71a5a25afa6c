/**
 * The fleet simulator (tools/sim/fleet/, `holdfast sim`): short runs with
 * several seeds and fault mixes, in both engines and both brokers, each
 * device running the firmware runtime, assert the invariants from the
 * summary (nothing lost, no counter regression, no replay or forgery
 * accepted, no device bricked, every audit chain intact) and that the
 * faults did strike; an update commits and a bad one rolls back by itself
 * (it hangs: the watchdog; or it fails its self-test); clock skews are
 * audited; the same seed gives the same deterministic figures in XS and in
 * Node; the fault schedule is a function of the seed alone.
 *
 * A failure prints the scenario (seed included): `holdfast sim --seed <n>
 * --engine <e> --devices <n> --duration <s> ...` replays it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runFleet } from '../../tools/sim/fleet/runner.ts';
import { DEFAULT_SCENARIO, type Scenario } from '../../tools/sim/fleet/scenario.ts';
import { FaultScheduler } from '../../tools/sim/fleet/schedule.ts';
import { deterministicFigures, INVARIANTS, type FleetSummary } from '../../tools/sim/fleet/summary.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { SIM_BOARD, simImage } from '../../tools/sim/fleet/fleet-firmware.ts';
import { expectExit, holdfast } from '../cli/cli-harness.ts';

function scenario(over: Partial<Scenario>): Scenario {
  return { ...DEFAULT_SCENARIO, devices: 4, durationSec: 150, ...over };
}

function describeScenario(s: Scenario): string {
  const update = s.update.kind === 'none' ? ' --no-update' : s.update.kind === 'sim' && s.update.bad !== undefined ? ` --bad-update ${s.update.bad}` : '';
  return `holdfast sim --engine ${s.engine} --devices ${s.devices} --duration ${s.durationSec} --seed ${s.seed} --power-cuts ${s.powerCutsPerHour} --link-flaps ${s.linkFlapsPerHour} --broker-restarts ${s.brokerRestartsPerHour} --replays ${s.replays} --clock-skew ${s.clockSkewPerHour}${update} (broker ${s.broker.kind})`;
}

function assertInvariants(summary: FleetSummary, s: Scenario): void {
  const context = `${describeScenario(s)}: ${summary.failures.slice(0, 5).join('; ')}`;
  for (const name of INVARIANTS) assert.equal(summary[name], 0, `${name} must be 0: ${context}`);
  assert.equal(summary.ok, true, context);
  assert.ok(summary.appended > 0, `records were appended: ${context}`);
  // Every durable record was accepted, and the only others are cut appends that landed.
  assert.equal(summary.accepted, summary.appended + summary.cutAppendsLanded, context);
}

/** The rates are per hour: these make every fault strike within a 150-second run. */
const HEAVY = { powerCutsPerHour: 150, linkFlapsPerHour: 150, replays: 0.15 } as const;

describe('holdfast sim: the fleet keeps every promise', { concurrency: false }, () => {
  let nodeRun: FleetSummary | undefined;

  it('Node engine, seed 11, heavy power cuts, lost links and a hostile gateway: invariants hold and every fault struck', async (t) => {
    const s = scenario({ engine: 'node', seed: 11, ...HEAVY, brokerRestartsPerHour: 0 });
    const { summary, timeline } = await runFleet(s);
    t.diagnostic(JSON.stringify(deterministicFigures(summary)));
    assertInvariants(summary, s);
    assert.ok(summary.powerCuts > 0 && summary.linkFlaps > 0, `faults struck: ${describeScenario(s)}`);
    assert.ok(summary.cutAppends > 0, `a power cut tore an append: ${describeScenario(s)}`);
    assert.ok((summary.gateway.replay ?? 0) + (summary.gateway.duplicate ?? 0) > 0, `the gateway replayed: ${describeScenario(s)}`);
    assert.ok(summary.duplicatesDropped + summary.forgeriesRejected > 0, `the ingest refused what the gateway made up: ${describeScenario(s)}`);
    assert.equal(timeline[timeline.length - 1].appended, summary.appended);
    // The default update under heavy faults: the hanging image rolls back by itself (watchdog) where it was tried.
    assert.ok((summary.updates.rollbackCauses['watchdog (image hung)'] ?? 0) > 0, `the hanging image rolled back: ${JSON.stringify(summary.updates.outcomes)}`);
    assert.ok(summary.auditEntries > 0, 'audit chains were verified');
    nodeRun = summary;
  });

  it('Node engine, seed 5, a bad update that fails its self-test, clock skews: it rolls back by itself on every device that tried it, the jumps are audited', async (t) => {
    const s = scenario({ engine: 'node', seed: 5, powerCutsPerHour: 0, linkFlapsPerHour: 0, brokerRestartsPerHour: 0, replays: 0.05, clockSkewPerHour: 120, update: { kind: 'sim', bad: 'fail-checks' } });
    const { summary } = await runFleet(s);
    t.diagnostic(JSON.stringify(deterministicFigures(summary)));
    assertInvariants(summary, s);
    const bad = summary.updates.outcomes.filter((o) => o.imageVersion === 3);
    assert.ok(bad.length > 0, `the bad image was tried: ${JSON.stringify(summary.updates.outcomes)}`);
    for (const o of bad) assert.equal(o.kind, 'rolled-back', `v3 never commits: ${JSON.stringify(o)}`);
    assert.equal(summary.updates.rollbackCauses['health check: self-test'], bad.length);
    assert.equal(summary.committed, s.devices, 'every device committed the good image (no faults to stop it)');
    assert.ok(summary.clockSkews > 0 && summary.clockJumpsAudited > 0, `clock jumps audited: ${summary.clockSkews} skews, ${summary.clockJumpsAudited} audited`);
  });

  it('XS engine, the same scenario: the same deterministic figures as the Node engine', async (t) => {
    const s = scenario({ engine: 'xs', seed: 11, ...HEAVY, brokerRestartsPerHour: 0 });
    const { summary } = await runFleet(s);
    t.diagnostic(JSON.stringify(deterministicFigures(summary)));
    assertInvariants(summary, s);
    assert.ok(nodeRun, 'the Node run came first');
    assert.deepEqual(deterministicFigures(summary), deterministicFigures(nodeRun), `XS and Node agree: ${describeScenario(s)}`);
  });

  it('a given update (an image signed by holdfast sign, the root from --trust): every device installs and commits it', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'holdfast-sim-update-'));
    try {
      const keys = join(dir, 'keys');
      expectExit(await holdfast(['keys', 'init', '--dir', keys]), 0, 'keys init');
      const image = join(dir, 'app.bin');
      writeFileSync(image, simImage(createNobleCrypto(), 7, 1, 'good'));
      expectExit(await holdfast(['sign', image, '--version', '7', '--security-version', '1', '--board', SIM_BOARD, '--dir', keys]), 0, 'sign');
      const s = scenario({ engine: 'node', seed: 13, durationSec: 100, powerCutsPerHour: 0, linkFlapsPerHour: 0, brokerRestartsPerHour: 0, replays: 0, update: { kind: 'given', imagePath: image, manifestPath: `${image}.manifest`, trustDir: keys } });
      const { summary } = await runFleet(s);
      t.diagnostic(JSON.stringify(summary.updates.outcomes));
      assertInvariants(summary, s);
      assert.equal(summary.committed, s.devices, 'every device committed version 7');
      assert.ok(summary.updates.outcomes.every((o) => o.imageVersion === 7 && o.kind === 'committed'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('aedes (MQTT 3.1.1), Node engine, seed 23: broker restarts, lost links and replays; invariants hold', async (t) => {
    const s = scenario({ engine: 'node', seed: 23, broker: { kind: 'aedes' }, powerCutsPerHour: 120, linkFlapsPerHour: 120, brokerRestartsPerHour: 60, replays: 0.1 });
    const { summary } = await runFleet(s);
    t.diagnostic(JSON.stringify(deterministicFigures(summary)));
    assert.equal(summary.broker.kind, 'aedes');
    assert.equal(summary.broker.protocol, 'MQTT 3.1.1');
    assertInvariants(summary, s);
    assert.ok(summary.brokerRestarts > 0, `the broker restarted: ${describeScenario(s)}`);
  });

  it('XS engine, seed 37, power cuts only (the gateway honest): invariants hold', async (t) => {
    const s = scenario({ engine: 'xs', seed: 37, durationSec: 120, powerCutsPerHour: 200, linkFlapsPerHour: 0, brokerRestartsPerHour: 0, replays: 0, clockSkewPerHour: 0, update: { kind: 'none' } });
    const { summary } = await runFleet(s);
    t.diagnostic(JSON.stringify(deterministicFigures(summary)));
    assertInvariants(summary, s);
    assert.ok(summary.powerCuts > 0, `power cuts struck: ${describeScenario(s)}`);
    assert.equal(summary.linkFlaps, 0);
    assert.deepEqual(summary.gateway, {});
    assert.deepEqual([summary.committed, summary.rolledBack], [0, 0], 'no update offered');
  });
});

describe('the fault schedule is a function of the seed', () => {
  const plans = (s: Scenario) => {
    const scheduler = new FaultScheduler(s);
    const out: unknown[] = [];
    while (!scheduler.done) {
      const w = scheduler.next();
      out.push({ ...w, boundary: [...w.boundary] });
    }
    return out;
  };

  it('the same seed gives the same schedule; another seed another', () => {
    const s = scenario({ devices: 30, durationSec: 3600, seed: 5, powerCutsPerHour: 30, linkFlapsPerHour: 30, brokerRestartsPerHour: 10 });
    assert.deepEqual(plans(s), plans(s));
    assert.notDeepEqual(plans(s), plans({ ...s, seed: 6 }));
  });

  it("a device's schedule does not depend on the fleet's size", () => {
    const small = new FaultScheduler(scenario({ devices: 3, durationSec: 3600, seed: 9, powerCutsPerHour: 60, linkFlapsPerHour: 60 }));
    const large = new FaultScheduler(scenario({ devices: 50, durationSec: 3600, seed: 9, powerCutsPerHour: 60, linkFlapsPerHour: 60 }));
    while (!small.done) {
      const a = small.next();
      const b = large.next();
      for (let i = 0; i < 3; i++) {
        assert.deepEqual(a.boundary.get(i), b.boundary.get(i));
        assert.deepEqual(a.appends.filter((x) => x.device === i), b.appends.filter((x) => x.device === i));
      }
    }
  });

  it('at most one append per device per window, and a lost link never queues more than the backlog bound', () => {
    const s = scenario({ devices: 20, durationSec: 7200, seed: 3, powerCutsPerHour: 100, linkFlapsPerHour: 200 });
    const scheduler = new FaultScheduler(s);
    const down = new Map<number, number>();
    let flaps = 0;
    while (!scheduler.done) {
      const w = scheduler.next();
      const per = new Map<number, number>();
      for (const a of w.appends) per.set(a.device, (per.get(a.device) ?? 0) + 1);
      for (const n of per.values()) assert.equal(n, 1);
      for (const [i, actions] of w.boundary) {
        for (const a of actions) {
          if (a.kind === 'link-down') {
            flaps++;
            down.set(i, 0);
          }
          if (a.kind === 'link-up') down.delete(i);
        }
      }
      for (const a of w.appends) if (down.has(a.device)) down.set(a.device, (down.get(a.device) ?? 0) + 1);
      for (const queued of down.values()) assert.ok(queued <= 7, `backlog ${queued}`);
    }
    assert.ok(flaps > 10);
  });
});
