import type { Command } from 'commander';
import { join } from 'node:path';
import { REPO_ROOT } from '../package-info.ts';

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description('run the benchmarks under bench/ and write BENCHMARKS.md and bench/results.json')
    .option('--only <prefix>', 'run only figures whose name starts with this prefix')
    .option('--out <dir>', 'directory for BENCHMARKS.md (results.json goes to <dir>/bench/)', REPO_ROOT)
    .option('--json', 'print the results as JSON')
    .action(async (options: { only?: string; out: string; json?: boolean }) => {
      // Loaded on use: the benchmarks pull in much of the project; --help should not wait for them.
      const { runBenchmarks } = await import('../../../bench/run.ts');
      const results = await runBenchmarks({ only: options.only, outDir: options.out, progress: options.json ? () => {} : (l) => console.error(l) });
      if (options.json) console.log(JSON.stringify(results, null, 2));
      else console.log(`wrote ${join(options.out, 'BENCHMARKS.md')} and ${join(options.out, 'bench/results.json')} (${results.figures.length} figures)`);
    });
}
