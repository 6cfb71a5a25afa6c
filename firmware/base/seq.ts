/**
 * Serial-number arithmetic on unsigned 32-bit sequence numbers (RFC 1982
 * style): comparisons stay right across the 2^32 wrap as long as the values
 * compared are less than 2^31 apart, which every holdfast window guarantees.
 */

/** a - b as a signed 32-bit distance. */
export function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}

export function seqAdd(a: number, count: number): number {
  return (a + count) >>> 0;
}

export function seqMax(a: number, b: number): number {
  return seqDiff(a, b) >= 0 ? a : b;
}
