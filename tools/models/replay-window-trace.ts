/**
 * Traces of the replay-window model (docs/models/replay-window.md, "Traces"):
 * the model's `EVENT ...` lines, one per action, with a `# key: value`
 * header saying where they came from. Files live in
 * docs/models/traces/replay-window/.
 */
import { parseTraceFile, readEventLine, type TraceFile } from './trace-file.ts';

export type ModelVerdict = 'fresh' | 'duplicate' | 'stale';
export type RestartStage = 'idle' | 'persisting' | 'accepting' | 'lazy';

export type ModelEvent =
  | { readonly kind: 'config'; readonly N: number; readonly W: number; readonly R: number; readonly maxskip: number; readonly restarts: number; readonly adversary: number; readonly bug: number; readonly k: number }
  /** The sender sent counter c (the adversary now knows it). */
  | { readonly kind: 'send'; readonly c: number }
  /** The receiver got counter c with a genuine (ok) or forged (bad) tag, and its window said `check`. */
  | { readonly kind: 'deliver'; readonly c: number; readonly tag: 'ok' | 'bad'; readonly check: ModelVerdict }
  /** A fresh counter whose tag failed: refused, nothing moved. */
  | { readonly kind: 'reject'; readonly c: number; readonly reason: 'tag' }
  /** A new ceiling became durable. */
  | { readonly kind: 'persist'; readonly ceiling: number }
  /** The window moved and the message was handed over. */
  | { readonly kind: 'accept'; readonly c: number }
  /** The receiver crashed in `stage` of handling counter c, and restarted with `floor`. */
  | { readonly kind: 'restart'; readonly stage: RestartStage; readonly c: number | undefined; readonly floor: number }
  /** A random simulation stopped (SIM pacing). */
  | { readonly kind: 'end' };

/** Header fields: kind (counterexample | simulation), model, defines, violates, command, ... */
export type Trace = TraceFile<ModelEvent>;

/** Parse a trace file (tools/models/trace-file.ts) of replay-window events. */
export function parseTrace(text: string): Trace {
  return parseTraceFile(text, parseEvent);
}

export { formatTrace } from './trace-file.ts';

/** Parse one `EVENT name key=value ...` line. */
export function parseEvent(line: string): ModelEvent {
  const event = readEventLine(line);
  const { num, oneOf } = event;
  switch (event.name) {
    case 'config':
      return { kind: 'config', N: num('N'), W: num('W'), R: num('R'), maxskip: num('maxskip'), restarts: num('restarts'), adversary: num('adversary'), bug: num('bug'), k: num('k') };
    case 'send':
      return { kind: 'send', c: num('c') };
    case 'deliver':
      return { kind: 'deliver', c: num('c'), tag: oneOf('tag', ['ok', 'bad'] as const), check: oneOf('check', ['fresh', 'duplicate', 'stale'] as const) };
    case 'reject':
      return { kind: 'reject', c: num('c'), reason: oneOf('reason', ['tag'] as const) };
    case 'persist':
      return { kind: 'persist', ceiling: num('ceiling') };
    case 'accept':
      return { kind: 'accept', c: num('c') };
    case 'end':
      return { kind: 'end' };
    case 'restart': {
      const stage = oneOf('stage', ['idle', 'persisting', 'accepting', 'lazy'] as const);
      return { kind: 'restart', stage, c: stage === 'idle' ? undefined : num('c'), floor: num('floor') };
    }
    default:
      throw new Error(`unknown event ${JSON.stringify(event.name)} in ${JSON.stringify(line)}`);
  }
}
