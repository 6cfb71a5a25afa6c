/**
 * The benchmark runner behind `npm run bench`: runs every group, writes
 * bench/results.json (figures by name) and BENCHMARKS.md (each figure with
 * the command that produced it and, where ../shared/ANCHORS.md has one, the
 * anchor beside it).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import type { BenchGroup, Figure } from './figures.ts';
import { frameLogBench } from './frame-log.bench.ts';
import { counterBench } from './counter.bench.ts';
import { xsBridgeBench } from './xs-bridge.bench.ts';

export const BENCH_GROUPS: readonly BenchGroup[] = [frameLogBench, counterBench, xsBridgeBench];

export const BENCH_COMMAND = 'npm run bench';

export interface BenchResults {
  commit: string;
  node: string;
  figures: Figure[];
}

export async function runBenchmarks(options: { only?: string; outDir: string; progress: (line: string) => void }): Promise<BenchResults> {
  const figures: Figure[] = [];
  const sections: string[] = [];
  for (const group of BENCH_GROUPS) {
    options.progress(`bench: ${group.title}`);
    const groupFigures = (await group.run(options.progress)).filter((f) => !options.only || f.name.startsWith(options.only));
    if (groupFigures.length === 0) continue;
    figures.push(...groupFigures);
    sections.push(renderGroup(group, groupFigures, options.only));
  }
  const results: BenchResults = { commit: gitCommit(), node: process.versions.node, figures };
  mkdirSync(join(options.outDir, 'bench'), { recursive: true });
  writeFileSync(join(options.outDir, 'bench/results.json'), `${JSON.stringify({ ...results, figures: Object.fromEntries(figures.map((f) => [f.name, f])) }, null, 2)}\n`);
  writeFileSync(join(options.outDir, 'BENCHMARKS.md'), renderDocument(results, sections));
  return results;
}

function renderGroup(group: BenchGroup, figures: readonly Figure[], only: string | undefined): string {
  const command = only ? `npx holdfast bench --only ${only}` : BENCH_COMMAND;
  const rows = figures.map((f) => `| \`${f.name}\` | ${f.label} | ${formatValue(f)} | ${f.target ?? '—'} | ${f.anchor ?? '—'} |`);
  return [`## ${group.title}`, '', group.workload, '', `Command: \`${command}\``, '', '| figure | what | value | target | anchor |', '|---|---|---|---|---|', ...rows, ''].join('\n');
}

function renderDocument(results: BenchResults, sections: readonly string[]): string {
  return [
    '# Benchmarks',
    '',
    'Written by `npm run bench` (bench/run.ts); figures by name in bench/results.json.',
    'Counts (flash bytes and operations, XS `compute` and heap slots) are deterministic and repeat exactly;',
    'figures marked *timing* depend on the machine and are only compared as ratios within one run.',
    'Anchors are the best existing stores on the same workload, from ../shared/ANCHORS.md.',
    '',
    `Commit ${results.commit}, Node ${results.node}, XS from @agoric/xsnap 0.15.0 (XS 13.3).`,
    '',
    ...sections,
  ].join('\n');
}

function formatValue(f: Figure): string {
  const value = Number.isInteger(f.value) ? f.value.toLocaleString('en-US') : f.value.toPrecision(4);
  return `${value} ${f.unit}${f.kind === 'timing' ? ' (*timing*)' : ''}`;
}

function gitCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}
