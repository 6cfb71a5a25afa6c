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
import type { BenchGroup, Figure } from './figures.ts';

const TARGET = { node: 500, xs: 100 } as const;

function sizes(env: string | undefined, fallback: readonly number[]): number[] {
  if (env === undefined || env.trim() === '') return [...fallback];
  const list = env.split(',').map((s) => Number(s.trim()));
  if (list.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`fleet sizes must be whole numbers ≥ 1, got ${JSON.stringify(env)}`);
  return list;
}

const SIZES: Record<Engine, number[]> = {
  node: sizes(process.env.HOLDFAST_SIM_BENCH_NODE, [50, 100, 200, 350, 500, 700]),
  xs: sizes(process.env.HOLDFAST_SIM_BENCH_XS, [20, 50, 100, 150]),
};
const DURATION = Number(process.env.HOLDFAST_SIM_BENCH_DURATION ?? 300);

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
    if (summary.notes.some((n) => n.includes('still waited'))) reasons.push('a window did not quiesce within its bound');
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
    'Cost = real seconds of the simulated windows (start-up excluded) per simulated device-hour, at the largest sustained size.',
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
    figures.push({ name: 'sim.invariantsBroken', value: broken, unit: 'violations', label: 'lost, regressed, replayed, forged, bricked, audit breaks over every run', kind: 'count', target: '0', limit: 0, direction: 'max' });
    return figures;
  },
};
