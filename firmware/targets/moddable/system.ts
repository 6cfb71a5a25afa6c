/**
 * `System` and `Watchdog` over holdfast's glue (tools/boards/moddable/
 * holdfast-native.c): `esp_reset_reason()`, `esp_restart()`,
 * `esp_task_wdt_reset()` and the task watchdog timeout built into the image.
 *
 * The watchdog. ESP-IDF's task watchdog (with panic, bootloader-config/)
 * watches Moddable's XS task, but Moddable feeds it at every turn of its
 * event loop (xsHost.c, modMessageService), so withholding `feed` from
 * JavaScript would never reset the device: only a single turn that blocks
 * past CONFIG_ESP_TASK_WDT_TIMEOUT_S does. The HAL's contract is "reset
 * unless fed within timeoutMs", so the adapter keeps that deadline itself
 * with Moddable's `Timer`: `arm(timeoutMs)` sets a timer, `feed()` moves it
 * `timeoutMs` ahead, `disarm()` clears it; when it fires the glue's
 * `expireWatchdog()` stops the XS task from feeding (it blocks without
 * returning), so the task watchdog panics and resets the chip, and the next
 * boot reports reset reason "watchdog" (ESP_RST_TASK_WDT), as the HAL asks.
 * The task watchdog itself stays on underneath, for a turn that never ends.
 */
import type { ResetReason, System } from '../../hal/system.ts';
import type { Watchdog } from '../../hal/watchdog.ts';
import { TargetError } from './errors.ts';
import type { HoldfastNative, TimerModule } from './modules.ts';

const RESET_REASONS: readonly ResetReason[] = Object.freeze(['power-on', 'software', 'watchdog', 'panic', 'brownout', 'unknown'] as const);

export function createModdableSystem(native: HoldfastNative, beforeRestart?: (reason: string) => void): System {
  return Object.freeze<System>({
    lastResetReason(): ResetReason {
      const reason = native.resetReason();
      return (RESET_REASONS as readonly string[]).includes(reason) ? (reason as ResetReason) : 'unknown';
    },
    restart(reason: string): never {
      if (beforeRestart !== undefined) beforeRestart(String(reason));
      native.restart();
      throw new TargetError('restart-returned', 'esp_restart returned');
    },
  });
}

export interface ModdableWatchdog extends Watchdog {
  /** The task watchdog timeout built into the image, in ms (0: none). */
  readonly builtTimeoutMs: number;
  readonly armed: boolean;
}

export function createModdableWatchdog(native: HoldfastNative, timer: TimerModule): ModdableWatchdog {
  const builtTimeoutMs = native.watchdogTimeout();
  let timerId: unknown;
  let timeout = 0;
  const expire = (): void => {
    timerId = undefined;
    native.expireWatchdog();
  };
  return Object.freeze<ModdableWatchdog>({
    builtTimeoutMs,
    get armed(): boolean {
      return timerId !== undefined;
    },
    arm(timeoutMs: number): void {
      if (typeof timeoutMs !== 'number' || !Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new RangeError(`watchdog timeout ${String(timeoutMs)} ms: expected a positive integer`);
      timeout = timeoutMs;
      if (timerId !== undefined) timer.clear(timerId);
      timerId = timer.set(expire, timeout);
      native.feedWatchdog();
    },
    feed(): void {
      native.feedWatchdog();
      if (timerId !== undefined) timer.schedule(timerId, timeout);
    },
    disarm(): void {
      if (timerId !== undefined) timer.clear(timerId);
      timerId = undefined;
    },
  });
}
