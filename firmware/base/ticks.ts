import { TICK_MODULUS } from '../hal/clock.ts';

/** Milliseconds from `earlier` to `later` ticks, correct across one wrap. */
export function elapsedMs(earlier: number, later: number): number {
  return (later - earlier + TICK_MODULUS) % TICK_MODULUS;
}
