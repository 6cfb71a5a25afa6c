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
