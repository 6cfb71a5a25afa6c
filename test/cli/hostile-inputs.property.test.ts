/**
 * Every command fed random and hostile files and flags (fast-check), through
 * the CLI in a child process: never a stack trace; an error is one stderr
 * line `holdfast <command>: …` naming the file or flag at fault; a failed
 * command leaves its files as they were (no partial write, no temporary
 * file); under --json stdout is always one parseable JSON document. Each
 * case works on its own copy of a valid fixture (key directory, image,
 * manifest, flash image, firmware tree) with one thing made hostile.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { SimFlash } from '../../tools/sim/flash/sim-flash.ts';
import { encodeImage } from '../../tools/sim/flash/image-codec.ts';
import { assertNoStack, batch, BOARD, type Run } from './cli-harness.ts';
import { writeEspImage } from './esp-image-fixture.ts';

/** Every file under `dir` (relative path → mode and SHA-256 of its content). */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (at: string, rel: string): void => {
    for (const e of readdirSync(at, { withFileTypes: true })) {
      const p = join(at, e.name);
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(p, r);
      else if (e.isFile()) {
        const s = statSync(p);
        // Sparse huge files: hash the size only.
        const digest = s.size > 1 << 20 ? `size ${s.size}` : createHash('sha256').update(readFileSync(p)).digest('hex');
        out.set(r, `${(s.mode & 0o777).toString(8)} ${digest}`);
      } else out.set(r, 'other');
    }
  };
  walk(dir, '');
  return out;
}

type Damage = (dir: string) => void;

const hostileText = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.constantFrom('', ' ', '-1', '1e3', '0x', '0x1g', '1.5', '99999999999999999999', '4294967296', 'NaN', 'Infinity', '０', '１２', '--json', '\u0000', '../..', 'a'.repeat(300)),
  fc.integer({ min: -5, max: 5000 }).map(String),
);

/** Damage to one file of the fixture (each returns what it did, for the failure message). */
const damage: fc.Arbitrary<[string, Damage]> = fc.oneof(
  fc.jsonValue().map((v): [string, Damage] => [`keys.json = ${JSON.stringify(v).slice(0, 80)}`, (d) => writeFileSync(join(d, 'keys/keys.json'), JSON.stringify(v))]),
  fc.tuple(fc.constantFrom('revoked', 'roots', 'root', 'targets', 'format', 'rootVersion'), fc.jsonValue()).map(([field, v]): [string, Damage] => [
    `keys.json ${field} = ${JSON.stringify(v).slice(0, 60)}`,
    (d) => {
      const k = JSON.parse(readFileSync(join(d, 'keys/keys.json'), 'utf8'));
      k[field] = v;
      writeFileSync(join(d, 'keys/keys.json'), JSON.stringify(k));
    },
  ]),
  fc.uint8Array({ maxLength: 300 }).map((b): [string, Damage] => [`root.1.bin = ${b.length} random bytes`, (d) => writeFileSync(join(d, 'keys/root.1.bin'), b)]),
  fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })).map(([at, bit]): [string, Damage] => [
    `root.1.bin bit flip ${at}:${bit}`,
    (d) => {
      const b = readFileSync(join(d, 'keys/root.1.bin'));
      b[at % b.length] ^= 1 << bit;
      writeFileSync(join(d, 'keys/root.1.bin'), b);
    },
  ]),
  fc.constantFrom<[string, Damage]>(
    ['root.01.bin added', (d) => writeFileSync(join(d, 'keys/root.01.bin'), readFileSync(join(d, 'keys/root.1.bin')))],
    ['root.3.bin added (gap)', (d) => writeFileSync(join(d, 'keys/root.3.bin'), readFileSync(join(d, 'keys/root.1.bin')))],
    ['root.2.bin is a directory', (d) => mkdirSync(join(d, 'keys/root.2.bin'))],
    ['root.1.bin is a directory', (d) => (rmSync(join(d, 'keys/root.1.bin')), mkdirSync(join(d, 'keys/root.1.bin')))],
    ['keys.json is a directory', (d) => (rmSync(join(d, 'keys/keys.json')), mkdirSync(join(d, 'keys/keys.json')))],
    ['private keys mode 0644', (d) => { for (const f of readdirSync(join(d, 'keys/private'))) chmodSync(join(d, 'keys/private', f), 0o644); }],
    ['a private key is a directory', (d) => { const f = readdirSync(join(d, 'keys/private'))[0]; rmSync(join(d, 'keys/private', f)); mkdirSync(join(d, 'keys/private', f)); }],
    ['private/ removed', (d) => rmSync(join(d, 'keys/private'), { recursive: true })],
    ['app.bin empty', (d) => writeFileSync(join(d, 'app.bin'), '')],
    ['app.bin is a directory', (d) => (rmSync(join(d, 'app.bin')), mkdirSync(join(d, 'app.bin')))],
    ['manifest 1 GiB', (d) => truncateSync(join(d, 'app.bin.manifest'), 1 << 30)],
    ['manifest is a directory', (d) => (rmSync(join(d, 'app.bin.manifest')), mkdirSync(join(d, 'app.bin.manifest')))],
    ['flash.hfimg 200 MiB', (d) => truncateSync(join(d, 'flash.hfimg'), 200 << 20)],
    ['deeply nested source', (d) => writeFileSync(join(d, 'fw/storage/deep.ts'), `export const a = ${'('.repeat(15_000)}1${')'.repeat(15_000)};\n`)],
    ['nothing damaged', () => {}],
  ),
  fc.uint8Array({ maxLength: 300 }).map((b): [string, Damage] => [`manifest = ${b.length} random bytes`, (d) => writeFileSync(join(d, 'app.bin.manifest'), b)]),
  fc.uint8Array({ maxLength: 200 }).map((b): [string, Damage] => [`flash.hfimg = ${b.length} random bytes`, (d) => writeFileSync(join(d, 'flash.hfimg'), b)]),
  fc.jsonValue().map((v): [string, Damage] => [
    `flash.hfimg header = ${JSON.stringify(v).slice(0, 60)}`,
    (d) => {
      const header = new TextEncoder().encode(JSON.stringify(v));
      const b = new Uint8Array(12 + header.length + 64);
      b.set(new TextEncoder().encode('HFIMAGE1'));
      new DataView(b.buffer).setUint32(8, header.length, true);
      b.set(header, 12);
      writeFileSync(join(d, 'flash.hfimg'), b);
    },
  ]),
  fc.string({ maxLength: 80 }).map((t): [string, Damage] => [`a private key holds ${JSON.stringify(t).slice(0, 40)}`, (d) => { const f = readdirSync(join(d, 'keys/private'))[0]; writeFileSync(join(d, 'keys/private', f), t, { mode: 0o600 }); }]),
);

/** A command over a case directory; `t` is a hostile flag value. Paths are absolute. */
type Template = (d: string, t: string) => string[];
const templates: Record<string, Template> = {
  'version': () => ['version'],
  'check': (d) => ['check', join(d, 'fw')],
  'check (a file)': (d) => ['check', join(d, 'app.bin')],
  'build --out (a file)': (d) => ['build', '--out', join(d, 'app.bin')],
  'demo --cut-at': (d, t) => ['demo', '--cut-at', t, '--out', join(d, 'demo')],
  'demo --seed': (d, t) => ['demo', '--seed', t, '--out', join(d, 'demo')],
  'demo --out (a file)': (d) => ['demo', '--out', join(d, 'app.bin', 'x')],
  'bench --only': (d, t) => ['bench', '--only', `nosuch${t}`, '--out', join(d, 'bench')],
  'bench --out (a file)': (d) => ['bench', '--only', 'outbox.', '--out', join(d, 'app.bin')],
  'keys init --root-keys': (d, t) => ['keys', 'init', '--dir', join(d, 'new'), '--root-keys', t],
  'keys init --root-threshold': (d, t) => ['keys', 'init', '--dir', join(d, 'new'), '--root-keys', '2', '--root-threshold', t],
  'keys init (existing)': (d) => ['keys', 'init', '--dir', join(d, 'keys')],
  'keys init (a file)': (d) => ['keys', 'init', '--dir', join(d, 'app.bin')],
  'keys rotate': (d) => ['keys', 'rotate', '--dir', join(d, 'keys'), '--replace-targets-key', readKeyId(d)],
  'keys rotate --replace-root-key': (d, t) => ['keys', 'rotate', '--dir', join(d, 'keys'), '--replace-root-key', t],
  'keys rotate (nothing)': (d) => ['keys', 'rotate', '--dir', join(d, 'keys')],
  'keys rotate --partial': (d) => ['keys', 'rotate', '--dir', join(d, 'keys'), '--replace-targets-key', readKeyId(d), '--partial', join(d, 'root2.part')],
  'sign': (d) => ['sign', join(d, 'app.bin'), '--version', '3', '--security-version', '1', '--board', BOARD, '--dir', join(d, 'keys'), '--out', join(d, 'out.manifest')],
  'sign --version': (d, t) => ['sign', join(d, 'app.bin'), '--version', t, '--security-version', '1', '--board', BOARD, '--dir', join(d, 'keys')],
  'sign --board': (d, t) => ['sign', join(d, 'app.bin'), '--version', '3', '--security-version', '1', '--board', t || 'x y', '--dir', join(d, 'keys')],
  'sign --rollout': (d, t) => ['sign', join(d, 'app.bin'), '--version', '3', '--security-version', '1', '--board', BOARD, '--rollout', t, '--dir', join(d, 'keys')],
  'verify': (d) => ['verify', join(d, 'app.bin'), join(d, 'app.bin.manifest'), '--dir', join(d, 'keys')],
  'verify --root': (d) => ['verify', join(d, 'app.bin'), join(d, 'app.bin.manifest'), '--root', join(d, 'keys/root.1.bin'), join(d, 'keys/root.01.bin')],
  'verify --slot-size': (d, t) => ['verify', join(d, 'app.bin'), join(d, 'app.bin.manifest'), '--dir', join(d, 'keys'), '--slot-size', t],
  'verify --floor': (d, t) => ['verify', join(d, 'app.bin'), join(d, 'app.bin.manifest'), '--dir', join(d, 'keys'), '--floor', t],
  'cosign': (d) => ['cosign', join(d, 'app.bin.manifest'), '--dir', join(d, 'keys'), '--out', join(d, 'co.manifest')],
  'combine': (d) => ['combine', join(d, 'app.bin.manifest'), join(d, 'keys/root.1.bin'), '--dir', join(d, 'keys'), '--out', join(d, 'comb.manifest')],
  'inspect': (d) => ['inspect', join(d, 'flash.hfimg')],
  'unknown option': (_d, t) => ['verify', `--frob${t.replace(/\W/g, '')}`],
};

function readKeyId(d: string): string {
  try {
    return JSON.parse(readFileSync(join(d, 'keys/keys.json'), 'utf8')).targets.keys[0].keyId;
  } catch {
    return 'abcd';
  }
}

describe('every command with hostile files and flags', () => {
  let work: string;
  let fixture: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'holdfast-hostile-'));
    fixture = join(work, 'fixture');
    mkdirSync(join(fixture, 'fw/storage'), { recursive: true });
    writeFileSync(join(fixture, 'fw/storage/ok.ts'), 'export const ok = 1;\n');
    // An ESP-IDF app image at version 3, security version 1: what the sign templates sign.
    writeEspImage(join(fixture, 'app.bin'), { imageVersion: 3, securityVersion: 1, bodyLength: 2600 });
    writeFileSync(join(fixture, 'flash.hfimg'), encodeImage(new SimFlash({ blocks: 2, blockLength: 4096 })));
    const [init, sign] = await batch([
      ['keys', 'init', '--dir', join(fixture, 'keys'), '--root-keys', '2', '--root-threshold', '1'],
      ['sign', join(fixture, 'app.bin'), '--version', '3', '--security-version', '1', '--board', BOARD, '--dir', join(fixture, 'keys')],
    ]);
    assert.equal(init.status, 0, init.stderr);
    assert.equal(sign.status, 0, sign.stderr);
  });

  after(() => rmSync(work, { recursive: true, force: true }));

  it('never a stack trace, one line naming the file or flag, no partial write, --json parseable', async () => {
    const names = Object.keys(templates);
    const cases = fc.sample(fc.tuple(fc.constantFrom(...names), damage, hostileText, fc.boolean()), { numRuns: Number(process.env.HOLDFAST_RUNS ?? 160), seed: Number(process.env.HOLDFAST_SEED ?? 16) });
    // Every template at least once, undamaged and with --json.
    names.forEach((name) => cases.push([name, ['nothing damaged', () => {}], '7', true]));
    const prepared = cases.map(([name, [what, harm], text, json], i) => {
      const dir = join(work, `case-${i}`);
      cpSync(fixture, dir, { recursive: true });
      harm(dir);
      const args = [...templates[name](dir, text), ...(json ? ['--json'] : [])];
      return { name, what, dir, args, json, before: snapshot(dir) };
    });
    const runs: Run[] = await batch(prepared.map((p) => p.args));
    const failures: string[] = [];
    prepared.forEach((p, i) => {
      try {
        checkCase(p, runs[i]);
      } catch (error) {
        failures.push(error instanceof Error ? error.message : String(error));
      }
    });
    assert.deepEqual(failures.slice(0, 8), [], `${failures.length} of ${prepared.length} cases failed`);
  });
});

function checkCase(p: { name: string; what: string; dir: string; args: string[]; json: boolean; before: Map<string, string> }, run: Run): void {
  {
    {
      const label = `${p.name} with ${p.what}: ${JSON.stringify(p.args.map((a) => a.replace(p.dir, '<case>')))}\nexit ${run.status}\nstdout: ${run.stdout.slice(0, 400)}\nstderr: ${run.stderr.slice(0, 400)}`;
      assert.ok([0, 1, 2, 3].includes(run.status as number), `${label}: an exit code from the table`);
      assertNoStack(run, label);
      if (p.json) {
        assert.doesNotThrow(() => JSON.parse(run.stdout), `${label}: --json output parses`);
        if (run.status !== 0 && run.stderr !== '') assert.equal(JSON.parse(run.stdout).ok, false, `${label}: ok false`);
      }
      if (run.stderr !== '') {
        const lines = run.stderr.split('\n').filter((l) => l !== '');
        assert.equal(lines.length, 1, `${label}: one stderr line`);
        assert.notEqual(run.status, 0, `${label}: an error line means a failure`);
        const command = p.args[0] === 'keys' ? `keys ${p.args[1]}` : p.args[0];
        assert.ok(lines[0].startsWith(`holdfast ${command}: `), `${label}: names the command`);
        // The file (a path given or under one) or the flag at fault.
        const named = p.args.some((a) => (a.startsWith('/') || a.startsWith('--')) && lines[0].includes(a.startsWith('--') ? a : a.replace(/\/(?:x|keys\/root\.01\.bin)$/, '')));
        assert.ok(named || lines[0].includes(p.dir) || /(?:^|\s)--[a-z][a-z-]+/.test(lines[0]), `${label}: the error names a file or flag`);
        assert.ok(!/\b(?:undefined|NaN|\[object Object\]|is not iterable|intermediate value)\b/.test(lines[0]), `${label}: no JavaScript internals`);
      } else if (run.status !== 0) {
        // A finding, not an error: verify's refusal or check's violations, on stdout.
        assert.ok(['verify', 'check'].includes(p.args[0]), `${label}: a failure without an error line`);
      }
      const after = snapshot(p.dir);
      assert.ok(![...after.keys()].some((f) => f.endsWith('.tmp')), `${label}: no temporary file left`);
      if (run.status !== 0) assert.deepEqual(after, p.before, `${label}: a failed command changed no file`);
    }
  }
}
