/**
 * Node side of the by-name emulation: registers a resolve hook so that
 * `import Flash from 'embedded:storage/flash'` (and the other names of
 * EMULATED_MODULES) loads the emulation. Call before importing code that
 * uses those names (dynamic import after this call).
 */
import { register } from 'node:module';
import { EMULATED_MODULES, emulatedModuleUrl } from './resolve.ts';

export function registerModdableEmulation(): void {
  const urls: Record<string, string> = {};
  for (const name of Object.keys(EMULATED_MODULES)) urls[name] = emulatedModuleUrl(name) as string;
  register(new URL('./node-hooks.mjs', import.meta.url), { data: { urls } });
}
