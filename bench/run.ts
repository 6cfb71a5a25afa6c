/**
 * The benchmark runner behind `npm run bench`: runs every group, writes
 * bench/results.json (figures by name) and BENCHMARKS.md (each figure with
 * the command that produced it and, where ../shared/ANCHORS.md has one, the
 * anchor beside it).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import type { BenchGroup, Figure } from './figures.ts';
import { frameLogBench } from './frame-log.bench.ts';
import { outboxBench } from './outbox.bench.ts';
import { outboxPowerCutBench } from './outbox-powercut.bench.ts';
import { updateBench } from './update.bench.ts';
import { modelsBench } from './models.bench.ts';
import { counterBench } from './counter.bench.ts';
import { xsBridgeBench } from './xs-bridge.bench.ts';

export const BENCH_GROUPS: readonly BenchGroup[] = [outboxBench, outboxPowerCutBench, counterBench, updateBench, modelsBench, frameLogBench, xsBridgeBench];

export const BENCH_COMMAND = 'npm run bench';

export interface BenchResults {
  commit: string;
  node: string;
  figures: Figure[];
}

export async function runBenchmarks(options: { only?: string; outDir: string; progress: (line: string) => void }): Promise<BenchResults> {
  const fresh: Figure[] = [];
  for (const group of BENCH_GROUPS) {
    if (options.only && !group.prefix.startsWith(options.only) && !options.only.startsWith(group.prefix)) continue;
    options.progress(`bench: ${group.title}`);
    fresh.push(...(await group.run(options.progress)).filter((f) => !options.only || f.name.startsWith(options.only)));
  }
  // With --only, the other figures stay as the last full run left them.
  const figures = options.only ? mergeFigures(readPrevious(options.outDir), fresh) : fresh;
  const results: BenchResults = { commit: gitCommit(), node: process.versions.node, figures };
  mkdirSync(join(options.outDir, 'bench'), { recursive: true });
  writeFileSync(join(options.outDir, 'bench/results.json'), `${JSON.stringify({ ...results, figures: Object.fromEntries(figures.map((f) => [f.name, f])) }, null, 2)}\n`);
  const sections = BENCH_GROUPS.map((group) => [group, figures.filter((f) => groupOf(f) === group)] as const)
    .filter(([, groupFigures]) => groupFigures.length > 0)
    .map(([group, groupFigures]) => renderGroup(group, groupFigures));
  writeFileSync(join(options.outDir, 'BENCHMARKS.md'), renderDocument(results, sections));
  return { ...results, figures: fresh };
}

/** The group a figure belongs to: the one with the longest matching prefix. */
function groupOf(figure: Figure): BenchGroup | undefined {
  return BENCH_GROUPS.filter((g) => figure.name.startsWith(g.prefix)).sort((a, b) => b.prefix.length - a.prefix.length)[0];
}

function readPrevious(outDir: string): Figure[] {
  try {
    const previous = JSON.parse(readFileSync(join(outDir, 'bench/results.json'), 'utf8')) as { figures: Record<string, Figure> };
    return Object.values(previous.figures);
  } catch {
    return [];
  }
}

function mergeFigures(previous: readonly Figure[], fresh: readonly Figure[]): Figure[] {
  const byName = new Map(previous.map((f) => [f.name, f]));
  for (const f of fresh) byName.set(f.name, f);
  return [...byName.values()];
}

function renderGroup(group: BenchGroup, figures: readonly Figure[]): string {
  const rows = figures.map((f) => `| \`${f.name}\` | ${f.label} | ${formatValue(f)} | ${f.target ?? '—'} | ${f.anchor ?? '—'} |`);
  return [`## ${group.title}`, '', group.workload, '', `Command: \`${BENCH_COMMAND}\` (this group alone: \`npx holdfast bench --only ${group.prefix}\`)`, '', '| figure | what | value | target | anchor |', '|---|---|---|---|---|', ...rows, ''].join('\n');
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
