/**
 * Trace files shared by every model: `# key: value` header lines, other `#`
 * lines are comments, then one `EVENT …` line per model event. Each model
 * brings its own event parser and its own replayer; the replay modes and the
 * divergence error are shared here.
 */
import { setErrorName } from '../../firmware/base/error-name.ts';

/**
 * conformance: a trace of the correct model, which the TypeScript must
 * follow step by step; counterexample: a planted bug's trail, which the
 * correct TypeScript must refuse at the bug's step.
 */
export type ReplayMode = 'conformance' | 'counterexample';

/** A replay found the TypeScript deciding otherwise than the trace says. */
export class TraceDivergence extends Error {
  constructor(
    readonly eventIndex: number,
    readonly line: string,
    message: string,
  ) {
    super(`event ${eventIndex + 1} (${line}): ${message}`);
    setErrorName(this, 'TraceDivergence');
  }
}
export interface TraceFile<E> {
  readonly meta: Readonly<Record<string, string>>;
  readonly events: readonly E[];
  /** The raw event lines, in order. */
  readonly lines: readonly string[];
}

export function parseTraceFile<E>(text: string, parseEvent: (line: string) => E): TraceFile<E> {
  const meta: Record<string, string> = {};
  const events: E[] = [];
  const lines: string[] = [];
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '') continue;
    if (line.startsWith('#')) {
      const field = /^#\s*([a-z-]+):\s*(.*)$/.exec(line);
      if (field) meta[field[1]] = field[2];
      continue;
    }
    try {
      events.push(parseEvent(line));
    } catch (error) {
      throw new Error(`trace line ${index + 1}: ${(error as Error).message}`);
    }
    lines.push(line);
  }
  return { meta, events, lines };
}

/** Format a trace file from header fields and event lines. */
export function formatTrace(meta: Readonly<Record<string, string>>, lines: readonly string[]): string {
  const header = Object.entries(meta).map(([key, value]) => `# ${key}: ${value}`);
  return [...header, ...lines].join('\n') + '\n';
}

/** One `EVENT name key=value …` line, with typed field readers that fail with the line quoted. */
export interface EventLine {
  readonly name: string;
  num(key: string): number;
  oneOf<T extends string>(key: string, allowed: readonly T[]): T;
  /** A field matching `pattern`, returned raw (for model-specific shapes such as row ids). */
  raw(key: string, pattern: RegExp, what: string): string;
}

export function readEventLine(line: string): EventLine {
  const words = line.trim().split(/\s+/);
  if (words[0] !== 'EVENT' || words.length < 2) throw new Error(`not an EVENT line: ${JSON.stringify(line)}`);
  const fields = new Map<string, string>();
  for (const word of words.slice(2)) {
    const eq = word.indexOf('=');
    if (eq <= 0) throw new Error(`bad field ${JSON.stringify(word)} in ${JSON.stringify(line)}`);
    fields.set(word.slice(0, eq), word.slice(eq + 1));
  }
  const raw = (key: string, pattern: RegExp, what: string): string => {
    const value = fields.get(key);
    if (value === undefined || !pattern.test(value)) throw new Error(`field ${key} missing or not ${what} in ${JSON.stringify(line)}`);
    return value;
  };
  return {
    name: words[1],
    num: (key) => Number(raw(key, /^\d+$/, 'a number')),
    oneOf<T extends string>(key: string, allowed: readonly T[]): T {
      const value = fields.get(key);
      if (value === undefined || !(allowed as readonly string[]).includes(value)) throw new Error(`field ${key} is not one of ${allowed.join('|')} in ${JSON.stringify(line)}`);
      return value as T;
    },
    raw,
  };
}
