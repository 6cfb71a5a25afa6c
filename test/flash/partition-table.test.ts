/**
 * The ESP-IDF binary partition table encoder (tools/flash/partition-table.ts)
 * against vectors written out by hand from the format
 * (docs/spec/partition-table.md): each 32-byte row spelled field by field,
 * the MD5 entry's digest taken with md5sum over exactly those row bytes.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { loadBoard } from '../../tools/boards/board.ts';
import { decodePartitionTable, encodeBoardPartitionTable, encodePartitionTable, entryOf, MAX_ENTRIES, PartitionTableError, TABLE_LENGTH, type PartitionEntry } from '../../tools/flash/partition-table.ts';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const ff = (n: number): string => 'ff'.repeat(n);

/** Pads a hand-written table to 0xC00 with 0xFF, as gen_esp32part.py does. */
function table(rows: string): Uint8Array {
  const bytes = hex(rows);
  const out = new Uint8Array(TABLE_LENGTH).fill(0xff);
  out.set(bytes);
  return out;
}

const THREE_ROWS = [
  // magic | type | subtype | offset LE  | size LE    | label (16 bytes, NUL padded)      | flags LE
  'aa50   01     02        00900000     00600000     6e7673 00000000000000000000000000  00000000', // nvs, data/nvs, 0x9000, 0x6000
  'aa50   00     10        00000100     00001000     6f74615f30 0000000000000000000000  01000000', // ota_0, app/ota_0, 0x10000, 0x100000, encrypted
  'aa50   01     40        00003100     00000c00     7369787465656e2d627974652d6c626c  03000000', // sixteen-byte-lbl, data/0x40, 0x310000, 0xc0000, encrypted:readonly
  // MD5 entry: eb eb, 14 × ff, md5sum of the 96 bytes above
  `ebeb ${ff(14)} cb9fc1032ab0f3404143106879366fc3`,
].join('');

const THREE: PartitionEntry[] = [
  { name: 'nvs', type: 1, subtype: 2, offset: 0x9000, size: 0x6000, flags: 0 },
  { name: 'ota_0', type: 0, subtype: 0x10, offset: 0x10000, size: 0x100000, flags: 1 },
  { name: 'sixteen-byte-lbl', type: 1, subtype: 0x40, offset: 0x310000, size: 0xc0000, flags: 3 },
];

describe('ESP-IDF partition table encoder', () => {
  it('three rows: byte-exact to the hand-written table (fields, NUL-padded labels, flags bits, MD5 row, 0xFF to 0xC00)', () => {
    const bytes = encodePartitionTable(THREE);
    assert.equal(bytes.length, 0xc00);
    assert.deepEqual(Buffer.from(bytes).toString('hex'), Buffer.from(table(THREE_ROWS)).toString('hex'));
  });

  it('the same rows from board-style partitions (names for types, subtypes and flags)', () => {
    const rows = [
      entryOf({ name: 'nvs', type: 'data', subtype: 'nvs', offset: 0x9000, size: 0x6000, flags: '' }),
      entryOf({ name: 'ota_0', type: 'app', subtype: 'ota_0', offset: 0x10000, size: 0x100000, flags: 'encrypted' }),
      entryOf({ name: 'sixteen-byte-lbl', type: 'data', subtype: '0x40', offset: 0x310000, size: 0xc0000, flags: 'encrypted:readonly' }),
    ];
    assert.deepEqual(rows, THREE);
  });

  it('an empty table is the MD5 row of nothing (md5sum of no bytes) and 0xFF', () => {
    assert.deepEqual(Buffer.from(encodePartitionTable([])).toString('hex'), Buffer.from(table(`ebeb ${ff(14)} d41d8cd98f00b204e9800998ecf8427e`)).toString('hex'));
  });

  it('subtype names follow gen_esp32part.py (otadata 0x00, phy 0x01, ota_15 0x1f, test 0x20, littlefs 0x83)', () => {
    const sub = (type: 'app' | 'data', subtype: string): number => entryOf({ name: 'x', type, subtype, offset: 0, size: 0, flags: '' }).subtype;
    assert.deepEqual([sub('data', 'ota'), sub('data', 'phy'), sub('data', 'nvs'), sub('app', 'factory'), sub('app', 'ota_15'), sub('app', 'test'), sub('data', 'littlefs'), sub('data', '0xfe')], [0, 1, 2, 0, 0x1f, 0x20, 0x83, 0xfe]);
  });

  it('refuses what gen_esp32part.py refuses: a label over 16 bytes, an unknown subtype or flag, more than 94 rows', () => {
    assert.throws(() => encodePartitionTable([{ ...THREE[0], name: 'seventeen-bytes-x' }]), PartitionTableError);
    assert.throws(() => entryOf({ name: 'x', type: 'data', subtype: 'tee_sec_stg', offset: 0, size: 0, flags: '' }), /subtype "tee_sec_stg"/);
    assert.throws(() => entryOf({ name: 'x', type: 'data', subtype: 'nvs', offset: 0, size: 0, flags: 'secret' }), /flag "secret"/);
    assert.equal(MAX_ENTRIES, 94);
    const many = (n: number): PartitionEntry[] => Array.from({ length: n }, (_, i) => ({ ...THREE[0], name: `p${i}`, offset: 0x9000 + i * 0x1000, size: 0x1000 }));
    assert.equal(encodePartitionTable(many(94)).length, 0xc00);
    assert.throws(() => encodePartitionTable(many(95)), /at most 94/);
  });

  it('every board decodes back to its own partitions; esp32-devkitc starts with the nvs row and has its MD5 row after its 16 rows', () => {
    for (const id of ['esp32-devkitc', 'esp32-s3-devkitc-1', 'esp32-c3-devkitm-1', 'esp32-wroom-32e-4mb']) {
      const board = loadBoard(id);
      const bytes = encodeBoardPartitionTable(board);
      const decoded = decodePartitionTable(bytes);
      assert.equal(decoded.kind, 'table', id);
      assert.deepEqual(decoded.kind === 'table' ? decoded.entries : [], board.partitions.map(entryOf), id);
    }
    const devkitc = encodeBoardPartitionTable(loadBoard('esp32-devkitc'));
    assert.equal(Buffer.from(devkitc.subarray(0, 32)).toString('hex'), Buffer.from(hex('aa50 01 02 00900000 00400000 6e7673 00000000000000000000000000 00000000')).toString('hex'));
    // hf_outbox row: data/0x40 at 0x310000, 0xc0000 bytes, encrypted.
    assert.equal(Buffer.from(devkitc.subarray(5 * 32, 6 * 32)).toString('hex'), Buffer.from(hex('aa50 01 40 00003100 00000c00 68665f6f7574626f78 00000000000000 01000000')).toString('hex'));
    // hf_progress row: data/0x48 at 0x3dc000, 0x2000 bytes, encrypted; hf_audit: data/0x43 at 0x3de000, 0x1b000 bytes, encrypted; hf_keys: data/0x4b at 0x3f9000, 0x2000 bytes, encrypted; hf_revoke: data/0x4a at 0x3fb000, 0x4000 bytes, encrypted; hf_prov: data/0x49 at 0x3ff000, 0x1000 bytes, encrypted.
    assert.equal(Buffer.from(devkitc.subarray(12 * 32, 13 * 32)).toString('hex'), Buffer.from(hex('aa50 01 48 00c03d00 00200000 68665f70726f6772657373 0000000000 01000000')).toString('hex'));
    assert.equal(Buffer.from(devkitc.subarray(13 * 32, 14 * 32)).toString('hex'), Buffer.from(hex('aa50 01 43 00e03d00 00b00100 68665f6175646974 0000000000000000 01000000')).toString('hex'));
    assert.equal(Buffer.from(devkitc.subarray(14 * 32, 15 * 32)).toString('hex'), Buffer.from(hex('aa50 01 4b 00903f00 00200000 68665f6b657973 000000000000000000 01000000')).toString('hex'));
    assert.equal(Buffer.from(devkitc.subarray(15 * 32, 16 * 32)).toString('hex'), Buffer.from(hex('aa50 01 4a 00b03f00 00400000 68665f7265766f6b65 00000000000000 01000000')).toString('hex'));
    assert.equal(Buffer.from(devkitc.subarray(16 * 32, 17 * 32)).toString('hex'), Buffer.from(hex('aa50 01 49 00f03f00 00100000 68665f70726f76 000000000000000000 01000000')).toString('hex'));
    assert.deepEqual([...devkitc.subarray(17 * 32, 17 * 32 + 16)], [0xeb, 0xeb, ...new Array(14).fill(0xff)]);
    assert.ok(devkitc.subarray(18 * 32).every((b) => b === 0xff));
  });

  it('the decoder refuses a damaged MD5 row and never throws on any bytes', () => {
    const bytes = table(THREE_ROWS);
    bytes[120] ^= 1; // in the MD5 digest
    assert.equal(decodePartitionTable(bytes).kind, 'invalid');
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 0xd00 }), (random) => {
        const result = decodePartitionTable(random);
        assert.ok(result.kind === 'table' || result.kind === 'invalid');
      }),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xbff }), fc.integer({ min: 1, max: 255 }), (at, flip) => {
        const mutated = table(THREE_ROWS);
        mutated[at] ^= flip;
        const result = decodePartitionTable(mutated);
        // Caught: a flip in a row, in the MD5 row's magic or digest, or in the end row. Not read, as by
        // gen_esp32part.py: the MD5 row's 14 × 0xFF filler (bytes 98..111) and the 0xFF tail after the end row.
        const caught = at < 98 || (at >= 112 && at < 160);
        assert.equal(result.kind, caught ? 'invalid' : 'table', `flip 0x${flip.toString(16)} at ${at}`);
      }),
      { numRuns: 300 },
    );
  });
});
