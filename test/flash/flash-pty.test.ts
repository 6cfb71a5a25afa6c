/**
 * `holdfast flash` end to end, without hardware: the ROM loader emulator
 * (tools/flash/rom-loader-emulator.ts) on one end of a real pseudo-terminal
 * pair made by socat, the CLI (bin/holdfast.js, a child process) on the
 * other. After a run the emulated flash must equal, byte for byte over the
 * whole chip, the old contents with exactly the written regions replaced
 * (bootloader, ESP-IDF partition table, erased otadata, app in ota_0: each
 * in the sectors the ROM erases at BEGIN), the partition table must decode
 * to the board's layout, and the simulated bootloader (tools/sim/bootloader.ts)
 * must boot ota_0 from it. A link closed mid-transfer gives one error line
 * naming the offset the device confirmed, exit 1 and nothing reported as
 * flashed; --erase-data erases the data partitions and its absence leaves
 * them; a region that reads back wrong fails the MD5 check (and --no-verify
 * skips it, saying so); a chip other than the board's is refused before
 * anything is written.
 *
 * The app is an ESP-IDF app image for the board's chip
 * (firmware/update/esp-app-image.ts), and the simulated bootloader that
 * boots it afterwards checks it with the same chip's rules.
 *
 * socat missing: skipped locally, failed under CI (tools/net/common.ts).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sha256 } from '@noble/hashes/sha2.js';
import { requireComponents, skipUnless } from '../../tools/net/common.ts';
import { loadBoard, type Board } from '../../tools/boards/board.ts';
import { SimFlash } from '../../tools/sim/flash/sim-flash.ts';
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { PartitionView } from '../../tools/sim/flash/partition-view.ts';
import { SimBootloader, buildAppImage, testImageBody } from '../../tools/sim/bootloader.ts';
import { ESP_CHIPS } from '../../firmware/update/esp-app-image.ts';
import { serveRomLoader, type EmulatorOnPort } from '../../tools/flash/emulator-port.ts';
import type { EmulatedChip, FlashProgress } from '../../tools/flash/rom-loader-emulator.ts';
import { decodePartitionTable, encodeBoardPartitionTable, entryOf } from '../../tools/flash/partition-table.ts';
import { assertNoStack, holdfast, jsonErrorOf, type Run } from '../cli/cli-harness.ts';
import { findSocat, openPtyPair, type PtyPair } from './pty-pair.ts';

const socat = findSocat();
const needs = [socat];
const skip = skipUnless(needs);
const createSha256 = () => sha256.create();
const SECTOR = 4096;
const EMULATED: Record<Board['chip'], EmulatedChip> = { esp32: 'ESP32', esp32s3: 'ESP32-S3', esp32c3: 'ESP32-C3' };
const BOARDS = ['esp32-devkitc', 'esp32-s3-devkitc-1', 'esp32-c3-devkitm-1'] as const;

let dir = '';

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'holdfast-flash-test-'));
});
after(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

/** A flash that has been used: every byte programmed with a pattern (so erases and writes show). */
function usedFlash(board: Board, seed: number): { flash: SimFlash; before: Uint8Array } {
  const flash = new SimFlash({ blocks: board.flashSize / SECTOR });
  flash.write(0, testImageBody(board.flashSize, seed));
  return { flash, before: flash.data.slice() };
}

/** An ESP image-shaped bootloader file (magic 0xE9), odd length to exercise the 4-byte padding. */
function bootloaderFile(length: number, seed: number): string {
  const bytes = testImageBody(length, seed);
  bytes[0] = 0xe9;
  const path = join(dir, `bootloader-${seed}.bin`);
  writeFileSync(path, bytes);
  return path;
}

function appFile(bodyLength: number, imageVersion: number, chipId = ESP_CHIPS.esp32.chipId): { path: string; bytes: Uint8Array } {
  const bytes = buildAppImage({ secureVersion: 1, imageVersion, chipId }, bodyLength, createSha256);
  const path = join(dir, `app-${imageVersion}-${bodyLength}.bin`);
  writeFileSync(path, bytes);
  return { path, bytes };
}

function padded(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(data.length / 4) * 4).fill(0xff);
  out.set(data);
  return out;
}

/**
 * The flash after a good run: `before`, with each written region's sectors
 * erased and its bytes (padded to 4 with 0xFF, as esptool pads) in place;
 * with eraseData, every data partition but otadata erased first.
 */
function expectedImage(board: Board, before: Uint8Array, regions: { offset: number; data: Uint8Array }[], eraseData: boolean): Uint8Array {
  const image = before.slice();
  if (eraseData) for (const p of board.partitions.filter((q) => q.type === 'data' && q.name !== 'otadata' && q.name !== 'hf_prov')) image.fill(0xff, p.offset, p.offset + p.size);
  for (const r of regions) {
    const data = padded(r.data);
    image.fill(0xff, r.offset, Math.ceil((r.offset + data.length) / SECTOR) * SECTOR);
    image.set(data, r.offset);
  }
  return image;
}

function regionsOf(board: Board, bootloader: Uint8Array, app: Uint8Array): { offset: number; data: Uint8Array }[] {
  const otadata = board.partitions.find((p) => p.name === 'otadata')!;
  const ota0 = board.partitions.find((p) => p.name === 'ota_0')!;
  return [
    { offset: board.bootloaderOffset, data: bootloader },
    { offset: board.partitionTableOffset, data: encodeBoardPartitionTable(board) },
    { offset: otadata.offset, data: new Uint8Array(otadata.size).fill(0xff) },
    { offset: ota0.offset, data: app },
  ];
}

function firstDifference(a: Uint8Array, b: Uint8Array): string {
  for (let i = 0; i < Math.max(a.length, b.length); i++) if (a[i] !== b[i]) return `first difference at 0x${i.toString(16)}: 0x${a[i]?.toString(16)} vs expected 0x${b[i]?.toString(16)}`;
  return 'identical';
}

function bootloaderOf(board: Board, flash: SimFlash): SimBootloader {
  const view = (name: string): PartitionView => {
    const p = board.partitions.find((q) => q.name === name)!;
    return new PartitionView(flash, p.offset / SECTOR, p.size / SECTOR);
  };
  return new SimBootloader({ otadata: view('otadata'), slots: [view('ota_0'), view('ota_1')], createSha256, chip: ESP_CHIPS[board.chip] });
}

interface Rig {
  pair: PtyPair;
  served: EmulatorOnPort;
}

async function withRig(chip: EmulatedChip, flash: FlashPartition, run: (rig: Rig) => Promise<void>, onFlashData?: (p: FlashProgress, rig: Rig) => void): Promise<void> {
  requireComponents(needs);
  const pair = await openPtyPair(socat.ok ? socat.path : 'socat');
  let served: EmulatorOnPort | undefined;
  try {
    const rig: Rig = { pair, served: undefined as never };
    served = await serveRomLoader(pair.paths[0], { chip, flash, ...(onFlashData ? { onFlashData: (p: FlashProgress) => onFlashData(p, rig) } : {}) });
    rig.served = served;
    await run(rig);
  } finally {
    await served?.close();
    await pair.close();
  }
}

function flashArgs(board: Board, port: string, bootloader: string, app: string, extra: string[] = []): string[] {
  return ['flash', '--board', board.id, '--port', port, '--bootloader', bootloader, '--app', app, ...extra];
}

function parseJson(run: Run, what: string): Record<string, unknown> {
  try {
    return JSON.parse(run.stdout) as Record<string, unknown>;
  } catch {
    assert.fail(`${what}: stdout is not JSON:\n${run.stdout}\nstderr: ${run.stderr}`);
  }
}

describe('holdfast flash over a pty against the emulated ROM loader', { skip }, () => {
  for (const [i, id] of BOARDS.entries()) {
    it(`${id}: the flash holds exactly the intended bytes, the table decodes to the board's, ota_0 boots; data partitions untouched`, async () => {
      const board = loadBoard(id);
      const { flash, before } = usedFlash(board, 100 + i);
      const bootloader = bootloaderFile(0x5a31 + i, 10 + i);
      const app = appFile(150_001 + i * 777, 7 + i, board.chipId);
      await withRig(EMULATED[board.chip], flash, async ({ pair, served }) => {
        const run = await holdfast([...flashArgs(board, pair.paths[1], bootloader, app.path), '--json']);
        assert.equal(run.status, 0, `exit ${run.status}\nstdout: ${run.stdout}\nstderr: ${run.stderr}\nemulator refusals: ${served.emulator.refusals.join('; ')}`);
        assertNoStack(run, id);
        const result = parseJson(run, id);
        assert.equal(result.ok, true);
        assert.equal(result.board, id);
        assert.equal(result.chip, EMULATED[board.chip]);
        assert.deepEqual(result.erased, []);
        assert.equal(result.reset, false, 'a pty has no modem lines: no reset claimed');
        assert.deepEqual((result.regions as { name: string; offset: number; verified: boolean }[]).map((r) => [r.name, r.offset, r.verified]), [
          ['bootloader', board.bootloaderOffset, true],
          ['partition-table', board.partitionTableOffset, true],
          ['otadata', board.partitions.find((p) => p.name === 'otadata')!.offset, true],
          ['app', board.partitions.find((p) => p.name === 'ota_0')!.offset, true],
        ]);
        assert.equal(served.emulator.stats.malformed + served.emulator.stats.rejected + served.emulator.stats.checksumErrors, 0, `the emulator refused nothing: ${served.emulator.refusals.join('; ')}`);
      });
      const bootloaderBytes = new Uint8Array(readFileSync(bootloader));
      const expected = expectedImage(board, before, regionsOf(board, bootloaderBytes, app.bytes), false);
      assert.ok(Buffer.from(flash.data).equals(Buffer.from(expected)), `whole flash as intended: ${firstDifference(flash.data, expected)}`);
      const table = decodePartitionTable(flash.data.subarray(board.partitionTableOffset, board.partitionTableOffset + SECTOR));
      assert.equal(table.kind, 'table');
      assert.deepEqual(table.kind === 'table' ? table.entries : [], board.partitions.map(entryOf));
      const decision = bootloaderOf(board, flash).boot();
      assert.equal(decision.slot, 0, `boots ota_0 (row ${decision.row}: ${decision.reason})`);
      assert.equal(decision.header.imageVersion, 7 + i);
    });
  }

  it('--erase-data erases every data partition but otadata and the provisioning record hf_prov (and only with the flag)', async () => {
    const board = loadBoard('esp32-devkitc');
    const { flash, before } = usedFlash(board, 200);
    const bootloader = bootloaderFile(0x4000, 20);
    const app = appFile(60_000, 3);
    await withRig('ESP32', flash, async ({ pair }) => {
      const run = await holdfast([...flashArgs(board, pair.paths[1], bootloader, app.path), '--erase-data', '--json']);
      assert.equal(run.status, 0, `exit ${run.status}\n${run.stderr}`);
      assert.deepEqual(parseJson(run, 'erase-data').erased, ['nvs', 'phy_init', 'hf_outbox', 'hf_counter', 'hf_trust', 'hf_floor', 'hf_replay', 'hf_journal', 'hf_safemode', 'hf_progress', 'hf_audit', 'hf_keys', 'hf_revoke']);
    });
    const bootloaderBytes = new Uint8Array(readFileSync(bootloader));
    const expected = expectedImage(board, before, regionsOf(board, bootloaderBytes, app.bytes), true);
    assert.ok(Buffer.from(flash.data).equals(Buffer.from(expected)), `whole flash as intended: ${firstDifference(flash.data, expected)}`);
    for (const p of board.partitions.filter((q) => q.type === 'data' && q.name !== 'hf_prov')) assert.ok(flash.data.subarray(p.offset, p.offset + p.size).every((b) => b === 0xff), `${p.name} erased`);
    // The device's identity survives: hf_prov holds what it held.
    const prov = board.partitions.find((p) => p.name === 'hf_prov')!;
    assert.ok(Buffer.from(flash.data.subarray(prov.offset, prov.offset + prov.size)).equals(Buffer.from(before.subarray(prov.offset, prov.offset + prov.size))), 'hf_prov kept');
    // ota_1 is not a data partition: left as it was.
    const ota1 = board.partitions.find((p) => p.name === 'ota_1')!;
    assert.ok(Buffer.from(flash.data.subarray(ota1.offset, ota1.offset + ota1.size)).equals(Buffer.from(before.subarray(ota1.offset, ota1.offset + ota1.size))));
  });

  it('a link closed in the middle of the app: one error line naming the offset the device confirmed, exit 1, nothing reported as flashed', async () => {
    const board = loadBoard('esp32-devkitc');
    const ota0 = board.partitions.find((p) => p.name === 'ota_0')!;
    const { flash } = usedFlash(board, 300);
    const bootloader = bootloaderFile(0x3000, 30);
    const app = appFile(300_000, 4);
    let cutAt = -1;
    let lastWritten = 0;
    await withRig(
      'ESP32',
      flash,
      async ({ pair }) => {
        const run = await holdfast([...flashArgs(board, pair.paths[1], bootloader, app.path), '--json']);
        assert.equal(run.status, 1, `exit ${run.status}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
        assert.ok(cutAt > 0, 'the link was cut during the app');
        assertNoStack(run, 'cut');
        const errorLines = run.stderr.split('\n').filter((l) => l.startsWith('holdfast flash: '));
        assert.equal(errorLines.length, 1, `one error line:\n${run.stderr}`);
        const last = run.stderr.trimEnd().split('\n').at(-1) ?? '';
        assert.equal(last, errorLines[0], 'the error is the last line');
        assert.match(last, /serial link was lost while writing the app image \(ota_0\)/);
        assert.match(last, /board is not flashed/);
        const reached = Number.parseInt(/confirmed data up to 0x([0-9a-f]+)/.exec(last)?.[1] ?? 'x', 16);
        assert.ok(reached > ota0.offset && reached <= ota0.offset + lastWritten, `reported 0x${reached.toString(16)} within what the device wrote (0x${ota0.offset.toString(16)}..0x${(ota0.offset + lastWritten).toString(16)})`);
        const json = jsonErrorOf(run, 'cut');
        assert.equal(json.error.code, 'failed');
        assert.equal(json.error.file, pair.paths[1]);
        assert.doesNotMatch(run.stdout, /"ok": true|^flashed /m);
        assert.ok(!run.stderr.split('\n').some((l) => /verified|^flashed /.test(l) && l.includes('app')), 'the app is never reported verified or flashed');
      },
      (p, rig) => {
        if (p.offset !== ota0.offset) return;
        lastWritten = p.written;
        if (cutAt < 0 && p.written >= 64 * 1024) {
          cutAt = p.offset + p.written;
          void rig.pair.close();
        }
      },
    );
    assert.ok(lastWritten < padded(app.bytes).length, 'the app was not completely written');
  });

  it('a region that reads back wrong fails the MD5 check (exit 1, nothing reported flashed); --no-verify skips the check and says so', async () => {
    const board = loadBoard('esp32-devkitc');
    const ota0 = board.partitions.find((p) => p.name === 'ota_0')!;
    const bootloader = bootloaderFile(0x2000, 50);
    const app = appFile(40_000, 6);
    // A flash whose cell at ota_0 + 0x1234 keeps its bit 0 flipped from what is programmed.
    const bad = ota0.offset + 0x1234;
    const corrupting = (flash: SimFlash): FlashPartition => ({
      status: () => flash.status(),
      read: (at, target) => flash.read(at, target),
      eraseBlock: (block) => flash.eraseBlock(block),
      write: (at, data) => {
        const copy = data.slice();
        if (bad >= at && bad < at + copy.length) copy[bad - at] ^= 0x01;
        flash.write(at, copy);
      },
    });
    for (const verify of [true, false]) {
      const { flash } = usedFlash(board, 500);
      await withRig('ESP32', corrupting(flash), async ({ pair }) => {
        const run = await holdfast([...flashArgs(board, pair.paths[1], bootloader, app.path), ...(verify ? [] : ['--no-verify']), '--json']);
        if (verify) {
          assert.equal(run.status, 1, `exit ${run.status}\n${run.stderr}`);
          const last = run.stderr.trimEnd().split('\n').at(-1) ?? '';
          assert.match(last, /^holdfast flash: .*the app image \(ota_0\) at 0x10000 reads back with MD5 [0-9a-f]{32}, expected [0-9a-f]{32}/);
          assert.doesNotMatch(run.stdout, /"ok": true/);
        } else {
          assert.equal(run.status, 0, `exit ${run.status}\n${run.stderr}`);
          const result = parseJson(run, '--no-verify');
          assert.equal(result.verified, false);
          assert.ok((result.regions as { verified: boolean }[]).every((r) => r.verified === false));
        }
      });
    }
  });

  it('a chip other than the board\'s is refused before anything is written', async () => {
    const board = loadBoard('esp32-devkitc');
    const { flash, before } = usedFlash(board, 400);
    const bootloader = bootloaderFile(0x2000, 40);
    const app = appFile(10_000, 5);
    await withRig('ESP32-S3', flash, async ({ pair, served }) => {
      const run = await holdfast(flashArgs(board, pair.paths[1], bootloader, app.path));
      assert.equal(run.status, 1, `exit ${run.status}\n${run.stderr}`);
      const last = run.stderr.trimEnd().split('\n').at(-1) ?? '';
      assert.match(last, /^holdfast flash: .*is an ESP32-S3: expected esp32 \(board esp32-devkitc\); nothing was written$/);
      assert.equal(run.stdout, '');
      assert.equal(served.emulator.stats.sectorsErased, 0);
      assert.equal(served.emulator.stats.bytesWritten, 0);
    });
    assert.ok(Buffer.from(flash.data).equals(Buffer.from(before)), 'flash untouched');
  });
});

describe('holdfast flash usage', () => {
  it('without --bootloader: exit 2, one line saying what is needed', async () => {
    const app = join(mkdtempSync(join(tmpdir(), 'holdfast-flash-usage-')), 'app.bin');
    writeFileSync(app, new Uint8Array(100));
    try {
      const run = await holdfast(['flash', '--board', 'esp32-s3-devkitc-1', '--port', '/dev/null', '--app', app, '--json']);
      assert.equal(run.status, 2, run.stderr);
      assertNoStack(run, 'no bootloader');
      const lines = run.stderr.trim().split('\n');
      assert.equal(lines.length, 1, run.stderr);
      assert.match(lines[0], /^holdfast flash: --bootloader: missing: .*bootloader\.bin.*esp32s3.*0x0$/);
      assert.equal(jsonErrorOf(run, 'no bootloader').error.field, '--bootloader');
    } finally {
      rmSync(join(app, '..'), { recursive: true, force: true });
    }
  });

  it('a bootloader that is not an ESP image is refused naming the file, before the port is opened', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'holdfast-flash-usage-'));
    try {
      const bootloader = join(folder, 'bootloader.bin');
      writeFileSync(bootloader, Uint8Array.of(0x7f, 0x45, 0x4c, 0x46));
      writeFileSync(join(folder, 'app.bin'), new Uint8Array(100));
      const run = await holdfast(['flash', '--board', 'esp32-devkitc', '--port', join(folder, 'no-such-port'), '--bootloader', bootloader, '--app', join(folder, 'app.bin'), '--json']);
      assert.equal(run.status, 1, run.stderr);
      assert.match(run.stderr.trim(), /^holdfast flash: .*bootloader\.bin: starts with 0x7f: expected an ESP image \(magic 0xe9\)/);
      assert.equal(jsonErrorOf(run, 'bad bootloader').error.code, 'invalid-file');
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });

  it('an unknown board is bad usage naming --board', async () => {
    const run = await holdfast(['flash', '--board', 'no-such-board', '--port', '/dev/null', '--bootloader', '/dev/null', '--app', '/dev/null']);
    assert.equal(run.status, 2, run.stderr);
    assert.match(run.stderr.trim(), /^holdfast flash: --board: "no-such-board" is not a board: expected one of .*esp32-devkitc/);
  });
});
