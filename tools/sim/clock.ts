/**
 * Virtual time for the simulator: it moves only when the simulation says so
 * (`advance`), never with the host's clock, so a run is deterministic. Timers
 * registered here fire in deadline order as time passes them.
 */
import type { MonotonicClock } from '../../firmware/hal/clock.ts';
import { TICK_MODULUS } from '../../firmware/hal/clock.ts';

interface Timer {
  id: number;
  dueMs: number;
  fire: () => void;
  /** The timer resets the device when it fires (a watchdog). */
  resets: boolean;
}

export class VirtualClock implements MonotonicClock {
  private nowMs: number;
  private timers: Timer[] = [];
  private nextId = 1;

  /** `startMs` lets a test start near the 2^32 wrap. */
  constructor(startMs = 0) {
    this.nowMs = startMs;
  }

  ticks(): number {
    return Math.floor(this.nowMs) % TICK_MODULUS;
  }

  /** Unwrapped simulated milliseconds since the clock was made (plus startMs). */
  get elapsed(): number {
    return this.nowMs;
  }

  /** Run `fire` once `delayMs` from now; returns an id for `cancel`. */
  schedule(delayMs: number, fire: () => void, options: { resets?: boolean } = {}): number {
    const id = this.nextId++;
    this.timers.push({ id, dueMs: this.nowMs + Math.max(0, delayMs), fire, resets: options.resets === true });
    this.timers.sort((a, b) => a.dueMs - b.dueMs || a.id - b.id);
    return id;
  }

  /** Deadline of the next timer, or undefined when none is pending. */
  nextDueMs(): number | undefined {
    return this.timers[0]?.dueMs;
  }

  /** Deadline of the next timer that resets the device (a watchdog), if any. */
  nextResetDueMs(): number | undefined {
    return this.timers.find((t) => t.resets)?.dueMs;
  }

  cancel(id: number): void {
    this.timers = this.timers.filter((t) => t.id !== id);
  }

  /**
   * Move time forward by `ms`, firing due timers in order at their own
   * times. A timer that throws (a watchdog reset) stops time at its deadline.
   */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`time cannot move backwards (${ms} ms)`);
    const target = this.nowMs + ms;
    for (;;) {
      const next = this.timers[0];
      if (!next || next.dueMs > target) break;
      this.timers.shift();
      this.nowMs = next.dueMs;
      next.fire();
    }
    this.nowMs = target;
  }
}
