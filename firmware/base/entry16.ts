/**
 * The 16-byte write-once entry shared by the small logs (counter, replay
 * store, security floor): one strict-mode program unit, little-endian.
 *
 *   0     1     2      4               8               12        16
 *   | ver | kind| extra| value low u32 | value high u32| CRC-32  |
 *
 * `value` is a plain number of at most 53 bits (no BigInt: Espruino later);
 * `extra` is a u16 each log gives its own meaning (0, or a sender index).
 * The CRC-32 (zlib) covers bytes 0..11. All 0xFF is a free slot.
 */
import { crc32 } from './crc32.ts';

export const ENTRY16_LENGTH = 16;
const TWO_TO_32 = 0x1_0000_0000;
/** High u32 half of 2^53 - 1. */
const MAX_HIGH = 0x1f_ffff;

export type Entry16Read =
  | { readonly kind: 'free' }
  /** Torn or damaged: the CRC does not check. */
  | { readonly kind: 'corrupt' }
  /** The CRC checks; `value` is undefined when it would exceed 2^53 - 1 (not written by holdfast). */
  | { readonly kind: 'entry'; readonly version: number; readonly tag: number; readonly extra: number; readonly value: number | undefined };

export function encodeEntry16(target: Uint8Array, version: number, tag: number, extra: number, value: number): Uint8Array {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`an entry value must be an integer in 0..2^53-1, got ${value}`);
  if (target.length !== ENTRY16_LENGTH) throw new RangeError(`an entry is ${ENTRY16_LENGTH} bytes, target has ${target.length}`);
  target[0] = version;
  target[1] = tag;
  target[2] = extra & 0xff;
  target[3] = (extra >>> 8) & 0xff;
  putU32(target, 4, value % TWO_TO_32);
  putU32(target, 8, Math.floor(value / TWO_TO_32));
  putU32(target, 12, crc32(target, 0, 12));
  return target;
}

/** Read the entry at `bytes[at, at + 16)`. */
export function readEntry16(bytes: Uint8Array, at = 0): Entry16Read {
  let free = true;
  for (let i = at; i < at + ENTRY16_LENGTH; i++) {
    if (bytes[i] !== 0xff) {
      free = false;
      break;
    }
  }
  if (free) return FREE;
  if (getU32(bytes, at + 12) !== crc32(bytes, at, at + 12)) return CORRUPT;
  const high = getU32(bytes, at + 8);
  return {
    kind: 'entry',
    version: bytes[at],
    tag: bytes[at + 1],
    extra: bytes[at + 2] | (bytes[at + 3] << 8),
    value: high > MAX_HIGH ? undefined : high * TWO_TO_32 + getU32(bytes, at + 4),
  };
}

const FREE: Entry16Read = Object.freeze({ kind: 'free' });
const CORRUPT: Entry16Read = Object.freeze({ kind: 'corrupt' });

export function putU32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value & 0xff;
  bytes[at + 1] = (value >>> 8) & 0xff;
  bytes[at + 2] = (value >>> 16) & 0xff;
  bytes[at + 3] = (value >>> 24) & 0xff;
}

export function getU32(bytes: Uint8Array, at: number): number {
  return (bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24)) >>> 0;
}
