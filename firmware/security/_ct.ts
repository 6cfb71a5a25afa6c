/**
 * Constant-time byte comparison (internal to security/ and its callers).
 * The loop always visits every byte of equal-length inputs, so its time does
 * not depend on where they differ. Only algorithmic: a JIT or GC can still
 * add timing noise (noble-hashes README, "Constant-timeness"). Lengths are
 * not secret and are compared first.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}
