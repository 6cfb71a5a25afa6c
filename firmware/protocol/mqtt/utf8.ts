/**
 * UTF-8 for MQTT strings (MQTT 5 §1.5.4, MQTT 3.1.1 §1.5.3): well-formed
 * UTF-8 as Unicode 15 Table 3-7 defines it (no overlong forms, no
 * surrogates U+D800..U+DFFF, nothing above U+10FFFF) and no U+0000. Written
 * here rather than taken from TextDecoder because a decoder must refuse,
 * not replace, and the `fatal` option is not in every engine we target.
 * The "SHOULD NOT" code points (controls, non-characters) are accepted.
 */

/**
 * Decodes `bytes[start, end)` to a string, or returns a one-line cause
 * (a string starting with "utf8:") when it is not MQTT UTF-8.
 */
export function decodeUtf8(bytes: Uint8Array, start: number, end: number): { ok: true; value: string } | { ok: false; cause: string } {
  const pieces: string[] = [];
  const units: number[] = [];
  let i = start;
  while (i < end) {
    const b0 = bytes[i];
    let cp: number;
    if (b0 < 0x80) {
      if (b0 === 0) return fail(i - start, 'U+0000 is not allowed');
      cp = b0;
      i += 1;
    } else if (b0 >= 0xc2 && b0 <= 0xdf) {
      if (i + 1 >= end || !isCont(bytes[i + 1])) return fail(i - start, 'truncated 2-byte sequence');
      cp = ((b0 & 0x1f) << 6) | (bytes[i + 1] & 0x3f);
      i += 2;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
      if (i + 2 >= end || !isCont(bytes[i + 1]) || !isCont(bytes[i + 2])) return fail(i - start, 'truncated 3-byte sequence');
      const b1 = bytes[i + 1];
      if (b0 === 0xe0 && b1 < 0xa0) return fail(i - start, 'overlong 3-byte sequence');
      if (b0 === 0xed && b1 >= 0xa0) return fail(i - start, 'surrogate code point');
      cp = ((b0 & 0x0f) << 12) | ((b1 & 0x3f) << 6) | (bytes[i + 2] & 0x3f);
      i += 3;
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
      if (i + 3 >= end || !isCont(bytes[i + 1]) || !isCont(bytes[i + 2]) || !isCont(bytes[i + 3])) return fail(i - start, 'truncated 4-byte sequence');
      const b1 = bytes[i + 1];
      if (b0 === 0xf0 && b1 < 0x90) return fail(i - start, 'overlong 4-byte sequence');
      if (b0 === 0xf4 && b1 >= 0x90) return fail(i - start, 'code point above U+10FFFF');
      cp = ((b0 & 0x07) << 18) | ((b1 & 0x3f) << 12) | ((bytes[i + 2] & 0x3f) << 6) | (bytes[i + 3] & 0x3f);
      i += 4;
    } else {
      return fail(i - start, b0 < 0xc0 ? 'unexpected continuation byte' : 'invalid lead byte');
    }
    if (cp >= 0x10000) {
      const v = cp - 0x10000;
      units.push(0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff));
    } else {
      units.push(cp);
    }
    if (units.length >= CHUNK_UNITS) {
      pieces.push(String.fromCharCode.apply(null, units));
      units.length = 0;
    }
  }
  if (units.length > 0) pieces.push(String.fromCharCode.apply(null, units));
  return { ok: true, value: pieces.length === 1 ? pieces[0] : pieces.join('') };
}

/**
 * UTF-16 units per String.fromCharCode.apply call. Every argument takes a
 * stack slot in XS: 4,096 overflowed the xsnap worker's stack (the worker
 * dies, nothing to catch), and a Moddable ESP32 build has far fewer slots.
 * The pieces are joined once, so decoding stays linear (repeated `+=` on an
 * XS string copies it each time).
 */
const CHUNK_UNITS = 32;

function isCont(byte: number): boolean {
  return (byte & 0xc0) === 0x80;
}

function fail(at: number, what: string): { ok: false; cause: string } {
  return { ok: false, cause: `utf8: ${what} at byte ${at}` };
}

/**
 * UTF-8 length of `text`; TypeError for a lone surrogate, RangeError for
 * U+0000 (MQTT forbids both). Walks code points with for...of, not
 * charCodeAt: XS keeps strings as UTF-8, so charCodeAt(i) costs O(i) there
 * and an index loop is quadratic (a 65,536-character topic took 1.8 s in
 * XS 13.3 that way; test/protocol/mqtt-codec.cases.ts keeps that case).
 */
export function utf8Length(text: string, field: string): number {
  let length = 0;
  let index = 0;
  for (const ch of text) {
    const cp = ch.codePointAt(0) as number;
    if (cp === 0) throw new RangeError(`${field}: U+0000 is not allowed in an MQTT string`);
    if (cp >= 0xd800 && cp <= 0xdfff) throw new TypeError(`${field}: lone surrogate at index ${index}`);
    length += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    index += ch.length;
  }
  return length;
}

/** Writes `text` (already checked by utf8Length) at `offset`; returns the offset after it. */
export function writeUtf8(target: Uint8Array, offset: number, text: string): number {
  let at = offset;
  for (const ch of text) {
    const cp = ch.codePointAt(0) as number;
    if (cp < 0x80) target[at++] = cp;
    else if (cp < 0x800) {
      target[at++] = 0xc0 | (cp >> 6);
      target[at++] = 0x80 | (cp & 0x3f);
    } else if (cp < 0x10000) {
      target[at++] = 0xe0 | (cp >> 12);
      target[at++] = 0x80 | ((cp >> 6) & 0x3f);
      target[at++] = 0x80 | (cp & 0x3f);
    } else {
      target[at++] = 0xf0 | (cp >> 18);
      target[at++] = 0x80 | ((cp >> 12) & 0x3f);
      target[at++] = 0x80 | ((cp >> 6) & 0x3f);
      target[at++] = 0x80 | (cp & 0x3f);
    }
  }
  return at;
}
