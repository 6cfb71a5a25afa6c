/**
 * The boot-control model checks and stored traces (docs/models/boot-control.md):
 * which model runs with which bounds, what each must report, and how the
 * traces in docs/models/traces/boot-control/ are made.
 *
 * Safety checks and the LTL checks both run through tools/models/spin.ts
 * `verify` (with `ltl`: compiled without -DSAFETY, run with `pan -a`).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineFlags, findSpin, simulate, verify, type Defines, type VerifyResult } from './spin.ts';
import { formatTrace, parseBootTrace, type BootEvent, type BootTrace } from './boot-control-trace.ts';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const MODEL = 'docs/models/boot-control.pml';
export const BUG_DIR = 'docs/models/boot-control-bugs';
export const TRACE_DIR = 'docs/models/traces/boot-control';
const REGENERATE = 'node --import tsx tools/models/boot-control-check.ts --write-traces';

export type BootAssertion = '!(boot_unverified)' | '!(no_good_image)' | '!(hang_committed)' | '!(floor_early)';

export interface BootCheck {
  readonly name: string;
  readonly model: string;
  readonly defines?: Defines;
  readonly shows: string;
  /** safety: assertions and invalid end states (-DSAFETY); ltl: `[]<> goodRunning` (pan -a). */
  readonly kind: 'safety' | 'ltl';
  /** undefined: no error; an assertion text; or 'acceptance cycle' (ltl). */
  readonly violates?: BootAssertion | 'acceptance cycle';
}

export const CHECKS: readonly BootCheck[] = [
  { name: 'correct', kind: 'safety', model: MODEL, shows: 'no unverified boot, always a good image, no hanging image committed, no early floor' },
  { name: 'correct-ltl', kind: 'ltl', model: MODEL, shows: '[]<> goodRunning: with the cuts bounded, the device always gets back to running a good image' },
  { name: 'floor-early', kind: 'safety', model: `${BUG_DIR}/floor-early.pml`, violates: '!(floor_early)', shows: 'the floor raised before VALID is durable' },
  { name: 'live-copy', kind: 'safety', model: `${BUG_DIR}/live-copy.pml`, violates: '!(hang_committed)', shows: 'NEW written over the active copy: a cut or an abort leaves no way back and a hanging image becomes VALID' },
  { name: 'live-copy-ltl', kind: 'ltl', model: `${BUG_DIR}/live-copy.pml`, violates: 'acceptance cycle', shows: 'NEW written over the active copy: the hanging image boots forever with no trial (R11)' },
  { name: 'early-select', kind: 'safety', model: `${BUG_DIR}/early-select.pml`, violates: '!(boot_unverified)', shows: 'NEW written before the image is complete and verified: a forged image gets booted' },
];

export type CheckResult = VerifyResult;

export function runCheck(check: BootCheck): CheckResult {
  if (check.kind === 'ltl') return verifyLtl(join(REPO_ROOT, check.model), check.defines ?? {});
  return verify({ model: join(REPO_ROOT, check.model), defines: check.defines, shortest: check.violates !== undefined });
}

/** The model's `ltl live` block (compiled in with LTL=1), checked for acceptance cycles. */
export function verifyLtl(model: string, defines: Defines): CheckResult {
  return verify({ model, defines: { ...defines, LTL: 1 }, ltl: 'live' });
}

export function judgeCheck(check: BootCheck, result: CheckResult): string | undefined {
  if (check.violates === undefined) {
    return result.errors === 0 ? undefined : `expected no error, pan reported ${result.errors} (${result.assertions.join(', ') || (result.acceptanceCycle ? 'acceptance cycle' : 'no assertion text')})`;
  }
  if (result.errors === 0) return `expected ${check.violates}, pan found no error`;
  if (check.violates === 'acceptance cycle') {
    if (!result.acceptanceCycle || result.assertions.length > 0) return `expected an acceptance cycle, pan reported ${result.assertions.join(', ') || 'something else'}`;
    return undefined;
  }
  const other = result.assertions.filter((a) => a !== check.violates);
  if (!result.assertions.includes(check.violates) || other.length > 0) return `expected "assertion violated ${check.violates}", pan reported ${result.assertions.map((a) => `"${a}"`).join(', ') || 'no assertion text'}`;
  if (!result.trail || result.trail.length === 0) return 'pan reported the violation but spin -t printed no EVENT line';
  return undefined;
}

/** Counterexamples stored as traces: the safety ones (a trail of the LTL cycle is not a replayable run). */
export function storesTrace(check: BootCheck): boolean {
  return check.kind === 'safety' && check.violates !== undefined;
}

export function counterexampleTrace(check: BootCheck, result: CheckResult): { file: string; text: string } {
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

export interface SimulationConfig {
  readonly name: string;
  readonly defines: Defines;
  readonly steps: number;
  readonly keep: number;
  readonly scan: number;
}

/** Random simulations of the correct model (spin -n<seed>). */
export const SIMULATIONS: readonly SimulationConfig[] = [
  { name: 'sim-c3-u3', defines: { SIM: 4 }, steps: 3000, keep: 3, scan: 60 },
  { name: 'sim-c6-u4', defines: { MAXCUTS: 6, MAXUPDATES: 4, SIM: 6 }, steps: 3000, keep: 3, scan: 60 },
];

export function simulationTrace(config: SimulationConfig, seed: number): { file: string; text: string; trace: BootTrace } {
  const { events, command } = simulate({ model: join(REPO_ROOT, MODEL), defines: config.defines, seed, steps: config.steps });
  const meta = {
    trace: `random simulation of the correct model, ${config.name}, seed ${seed}`,
    kind: 'simulation',
    model: MODEL,
    defines: defineFlags(config.defines).join(' ') || '(none)',
    seed: String(seed),
    steps: String(config.steps),
    made: `${command.replace(REPO_ROOT, '')} (spin ${spinVersionTag()})`,
    regenerate: REGENERATE,
  };
  const text = formatTrace(meta, events);
  return { file: `${config.name}-seed${seed}.trace`, text, trace: parseBootTrace(text) };
}

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

export function pickSeeds(config: SimulationConfig): number[] {
  const scored: { seed: number; score: number }[] = [];
  for (let seed = 1; seed <= config.scan; seed++) scored.push({ seed, score: coverageScore(simulationTrace(config, seed).trace.events) });
  scored.sort((a, b) => b.score - a.score || a.seed - b.seed);
  return scored.slice(0, config.keep).map((s) => s.seed);
}

export interface StoredBootTrace {
  readonly path: string;
  readonly text: string;
  readonly trace: BootTrace;
}

export function storedTraces(): StoredBootTrace[] {
  const dir = join(REPO_ROOT, TRACE_DIR);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => name.endsWith('.trace'))
    .sort()
    .map((name) => {
      const text = readFileSync(join(dir, name), 'utf8');
      return { path: relative(REPO_ROOT, join(dir, name)), text, trace: parseBootTrace(text) };
    });
}

export function rerunSimulation(stored: StoredBootTrace): string[] {
  const meta = stored.trace.meta;
  if (meta.kind !== 'simulation') throw new Error(`${stored.path} is not a simulation trace`);
  const defines: Record<string, number> = {};
  for (const flag of (meta.defines ?? '').split(/\s+/).filter((f) => f && f !== '(none)')) {
    const match = /^-D(\w+)=(\d+)$/.exec(flag);
    if (!match) throw new Error(`${stored.path}: bad define ${flag}`);
    defines[match[1]] = Number(match[2]);
  }
  return simulate({ model: join(REPO_ROOT, meta.model), defines, seed: Number(meta.seed), steps: Number(meta.steps) }).events;
}

function spinVersionTag(): string {
  const found = findSpin();
  return found.ok ? (/\d+\.\d+\.\d+/.exec(found.install.version)?.[0] ?? found.install.version) : 'unknown';
}
