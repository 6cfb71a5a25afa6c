/**
 * Every HAL adapter of the Moddable target, built from the platform's
 * modules (`ModdableModules`: the real ones in device.ts, emulated ones in
 * the tests). Building opens otadata and the two app slots and reads the
 * running slot; data partitions open on first `partition(label)`; nothing
 * is written. The result has the shape of the runtime's `RuntimeHal`
 * (firmware/runtime/main.ts) plus the update agent's pieces (otadata,
 * slots, floor).
 */
import type { FlashPartition } from '../../hal/flash.ts';
import type { MonotonicClock } from '../../hal/clock.ts';
import type { Entropy } from '../../hal/entropy.ts';
import type { Log } from '../../hal/log.ts';
import type { ByteStream, ByteStreamCallbacks, StreamConnector } from '../../hal/stream.ts';
import type { SlotIndex } from '../../hal/boot-control.ts';
import type { System } from '../../hal/system.ts';
import { createModdableClock } from './clock.ts';
import { createModdableCrypto, type ModdableCrypto } from './crypto.ts';
import { createModdableEntropy } from './entropy.ts';
import { createLineLog } from './log.ts';
import { openModdableFlash } from './flash.ts';
import { ModdableBootControl, SLOT_LABELS, slotFlashName, slotOfPartition } from './boot-control.ts';
import { createModdableSecurityFloor, type ModdableSecurityFloor } from './security-floor.ts';
import { createModdableConnector } from './stream.ts';
import { openConsoleUart, type ConsoleUartOptions } from './serial.ts';
import { createModdableSystem, createModdableWatchdog, type ModdableWatchdog } from './system.ts';
import type { ModdableModules } from './modules.ts';
import type { Actuator } from '../../hal/actuator.ts';
import { TargetError } from './errors.ts';

/** The message of ESP32's flash module when no data partition has the label (flash-esp32.c). */
export const PARTITION_NOT_FOUND = "can't find partition";

export interface ModdableHalOptions {
  /** Where log lines go (device.ts: Moddable's `trace`). */
  readonly writeLine: (line: string) => void;
  /** TLS for the MQTT stream: SecureSocket's `secure` dictionary; plain TCP when absent. */
  readonly tls?: Readonly<Record<string, unknown>>;
  /** The console UART's settings; `openConsole` refuses when absent. */
  readonly console?: ConsoleUartOptions;
  /**
   * Whether slot `slot` holds an image the device may fall back to
   * (`BootControl.rejectRunning`; the update agent checks images itself).
   * Default: refuse, so `rejectRunning` writes nothing until told how.
   */
  readonly canBootSlot?: (slot: SlotIndex) => boolean;
  /** The board's actuator; default: one that refuses every effect (`no-actuator`), reported by the command processor as outcome unknown. */
  readonly actuator?: Actuator;
}

export interface ModdableHal {
  readonly system: System;
  readonly log: Log;
  readonly clock: MonotonicClock;
  readonly entropy: Entropy;
  readonly watchdog: ModdableWatchdog;
  readonly crypto: ModdableCrypto;
  readonly connector: StreamConnector;
  readonly floor: ModdableSecurityFloor;
  readonly runningSlot: SlotIndex;
  readonly otadata: FlashPartition;
  readonly bootControl: ModdableBootControl;
  /** The two app slots, by index: the running one ("running", read-only) and the other ("nextota"). */
  readonly slots: readonly [FlashPartition, FlashPartition];
  readonly actuator: Actuator;
  /**
   * The partition with this label (board.json), opened once and then the
   * same object: "otadata" and the app slots "ota_0" / "ota_1" are the ones
   * above (ESP32's flash module opens app partitions only as "running" and
   * "nextota"); any other label opens a data partition. Undefined when the
   * partition table has no such data partition; other open failures throw.
   */
  partition(label: string): FlashPartition | undefined;
  /** The console UART as a byte stream (opened on demand: one owner). */
  openConsole(callbacks: ByteStreamCallbacks): ByteStream;
}

export function createModdableHal(modules: ModdableModules, options: ModdableHalOptions): ModdableHal {
  const { flash, native } = modules;
  const log = createLineLog(options.writeLine);
  const runningSlot = slotOfPartition(native.runningPartition());
  const otadata = openModdableFlash(flash, native, 'otadata');
  // The running image's own slot is opened read-only: nothing in holdfast writes it, and a write there would break the image the device runs.
  const openSlot = (slot: SlotIndex): FlashPartition => openModdableFlash(flash, native, slotFlashName(slot, runningSlot), slot === runningSlot ? 'r' : 'r+');
  const slots: readonly [FlashPartition, FlashPartition] = Object.freeze([openSlot(0), openSlot(1)]) as readonly [FlashPartition, FlashPartition];
  const opened = new Map<string, FlashPartition | undefined>();
  const partition = (label: string): FlashPartition | undefined => {
    if (typeof label !== 'string' || label.length === 0) throw new TypeError('label must be a non-empty string');
    if (label === 'running' || label === 'nextota') throw new RangeError(`"${label}" names an app slot: use slots`);
    if (label === 'otadata') return otadata;
    // App partitions are not data partitions: ESP32's flash module cannot open them by label, the slots can.
    const slot = SLOT_LABELS.indexOf(label);
    if (slot === 0 || slot === 1) return slots[slot];
    if (opened.has(label)) return opened.get(label);
    let opening: FlashPartition | undefined;
    try {
      opening = openModdableFlash(flash, native, label);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.includes(PARTITION_NOT_FOUND)) throw error;
      opening = undefined;
    }
    opened.set(label, opening);
    return opening;
  };
  const actuator: Actuator = options.actuator ?? Object.freeze<Actuator>({
    apply(): void {
      throw new TargetError('no-actuator', 'this build has no actuator');
    },
  });
  const canBootSlot = options.canBootSlot ?? (() => false);
  const Serial = modules.Serial;
  const consoleOptions = options.console;
  return Object.freeze<ModdableHal>({
    system: createModdableSystem(native, (reason) => log.write('info', 'system', 'restart', { reason })),
    log,
    clock: createModdableClock(modules.time),
    entropy: createModdableEntropy(native),
    watchdog: createModdableWatchdog(native, modules.timer),
    crypto: createModdableCrypto(modules.Digest),
    connector: createModdableConnector({
      Socket: modules.Socket,
      ...(modules.SecureSocket === undefined ? {} : { SecureSocket: modules.SecureSocket }),
      ...(options.tls === undefined ? {} : { tls: options.tls }),
    }),
    floor: createModdableSecurityFloor(native),
    runningSlot,
    otadata,
    bootControl: new ModdableBootControl(otadata, runningSlot, canBootSlot),
    slots,
    actuator,
    partition,
    openConsole(callbacks: ByteStreamCallbacks): ByteStream {
      if (Serial === undefined || consoleOptions === undefined) throw new TypeError('no console UART: the build has no embedded:io/serial or no console options');
      return openConsoleUart(Serial, consoleOptions, callbacks);
    },
  });
}
