/**
 * A simulated device: flash partitions, virtual clock, watchdog and reset
 * bookkeeping, and the boot loop that runs firmware until it returns, loses
 * power or is reset. RAM state dies with each boot because the firmware is
 * rebuilt from `main` every time; only the flash carries over.
 *
 * Flash operations take virtual time (ESP32-class figures below), so a
 * watchdog can expire in the middle of a long erase: that operation is then
 * torn exactly as a power cut would tear it, and the device resets with
 * reason "watchdog".
 */
import type { FlashPartition, FlashStatus } from '../../firmware/hal/flash.ts';
import type { ResetReason, System } from '../../firmware/hal/system.ts';
import { VirtualClock } from './clock.ts';
import { isPowerCut } from './flash/errors.ts';
import type { SimFlash } from './flash/sim-flash.ts';
import { deriveSeed } from './rng.ts';
import { DeviceReset, SimWatchdog } from './watchdog.ts';

/** Virtual cost of flash operations, in milliseconds. */
export interface FlashTiming {
  eraseBlockMs: number;
  writeMsPerByte: number;
  readMsPerByte: number;
}

/** Typical ESP32 SPI NOR: ~45 ms per 4 KiB sector erase, ~0.7 ms per 256-byte page. */
export const ESP32_FLASH_TIMING: FlashTiming = Object.freeze({ eraseBlockMs: 45, writeMsPerByte: 0.7 / 256, readMsPerByte: 0.00025 });

export interface DeviceHal {
  readonly flash: (name: string) => FlashPartition;
  readonly clock: VirtualClock;
  readonly watchdog: SimWatchdog;
  readonly system: System;
}

export type BootOutcome =
  | { kind: 'returned' }
  | { kind: 'power-cut'; operation: number }
  | { kind: 'reset'; reason: ResetReason; detail: string };

export class SimDevice {
  readonly clock = new VirtualClock();
  readonly watchdog = new SimWatchdog(this.clock);
  private readonly timed = new Map<string, TimedFlash>();
  private resetReason: ResetReason = 'power-on';
  /** Boots so far, and a log of how each ended. */
  readonly history: BootOutcome[] = [];

  constructor(partitions: Readonly<Record<string, SimFlash>>, readonly flashTiming: FlashTiming = ESP32_FLASH_TIMING, private readonly seed = 1) {
    for (const [name, flash] of Object.entries(partitions)) this.timed.set(name, new TimedFlash(flash, this, name));
  }

  /** Run one boot of `main`; returns how it ended. */
  boot(main: (hal: DeviceHal) => void): BootOutcome {
    const reason = this.resetReason;
    const system: System = {
      lastResetReason: () => reason,
      restart: (why: string) => {
        throw new DeviceReset('software', why);
      },
    };
    const hal: DeviceHal = { flash: (name) => this.partition(name), clock: this.clock, watchdog: this.watchdog, system };
    const outcome = this.runBoot(main, hal);
    this.history.push(outcome);
    return outcome;
  }

  partition(name: string): TimedFlash {
    const flash = this.timed.get(name);
    if (!flash) throw new Error(`no flash partition named ${JSON.stringify(name)}`);
    return flash;
  }

  /**
   * @internal Used by TimedFlash: the operation takes `costMs` of virtual
   * time; if a reset (the watchdog) falls due before it ends, the operation
   * is torn as a power cut would tear it and the reset follows.
   */
  spend(flash: SimFlash, costMs: number, operation: () => void): void {
    const due = this.clock.nextResetDueMs();
    if (due === undefined || due > this.clock.elapsed + costMs) {
      operation();
      this.clock.advance(costMs);
      return;
    }
    flash.armCut({ atOperation: 0, seed: deriveSeed(this.seed, this.clock.elapsed, this.history.length) });
    try {
      operation();
    } catch (error) {
      if (!isPowerCut(error)) throw error;
    } finally {
      flash.disarmCut();
    }
    this.clock.advance(costMs);
  }

  private runBoot(main: (hal: DeviceHal) => void, hal: DeviceHal): BootOutcome {
    try {
      main(hal);
      return { kind: 'returned' };
    } catch (error) {
      if (isPowerCut(error)) {
        this.afterReset('power-on');
        return { kind: 'power-cut', operation: error.operation };
      }
      if (error instanceof DeviceReset) {
        this.afterReset(error.reason);
        return { kind: 'reset', reason: error.reason, detail: error.message };
      }
      throw error;
    }
  }

  /** A reset clears the watchdog and powers the flash back up; RAM is gone with the firmware instance. */
  private afterReset(reason: ResetReason): void {
    this.watchdog.disarm();
    this.resetReason = reason;
    for (const flash of this.timed.values()) {
      flash.target.disarmCut();
      flash.target.powerOn();
    }
  }
}

/** A partition whose operations take virtual time on the device's clock. */
export class TimedFlash implements FlashPartition {
  constructor(readonly target: SimFlash, private readonly device: SimDevice, readonly name: string) {}

  status(): FlashStatus {
    return this.target.status();
  }

  read(byteOffset: number, target: Uint8Array): void {
    this.target.read(byteOffset, target);
    this.device.clock.advance(target.length * this.device.flashTiming.readMsPerByte);
  }

  write(byteOffset: number, data: Uint8Array): void {
    this.device.spend(this.target, data.length * this.device.flashTiming.writeMsPerByte, () => this.target.write(byteOffset, data));
  }

  eraseBlock(block: number): void {
    this.device.spend(this.target, this.device.flashTiming.eraseBlockMs, () => this.target.eraseBlock(block));
  }
}
