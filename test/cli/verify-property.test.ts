/**
 * `holdfast verify` on mutated manifests and images (fast-check): a valid
 * pair exits 0; any change exits 1 with a one-line reason (or 2 for bad
 * usage), never a crash, a hang or a stack trace.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { batch, type Run } from './cli-harness.ts';
import { writeEspImage } from './esp-image-fixture.ts';

/**
 * The CLI runs in a child process (cli-harness batch: one process for many
 * commands); the properties are checked over samples drawn up front.
 */
async function holdfast(
...args: string[]): Promise<Run> {
  return (await batch([args]))[0];
}

/** Run `verify --json` on each (image, manifest) pair, in one child process. */
async function verifyAll(dir: string, pairs: readonly [Uint8Array, Uint8Array][]): Promise<Run[]> {
  const jobs = pairs.map(([imageBytes, manifestBytes], i) => {
    writeFileSync(join(dir, `m${i}.bin`), manifestBytes);
    writeFileSync(join(dir, `i${i}.bin`), imageBytes);
    return ['verify', join(dir, `i${i}.bin`), join(dir, `m${i}.bin`), '--dir', join(dir, 'keys'), '--json'];
  });
  return batch(jobs);
}

describe('holdfast verify with mutated inputs', () => {
  let dir = '';
  let image = new Uint8Array(0);
  let manifest = new Uint8Array(0);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'holdfast-verify-'));
    assert.equal((await holdfast('keys', 'init', '--dir', join(dir, 'keys'))).status, 0);
    image = new Uint8Array(writeEspImage(join(dir, 'app.bin'), { imageVersion: 2, securityVersion: 1, bodyLength: 2600 }));
    const signed = await holdfast('sign', join(dir, 'app.bin'), '--version', '2', '--security-version', '1', '--board', 'esp32-wroom-32e-4mb', '--dir', join(dir, 'keys'));
    assert.equal(signed.status, 0, signed.stderr);
    manifest = new Uint8Array(readFileSync(join(dir, 'app.bin.manifest')));
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  async function verify(imageBytes: Uint8Array, manifestBytes: Uint8Array): Promise<Run> {
    return (await verifyAll(dir, [[imageBytes, manifestBytes]]))[0];
  }

  it('the genuine pair verifies', async () => {
    const run = await verify(image, manifest);
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.equal(JSON.parse(run.stdout).ok, true);
  });

  it('any mutation of the manifest is refused with a reason, never a crash', async () => {
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('extend' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 40 }) }),
      fc.record({ kind: fc.constant('random' as const), bytes: fc.uint8Array({ minLength: 0, maxLength: 300 }) }),
    );
    const mutations = fc.sample(mutation, { numRuns: 120, seed: Number(process.env.HOLDFAST_SEED ?? 16) });
    const inputs = mutations.map((m): [Uint8Array, Uint8Array] => {
      let bytes: Uint8Array;
      if (m.kind === 'flip') {
        bytes = manifest.slice();
        bytes[m.at % bytes.length] ^= 1 << m.bit;
      } else if (m.kind === 'truncate') bytes = manifest.subarray(0, m.at % manifest.length);
      else if (m.kind === 'extend') bytes = Uint8Array.from([...manifest, ...m.bytes]);
      else bytes = m.bytes;
      return [image, bytes];
    });
    const runs = await verifyAll(dir, inputs);
    runs.forEach((run, i) => {
      const what = `mutation ${JSON.stringify(mutations[i])}`;
      assert.equal(run.status, 1, `${what}: exit ${run.status}: ${run.stdout}${run.stderr}`);
      const report = JSON.parse(run.stdout) as { ok: boolean; reason: string; message: string };
      assert.equal(report.ok, false);
      assert.match(report.reason, /^[a-z-]+$/, 'a stable reason code');
      assert.ok(report.message.length > 0 && !report.message.includes('\n'), 'a one-line message');
      assert.ok(!/\bat .+:\d+:\d+/.test(run.stdout + run.stderr), 'no stack trace');
    });
  });

  it('any change to the image is refused (tampered or truncated)', async () => {
    const changes = fc.sample(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 }), fc.boolean()), { numRuns: 60, seed: Number(process.env.HOLDFAST_SEED ?? 16) });
    const inputs = changes.map(([at, bit, cut]): [Uint8Array, Uint8Array] => {
      const bytes = cut ? image.subarray(0, at % image.length) : image.slice();
      if (!cut) bytes[at % bytes.length] ^= 1 << bit;
      return [bytes, manifest];
    });
    const runs = await verifyAll(dir, inputs);
    runs.forEach((run, i) => {
      assert.equal(run.status, 1, JSON.stringify(changes[i]));
      assert.ok(['tampered', 'truncated'].includes(JSON.parse(run.stdout).reason), run.stdout);
    });
  });
});
