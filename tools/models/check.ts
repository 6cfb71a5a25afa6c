/**
 * Command line for the Promela models (docs/models/):
 *
 *   node --import tsx tools/models/check.ts [boot-control] [replay-window] [--write-traces] [--json]
 *
 * For each named model (all of them when none is named): runs every check
 * of its description with spin (states stored, seconds), then replays every
 * stored trace against the TypeScript in both flash modes. `--write-traces`
 * first rewrites the model's trace directory from the counterexamples and
 * from simulations of the best-covering seeds. `--json` prints one JSON
 * document instead of the table.
 * Exit status: 0 all as expected, 1 a check or a replay failed, 2 usage error or spin missing.
 */
import { bootControl } from './boot-control-models.ts';
import { FLASH_MODES, judgeCheck, replayModeOf, runCheck, storedTraces, writeTraces, type AnyModel, type CheckResult } from './model-check.ts';
import { replayWindow } from './replay-window-models.ts';
import { findSpin } from './spin.ts';

const MODELS: readonly AnyModel[] = [bootControl, replayWindow];

interface CheckRow {
  check: string;
  kind: 'safety' | 'ltl';
  expect: string;
  ok: boolean;
  problem: string | undefined;
  statesStored: number;
  transitions: number;
  depth: number;
  searchSeconds: number;
  totalSeconds: number;
}

interface ReplayRow {
  trace: string;
  flashMode: string;
  ok: boolean;
  summary?: string;
  refusal?: string;
  report?: unknown;
  problem?: string;
}

interface ModelReport {
  model: string;
  checks: CheckRow[];
  written?: string[];
  replays: ReplayRow[];
}

function checkModel(model: AnyModel, write: boolean): ModelReport {
  const checks: CheckRow[] = [];
  const results = new Map<string, { result: CheckResult; problem: string | undefined }>();
  for (const check of model.checks) {
    const result = runCheck(check);
    const problem = judgeCheck(check, result);
    results.set(check.name, { result, problem });
    checks.push({
      check: check.name,
      kind: check.kind ?? 'safety',
      expect: check.violates ?? 'no error',
      ok: problem === undefined,
      problem,
      statesStored: result.statesStored,
      transitions: result.transitions,
      depth: result.depthReached,
      searchSeconds: result.searchSeconds,
      totalSeconds: Number(result.totalSeconds.toFixed(2)),
    });
  }
  const written = write ? writeTraces(model, results) : undefined;
  const replays: ReplayRow[] = [];
  for (const stored of storedTraces(model)) {
    for (const flashMode of FLASH_MODES) {
      try {
        const report = model.replay(stored.trace, { mode: replayModeOf(stored), flashMode });
        replays.push({ trace: stored.path, flashMode, ok: true, summary: model.summarize(report), refusal: model.refusal(report), report });
      } catch (error) {
        replays.push({ trace: stored.path, flashMode, ok: false, problem: (error as Error).message });
      }
    }
  }
  return { model: model.name, checks, ...(written ? { written } : {}), replays };
}

function printTable(report: ModelReport): void {
  const name = Math.max(...report.checks.map((r) => r.check.length)) + 2;
  const expect = Math.max(...report.checks.map((r) => r.expect.length)) + 2;
  const trace = Math.max(0, ...report.replays.map((r) => r.trace.length)) + 1;
  process.stdout.write(`${report.model}\n`);
  for (const r of report.checks) {
    process.stdout.write(
      `${r.ok ? 'ok  ' : 'FAIL'} ${r.check.padEnd(name)} ${r.kind.padEnd(6)} ${r.expect.padEnd(expect)} states ${String(r.statesStored).padStart(8)}  transitions ${String(r.transitions).padStart(9)}  depth ${String(r.depth).padStart(4)}  search ${String(r.searchSeconds).padStart(5)} s  total ${r.totalSeconds.toFixed(2).padStart(5)} s${r.problem ? `\n     ${r.problem}` : ''}\n`,
    );
  }
  if (report.written) process.stdout.write(`wrote ${report.written.length} traces\n`);
  process.stdout.write('\n');
  for (const r of report.replays) {
    process.stdout.write(r.ok ? `ok   replay ${r.trace.padEnd(trace)} ${r.flashMode.padEnd(6)} ${r.summary}${r.refusal ? ` ${r.refusal}` : ''}\n` : `FAIL replay ${r.trace} ${r.flashMode}: ${r.problem}\n`);
  }
}

function main(argv: readonly string[]): number {
  const flags = new Set(['--write-traces', '--json']);
  const names = argv.filter((a) => !flags.has(a));
  const unknown = names.filter((n) => !MODELS.some((m) => m.name === n));
  if (unknown.length > 0) {
    process.stderr.write(`usage: check [${MODELS.map((m) => m.name).join('] [')}] [--write-traces] [--json] (unknown: ${unknown.join(' ')})\n`);
    return 2;
  }
  const spin = findSpin();
  if (!spin.ok) {
    process.stderr.write(`check: ${spin.reason}\n`);
    return 2;
  }
  const chosen = names.length === 0 ? MODELS : MODELS.filter((m) => names.includes(m.name));
  const reports = chosen.map((model) => checkModel(model, argv.includes('--write-traces')));
  if (argv.includes('--json')) {
    process.stdout.write(`${JSON.stringify({ spin: spin.install.version, models: reports }, null, 2)}\n`);
  } else {
    process.stdout.write(`${spin.install.version}\n`);
    for (const report of reports) {
      process.stdout.write('\n');
      printTable(report);
    }
  }
  return reports.every((r) => r.checks.every((c) => c.ok) && r.replays.every((p) => p.ok)) ? 0 : 1;
}

process.exitCode = main(process.argv.slice(2));
