/**
 * The benchmark runner behind `npm run bench`: runs every group, writes
 * bench/results.json (figures by name, each with its target as numbers and
 * the commit it was measured at) and BENCHMARKS.md (each figure with the
 * command that produced it, a ✅/❌ against its target and, where
 * ../shared/ANCHORS.md has one, the anchor beside it). The pure parts
 * (checking targets, merging, rendering) live in figures.ts.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { figureProblems, mergeFigures, misses, parseResultsJson, renderDocument, renderResultsJson, selectGroups, type BenchGroup, type BenchResults, type RecordedFigure } from './figures.ts';
/**
 * Every group, in the order of BENCHMARKS.md. Loaded on use: the groups pull
 * in much of the project, and the runner's own logic (and its tests) should
 * not depend on all of it loading.
 */
export async function loadBenchGroups(): Promise<readonly BenchGroup[]> {
  const [outbox, outboxPowerCut, counter, update, models, frameLog, xsBridge, coverage, mqttFuzz, envelope, mqttWa, mqttDrain, ingest, ingestScale, device, sim, provision, rollout] = await Promise.all([
    import('./outbox.bench.ts'),
    import('./outbox-powercut.bench.ts'),
    import('./counter.bench.ts'),
    import('./update.bench.ts'),
    import('./models.bench.ts'),
    import('./frame-log.bench.ts'),
    import('./xs-bridge.bench.ts'),
    import('./coverage.bench.ts'),
    import('./mqtt-fuzz.bench.ts'),
    import('./envelope.bench.ts'),
    import('./mqtt-wa.bench.ts'),
    import('./mqtt-drain.bench.ts'),
    import('./ingest.bench.ts'),
    import('./ingest-scale.bench.ts'),
    import('./device.bench.ts'),
    import('./sim.bench.ts'),
    import('./provision.bench.ts'),
    import('./rollout.bench.ts'),
  ]);
  return [outbox.outboxBench, outboxPowerCut.outboxPowerCutBench, counter.counterBench, update.updateBench, models.modelsBench, frameLog.frameLogBench, xsBridge.xsBridgeBench, coverage.coverageBench, mqttFuzz.mqttFuzzBench, envelope.envelopeBench, mqttWa.mqttWaBench, mqttDrain.mqttDrainBench, ingest.ingestBench, ingestScale.ingestScaleBench, device.deviceBench, sim.simBench, provision.provisionBench, rollout.rolloutBench];
}

export const BENCH_COMMAND = 'npm run bench';

const REPO_ROOT = new URL('..', import.meta.url).pathname;

/** `--only` names nothing that any group measures: refused before anything runs or is written. */
export class UnknownFigureError extends Error {}

export interface BenchRun {
  /** What was written: the fresh figures plus, after `--only`, the kept ones. */
  written: BenchResults;
  /** The figures this run measured. */
  fresh: RecordedFigure[];
  /** Written figures that miss their targets (fresh or kept). */
  missed: RecordedFigure[];
}

export interface BenchOptions {
  only?: string;
  outDir: string;
  progress: (line: string) => void;
  /** Tests only: stand-in groups instead of loadBenchGroups(), and a fixed commit. */
  groups?: readonly BenchGroup[];
  commit?: string;
}

export async function runBenchmarks(options: BenchOptions): Promise<BenchRun> {
  const { only } = options;
  const all = options.groups ?? (await loadBenchGroups());
  const groups = selectGroups(all, only);
  if (groups.length === 0) throw new UnknownFigureError(`--only ${JSON.stringify(only)} matches no benchmark group (prefixes: ${all.map((g) => g.prefix).join(' ')})`);
  const commit = options.commit ?? gitCommit();
  const fresh: RecordedFigure[] = [];
  for (const group of groups) {
    options.progress(`bench: ${group.title}`);
    const figures = await group.run(options.progress);
    fresh.push(...figures.filter((f) => only === undefined || f.name.startsWith(only)).map((f) => ({ ...f, commit }) as RecordedFigure));
  }
  if (only !== undefined && fresh.length === 0) throw new UnknownFigureError(`--only ${JSON.stringify(only)}: ${groups.map((g) => g.title).join(', ')} measured no figure with that prefix; nothing written`);
  const problems = figureProblems(fresh, all);
  if (problems.length > 0) throw new Error(`bench: malformed figures, nothing written:\n  ${problems.join('\n  ')}`);
  // With --only, the other figures stay as the last run left them, each with its own commit.
  const previous = only === undefined ? [] : readPrevious(options.outDir);
  const written: BenchResults = { commit, node: process.versions.node, figures: mergeFigures(all, previous, fresh, only) };
  mkdirSync(join(options.outDir, 'bench'), { recursive: true });
  writeFileSync(join(options.outDir, 'bench/results.json'), renderResultsJson(written));
  writeFileSync(join(options.outDir, 'BENCHMARKS.md'), renderDocument(written, all, BENCH_COMMAND));
  return { written, fresh, missed: misses(written.figures) };
}

function readPrevious(outDir: string): RecordedFigure[] {
  let text: string;
  try {
    text = readFileSync(join(outDir, 'bench/results.json'), 'utf8');
  } catch {
    return [];
  }
  return parseResultsJson(text).figures;
}

/**
 * HEAD's short hash, with `-dirty` when tracked files (other than the two
 * the runner writes) differ from it: the figures then measure code no
 * commit holds.
 */
function gitCommit(): string {
  const git = (...args: string[]) => execFileSync('git', args, { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  try {
    const head = git('rev-parse', '--short', 'HEAD');
    const changed = git('status', '--porcelain', '--untracked-files=no', '--', '.', ':(exclude)BENCHMARKS.md', ':(exclude)bench/results.json');
    return changed === '' ? head : `${head}-dirty`;
  } catch {
    return 'unknown';
  }
}
