/**
 * Node side: loads a suite of firmware cases into a real XS worker and runs
 * them one at a time. The suite module is bundled with the guest case server
 * (es2021, "use strict"), so exactly the code Node runs is what XS runs.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleForXs, type BundleForXsOptions } from './bundle.ts';
import { FREEZE_INTRINSICS_SOURCE } from './freeze-intrinsics.ts';
import { HostServices } from './host-services.ts';
import { XsWorker, type XsMeter } from './xsnap-worker.ts';
import { fromUtf8, utf8 } from './wire.ts';

export interface XsCaseResult {
  ok: boolean;
  report?: Record<string, unknown>;
  error?: string;
  stack?: string;
  meter: XsMeter;
}

const CASE_SERVER = fileURLToPath(new URL('./guest/case-server.ts', import.meta.url));

/**
 * A worker that has evaluated `code` and then frozen the built-ins, as a
 * device build does once the modules are preloaded (freeze-intrinsics.ts).
 * Closed again when either evaluation throws.
 */
export function spawnFrozenWorker(code: string, services: HostServices): XsWorker {
  const worker = XsWorker.spawn({ onCommand: services.handle, stdout: 'stderr' });
  try {
    worker.evaluate(code);
    worker.evaluate(FREEZE_INTRINSICS_SOURCE);
  } catch (error) {
    worker.close();
    throw error;
  }
  return worker;
}

/** Bundle `casesModule` (which exports `suite`) with the case server, ready to evaluate in XS. */
export async function bundleSuiteForXs(casesModule: string, options: BundleForXsOptions = {}): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-suite-'));
  try {
    const entry = join(dir, 'entry.ts');
    writeFileSync(
      entry,
      `import { suite } from ${JSON.stringify(resolve(casesModule))};\n` +
        `import { serveSuite } from ${JSON.stringify(CASE_SERVER)};\n` +
        `serveSuite(suite);\n`,
    );
    return await bundleForXs(entry, options);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export class XsSuiteRunner {
  readonly services: HostServices;

  private constructor(private readonly worker: XsWorker, services: HostServices) {
    this.services = services;
  }

  static async open(casesModule: string): Promise<XsSuiteRunner> {
    const code = await bundleSuiteForXs(casesModule);
    const services = new HostServices();
    return new XsSuiteRunner(spawnFrozenWorker(code, services), services);
  }

  caseNames(): string[] {
    const reply = this.request({ list: true });
    return (reply as { names: string[] }).names;
  }

  runCase(name: string): XsCaseResult {
    // XS has no environment: the power-cut runner's tier flag travels with each request.
    const exhaustive = process.env.HOLDFAST_EXHAUSTIVE ?? '';
    const { reply, meter } = this.worker.command(utf8(JSON.stringify({ case: name, exhaustive })));
    return { ...(JSON.parse(fromUtf8(reply)) as Omit<XsCaseResult, 'meter'>), meter };
  }

  close(): void {
    this.worker.close();
  }

  private request(message: unknown): unknown {
    return JSON.parse(fromUtf8(this.worker.command(utf8(JSON.stringify(message))).reply));
  }
}
