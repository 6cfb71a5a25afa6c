/**
 * An independent reader of ESP-IDF partition CSV text, with the rules of
 * ESP-IDF's gen_esp32part.py (v5/v6) that a holdfast table must meet:
 * `# comment` lines and blank lines skipped; 5 or 6 comma-separated cells
 * (name, type, subtype, offset, size[, flags]); names of at most 16 bytes,
 * unique; type app or data (or 0x40..0xFE); app subtypes factory, test,
 * ota_0..ota_15; data subtypes by name or 0x00..0xFE; offsets and sizes in
 * decimal, 0x hex, or with a K/M suffix; app partitions 64 KiB-aligned, data
 * 4 KiB-aligned; nothing before the end of the partition table (0x9000); no
 * overlap; flags among encrypted and readonly, colon-separated.
 * Written apart from tools/boards/board.ts so the two check each other.
 */
export interface CsvRow {
  name: string;
  type: string;
  subtype: string;
  offset: number;
  size: number;
  flags: string[];
}

const APP_SUBTYPES = new Set(['factory', 'test', ...Array.from({ length: 16 }, (_, i) => `ota_${i}`)]);
const DATA_SUBTYPES = new Set(['ota', 'phy', 'nvs', 'coredump', 'nvs_keys', 'efuse', 'undefined', 'esphttpd', 'fat', 'spiffs', 'littlefs']);

function number(text: string, what: string): number {
  const m = /^(0x[0-9a-f]+|\d+)([KM]?)$/i.exec(text);
  if (!m) throw new Error(`${what}: ${JSON.stringify(text)} is not a number`);
  return Number(m[1]) * (m[2].toUpperCase() === 'K' ? 1024 : m[2].toUpperCase() === 'M' ? 1 << 20 : 1);
}

/** Rows of the table, checked; throws on the first broken rule. */
export function parsePartitionCsv(text: string, tableOffset = 0x8000): CsvRow[] {
  const rows: CsvRow[] = [];
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const cells = line.split(',').map((c) => c.trim());
    const where = `line ${i + 1}`;
    if (cells.length < 5 || cells.length > 6) throw new Error(`${where}: ${cells.length} cells, expected 5 or 6`);
    const [name, type, subtype, offsetText, sizeText, flagText = ''] = cells;
    if (name === '' || Buffer.byteLength(name) > 16) throw new Error(`${where}: name ${JSON.stringify(name)} not 1..16 bytes`);
    if (rows.some((r) => r.name === name)) throw new Error(`${where}: name ${name} twice`);
    if (type === 'app') {
      if (!APP_SUBTYPES.has(subtype)) throw new Error(`${where}: app subtype ${subtype}`);
    } else if (type === 'data') {
      if (!DATA_SUBTYPES.has(subtype) && !(/^0x[0-9a-f]{1,2}$/i.test(subtype) && Number(subtype) < 0xff)) throw new Error(`${where}: data subtype ${subtype}`);
    } else throw new Error(`${where}: type ${type}`);
    const offset = number(offsetText, `${where} offset`);
    const size = number(sizeText, `${where} size`);
    const align = type === 'app' ? 0x10000 : 0x1000;
    if (offset % align !== 0) throw new Error(`${where}: offset 0x${offset.toString(16)} not aligned to 0x${align.toString(16)}`);
    if (size === 0 || size % 0x1000 !== 0) throw new Error(`${where}: size 0x${size.toString(16)} not a positive multiple of 0x1000`);
    if (offset < tableOffset + 0x1000) throw new Error(`${where}: offset 0x${offset.toString(16)} before the end of the partition table`);
    const flags = flagText === '' ? [] : flagText.split(':').map((f) => f.trim());
    for (const f of flags) if (f !== 'encrypted' && f !== 'readonly') throw new Error(`${where}: flag ${f}`);
    rows.push({ name, type, subtype, offset, size, flags });
  }
  const sorted = [...rows].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i += 1) {
    if (sorted[i - 1].offset + sorted[i - 1].size > sorted[i].offset) throw new Error(`${sorted[i - 1].name} overlaps ${sorted[i].name}`);
  }
  return rows;
}
