/**
 * A fresh ingest store for each run, fast: creating a PGlite database runs
 * initdb in WASM (about 17 s on the 2-core machine under load), opening one
 * that exists takes a few. So the first run creates an empty store once in
 * a template folder (per PGlite version, in the OS temp folder), and every
 * run copies the template into its own temp folder and opens that. The
 * template is made in a folder of its own and renamed into place, so two
 * runs at once never see half of one; one that does not open is made anew.
 *
 * Host tool (Node).
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { PgliteStore } from '../../ingest/store-pglite.ts';

function pgliteVersion(): string {
  try {
    const require = createRequire(import.meta.url);
    const manifest = require.resolve('@electric-sql/pglite/package.json');
    return String((JSON.parse(readFileSync(manifest, 'utf8')) as { version?: unknown }).version ?? 'unknown');
  } catch {
    return 'unknown';
  }
}

async function makeTemplate(path: string): Promise<void> {
  const staging = mkdtempSync(join(tmpdir(), 'holdfast-sim-template-'));
  try {
    const store = await PgliteStore.open(staging);
    await store.close();
    try {
      renameSync(staging, path);
    } catch {
      // Another run put its template there first: use that one.
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/** Open a fresh, empty ingest store in `dir` (which must not exist yet or be empty). */
export async function openFreshStore(dir: string): Promise<PgliteStore> {
  const template = join(tmpdir(), `holdfast-sim-store-template-pglite-${pgliteVersion()}`);
  for (let attempt = 0; attempt < 2; attempt++) {
    if (!existsSync(join(template, 'pg'))) await makeTemplate(template);
    rmSync(dir, { recursive: true, force: true });
    cpSync(template, dir, { recursive: true });
    // The lock file (if any) belonged to the process that made the template.
    rmSync(join(dir, 'lock'), { force: true });
    try {
      return await PgliteStore.open(dir);
    } catch (error) {
      // A damaged template: made anew once, else the error stands.
      rmSync(template, { recursive: true, force: true });
      if (attempt === 1) throw error;
    }
  }
  throw new Error('unreachable');
}
