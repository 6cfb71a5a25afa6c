/**
 * Threshold signing by separate people (docs/ci-signing.md, "Signing in
 * parts"): each key holder has a directory with the public root chain and
 * only their own private key; a root rotation and an image manifest are
 * signed in parts (`keys rotate --partial`, `sign --partial`, `cosign`) and
 * assembled by `combine`, which keeps the result only if a device accepts
 * it. No directory ever holds two root keys.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rotateRoot, trustProvisionedRoot } from '../../firmware/update/root.ts';
import { hostCrypto } from '../../tools/keys/signer.ts';
import { assertOneLineError, batch, BOARD, expectExit, holdfast, jsonErrorOf } from './cli-harness.ts';
import { writeEspImage } from './esp-image-fixture.ts';

interface Keys {
  rootVersion: number;
  root: { keys: { keyId: string }[] };
  targets: { keys: { keyId: string }[] };
}

describe('split-party threshold signing', () => {
  let work: string;
  /** The public directory: root chain and keys.json, no private key. */
  let pub: string;
  /** One directory per key holder: the public files and their own key. */
  const holder = (name: string) => join(work, `holder-${name}`);
  let keys: Keys;
  let image: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'holdfast-split-'));
    const desk = join(work, 'desk');
    expectExit(await holdfast(['keys', 'init', '--dir', desk, '--root-keys', '3', '--root-threshold', '2', '--targets-keys', '2', '--targets-threshold', '2']), 0, 'init');
    keys = JSON.parse(readFileSync(join(desk, 'keys.json'), 'utf8')) as Keys;
    // Hand each private key to its holder; the desk becomes the public directory.
    pub = desk;
    const ids = [...keys.root.keys, ...keys.targets.keys].map((k) => k.keyId);
    for (const id of ids) {
      const dir = holder(id);
      mkdirSync(join(dir, 'private'), { recursive: true, mode: 0o700 });
      copyFileSync(join(pub, 'root.1.bin'), join(dir, 'root.1.bin'));
      renameSync(join(pub, 'private', `${id}.key`), join(dir, 'private', `${id}.key`));
    }
    assert.deepEqual(readdirSync(join(pub, 'private')), []);
    image = join(work, 'app.bin');
    writeEspImage(image, { imageVersion: 5, securityVersion: 1, bodyLength: 3700 });
  });

  after(() => rmSync(work, { recursive: true, force: true }));

  it('an image manifest signed by two targets key holders, each on their own', async () => {
    const [t1, t2] = keys.targets.keys.map((k) => k.keyId);
    const part1 = join(work, 'app.part1');
    const part2 = join(work, 'app.part2');
    const manifest = join(work, 'app.manifest');
    const [alone, partial] = await batch([
      ['sign', image, '--version', '5', '--security-version', '1', '--board', BOARD, '--dir', holder(t1), '--out', join(work, 'nope.manifest')],
      ['sign', image, '--version', '5', '--security-version', '1', '--board', BOARD, '--dir', holder(t1), '--partial', '--out', part1, '--json'],
    ]);
    const line = assertOneLineError(expectExit(alone, 1, 'sign below the threshold'), 'sign', 'sign below the threshold');
    assert.match(line, /--partial/);
    assert.equal(statSync(join(work, 'nope.manifest'), { throwIfNoEntry: false }), undefined);
    const signed = JSON.parse(expectExit(partial, 0, 'sign --partial').stdout);
    assert.deepEqual([signed.signers, signed.complete], [[t1], false]);
    // Parallel: the second holder signs a copy; combine assembles.
    copyFileSync(part1, part2);
    const [cosigned, tooFew, combined, verified] = await batch([
      ['cosign', part2, '--dir', holder(t2), '--json'],
      ['combine', part1, '--dir', pub, '--out', join(work, 'short.manifest')],
      ['combine', part1, part2, '--dir', pub, '--out', manifest, '--json'],
      ['verify', image, manifest, '--dir', pub, '--json'],
    ]);
    const c = JSON.parse(expectExit(cosigned, 0, 'cosign').stdout);
    assert.deepEqual([c.added, c.complete], [[t2], true]);
    assertOneLineError(expectExit(tooFew, 1, 'combine one part'), 'combine', 'combine one part');
    assert.equal(statSync(join(work, 'short.manifest'), { throwIfNoEntry: false }), undefined, 'an insufficient combination is not written');
    assert.deepEqual(JSON.parse(expectExit(combined, 0, 'combine').stdout).signers.sort(), [t1, t2].sort());
    assert.equal(JSON.parse(expectExit(verified, 0, 'verify').stdout).ok, true);
  });

  it('a root rotation replacing a root key, signed by two root key holders, then applied in the public directory', async () => {
    const [a, b, c] = keys.root.keys.map((k) => k.keyId);
    const part = join(work, 'root2.part');
    const fromB = join(work, 'root2.b');
    const [prepared, nobody] = await batch([
      ['keys', 'rotate', '--dir', holder(a), '--replace-root-key', a, '--partial', part, '--json'],
      ['cosign', part, '--dir', holder(keys.targets.keys[0].keyId), '--out', join(work, 'x.part'), '--json'],
    ]);
    const p = JSON.parse(expectExit(prepared, 0, 'rotate --partial').stdout);
    assert.equal(p.complete, false);
    const added = p.replaced[0].newKeyId as string;
    assert.deepEqual(p.signers.sort(), [a, added].sort(), 'the old key and the key it adds signed');
    assert.equal(statSync(join(holder(a), 'root.2.bin'), { throwIfNoEntry: false }), undefined, 'a partial rotation writes no root.2.bin');
    const nob = expectExit(nobody, 1, 'cosign without a root key');
    assert.equal(jsonErrorOf(nob, 'cosign without a root key').error.file, join(holder(keys.targets.keys[0].keyId), 'private'));
    const [cos, other, combined, json] = await batch([
      ['cosign', part, '--dir', holder(b), '--out', fromB, '--json'],
      // A part of another document is refused, naming it.
      ['combine', part, join(work, 'app.part1'), '--dir', pub],
      ['combine', part, fromB, '--dir', pub, '--json'],
      ['keys', 'rotate', '--dir', pub, '--replace-root-key', c],
    ]);
    assert.equal(JSON.parse(expectExit(cos, 0, 'cosign B').stdout).complete, true);
    const otherLine = assertOneLineError(expectExit(other, 1, 'combine mixed'), 'combine', 'combine mixed');
    assert.ok(otherLine.includes(join(work, 'app.part1')), otherLine);
    const result = JSON.parse(expectExit(combined, 0, 'combine root').stdout);
    assert.equal(result.file, join(pub, 'root.2.bin'));
    assert.equal(result.keys.rootVersion, 2);
    assert.ok(result.keys.root.keys.some((k: { keyId: string }) => k.keyId === added));
    assert.deepEqual(result.keys.revoked.map((r: { keyId: string }) => r.keyId), [a]);
    // The public directory alone cannot rotate: it holds no root key.
    assert.match(assertOneLineError(expectExit(json, 1, 'rotate in the public dir'), 'keys rotate', 'public rotate'), /private keys missing.*--partial/);
    // A device accepts the chain.
    const r1 = trustProvisionedRoot(hostCrypto(), readFileSync(join(pub, 'root.1.bin')));
    assert.ok(r1.ok);
    const r2 = rotateRoot(hostCrypto(), r1.root, readFileSync(join(pub, 'root.2.bin')));
    assert.ok(r2.ok, r2.ok ? '' : `${r2.reason}: ${r2.message}`);
    // No directory ever held two root keys.
    for (const dir of readdirSync(work).filter((n) => n.startsWith('holder-') || n === 'desk')) {
      const privateDir = join(work, dir, 'private');
      const held = readdirSync(privateDir).filter((n) => n.endsWith('.key')).map((n) => n.slice(0, 16));
      const rootIds = [a, b, c, added];
      assert.ok(held.filter((id) => rootIds.includes(id)).length <= (dir === `holder-${a}` ? 2 : 1), `${dir} holds ${held}`);
    }
  });
});
