/**
 * boards/ and tools/boards/board.ts: every board loads and matches the facts
 * the issue fixes (chip, flash, chip id, bootloader offset, anti-rollback
 * width, Moddable platform); every schema and layout rule gives its one-line
 * error naming the file and the field; the partition CSV parses back (with
 * an independent reader of ESP-IDF's CSV rules) to the board's layout; the
 * bootloader-config lines each carry a why and compose without conflicts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BoardError, CHIPS, HOLDFAST_PARTITIONS, listBoards, loadBoard, partitionsCsv, type Board } from '../../tools/boards/board.ts';
import { BOOTLOADER_CONFIG_DIR, sdkconfigDefaults } from '../../tools/boards/moddable-project.ts';
import { parsePartitionCsv } from './esp-idf-csv.ts';

const root = new URL('../..', import.meta.url).pathname;
const MiB = 1 << 20;

/** The boards and the facts each must carry (ESP-IDF v6.0, Moddable SDK 8.2 documentation/devices/esp32.md). */
const EXPECTED: Record<string, Partial<Board>> = {
  'esp32-devkitc': { chip: 'esp32', chipId: 0x0000, flashSize: 4 * MiB, bootloaderOffset: 0x1000, antiRollbackBits: 32, moddablePlatform: 'esp32', statusLedPin: null },
  'esp32-s3-devkitc-1': { chip: 'esp32s3', chipId: 0x0009, flashSize: 8 * MiB, bootloaderOffset: 0x0, antiRollbackBits: 16, moddablePlatform: 'esp32/esp32s3' },
  'esp32-c3-devkitm-1': { chip: 'esp32c3', chipId: 0x0005, flashSize: 4 * MiB, bootloaderOffset: 0x0, antiRollbackBits: 16, moddablePlatform: 'esp32/esp32c3', statusLedPin: 8 },
  'esp32-wroom-32e-4mb': { chip: 'esp32', chipId: 0x0000, flashSize: 4 * MiB, bootloaderOffset: 0x1000, antiRollbackBits: 32 },
};

it('lists the issue\'s boards (and the older reference board)', () => {
  assert.deepEqual(listBoards(), Object.keys(EXPECTED).sort());
});

for (const id of listBoards()) {
  describe(`board ${id}`, () => {
    const board = loadBoard(id);

    it('loads with the expected chip facts', () => {
      for (const [key, value] of Object.entries(EXPECTED[id] ?? {})) assert.deepEqual(board[key as keyof Board], value, `${id} ${key}`);
      assert.equal(board.id, id);
      assert.equal(board.partitionTableOffset, 0x8000);
      assert.equal(board.chipId, CHIPS[board.chip].chipId);
      assert.ok(board.watchdogTimeoutMs >= 2000 && board.watchdogTimeoutMs % 1000 === 0);
    });

    it('has the partitions holdfast needs, in address order', () => {
      const names = board.partitions.map((p) => p.name);
      for (const name of ['nvs', 'otadata', 'phy_init', 'ota_0', 'ota_1', ...HOLDFAST_PARTITIONS]) assert.ok(names.includes(name), `${name} present`);
      const offsets = board.partitions.map((p) => p.offset);
      assert.deepEqual(offsets, [...offsets].sort((a, b) => a - b));
      const get = (n: string) => board.partitions.find((p) => p.name === n)!;
      assert.equal(get('otadata').size, 0x2000);
      assert.equal(get('ota_0').size, get('ota_1').size);
      assert.ok(get('ota_0').size >= 0x180000, 'app slots of at least 1.5 MiB (a Moddable image with TLS)');
      for (const name of HOLDFAST_PARTITIONS) assert.equal(get(name).type, 'data');
    });

    it('its partition CSV meets ESP-IDF\'s rules and parses back to the board\'s layout', () => {
      const rows = parsePartitionCsv(partitionsCsv(board));
      assert.deepEqual(
        rows.map((r) => ({ name: r.name, type: r.type, subtype: r.subtype, offset: r.offset, size: r.size, flags: r.flags.join(':') })),
        board.partitions.map((p) => ({ name: p.name, type: p.type, subtype: p.subtype, offset: p.offset, size: p.size, flags: p.flags })),
      );
      for (const r of rows) assert.ok(r.offset + r.size <= board.flashSize, `${r.name} inside the flash`);
    });

    it('the checked-in partitions.csv is the generated one (for plain ESP-IDF users)', () => {
      assert.equal(readFileSync(join(root, 'boards', id, 'partitions.csv'), 'utf8'), partitionsCsv(board));
    });

    it('its composed sdkconfig sets each option once, with the board\'s values', () => {
      for (const secureVersion of [undefined, 0, board.antiRollbackBits]) {
        const text = sdkconfigDefaults(board, secureVersion === undefined ? {} : { secureVersion });
        const names = text.split('\n').filter((l) => /^CONFIG_\w+=/.test(l)).map((l) => l.split('=')[0]);
        assert.deepEqual(names, [...new Set(names)], 'no option set twice');
        const config = new Map(text.split('\n').filter((l) => /^CONFIG_\w+=/.test(l)).map((l) => [l.split('=')[0], l.slice(l.indexOf('=') + 1)]));
        assert.equal(config.get(`CONFIG_ESPTOOLPY_FLASHSIZE_${board.flashSize / MiB}MB`), 'y');
        assert.equal(config.get('CONFIG_ESP_TASK_WDT_TIMEOUT_S'), String(board.watchdogTimeoutMs / 1000));
        assert.equal(config.get('CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK'), secureVersion === undefined ? undefined : 'y');
        assert.equal(config.get('CONFIG_BOOTLOADER_APP_SECURE_VERSION'), secureVersion === undefined ? undefined : String(secureVersion));
        assert.equal(config.get('CONFIG_BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD'), secureVersion === undefined ? undefined : String(board.antiRollbackBits));
        assert.equal(config.has('CONFIG_ESP_TASK_WDT_CHECK_IDLE_TASK_CPU1'), board.chip !== 'esp32c3', 'CPU1 watched on the dual-core chips only');
      }
      assert.throws(() => sdkconfigDefaults(board, { secureVersion: board.antiRollbackBits + 1 }), RangeError);
    });
  });
}

describe('bootloader-config', () => {
  const files = readdirSync(BOOTLOADER_CONFIG_DIR, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => join(d.name, 'sdkconfig.defaults'));

  it('has the shared file, one per chip, anti-rollback and flash-encryption guidance', () => {
    assert.deepEqual(files.map((f) => f.split('/')[0]).sort(), ['anti-rollback', 'common', ...Object.keys(CHIPS), 'flash-encryption'].sort());
  });

  it('every option line carries a `# Why:` comment above it (in its paragraph)', () => {
    for (const file of files) {
      const lines = readFileSync(join(BOOTLOADER_CONFIG_DIR, file), 'utf8').split('\n');
      lines.forEach((line, i) => {
        if (!/^CONFIG_/.test(line)) return;
        let j = i - 1;
        while (j >= 0 && lines[j].trim() !== '' && !lines[j].startsWith('# Why:')) j -= 1;
        assert.ok(j >= 0 && lines[j].startsWith('# Why:'), `${file}:${i + 1} ${line} has a why`);
      });
    }
  });

  it('the shared file turns on rollback, image validation and a resetting task watchdog; Moddable\'s off-switches are overridden', () => {
    const common = readFileSync(join(BOOTLOADER_CONFIG_DIR, 'common/sdkconfig.defaults'), 'utf8');
    for (const line of [
      'CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE=y',
      'CONFIG_BOOTLOADER_SKIP_VALIDATE_ALWAYS=n',
      'CONFIG_BOOTLOADER_WDT_ENABLE=y',
      'CONFIG_ESP_TASK_WDT_EN=y',
      'CONFIG_ESP_TASK_WDT_INIT=y',
      'CONFIG_ESP_TASK_WDT_PANIC=y',
      'CONFIG_ESP_INT_WDT=y',
      'CONFIG_ESP_SYSTEM_PANIC_PRINT_REBOOT=y',
      'CONFIG_PARTITION_TABLE_CUSTOM=y',
      'CONFIG_PARTITION_TABLE_OFFSET=0x8000',
    ]) assert.ok(common.split('\n').includes(line), `${line} in common/`);
    assert.match(common, /never replaced|NEVER by an OTA update/i, 'the bootloader warning is in the file itself');
  });

  it('anti-rollback is only in its own file, flash encryption only as commented guidance', () => {
    for (const file of files.filter((f) => !f.startsWith('anti-rollback/'))) {
      assert.ok(!/^CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK=/m.test(readFileSync(join(BOOTLOADER_CONFIG_DIR, file), 'utf8')), `${file} leaves anti-rollback off`);
    }
    assert.ok(!/^CONFIG_/m.test(readFileSync(join(BOOTLOADER_CONFIG_DIR, 'flash-encryption/sdkconfig.defaults'), 'utf8')), 'flash encryption never on by default');
  });

  it('the README warns that the bootloader is never replaced by an update', () => {
    assert.match(readFileSync(join(BOOTLOADER_CONFIG_DIR, 'README.md'), 'utf8'), /an OTA update never[\s>]+replaces the bootloader/);
  });
});

describe('board.json errors: one line naming the file and the field', () => {
  const base = JSON.parse(readFileSync(join(root, 'boards/esp32-devkitc/board.json'), 'utf8')) as Record<string, any>;
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-boards-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

  function fails(name: string, edit: (b: Record<string, any>) => void, expected: RegExp, raw?: string): void {
    it(name, () => {
      const id = `bad-${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}`.slice(0, 60).replace(/-$/, '');
      const board = structuredClone(base);
      board.id = id;
      edit(board);
      mkdirSync(join(dir, id), { recursive: true });
      writeFileSync(join(dir, id, 'board.json'), raw ?? JSON.stringify(board, null, 2));
      let caught: unknown;
      try {
        loadBoard(id, dir);
      } catch (error) {
        caught = error;
      }
      assert.ok(caught instanceof BoardError, `${name}: a BoardError, got ${String(caught)}`);
      assert.equal(caught.code, 'invalid-board');
      assert.ok(!caught.message.includes('\n'), 'one line');
      assert.ok(caught.message.includes(join(id, 'board.json')), `names the file: ${caught.message}`);
      assert.match(caught.message, expected);
    });
  }
  const part = (b: Record<string, any>, name: string) => b.partitions[name];

  fails('overlap', (b) => (part(b, 'hf_counter').offset = part(b, 'hf_outbox').offset + 0x1000), /partitions\.hf_counter\.offset: 0x311000 overlaps hf_outbox \(0x310000\.\.0x3d0000\)/);
  fails('app misaligned', (b) => (part(b, 'ota_1').offset += 0x1000), /partitions\.ota_1\.offset: 0x191000 is not 64 KiB-aligned/);
  fails('data misaligned', (b) => (part(b, 'hf_audit').offset += 0x800), /partitions\.hf_audit\.offset: 0x3de800 is not 4 KiB-aligned/);
  fails('size not whole sectors', (b) => (part(b, 'hf_audit').size -= 0x10), /partitions\.hf_audit\.size: 0x1aff0 is not a whole number of 4 KiB sectors/);
  fails('oversize', (b) => (part(b, 'hf_prov').size += 0x1000), /partitions\.hf_prov\.size: ends at 0x401000, past the 4 MiB flash/);
  fails('missing the provisioning partition', (b) => delete b.partitions.hf_prov, /partitions: no hf_prov partition: expected the provisioning partition/);
  fails('the provisioning partition as an app', (b) => ((part(b, 'hf_prov').type = 'app'), (part(b, 'hf_prov').subtype = 'ota_2')), /partitions\.hf_prov\.offset: 0x3ff000 is not 64 KiB-aligned/);
  fails('inside the partition table', (b) => (part(b, 'nvs').offset = 0x8000), /partitions\.nvs\.offset: 0x8000 is inside the bootloader or partition table: expected 0x9000 or above/);
  fails('missing otadata', (b) => delete b.partitions.otadata, /partitions: no otadata partition/);
  fails('otadata not 0x2000', (b) => (part(b, 'otadata').size = 0x1000), /partitions\.otadata\.size: 0x1000: expected exactly 0x2000/);
  fails('unequal slots', (b) => (part(b, 'ota_1').size = 0x170000), /partitions\.ota_1\.size: 0x170000 differs from ota_0's 0x180000/);
  fails('missing ota_1', (b) => delete b.partitions.ota_1, /partitions: no ota_1 partition/);
  fails('missing a holdfast partition', (b) => delete b.partitions.hf_journal, /partitions: no hf_journal partition: expected holdfast's data partitions hf_counter, hf_outbox, hf_audit, hf_replay, hf_journal, hf_trust, hf_floor, hf_safemode, hf_progress/);
  fails('a holdfast partition under its old label', (b) => ((b.partitions.counter = b.partitions.hf_counter), delete b.partitions.hf_counter), /partitions: no hf_counter partition/);
  fails('a two-block store in one block', (b) => (part(b, 'hf_floor').size = 0x1000), /partitions\.hf_floor\.size: 0x1000: expected at least 2 4 KiB sectors/);
  fails('a holdfast store as an app', (b) => (part(b, 'hf_replay').type = 'app'), /partitions\.hf_replay\.subtype: "0x45": expected an app subtype/);
  fails('progress log too small for the app slot', (b) => {
    // 8 MiB flash, 2 MiB slots (512 blocks), the data partitions moved up by 4 MiB: two sectors of progress log hold 512 entries.
    b.flash.size = 8 * MiB;
    part(b, 'ota_0').size = part(b, 'ota_1').size = 0x200000;
    part(b, 'ota_1').offset = 0x210000;
    for (const p of Object.values(b.partitions) as { offset: number }[]) if (p.offset >= 0x310000) p.offset += 0x400000;
  }, /partitions\.hf_progress\.size: 0x2000 holds 512 entries: expected at least 0x3000/);
  fails('factory app', (b) => (b.partitions.factory = { type: 'app', subtype: 'factory', offset: 0x3f0000, size: 0x10000 }), /partitions\.factory/);
  fails('name too long', (b) => (b.partitions['a-very-long-partition-name'] = { type: 'data', subtype: '0x50', offset: 0x3f0000, size: 0x1000 }), /partitions\.a-very-long-partition-name: name is 26 bytes: expected 1 to 16 bytes/);
  fails('duplicate name', () => {}, /partitions: "nvs" appears twice/, JSON.stringify({ ...base, id: 'bad-duplicate-name' }).replace('"partitions":{', '"partitions":{"nvs":{"type":"data","subtype":"nvs","offset":36864,"size":16384},'));
  fails('unknown field', (b) => (b.ledPin = 2), /unknown field ledPin: expected only the documented fields/);
  fails('unknown partition field', (b) => (part(b, 'nvs').label = 'x'), /partitions\.nvs: unknown field label/);
  fails('wrong field type', (b) => (b.flash.size = '4MB'), /flash\.size: "4MB": expected number/);
  fails('partition type', (b) => (part(b, 'nvs').type = 'bootloader'), /partitions\.nvs\.type: "bootloader": expected "app" or "data"/);
  fails('bad app subtype', (b) => (part(b, 'ota_0').subtype = 'ota_16'), /partitions\.ota_0\.subtype: "ota_16": expected an app subtype/);
  fails('missing field', (b) => delete b.watchdogTimeoutMs, /watchdogTimeoutMs: missing: expected number/);
  fails('watchdog not whole seconds', (b) => (b.watchdogTimeoutMs = 2500), /watchdogTimeoutMs: 2500: expected a whole number of seconds/);
  fails('flash not a power of two', (b) => (b.flash.size = 3 * MiB), /flash\.size: 3145728: expected a power of two/);
  fails('anti-rollback too wide for the chip', (b) => ((b.chip = 'esp32c3'), (b.moddablePlatform = 'esp32/esp32c3'), (b.bootloaderOffset = 0)), /antiRollbackBits: 32: expected at most 16/);
  fails('bootloader offset of another chip', (b) => (b.bootloaderOffset = 0), /bootloaderOffset: 0x0: expected 0x1000 on esp32/);
  fails('platform of another chip', (b) => ((b.chip = 'esp32s3'), (b.bootloaderOffset = 0), (b.antiRollbackBits = 16)), /moddablePlatform: "esp32" builds for the ESP32 target, not esp32s3/);
  fails('id differs from the folder', (b) => (b.id = 'esp32-devkitc'), /id: "esp32-devkitc": expected the folder name/);
  fails('not JSON', () => {}, /not JSON/, '{"id": ');

  it('an unknown board is its own error, listing the boards', () => {
    assert.throws(() => loadBoard('no-such-board'), (e: unknown) => e instanceof BoardError && e.code === 'unknown-board' && /unknown board "no-such-board": expected one of esp32-c3-devkitm-1, esp32-devkitc, esp32-s3-devkitc-1/.test(e.message));
    assert.throws(() => loadBoard('../boards/esp32-devkitc'), (e: unknown) => e instanceof BoardError && e.code === 'unknown-board');
  });
});
