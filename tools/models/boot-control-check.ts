/**
 * Command line for the boot-control models (docs/models/boot-control.md):
 *
 *   node --import tsx tools/models/boot-control-check.ts [--write-traces]
 *
 * Runs every check of tools/models/boot-control-models.ts (states stored,
 * seconds), then replays every stored trace in both flash modes.
 * `--write-traces` first rewrites docs/models/traces/boot-control/.
 * Exit status: 0 all as expected, 1 a check or a replay failed, 2 usage or spin missing.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CHECKS, counterexampleTrace, judgeCheck, pickSeeds, REPO_ROOT, runCheck, SIMULATIONS, simulationTrace, storedTraces, storesTrace, TRACE_DIR } from './boot-control-models.ts';
import { replayBootTrace } from './boot-control-replay.ts';
import { findSpin } from './spin.ts';

function main(argv: readonly string[]): number {
  const write = argv.includes('--write-traces');
  if (argv.some((a) => a !== '--write-traces')) {
    process.stderr.write('usage: boot-control-check [--write-traces]\n');
    return 2;
  }
  const spin = findSpin();
  if (!spin.ok) {
    process.stderr.write(`boot-control-check: ${spin.reason}\n`);
    return 2;
  }
  let failed = false;
  const dir = join(REPO_ROOT, TRACE_DIR);
  const written = new Set<string>();
  if (write) mkdirSync(dir, { recursive: true });
  process.stdout.write(`${spin.install.version}\n\n`);
  for (const check of CHECKS) {
    const result = runCheck(check);
    const problem = judgeCheck(check, result);
    if (problem) failed = true;
    process.stdout.write(
      `${problem ? 'FAIL' : 'ok  '} ${check.name.padEnd(16)} ${check.kind.padEnd(6)} ${(check.violates ?? 'no error').padEnd(20)} states ${String(result.statesStored).padStart(7)}  transitions ${String(result.transitions).padStart(8)}  depth ${String(result.depthReached).padStart(4)}  search ${String(result.searchSeconds).padStart(5)} s  total ${result.totalSeconds.toFixed(2)} s${problem ? `\n     ${problem}` : ''}\n`,
    );
    if (write && storesTrace(check) && !problem) {
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
  process.stdout.write('\n');
  for (const stored of storedTraces()) {
    for (const flashMode of ['plain', 'strict'] as const) {
      const mode = stored.trace.meta.kind === 'counterexample' ? 'counterexample' : 'conformance';
      try {
        const r = replayBootTrace(stored.trace, { mode, flashMode });
        process.stdout.write(`ok   replay ${stored.path.padEnd(58)} ${flashMode.padEnd(6)} events ${r.events} boots ${r.boots} writes ${r.otadataWrites} cuts ${r.cuts} torn ${r.torn} real calls ${r.realCalls}${r.divergence ? ` refused at event ${r.divergence.at + 1}: ${r.divergence.kind}` : ''}\n`);
      } catch (error) {
        failed = true;
        process.stdout.write(`FAIL replay ${stored.path} ${flashMode}: ${(error as Error).message}\n`);
      }
    }
  }
  return failed ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
