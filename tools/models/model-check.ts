/**
 * What every Promela model under docs/models/ shares: a description of the
 * model (its checks, its simulations, its trace parser and replayer), and
 * the one runner that checks it with spin, judges each result against the
 * check's expectation, makes and stores its traces, and replays them against
 * the TypeScript. The command line (check.ts) and the tests
 * (test/models/model-suite.ts) take a description and nothing else; each
 * model's own file (boot-control-models.ts, replay-window-models.ts) is only
 * its description.
 *
 * Safety checks run with -DSAFETY (assertions, invalid end states); LTL
 * checks compile the model with LTL=1 and check its `ltl live` claim for
 * acceptance cycles (pan -a), both through spin.ts `verify`.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FlashMode } from '../sim/flash/sim-flash.ts';
import { defineFlags, findSpin, simulate, verify, type Defines, type VerifyResult } from './spin.ts';
import { formatTrace, type ReplayMode, type TraceFile } from './trace-file.ts';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The command line of check.ts, as docs and trace headers quote it. */
export const CHECK_COMMAND = 'node --import tsx tools/models/check.ts';

export interface ModelCheck {
  /** Short name; for a stored counterexample also the trace file's stem. */
  readonly name: string;
  /** Model file, relative to the repository root. */
  readonly model: string;
  readonly defines?: Defines;
  /** What the check shows (the model's doc lists them). */
  readonly shows: string;
  /** safety (the default: assertions and invalid end states, -DSAFETY) or ltl (`ltl live` compiled in with LTL=1, pan -a). */
  readonly kind?: 'safety' | 'ltl';
  /** undefined: spin must find no error; an assertion text pan must report violated; or 'acceptance cycle' (ltl). */
  readonly violates?: string;
}

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

/** One model: what to check, how to read and replay its traces, how to report a replay. */
export interface ModelDescription<E = unknown, R = unknown> {
  /** Name on the command line and in test titles, e.g. 'boot-control'. */
  readonly name: string;
  /** The correct model, relative to the repository root (simulations run it). */
  readonly model: string;
  /** Where the stored traces live, relative to the repository root. */
  readonly traceDir: string;
  /** Every check, in the order the model's doc lists them. */
  readonly checks: readonly ModelCheck[];
  /** Random simulations of the correct model whose best-covering seeds are stored as traces. */
  readonly simulations: readonly SimulationConfig[];
  parseTrace(text: string): TraceFile<E>;
  /** How much of the model's behaviour a trace exercises: picks the stored seeds. */
  coverageScore(events: readonly E[]): number;
  /** Replays a trace against the TypeScript; throws (TraceDivergence) where the TypeScript decides otherwise. */
  replay(trace: TraceFile<E>, options: { mode: ReplayMode; flashMode: FlashMode }): R;
  /** A replay's counts, on one line. */
  summarize(report: R): string;
  /** For a counterexample: how the correct TypeScript refused the bug's step, or undefined when it did not. */
  refusal(report: R): string | undefined;
  /** What a conformance replay shows, for test titles ("the TypeScript …"). */
  readonly conformance: string;
}

/** Any model (the methods are bivariant, so every description fits). */
export type AnyModel = ModelDescription;

export type CheckResult = VerifyResult;

export function runCheck(check: ModelCheck): CheckResult {
  const model = join(REPO_ROOT, check.model);
  if (check.kind === 'ltl') return verify({ model, defines: { ...check.defines, LTL: 1 }, ltl: 'live' });
  return verify({ model, defines: check.defines, shortest: check.violates !== undefined });
}

/** Does the result match the check's expectation? undefined when it does, else why not. */
export function judgeCheck(check: ModelCheck, result: CheckResult): string | undefined {
  const reported = () => result.assertions.map((a) => `"${a}"`).join(', ') || (result.acceptanceCycle ? 'an acceptance cycle' : 'no assertion text');
  if (check.violates === undefined) return result.errors === 0 ? undefined : `expected no error, pan reported ${result.errors} (${reported()})`;
  if (check.violates === 'acceptance cycle') {
    if (result.errors === 0) return 'expected an acceptance cycle, pan found no error';
    if (!result.acceptanceCycle || result.assertions.length > 0) return `expected an acceptance cycle, pan reported ${reported()}`;
    return undefined;
  }
  if (result.errors === 0) return `expected "assertion violated ${check.violates}", pan found no error`;
  const other = result.assertions.filter((a) => a !== check.violates);
  if (!result.assertions.includes(check.violates) || other.length > 0) return `expected "assertion violated ${check.violates}", pan reported ${reported()}`;
  if (!result.trail || result.trail.length === 0) return 'pan reported the violation but spin -t printed no EVENT line';
  return undefined;
}

/** Counterexamples stored as traces: the safety ones (the trail of an LTL cycle is not a replayable run). */
export function storesTrace(check: ModelCheck): boolean {
  return check.kind !== 'ltl' && check.violates !== undefined;
}

function regenerate(model: AnyModel): string {
  return `${CHECK_COMMAND} ${model.name} --write-traces`;
}

/** The trace file of a counterexample check's trail. */
export function counterexampleTrace(model: AnyModel, check: ModelCheck, result: CheckResult): { file: string; text: string } {
  if (!check.violates || !result.trail) throw new Error(`${check.name} has no counterexample`);
  const meta = {
    trace: `counterexample of ${check.name}: ${check.shows}`,
    kind: 'counterexample',
    model: check.model,
    defines: defineFlags(check.defines ?? {}).join(' ') || '(none)',
    violates: check.violates,
    made: `spin -a; gcc -DSAFETY -DREACH; ./pan -m100000 -i (shortest); spin -t -k <trail> (spin ${spinVersionTag()})`,
    regenerate: regenerate(model),
  };
  return { file: `${check.name}.trace`, text: formatTrace(meta, result.trail) };
}

/** A simulation trace (spin -n<seed>) of the correct model. */
export function simulationTrace<E>(model: ModelDescription<E>, config: SimulationConfig, seed: number): { file: string; text: string; trace: TraceFile<E> } {
  const { events, command } = simulate({ model: join(REPO_ROOT, model.model), defines: config.defines, seed, steps: config.steps });
  const meta = {
    trace: `random simulation of the correct model, ${config.name}, seed ${seed}`,
    kind: 'simulation',
    model: model.model,
    defines: defineFlags(config.defines).join(' ') || '(none)',
    seed: String(seed),
    steps: String(config.steps),
    made: `${command.replace(REPO_ROOT, '')} (spin ${spinVersionTag()})`,
    regenerate: regenerate(model),
  };
  const text = formatTrace(meta, events);
  return { file: `${config.name}-seed${seed}.trace`, text, trace: model.parseTrace(text) };
}

/** The best-covering seeds of a simulation config (ties: the smaller seed). */
export function pickSeeds<E>(model: ModelDescription<E>, config: SimulationConfig): number[] {
  const scored: { seed: number; score: number }[] = [];
  for (let seed = 1; seed <= config.scan; seed++) scored.push({ seed, score: model.coverageScore(simulationTrace(model, config, seed).trace.events) });
  scored.sort((a, b) => b.score - a.score || a.seed - b.seed);
  return scored.slice(0, config.keep).map((s) => s.seed);
}

export interface StoredTrace<E = unknown> {
  /** Path relative to the repository root. */
  readonly path: string;
  readonly text: string;
  readonly trace: TraceFile<E>;
}

/** Every trace file of the model, sorted by name. */
export function storedTraces<E>(model: ModelDescription<E>): StoredTrace<E>[] {
  const dir = join(REPO_ROOT, model.traceDir);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => name.endsWith('.trace'))
    .sort()
    .map((name) => {
      const text = readFileSync(join(dir, name), 'utf8');
      return { path: relative(REPO_ROOT, join(dir, name)), text, trace: model.parseTrace(text) };
    });
}

/** Runs a stored simulation trace's spin command again (from its header); returns its event lines. */
export function rerunSimulation(stored: StoredTrace): string[] {
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

/**
 * Rewrites the model's trace directory: the counterexample of every check
 * that stores one and passed (`results` by check name), and the best-covering
 * seeds of every simulation; removes traces nobody makes any more.
 */
export function writeTraces(model: AnyModel, results: ReadonlyMap<string, { result: CheckResult; problem: string | undefined }>): string[] {
  const dir = join(REPO_ROOT, model.traceDir);
  mkdirSync(dir, { recursive: true });
  const written = new Set<string>();
  for (const check of model.checks) {
    const outcome = results.get(check.name);
    if (!outcome || outcome.problem || !storesTrace(check)) continue;
    const { file, text } = counterexampleTrace(model, check, outcome.result);
    writeFileSync(join(dir, file), text);
    written.add(file);
  }
  for (const config of model.simulations) {
    for (const seed of pickSeeds(model, config)) {
      const { file, text } = simulationTrace(model, config, seed);
      writeFileSync(join(dir, file), text);
      written.add(file);
    }
  }
  for (const name of readdirSync(dir)) if (name.endsWith('.trace') && !written.has(name)) rmSync(join(dir, name));
  return [...written].sort();
}

export const FLASH_MODES: readonly FlashMode[] = ['plain', 'strict'];

/** The replay mode a stored trace asks for. */
export function replayModeOf(stored: StoredTrace): ReplayMode {
  return stored.trace.meta.kind === 'counterexample' ? 'counterexample' : 'conformance';
}

/** "6.5.2": the version of the spin making the traces, for their header. */
function spinVersionTag(): string {
  const found = findSpin();
  return found.ok ? (/\d+\.\d+\.\d+/.exec(found.install.version)?.[0] ?? found.install.version) : 'unknown';
}
