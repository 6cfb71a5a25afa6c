/** One measured figure, as BENCHMARKS.md and bench/results.json carry it. */
export interface Figure {
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
  /** The goal the issue set. */
  target?: string;
}

export interface BenchGroup {
  /** Heading in BENCHMARKS.md. */
  title: string;
  /** Prefix shared by the names of this group's figures (lets `--only` skip whole groups). */
  prefix: string;
  /** Prose under the heading: the workload. */
  workload: string;
  run(progress: (line: string) => void): Promise<Figure[]>;
}
