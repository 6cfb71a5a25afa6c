/**
 * The boot-control model (docs/models/boot-control.md) as the shared runner
 * (model-check.ts) takes it: which model runs with which bounds and what
 * each check must report, the simulations whose traces are stored in
 * docs/models/traces/boot-control/, and how a trace is read, scored and
 * replayed against the TypeScript (boot-control-replay.ts).
 */
import type { BootEvent } from './boot-control-trace.ts';
import { parseBootTrace } from './boot-control-trace.ts';
import { replayBootTrace, type ReplayReport } from './boot-control-replay.ts';
import type { ModelCheck, ModelDescription, SimulationConfig } from './model-check.ts';

export const MODEL = 'docs/models/boot-control.pml';
export const BUG_DIR = 'docs/models/boot-control-bugs';

export type BootAssertion = '!(boot_unverified)' | '!(no_good_image)' | '!(hang_committed)' | '!(floor_early)';

/** A check whose expected violation is one of the model's assertions (or, for ltl, an acceptance cycle). */
type BootCheck = ModelCheck & { readonly violates?: BootAssertion | 'acceptance cycle' };

export const CHECKS: readonly BootCheck[] = [
  { name: 'correct', kind: 'safety', model: MODEL, shows: 'no unverified boot, always a good image, no hanging image committed, no early floor' },
  { name: 'correct-ltl', kind: 'ltl', model: MODEL, shows: '[]<> goodRunning: with the cuts bounded, the device always gets back to running a good image' },
  { name: 'floor-early', kind: 'safety', model: `${BUG_DIR}/floor-early.pml`, violates: '!(floor_early)', shows: 'the floor raised before VALID is durable' },
  { name: 'live-copy', kind: 'safety', model: `${BUG_DIR}/live-copy.pml`, violates: '!(hang_committed)', shows: 'NEW written over the active copy: a cut or an abort leaves no way back and a hanging image becomes VALID' },
  { name: 'live-copy-ltl', kind: 'ltl', model: `${BUG_DIR}/live-copy.pml`, violates: 'acceptance cycle', shows: 'NEW written over the active copy: the hanging image boots forever with no trial (R11)' },
  { name: 'early-select', kind: 'safety', model: `${BUG_DIR}/early-select.pml`, violates: '!(boot_unverified)', shows: 'NEW written before the image is complete and verified: a forged image gets booted' },
];

/** Random simulations of the correct model (spin -n<seed>). */
export const SIMULATIONS: readonly SimulationConfig[] = [
  { name: 'sim-c3-u3', defines: { SIM: 4 }, steps: 3000, keep: 3, scan: 60 },
  { name: 'sim-c6-u4', defines: { MAXCUTS: 6, MAXUPDATES: 4, SIM: 6 }, steps: 3000, keep: 3, scan: 60 },
];

/** Coverage of a run: cuts (torn ones count more), hangs, commits, refusals, rows seen. */
export function coverageScore(events: readonly BootEvent[]): number {
  let cuts = 0, torn = 0, hangs = 0, commits = 0, refusals = 0, selects = 0, midWriteCuts = 0;
  const rows = new Set<number>();
  for (const [i, e] of events.entries()) {
    if (e.kind === 'cut') {
      cuts++;
      if (events[i - 1]?.kind === 'erase') midWriteCuts++;
    } else if (e.kind === 'torn') torn++;
    else if (e.kind === 'hang') hangs++;
    else if (e.kind === 'commit') commits++;
    else if (e.kind === 'refuse') refusals++;
    else if (e.kind === 'select') selects++;
    else if (e.kind === 'boot') rows.add(e.row);
  }
  const cap = (n: number, max: number) => Math.min(n, max);
  return cap(cuts, 4) + 3 * cap(torn, 2) + 3 * cap(midWriteCuts, 2) + 2 * cap(hangs, 2) + 2 * cap(commits, 2) + 2 * cap(refusals, 1) + cap(selects, 3) + 2 * rows.size;
}


export const bootControl: ModelDescription<BootEvent, ReplayReport> = {
  name: 'boot-control',
  model: MODEL,
  traceDir: 'docs/models/traces/boot-control',
  checks: CHECKS,
  simulations: SIMULATIONS,
  parseTrace: parseBootTrace,
  coverageScore,
  replay: replayBootTrace,
  summarize: (r) => `events ${r.events} boots ${r.boots} writes ${r.otadataWrites} cuts ${r.cuts} torn ${r.torn} real calls ${r.realCalls}`,
  refusal: (r) => (r.divergence ? `refused at event ${r.divergence.at + 1}: ${r.divergence.kind}` : undefined),
  conformance: 'boots, writes and raises as the model does',
};
