/**
 * Runs moddable-device.cases.ts in Node and in XS with the Moddable module
 * names resolved to the emulations (tools/xs/moddable-emu/): in Node a
 * resolve hook registered before the cases load; for XS the cases are
 * bundled with an esbuild plugin, then served by the same guest case server
 * in an XS worker.
 */
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { registerModdableEmulation } from '../../tools/xs/moddable-emu/register-node.ts';
import { moddableEmulationPlugin } from '../../tools/xs/moddable-emu/esbuild-plugin.ts';
import { HostServices } from '../../tools/xs/host-services.ts';
import { bundleSuiteForXs, spawnFrozenWorker } from '../../tools/xs/suite-runner.ts';
import type { XsWorker } from '../../tools/xs/xsnap-worker.ts';
import { fromUtf8, utf8 } from '../../tools/xs/wire.ts';
import { NODE_ENV } from '../support/engines.ts';
import type { CaseSuite } from '../support/cases.ts';

registerModdableEmulation();
const CASES = fileURLToPath(new URL('./moddable-device.cases.ts', import.meta.url));
const { suite } = (await import('./moddable-device.cases.ts')) as { suite: CaseSuite };

describe(suite.name, () => {
  for (const c of suite.cases) it(`[node] ${c.name}`, () => void c.run(NODE_ENV));
  describe('xs', () => {
    let worker: XsWorker | undefined;
    before(async () => {
      worker = spawnFrozenWorker(await bundleSuiteForXs(CASES, { plugins: [moddableEmulationPlugin()] }), new HostServices());
    });
    after(() => worker?.close());
    for (const c of suite.cases) {
      it(`[xs] ${c.name}`, () => {
        if (!worker) throw new Error('XS worker did not start');
        const reply = JSON.parse(fromUtf8(worker.command(utf8(JSON.stringify({ case: c.name, exhaustive: '' }))).reply)) as { ok: boolean; error?: string; stack?: string };
        if (!reply.ok) throw new Error(`in XS: ${reply.error}\n${reply.stack ?? ''}`);
      });
    }
  });
});
