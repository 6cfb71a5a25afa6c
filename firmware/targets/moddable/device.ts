/**
 * The device entry of the Moddable target: the one file that imports the
 * Moddable SDK's modules by name (declared in moddable-sdk.d.ts) and the
 * runtime. `holdfast build --board <id>` bundles it (the SDK's and the
 * glue's specifiers stay imports) as the project's "holdfast" module;
 * tools/boards/moddable/main.js calls `bootDevice`.
 */
import Flash from 'embedded:storage/flash';
import Serial from 'embedded:io/serial';
import Time from 'time';
import Timer from 'timer';
import { Socket } from 'socket';
import SecureSocket from 'securesocket';
import { Digest } from 'crypt';
import * as native from 'holdfast-native';
import { startRuntime, type Runtime, type RuntimeConfig, type RuntimeHal } from '../../runtime/main.ts';
import { createModdableHal, type ModdableHal, type ModdableHalOptions } from './hal.ts';
import type { ModdableModules } from './modules.ts';
import { driveRuntime, startDeviceConsole, TeeLog, withBoardUpdate, type DeviceBoard, type DeviceConsole, type RuntimeDriver } from './run.ts';
import { readDeviceProvisioning, type DeviceProvisioning } from './provisioned.ts';

export { startRuntime, RUNTIME_NAME } from '../../runtime/main.ts';
export { createModdableHal } from './hal.ts';
export { linkCheckDeadlines, withBoardUpdate, type DeviceBoard } from './run.ts';
export { readDeviceProvisioning, runtimeConfigOf, type DeviceProvisioning } from './provisioned.ts';

/** The real modules; the type checker proves here that they fit the adapters' shapes. */
export function deviceModules(): ModdableModules {
  return Object.freeze<ModdableModules>({ flash: Flash, time: Time, timer: Timer, Socket, SecureSocket, Digest, Serial, native });
}

export type DeviceHalOptions = Partial<ModdableHalOptions>;

export interface DeviceOptions extends DeviceHalOptions {
  /** The board (mc/config's `holdfast`): its update settings and the trial's link checks (run.ts `withBoardUpdate`). */
  readonly board?: DeviceBoard;
  /** The fleet's console public key (32 bytes) for the serial console's unlock; absent: the console is read-only. */
  readonly consoleKey?: Uint8Array;
  /** Service the runtime from a Timer (default true). */
  readonly drive?: boolean;
}

/**
 * Moddable's `trace` (xsbug, or the serial console in a release build): a
 * global of the device, looked up when a line is written so that it is
 * not declared for the whole code base.
 */
function traceLine(line: string): void {
  const trace = (globalThis as { trace?: (text: string) => void }).trace;
  if (typeof trace === 'function') trace(line);
}

/** Every adapter over the real modules; log lines go to `trace` unless told otherwise. */
export function createDeviceHal(options: DeviceHalOptions = {}): ModdableHal {
  return createModdableHal(deviceModules(), { writeLine: traceLine, ...options });
}

/** The Moddable HAL is the runtime's HAL (a compile-time proof: this compiles only while it fits). */
export function runtimeHalOf(hal: ModdableHal): RuntimeHal {
  return hal;
}

export interface BootedDevice {
  readonly hal: ModdableHal;
  readonly runtime: Runtime | undefined;
  /** The serial console on the console UART (absent without console options, or when the UART did not open). */
  readonly console: DeviceConsole | undefined;
  readonly driver: RuntimeDriver | undefined;
}

/**
 * Boot: every adapter, then the runtime over them with the device's
 * provisioning (`RuntimeConfig`: device id and secret, key id, command
 * key, broker) and the board's update settings (the trial's link checks
 * on, deadlines from the board's task watchdog), then the serial console
 * on the console UART (a ConsoleServer over `runtimeConsoleTarget`, also
 * the runtime's log), then one Timer servicing the runtime. Without a
 * config the boot logs `not provisioned` and the runtime does not start
 * (`bootProvisionedDevice` reads the config from `hf_prov`).
 */
export function bootDevice(config: RuntimeConfig | undefined, options: DeviceOptions = {}): BootedDevice {
  const hal = createDeviceHal(halOptionsOf(options));
  if (config === undefined) {
    hal.log.write('error', 'boot', 'not provisioned: no device id, secret or keys; the runtime does not start');
    return Object.freeze({ hal, runtime: undefined, console: undefined, driver: undefined });
  }
  return startOn(hal, config, options);
}

export interface ProvisionedBoot extends BootedDevice {
  /** What `hf_prov` held: provisioned, not provisioned, or the boot failure `provisioning-unreadable`. */
  readonly provisioning: DeviceProvisioning;
}

/**
 * The device's boot (tools/boards/moddable/main.js): every adapter, then
 * the provisioning record in `hf_prov` (provisioned.ts). Provisioned: the
 * runtime starts as `bootDevice` starts it, with the record's config and
 * console key (unless `options.consoleKey`). Not provisioned, or a record
 * that does not read (safe mode persisted): logged, no runtime, no network.
 */
export function bootProvisionedDevice(options: DeviceOptions = {}): ProvisionedBoot {
  const hal = createDeviceHal(halOptionsOf(options));
  const provisioning = readDeviceProvisioning(hal);
  if (provisioning.state !== 'provisioned') return Object.freeze({ hal, runtime: undefined, console: undefined, driver: undefined, provisioning });
  const key = options.consoleKey ?? provisioning.consoleKey;
  const booted = startOn(hal, provisioning.config, { ...options, ...(key === undefined ? {} : { consoleKey: key }) });
  return Object.freeze({ ...booted, provisioning });
}

function halOptionsOf(options: DeviceOptions): DeviceHalOptions {
  const { board: _board, consoleKey: _consoleKey, drive: _drive, ...halOptions } = options;
  return halOptions;
}

function startOn(hal: ModdableHal, config: RuntimeConfig, options: DeviceOptions): BootedDevice {
  const { board, consoleKey, drive, ...halOptions } = options;
  const log = new TeeLog(hal.log);
  const runtime = startRuntime({ ...runtimeHalOf(hal), log }, withBoardUpdate(config, board));
  let driver: RuntimeDriver | undefined;
  let serial: DeviceConsole | undefined;
  if (halOptions.console !== undefined) {
    try {
      serial = startDeviceConsole(hal, runtime, { deviceId: config.deviceId, ...(consoleKey === undefined ? {} : { consoleKey }), onInput: () => driver?.kick() });
      log.console = serial.server;
    } catch (error) {
      // A debug build keeps UART0 for xsbug ("port in use"): the device runs without its console.
      hal.log.write('error', 'console', 'console UART not opened: no serial console', { error: error instanceof Error ? error.message : String(error) });
    }
  }
  if (drive !== false) driver = driveRuntime(runtime, deviceModules().timer, () => hal.clock.ticks());
  return Object.freeze({ hal, runtime, console: serial, driver });
}
