/**
 * The replay-window model (docs/models/replay-window.md) as the shared
 * runner (model-check.ts) takes it: which model runs with which bounds and
 * what each check must report, the simulations whose traces are stored in
 * docs/models/traces/replay-window/, and how a trace is read, scored and
 * replayed against the TypeScript window (replay-window-replay.ts).
 */
import { parseTrace, type ModelEvent } from './replay-window-trace.ts';
import { replayWindowTrace, type ReplayReport } from './replay-window-replay.ts';
import type { ModelCheck, ModelDescription, SimulationConfig } from './model-check.ts';

export const MODEL = 'docs/models/replay-window.pml';
export const BUG_DIR = 'docs/models/replay-window-bugs';

/** A safety check whose expected violation is one of the model's assertions. */
type WindowCheck = ModelCheck & { readonly kind?: 'safety'; readonly violates?: '!(accepted_twice)' | '!(fresh_rejected)' };

/** Every check, in the order the docs list them. Each runs in about a second. */
export const CHECKS: readonly WindowCheck[] = [
  { name: 'correct', model: MODEL, shows: 'the ceiling rule: no counter accepted twice across restarts, every fresh genuine counter above the floor accepted' },
  { name: 'correct-in-order', model: MODEL, defines: { ADVERSARY: 0 }, shows: 'the same on a channel without drops or reorders (redelivery after a crash, replays)' },
  { name: 'lazy-persist', model: `${BUG_DIR}/lazy-persist.pml`, violates: '!(accepted_twice)', shows: 'a ceiling made durable after the accept: a crash between the two reopens the counter' },
  { name: 'message-counted', model: `${BUG_DIR}/message-counted.pml`, violates: '!(accepted_twice)', shows: '"refuse <= persisted + K" with skipping counters and the full adversary' },
  {
    name: 'message-counted-no-skip-in-order',
    model: `${BUG_DIR}/message-counted.pml`,
    defines: { MAXSKIP: 1, ADVERSARY: 0 },
    shows: 'the message-counted rule passes when counters never skip and nothing is dropped: a model without skips cannot tell',
  },
  {
    name: 'message-counted-skip-in-order',
    model: `${BUG_DIR}/message-counted.pml`,
    defines: { MAXSKIP: 2, ADVERSARY: 0 },
    violates: '!(accepted_twice)',
    shows: 'a skip of 2 breaks it even on a channel without drops or reorders',
  },
  {
    name: 'message-counted-drops',
    model: `${BUG_DIR}/message-counted.pml`,
    defines: { MAXSKIP: 1 },
    violates: '!(accepted_twice)',
    shows: 'counters that never skip break it too once the adversary drops: to the receiver a drop is a skip',
  },
  { name: 'move-before-verify', model: `${BUG_DIR}/move-before-verify.pml`, violates: '!(fresh_rejected)', shows: 'a window moved before the tag check lets a forgery refuse genuine counters' },
  { name: 'window-edge', model: `${BUG_DIR}/window-edge.pml`, violates: '!(accepted_twice)', shows: 'an off-by-one at H - W: the counter without a bit is accepted again and again' },
];

/** Random simulations of the correct model, with bounds larger than a search could afford. */
export const SIMULATIONS: readonly SimulationConfig[] = [
  { name: 'sim-n9-w4-r3', defines: { SIM: 6 }, steps: 5000, keep: 2, scan: 60 },
  { name: 'sim-n24-w4-r3', defines: { N: 24, MAXSKIP: 5, MAXRESTARTS: 6, SIM: 8 }, steps: 5000, keep: 2, scan: 60 },
  { name: 'sim-n28-w8-r1', defines: { N: 28, W: 8, R: 1, MAXSKIP: 12, MAXRESTARTS: 6, SIM: 8 }, steps: 5000, keep: 2, scan: 60 },
  { name: 'sim-n20-w1-r2', defines: { N: 20, W: 1, R: 2, MAXRESTARTS: 8, SIM: 6 }, steps: 5000, keep: 2, scan: 60 },
];

/**
 * How much of the window's behaviour a trace exercises: crashes before and
 * after a ceiling was durable, out-of-order accepts, duplicates, stale
 * counters, forgeries, raised floors and ceilings (enough of them to rotate a
 * 4-entry block). Used to pick the stored seeds.
 */
export function coverageScore(events: readonly ModelEvent[]): number {
  let persisting = 0, accepting = 0, outOfOrder = 0, duplicate = 0, stale = 0, forged = 0, persists = 0, raisedFloors = 0;
  let top = 0;
  for (const e of events) {
    if (e.kind === 'restart') {
      if (e.stage === 'persisting') persisting++;
      if (e.stage === 'accepting') accepting++;
      if (e.floor > 0) raisedFloors++;
      top = e.floor;
    } else if (e.kind === 'accept') {
      if (e.c < top) outOfOrder++;
      top = Math.max(top, e.c);
    } else if (e.kind === 'deliver') {
      if (e.check === 'duplicate') duplicate++;
      if (e.check === 'stale') stale++;
    } else if (e.kind === 'reject') forged++;
    else if (e.kind === 'persist') persists++;
  }
  const cap = (n: number, max: number) => Math.min(n, max);
  return 3 * cap(persisting, 2) + 3 * cap(accepting, 2) + 2 * cap(outOfOrder, 3) + cap(duplicate, 3) + cap(stale, 3) + cap(forged, 2) + cap(persists, 8) + cap(raisedFloors, 3);
}

export const replayWindow: ModelDescription<ModelEvent, ReplayReport> = {
  name: 'replay-window',
  model: MODEL,
  traceDir: 'docs/models/traces/replay-window',
  checks: CHECKS,
  simulations: SIMULATIONS,
  parseTrace,
  coverageScore,
  replay: replayWindowTrace,
  summarize: (r) => `events ${r.events} deliveries ${r.deliveries} accepts ${r.accepts} restarts ${r.restarts} cuts ${r.cuts} writes ${r.flashWrites} erases ${r.flashErases}`,
  refusal: (r) => (r.final ? `final ${JSON.stringify(r.final)}` : undefined),
  conformance: 'makes every decision the model makes',
};
