/**
 * A small runner for the SPIN model checker (Debian package `spin`, 6.5.2):
 * generate the verifier (`spin -a`), compile it with gcc, run it, parse what
 * it reports; follow a counterexample trail (`spin -t`); run a seeded random
 * simulation (`spin -n<seed>`). Models print one `EVENT ...` line per action,
 * and this runner returns those lines (docs/models/replay-window.md, "Traces").
 *
 * Host tool (Node): spawns processes and writes a scratch directory per run.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';

/** -D macros passed to the model's preprocessor. */
export type Defines = Readonly<Record<string, number>>;

export interface SpinInstall {
  readonly spin: string;
  readonly version: string;
}

/** SPIN on the PATH and gcc beside it, or why not. */
export function findSpin(): { ok: true; install: SpinInstall } | { ok: false; reason: string } {
  const spin = spawnSync('spin', ['-V'], { encoding: 'utf8' });
  if (spin.error || spin.status !== 0) return { ok: false, reason: `spin is not installed (apt-get install spin): ${spin.error?.message ?? spin.stderr.trim()}` };
  const gcc = spawnSync('gcc', ['--version'], { encoding: 'utf8' });
  if (gcc.error || gcc.status !== 0) return { ok: false, reason: `gcc, which compiles spin's verifier, is missing: ${gcc.error?.message ?? gcc.stderr.trim()}` };
  return { ok: true, install: { spin: 'spin', version: spin.stdout.trim() } };
}

export interface VerifyOptions {
  /** Path of the .pml file. */
  model: string;
  defines?: Defines;
  /** Search for the shortest counterexample (verifier compiled with -DREACH, run with -i). */
  shortest?: boolean;
  /** gcc optimisation level: -O1 compiles in about 0.7 s and runs close to -O2 on these models. */
  optimize?: string;
  /** Check this LTL claim (an `ltl` block of the model) for acceptance cycles (pan -a) instead of safety. */
  ltl?: string;
}

export interface VerifyResult {
  readonly model: string;
  readonly defines: Defines;
  /** Errors pan reported (with `shortest`, every shorter counterexample found counts). */
  readonly errors: number;
  /** With `ltl`: pan found an acceptance cycle (the claim is violated on an infinite run). */
  readonly acceptanceCycle: boolean;
  /** Texts of the failed assertions, as pan prints them (e.g. "!(accepted_twice)"), deduplicated. */
  readonly assertions: readonly string[];
  readonly statesStored: number;
  readonly transitions: number;
  readonly depthReached: number;
  readonly stateVectorBytes: number;
  readonly memoryMb: number;
  /** pan's own "elapsed time" (the search). */
  readonly searchSeconds: number;
  /** spin -a + gcc + pan, wall clock. */
  readonly totalSeconds: number;
  /** `EVENT ...` lines of the counterexample (spin -t), when there is one. */
  readonly trail: readonly string[] | undefined;
  /** The commands run, for the record. */
  readonly commands: readonly string[];
  readonly output: string;
}

/** spin -a, gcc, ./pan; on an error also spin -t. Throws when a tool fails to run. */
export function verify(options: VerifyOptions): VerifyResult {
  const model = resolve(options.model);
  const defines = options.defines ?? {};
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-spin-'));
  const started = performance.now();
  const commands: string[] = [];
  try {
    const flags = defineFlags(defines);
    run('spin', [...flags, '-a', model], dir, commands);
    const mode = options.ltl === undefined ? ['-DSAFETY'] : [];
    const cflags = [options.optimize ?? '-O1', ...mode, ...(options.shortest ? ['-DREACH'] : []), '-o', 'pan', 'pan.c'];
    run('gcc', cflags, dir, commands);
    const panArgs = options.ltl === undefined ? ['-m100000', ...(options.shortest ? ['-i'] : [])] : ['-m1000000', '-a', '-N', options.ltl];
    const pan = run('./pan', panArgs, dir, commands);
    const totalSeconds = (performance.now() - started) / 1000;
    const output = pan.stdout;
    const errors = matchNumber(output, /errors: (\d+)/, 'errors');
    const trailFile = join(dir, `${basename(model)}.trail`);
    let trail: string[] | undefined;
    if (errors > 0 && existsSync(trailFile)) {
      trail = eventLines(run('spin', [...flags, '-t', '-k', trailFile, model], dir, commands).stdout);
    }
    return {
      model: options.model,
      defines,
      errors,
      assertions: [...new Set([...output.matchAll(/assertion violated\s+(.*?)\s+\(at depth \d+\)/g)].map((m) => m[1]))],
      statesStored: matchNumber(output, /([\d.e+]+) states, stored/, 'states stored'),
      transitions: matchNumber(output, /([\d.e+]+) transitions \(= (?:stored|visited)\+matched\)/, 'transitions'),
      acceptanceCycle: /acceptance cycle/.test(output),
      depthReached: matchNumber(output, /depth reached (\d+)/, 'depth'),
      stateVectorBytes: matchNumber(output, /State-vector (\d+) byte/, 'state vector'),
      memoryMb: matchNumber(output, /([\d.]+)\s+total actual memory usage/, 'memory'),
      searchSeconds: matchNumber(output, /elapsed time ([\d.e+-]+) seconds/, 'elapsed time'),
      totalSeconds,
      trail,
      commands,
      output,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface SimulateOptions {
  model: string;
  defines?: Defines;
  /** spin -n<seed>: the seed of the random choices. */
  seed: number;
  /** spin -u<steps>: stop after this many steps. */
  steps: number;
}

/** A seeded random simulation; returns its `EVENT ...` lines. Deterministic for a seed and a spin version. */
export function simulate(options: SimulateOptions): { events: string[]; command: string } {
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-spin-'));
  const commands: string[] = [];
  try {
    const result = run('spin', [...defineFlags(options.defines ?? {}), `-n${options.seed}`, `-u${options.steps}`, resolve(options.model)], dir, commands);
    return { events: eventLines(result.stdout), command: commands[0] };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The `EVENT ...` lines of spin's output, trimmed, with runs of blanks made one space (spin pads printf output). */
export function eventLines(output: string): string[] {
  const events: string[] = [];
  for (const line of output.split('\n')) {
    const at = line.indexOf('EVENT ');
    if (at >= 0) events.push(line.slice(at).trim().replace(/\s+/g, ' '));
  }
  return events;
}

/** `-DNAME=value` flags in a stable order. */
export function defineFlags(defines: Defines): string[] {
  return Object.keys(defines)
    .sort()
    .map((name) => `-D${name}=${defines[name]}`);
}

function run(command: string, args: readonly string[], cwd: string, log: string[]): { stdout: string; stderr: string } {
  log.push([command, ...args].join(' '));
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (result.error) throw new Error(`${command}: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`${[command, ...args].join(' ')} exited with ${result.status}:\n${result.stderr}${result.stdout.slice(-2000)}`);
  return { stdout: result.stdout, stderr: result.stderr };
}

function matchNumber(text: string, pattern: RegExp, what: string): number {
  const match = pattern.exec(text);
  if (!match) throw new Error(`pan output has no ${what}:\n${text.slice(0, 2000)}`);
  return Number(match[1]);
}
