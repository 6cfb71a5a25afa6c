/**
 * Traces of the boot-control model (docs/models/boot-control.md, "Traces"):
 * the model's `EVENT ...` lines, one per step, with a `# key: value` header.
 * Files live in docs/models/traces/boot-control/. The header format is the
 * replay-window one (the file format is shared: trace-file.ts).
 */
import { parseTraceFile, readEventLine, type TraceFile } from './trace-file.ts';

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
  const event = readEventLine(line);
  const { num, oneOf } = event;
  const row = (key: string): number => Number(event.raw(key, /^R\d+$/, 'a row id').slice(1));
  switch (event.name) {
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
      throw new Error(`unknown event ${JSON.stringify(event.name)} in ${JSON.stringify(line)}`);
  }
}
