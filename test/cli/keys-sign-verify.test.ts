/**
 * `holdfast keys init|rotate`, `sign` and `verify` as a user runs them (the
 * real bin/holdfast.js in a child process): help, exit codes, file modes, a
 * key rotation drill, attacks through the CLI, and no private key byte on
 * any output.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeImageBody, decodeImageManifest } from '../../firmware/update/manifest.ts';
import { readSecretKey, REVOKED_DIR, type KeysJson } from '../../tools/keys/keystore.ts';
import { hostCrypto, signEnvelope } from '../../tools/keys/signer.ts';
import { bytesToHex } from '../../firmware/security/verify.ts';
import { rotateRoot, trustProvisionedRoot } from '../../firmware/update/root.ts';
import { decodeEnvelope, encodeEnvelope } from '../../firmware/update/signed-document.ts';
import { batch, BOARD, expectExit, holdfast as run, transcript, type Run } from './cli-harness.ts';
import { writeEspImage } from './esp-image-fixture.ts';

/** bin/holdfast.js in a child process, from `cwd`. */
function holdfast(cwd: string, ...args: string[]): Promise<Run> {
  return run(args, { cwd });
}

async function one(...args: string[]): Promise<Run> {
  return (await batch([args]))[0];
}

function keysJson(dir: string): KeysJson {
  return JSON.parse(readFileSync(join(dir, 'keys.json'), 'utf8')) as KeysJson;
}

function privateKeyFiles(dir: string): string[] {
  const out: string[] = [];
  for (const sub of ['private', REVOKED_DIR]) {
    if (statSync(join(dir, sub), { throwIfNoEntry: false }) === undefined) continue;
    for (const name of readdirSync(join(dir, sub), { withFileTypes: true })) {
      if (name.isFile()) out.push(join(dir, sub, name.name));
    }
  }
  return out;
}

describe('holdfast keys / sign / verify', () => {
  let work: string;
  let keys: string;
  let image: string;
  /** The same release as version 3, security version 2 (signed after the rotations). */
  let image3: string;
  let imageLength = 0;

  before(() => {
    work = mkdtempSync(join(tmpdir(), 'holdfast-keys-'));
    keys = join(work, 'keys');
    image = join(work, 'app.bin');
    imageLength = writeEspImage(image, { imageVersion: 2, securityVersion: 1, bodyLength: 19_600 }).length;
    image3 = join(work, 'app3.bin');
    writeEspImage(image3, { imageVersion: 3, securityVersion: 2, bodyLength: 19_600 });
  });

  after(() => {
    // No private key, in hex (either case) or base64, ever reached stdout or stderr.
    const all = transcript.join('\n');
    const files = privateKeyFiles(keys);
    assert.ok(files.length >= 4, `private keys found: ${files.length}`);
    for (const file of files) {
      const hex = readFileSync(file, 'utf8').trim();
      const seed = Buffer.from(hex, 'hex');
      for (const form of [hex.toLowerCase(), hex.toUpperCase(), seed.toString('base64'), seed.toString('base64url'), hex.slice(0, 24)]) {
        assert.ok(!all.includes(form), `private key material of ${file} appeared on an output`);
      }
    }
    rmSync(work, { recursive: true, force: true });
  });

  it('--help works on every command and names the flags', async () => {
    const expectations: [string[], string[]][] = [
      [['keys', '--help'], ['init', 'rotate']],
      [['keys', 'init', '--help'], ['--dir', '--root-keys', '--root-threshold', '--targets-keys', '--targets-threshold', '--json']],
      [['keys', 'rotate', '--help'], ['--dir', '--replace-root-key', '--replace-targets-key', '--json']],
      [['sign', '--help'], ['<image>', '--version', '--security-version', '--board', '--dir', '--rollout', '--json']],
      [['verify', '--help'], ['<image>', '<manifest>', '--dir', '--root', '--running-version', '--floor', '--board', '--json']],
      [['--help'], ['keys', 'sign', 'verify']],
      [['--version'], []],
    ];
    const runs = await batch(expectations.map(([args]) => args));
    expectations.forEach(([args, words], i) => {
      const run = expectExit(runs[i], 0, args.join(' '));
      for (const word of words) assert.ok(run.stdout.includes(word), `${args.join(' ')} help lacks ${word}`);
    });
    assert.match(runs[runs.length - 1].stdout, /^\d+\.\d+\.\d+/, 'the program version still answers --version');
  });

  it('bad usage exits 2', async () => {
    const cases: string[][] = [
      ['keys', 'init'],
      ['keys', 'init', '--dir', join(work, 'x'), '--root-keys', '9'],
      ['keys', 'init', '--dir', join(work, 'x'), '--root-keys', '2', '--root-threshold', '3'],
      ['keys', 'rotate', '--dir', keys, '--replace-root-key', 'not-hex'],
      ['keys', 'frobnicate'],
      ['sign', image, '--security-version', '1', '--board', BOARD],
      ['sign', image, '--version', '4294967296', '--security-version', '1', '--board', BOARD],
      ['sign', image, '--version', '2', '--security-version', '1', '--board', 'has space'],
      ['verify', image],
      ['verify', image, `${image}.manifest`],
      ['verify', image, `${image}.manifest`, '--dir', keys, '--root', 'root.1.bin'],
      ['verify', image, `${image}.manifest`, '--dir', keys, '--floor', 'x'],
    ];
    const runs = await batch(cases);
    cases.forEach((args, i) => {
      const run = expectExit(runs[i], 2, args.join(' '));
      assert.ok(run.stderr.length > 0, `${args.join(' ')}: says why on stderr`);
    });
    assert.ok(statSync(join(work, 'x'), { throwIfNoEntry: false }) === undefined, 'refused init wrote nothing');
    // And the real process exits with 2.
    expectExit(await holdfast(work, 'verify', image), 2, 'verify without a manifest, real process');
  });

  it('init writes root.1.bin, keys.json and 0600 private keys, and prints no private key', async () => {
    const run = expectExit(
      await holdfast(work, 'keys', 'init', '--dir', keys, '--root-keys', '3', '--root-threshold', '2', '--targets-keys', '1', '--targets-threshold', '1', '--json'),
      0,
      'keys init',
    );
    const printed = JSON.parse(run.stdout) as KeysJson;
    const stored = keysJson(keys);
    assert.deepEqual(printed, stored);
    assert.equal(stored.rootVersion, 1);
    assert.equal(stored.root.threshold, 2);
    assert.equal(stored.root.keys.length, 3);
    assert.equal(stored.targets.keys.length, 1);
    assert.deepEqual(stored.roots, ['root.1.bin']);
    for (const k of [...stored.root.keys, ...stored.targets.keys]) assert.match(k.keyId, /^[0-9a-f]{16}$/);
    assert.equal(statSync(join(keys, 'private')).mode & 0o777, 0o700, 'private/ is 0700');
    const files = privateKeyFiles(keys);
    assert.equal(files.length, 4);
    for (const file of files) assert.equal(statSync(file).mode & 0o777, 0o600, `${file} is 0600`);
    assert.ok(statSync(join(keys, 'root.1.bin')).size > 0);
    expectExit(await holdfast(work, 'keys', 'init', '--dir', keys), 1, 'init over an existing key directory');
  });

  it('sign and verify: the valid image passes (exit 0), --json reports it', async () => {
    const sign = expectExit(await holdfast(work, 'sign', image, '--version', '2', '--security-version', '1', '--board', BOARD, '--dir', keys), 0, 'sign');
    assert.match(sign.stdout, /wrote .*app\.bin\.manifest/);
    const manifest = `${image}.manifest`;
    const [plain, asJson] = await batch([
      ['verify', image, manifest, '--dir', keys, '--running-version', '1', '--floor', '1', '--board', BOARD],
      ['verify', image, manifest, '--dir', keys, '--json'],
    ]);
    assert.match(expectExit(plain, 0, 'verify').stdout, /^ok: image version 2/);
    const json = JSON.parse(expectExit(asJson, 0, 'verify --json').stdout);
    assert.equal(json.ok, true);
    assert.equal(json.reason, null);
    assert.equal(json.manifest.imageVersion, 2);
    assert.equal(json.manifest.boardId, BOARD);
    assert.equal(json.manifest.imageLength, imageLength);
    assert.equal(json.manifest.rootVersion, 1);
  });

  it('attacks through the CLI: exit 1 and a one-line reason', async () => {
    const manifest = `${image}.manifest`;
    const tampered = join(work, 'tampered.bin');
    const bytes = readFileSync(image);
    bytes[777] ^= 0x40;
    writeFileSync(tampered, bytes);
    const truncated = join(work, 'truncated.bin');
    writeFileSync(truncated, readFileSync(image).subarray(0, imageLength - 1000));
    const rows: [string, string[]][] = [
      ['tampered', ['verify', tampered, manifest, '--dir', keys]],
      ['truncated', ['verify', truncated, manifest, '--dir', keys]],
      ['wrong-board', ['verify', image, manifest, '--dir', keys, '--board', 'esp32-devkitc']],
      ['old-version', ['verify', image, manifest, '--dir', keys, '--running-version', '2']],
      ['below-security-floor', ['verify', image, manifest, '--dir', keys, '--floor', '2']],
      ['too-large', ['verify', image, manifest, '--dir', keys, '--slot-size', String(imageLength - 1)]],
      ['malformed', ['verify', image, image, '--dir', keys]],
      ['wrong-kind', ['verify', image, join(keys, 'root.1.bin'), '--dir', keys]],
    ];
    // Text output for every row, JSON for every row.
    const runs = await batch([...rows.map(([, args]) => args), ...rows.map(([, args]) => [...args, '--json'])]);
    rows.forEach(([reason], i) => {
      const lines = expectExit(runs[i], 1, reason).stdout.trim().split('\n');
      assert.equal(lines.length, 1, `${reason}: one line`);
      assert.ok(lines[0].startsWith(`${reason}: `), `${reason}: got ${lines[0]}`);
      const json = JSON.parse(expectExit(runs[rows.length + i], 1, `${reason} --json`).stdout);
      assert.equal(json.ok, false);
      assert.equal(json.reason, reason);
      assert.equal(typeof json.message, 'string');
    });
  });

  it('a private key readable by others is refused', async () => {
    const targets = keysJson(keys).targets.keys[0].keyId;
    const file = join(keys, 'private', `${targets}.key`);
    chmodSync(file, 0o644);
    try {
      const run = expectExit(await one('sign', image, '--version', '2', '--security-version', '1', '--board', BOARD, '--dir', keys, '--out', join(work, 'x.manifest')), 1, 'sign with a 0644 key');
      assert.match(run.stderr, /chmod 600/);
    } finally {
      chmodSync(file, 0o600);
    }
  });

  it('rotation drill: root.1 -> root.2 -> root.3 revokes the first targets key', async () => {
    const before = keysJson(keys);
    const oldManifest = readFileSync(`${image}.manifest`);
    const firstRoot = before.root.keys[0].keyId;
    const firstTargets = before.targets.keys[0].keyId;

    // Root 2 replaces a root key (named by a prefix); root 3 replaces (revokes) the targets key.
    const [r2, r3run] = await batch([
      ['keys', 'rotate', '--dir', keys, '--replace-root-key', firstRoot.slice(0, 6)],
      ['keys', 'rotate', '--dir', keys, '--replace-targets-key', firstTargets, '--json'],
    ]);
    assert.match(expectExit(r2, 0, 'rotate 1 -> 2').stdout, new RegExp(`root key ${firstRoot} revoked`));
    const r3 = JSON.parse(expectExit(r3run, 0, 'rotate 2 -> 3').stdout);
    assert.equal(r3.keys.rootVersion, 3);
    assert.deepEqual(r3.replaced.map((r: { role: string; keyId: string }) => [r.role, r.keyId]), [['targets', firstTargets]]);
    const after = keysJson(keys);
    assert.deepEqual(after.roots, ['root.1.bin', 'root.2.bin', 'root.3.bin']);
    assert.deepEqual(after.revoked.map((r) => [r.role, r.keyId, r.revokedInRoot]), [['root', firstRoot, 2], ['targets', firstTargets, 3]]);
    assert.ok(!after.targets.keys.some((k) => k.keyId === firstTargets));
    for (const file of privateKeyFiles(keys)) assert.equal(statSync(file).mode & 0o777, 0o600, `${file} is 0600`);

    // Root 2 adds one root key (threshold 2): the added key signed it, with the kept keys (docs/spec/root.md, "Rotation").
    const addedRoot = after.root.keys.map((k) => k.keyId).filter((id) => !before.root.keys.some((k) => k.keyId === id));
    assert.equal(addedRoot.length, 1, 'one root key added by root 2');
    const root2 = decodeEnvelope(readFileSync(join(keys, 'root.2.bin')));
    const signerIds = root2.signatures.map((e) => bytesToHex(e.keyId));
    assert.ok(signerIds.includes(addedRoot[0]), `root.2.bin signed by the added key ${addedRoot[0]} (signers ${signerIds.join(', ')})`);
    assert.ok(!signerIds.includes(firstRoot), 'the kept keys meet root 1\'s threshold: the replaced key did not need to sign');
    // Without the added key's signature a device refuses it, though the kept keys meet both thresholds.
    const root1 = trustProvisionedRoot(hostCrypto(), readFileSync(join(keys, 'root.1.bin')));
    assert.ok(root1.ok);
    const keptOnly = encodeEnvelope(root2.body, root2.signatures.filter((e) => bytesToHex(e.keyId) !== addedRoot[0]));
    const refused = rotateRoot(hostCrypto(), root1.root, keptOnly);
    assert.equal(refused.ok ? 'accepted' : refused.reason, 'root-not-cross-signed');

    // The manifest signed before the revocation, with the now revoked key.
    const old = join(work, 'old.manifest');
    writeFileSync(old, oldManifest);
    // A new manifest forged with the revoked key (an attacker who kept it).
    const revoked = readSecretKey(keys, firstTargets, REVOKED_DIR);
    assert.ok(revoked, 'revoked key archived in private/revoked');
    const fields = decodeImageManifest(oldManifest).manifest;
    const forged = join(work, 'forged.manifest');
    writeFileSync(forged, signEnvelope(encodeImageBody({ ...fields, rootVersion: 3, imageVersion: 9 }), [revoked]));
    const chain = ['--root', join(keys, 'root.1.bin'), join(keys, 'root.2.bin'), join(keys, 'root.3.bin')];
    const fresh = `${image3}.manifest`;
    const runs = await batch([
      ['verify', image, old, ...chain],
      ['verify', image, old, '--dir', keys],
      ['verify', image, forged, ...chain],
      // A manifest signed now, by the new targets key.
      ['sign', image3, '--version', '3', '--security-version', '2', '--board', BOARD, '--dir', keys, '--rollout', '25', '--cohort', '4'],
      ['verify', image3, fresh, ...chain, '--running-version', '2', '--floor', '2', '--json'],
      // A device still at root 1 must take the rotations first; a chain with a gap is refused.
      ['verify', image3, fresh, '--root', join(keys, 'root.1.bin')],
      ['verify', image3, fresh, '--root', join(keys, 'root.1.bin'), join(keys, 'root.3.bin')],
      // Trusting root 3 directly (as provisioned) works: it is signed by its own root keys.
      ['verify', image3, fresh, '--root', join(keys, 'root.3.bin'), '--running-version', '2'],
    ]);
    assert.match(expectExit(runs[0], 1, 'old manifest, revoked key').stdout, /^wrong-key: /);
    assert.match(expectExit(runs[1], 1, 'old manifest, --dir').stdout, /^wrong-key: /);
    assert.match(expectExit(runs[2], 1, 'forged with revoked key').stdout, /^wrong-key: /);
    expectExit(runs[3], 0, 'sign under root 3');
    const accepted = JSON.parse(expectExit(runs[4], 0, 'new manifest').stdout);
    assert.equal(accepted.manifest.rootVersion, 3);
    assert.deepEqual(accepted.manifest.rollout, { percent: 25, cohort: 4 });
    assert.match(expectExit(runs[5], 1, 'root 1 only').stdout, /^unknown-root: /);
    assert.match(expectExit(runs[6], 1, 'gap').stdout, /^root-not-sequential: /);
    expectExit(runs[7], 0, 'root 3 alone');
  });

  it('rotations that add several root keys are signed by min(threshold, keys added) of them, and a device accepts the chain', async () => {
    const dir = join(work, 'multi');
    const [init] = await batch([['keys', 'init', '--dir', dir, '--root-keys', '3', '--root-threshold', '2', '--json']]);
    expectExit(init, 0, 'init 3 of threshold 2');
    const ids1 = keysJson(dir).root.keys.map((k) => k.keyId);
    const [two] = await batch([['keys', 'rotate', '--dir', dir, '--replace-root-key', ids1[0], '--replace-root-key', ids1[1], '--json']]);
    const r2 = JSON.parse(expectExit(two, 0, 'replace two root keys').stdout);
    const ids2 = keysJson(dir).root.keys.map((k) => k.keyId);
    const added2 = ids2.filter((id) => !ids1.includes(id));
    assert.equal(added2.length, 2);
    for (const id of added2) assert.ok(r2.signers.includes(id), `added key ${id} signed root 2 (${r2.signers})`);
    const [three] = await batch([['keys', 'rotate', '--dir', dir, ...ids2.flatMap((id) => ['--replace-root-key', id]), '--json']]);
    const r3 = JSON.parse(expectExit(three, 0, 'replace all three root keys').stdout);
    const ids3 = keysJson(dir).root.keys.map((k) => k.keyId);
    assert.equal(r3.signers.filter((id: string) => ids3.includes(id)).length, 2, 'two of the three added keys (the threshold) signed root 3');
    assert.equal(r3.signers.filter((id: string) => ids2.includes(id)).length, 2, 'and two of root 2\'s keys');
    // The chain as a device checks it.
    let trusted = trustProvisionedRoot(hostCrypto(), readFileSync(join(dir, 'root.1.bin')));
    for (const v of [2, 3]) {
      assert.ok(trusted.ok);
      trusted = rotateRoot(hostCrypto(), trusted.root, readFileSync(join(dir, `root.${v}.bin`)));
      assert.ok(trusted.ok, `root ${v}: ${trusted.ok ? '' : trusted.reason}`);
    }
  });

  it('rotation refuses when root private keys are missing (exit 1)', async () => {
    const ids = keysJson(keys).root.keys.map((k) => k.keyId);
    const moved = ids.slice(0, 2).map((id) => {
      const from = join(keys, 'private', `${id}.key`);
      const to = join(work, `${id}.key.away`);
      writeFileSync(to, readFileSync(from), { mode: 0o600 });
      rmSync(from);
      return { from, to };
    });
    try {
      const targets = keysJson(keys).targets.keys[0].keyId;
      const run = expectExit(await one('keys', 'rotate', '--dir', keys, '--replace-targets-key', targets), 1, 'rotate without root keys');
      assert.match(run.stderr, /private keys missing/);
      assert.equal(statSync(join(keys, 'root.4.bin'), { throwIfNoEntry: false }), undefined, 'no root.4.bin written');
    } finally {
      for (const m of moved) {
        writeFileSync(m.from, readFileSync(m.to), { mode: 0o600 });
        chmodSync(m.from, 0o600);
      }
    }
  });
});
