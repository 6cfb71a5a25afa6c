/**
 * Issue 16 through the real CLI (child processes): atomic multi-file writes
 * that validate first, bounded reads, clear one-line errors naming the file
 * and field, --json error objects, validated numeric flags (hex where
 * partition tables use it), exit code 3 for a missing XS engine, default
 * outputs relative to the current directory, `keys rotate` with nothing to
 * replace. Each case checks stdout, stderr and the exit code.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertOneLineError, batch, BIN, BOARD, expectExit, holdfast, jsonErrorOf, REPO, type Run } from './cli-harness.ts';
import { writeEspImage } from './esp-image-fixture.ts';

/** Every file under `dir` with its size and mtime: "nothing was written" is this map unchanged. */
function tree(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (at: string): void => {
    for (const e of readdirSync(at, { withFileTypes: true })) {
      const p = join(at, e.name);
      if (e.isDirectory()) walk(p);
      else {
        const s = statSync(p);
        out.set(p, `${s.size}:${s.mtimeMs}:${s.mode}`);
      }
    }
  };
  walk(dir);
  return out;
}

/** Peak resident memory (KiB) of the CLI running `args`, through /usr/bin/time. */
function maxRss(args: string[], cwd: string): Promise<{ run: Run; kib: number }> {
  const file = join(cwd, `rss-${process.hrtime.bigint()}.txt`);
  return new Promise((resolve) => {
    execFile('/usr/bin/time', ['-o', file, '-f', '%M', process.execPath, BIN, ...args], { cwd, encoding: 'utf8', timeout: 120_000 }, (error, stdout, stderr) => {
      const status = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
      const kib = Number(readFileSync(file, 'utf8').trim().split('\n').pop());
      resolve({ run: { status, stdout, stderr }, kib });
    });
  });
}

describe('holdfast CLI contract (issue 16)', () => {
  let work: string;
  let keys: string;
  let image: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'holdfast-contract-'));
    keys = join(work, 'keys');
    image = join(work, 'app.bin');
    writeEspImage(image, { imageVersion: 2, securityVersion: 1, bodyLength: 4600 });
    const [init, sign] = await batch([
      ['keys', 'init', '--dir', keys, '--root-keys', '3', '--root-threshold', '2'],
      ['sign', image, '--version', '2', '--security-version', '1', '--board', BOARD, '--dir', keys],
    ]);
    expectExit(init, 0, 'init');
    expectExit(sign, 0, 'sign');
  });

  after(() => rmSync(work, { recursive: true, force: true }));

  /** A copy of the key directory to damage. */
  function copyKeys(name: string): string {
    const dir = join(work, name);
    const walk = (from: string, to: string): void => {
      mkdirSync(to, { recursive: true, mode: 0o700 });
      for (const e of readdirSync(from, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(from, e.name), join(to, e.name));
        else {
          copyFileSync(join(from, e.name), join(to, e.name));
        }
      }
    };
    walk(keys, dir);
    return dir;
  }

  it('keys rotate on a damaged keys.json writes nothing and names the file and field (twice: a rerun writes nothing either)', async () => {
    const dir = copyKeys('damaged');
    const good = JSON.parse(readFileSync(join(dir, 'keys.json'), 'utf8'));
    const rootKey = good.root.keys[0].keyId;
    const cases: [string, string, string][] = [
      ['revoked', JSON.stringify({ ...good, revoked: 5 }), 'revoked'],
      ['only revoked', '{"revoked":5}', 'format'],
      ['not JSON', '{"format": "holdfast-keys/1", ', 'keys.json'],
      ['key id', JSON.stringify({ ...good, root: { ...good.root, keys: [{ keyId: 7 }] } }), 'root.keys[0].keyId'],
    ];
    for (const [n, [what, text, field]] of cases.entries()) {
      writeFileSync(join(dir, 'keys.json'), text);
      const before = tree(dir);
      // The first case through bin/holdfast.js, the others through main in one child process (faster).
      const args = ['keys', 'rotate', '--dir', dir, '--replace-root-key', rootKey];
      const runs = n === 0 ? [await holdfast(args), await holdfast(args)] : await batch([args, args]);
      for (const [attempt, raw] of runs.entries()) {
        const run = expectExit(raw, 1, `${what} #${attempt + 1}`);
        const line = assertOneLineError(run, 'keys rotate', what);
        assert.ok(line.includes(join(dir, 'keys.json')), `${what}: names the file: ${line}`);
        assert.ok(line.includes(field), `${what}: names ${field}: ${line}`);
        assert.ok(!line.includes('is not iterable') && !line.includes('intermediate value'), `${what}: no JavaScript internals: ${line}`);
        assert.equal(run.stdout, '', `${what}: nothing on stdout`);
        assert.deepEqual(tree(dir), before, `${what} #${attempt}: nothing written, moved or removed`);
      }
    }
    // --json: the error object names the file and the field.
    writeFileSync(join(dir, 'keys.json'), JSON.stringify({ ...good, revoked: 5 }));
    const run = expectExit(await holdfast(['keys', 'rotate', '--dir', dir, '--replace-root-key', rootKey, '--json']), 1, 'rotate --json');
    const json = jsonErrorOf(run, 'rotate --json');
    assert.equal(json.error.file, join(dir, 'keys.json'));
    assert.equal(json.error.field, 'revoked');
    // Without keys.json (it is a mirror), the rotation rebuilds it from the root files, revocations included.
    rmSync(join(dir, 'keys.json'));
    expectExit(await holdfast(['keys', 'rotate', '--dir', dir, '--replace-root-key', rootKey]), 0, 'rotate without keys.json');
    const rebuilt = JSON.parse(readFileSync(join(dir, 'keys.json'), 'utf8'));
    assert.deepEqual(rebuilt.roots, ['root.1.bin', 'root.2.bin']);
    assert.deepEqual(rebuilt.revoked.map((r: { keyId: string; role: string; revokedInRoot: number }) => [r.keyId, r.role, r.revokedInRoot]), [[rootKey, 'root', 2]]);
    assert.ok(statSync(join(dir, 'private/revoked', `${rootKey}.key`)).isFile(), 'the replaced key moved to private/revoked');
  });

  it('keys rotate with nothing to replace refuses (exit 2) and writes no root', async () => {
    const dir = copyKeys('noop');
    const before = tree(dir);
    const run = expectExit(await holdfast(['keys', 'rotate', '--dir', dir]), 2, 'rotate nothing');
    const line = assertOneLineError(run, 'keys rotate', 'rotate nothing');
    assert.match(line, /nothing to replace/);
    assert.match(line, /--replace-root-key/);
    assert.deepEqual(tree(dir), before);
  });

  it('a key directory with root.1.bin and root.01.bin names the odd file', async () => {
    const dir = copyKeys('zeros');
    copyFileSync(join(dir, 'root.1.bin'), join(dir, 'root.01.bin'));
    const runs = await batch([
      ['sign', image, '--version', '2', '--security-version', '1', '--board', BOARD, '--dir', dir, '--out', join(work, 'zeros.manifest')],
      ['keys', 'rotate', '--dir', dir, '--replace-targets-key', JSON.parse(readFileSync(join(dir, 'keys.json'), 'utf8')).targets.keys[0].keyId],
    ]);
    for (const [i, command] of ['sign', 'keys rotate'].entries()) {
      const line = assertOneLineError(expectExit(runs[i], 1, command), command, command);
      assert.ok(line.includes(join(dir, 'root.01.bin')), `${command}: names root.01.bin: ${line}`);
      assert.match(line, /leading zeros/);
      assert.ok(!line.includes('no root.2.bin'), line);
    }
    assert.equal(statSync(join(work, 'zeros.manifest'), { throwIfNoEntry: false }), undefined);
  });

  it('--json prints a JSON error object on failure; Node errors name the path and what was expected', async () => {
    const dirAsFile = join(work, 'adir');
    mkdirSync(dirAsFile, { recursive: true });
    const cases: { args: string[]; command: string; code: number; file: string; says: RegExp }[] = [
      { args: ['verify', join(work, 'nofile'), join(work, 'm'), '--dir', keys, '--json'], command: 'verify', code: 1, file: join(work, 'nofile'), says: /does not exist: expected an image file/ },
      { args: ['verify', image, dirAsFile, '--dir', keys, '--json'], command: 'verify', code: 1, file: dirAsFile, says: /is a directory: expected a manifest/ },
      { args: ['sign', dirAsFile, '--version', '2', '--security-version', '1', '--board', BOARD, '--dir', keys, '--json'], command: 'sign', code: 1, file: dirAsFile, says: /is a directory: expected an image file/ },
      { args: ['sign', image, '--version', '2', '--security-version', '1', '--board', BOARD, '--dir', image, '--json'], command: 'sign', code: 1, file: image, says: /is not a directory: expected a key directory/ },
      { args: ['sign', image, '--version', '2', '--security-version', '1', '--board', BOARD, '--dir', keys, '--out', dirAsFile, '--json'], command: 'sign', code: 1, file: dirAsFile, says: /is a directory: expected a path for the manifest/ },
      { args: ['keys', 'init', '--dir', image, '--json'], command: 'keys init', code: 1, file: image, says: /is not a directory/ },
      { args: ['check', image, '--json'], command: 'check', code: 1, file: image, says: /is not a directory: expected a firmware source folder/ },
      { args: ['inspect', dirAsFile, '--json'], command: 'inspect', code: 1, file: dirAsFile, says: /is a directory: expected a holdfast flash image/ },
    ];
    const runs = await batch(cases.map((c) => c.args));
    cases.forEach((c, i) => {
      const what = c.args.join(' ');
      const run = expectExit(runs[i], c.code, what);
      const line = assertOneLineError(run, c.command, what);
      assert.ok(line.includes(c.file), `${what}: names ${c.file}: ${line}`);
      assert.match(line, c.says, what);
      assert.ok(!/\bE[A-Z]{3,}\b/.test(line), `${what}: no raw Node error code: ${line}`);
      const json = jsonErrorOf(run, what);
      assert.equal(json.error.file, c.file, what);
    });
    // The real process too, and a usage error under --json.
    const real = expectExit(await holdfast(['verify', join(work, 'nofile'), join(work, 'm'), '--dir', keys, '--json']), 1, 'real verify nofile');
    assert.equal(jsonErrorOf(real, 'real verify nofile').error.code, 'not-found');
    const usage = expectExit(await holdfast(['sign', image, '--version', 'x', '--security-version', '1', '--board', BOARD, '--json']), 2, 'usage --json');
    assertOneLineError(usage, 'sign', 'usage --json');
    const u = jsonErrorOf(usage, 'usage --json');
    assert.equal(u.error.code, 'usage');
    assert.equal(u.error.field, '--version');
  });

  it('a 1 GiB manifest is refused by its size without being read; a 512 MiB image is refused by its size, never read whole', async () => {
    const big = join(work, 'big.manifest');
    writeFileSync(big, '');
    truncateSync(big, 1 << 30);
    const verify = await maxRss(['verify', image, big, '--dir', keys, '--json'], work);
    assert.ok(verify.kib < 300 * 1024, `verify used ${verify.kib} KiB: the manifest was read`);
    expectExit(verify.run, 1, 'verify 1 GiB manifest');
    const report = JSON.parse(verify.run.stdout);
    assert.equal(report.reason, 'malformed');
    assert.match(report.message, /1073741824 bytes/);
    rmSync(big);
    const huge = join(work, 'huge.bin');
    writeFileSync(huge, '');
    truncateSync(huge, 512 * 1024 * 1024);
    const sign = await maxRss(['sign', huge, '--version', '2', '--security-version', '1', '--board', BOARD, '--dir', keys, '--json'], work);
    assert.ok(sign.kib < 300 * 1024, `sign used ${sign.kib} KiB: the image was read whole`);
    // Larger than the board's app slot: refused from its size, before a byte of it is read.
    expectExit(sign.run, 1, 'sign 512 MiB');
    assert.match(JSON.parse(sign.run.stdout).error.message, /is 536870912 bytes: expected at most \d+, the app slot of esp32-wroom-32e-4mb/);
    // Verify against the manifest: the image is not hashed when its length already differs.
    const mismatch = await maxRss(['verify', huge, `${image}.manifest`, '--dir', keys, '--json'], work);
    expectExit(mismatch.run, 1, 'verify huge image');
    assert.equal(JSON.parse(mismatch.run.stdout).reason, 'tampered');
    assert.ok(mismatch.kib < 300 * 1024, `verify used ${mismatch.kib} KiB`);
    rmSync(huge);
    rmSync(`${huge}.manifest`, { force: true });
  });

  it('unclear messages: a .hfimg header field, deeply nested source', async () => {
    // A saved flash image with a header field missing.
    const hfimg = join(work, 'bad.hfimg');
    const header = new TextEncoder().encode(JSON.stringify({ format: 1, mode: 'plain', blockLength: 4096, writeAlign: 1 }));
    const bytes = new Uint8Array(12 + header.length + 100);
    bytes.set(new TextEncoder().encode('HFIMAGE1'));
    new DataView(bytes.buffer).setUint32(8, header.length, true);
    bytes.set(header, 12);
    writeFileSync(hfimg, bytes);
    // Firmware source nested deeper than the checker's recursion.
    const deep = join(work, 'deepfw');
    mkdirSync(join(deep, 'storage'), { recursive: true });
    writeFileSync(join(deep, 'storage', 'ok.ts'), 'export const a = 1;\n');
    writeFileSync(join(deep, 'storage', 'nested.ts'), `export const a = ${'['.repeat(20_000)}${']'.repeat(20_000)};\n`);
    const runs = await batch([['inspect', hfimg], ['check', deep], ['check', deep, '--json']]);
    const img = assertOneLineError(expectExit(runs[0], 1, 'inspect'), 'inspect', 'inspect');
    assert.ok(img.includes(hfimg) && img.includes('blocks') && !img.includes('NaN'), img);
    const chk = assertOneLineError(expectExit(runs[1], 1, 'check deep'), 'check', 'check deep');
    assert.ok(chk.includes(join(deep, 'storage', 'nested.ts')), chk);
    assert.ok(!/Maximum call stack/.test(chk), chk);
    assert.equal(jsonErrorOf(runs[2], 'check --json').error.file, join(deep, 'storage', 'nested.ts'));
  });

  it('numeric flags are validated before work starts; --slot-size takes hex as partition tables write it', async () => {
    const tmp = mkdtempSync(join(work, 'tmp-'));
    const env = { ...process.env, TMPDIR: tmp };
    for (const args of [['demo', '--cut-at', 'abc'], ['demo', '--seed', '-1'], ['demo', '--cut-at', '1e3']]) {
      const run = expectExit(await holdfast(args, { env, cwd: work }), 2, args.join(' '));
      const line = assertOneLineError(run, 'demo', args.join(' '));
      assert.ok(line.includes(args[1]), `names ${args[1]}: ${line}`);
      assert.deepEqual(readdirSync(tmp).filter((n) => n.startsWith('holdfast-')), [], `${args.join(' ')}: nothing started (no XS worker, no bundle)`);
    }
    const manifest = `${image}.manifest`;
    const runs = await batch([
      ['verify', image, manifest, '--dir', keys, '--slot-size', '0x180000'],
      ['verify', image, manifest, '--dir', keys, '--slot-size', '0x1000', '--json'],
      ['verify', image, manifest, '--dir', keys, '--slot-size', '0x'],
      ['verify', image, manifest, '--dir', keys, '--slot-size', '0x1_000'],
      ['verify', image, manifest, '--dir', keys, '--running-version', '0x10'],
    ]);
    assert.match(expectExit(runs[0], 0, 'hex slot').stdout, /^ok: /);
    assert.equal(JSON.parse(expectExit(runs[1], 1, 'small hex slot').stdout).reason, 'too-large');
    for (const i of [2, 3, 4]) assertOneLineError(expectExit(runs[i], 2, `bad flag ${i}`), 'verify', `bad flag ${i}`);
  });

  it('a machine without the XS engine: demo exits 3 with one line naming the engine', async () => {
    const hide = join(work, 'no-xs.cjs');
    writeFileSync(
      hide,
      `const fs = require('node:fs');
const hidden = (p) => String(p).endsWith('/xsnap-worker');
const enoent = (p) => Object.assign(new Error('ENOENT: no such file or directory, access ' + p), { code: 'ENOENT', path: String(p) });
const { existsSync, accessSync, statSync } = fs;
fs.existsSync = (p) => (hidden(p) ? false : existsSync(p));
fs.accessSync = (p, m) => { if (hidden(p)) throw enoent(p); return accessSync(p, m); };
fs.statSync = (p, o) => { if (hidden(p)) { if (o && o.throwIfNoEntry === false) return undefined; throw enoent(p); } return statSync(p, o); };
require('node:module').syncBuiltinESMExports();
`,
    );
    for (const json of [false, true]) {
      const run = expectExit(await holdfast(['demo', '--out', join(work, 'demo-noxs'), ...(json ? ['--json'] : [])], { nodeArgs: ['--require', hide], cwd: work }), 3, `demo without XS${json ? ' --json' : ''}`);
      const line = assertOneLineError(run, 'demo', 'demo without XS');
      assert.match(line, /XS engine/);
      assert.match(line, /npm ci/);
      if (json) assert.equal(jsonErrorOf(run, 'demo --json').error.code, 'environment');
    }
  });

  it('default outputs go to the current directory, not the package folder', async () => {
    const cwd = mkdtempSync(join(work, 'cwd-'));
    const repoDemo = statSync(join(REPO, '.holdfast/demo/flash.hfimg'), { throwIfNoEntry: false });
    const repoDist = statSync(join(REPO, 'dist/xs/holdfast.js'), { throwIfNoEntry: false });
    const [demo, build] = await Promise.all([holdfast(['demo', '--json'], { cwd }), holdfast(['build', '--json'], { cwd })]);
    expectExit(demo, 0, 'demo');
    expectExit(build, 0, 'build');
    assert.ok(statSync(join(cwd, '.holdfast/demo/flash.hfimg')).isFile(), 'demo wrote under the current directory');
    assert.ok(statSync(join(cwd, 'dist/xs/holdfast.js')).isFile(), 'build wrote under the current directory');
    assert.deepEqual(statSync(join(REPO, '.holdfast/demo/flash.hfimg'), { throwIfNoEntry: false })?.mtimeMs, repoDemo?.mtimeMs, 'the package folder\'s demo image untouched');
    assert.deepEqual(statSync(join(REPO, 'dist/xs/holdfast.js'), { throwIfNoEntry: false })?.mtimeMs, repoDist?.mtimeMs, 'the package folder\'s dist untouched');
    // The image the demo wrote reads back.
    const inspect = expectExit(await holdfast(['inspect', '.holdfast/demo/flash.hfimg', '--json'], { cwd }), 0, 'inspect');
    assert.equal(JSON.parse(inspect.stdout).blocks, 4);
    // bench's default --out is the current directory too (its help says so; a run is too long for this test).
    const help = expectExit(await holdfast(['bench', '--help']), 0, 'bench --help');
    assert.match(help.stdout.replace(/\s+/g, ' '), /relative to the current directory \(default: "\."\)/);
  });
});
