/**
 * Runs moddable-device.cases.ts in Node and in XS with the Moddable module
 * names resolved to the emulations (tools/xs/moddable-emu/): in Node a
 * resolve hook registered before the cases load; for XS the cases are
 * bundled with an esbuild plugin (the shared suite runner bundles without
 * plugins), then served by the same guest case server in an XS worker.
 */
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as esbuild from 'esbuild';
import { registerModdableEmulation } from '../../tools/xs/moddable-emu/register-node.ts';
import { moddableEmulationPlugin } from '../../tools/xs/moddable-emu/esbuild-plugin.ts';
import { FREEZE_INTRINSICS_SOURCE } from '../../tools/xs/freeze-intrinsics.ts';
import { HostServices } from '../../tools/xs/host-services.ts';
import { XsWorker } from '../../tools/xs/xsnap-worker.ts';
import { fromUtf8, utf8 } from '../../tools/xs/wire.ts';
import { NODE_ENV } from '../support/engines.ts';
import type { CaseSuite } from '../support/cases.ts';

registerModdableEmulation();
const CASES = fileURLToPath(new URL('./moddable-device.cases.ts', import.meta.url));
const CASE_SERVER = fileURLToPath(new URL('../../tools/xs/guest/case-server.ts', import.meta.url));
const { suite } = (await import('./moddable-device.cases.ts')) as { suite: CaseSuite };

/** The suite with the case server, bundled as bundleForXs does, plus the emulation plugin. */
async function bundleForXsWithEmulation(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-moddable-'));
  try {
    const entry = join(dir, 'entry.ts');
    writeFileSync(entry, `import { suite } from ${JSON.stringify(CASES)};\nimport { serveSuite } from ${JSON.stringify(CASE_SERVER)};\nserveSuite(suite);\n`);
    const result = await esbuild.build({
      entryPoints: [entry],
      bundle: true,
      write: false,
      format: 'iife',
      platform: 'neutral',
      target: 'es2021',
      banner: { js: '"use strict";' },
      mainFields: ['module', 'main'],
      conditions: ['module', 'import'],
      plugins: [moddableEmulationPlugin()],
      logLevel: 'silent',
    });
    return result.outputFiles[0].text;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe(suite.name, () => {
  for (const c of suite.cases) it(`[node] ${c.name}`, () => void c.run(NODE_ENV));
  describe('xs', () => {
    let worker: XsWorker | undefined;
    before(async () => {
      const code = await bundleForXsWithEmulation();
      const services = new HostServices();
      worker = XsWorker.spawn({ onCommand: services.handle, stdout: 'stderr' });
      worker.evaluate(code);
      worker.evaluate(FREEZE_INTRINSICS_SOURCE);
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
