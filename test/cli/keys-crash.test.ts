/**
 * `keys rotate` writes several files in an order whose every prefix is
 * safe: the k-th rename or link of a rotation is made to fail (an injected
 * EIO, as a full disk or a crash would leave things), for every k. After
 * each, the key directory still signs (its root chain is valid and the keys
 * of its newest root are there), no temporary file is left, and the next
 * rotation there completes and leaves keys.json matching the chain.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { assertOneLineError, batch, BOARD, expectExit, holdfast } from './cli-harness.ts';
import { writeEspImage } from './esp-image-fixture.ts';

/** Fails the HOLDFAST_FAIL_AT-th call of renameSync/linkSync with EIO. */
const INJECTOR = `
const fs = require('node:fs');
let calls = 0;
const failAt = Number(process.env.HOLDFAST_FAIL_AT);
for (const name of ['renameSync', 'linkSync']) {
  const real = fs[name];
  fs[name] = function (from, to) {
    calls++;
    if (calls === failAt) throw Object.assign(new Error('EIO: i/o error, ' + name + " '" + from + "' -> '" + to + "'"), { code: 'EIO', syscall: name.replace('Sync', ''), path: String(from), dest: String(to) });
    return real.apply(this, arguments);
  };
}
require('node:module').syncBuiltinESMExports();
`;

function files(dir: string): string[] {
  const out: string[] = [];
  const walk = (at: string, rel: string): void => {
    for (const e of readdirSync(at, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(at, e.name), `${rel}${e.name}/`);
      else out.push(`${rel}${e.name}`);
    }
  };
  walk(dir, '');
  return out.sort();
}

describe('keys rotate interrupted at every write', () => {
  let work: string;
  let base: string;
  let injector: string;
  let image: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'holdfast-crash-'));
    base = join(work, 'base');
    injector = join(work, 'inject.cjs');
    writeFileSync(injector, INJECTOR);
    image = join(work, 'app.bin');
    writeEspImage(image, { imageVersion: 2, securityVersion: 1, bodyLength: 600 });
    expectExit((await batch([['keys', 'init', '--dir', base, '--root-keys', '2', '--root-threshold', '1']]))[0], 0, 'init');
  });

  after(() => rmSync(work, { recursive: true, force: true }));

  it('every prefix of a rotation leaves a key directory that signs and rotates on', async () => {
    const keys = JSON.parse(readFileSync(join(base, 'keys.json'), 'utf8'));
    const rootKey = keys.root.keys[0].keyId as string;
    const targetsKey = keys.targets.keys[0].keyId as string;
    // Replacing a root key and the targets key: two new keys, the root, two moves, keys.json.
    const rotate = (dir: string) => ['keys', 'rotate', '--dir', dir, '--replace-root-key', rootKey, '--replace-targets-key', targetsKey];
    let reachedTheEnd = false;
    for (let k = 1; k <= 8 && !reachedTheEnd; k++) {
      const dir = join(work, `k${k}`);
      cpSync(base, dir, { recursive: true });
      const run = await holdfast(rotate(dir), { nodeArgs: ['--require', injector], env: { ...process.env, HOLDFAST_FAIL_AT: String(k) } });
      if (run.status === 0) {
        reachedTheEnd = true;
        assert.ok(k >= 6, `a rotation makes at least 6 renames or links, the ${k}th already succeeded`);
        break;
      }
      expectExit(run, 1, `fail at ${k}`);
      const line = assertOneLineError(run, 'keys rotate', `fail at ${k}`);
      assert.ok(line.includes(dir), `fail at ${k}: names the path: ${line}`);
      assert.ok(!files(dir).some((f) => f.endsWith('.tmp')), `fail at ${k}: no temporary file left: ${files(dir)}`);
      // The directory still signs, and the next rotation completes and tidies up.
      const [sign, next] = await batch([
        ['sign', image, '--version', '2', '--security-version', '1', '--board', BOARD, '--dir', dir, '--out', join(dir, '..', `k${k}.manifest`)],
        ['keys', 'rotate', '--dir', dir, '--replace-targets-key', currentTargets(dir)],
        ['verify', image, join(dir, '..', `k${k}.manifest`), '--dir', dir],
      ]);
      expectExit(sign, 0, `fail at ${k}: sign afterwards`);
      expectExit(next, 0, `fail at ${k}: the next rotation`);
      const final = JSON.parse(readFileSync(join(dir, 'keys.json'), 'utf8'));
      const roots = readdirSync(dir).filter((n) => /^root\.\d+\.bin$/.test(n)).sort();
      assert.deepEqual(final.roots, roots, `fail at ${k}: keys.json lists the chain`);
      const current = [...final.root.keys, ...final.targets.keys].map((x: { keyId: string }) => x.keyId);
      const held = readdirSync(join(dir, 'private')).filter((n) => n.endsWith('.key')).map((n) => n.slice(0, 16));
      for (const r of final.revoked as { keyId: string }[]) assert.ok(!held.includes(r.keyId) || current.includes(r.keyId), `fail at ${k}: revoked key ${r.keyId} moved out of private/`);
    }
    assert.ok(reachedTheEnd, 'the rotation completes once no write fails');
  });
});

/** The first targets key id of the newest root file in `dir` (keys.json may be stale after an interrupted rotation). */
function currentTargets(dir: string): string {
  const newest = readdirSync(dir).filter((n) => /^root\.\d+\.bin$/.test(n)).sort().pop() as string;
  const bytes = readFileSync(join(dir, newest));
  // Root body: 8-byte envelope header, kind, format, u32 version, thresholds and counts, then the keys (docs/spec/root.md).
  const body = bytes.subarray(8);
  const rootCount = body[7];
  const key = body.subarray(10 + 32 * rootCount, 10 + 32 * rootCount + 32);
  return keyIdOfPublicKey(key);
}

function keyIdOfPublicKey(publicKey: Uint8Array): string {
  // A key id is the first 8 bytes of SHA-256 of the public key (docs/spec/image-manifest.md).
  return createHash('sha256').update(publicKey).digest('hex').slice(0, 16);
}
