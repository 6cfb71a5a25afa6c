/**
 * Reconnect backoff (docs/spec/mqtt-session.md, "Backoff"): bounded
 * exponential with full jitter. A pure function of the attempt number and
 * the entropy HAL: never Math.random.
 */
import type { Entropy } from '../../hal/entropy.ts';

export interface BackoffOptions {
  /** Ceiling of the first attempt's delay, ms (default 1,000). */
  readonly baseMs?: number;
  /** Largest delay ever returned, ms (default 300,000). */
  readonly capMs?: number;
}

/**
 * Delay before reconnect attempt `attempt` (0 = first retry): a uniform
 * integer in [0, min(cap, base * 2^attempt)] ("full jitter").
 */
export function backoffDelayMs(attempt: number, entropy: Entropy, options: BackoffOptions = {}): number {
  const ceiling = backoffCeilingMs(attempt, options);
  const bytes = new Uint8Array(4);
  entropy.fill(bytes);
  const r = ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0;
  // r / 2^32 in [0, 1): the result is in [0, ceiling].
  return Math.floor((r / 0x1_0000_0000) * (ceiling + 1));
}

/** The largest delay attempt `attempt` may get: min(cap, base * 2^attempt). */
export function backoffCeilingMs(attempt: number, options: BackoffOptions = {}): number {
  const base = options.baseMs ?? 1000;
  const cap = options.capMs ?? 300_000;
  if (!Number.isInteger(attempt) || attempt < 0) throw new RangeError(`attempt ${String(attempt)} is not a non-negative integer`);
  if (!Number.isInteger(base) || base < 1 || !Number.isInteger(cap) || cap < base || cap > 0x7fffffff) throw new RangeError(`backoff bounds ${String(base)}..${String(cap)} invalid`);
  // 2^attempt overflows nothing: the exponent is clamped once the cap is reached.
  return Math.min(cap, base * 2 ** Math.min(attempt, 31));
}
