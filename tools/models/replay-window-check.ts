/**
 * Command line for the replay-window models (docs/models/replay-window.md):
 *
 *   node --import tsx tools/models/replay-window-check.ts [--write-traces] [--json]
 *
 * Runs every check of tools/models/replay-window-models.ts with spin (states
 * stored, seconds), then replays every stored trace against the TypeScript
 * in both flash modes. `--write-traces` first rewrites
 * docs/models/traces/replay-window/ from the counterexamples and from
 * simulations of the best-covering seeds. Exit status: 0 all as expected,
 * 1 a check or a replay failed, 2 usage error or spin missing.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CHECKS, counterexampleTrace, judgeCheck, pickSeeds, REPO_ROOT, runCheck, SIMULATIONS, simulationTrace, storedTraces, TRACE_DIR } from './replay-window-models.ts';
import { replayWindowTrace } from './replay-window-replay.ts';
import { findSpin } from './spin.ts';

function main(argv: readonly string[]): number {
  const write = argv.includes('--write-traces');
  const json = argv.includes('--json');
  const unknown = argv.filter((a) => a !== '--write-traces' && a !== '--json');
  if (unknown.length > 0) {
    process.stderr.write('usage: replay-window-check [--write-traces] [--json]\n');
    return 2;
  }
  const spin = findSpin();
  if (!spin.ok) {
    process.stderr.write(`replay-window-check: ${spin.reason}\n`);
    return 2;
  }
  let failed = false;
  const rows: Record<string, unknown>[] = [];
  const written = new Set<string>();
  const dir = join(REPO_ROOT, TRACE_DIR);
  if (write) mkdirSync(dir, { recursive: true });
  for (const check of CHECKS) {
    const result = runCheck(check);
    const problem = judgeCheck(check, result);
    if (problem) failed = true;
    rows.push({
      check: check.name,
      expect: check.violates ? `violates ${check.violates}` : 'no error',
      ok: problem === undefined,
      problem,
      statesStored: result.statesStored,
      transitions: result.transitions,
      depth: result.depthReached,
      searchSeconds: result.searchSeconds,
      totalSeconds: Number(result.totalSeconds.toFixed(2)),
    });
    if (write && check.violates && !problem) {
      const { file, text } = counterexampleTrace(check, result);
      writeFileSync(join(dir, file), text);
      written.add(file);
    }
  }
  if (write) {
    for (const config of SIMULATIONS) {
      for (const seed of pickSeeds(config)) {
        const { file, text } = simulationTrace(config, seed);
        writeFileSync(join(dir, file), text);
        written.add(file);
      }
    }
    for (const name of readdirSync(dir)) if (name.endsWith('.trace') && !written.has(name)) rmSync(join(dir, name));
  }
  const replays: Record<string, unknown>[] = [];
  for (const stored of storedTraces()) {
    for (const flashMode of ['plain', 'strict'] as const) {
      const mode = stored.trace.meta.kind === 'counterexample' ? 'counterexample' : 'conformance';
      try {
        const report = replayWindowTrace(stored.trace, { mode, flashMode });
        replays.push({ trace: stored.path, flashMode, ok: true, ...report, final: report.final ? JSON.stringify(report.final) : undefined });
      } catch (error) {
        failed = true;
        replays.push({ trace: stored.path, flashMode, ok: false, problem: (error as Error).message });
      }
    }
  }
  if (json) {
    process.stdout.write(JSON.stringify({ spin: spin.install.version, checks: rows, replays }, null, 2) + '\n');
  } else {
    process.stdout.write(`${spin.install.version}\n\n`);
    for (const row of rows) {
      process.stdout.write(
        `${row.ok ? 'ok  ' : 'FAIL'} ${String(row.check).padEnd(34)} ${String(row.expect).padEnd(28)} states ${String(row.statesStored).padStart(8)}  transitions ${String(row.transitions).padStart(9)}  depth ${String(row.depth).padStart(4)}  search ${String(row.searchSeconds).padStart(5)} s  total ${String(row.totalSeconds).padStart(5)} s${row.problem ? `\n     ${row.problem}` : ''}\n`,
      );
    }
    process.stdout.write('\n');
    for (const r of replays) {
      process.stdout.write(
        r.ok
          ? `ok   replay ${String(r.trace).padEnd(62)} ${String(r.flashMode).padEnd(6)} events ${r.events} deliveries ${r.deliveries} accepts ${r.accepts} restarts ${r.restarts} cuts ${r.cuts} writes ${r.flashWrites} erases ${r.flashErases}${r.final ? ` final ${r.final}` : ''}\n`
          : `FAIL replay ${r.trace} ${r.flashMode}: ${r.problem}\n`,
      );
    }
  }
  return failed ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
