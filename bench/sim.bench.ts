/**
 * Fleet simulator scale (docs/design/fleet-sim.md): the largest fleet this
 * machine sustains with each engine, and the real-time cost of a simulated
 * device-hour. A fleet of N is sustained when a run of DURATION simulated
 * seconds with the default fault mix (`holdfast sim` defaults: power cuts,
 * lost links, broker restarts, a replaying gateway) keeps every invariant,
 * every window quiesces within its bound, and the simulated windows take no
 * more real time than they simulate (the fleet runs at least as fast as
 * real time). Sizes are tried in increasing order; the first that is not
 * sustained ends the ramp. Start-up (broker accounts, store, XS machines,
 * first boots) is reported apart and not counted.
 *
 * Knobs (for a quick look with small numbers): HOLDFAST_SIM_BENCH_NODE and
 * HOLDFAST_SIM_BENCH_XS (comma-separated fleet sizes),
 * HOLDFAST_SIM_BENCH_DURATION (simulated seconds per run).
 */
import { runFleet } from '../tools/sim/fleet/runner.ts';
import { DEFAULT_SCENARIO, type Engine } from '../tools/sim/fleet/scenario.ts';
import { INVARIANTS, type FleetSummary } from '../tools/sim/fleet/summary.ts';
import { DEFAULT_ROLLOUT_PLAN } from '../tools/sim/fleet/rollout.ts';
import type { BenchGroup, Figure } from './figures.ts';

const TARGET = { node: 500, xs: 100 } as const;

function sizes(env: string | undefined, fallback: readonly number[]): number[] {
  if (env === undefined || env.trim() === '') return [...fallback];
  const list = env.split(',').map((s) => Number(s.trim()));
  if (list.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`fleet sizes must be whole numbers ≥ 1, got ${JSON.stringify(env)}`);
  return list;
}

const SIZES: Record<Engine, number[]> = {
  node: sizes(process.env.HOLDFAST_SIM_BENCH_NODE, [50, 100, 200, 350, 500, 700, 1000, 1400]),
  xs: sizes(process.env.HOLDFAST_SIM_BENCH_XS, [20, 50, 100, 150, 200, 300]),
};
const DURATION = Number(process.env.HOLDFAST_SIM_BENCH_DURATION ?? 300);
/** The revocation runs: a fleet small enough to take seconds, revoked after the first update window. */
const REVOCATION = { devices: 20, durationSec: 120, atSec: 43, seed: 2020 } as const;
/** The rollout run: the default plan (canary, then wider) over the default faults; its image fails on rev-b boards. */
const ROLLOUT = { devices: 20, durationSec: 300, seed: 2 } as const;
/** The stage figure when the rollout never halted (fails the target). */
const NOT_HALTED = 99;
/** The figure when something never refused (fails the target, unlike a sentinel below it). */
const NOT_REFUSED = 9999;

export interface SimRun {
  readonly devices: number;
  readonly sustained: boolean;
  readonly why: string;
  readonly summary: FleetSummary;
}

export interface EngineScale {
  readonly engine: Engine;
  readonly runs: readonly SimRun[];
  /** The largest sustained fleet (0 when none was). */
  readonly largest: number;
  /** Real seconds per simulated device-hour at the largest sustained fleet (or the smallest run). */
  readonly secondsPerDeviceHour: number;
  readonly startSeconds: number;
}

function invariantsBroken(s: FleetSummary): number {
  return INVARIANTS.reduce((n, k) => n + s[k], 0);
}

export async function measureEngine(engine: Engine, progress: (line: string) => void): Promise<EngineScale> {
  const runs: SimRun[] = [];
  for (const devices of SIZES[engine]) {
    progress(`sim ${engine}: ${devices} devices, ${DURATION} simulated s`);
    const { summary } = await runFleet({ ...DEFAULT_SCENARIO, engine, devices, durationSec: DURATION, seed: 1000 + devices });
    const reasons: string[] = [];
    if (!summary.ok) {
      reasons.push(`${invariantsBroken(summary)} invariant violation(s)`);
      // Say which, so a violation at scale can be chased (the run's seed is 1000 + devices).
      for (const failure of summary.failures) progress(`  ${engine} ${devices} devices, seed ${1000 + devices}: ${failure}`);
    }
    const stuck = summary.notes.filter((n) => n.includes('still waited'));
    if (stuck.length > 0) {
      reasons.push(`${stuck.length} window(s) did not quiesce within their bound`);
      // Which windows and devices, and what they waited for (HOLDFAST_SIM_DEBUG=1 prints each device's link state).
      for (const note of stuck.slice(0, 3)) progress(`  ${engine} ${devices} devices, seed ${1000 + devices}: ${note}`);
    }
    if (summary.phases.runSec > DURATION) reasons.push(`${summary.phases.runSec} s of real time for ${DURATION} simulated s`);
    const sustained = reasons.length === 0;
    progress(`  ${sustained ? 'sustained' : 'not sustained'}: run ${summary.phases.runSec} s, start ${summary.phases.startSec} s, drain ${summary.phases.drainSec} s${sustained ? '' : ` (${reasons.join('; ')})`}`);
    runs.push({ devices, sustained, why: reasons.join('; '), summary });
    if (!sustained) break;
  }
  const best = [...runs].reverse().find((r) => r.sustained) ?? runs[0];
  const deviceHours = (best.devices * DURATION) / 3600;
  return {
    engine,
    runs,
    largest: runs.filter((r) => r.sustained).reduce((m, r) => Math.max(m, r.devices), 0),
    secondsPerDeviceHour: Math.round((best.summary.phases.runSec / deviceHours) * 100) / 100,
    startSeconds: best.summary.phases.startSec,
  };
}

export const simBench: BenchGroup = {
  title: 'Fleet simulator: largest fleet sustained, real time per simulated device-hour',
  prefix: 'sim.',
  workload:
    `\`holdfast sim\` with its default fault mix (power cuts ${DEFAULT_SCENARIO.powerCutsPerHour}/device/h, link flaps ${DEFAULT_SCENARIO.linkFlapsPerHour}/device/h, broker restarts ${DEFAULT_SCENARIO.brokerRestartsPerHour}/h, gateway hostility ${DEFAULT_SCENARIO.replays} per PUBLISH), ` +
    `one record per device every ${DEFAULT_SCENARIO.recordEverySec} simulated s, ${DURATION} simulated s per run, mosquitto when installed (else aedes), the ingest with its PGlite store, all on the 2-core machine. ` +
    `Fleet sizes tried in order (Node ${SIZES.node.join(', ')}; XS ${SIZES.xs.join(', ')}); a size is sustained when every invariant holds, every window quiesces, and the simulated time takes no more real time than it simulates. ` +
    'Cost = real seconds of the simulated windows (start-up excluded) per simulated device-hour, at the largest sustained size. ' +
    `Revocation: ${REVOCATION.devices} Node devices, ${REVOCATION.durationSec} simulated s, the default faults; device 1 revoked at ${REVOCATION.atSec} s in one run, the command key in another (holdfast sim --revoke). ` +
    `Rollout: ${ROLLOUT.devices} Node devices, ${ROLLOUT.durationSec} simulated s, the default faults, seed ${ROLLOUT.seed}, \`--rollout default\` (plan ${DEFAULT_ROLLOUT_PLAN.id}: stages ${DEFAULT_ROLLOUT_PLAN.stages.map((st) => `${st.name} ${st.percent} %`).join(', ')}, halt at ${DEFAULT_ROLLOUT_PLAN.halt.failureRatePercent} % failures, on halt ${DEFAULT_ROLLOUT_PLAN.onHalt}); the image fails its self-test on rev-b boards.`,
  async run(progress) {
    const figures: Figure[] = [];
    let broken = 0;
    for (const engine of ['node', 'xs'] as const) {
      const scale = await measureEngine(engine, progress);
      broken += scale.runs.reduce((n, r) => n + invariantsBroken(r.summary), 0);
      const name = engine === 'xs' ? 'XS' : 'Node';
      figures.push(
        { name: `sim.${engine}.largestFleet`, value: scale.largest, unit: 'devices', label: `largest fleet sustained in real time, firmware in ${name}`, kind: 'timing', target: `≥ ${TARGET[engine]}`, limit: TARGET[engine], direction: 'min' },
        { name: `sim.${engine}.secondsPerDeviceHour`, value: scale.secondsPerDeviceHour, unit: 's', label: `real seconds per simulated device-hour (${name}, at the largest sustained fleet)`, kind: 'timing' },
        { name: `sim.${engine}.startSeconds`, value: scale.startSeconds, unit: 's', label: `start-up of that fleet (${name}): broker accounts, store, devices, first boots`, kind: 'timing' },
      );
    }
    // Revocation (issue 20): an operator revokes at a simulated second; how soon the ingest and the devices refuse.
    for (const target of ['device', 'command-key'] as const) {
      progress(`sim revocation: ${target}, ${REVOCATION.devices} Node devices, ${REVOCATION.durationSec} simulated s`);
      const plan = target === 'device' ? { target, device: 1, atSec: REVOCATION.atSec } : { target, atSec: REVOCATION.atSec };
      const { summary } = await runFleet({ ...DEFAULT_SCENARIO, engine: 'node', devices: REVOCATION.devices, durationSec: REVOCATION.durationSec, seed: REVOCATION.seed, update: { kind: 'none' }, revoke: plan });
      broken += invariantsBroken(summary);
      const r = summary.revocation;
      if (r === undefined) throw new Error('the revocation run has no revocation figures');
      progress(`  ${JSON.stringify(r)}`);
      if (target === 'device') {
        figures.push(
          { name: 'sim.revocation.ingestSeconds', value: r.ingestRefusesAfter ?? NOT_REFUSED, unit: 's', label: "simulated seconds from revoking a device until the ingest refuses its records (its inventory reload)", kind: 'timing', target: '≤ 1', limit: 1, direction: 'max' },
          { name: 'sim.revocation.revokedAccepted', value: r.revokedAccepted, unit: 'records', label: 'records of the revoked identity accepted after the ingest refused it', kind: 'count', target: '0', limit: 0, direction: 'max' },
        );
      } else {
        const allRefuse = r.refusing === r.onlineDevices && r.offlineRefusing === r.offlineDevices;
        figures.push(
          { name: 'sim.revocation.devicesSeconds', value: allRefuse ? (r.devicesRefusingAfter.max ?? 0) : NOT_REFUSED, unit: 's', label: `simulated seconds until every online device refuses a revoked command key (max over ${r.onlineDevices}; ${NOT_REFUSED}: one never did)`, kind: 'timing', target: '≤ 1', limit: 1, direction: 'max' },
          { name: 'sim.revocation.devicesRealMs', value: r.devicesRefusingAfterRealMs.max ?? -1, unit: 'ms', label: 'the same in real ms from publishing the list (broker, gateway, verify, flash write)', kind: 'timing' },
        );
      }
    }
    // Staged rollout (issue 20): the bad image fails on the canary's rev-b board; the rollout must halt there by itself.
    progress(`sim rollout: ${ROLLOUT.devices} Node devices, ${ROLLOUT.durationSec} simulated s, plan ${DEFAULT_ROLLOUT_PLAN.id}`);
    const rolled = await runFleet({ ...DEFAULT_SCENARIO, engine: 'node', devices: ROLLOUT.devices, durationSec: ROLLOUT.durationSec, seed: ROLLOUT.seed, update: { kind: 'sim', rollout: DEFAULT_ROLLOUT_PLAN.target } }, { rollout: DEFAULT_ROLLOUT_PLAN });
    broken += invariantsBroken(rolled.summary);
    const ro = rolled.summary.rollout;
    if (ro === undefined) throw new Error('the rollout run has no rollout figures');
    progress(`  ${ro.state} at ${ro.stage ?? '-'}: ${ro.haltReason ?? ''}; offered ${ro.offered}, committed ${ro.committed}, rolled back ${ro.rolledBack} (${ro.rolledBackByCommand} by command)`);
    figures.push(
      { name: 'sim.rollout.haltedAtStage', value: ro.halted ? ro.stageIndex : NOT_HALTED, unit: 'stage', label: `stage index the rollout halted at by itself (0: the canary, ${DEFAULT_ROLLOUT_PLAN.stages[0]!.percent} %; ${NOT_HALTED}: never halted)`, kind: 'count', target: '0 (the canary)', limit: 0, direction: 'max' },
      { name: 'sim.rollout.offeredAfterCanary', value: ro.offeredAfterCanary, unit: 'devices', label: `devices offered the bad image after the canary stage (of ${ROLLOUT.devices})`, kind: 'count', target: '0', limit: 0, direction: 'max' },
      { name: 'sim.rollout.rollBacksUnproven', value: ro.rollBackDevices - ro.rolledBackByCommand, unit: 'devices', label: 'devices told to roll back after the halt whose signed rollback never arrived', kind: 'count', target: '0', limit: 0, direction: 'max' },
    );
    figures.push({ name: 'sim.invariantsBroken', value: broken, unit: 'violations', label: 'lost, regressed, replayed, forged, bricked, audit breaks over every run', kind: 'count', target: '0', limit: 0, direction: 'max' });
    return figures;
  },
};
