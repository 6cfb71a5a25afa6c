/**
 * Per-row rate limits on the monotonic clock (docs/spec/commands.md, "Rate
 * limits"). RAM only: the budget starts spent at boot (as if `count`
 * commands had started at the boot's first tick), so no command of a row
 * starts within `windowMs` of a boot, and any real-time window of
 * `windowMs` holds starts of at most one boot: at most `count`, across
 * reboots too, without persisting anything and without a wall clock.
 */
import { elapsedMs } from '../base/ticks.ts';
import type { MonotonicClock } from '../hal/clock.ts';
import type { RateLimit } from './_command-policy.ts';

export class RateLimiter {
  private readonly clock: MonotonicClock;
  /** Per row code, the start ticks inside the window (at most `count`). */
  private readonly starts = new Map<number, number[]>();
  private readonly bootTick: number;

  constructor(clock: MonotonicClock) {
    this.clock = clock;
    this.bootTick = clock.ticks();
  }

  /** Whether one more command of `code` may start now (changes nothing). */
  allows(code: number, limit: RateLimit): boolean {
    return this.recent(code, limit).length < limit.count;
  }

  /** Count a start of `code` now. */
  record(code: number, limit: RateLimit): void {
    this.recent(code, limit).push(this.clock.ticks());
  }

  /** The row's starts still inside the window, pruned. A tick count that wrapped past 2^32 ms reads as recent: it errs toward refusing. */
  private recent(code: number, limit: RateLimit): number[] {
    let list = this.starts.get(code);
    if (list === undefined) {
      list = new Array<number>(limit.count).fill(this.bootTick);
      this.starts.set(code, list);
    }
    const now = this.clock.ticks();
    while (list.length > 0 && elapsedMs(list[0], now) >= limit.windowMs) list.shift();
    return list;
  }
}
