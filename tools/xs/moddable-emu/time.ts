/**
 * Emulated `time` and `timer` (Moddable SDK modules/base/time, modules/base/
 * timer). `Time.ticks` is `modMilliseconds()` through `xsmcSetInteger` on
 * ESP32: a signed 32-bit integer, so it reads negative from 2^31 ms on and
 * wraps at 2^32. Timers fire only when the test advances the clock.
 */
import type { TimeModule, TimerModule } from '../../../firmware/targets/moddable/modules.ts';

export class EmuTime implements TimeModule {
  /** Milliseconds since boot, unbounded; `ticks` is what the device's XS would show. */
  ms: number;

  constructor(startMs = 0) {
    this.ms = startMs;
  }

  get ticks(): number {
    return this.ms | 0;
  }
}

interface PendingTimer {
  readonly id: number;
  callback: () => void;
  dueMs: number;
}

export class EmuTimer implements TimerModule {
  private nextId = 1;
  private readonly timers = new Map<number, PendingTimer>();

  constructor(private readonly time: EmuTime) {}

  set(callback: () => void, delay: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { id, callback, dueMs: this.time.ms + Math.max(0, delay) });
    return id;
  }

  schedule(id: unknown, delay: number): void {
    const timer = this.timers.get(id as number);
    if (timer === undefined) throw new Error('timer: not scheduled');
    timer.dueMs = this.time.ms + Math.max(0, delay);
  }

  clear(id: unknown): void {
    this.timers.delete(id as number);
  }

  get pending(): number {
    return this.timers.size;
  }

  /** Move the clock by `ms`, firing due one-shot timers in due order (a throw from a callback propagates). */
  advance(ms: number): void {
    const end = this.time.ms + ms;
    for (;;) {
      let next: PendingTimer | undefined;
      for (const timer of this.timers.values()) if (timer.dueMs <= end && (next === undefined || timer.dueMs < next.dueMs)) next = timer;
      if (next === undefined) break;
      this.time.ms = Math.max(this.time.ms, next.dueMs);
      this.timers.delete(next.id);
      next.callback();
    }
    this.time.ms = end;
  }
}
