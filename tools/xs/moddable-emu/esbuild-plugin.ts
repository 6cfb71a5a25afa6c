/** esbuild side of the by-name emulation: Moddable module names resolve to named/ when bundling tests for XS. */
import { fileURLToPath } from 'node:url';
import type { Plugin } from 'esbuild';
import { EMULATED_MODULES, emulatedModuleUrl } from './resolve.ts';

export function moddableEmulationPlugin(): Plugin {
  const names = Object.keys(EMULATED_MODULES);
  const filter = new RegExp(`^(${names.map((n) => n.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')).join('|')})$`);
  return {
    name: 'moddable-emulation',
    setup(build) {
      build.onResolve({ filter }, (args) => ({ path: fileURLToPath(emulatedModuleUrl(args.path) as string) }));
    },
  };
}
