/**
 * `holdfast build --board <id> --out DIR` for every board writes a Moddable
 * project: a manifest in Moddable's documented format whose paths resolve
 * inside DIR, a partitions.csv that meets ESP-IDF's rules, fits the board and
 * puts otadata, both app slots and holdfast's data partitions where
 * board.json says, and an sdkconfig with rollback and a resetting task
 * watchdog. Without MODDABLE it prints the exact mcconfig command; with
 * MODDABLE and an mcconfig on PATH it runs it (a stand-in records the call).
 * Bad usage (unknown board, --secure-version out of the chip's range or
 * without --board) is exit 2 with one line, and writes nothing.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { assertOneLineError, batch, expectExit, jsonErrorOf, REPO, type Run } from './cli-harness.ts';
import { parsePartitionCsv } from '../boards/esp-idf-csv.ts';
import { PARTITION_LABELS } from '../../firmware/runtime/boot.ts';

const BOARDS = ['esp32-c3-devkitm-1', 'esp32-devkitc', 'esp32-s3-devkitc-1', 'esp32-wroom-32e-4mb'];
/** Top-level properties of a Moddable manifest (Moddable SDK 8.2 documentation/tools/manifest.md). */
const MANIFEST_KEYS = ['build', 'include', 'creation', 'defines', 'config', 'strip', 'modules', 'preload', 'resources', 'data', 'platforms', 'bundle', 'typescript'];

interface BuildJson {
  ok: true;
  outputs: { kind: string; path: string; bytes: number }[];
  board: { id: string; chip: string; moddablePlatform: string; flashSize: number };
  project: string;
  mcconfig: { command: string; argv: string[]; ran: boolean; reason?: string; status?: number };
}

/** Runs `jobs` through the CLI in one child process with MODDABLE and PATH as given (env is read when the child starts). */
function batchWithEnv(jobs: string[][], env: { MODDABLE?: string; PATH?: string }): Promise<Run[]> {
  const saved = { MODDABLE: process.env.MODDABLE, PATH: process.env.PATH };
  if (env.MODDABLE === undefined) delete process.env.MODDABLE;
  else process.env.MODDABLE = env.MODDABLE;
  if (env.PATH !== undefined) process.env.PATH = env.PATH;
  try {
    return batch(jobs);
  } finally {
    if (saved.MODDABLE === undefined) delete process.env.MODDABLE;
    else process.env.MODDABLE = saved.MODDABLE;
    process.env.PATH = saved.PATH;
  }
}

/** sdkconfig text as ESP-IDF reads it: the last assignment of a name wins. */
function sdkconfig(text: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^(CONFIG_\w+)=(.*)$/.exec(line);
    if (m) map.set(m[1], m[2]);
  }
  return map;
}

const work = mkdtempSync(join(tmpdir(), 'holdfast-build-'));
after(() => rmSync(work, { recursive: true, force: true }));

describe('holdfast build --board', () => {
  let runs: Run[];
  const out = (name: string) => join(work, name);
  const jobs: Record<string, string[]> = {
    ...Object.fromEntries(BOARDS.map((id) => [id, ['build', '--board', id, '--out', out(id), '--json']])),
    human: ['build', '--board', 'esp32-devkitc', '--out', out('human')],
    antiRollback: ['build', '--board', 'esp32-c3-devkitm-1', '--secure-version', '5', '--out', out('anti-rollback'), '--json'],
    unknown: ['build', '--board', 'esp32-nonesuch', '--out', out('unknown')],
    unknownJson: ['build', '--board', 'esp32-nonesuch', '--out', out('unknown'), '--json'],
    pathLike: ['build', '--board', '../boards/esp32-devkitc', '--out', out('unknown')],
    secureWithoutBoard: ['build', '--secure-version', '1', '--out', out('unknown')],
    secureTooHigh: ['build', '--board', 'esp32-s3-devkitc-1', '--secure-version', '17', '--out', out('unknown'), '--json'],
    secureNotNumber: ['build', '--board', 'esp32-devkitc', '--secure-version', '1e3', '--out', out('unknown')],
  };
  const names = Object.keys(jobs);
  const run = (name: string): Run => runs[names.indexOf(name)];

  before(async () => {
    runs = await batchWithEnv(Object.values(jobs), { MODDABLE: undefined });
  }, { timeout: 900_000 });

  for (const id of BOARDS) {
    describe(id, () => {
      const dir = out(id);
      const boardJson = () => JSON.parse(readFileSync(join(REPO, 'boards', id, 'board.json'), 'utf8')) as { chip: string; moddablePlatform: string; flash: { size: number }; watchdogTimeoutMs: number; jsHeap: { chunkBytes: number; slots: number; stackSlots: number }; partitions: Record<string, { type: string; subtype: string; offset: number; size: number }> };

      it('exits 0 and reports the project and the exact mcconfig command', () => {
        const result = JSON.parse(expectExit(run(id), 0, id).stdout) as BuildJson;
        assert.equal(result.ok, true);
        assert.equal(result.project, resolve(dir));
        assert.equal(result.board.id, id);
        assert.equal(result.mcconfig.ran, false);
        assert.equal(result.mcconfig.reason, 'MODDABLE is not set');
        assert.deepEqual(result.mcconfig.argv, ['mcconfig', '-d', '-m', '-p', boardJson().moddablePlatform, join(resolve(dir), 'manifest.json')]);
        assert.equal(result.mcconfig.command, result.mcconfig.argv.join(' '));
        for (const o of result.outputs) assert.equal(statSync(o.path).size, o.bytes, `${o.path} written as reported`);
      });

      it('writes a manifest in Moddable\'s documented format whose paths resolve in the project', () => {
        const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Record<string, any>;
        for (const key of Object.keys(manifest)) assert.ok(MANIFEST_KEYS.includes(key), `documented key ${key}`);
        for (const key of ['build', 'include', 'modules', 'preload', 'config', 'defines', 'platforms']) assert.ok(key in manifest, `has ${key}`);
        // build: the ESP32 build's own sdkconfig folder and partition table, relative to the manifest.
        assert.equal(manifest.build.SDKCONFIGPATH, './sdkconfig');
        assert.ok(statSync(join(dir, manifest.build.SDKCONFIGPATH, 'sdkconfig.defaults')).isFile(), 'SDKCONFIGPATH holds sdkconfig.defaults');
        assert.equal(manifest.build.PARTITIONS_FILE, './partitions.csv');
        assert.ok(statSync(join(dir, manifest.build.PARTITIONS_FILE)).isFile());
        for (const value of Object.values(manifest.build)) assert.equal(typeof value, 'string');
        assert.ok(Array.isArray(manifest.include) && manifest.include.every((p: unknown) => typeof p === 'string' && p.startsWith('$(MODDABLE)/')));
        // modules: specifier → path without extension; ./ paths exist as .js (native glue also as .c).
        const modules: Record<string, string> = { ...manifest.modules, ...manifest.platforms.esp32.modules };
        assert.equal(modules.main, './main');
        for (const [specifier, path] of Object.entries(modules)) {
          assert.ok(path.startsWith('./') && !/\.(js|ts|c)$/.test(path), `${specifier}: a ./ path without extension`);
          assert.ok(existsSync(join(dir, `${path}.js`)), `${specifier}: ${path}.js exists`);
        }
        assert.ok(existsSync(join(dir, `${modules['holdfast-native']}.c`)), 'the native glue\'s C file sits beside its JS');
        assert.match(readFileSync(join(dir, `${modules.holdfast}.js`), 'utf8'), /startRuntime/, 'the bundled firmware entry');
        assert.match(readFileSync(join(dir, 'main.js'), 'utf8'), /from "holdfast"/);
        for (const specifier of [...manifest.preload, ...manifest.platforms.esp32.preload]) assert.ok(specifier in modules, `preload ${specifier} is a module of the project`);
        // defines (C, MODDEF_HOLDFAST_*) and config (mc/config) from the board.
        const board = boardJson();
        assert.equal(manifest.defines.holdfast.chip_id, { esp32: 0, esp32s3: 9, esp32c3: 5 }[board.chip]);
        assert.equal(manifest.defines.holdfast.watchdog_timeout_ms, board.watchdogTimeoutMs);
        assert.equal(manifest.defines.holdfast.flash_size, board.flash.size);
        // creation: the board's JS heap, fixed (manifest_base.json's static 32768 would be all of JavaScript).
        assert.deepEqual(manifest.creation, { static: 0, chunk: { initial: board.jsHeap.chunkBytes, incremental: 0 }, heap: { initial: board.jsHeap.slots, incremental: 0 }, stack: board.jsHeap.stackSlots });
        assert.equal(manifest.config.holdfast.board, id);
        // platforms: the native glue only for esp32; any other platform is an error naming the board's.
        assert.deepEqual(Object.keys(manifest.platforms).sort(), ['...', 'esp32']);
        assert.match(manifest.platforms['...'].error, new RegExp(`-p ${board.moddablePlatform.replace('/', '\\/')}\\)`));
        // The board's resolved layout travels with the project (for the flasher).
        assert.equal(JSON.parse(readFileSync(join(dir, 'board.json'), 'utf8')).id, id);
      });

      it('writes a partitions.csv that fits the board and puts every partition where board.json says', () => {
        const board = boardJson();
        const rows = parsePartitionCsv(readFileSync(join(dir, 'partitions.csv'), 'utf8'));
        assert.deepEqual(rows.map((r) => r.name).sort(), Object.keys(board.partitions).sort(), 'the same partitions');
        for (const r of rows) {
          const p = board.partitions[r.name];
          assert.deepEqual({ type: r.type, subtype: r.subtype, offset: r.offset, size: r.size }, { type: p.type, subtype: p.subtype, offset: p.offset, size: p.size }, r.name);
          assert.ok(r.offset + r.size <= board.flash.size, `${r.name} inside the ${board.flash.size}-byte flash`);
        }
        const get = (n: string) => rows.find((r) => r.name === n)!;
        assert.deepEqual([get('otadata').type, get('otadata').subtype, get('otadata').size], ['data', 'ota', 0x2000]);
        assert.deepEqual([get('ota_0').subtype, get('ota_1').subtype], ['ota_0', 'ota_1']);
        assert.equal(get('ota_0').size, get('ota_1').size);
        assert.ok(!rows.some((r) => r.subtype === 'factory'), 'no factory app outside A/B control');
        // Every label the runtime opens is in the written table (the app slots as apps, the rest as data).
        for (const n of Object.values(PARTITION_LABELS)) assert.equal(get(n)?.type, n === 'ota_0' || n === 'ota_1' ? 'app' : 'data', n);
      });

      it('writes an sdkconfig with rollback and a task watchdog that resets', () => {
        const board = boardJson();
        const config = sdkconfig(readFileSync(join(dir, 'sdkconfig/sdkconfig.defaults'), 'utf8'));
        const expected: Record<string, string> = {
          CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE: 'y',
          CONFIG_ESP_TASK_WDT_EN: 'y',
          CONFIG_ESP_TASK_WDT_INIT: 'y',
          CONFIG_ESP_TASK_WDT_PANIC: 'y',
          CONFIG_ESP_TASK_WDT_TIMEOUT_S: String(board.watchdogTimeoutMs / 1000),
          CONFIG_ESP_SYSTEM_PANIC_PRINT_REBOOT: 'y',
          CONFIG_BOOTLOADER_WDT_ENABLE: 'y',
          CONFIG_PARTITION_TABLE_CUSTOM: 'y',
          CONFIG_PARTITION_TABLE_OFFSET: '0x8000',
          [`CONFIG_ESPTOOLPY_FLASHSIZE_${board.flash.size >> 20}MB`]: 'y',
        };
        for (const [name, value] of Object.entries(expected)) assert.equal(config.get(name), value, name);
        assert.ok(!config.has('CONFIG_ESP_SYSTEM_PANIC_PRINT_HALT'), 'a panic never halts');
        assert.ok(!config.has('CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK'), 'anti-rollback only when asked for');
      });
    });
  }

  it('without --json prints each file and the exact command to run', () => {
    const stdout = expectExit(run('human'), 0, 'human').stdout;
    assert.match(stdout, /^wrote .*manifest\.json \(\d+ bytes, Moddable manifest\)$/m);
    assert.match(stdout, /^MODDABLE is not set: to build the device image and flash it with the Moddable SDK and ESP-IDF, run$/m);
    assert.ok(stdout.split('\n').includes(`  mcconfig -d -m -p esp32 ${join(resolve(out('human')), 'manifest.json')}`), stdout);
  });

  it('--secure-version turns anti-rollback on with the chip\'s eFuse width', () => {
    expectExit(run('antiRollback'), 0, 'anti-rollback');
    const config = sdkconfig(readFileSync(join(out('anti-rollback'), 'sdkconfig/sdkconfig.defaults'), 'utf8'));
    assert.equal(config.get('CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK'), 'y');
    assert.equal(config.get('CONFIG_BOOTLOADER_APP_SECURE_VERSION'), '5');
    assert.equal(config.get('CONFIG_BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD'), '16');
  });

  it('an unknown board is exit 2 with one line listing the boards, and writes nothing', () => {
    const line = assertOneLineError(expectExit(run('unknown'), 2, 'unknown board'), 'build', 'unknown board');
    assert.match(line, /--board: unknown board "esp32-nonesuch": expected one of esp32-c3-devkitm-1, esp32-devkitc, esp32-s3-devkitc-1/);
    const json = jsonErrorOf(expectExit(run('unknownJson'), 2, 'unknown board --json'), 'unknown board --json');
    assert.equal(json.error.code, 'usage');
    assert.equal(json.error.field, '--board');
    assertOneLineError(expectExit(run('pathLike'), 2, 'a path as board id'), 'build', 'a path as board id');
    assert.ok(!existsSync(out('unknown')), 'nothing written');
  });

  it('--secure-version without --board, beyond the chip\'s field, or not a number is exit 2', () => {
    assert.match(assertOneLineError(expectExit(run('secureWithoutBoard'), 2, 'without board'), 'build', 'without board'), /--secure-version: expected --board with it/);
    assert.match(jsonErrorOf(expectExit(run('secureTooHigh'), 2, 'too high'), 'too high').error.message, /17: expected 0\.\.16/);
    assertOneLineError(expectExit(run('secureNotNumber'), 2, 'not a number'), 'build', 'not a number');
    assert.ok(!existsSync(out('unknown')), 'nothing written');
  });
});

describe('holdfast build --board with MODDABLE set and mcconfig on PATH', () => {
  it('runs mcconfig -d -m -p <platform> <manifest> in the project folder, and a failing mcconfig is exit 1', { timeout: 900_000 }, async () => {
    const bin = join(work, 'fake-bin');
    mkdirSync(bin, { recursive: true });
    const record = join(work, 'mcconfig-calls.txt');
    // A stand-in for the Moddable SDK's mcconfig: records its cwd, MODDABLE and arguments; fails in a folder named run-fail.
    writeFileSync(join(bin, 'mcconfig'), `#!/bin/sh\nprintf '%s|%s|%s\\n' "$PWD" "$MODDABLE" "$*" >> '${record}'\necho "fake mcconfig output"\ncase "$PWD" in */run-fail) exit 7;; esac\nexit 0\n`);
    chmodSync(join(bin, 'mcconfig'), 0o755);
    const [ok, failing] = await batchWithEnv(
      [
        ['build', '--board', 'esp32-s3-devkitc-1', '--out', join(work, 'run-ok'), '--json'],
        ['build', '--board', 'esp32-c3-devkitm-1', '--out', join(work, 'run-fail')],
      ],
      { MODDABLE: join(work, 'moddable'), PATH: `${bin}${delimiter}${process.env.PATH}` },
    );
    const result = JSON.parse(expectExit(ok, 0, 'mcconfig ran').stdout) as BuildJson;
    assert.equal(result.mcconfig.ran, true);
    assert.equal(result.mcconfig.status, 0);
    const calls = readFileSync(record, 'utf8').trim().split('\n');
    assert.equal(calls.length, 2);
    assert.equal(calls[0], `${resolve(work, 'run-ok')}|${join(work, 'moddable')}|-d -m -p esp32/esp32s3 ${join(resolve(work, 'run-ok'), 'manifest.json')}`);
    assert.ok(!ok.stdout.includes('fake mcconfig output'), 'mcconfig\'s output stays off stdout under --json');
    assert.match(assertOneLineError(expectExit(failing, 1, 'mcconfig failed'), 'build', 'mcconfig failed'), /mcconfig: exited with status 7/);
    assert.match(failing.stdout, /^running mcconfig -d -m -p esp32\/esp32c3 /m);
    assert.ok(calls[1].startsWith(`${resolve(work, 'run-fail')}|`));
  });
});
