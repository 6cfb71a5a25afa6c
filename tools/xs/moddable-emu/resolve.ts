/**
 * Where each Moddable module name resolves in tests: the by-name emulations
 * in named/. Used by the esbuild plugin for XS bundles and by the Node
 * resolve hook (node-hooks.mjs), so code that imports the SDK's names
 * (firmware/targets/moddable/device.ts) runs unchanged in both engines.
 */
export const EMULATED_MODULES: Readonly<Record<string, string>> = Object.freeze({
  'embedded:storage/flash': 'embedded-storage-flash.ts',
  'embedded:io/serial': 'embedded-io-serial.ts',
  time: 'time.ts',
  timer: 'timer.ts',
  socket: 'socket.ts',
  securesocket: 'securesocket.ts',
  crypt: 'crypt.ts',
  'holdfast-native': 'holdfast-native.ts',
});

/** file: URL of the emulation standing for `specifier`, or undefined. */
export function emulatedModuleUrl(specifier: string): string | undefined {
  const file = Object.prototype.hasOwnProperty.call(EMULATED_MODULES, specifier) ? EMULATED_MODULES[specifier] : undefined;
  return file === undefined ? undefined : new URL(`./named/${file}`, import.meta.url).href;
}
