/**
 * The firmware rules (tools/check/firmware-rules.ts): the real tree is clean,
 * every rule catches a planted violation at the right line, and the near
 * misses a real firmware file is full of are left alone.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  LAYERS,
  RULES,
  checkFirmware,
  mayImport,
  type Area,
  type RuleId,
  type Violation,
} from '../../tools/check/firmware-rules.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const FIRMWARE = path.join(REPO, 'firmware');
const CLI = path.join(REPO, 'tools', 'check', 'check-firmware.ts');

const temporaryDirs: string[] = [];
after(() => {
  for (const dir of temporaryDirs) rmSync(dir, { recursive: true, force: true });
});

/** A throwaway firmware tree holding `files` (path relative to it → text). */
function tree(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'holdfast-firmware-rules-'));
  temporaryDirs.push(dir);
  for (const [file, text] of Object.entries(files)) {
    const full = path.join(dir, ...file.split('/'));
    mkdirSync(path.dirname(full), { recursive: true });
    writeFileSync(full, text);
  }
  return dir;
}

function check(files: Record<string, string>): Violation[] {
  return checkFirmware(tree(files));
}

/** Violations as `file:line rule`, compact enough to compare whole. */
function brief(violations: readonly Violation[]): string[] {
  return violations.map((v) => `${v.file}:${v.line} ${v.rule}`);
}

describe('the real firmware tree', () => {
  test('has no violations', () => {
    const violations = checkFirmware(FIRMWARE);
    assert.deepEqual(violations.map((v) => `${v.file}:${v.line}:${v.column} ${v.rule} ${v.message}`), []);
  });
});

describe('tables', () => {
  test('every rule has a description', () => {
    const ids: RuleId[] = [
      'import-outside', 'layer', 'unknown-area', 'forbidden-global',
      'forbidden-member', 'module-state', 'top-level-effect', 'cycle',
    ];
    assert.deepEqual(Object.keys(RULES).sort(), [...ids].sort());
    for (const id of ids) assert.ok(RULES[id].length > 0);
  });

  test('layer ranks are the documented ones', () => {
    assert.deepEqual(
      Object.fromEntries(Object.entries(LAYERS).map(([area, layer]) => [area, layer.rank])),
      { hal: 0, base: 0, storage: 1, security: 1, protocol: 2, update: 2, runtime: 3, targets: 4 },
    );
  });

  test('mayImport: own area, hal, or strictly lower rank; hal only itself', () => {
    const areas = Object.keys(LAYERS) as Area[];
    for (const from of areas) {
      for (const to of areas) {
        const expected = from === to ||
          (from !== 'hal' && (to === 'hal' || LAYERS[to].rank < LAYERS[from].rank));
        assert.equal(mayImport(from, to), expected, `${from} -> ${to}`);
      }
    }
    assert.equal(mayImport('base', 'hal'), true);
    assert.equal(mayImport('hal', 'base'), false);
    assert.equal(mayImport('storage', 'security'), false);
    assert.equal(mayImport('update', 'protocol'), false);
    assert.equal(mayImport('targets', 'runtime'), true);
  });
});

/** One planted violation per case: exactly one violation, with this rule at this line. */
const planted: { name: string; file: string; text: string; rule: RuleId; line: number }[] = [
  // import-outside
  { name: 'node: built-in', file: 'storage/bad.ts', text: "import { readFileSync } from 'node:fs';\n", rule: 'import-outside', line: 1 },
  { name: 'bare built-in', file: 'storage/bad.ts', text: "// path\nimport path from 'path';\n", rule: 'import-outside', line: 2 },
  { name: 'other package', file: 'base/bad.ts', text: "export { x } from 'lodash';\n", rule: 'import-outside', line: 1 },
  { name: 'noble look-alike', file: 'base/bad.ts', text: "import { x } from '@noble/hashes-fake';\n", rule: 'import-outside', line: 1 },
  { name: 'import type from a package', file: 'hal/bad.ts', text: "import type { Stats } from 'node:fs';\n", rule: 'import-outside', line: 1 },
  { name: 'relative path leaving firmware', file: 'base/bad.ts', text: "\n\nimport { x } from '../../tools/x.ts';\n", rule: 'import-outside', line: 3 },
  { name: 'dynamic import', file: 'runtime/bad.ts', text: "export async function f() {\n  return import('node:net');\n}\n", rule: 'import-outside', line: 2 },
  { name: 'computed dynamic import', file: 'runtime/bad.ts', text: "export async function f(name: string) {\n  return import(name);\n}\n", rule: 'import-outside', line: 2 },
  { name: 'import() type', file: 'runtime/bad.ts', text: "export type S = import('node:fs').Stats;\n", rule: 'import-outside', line: 1 },
  { name: 'embedded: outside targets/moddable', file: 'storage/bad.ts', text: "import Flash from 'embedded:storage/flash';\n", rule: 'import-outside', line: 1 },
  { name: 'embedded: in another target', file: 'targets/host/bad.ts', text: "import Flash from 'embedded:storage/flash';\n", rule: 'import-outside', line: 1 },
  { name: 'Moddable module outside targets/moddable', file: 'runtime/bad.ts', text: "import Time from 'time';\n", rule: 'import-outside', line: 1 },
  { name: 'holdfast-native outside targets/moddable', file: 'update/bad.ts', text: "import { restart } from 'holdfast-native';\n", rule: 'import-outside', line: 1 },
  { name: 'a Moddable-looking name not in the list', file: 'targets/moddable/bad.ts', text: "import Files from 'files';\n", rule: 'import-outside', line: 1 },
  { name: 'types reference directive', file: 'base/bad.ts', text: '/// <reference types="node" />\nexport {};\n', rule: 'import-outside', line: 1 },
  // layer
  { name: 'storage imports runtime', file: 'storage/bad.ts', text: "import { run } from '../runtime/run.ts';\n", rule: 'layer', line: 1 },
  { name: 'storage imports security', file: 'storage/bad.ts', text: "import { key } from '../security/key.ts';\n", rule: 'layer', line: 1 },
  { name: 'update imports protocol', file: 'update/bad.ts', text: "export * from '../protocol/frame.ts';\n", rule: 'layer', line: 1 },
  { name: 'hal imports base', file: 'hal/bad.ts', text: "import { elapsedMs } from '../base/ticks.ts';\n", rule: 'layer', line: 1 },
  { name: 'upward import type', file: 'hal/bad.ts', text: "import type { Journal } from '../storage/journal.ts';\n", rule: 'layer', line: 1 },
  { name: 'import of a file outside any area', file: 'base/bad.ts', text: "import { x } from '../main.ts';\n", rule: 'layer', line: 1 },
  // unknown-area
  { name: 'file directly in firmware/', file: 'main.ts', text: 'export const x = 1;\n', rule: 'unknown-area', line: 1 },
  { name: 'file in an unknown area', file: 'drivers/uart.ts', text: 'export const x = 1;\n', rule: 'unknown-area', line: 1 },
  // forbidden-global
  { name: 'Buffer', file: 'base/bad.ts', text: 'export function f() {\n  return Buffer.from([1]);\n}\n', rule: 'forbidden-global', line: 2 },
  { name: 'Date', file: 'base/bad.ts', text: 'export function f() {\n  return Date.now();\n}\n', rule: 'forbidden-global', line: 2 },
  { name: 'console', file: 'runtime/bad.ts', text: "export function f() {\n\n  console.log('x');\n}\n", rule: 'forbidden-global', line: 3 },
  { name: 'setTimeout', file: 'runtime/bad.ts', text: 'export function f(g: () => void) {\n  setTimeout(g, 1);\n}\n', rule: 'forbidden-global', line: 2 },
  { name: 'new URL', file: 'protocol/bad.ts', text: "export const u = new URL('http://x');\n", rule: 'forbidden-global', line: 1 },
  { name: 'process in a condition', file: 'runtime/bad.ts', text: "export const debug = typeof process !== 'undefined';\n", rule: 'forbidden-global', line: 1 },
  { name: 'shorthand property reads the global', file: 'runtime/bad.ts', text: 'export const o = { console };\n', rule: 'forbidden-global', line: 1 },
  { name: 'class extends a host global', file: 'protocol/bad.ts', text: 'export class Link extends URL {}\n', rule: 'forbidden-global', line: 1 },
  { name: 'globalThis.X', file: 'base/bad.ts', text: 'export function f() {\n  return globalThis.performance;\n}\n', rule: 'forbidden-global', line: 2 },
  { name: "globalThis['X']", file: 'base/bad.ts', text: "export function f() {\n  return globalThis['crypto'];\n}\n", rule: 'forbidden-global', line: 2 },
  { name: 'global used outside the function that shadows it', file: 'runtime/bad.ts',
    text: 'export function a(console: string) {\n  return console;\n}\nexport function b() {\n  return console;\n}\n', rule: 'forbidden-global', line: 5 },
  { name: 'ambient declaration does not hide a host global', file: 'runtime/bad.ts',
    text: 'declare const print: (s: string) => void;\nexport function f() {\n  print("x");\n}\n', rule: 'forbidden-global', line: 3 },
  // forbidden-member
  { name: 'Math.random', file: 'security/bad.ts', text: 'export function f() {\n  return Math.random();\n}\n', rule: 'forbidden-member', line: 2 },
  { name: 'toHex', file: 'security/bad.ts', text: 'export function f() {\n  return new Uint8Array(1).toHex();\n}\n', rule: 'forbidden-member', line: 2 },
  { name: 'Uint8Array.fromBase64', file: 'security/bad.ts', text: "export const b = Uint8Array.fromBase64('AA==');\n", rule: 'forbidden-member', line: 1 },
  { name: 'toSorted', file: 'base/bad.ts', text: 'export function f(a: number[]) {\n  return a.toSorted();\n}\n', rule: 'forbidden-member', line: 2 },
  { name: "['toReversed']", file: 'base/bad.ts', text: "export function f(a: number[]) {\n  return a['toReversed']();\n}\n", rule: 'forbidden-member', line: 2 },
  { name: 'optional toSpliced', file: 'base/bad.ts', text: 'export function f(a?: number[]) {\n  return a?.toSpliced(0, 1);\n}\n', rule: 'forbidden-member', line: 2 },
  { name: 'Promise.withResolvers', file: 'runtime/bad.ts', text: 'export function f() {\n  return Promise.withResolvers();\n}\n', rule: 'forbidden-member', line: 2 },
  { name: 'destructured Math.random', file: 'security/bad.ts', text: 'export function f() {\n  const { random } = Math;\n  return random();\n}\n', rule: 'forbidden-member', line: 2 },
  // module-state
  { name: 'top-level let', file: 'storage/bad.ts', text: "import type { FlashPartition } from '../hal/flash.ts';\nlet counter = 0;\nexport function next() {\n  return ++counter;\n}\n", rule: 'module-state', line: 2 },
  { name: 'top-level var', file: 'storage/bad.ts', text: 'export var cache = new Map<string, number>();\n', rule: 'module-state', line: 1 },
  { name: 'let in a namespace', file: 'storage/bad.ts', text: 'export namespace N {\n  export let n = 0;\n}\n', rule: 'module-state', line: 2 },
  // top-level-effect
  { name: 'top-level call', file: 'runtime/bad.ts', text: 'function start() {}\nstart();\n', rule: 'top-level-effect', line: 2 },
  { name: 'top-level assignment', file: 'runtime/bad.ts', text: 'export const table: number[] = [];\ntable[0] = 1;\n', rule: 'top-level-effect', line: 2 },
  { name: 'top-level if', file: 'runtime/bad.ts', text: 'export const a = 1;\nif (a) {\n}\n', rule: 'top-level-effect', line: 2 },
  { name: 'top-level loop', file: 'runtime/bad.ts', text: 'export const a: number[] = [];\nfor (const x of [1]) a.push(x);\n', rule: 'top-level-effect', line: 2 },
  { name: 'export default of a call', file: 'runtime/bad.ts', text: 'function make() {\n  return {};\n}\nexport default make();\n', rule: 'top-level-effect', line: 4 },
];

describe('planted violations are reported', () => {
  for (const c of planted) {
    test(`${c.rule}: ${c.name}`, () => {
      const violations = check({ [c.file]: c.text });
      assert.deepEqual(brief(violations), [`${c.file}:${c.line} ${c.rule}`]);
      assert.ok(violations[0].column >= 1);
      assert.ok(violations[0].message.length > 0);
    });
  }

  test('messages say why', () => {
    const [date] = check({ 'base/a.ts': 'export const f = () => Date.now();\n' });
    assert.match(date.message, /wall clock: time comes from the HAL \(MonotonicClock\)/);
    const [random] = check({ 'base/a.ts': 'export const f = () => Math.random();\n' });
    assert.match(random.message, /unseeded in XS, identical in every worker: randomness comes from the HAL \(Entropy\)/);
  });

  test('line and column point at the offending token', () => {
    const [v] = check({ 'storage/bad.ts': "// header\nimport { readFileSync } from 'node:fs';\n" });
    assert.deepEqual({ line: v.line, column: v.column }, { line: 2, column: 30 });
  });

  test('several violations in one file come sorted by position', () => {
    const violations = check({
      'storage/bad.ts': [
        "import { readFileSync } from 'node:fs';",
        "import { run } from '../runtime/run.ts';",
        'let counter = 0;',
        'export function f() {',
        '  return [Buffer.from([1]), Date.now(), Math.random(), new Uint8Array(1).toHex()];',
        '}',
        'f();',
      ].join('\n'),
    });
    assert.deepEqual(brief(violations), [
      'storage/bad.ts:1 import-outside',
      'storage/bad.ts:2 layer',
      'storage/bad.ts:3 module-state',
      'storage/bad.ts:5 forbidden-global',
      'storage/bad.ts:5 forbidden-global',
      'storage/bad.ts:5 forbidden-member',
      'storage/bad.ts:5 forbidden-member',
      'storage/bad.ts:7 top-level-effect',
    ]);
  });

  test('require is both a forbidden global and an outside import', () => {
    const violations = check({ 'base/bad.ts': "export function f() {\n  return require('fs');\n}\n" });
    assert.deepEqual(brief(violations), ['base/bad.ts:2 forbidden-global', 'base/bad.ts:2 import-outside']);
  });

  test('.d.ts files are checked for imports and globals', () => {
    const violations = check({ 'hal/ambient.d.ts': "import type { Stats } from 'node:fs';\nexport declare const x: Stats;\n" });
    assert.deepEqual(brief(violations), ['hal/ambient.d.ts:1 import-outside']);
  });
});

/** Each near miss is a file that must produce no violation at all. */
const nearMisses: { name: string; files: Record<string, string> }[] = [
  { name: 'a property named date', files: { 'base/a.ts': 'export function f(o: { date: number }) {\n  return { date: o.date };\n}\n' } },
  { name: 'obj.process and obj.console', files: { 'runtime/a.ts': 'export function f(obj: { process(): void; console: number }) {\n  obj.process();\n  return obj.console;\n}\n' } },
  { name: 'a parameter named console', files: { 'runtime/a.ts': 'export function f(console: { log(s: string): void }) {\n  console.log("x");\n}\n' } },
  { name: 'a local variable and destructured names', files: { 'runtime/a.ts': 'export function f(o: { Date: number; fetch: () => void }) {\n  const { Date, fetch: go } = o;\n  const performance = Date;\n  go();\n  return performance;\n}\n' } },
  { name: 'an imported name', files: {
    'base/url.ts': 'export class URL {}\n',
    'protocol/a.ts': "import { URL } from '../base/url.ts';\nexport function f() {\n  return new URL();\n}\n",
  } },
  { name: 'a hoisted var and a catch parameter', files: { 'runtime/a.ts': 'export function f() {\n  if (Math.max(1, 2)) {\n    var print = (s: string) => s;\n  }\n  try {\n    return print("x");\n  } catch (process) {\n    return process;\n  }\n}\n' } },
  { name: 'types named URL and Date', files: { 'protocol/a.ts': 'export interface Link {\n  url: URL;\n  at: Date;\n}\nexport type Clock = typeof Date | URLSearchParams;\nexport function f(u: URL): Date | undefined {\n  return undefined as unknown as Date;\n}\n' } },
  { name: 'object keys, methods and members named like globals', files: { 'runtime/a.ts': 'export class Host {\n  console = 1;\n  setTimeout(): void {}\n  get Date(): number {\n    return 1;\n  }\n}\nexport const o = { Buffer: 1, require() {}, toHex: 2 };\n' } },
  { name: 'Math members other than random, and random on other objects', files: { 'security/a.ts': 'export function f(rng: { random(): number }) {\n  return Math.floor(rng.random() * Math.PI);\n}\n' } },
  { name: 'a local Math', files: { 'security/a.ts': 'export function f(Math: { random(): number }) {\n  return Math.random();\n}\n' } },
  { name: 'top-level const, functions, classes, types, enums', files: { 'base/a.ts': "'use strict';\nexport const TABLE = new Uint32Array(256);\nexport function f() {\n  let n = 0;\n  n += 1;\n  return n;\n}\nexport class C {\n  #n = 0;\n}\nexport type T = number;\nexport interface I {\n  n: number;\n}\nexport enum E {\n  A,\n}\n;\n" } },
  { name: 'embedded: inside targets/moddable', files: { 'targets/moddable/flash.ts': "import Flash from 'embedded:storage/flash';\nexport { Flash };\n" } },
  { name: 'embedded: in a nested folder of targets/moddable', files: { 'targets/moddable/io/tcp.ts': "export async function load() {\n  return import('embedded:io/socket/tcp');\n}\n" } },
  { name: 'Moddable modules inside targets/moddable', files: { 'targets/moddable/device.ts': "import Time from 'time';\nimport Timer from 'timer';\nimport { Socket } from 'socket';\nimport SecureSocket from 'securesocket';\nimport { Digest } from 'crypt';\nimport * as native from 'holdfast-native';\nexport { Time, Timer, Socket, SecureSocket, Digest, native };\n" } },
  { name: '@noble packages and subpaths', files: { 'security/a.ts': "import { sha256 } from '@noble/hashes/sha2.js';\nimport * as ed from '@noble/ed25519';\nimport { chacha20poly1305 } from '@noble/ciphers/chacha.js';\nimport { x25519 } from '@noble/curves/ed25519.js';\nexport { sha256, ed, chacha20poly1305, x25519 };\n" } },
  { name: 'relative imports inside the same area', files: {
    'storage/a.ts': 'export const A = 1;\n',
    'storage/deep/b.ts': "import { A } from '../a.ts';\nexport { A };\nexport * from './c.ts';\n",
    'storage/deep/c.ts': 'export const C = 2;\n',
  } },
  { name: 'import type from ../hal/flash.ts', files: { 'storage/a.ts': "import type { FlashPartition } from '../hal/flash.ts';\nexport type P = FlashPartition;\n" } },
  { name: 'downward imports across every rank', files: {
    'hal/a.ts': "export * from './b.ts';\n",
    'hal/b.ts': 'export const H = 0;\n',
    'base/a.ts': "export { H } from '../hal/b.ts';\n",
    'storage/a.ts': "export * from '../base/a.ts';\n",
    'security/a.ts': "export * from '../base/a.ts';\n",
    'protocol/a.ts': "export * from '../security/a.ts';\n",
    'update/a.ts': "export * from '../storage/a.ts';\n",
    'runtime/a.ts': "export * as p from '../protocol/a.ts';\nexport * as u from '../update/a.ts';\n",
    'targets/moddable/a.ts': "export * from '../../runtime/a.ts';\nexport * from '../host/b.ts';\n",
    'targets/host/b.ts': "export * from '../../hal/a.ts';\n",
  } },
  { name: 'ambient declarations in a .d.ts', files: { 'targets/moddable/embedded.d.ts': "declare module 'embedded:storage/flash' {\n  export default class Flash {\n    constructor(options: { path: string });\n  }\n}\ndeclare let trace: (s: string) => void;\n" } },
  { name: 'labels and names in comments and strings', files: { 'runtime/a.ts': "// Date.now() and console.log are forbidden\nexport function f() {\n  outer: for (;;) {\n    break outer;\n  }\n  return 'Buffer process Math.random()';\n}\n" } },
];

describe('import cycles (issue 15: manifest.ts and root.ts imported each other)', () => {
  test('two files that import each other are one violation naming the cycle', () => {
    const violations = check({
      'update/manifest.ts': "import { decodeRoot } from './root.ts';\nexport const m = () => decodeRoot;\n",
      'update/root.ts': "import type { Manifest } from './manifest.ts';\nexport function decodeRoot(m?: Manifest) { return m; }\n",
    });
    assert.deepEqual(brief(violations), ['update/manifest.ts:1 cycle']);
    assert.match(violations[0].message, /import cycle: update\/manifest\.ts -> update\/root\.ts -> update\/manifest\.ts/);
  });

  test('a longer cycle across areas, a self-import, and a tree without cycles', () => {
    const three = check({
      'base/a.ts': "export * from './b.ts';\n",
      'base/b.ts': "export { c } from './c.ts';\n",
      'base/c.ts': "import './a.ts';\nexport const c = 1;\n",
      'storage/d.ts': "import { c } from '../base/c.ts';\nexport const d = c;\n",
    });
    assert.deepEqual(brief(three), ['base/a.ts:1 cycle']);
    assert.match(three[0].message, /base\/a\.ts -> base\/b\.ts -> base\/c\.ts -> base\/a\.ts/);
    assert.deepEqual(brief(check({ 'base/self.ts': "import './self.ts';\n" })), ['base/self.ts:1 cycle']);
    assert.deepEqual(check({ 'base/x.ts': 'export const x = 1;\n', 'storage/y.ts': "import { x } from '../base/x.ts';\nexport const y = x;\n" }), []);
  });

  test('a chain of 5,000 imports is checked without overflowing the stack', () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 5000; i++) files[`base/m${i}.ts`] = i + 1 < 5000 ? `import './m${i + 1}.ts';\n` : "import './m0.ts';\n";
    const violations = check(files);
    assert.equal(violations.length, 1);
    assert.equal(violations[0].rule, 'cycle');
  });
});

describe('near misses are not reported', () => {
  for (const c of nearMisses) {
    test(c.name, () => {
      assert.deepEqual(brief(check(c.files)), []);
    });
  }
});

describe('command line', () => {
  function run(...args: string[]) {
    return spawnSync(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: REPO, encoding: 'utf8' });
  }

  test('exits 1 and prints file:line:col rule message on a planted violation', () => {
    const dir = tree({ 'storage/bad.ts': "import { readFileSync } from 'node:fs';\n" });
    const result = run(dir);
    assert.equal(result.status, 1, result.stderr);
    assert.match(result.stdout, /^storage\/bad\.ts:1:30 import-outside '.*node:fs.*\n$/);
  });

  test('--json prints the violations as a JSON array', () => {
    const dir = tree({ 'storage/bad.ts': 'let counter = 0;\n' });
    const result = run(dir, '--json');
    assert.equal(result.status, 1, result.stderr);
    const violations = JSON.parse(result.stdout) as Violation[];
    assert.deepEqual(brief(violations), ['storage/bad.ts:1 module-state']);
  });

  test('exits 0 on a clean tree', () => {
    const dir = tree({ 'base/a.ts': 'export const A = 1;\n' });
    const result = run(dir);
    assert.equal(result.status, 0, result.stdout + result.stderr);
    assert.equal(result.stdout, '');
  });

  test('defaults to the repository firmware/ (clean)', () => {
    const result = run('--json');
    assert.equal(result.status, 0, result.stdout + result.stderr);
    assert.deepEqual(JSON.parse(result.stdout), []);
  });
});
