/**
 * Registers every case of a suite twice with node:test: "[node] …" runs it
 * in Node against a local SimFlash, "[xs] …" runs the same bundled code in
 * the real XS engine against a SimFlash on the Node side. The test runner's
 * summary counts each engine from these prefixes.
 */
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { SimFlash } from '../../tools/sim/flash/sim-flash.ts';
import { saveImage } from '../../tools/sim/flash/image-file.ts';
import { FAILURE_IMAGE_DIR } from '../../tools/xs/host-services.ts';
import { XsSuiteRunner } from '../../tools/xs/suite-runner.ts';
import type { CaseEnv, CaseReport, CaseSuite } from './cases.ts';

export const NODE_ENV: CaseEnv = Object.freeze<CaseEnv>({
  engine: 'node',
  createFlash: (options) => new SimFlash(options),
  saveFailureImage: (name, snapshot) => {
    mkdirSync(FAILURE_IMAGE_DIR, { recursive: true });
    const path = resolve(join(FAILURE_IMAGE_DIR, `${name.replace(/[^\w.-]+/g, '_')}.hfimg`));
    saveImage(path, snapshot);
    return path;
  },
});

type Diagnostic = (message: string) => void;

export function testInBothEngines(suite: CaseSuite, casesModuleUrl: string): void {
  describe(suite.name, () => {
    for (const c of suite.cases) {
      it(`[node] ${c.name}`, (t) => printReport(t.diagnostic.bind(t), c.run(NODE_ENV) ?? {}));
    }
    describe('xs', () => {
      let runner: XsSuiteRunner | undefined;
      before(async () => {
        runner = await XsSuiteRunner.open(fileURLToPath(casesModuleUrl));
      });
      after(() => runner?.close());
      for (const c of suite.cases) {
        it(`[xs] ${c.name}`, (t) => {
          if (!runner) throw new Error('XS worker did not start');
          const result = runner.runCase(c.name);
          if (!result.ok) throw new Error(`in XS: ${result.error}\n${result.stack ?? ''}`);
          printReport(t.diagnostic.bind(t), { ...(result.report as CaseReport), xsCompute: result.meter.compute, xsHeapSlots: result.meter.currentHeapCount });
        });
      }
    });
  });
}

function printReport(diagnostic: Diagnostic, report: CaseReport): void {
  const entries = Object.entries(report);
  if (entries.length > 0) diagnostic(entries.map(([k, v]) => `${k}=${v}`).join(' '));
}
