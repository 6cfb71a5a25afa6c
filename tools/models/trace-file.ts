/**
 * Trace files shared by every model: `# key: value` header lines, other `#`
 * lines are comments, then one `EVENT …` line per model event. Each model
 * brings its own event parser.
 */
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
