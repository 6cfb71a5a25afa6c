/**
 * Variable Byte Integer (MQTT 5 §1.5.5, MQTT 3.1.1 §2.2.3): 7 bits per byte,
 * least significant group first, bit 7 set on every byte but the last; at
 * most 4 bytes, so at most 268,435,455, and in the fewest bytes that hold
 * the value [MQTT-1.5.5-1]. The decoders are in bytes.ts (ByteReader.vbi)
 * and stream.ts (byte at a time); both refuse a 5th byte and a longer
 * encoding than needed (a last byte 0x00 after a continuation) with 0x81.
 */

/** 2^28 - 1: the largest value four bytes hold. */
export const VBI_MAX = 268_435_455;

/** How many bytes `value` takes (1..4). */
export function vbiLength(value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > VBI_MAX) throw new RangeError(`variable byte integer ${value} outside 0..${VBI_MAX}`);
  return value < 0x80 ? 1 : value < 0x4000 ? 2 : value < 0x20_0000 ? 3 : 4;
}

/** Writes `value` at `offset`; returns the offset after it. */
export function writeVbi(target: Uint8Array, offset: number, value: number): number {
  let rest = value;
  let at = offset;
  do {
    let byte = rest % 128;
    rest = Math.floor(rest / 128);
    if (rest > 0) byte |= 0x80;
    target[at++] = byte;
  } while (rest > 0);
  return at;
}
