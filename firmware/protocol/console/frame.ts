/**
 * The console line protocol's framing (docs/spec/console.md, "Frames").
 *
 * One frame is one line of printable ASCII:
 *
 *   HF1 <kind> <key>=<value> ... *<crc16>\n
 *
 * `HF1 ` (with its space) is the sync marker: a valid frame holds it only
 * at its start (values escape spaces, kinds and keys are lower case), so a
 * decoder finds frames in any byte stream by looking for it. Everything
 * else on the line (boot ROM output, noise, a half-sent frame) is skipped
 * and counted. A line longer than `CONSOLE_MAX_LINE` is dropped and counted
 * as it arrives: the decoder holds one line buffer, never more.
 *
 * The CRC is CRC-16/CCITT-FALSE (base/crc16.ts) over every byte from `H`
 * up to and including the space before `*`, as four lower-case hex digits.
 */
import { crc16 } from '../../base/crc16.ts';
import { setErrorName } from '../../base/error-name.ts';
import { FORMAT_VERSIONS } from '../../base/format-versions.ts';
import { decodeUtf8 } from '../mqtt/utf8.ts';

/** Version of the framing: the `1` of `HF1`. */
export const CONSOLE_PROTOCOL_VERSION = FORMAT_VERSIONS.console;
/** Longest frame in bytes, from `H` through the CRC (the `\n` and an optional `\r` before it not counted). */
export const CONSOLE_MAX_LINE = 512;
/** Most fields in a frame. */
export const CONSOLE_MAX_FIELDS = 32;
/** Longest kind and longest key. */
export const CONSOLE_MAX_NAME = 16;

/** A field value on the wire is a string; numbers and booleans are written in their usual text form, null as `-`. */
export type ConsoleValue = string | number | boolean | null;
export type ConsoleFields = Readonly<Record<string, ConsoleValue>>;

export interface ConsoleFrame {
  /** Lower-case letters, 1..16. */
  readonly kind: string;
  /** Keys in wire order; values decoded (always strings). */
  readonly fields: Readonly<Record<string, string>>;
}

export interface ConsoleDecoderStats {
  /** Frames decoded. */
  frames: number;
  /** Bytes that were not part of a decoded frame (garbage, dropped lines and bad frames, their line ends excluded). */
  skippedBytes: number;
  /** Lines dropped because they passed CONSOLE_MAX_LINE. */
  overlong: number;
  /** Frames whose CRC did not match. */
  badCrc: number;
  /** Frames with a matching CRC (or none) that do not follow the grammar. */
  malformed: number;
  /** Frames cut short by a new `HF1 ` before their line end (a sender restarted mid-line). */
  interrupted: number;
}

/** Why a frame was not returned (for a caller's log). */
export type ConsoleDropReason = 'overlong' | 'bad-crc' | 'malformed' | 'interrupted';

const MARK = [0x48, 0x46, 0x31, 0x20]; // "HF1 "
const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const STAR = 0x2a;
const PERCENT = 0x25;
const EQUALS = 0x3d;
const HEX = '0123456789abcdef';
/** " *" + 4 hex digits. */
const CRC_TAIL = 6;
/** "HF1 " + a one-letter kind + " *" + 4 hex digits: the shortest frame. */
const MIN_FRAME = 11;

const HUNT = 0;
const FRAME = 1;
const DISCARD = 2;

/**
 * Finds frames in a byte stream. `push` may be given any chunks (a frame
 * split anywhere, several frames in one chunk); memory is one line buffer.
 */
export class ConsoleDecoder {
  readonly stats: ConsoleDecoderStats = { frames: 0, skippedBytes: 0, overlong: 0, badCrc: 0, malformed: 0, interrupted: 0 };
  private readonly line = new Uint8Array(CONSOLE_MAX_LINE + 1);
  private length = 0;
  private state = HUNT;
  /** Bytes of the marker matched so far (while hunting: held back, not yet counted as skipped; else: the marker's bytes at the end of the line). */
  private match = 0;

  /** Feed `bytes[start, end)`; `onFrame` is called for each frame completed, `onDrop` for each line refused. */
  push(bytes: Uint8Array, onFrame: (frame: ConsoleFrame) => void, onDrop?: (reason: ConsoleDropReason) => void, start = 0, end = bytes.length): void {
    for (let i = start; i < end; i++) {
      const b = bytes[i];
      if (this.state === HUNT) {
        if (b === MARK[this.match]) {
          this.match++;
          if (this.match === MARK.length) this.begin();
        } else {
          this.stats.skippedBytes += this.match;
          this.match = b === MARK[0] ? 1 : 0;
          if (this.match === 0) this.stats.skippedBytes++;
        }
        continue;
      }
      if (b === LF) {
        if (this.state === FRAME) this.finish(onFrame, onDrop);
        this.state = HUNT;
        this.match = 0;
        continue;
      }
      // A marker inside a line starts a new frame there: the bytes before it are dropped.
      this.match = b === MARK[this.match] ? this.match + 1 : b === MARK[0] ? 1 : 0;
      if (this.state === FRAME) {
        if (this.length === this.line.length) {
          this.stats.overlong++;
          this.stats.skippedBytes += this.length;
          this.state = DISCARD;
          onDrop?.('overlong');
        } else {
          this.line[this.length++] = b;
        }
      }
      if (this.state === DISCARD) this.stats.skippedBytes++;
      if (this.match === MARK.length) {
        if (this.state === FRAME) {
          this.stats.interrupted++;
          this.stats.skippedBytes += this.length - MARK.length;
          onDrop?.('interrupted');
        } else {
          this.stats.skippedBytes -= MARK.length;
        }
        this.begin();
      }
    }
  }

  /** Bytes held for an unfinished frame (at most CONSOLE_MAX_LINE + 1). */
  get pending(): number {
    return this.state === FRAME ? this.length : this.state === HUNT ? this.match : 0;
  }

  private begin(): void {
    this.line.set(MARK, 0);
    this.length = MARK.length;
    this.state = FRAME;
    this.match = 0;
  }

  private finish(onFrame: (frame: ConsoleFrame) => void, onDrop: ((reason: ConsoleDropReason) => void) | undefined): void {
    let length = this.length;
    if (length > 0 && this.line[length - 1] === CR) length--;
    if (length > CONSOLE_MAX_LINE) {
      this.stats.overlong++;
      this.stats.skippedBytes += this.length;
      onDrop?.('overlong');
      return;
    }
    const result = parseLine(this.line, length);
    if (typeof result === 'string') {
      if (result === 'bad-crc') this.stats.badCrc++;
      else this.stats.malformed++;
      this.stats.skippedBytes += this.length;
      onDrop?.(result);
      return;
    }
    this.stats.frames++;
    onFrame(result);
  }
}

/** Decode one line (`HF1 …*crc`, without its line end); a reason string when it is not a frame. */
export function decodeConsoleLine(line: Uint8Array): ConsoleFrame | 'bad-crc' | 'malformed' {
  if (line.length > CONSOLE_MAX_LINE) return 'malformed';
  return parseLine(line, line.length);
}

function parseLine(line: Uint8Array, length: number): ConsoleFrame | 'bad-crc' | 'malformed' {
  if (length < MIN_FRAME || length > CONSOLE_MAX_LINE) return 'malformed';
  for (let i = 0; i < MARK.length; i++) if (line[i] !== MARK[i]) return 'malformed';
  const crcAt = length - 4;
  if (line[crcAt - 2] !== SPACE || line[crcAt - 1] !== STAR) return 'malformed';
  let crc = 0;
  for (let i = crcAt; i < length; i++) {
    const d = hexDigit(line[i], false);
    if (d < 0) return 'malformed';
    crc = crc * 16 + d;
  }
  if (crc16(line, 0, crcAt - 1) !== crc) return 'bad-crc';
  // Tokens between the marker and " *", separated by single spaces.
  const bodyEnd = crcAt - 2;
  let at = MARK.length;
  let kind = '';
  const fields: Record<string, string> = {};
  let count = 0;
  while (at < bodyEnd) {
    let tokenEnd = at;
    while (tokenEnd < bodyEnd && line[tokenEnd] !== SPACE) {
      const c = line[tokenEnd];
      if (c < 0x21 || c > 0x7e) return 'malformed';
      tokenEnd++;
    }
    if (tokenEnd === at) return 'malformed'; // empty token: two spaces, or a space before " *"
    if (kind === '') {
      if (tokenEnd - at > CONSOLE_MAX_NAME) return 'malformed';
      for (let i = at; i < tokenEnd; i++) if (line[i] < 0x61 || line[i] > 0x7a) return 'malformed';
      kind = ascii(line, at, tokenEnd);
    } else {
      let eq = at;
      while (eq < tokenEnd && line[eq] !== EQUALS) eq++;
      if (eq === tokenEnd || !validKey(line, at, eq)) return 'malformed';
      const key = ascii(line, at, eq);
      if (Object.prototype.hasOwnProperty.call(fields, key)) return 'malformed';
      if (++count > CONSOLE_MAX_FIELDS) return 'malformed';
      const value = unescapeValue(line, eq + 1, tokenEnd);
      if (value === undefined) return 'malformed';
      fields[key] = value;
    }
    at = tokenEnd + 1;
  }
  if (kind === '' || at !== bodyEnd + 1) return 'malformed';
  return { kind, fields };
}

function validKey(line: Uint8Array, start: number, end: number): boolean {
  if (end - start < 1 || end - start > CONSOLE_MAX_NAME) return false;
  if (line[start] < 0x61 || line[start] > 0x7a) return false;
  for (let i = start + 1; i < end; i++) if (!isKeyByte(line[i])) return false;
  return true;
}

function isKeyByte(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x5f || c === 0x2d;
}

function ascii(bytes: Uint8Array, start: number, end: number): string {
  let s = '';
  for (let i = start; i < end; i++) s += String.fromCharCode(bytes[i]);
  return s;
}

/** `%XX` escapes to bytes, then UTF-8 to a string; undefined for a bad escape or bad UTF-8. */
function unescapeValue(line: Uint8Array, start: number, end: number): string | undefined {
  const bytes = new Uint8Array(end - start);
  let n = 0;
  for (let i = start; i < end; i++) {
    const c = line[i];
    if (c !== PERCENT) {
      bytes[n++] = c;
      continue;
    }
    if (i + 2 >= end) return undefined;
    const hi = hexDigit(line[i + 1], true);
    const lo = hexDigit(line[i + 2], true);
    if (hi < 0 || lo < 0) return undefined;
    bytes[n++] = hi * 16 + lo;
    i += 2;
  }
  if (n === 0) return '';
  const decoded = decodeUtf8(bytes, 0, n);
  return decoded.ok ? decoded.value : undefined;
}

function hexDigit(c: number, upperToo: boolean): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (upperToo && c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

// ---------------------------------------------------------------- encoding

/** A frame that cannot be written: a bad kind or key, too many fields, or longer than CONSOLE_MAX_LINE. */
export class ConsoleEncodeError extends RangeError {
  constructor(message: string) {
    super(message);
    setErrorName(this, 'ConsoleEncodeError');
  }
}

/** The value's wire text before escaping. */
export function valueText(value: ConsoleValue): string {
  if (value === null) return '-';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') return String(value);
  return value;
}

/**
 * One frame as bytes, `\n` included. Values are UTF-8 with every byte
 * outside 0x21..0x7E and every `%` written as `%XX` (upper-case hex); U+0000
 * and lone surrogates are written as `?`. Throws ConsoleEncodeError when the
 * frame would break the grammar or pass CONSOLE_MAX_LINE.
 */
export function encodeConsoleFrame(kind: string, fields: ConsoleFields = {}): Uint8Array {
  const out = new Uint8Array(CONSOLE_MAX_LINE + 1);
  let n = 0;
  const put = (c: number): void => {
    if (n >= CONSOLE_MAX_LINE - (CRC_TAIL - 1)) throw new ConsoleEncodeError(`a console frame is at most ${CONSOLE_MAX_LINE} bytes`);
    out[n++] = c;
  };
  if (typeof kind !== 'string' || !/^[a-z]{1,16}$/.test(kind)) throw new ConsoleEncodeError(`frame kind ${JSON.stringify(kind)} is not 1..16 lower-case letters`);
  for (let i = 0; i < MARK.length; i++) put(MARK[i]);
  for (let i = 0; i < kind.length; i++) put(kind.charCodeAt(i));
  const keys = Object.keys(fields);
  if (keys.length > CONSOLE_MAX_FIELDS) throw new ConsoleEncodeError(`${keys.length} fields, a console frame holds at most ${CONSOLE_MAX_FIELDS}`);
  for (const key of keys) {
    if (!/^[a-z][a-z0-9._-]{0,15}$/.test(key)) throw new ConsoleEncodeError(`field key ${JSON.stringify(key)} is not [a-z][a-z0-9._-]{0,15}`);
    put(SPACE);
    for (let i = 0; i < key.length; i++) put(key.charCodeAt(i));
    put(EQUALS);
    const text = valueText(fields[key]);
    for (const ch of text) {
      let cp = ch.codePointAt(0) as number;
      if (cp === 0 || (cp >= 0xd800 && cp <= 0xdfff)) cp = 0x3f;
      if (cp < 0x80) putByte(put, cp);
      else if (cp < 0x800) {
        putByte(put, 0xc0 | (cp >> 6));
        putByte(put, 0x80 | (cp & 0x3f));
      } else if (cp < 0x10000) {
        putByte(put, 0xe0 | (cp >> 12));
        putByte(put, 0x80 | ((cp >> 6) & 0x3f));
        putByte(put, 0x80 | (cp & 0x3f));
      } else {
        putByte(put, 0xf0 | (cp >> 18));
        putByte(put, 0x80 | ((cp >> 12) & 0x3f));
        putByte(put, 0x80 | ((cp >> 6) & 0x3f));
        putByte(put, 0x80 | (cp & 0x3f));
      }
    }
  }
  put(SPACE);
  const crc = crc16(out, 0, n);
  out[n++] = STAR;
  for (let shift = 12; shift >= 0; shift -= 4) out[n++] = HEX.charCodeAt((crc >> shift) & 0xf);
  out[n++] = LF;
  return out.slice(0, n);
}

function putByte(put: (c: number) => void, c: number): void {
  if (c > 0x20 && c < 0x7f && c !== PERCENT) {
    put(c);
    return;
  }
  put(PERCENT);
  put('0123456789ABCDEF'.charCodeAt(c >> 4));
  put('0123456789ABCDEF'.charCodeAt(c & 0xf));
}
