/**
 * Traces of the boot-control model (docs/models/boot-control.md, "Traces"):
 * the model's `EVENT ...` lines, one per step, with a `# key: value` header.
 * Files live in docs/models/traces/boot-control/. The header format is the
 * replay-window one (the file format is shared: trace-file.ts).
 */
import { parseTraceFile, type TraceFile } from './trace-file.ts';

export { formatTrace } from './trace-file.ts';

/** Model names of ota_state (Promela mtype). */
export type ModelState = 'NEW' | 'PV' | 'VALID' | 'INVALID' | 'ABORTED' | 'UNDEF';
/** Model names of a slot's image. */
export type ModelImage = 'ABSENT' | 'TORN' | 'GOOD' | 'HANG' | 'FORGED';

export type BootEvent =
  | { readonly kind: 'config'; readonly cuts: number; readonly updates: number; readonly forgery: number; readonly bug: number }
  /** The bootloader read otadata and chose row R`row`, slot `slot` (2: none). */
  | { readonly kind: 'plan'; readonly row: number; readonly slot: number }
  | { readonly kind: 'erase'; readonly copy: number }
  | { readonly kind: 'write'; readonly copy: number; readonly seq: number; readonly state: ModelState }
  /** The program of `copy` was torn by a power cut: the copy's CRC fails. */
  | { readonly kind: 'torn'; readonly copy: number }
  | { readonly kind: 'cut' }
  | { readonly kind: 'raise'; readonly floor: number; readonly by: 'boot' | 'agent' }
  | { readonly kind: 'boot'; readonly slot: number; readonly row: number; readonly state: ModelState | 'none'; readonly floor: number; readonly image: ModelImage }
  | { readonly kind: 'hang'; readonly slot: number }
  | { readonly kind: 'trial'; readonly slot: number }
  | { readonly kind: 'commit' }
  | { readonly kind: 'commit-skipped' }
  | { readonly kind: 'stage'; readonly slot: number; readonly part: 'erase' | 'partial' | 'done'; readonly sv: number | undefined; readonly image: ModelImage | undefined }
  | { readonly kind: 'refuse'; readonly slot: number }
  | { readonly kind: 'select'; readonly slot: number; readonly copy: number; readonly seq: number }
  | { readonly kind: 'restart' }
  | { readonly kind: 'settle' };

export type BootTrace = TraceFile<BootEvent>;

const STATES: readonly ModelState[] = ['NEW', 'PV', 'VALID', 'INVALID', 'ABORTED', 'UNDEF'];
const IMAGES: readonly ModelImage[] = ['ABSENT', 'TORN', 'GOOD', 'HANG', 'FORGED'];

export function parseBootTrace(text: string): BootTrace {
  return parseTraceFile(text, parseBootEvent);
}

export function parseBootEvent(line: string): BootEvent {
  const words = line.trim().split(/\s+/);
  if (words[0] !== 'EVENT' || words.length < 2) throw new Error(`not an EVENT line: ${JSON.stringify(line)}`);
  const fields = new Map<string, string>();
  for (const word of words.slice(2)) {
    const eq = word.indexOf('=');
    if (eq <= 0) throw new Error(`bad field ${JSON.stringify(word)} in ${JSON.stringify(line)}`);
    fields.set(word.slice(0, eq), word.slice(eq + 1));
  }
  const num = (key: string): number => {
    const value = fields.get(key);
    if (value === undefined || !/^\d+$/.test(value)) throw new Error(`field ${key} missing or not a number in ${JSON.stringify(line)}`);
    return Number(value);
  };
  const row = (key: string): number => {
    const value = fields.get(key);
    if (value === undefined || !/^R\d+$/.test(value)) throw new Error(`field ${key} is not a row id in ${JSON.stringify(line)}`);
    return Number(value.slice(1));
  };
  const oneOf = <T extends string>(key: string, allowed: readonly T[]): T => {
    const value = fields.get(key);
    if (value === undefined || !(allowed as readonly string[]).includes(value)) throw new Error(`field ${key} is not one of ${allowed.join('|')} in ${JSON.stringify(line)}`);
    return value as T;
  };
  switch (words[1]) {
    case 'config':
      return { kind: 'config', cuts: num('cuts'), updates: num('updates'), forgery: num('forgery'), bug: num('bug') };
    case 'plan':
      return { kind: 'plan', row: row('row'), slot: num('slot') };
    case 'erase':
      return { kind: 'erase', copy: num('copy') };
    case 'write':
      return { kind: 'write', copy: num('copy'), seq: num('seq'), state: oneOf('state', STATES) };
    case 'torn':
      return { kind: 'torn', copy: num('copy') };
    case 'cut':
      return { kind: 'cut' };
    case 'raise':
      return { kind: 'raise', floor: num('floor'), by: oneOf('by', ['boot', 'agent'] as const) };
    case 'boot':
      return { kind: 'boot', slot: num('slot'), row: row('row'), state: oneOf('state', [...STATES, 'none'] as const), floor: num('floor'), image: oneOf('image', IMAGES) };
    case 'hang':
      return { kind: 'hang', slot: num('slot') };
    case 'trial':
      return { kind: 'trial', slot: num('slot') };
    case 'commit':
      return { kind: 'commit' };
    case 'commit-skipped':
      return { kind: 'commit-skipped' };
    case 'stage': {
      const part = oneOf('part', ['erase', 'partial', 'done'] as const);
      return { kind: 'stage', slot: num('slot'), part, sv: part === 'erase' ? undefined : num('sv'), image: part === 'done' ? oneOf('image', IMAGES) : undefined };
    }
    case 'refuse':
      return { kind: 'refuse', slot: num('slot') };
    case 'select':
      return { kind: 'select', slot: num('slot'), copy: num('copy'), seq: num('seq') };
    case 'restart':
      return { kind: 'restart' };
    case 'settle':
      return { kind: 'settle' };
    default:
      throw new Error(`unknown event ${JSON.stringify(words[1])} in ${JSON.stringify(line)}`);
  }
}
