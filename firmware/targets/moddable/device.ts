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

export { startRuntime, RUNTIME_NAME } from '../../runtime/main.ts';
export { createModdableHal } from './hal.ts';

/** The real modules; the type checker proves here that they fit the adapters' shapes. */
export function deviceModules(): ModdableModules {
  return Object.freeze<ModdableModules>({ flash: Flash, time: Time, timer: Timer, Socket, SecureSocket, Digest, Serial, native });
}

export type DeviceOptions = Partial<ModdableHalOptions>;

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
export function createDeviceHal(options: DeviceOptions = {}): ModdableHal {
  return createModdableHal(deviceModules(), { writeLine: traceLine, ...options });
}

/** The Moddable HAL is the runtime's HAL (a compile-time proof: this compiles only while it fits). */
export function runtimeHalOf(hal: ModdableHal): RuntimeHal {
  return hal;
}

/**
 * Boot: every adapter, then the runtime over them with the device's
 * provisioning (`RuntimeConfig`: device id and secret, key id, command
 * key, broker). Holdfast has no on-device provisioning store yet: without
 * a config the boot logs `not provisioned` and the runtime does not start.
 */
export function bootDevice(config: RuntimeConfig | undefined, options: DeviceOptions = {}): { readonly hal: ModdableHal; readonly runtime: Runtime | undefined } {
  const hal = createDeviceHal(options);
  if (config === undefined) {
    hal.log.write('error', 'boot', 'not provisioned: no device id, secret or keys; the runtime does not start');
    return Object.freeze({ hal, runtime: undefined });
  }
  return Object.freeze({ hal, runtime: startRuntime(runtimeHalOf(hal), config) });
}
