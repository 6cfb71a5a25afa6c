import type { Command } from 'commander';
import { join } from 'node:path';
import { checkOutputDir } from '../files.ts';
import { UsageError } from '../errors.ts';
import { ExitCode } from '../exit-codes.ts';

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description('run the benchmarks under bench/ and write BENCHMARKS.md and bench/results.json; exit 1 when a figure misses its target')
    .option('--only <prefix>', 'run only figures whose name starts with this prefix (the other figures are kept as they were)')
    .option('--out <dir>', 'directory for BENCHMARKS.md (results.json goes to <dir>/bench/), relative to the current directory', '.')
    .option('--json', 'print the results as JSON')
    .action(async (options: { only?: string; out: string; json?: boolean }) => {
      checkOutputDir(options.out, 'the benchmark output folder');
      // Loaded on use: the benchmarks pull in much of the project; --help should not wait for them.
      const { runBenchmarks, UnknownFigureError } = await import('../../../bench/run.ts');
      const { describeMiss } = await import('../../../bench/figures.ts');
      let run;
      try {
        run = await runBenchmarks({ only: options.only, outDir: options.out, progress: options.json ? () => {} : (l) => console.error(l) });
      } catch (error) {
        // Bad usage: exit 2 with the message, files untouched.
        if (error instanceof UnknownFigureError) throw new UsageError(error.message, { field: '--only' });
        throw error;
      }
      if (options.json) console.log(JSON.stringify({ ...run.written, figures: run.fresh, missed: run.missed.map((f) => f.name) }, null, 2));
      else console.log(`wrote ${join(options.out, 'BENCHMARKS.md')} and ${join(options.out, 'bench/results.json')} (${run.fresh.length} figures measured, ${run.written.figures.length} written)`);
      if (run.missed.length > 0) {
        console.error(`holdfast bench: ${run.missed.length} figure${run.missed.length === 1 ? '' : 's'} miss${run.missed.length === 1 ? 'es' : ''} the target:\n  ${run.missed.map(describeMiss).join('\n  ')}`);
      }
      process.exitCode = run.missed.length === 0 ? ExitCode.OK : ExitCode.FAILED;
    });
}
