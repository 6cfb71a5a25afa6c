import type { Command } from 'commander';
import { packageInfo } from '../package-info.ts';
import { FORMAT_VERSIONS } from '../../../firmware/base/format-versions.ts';

export function registerVersion(program: Command): void {
  program
    .command('version')
    .description('print the holdfast version, the Node and XS engines, and the on-flash format versions')
    .option('--json', 'machine-readable output')
    .action((options: { json?: boolean }) => {
      const info = {
        name: packageInfo().name,
        version: packageInfo().version,
        node: process.versions.node,
        xsEngine: '@agoric/xsnap 0.15.0 (XS 13.3) in tests; Moddable SDK XS on the device',
        formats: FORMAT_VERSIONS,
      };
      if (options.json) console.log(JSON.stringify(info, null, 2));
      else {
        console.log(`${info.name} ${info.version}`);
        console.log(`node ${info.node}; engine ${info.xsEngine}`);
        for (const [name, version] of Object.entries(info.formats)) console.log(`format ${name}: ${version}`);
      }
    });
}
