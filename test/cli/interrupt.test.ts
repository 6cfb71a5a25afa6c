/**
 * An interrupted command cleans up what it created: `holdfast demo` stopped
 * by SIGINT while its XS worker runs leaves no `holdfast-xs-*` pipe folder,
 * no bundling folder and no worker process, prints one line and exits 130.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, watch } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertOneLineError, start } from './cli-harness.ts';

describe('holdfast demo interrupted', () => {
  it('SIGINT while the XS worker runs: no pipe folder left, one line, exit 130', async () => {
    // The CLI's temporary folders go to TMPDIR (os.tmpdir()): a fresh one shows what it leaves.
    const tmp = mkdtempSync(join(tmpdir(), 'holdfast-sigint-'));
    const out = mkdtempSync(join(tmpdir(), 'holdfast-sigint-out-'));
    try {
      let sent = false;
      const { child, done } = start(['demo', '--out', out], { env: { ...process.env, TMPDIR: tmp } });
      // Interrupt as soon as the worker's pipe folder exists.
      const watcher = watch(tmp, () => {
        if (!sent && readdirSync(tmp).some((n) => n.startsWith('holdfast-xs-'))) {
          sent = true;
          child.kill('SIGINT');
        }
      });
      const run = await done;
      watcher.close();
      assert.ok(sent, `the XS worker's folder appeared (stderr: ${run.stderr})`);
      const left = readdirSync(tmp).filter((n) => n.startsWith('holdfast-'));
      assert.deepEqual(left, [], 'nothing of the demo left in TMPDIR');
      assert.equal(run.status, 130, `exit ${run.status} (signal ${run.signal})\n${run.stderr}`);
      const line = assertOneLineError(run, 'demo', 'interrupted demo');
      assert.match(line, /interrupted by SIGINT/);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
      rmSync(out, { recursive: true, force: true });
    }
  });
});
