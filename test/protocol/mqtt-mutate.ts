/**
 * Engine-neutral byte mutations for fuzzing the MQTT decoders (used by the
 * property tests, the XS cases and bench/mqtt-fuzz.bench.ts). Each mutation
 * is one of the classic fuzzer moves, biased towards what breaks length-
 * prefixed formats: bit flips, "interesting" bytes (0x00, 0x7f, 0x80, 0xff)
 * at any place, length bytes pushed up or down, insertions, deletions,
 * duplicated ranges and truncation.
 */
import { Rng } from '../../tools/sim/rng.ts';

const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, 0x3f, 0x40, 0x26, 0x0b, 0x23, 0xc0, 0xed, 0xf4];

export const MUTATIONS = ['flip', 'interesting', 'random', 'nudge', 'insert', 'delete', 'duplicate', 'truncate', 'extend'] as const;

/** One mutation of `input` (never in place). */
export function mutateOnce(input: Uint8Array, rng: Rng): Uint8Array {
  const bytes = input.slice();
  const at = rng.below(Math.max(bytes.length, 1));
  switch (MUTATIONS[rng.below(MUTATIONS.length)]) {
    case 'flip':
      if (bytes.length > 0) bytes[at] ^= 1 << rng.below(8);
      return bytes;
    case 'interesting':
      if (bytes.length > 0) bytes[at] = INTERESTING[rng.below(INTERESTING.length)];
      return bytes;
    case 'random':
      if (bytes.length > 0) bytes[at] = rng.below(256);
      return bytes;
    case 'nudge':
      if (bytes.length > 0) bytes[at] = (bytes[at] + (rng.chance(0.5) ? 1 : 255)) & 0xff;
      return bytes;
    case 'insert': {
      const extra = new Uint8Array(rng.between(1, 4));
      rng.fill(extra);
      return concat(bytes.subarray(0, at), extra, bytes.subarray(at));
    }
    case 'delete':
      return concat(bytes.subarray(0, at), bytes.subarray(Math.min(bytes.length, at + rng.between(1, 4))));
    case 'duplicate': {
      const end = Math.min(bytes.length, at + rng.between(1, 8));
      return concat(bytes.subarray(0, end), bytes.subarray(at, end), bytes.subarray(end));
    }
    case 'truncate':
      return bytes.subarray(0, at).slice();
    case 'extend': {
      const extra = new Uint8Array(rng.between(1, 16));
      rng.fill(extra);
      return concat(bytes, extra);
    }
  }
  return bytes;
}

/** 1..maxMutations mutations of `input`. */
export function mutate(input: Uint8Array, rng: Rng, maxMutations = 4): Uint8Array {
  let bytes = input;
  const count = rng.between(1, maxMutations);
  for (let i = 0; i < count; i++) bytes = mutateOnce(bytes, rng);
  return bytes;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
