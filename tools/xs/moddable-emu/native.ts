/**
 * Emulated `holdfast-native` (tools/boards/moddable/holdfast-native.js + .c):
 * the state a test scripts (reset reason, running partition, eFuse floor,
 * built watchdog timeout) and counts of what the adapters called. `restart`
 * and `expireWatchdog` do not return on a device; here they throw
 * `EmuReset`, which unwinds the firmware as the simulator's restart does.
 */
import { setErrorName } from '../../../firmware/base/error-name.ts';
import type { HoldfastNative, ModdableBuffer } from '../../../firmware/targets/moddable/modules.ts';
import { bytesOf, type EmuFlashModule } from './flash.ts';

export class EmuReset extends Error {
  constructor(readonly kind: 'restart' | 'watchdog') {
    super(kind === 'restart' ? 'esp_restart' : 'task watchdog reset');
    setErrorName(this, 'EmuReset');
  }
}

export interface EmuNativeOptions {
  readonly flash: EmuFlashModule;
  resetReason?: string;
  runningPartition?: string;
  /** -1: built without anti-rollback. */
  secureVersion?: number;
  imageSecureVersion?: number;
  /** CONFIG_ESP_TASK_WDT_TIMEOUT_S * 1000. */
  watchdogTimeoutMs?: number;
  /** Seed of the deterministic "hardware RNG". */
  randomSeed?: number;
}

export class EmuNative implements HoldfastNative {
  resetReasonValue: string;
  runningLabel: string;
  efuse: number;
  imageVersion: number;
  builtTimeoutMs: number;
  restarts = 0;
  feeds = 0;
  expiries = 0;
  randomBytes = 0;
  readonly raises: number[] = [];
  private random: number;

  constructor(private readonly options: EmuNativeOptions) {
    this.resetReasonValue = options.resetReason ?? 'power-on';
    this.runningLabel = options.runningPartition ?? 'ota_0';
    this.efuse = options.secureVersion ?? -1;
    this.imageVersion = options.imageSecureVersion ?? 0;
    this.builtTimeoutMs = options.watchdogTimeoutMs ?? 10_000;
    this.random = (options.randomSeed ?? 1) >>> 0 || 1;
  }

  resetReason(): string {
    return this.resetReasonValue;
  }
  restart(): void {
    this.restarts++;
    throw new EmuReset('restart');
  }
  feedWatchdog(): void {
    this.feeds++;
  }
  watchdogTimeout(): number {
    return this.builtTimeoutMs;
  }
  runningPartition(): string {
    return this.runningLabel;
  }
  secureVersion(): number {
    return this.efuse;
  }
  raiseSecureVersion(version: number): void {
    if (this.efuse < 0) throw new Error('anti-rollback is not built in (holdfast build --secure-version)');
    this.raises.push(version);
    // eFuse bits only set: the floor never goes down.
    if (version > this.efuse) this.efuse = version;
  }
  imageSecureVersion(): number {
    return this.imageVersion;
  }
  expireWatchdog(): void {
    this.expiries++;
    this.resetReasonValue = 'watchdog';
    throw new EmuReset('watchdog');
  }
  fillRandom(buffer: ModdableBuffer): void {
    const target = bytesOf(buffer);
    for (let i = 0; i < target.length; i++) {
      // xorshift32: deterministic for a seed, which is all a test needs.
      let x = this.random;
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      this.random = x >>> 0;
      target[i] = this.random & 0xff;
    }
    this.randomBytes += target.length;
  }
  partitionEncrypted(name: string): boolean {
    return this.options.flash.encrypted(name);
  }
  readPartitionRaw(name: string, byteOffset: number, buffer: ModdableBuffer): void {
    this.options.flash.readRaw(name, byteOffset, buffer);
  }
}
