/**
 * The replay-window model checks and stored traces (docs/models/replay-window.md):
 * which model runs with which bounds, what each must report, and how the
 * traces in docs/models/traces/replay-window/ are made.
 *
 * Used by test/models/replay-window-model.test.ts and by the command line
 * tools/models/replay-window-check.ts (which also rewrites the traces).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineFlags, findSpin, simulate, verify, type Defines, type VerifyResult } from './spin.ts';
import { formatTrace, parseTrace, type ModelEvent, type Trace } from './replay-window-trace.ts';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const MODEL = 'docs/models/replay-window.pml';
export const BUG_DIR = 'docs/models/replay-window-bugs';
export const TRACE_DIR = 'docs/models/traces/replay-window';
const REGENERATE = 'node --import tsx tools/models/replay-window-check.ts --write-traces';

export interface ModelCheck {
  /** Short name; for counterexamples also the trace file's stem. */
  readonly name: string;
  /** Model file, relative to the repository root. */
  readonly model: string;
  readonly defines?: Defines;
  /** What the check shows (docs/models/replay-window.md). */
  readonly shows: string;
  /** undefined: spin must find no error; otherwise the assertion pan must report violated. */
  readonly violates?: '!(accepted_twice)' | '!(fresh_rejected)';
}

/** Every check, in the order the docs list them. Each runs in about a second. */
export const CHECKS: readonly ModelCheck[] = [
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

export interface SimulationConfig {
  /** Trace file stem prefix. */
  readonly name: string;
  readonly defines: Defines;
  /** spin -u: at most this many steps. */
  readonly steps: number;
  /** How many traces to keep: the best-covering seeds of 1..scan. */
  readonly keep: number;
  readonly scan: number;
}

/** Random simulations of the correct model, with bounds larger than a search could afford. */
export const SIMULATIONS: readonly SimulationConfig[] = [
  { name: 'sim-n9-w4-r3', defines: { SIM: 6 }, steps: 5000, keep: 2, scan: 60 },
  { name: 'sim-n24-w4-r3', defines: { N: 24, MAXSKIP: 5, MAXRESTARTS: 6, SIM: 8 }, steps: 5000, keep: 2, scan: 60 },
  { name: 'sim-n28-w8-r1', defines: { N: 28, W: 8, R: 1, MAXSKIP: 12, MAXRESTARTS: 6, SIM: 8 }, steps: 5000, keep: 2, scan: 60 },
  { name: 'sim-n20-w1-r2', defines: { N: 20, W: 1, R: 2, MAXRESTARTS: 8, SIM: 6 }, steps: 5000, keep: 2, scan: 60 },
];

/** Run one check: spin -a, gcc, pan (shortest counterexample when a violation is expected). */
export function runCheck(check: ModelCheck): VerifyResult {
  return verify({ model: join(REPO_ROOT, check.model), defines: check.defines, shortest: check.violates !== undefined });
}

/** Does the result match the check's expectation? undefined when it does, else why not. */
export function judgeCheck(check: ModelCheck, result: VerifyResult): string | undefined {
  if (check.violates === undefined) {
    if (result.errors !== 0) return `expected no error, pan reported ${result.errors} (${result.assertions.join(', ') || 'no assertion text'})`;
    return undefined;
  }
  if (result.errors === 0) return `expected "assertion violated ${check.violates}", pan found no error`;
  const other = result.assertions.filter((a) => a !== check.violates);
  if (!result.assertions.includes(check.violates) || other.length > 0) {
    return `expected "assertion violated ${check.violates}", pan reported ${result.assertions.map((a) => `"${a}"`).join(', ') || 'no assertion text'}`;
  }
  if (!result.trail || result.trail.length === 0) return 'pan reported the violation but spin -t printed no EVENT line';
  return undefined;
}

/** The trace file of a counterexample check's trail. */
export function counterexampleTrace(check: ModelCheck, result: VerifyResult): { file: string; text: string } {
  if (!check.violates || !result.trail) throw new Error(`${check.name} has no counterexample`);
  const meta = {
    trace: `counterexample of ${check.name}: ${check.shows}`,
    kind: 'counterexample',
    model: check.model,
    defines: defineFlags(check.defines ?? {}).join(' ') || '(none)',
    violates: check.violates,
    made: `spin -a; gcc -DSAFETY -DREACH; ./pan -m100000 -i (shortest); spin -t -k <trail> (spin ${spinVersionTag()})`,
    regenerate: REGENERATE,
  };
  return { file: `${check.name}.trace`, text: formatTrace(meta, result.trail) };
}

/** A simulation trace's text for one seed. */
export function simulationTrace(config: SimulationConfig, seed: number): { file: string; text: string; trace: Trace } {
  const { events, command } = simulate({ model: join(REPO_ROOT, MODEL), defines: config.defines, seed, steps: config.steps });
  const meta = {
    trace: `random simulation of the correct model, ${config.name}, seed ${seed}`,
    kind: 'simulation',
    model: MODEL,
    defines: defineFlags(config.defines).join(' '),
    seed: String(seed),
    steps: String(config.steps),
    made: `${command.replace(REPO_ROOT, '')} (spin ${spinVersionTag()})`,
    regenerate: REGENERATE,
  };
  const text = formatTrace(meta, events);
  return { file: `${config.name}-seed${seed}.trace`, text, trace: parseTrace(text) };
}

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

/** Run a stored simulation trace's spin command again (from its header); returns its event lines. */
export function rerunSimulation(stored: StoredTrace): string[] {
  const meta = stored.trace.meta;
  if (meta.kind !== 'simulation') throw new Error(`${stored.path} is not a simulation trace`);
  const defines: Record<string, number> = {};
  for (const flag of (meta.defines ?? '').split(/\s+/).filter(Boolean)) {
    const match = /^-D(\w+)=(\d+)$/.exec(flag);
    if (!match) throw new Error(`${stored.path}: bad define ${flag}`);
    defines[match[1]] = Number(match[2]);
  }
  return simulate({ model: join(REPO_ROOT, meta.model), defines, seed: Number(meta.seed), steps: Number(meta.steps) }).events;
}

/** The best-covering seeds of a simulation config (ties: the smaller seed). */
export function pickSeeds(config: SimulationConfig): number[] {
  const scored: { seed: number; score: number }[] = [];
  for (let seed = 1; seed <= config.scan; seed++) scored.push({ seed, score: coverageScore(simulationTrace(config, seed).trace.events) });
  scored.sort((a, b) => b.score - a.score || a.seed - b.seed);
  return scored.slice(0, config.keep).map((s) => s.seed);
}

export interface StoredTrace {
  /** Path relative to the repository root. */
  readonly path: string;
  readonly text: string;
  readonly trace: Trace;
}

/** Every trace file in docs/models/traces/replay-window/, sorted by name. */
export function storedTraces(): StoredTrace[] {
  const dir = join(REPO_ROOT, TRACE_DIR);
  return readdirSync(dir)
    .filter((name) => name.endsWith('.trace'))
    .sort()
    .map((name) => {
      const text = readFileSync(join(dir, name), 'utf8');
      return { path: relative(REPO_ROOT, join(dir, name)), text, trace: parseTrace(text) };
    });
}

/** "6.5.2": the version of the spin making the traces, for their header. */
function spinVersionTag(): string {
  const found = findSpin();
  return found.ok ? (/\d+\.\d+\.\d+/.exec(found.install.version)?.[0] ?? found.install.version) : 'unknown';
}
