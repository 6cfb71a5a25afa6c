/**
 * Monotonic clock. Ticks are milliseconds since an arbitrary origin and wrap
 * at 2^32: compare with `elapsedMs` (firmware/base/ticks.ts), never with `<`. Wall-clock time is not
 * part of the HAL on purpose: a device's wall clock lies, and no decision in
 * holdfast may rest on it alone.
 */
export interface MonotonicClock {
  /** Milliseconds, an unsigned 32-bit value that wraps. */
  ticks(): number;
}

export const TICK_MODULUS = 0x1_0000_0000;

