/**
 * Runs a guest module in a fresh XS worker whose flash lives in Node
 * (tools/xs/host-services.ts); used by benchmark groups that meter firmware.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { bundleForXs } from '../tools/xs/bundle.ts';
import { HostServices } from '../tools/xs/host-services.ts';
import { fromUtf8, utf8 } from '../tools/xs/wire.ts';
import { XsWorker, type XsMeter } from '../tools/xs/xsnap-worker.ts';

export interface GuestSession {
  services: HostServices;
  call(message: unknown): { reply: Record<string, unknown>; meter: XsMeter };
  close(): void;
}

/** Bundle `module` and call its exported `serve` function inside a new XS worker. */
export async function openGuest(module: string, serveExport: string): Promise<GuestSession> {
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-bench-'));
  let code: string;
  try {
    const entry = join(dir, 'entry.ts');
    writeFileSync(entry, `import { ${serveExport} } from ${JSON.stringify(resolve(module))};\n${serveExport}();\n`);
    code = await bundleForXs(entry);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const services = new HostServices();
  const worker = XsWorker.spawn({ onCommand: services.handle, stdout: 'stderr' });
  worker.evaluate(code);
  return {
    services,
    call(message) {
      const { reply, meter } = worker.command(utf8(JSON.stringify(message)));
      return { reply: JSON.parse(fromUtf8(reply)) as Record<string, unknown>, meter };
    },
    close: () => worker.close(),
  };
}
