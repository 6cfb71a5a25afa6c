/** Which side of its limit a figure must stay on: 'max' means value ≤ limit, 'min' means value ≥ limit. */
export type Direction = 'max' | 'min';

interface FigureBase {
  /** Stable dotted name that tools read from results.json (e.g. outbox.wa.plain.64). */
  name: string;
  value: number;
  unit: string;
  /** What the number means, in a few words. */
  label: string;
  /** Deterministic counts repeat exactly; timings are marked so nobody diffs them. */
  kind: 'count' | 'timing';
  /** The best existing store's figure on the same workload (../shared/ANCHORS.md). */
  anchor?: string;
  /** The commit the figure was measured at; the runner stamps it (a partial rerun keeps the others' commits). */
  commit?: string;
}

/**
 * One measured figure, as BENCHMARKS.md and bench/results.json carry it.
 * A figure either has no target, or has the human `target` text together
 * with the machine-checked `limit` and `direction` (the type refuses a
 * target without numbers, so every target is checked by `npm run bench`).
 */
export type Figure = FigureBase &
  (
    | { target?: undefined; limit?: undefined; direction?: undefined }
    | {
        /** The goal the issue set, as people read it. */
        target: string;
        /** The same goal as a number: the value must be ≤ limit ('max') or ≥ limit ('min'). */
        limit: number;
        direction: Direction;
      }
  );

export interface BenchGroup {
  /** Heading in BENCHMARKS.md. */
  title: string;
  /** Prefix shared by the names of this group's figures (lets `--only` skip whole groups). */
  prefix: string;
  /** Prose under the heading: the workload. */
  workload: string;
  run(progress: (line: string) => void): Promise<Figure[]>;
}

/** A figure as results.json stores it: stamped with the commit it was measured at. */
export type RecordedFigure = Figure & { commit: string };

export interface BenchResults {
  /** The commit of the run that last wrote the files. */
  commit: string;
  node: string;
  figures: RecordedFigure[];
}

/** 'met' or 'missed' for a figure with a numeric target; undefined for one without. */
export function evaluate(figure: Figure): 'met' | 'missed' | undefined {
  if (figure.limit === undefined || figure.direction === undefined) return undefined;
  const met = figure.direction === 'max' ? figure.value <= figure.limit : figure.value >= figure.limit;
  return met ? 'met' : 'missed';
}

/** The figures that miss their targets, in order. */
export function misses<F extends Figure>(figures: readonly F[]): F[] {
  return figures.filter((f) => evaluate(f) === 'missed');
}

/** One line per miss, for the terminal: name, value, target, limit and the commit it was measured at. */
export function describeMiss(figure: Figure): string {
  const sign = figure.direction === 'max' ? '≤' : '≥';
  return `${figure.name} = ${formatValue(figure)}, target ${figure.target} (must be ${sign} ${figure.limit})${figure.commit ? `, measured at ${figure.commit}` : ''}`;
}

/**
 * What is wrong with freshly measured figures, as messages (empty when all is
 * well): duplicate names, names outside every group, values or limits that
 * are not finite numbers, a direction other than max or min.
 */
export function figureProblems(figures: readonly Figure[], groups: readonly Pick<BenchGroup, 'prefix'>[]): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  // Checked as data, not as the type promises: a figure may come from a cast or a bench file that bypassed the type.
  for (const f of figures as readonly { name: string; value: unknown; target?: unknown; limit?: unknown; direction?: unknown }[]) {
    if (seen.has(f.name)) problems.push(`${f.name}: measured twice`);
    seen.add(f.name);
    if (groupOf(groups, f.name) === undefined) problems.push(`${f.name}: no group's prefix matches the name`);
    if (typeof f.value !== 'number' || !Number.isFinite(f.value)) problems.push(`${f.name}: value ${String(f.value)} is not a finite number`);
    if (f.target !== undefined || f.limit !== undefined || f.direction !== undefined) {
      if (typeof f.target !== 'string') problems.push(`${f.name}: a limit without the target text`);
      if (typeof f.limit !== 'number' || !Number.isFinite(f.limit)) problems.push(`${f.name}: target ${JSON.stringify(f.target)} without a finite numeric limit`);
      if (f.direction !== 'max' && f.direction !== 'min') problems.push(`${f.name}: direction ${JSON.stringify(f.direction)} is neither 'max' nor 'min'`);
    }
  }
  return problems;
}

/** The group a figure belongs to: the one with the longest prefix of its name. */
export function groupOf<G extends Pick<BenchGroup, 'prefix'>>(groups: readonly G[], name: string): G | undefined {
  return groups.filter((g) => name.startsWith(g.prefix)).sort((a, b) => b.prefix.length - a.prefix.length)[0];
}

/**
 * The groups that `--only <prefix>` must run: those whose prefix starts with
 * it (`--only outbox.` runs every outbox group), or else the one group whose
 * figures a narrower prefix falls in (`--only outbox.wa.` runs the outbox
 * group only, not the power-cut one). Empty when nothing can match: the
 * caller refuses, without touching the files.
 */
export function selectGroups<G extends Pick<BenchGroup, 'prefix'>>(groups: readonly G[], only: string | undefined): G[] {
  if (only === undefined) return [...groups];
  const wider = groups.filter((g) => g.prefix.startsWith(only));
  if (wider.length > 0) return wider;
  const owner = groupOf(groups, only);
  return owner ? [owner] : [];
}

/**
 * The figures to write after a run. A full run (no `only`) writes what it
 * measured. A partial run replaces every previous figure under the prefix
 * with what it measured (a figure no longer produced goes away) and keeps
 * the others as they were, each with the commit it was measured at. A
 * remeasured figure keeps its place; the order follows the groups.
 */
export function mergeFigures(
  groups: readonly Pick<BenchGroup, 'prefix'>[],
  previous: readonly RecordedFigure[],
  fresh: readonly RecordedFigure[],
  only: string | undefined,
): RecordedFigure[] {
  const byName = new Map(fresh.map((f) => [f.name, f]));
  // A remeasured figure takes its old place; a new one comes after the old ones.
  const kept = only === undefined ? [] : previous.filter((f) => byName.has(f.name) || !f.name.startsWith(only)).map((f) => byName.get(f.name) ?? f);
  const keptNames = new Set(kept.map((f) => f.name));
  const all = [...kept, ...fresh.filter((f) => !keptNames.has(f.name))];
  const rank = (f: Figure) => {
    const group = groupOf(groups, f.name);
    return group === undefined ? groups.length : groups.indexOf(group);
  };
  // Stable: within a group, the order above stays.
  return all.map((f, i) => ({ f, i })).sort((a, b) => rank(a.f) - rank(b.f) || a.i - b.i).map(({ f }) => f);
}

/** results.json: figures keyed by name. */
export function renderResultsJson(results: BenchResults): string {
  return `${JSON.stringify({ ...results, figures: Object.fromEntries(results.figures.map((f) => [f.name, f])) }, null, 2)}\n`;
}

/**
 * Reads a results.json written by any version of the runner: figures
 * written before per-figure commits existed take the file's commit.
 */
export function parseResultsJson(text: string): BenchResults {
  const raw = JSON.parse(text) as { commit?: string; node?: string; figures?: Record<string, Figure> };
  const commit = raw.commit ?? 'unknown';
  const figures = Object.values(raw.figures ?? {}).map((f) => ({ ...f, commit: f.commit ?? commit }) as RecordedFigure);
  return { commit, node: raw.node ?? 'unknown', figures };
}

const STATUS_MARK = { met: '✅', missed: '❌' } as const;

/** BENCHMARKS.md. */
export function renderDocument(results: BenchResults, groups: readonly Omit<BenchGroup, 'run'>[], command: string): string {
  const sections = groups
    .map((group) => [group, results.figures.filter((f) => groupOf(groups, f.name) === group)] as const)
    .filter(([, figures]) => figures.length > 0)
    .map(([group, figures]) => renderGroup(group, figures, command));
  const summary = summarize(results.figures);
  return [
    '# Benchmarks',
    '',
    `Written by \`${command}\` (bench/run.ts); figures by name in bench/results.json.`,
    'Counts (flash bytes and operations, XS `compute` and heap slots) are deterministic and repeat exactly;',
    'figures marked *timing* depend on the machine and are only compared as ratios within one run.',
    'Anchors are the best existing stores on the same workload, from ../shared/ANCHORS.md.',
    `Each target is also a number in results.json (\`limit\`, \`direction\` max: value ≤ limit, min: value ≥ limit); the *met* column is computed from it (— means no numeric target), and \`${command}\` exits 1 when any figure misses.`,
    '',
    `Last run at commit ${results.commit}, Node ${results.node}, XS from @agoric/xsnap 0.15.0 (XS 13.3). ${summary}`,
    '',
    ...sections,
  ].join('\n');
}

/** One sentence: how many targets are met, which are missed, and how many carry no numbers (kept from an older results.json). */
export function summarize(figures: readonly Figure[]): string {
  const checked = figures.filter((f) => evaluate(f) !== undefined);
  const missed = misses(figures);
  const unchecked = figures.filter((f) => f.target !== undefined && evaluate(f) === undefined);
  const parts = [
    checked.length === 0
      ? 'Targets: none checked'
      : missed.length === 0
      ? `Targets: ${checked.length} of ${checked.length} met`
      : `Targets: ${checked.length - missed.length} of ${checked.length} met; **missed**: ${missed.map((f) => `\`${f.name}\` (${formatValue(f)}, target ${f.target})`).join(', ')}`,
  ];
  if (unchecked.length > 0) parts.push(`${unchecked.length} not checked (target text without a limit, from an older run: ${unchecked.map((f) => `\`${f.name}\``).join(', ')})`);
  return `${parts.join('; ')}.`;
}

function renderGroup(group: Omit<BenchGroup, 'run'>, figures: readonly RecordedFigure[], command: string): string {
  const commits = [...new Set(figures.map((f) => f.commit))];
  const perFigure = commits.length > 1;
  const measured = perFigure ? `Measured at commits ${commits.join(', ')} (column *commit*).` : `Measured at commit ${commits[0]}.`;
  const head = perFigure ? '| figure | what | value | target | met | anchor | commit |' : '| figure | what | value | target | met | anchor |';
  const rule = perFigure ? '|---|---|---|---|---|---|---|' : '|---|---|---|---|---|---|';
  const rows = figures.map((f) => {
    const status = evaluate(f);
    const cells = [`\`${f.name}\``, f.label, formatValue(f), f.target ?? '—', status ? STATUS_MARK[status] : '—', f.anchor ?? '—', ...(perFigure ? [f.commit] : [])];
    return `| ${cells.join(' | ')} |`;
  });
  return [`## ${group.title}`, '', group.workload, '', `Command: \`${command}\` (this group alone: \`npx holdfast bench --only ${group.prefix}\`). ${measured}`, '', head, rule, ...rows, ''].join('\n');
}

export function formatValue(f: Pick<Figure, 'value' | 'unit' | 'kind'>): string {
  const value = Number.isInteger(f.value) ? f.value.toLocaleString('en-US') : f.value.toPrecision(4);
  return `${value} ${f.unit}${f.kind === 'timing' ? ' (*timing*)' : ''}`;
}
