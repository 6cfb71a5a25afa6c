/**
 * Simulated hardware watchdog on virtual time. When it expires it resets the
 * device: it throws DeviceReset("watchdog") out of whatever advanced the
 * clock (the simulation loop, or a slow flash erase inside the firmware),
 * which unwinds the firmware the way a real reset stops the CPU.
 */
import type { Watchdog } from '../../firmware/hal/watchdog.ts';
import type { ResetReason } from '../../firmware/hal/system.ts';
import type { VirtualClock } from './clock.ts';
import { setErrorName } from '../../firmware/base/error-name.ts';

export class DeviceReset extends Error {
  constructor(readonly reason: ResetReason, detail = '') {
    super(`device reset (${reason})${detail ? `: ${detail}` : ''}`);
    setErrorName(this, 'DeviceReset');
  }
}

export class SimWatchdog implements Watchdog {
  private timer: number | undefined;
  private timeoutMs = 0;
  /** Number of times it fired. */
  fired = 0;

  constructor(private readonly clock: VirtualClock) {}

  arm(timeoutMs: number): void {
    if (!(timeoutMs > 0)) throw new RangeError(`watchdog timeout must be positive, got ${timeoutMs}`);
    this.timeoutMs = timeoutMs;
    this.restart();
  }

  feed(): void {
    if (this.timer !== undefined) this.restart();
  }

  disarm(): void {
    if (this.timer !== undefined) this.clock.cancel(this.timer);
    this.timer = undefined;
  }

  get armed(): boolean {
    return this.timer !== undefined;
  }

  private restart(): void {
    this.disarm();
    this.timer = this.clock.schedule(this.timeoutMs, () => {
      this.timer = undefined;
      this.fired++;
      throw new DeviceReset('watchdog', `not fed for ${this.timeoutMs} ms`);
    }, { resets: true });
  }
}
