import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('../..', import.meta.url).pathname;

interface Row {
  name: string;
  type: string;
  subtype: string;
  offset: number;
  size: number;
  flags: string;
}

function parseSize(text: string): number {
  const m = /^(0x[0-9a-f]+|\d+)([KM]?)$/i.exec(text.trim());
  assert.ok(m, `bad size ${text}`);
  return Number(m[1]) * (m[2].toUpperCase() === 'K' ? 1024 : m[2].toUpperCase() === 'M' ? 1 << 20 : 1);
}

function parseCsv(text: string): Row[] {
  return text
    .split('\n')
    .filter((line) => line.trim() && !line.trim().startsWith('#'))
    .map((line) => {
      const [name, type, subtype, offset, size, flags = ''] = line.split(',').map((c) => c.trim());
      return { name, type, subtype, offset: parseSize(offset), size: parseSize(size), flags };
    });
}

for (const board of readdirSync(join(root, 'boards'), { withFileTypes: true }).filter((d) => d.isDirectory())) {
  describe(`board ${board.name}`, () => {
    const dir = join(root, 'boards', board.name);
    const json = JSON.parse(readFileSync(join(dir, 'board.json'), 'utf8'));
    const rows = parseCsv(readFileSync(join(dir, json.partitionTable), 'utf8'));

    it('partitions are sector aligned, inside the flash, and do not overlap', () => {
      const sorted = [...rows].sort((a, b) => a.offset - b.offset);
      assert.ok(sorted[0].offset >= 0x9000, 'the first partition starts after the partition table');
      for (const [i, row] of sorted.entries()) {
        assert.equal(row.offset % json.flash.blockLength, 0, `${row.name} offset aligned`);
        assert.equal(row.size % json.flash.blockLength, 0, `${row.name} size aligned`);
        assert.ok(row.offset + row.size <= json.flash.size, `${row.name} fits the flash`);
        if (i > 0) assert.ok(sorted[i - 1].offset + sorted[i - 1].size <= row.offset, `${sorted[i - 1].name} overlaps ${row.name}`);
        if (row.type === 'app') assert.equal(row.offset % 0x10000, 0, `app ${row.name} is 64 KiB aligned`);
      }
    });

    it('board.json describes the same partitions as the CSV', () => {
      for (const [name, part] of Object.entries(json.partitions) as [string, { offset: number; size: number; encrypted?: boolean }][]) {
        const row = rows.find((r) => r.name === name);
        assert.ok(row, `${name} is in the CSV`);
        assert.equal(row.offset, part.offset, `${name} offset`);
        assert.equal(row.size, part.size, `${name} size`);
        assert.equal(row.flags.includes('encrypted'), part.encrypted === true, `${name} encrypted flag`);
      }
      assert.equal(json.partitions.otadata.size, 2 * json.flash.blockLength, 'otadata holds two sectors');
      assert.ok(json.partitions.counter.size >= 2 * json.flash.blockLength, 'the counter log has at least two sectors');
    });
  });
}

it('bootloader-config carries the same partition table as the reference board', () => {
  const board = readFileSync(join(root, 'boards/esp32-wroom-32e-4mb/partitions.csv'), 'utf8');
  const bootloader = readFileSync(join(root, 'bootloader-config/esp32/partitions.csv'), 'utf8');
  assert.equal(bootloader, board);
  const sdkconfig = readFileSync(join(root, 'bootloader-config/esp32/sdkconfig.defaults'), 'utf8');
  for (const option of ['CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE=y', 'CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK=y', 'CONFIG_ESP_TASK_WDT_PANIC=y']) {
    assert.ok(sdkconfig.includes(`\n${option}\n`), `${option} is set`);
  }
});
