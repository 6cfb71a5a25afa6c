/**
 * ESP-IDF's binary partition table (docs/spec/partition-table.md), as
 * components/partition_table/gen_esp32part.py 1.5 (ESP-IDF v6.0) writes it
 * from a CSV: one 32-byte entry per partition in table order
 * (struct '<2sBBLL16sL': magic AA 50, type, subtype, offset u32 LE, size
 * u32 LE, label padded with NUL to 16 bytes, flags u32 LE with bit 0
 * encrypted and bit 1 readonly), then the MD5 entry (EB EB, 14 × FF, the
 * MD5 of all preceding entry bytes), then 0xFF up to 0xC00 bytes. The
 * flasher writes it at the partition table offset (0x8000); the rest of that
 * 4 KiB sector stays erased.
 *
 * Host tool; engine-neutral apart from the MD5 (node:crypto).
 */
import { createHash } from 'node:crypto';
import type { Board, BoardPartition } from '../boards/board.ts';

/** gen_esp32part.py MAX_PARTITION_LENGTH: the table, its MD5 entry and the 0xFF padding. */
export const TABLE_LENGTH = 0xc00;
export const ENTRY_LENGTH = 32;
export const ENTRY_MAGIC = Object.freeze([0xaa, 0x50] as const);
export const MD5_MAGIC = Object.freeze([0xeb, 0xeb] as const);
/** Entries that fit before the MD5 entry: the table plus its MD5 entry must stay below 0xC00. */
export const MAX_ENTRIES = TABLE_LENGTH / ENTRY_LENGTH - 2;
export const LABEL_LENGTH = 16;

export const PartitionType = Object.freeze({ app: 0x00, data: 0x01 } as const);

/** esp_partition_subtype_t names (gen_esp32part.py SUBTYPES). */
export const APP_SUBTYPES: Readonly<Record<string, number>> = Object.freeze({
  factory: 0x00,
  test: 0x20,
  ...Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`ota_${i}`, 0x10 + i])),
  tee_0: 0x30,
  tee_1: 0x31,
});
export const DATA_SUBTYPES: Readonly<Record<string, number>> = Object.freeze({
  ota: 0x00,
  phy: 0x01,
  nvs: 0x02,
  coredump: 0x03,
  nvs_keys: 0x04,
  efuse: 0x05,
  undefined: 0x06,
  esphttpd: 0x80,
  fat: 0x81,
  spiffs: 0x82,
  littlefs: 0x83,
  tee_ota: 0x90,
});

export const Flag = Object.freeze({ encrypted: 1 << 0, readonly: 1 << 1 } as const);

/** One row in binary terms. */
export interface PartitionEntry {
  readonly name: string;
  readonly type: number;
  readonly subtype: number;
  readonly offset: number;
  readonly size: number;
  readonly flags: number;
}

export class PartitionTableError extends Error {
  constructor(message: string) {
    super(message);
    Object.defineProperty(this, 'name', { value: 'PartitionTableError', enumerable: false, configurable: true, writable: true });
  }
}

/** A board partition (names as in the CSV) as a binary entry. */
export function entryOf(p: Pick<BoardPartition, 'name' | 'type' | 'subtype' | 'offset' | 'size' | 'flags'>): PartitionEntry {
  const type = PartitionType[p.type];
  if (type === undefined) throw new PartitionTableError(`partition ${p.name}: type ${JSON.stringify(p.type)}: expected app or data`);
  const names = type === PartitionType.app ? APP_SUBTYPES : DATA_SUBTYPES;
  let subtype: number | undefined = Object.hasOwn(names, p.subtype) ? names[p.subtype] : undefined;
  if (subtype === undefined && /^0x[0-9a-f]{1,2}$/i.test(p.subtype)) subtype = Number.parseInt(p.subtype.slice(2), 16);
  if (subtype === undefined) throw new PartitionTableError(`partition ${p.name}: subtype ${JSON.stringify(p.subtype)}: expected one of ${Object.keys(names).join(', ')} or 0x00..0xff`);
  let flags = 0;
  for (const flag of p.flags.split(':').filter((f) => f !== '')) {
    if (!Object.hasOwn(Flag, flag)) throw new PartitionTableError(`partition ${p.name}: flag ${JSON.stringify(flag)}: expected encrypted or readonly`);
    flags |= Flag[flag as keyof typeof Flag];
  }
  return { name: p.name, type, subtype, offset: p.offset, size: p.size, flags };
}

/** The 0xC00-byte binary table for `board`, entries in the board's (address) order. */
export function encodeBoardPartitionTable(board: Pick<Board, 'partitions'>): Uint8Array {
  return encodePartitionTable(board.partitions.map(entryOf));
}

export function encodePartitionTable(entries: readonly PartitionEntry[]): Uint8Array {
  if (entries.length > MAX_ENTRIES) throw new PartitionTableError(`${entries.length} partitions: expected at most ${MAX_ENTRIES} (0xC00 bytes with the MD5 entry)`);
  const out = new Uint8Array(TABLE_LENGTH).fill(0xff);
  const view = new DataView(out.buffer);
  entries.forEach((e, i) => {
    const at = i * ENTRY_LENGTH;
    const label = new TextEncoder().encode(e.name);
    if (label.length > LABEL_LENGTH) throw new PartitionTableError(`partition ${e.name}: label of ${label.length} bytes: expected at most ${LABEL_LENGTH}`);
    for (const [field, value, max] of [['type', e.type, 0xff], ['subtype', e.subtype, 0xff], ['offset', e.offset, 0xffffffff], ['size', e.size, 0xffffffff], ['flags', e.flags, 0xffffffff]] as const) {
      if (!Number.isInteger(value) || value < 0 || value > max) throw new PartitionTableError(`partition ${e.name}: ${field} ${value}: expected 0..${max}`);
    }
    out[at] = ENTRY_MAGIC[0];
    out[at + 1] = ENTRY_MAGIC[1];
    out[at + 2] = e.type;
    out[at + 3] = e.subtype;
    view.setUint32(at + 4, e.offset, true);
    view.setUint32(at + 8, e.size, true);
    out.fill(0, at + 12, at + 28);
    out.set(label, at + 12);
    view.setUint32(at + 28, e.flags, true);
  });
  const md5At = entries.length * ENTRY_LENGTH;
  out[md5At] = MD5_MAGIC[0];
  out[md5At + 1] = MD5_MAGIC[1];
  out.set(createHash('md5').update(out.subarray(0, md5At)).digest(), md5At + 16);
  return out;
}

export type DecodedTable = { kind: 'table'; entries: PartitionEntry[] } | { kind: 'invalid'; reason: string };

/**
 * Reads a binary table as gen_esp32part.py's from_binary does: rows until an
 * all-0xFF row, the MD5 row's digest checked when present (its 14 filler
 * bytes are not). Never throws.
 */
export function decodePartitionTable(bytes: Uint8Array): DecodedTable {
  const entries: PartitionEntry[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const limit = Math.min(bytes.length, TABLE_LENGTH);
  for (let at = 0; at + ENTRY_LENGTH <= limit; at += ENTRY_LENGTH) {
    const row = bytes.subarray(at, at + ENTRY_LENGTH);
    if (row.every((b) => b === 0xff)) return { kind: 'table', entries };
    if (row[0] === MD5_MAGIC[0] && row[1] === MD5_MAGIC[1]) {
      const digest = createHash('md5').update(bytes.subarray(0, at)).digest();
      if (!digest.equals(row.subarray(16))) return { kind: 'invalid', reason: `MD5 entry at 0x${at.toString(16)} does not match the entries before it` };
      continue;
    }
    if (row[0] !== ENTRY_MAGIC[0] || row[1] !== ENTRY_MAGIC[1]) return { kind: 'invalid', reason: `entry at 0x${at.toString(16)}: magic ${row[0].toString(16)} ${row[1].toString(16)}, expected aa 50` };
    const label = row.subarray(12, 28);
    const end = label.indexOf(0);
    entries.push({
      name: new TextDecoder().decode(end === -1 ? label : label.subarray(0, end)),
      type: row[2],
      subtype: row[3],
      offset: view.getUint32(at + 4, true),
      size: view.getUint32(at + 8, true),
      flags: view.getUint32(at + 28, true),
    });
  }
  return { kind: 'invalid', reason: 'no end-of-table row (32 × 0xFF) within 0xC00 bytes' };
}
