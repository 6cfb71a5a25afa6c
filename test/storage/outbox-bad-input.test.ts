/**
 * The outbox refuses bad input with a clear error and changes nothing:
 * record sizes and types, sequence numbers, options, partition geometries
 * it cannot use, a newer format, foreign bytes, and a full ring under both
 * policies (firmware/storage/outbox.ts, firmware/storage/errors.ts).
 *
 * Every refusal is checked three ways: the error class (TypeError for a
 * wrong type, RangeError for an out-of-range value, StorageError with its
 * code for the flash contents), the flash bytes (a snapshot compare), and
 * the outbox still working afterwards.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Outbox, type OutboxOptions } from '../../firmware/storage/outbox.ts';
import { StorageError, type StorageErrorCode } from '../../firmware/storage/errors.ts';
import { alignUp, encodeHeader, HEADER_LENGTH, OUTBOX_FORMAT_VERSION, type SectorHeader } from '../../firmware/storage/outbox-format.ts';
import type { FlashPartition, FlashStatus } from '../../firmware/hal/flash.ts';
import { SimFlash, type FlashMode } from '../../tools/sim/flash/sim-flash.ts';
import { Rng } from '../../tools/sim/rng.ts';

const MODES: readonly FlashMode[] = ['plain', 'strict'];

// ─── Helpers ──────────────────────────────────────────────────────────────

function payloadFor(seed: number, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  new Rng(seed * 7919 + 17).fill(bytes);
  return bytes;
}

/** Every record peek/next delivers, with a hang guard. */
function drain(outbox: Outbox, cap = 10_000): { seq: number; payload: Uint8Array }[] {
  const out: { seq: number; payload: Uint8Array }[] = [];
  for (let record = outbox.peek(); record !== undefined; record = outbox.next()) {
    out.push(record);
    assert.ok(out.length <= cap, `delivery did not end after ${cap} records`);
  }
  return out;
}

/** The first differing byte of the flash against `before`, or -1. */
function firstDifference(flash: SimFlash, before: Uint8Array): number {
  const now = flash.snapshot().data;
  assert.equal(now.length, before.length);
  for (let i = 0; i < now.length; i++) if (now[i] !== before[i]) return i;
  return -1;
}

function assertUnchanged(flash: SimFlash, before: Uint8Array, what: string): void {
  const at = firstDifference(flash, before);
  assert.equal(at, -1, `${what}: flash byte ${at} changed (0x${before[at]?.toString(16)} -> 0x${flash.data[at]?.toString(16)})`);
}

function assertStorageError(run: () => unknown, code: StorageErrorCode, what: string): StorageError {
  let caught: unknown;
  try {
    run();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof StorageError, `${what}: expected StorageError '${code}', got ${caught === undefined ? 'no error' : String(caught)}`);
  assert.equal(caught.code, code, `${what}: error code (message: ${caught.message})`);
  assert.equal(caught.name, 'StorageError');
  assert.ok(caught.message.length > 0, `${what}: the error has a message`);
  return caught;
}

/** A SimFlash wrapper that logs every call (to prove a refusal touched nothing). */
class LoggingFlash implements FlashPartition {
  readonly calls: string[] = [];
  constructor(readonly inner: FlashPartition) {}
  status(): FlashStatus {
    this.calls.push('status');
    return this.inner.status();
  }
  read(byteOffset: number, target: Uint8Array): void {
    this.calls.push(`read ${byteOffset}+${target.length}`);
    this.inner.read(byteOffset, target);
  }
  write(byteOffset: number, data: Uint8Array): void {
    this.calls.push(`write ${byteOffset}+${data.length}`);
    this.inner.write(byteOffset, data);
  }
  eraseBlock(block: number): void {
    this.calls.push(`erase ${block}`);
    this.inner.eraseBlock(block);
  }
}

/** A partition with any geometry: status() answers it, every other call is logged and refused. */
class FakeGeometry implements FlashPartition {
  readonly calls: string[] = [];
  constructor(private readonly geometry: FlashStatus) {}
  status(): FlashStatus {
    this.calls.push('status');
    return { ...this.geometry };
  }
  read(byteOffset: number, target: Uint8Array): void {
    this.calls.push(`read ${byteOffset}+${target.length}`);
    target.fill(this.geometry.eraseValue);
  }
  write(byteOffset: number, data: Uint8Array): void {
    this.calls.push(`write ${byteOffset}+${data.length}`);
  }
  eraseBlock(block: number): void {
    this.calls.push(`erase ${block}`);
  }
}

/** An outbox on a 3 × 512 flash holding `count` records; returns their payloads by seq. */
function smallOutbox(mode: FlashMode, count: number, options: OutboxOptions = {}) {
  const flash = new SimFlash({ blocks: 3, blockLength: 512, mode });
  const outbox = Outbox.open(flash, options);
  const records = new Map<number, Uint8Array>();
  for (let i = 0; i < count; i++) {
    const payload = payloadFor(i, 10 + (i % 7));
    records.set(outbox.append(payload), payload);
  }
  return { flash, outbox, records };
}

function assertDeliversExactly(outbox: Outbox, records: Map<number, Uint8Array>, from: number, what: string): void {
  const delivered = drain(outbox);
  const expected = [...records.keys()].filter((seq) => seq >= from).sort((a, b) => a - b);
  assert.deepEqual(
    delivered.map((r) => r.seq),
    expected,
    `${what}: delivered sequence numbers`,
  );
  for (const record of delivered) assert.deepEqual(record.payload, records.get(record.seq), `${what}: payload of ${record.seq}`);
}

function writeHeader(flash: SimFlash, index: number, header: SectorHeader): void {
  const bytes = new Uint8Array(alignUp(HEADER_LENGTH, flash.writeAlign)).fill(0xff);
  bytes.set(encodeHeader(header));
  flash.write(index * flash.blockLength, bytes);
}

/** Strict mode: units that are not all 0xFF count as programmed (as loadRawImage infers them). */
function deriveUnitMap(flash: SimFlash): void {
  flash.deriveUnitsFromContents();
}

// ─── Record sizes and types ──────────────────────────────────────────────

describe('append: bad record sizes and types', () => {
  for (const mode of MODES) {
    test(`sizes out of range throw RangeError and write nothing (${mode})`, () => {
      const { flash, outbox, records } = smallOutbox(mode, 5);
      const max = outbox.maxPayload;
      assert.ok(Number.isInteger(max) && max > 0, `maxPayload ${max}`);
      const before = flash.snapshot().data;
      const stats = outbox.stats();
      for (const length of [0, max + 1, max + 16, 0x7ff + 1, 1 << 20]) {
        assert.throws(
          () => outbox.append(new Uint8Array(length)),
          (error: unknown) => error instanceof RangeError && !(error instanceof StorageError) && /byte/.test(error.message),
          `${length}-byte record`,
        );
        assertUnchanged(flash, before, `refused ${length}-byte record`);
        assert.deepEqual(outbox.stats(), stats, `stats after the refused ${length}-byte record`);
      }
      // Still usable: the boundary size is accepted and everything comes back in order.
      const big = payloadFor(99, max);
      records.set(outbox.append(big), big);
      const one = payloadFor(100, 1);
      records.set(outbox.append(one), one);
      assertDeliversExactly(outbox, records, 0, 'after refused sizes');
      assertDeliversExactly(Outbox.open(flash), records, 0, 'after refused sizes, reopened');
    });

    test(`non-Uint8Array records throw TypeError and write nothing (${mode})`, () => {
      const { flash, outbox, records } = smallOutbox(mode, 3);
      const before = flash.snapshot().data;
      const stats = outbox.stats();
      const bad: [string, unknown][] = [
        ['string', 'hello'],
        ['empty string', ''],
        ['array', [1, 2, 3]],
        ['undefined', undefined],
        ['null', null],
        ['number', 42],
        ['DataView', new DataView(new ArrayBuffer(8))],
        ['ArrayBuffer', new ArrayBuffer(8)],
        ['Uint16Array', new Uint16Array(4)],
        ['Int8Array', new Int8Array(4)],
        ['array-like object', { length: 3, 0: 1, 1: 2, 2: 3 }],
      ];
      for (const [name, value] of bad) {
        assert.throws(() => outbox.append(value as Uint8Array), TypeError, name);
        assertUnchanged(flash, before, `refused ${name}`);
        assert.deepEqual(outbox.stats(), stats, `stats after the refused ${name}`);
      }
      // A Uint8Array view into a larger buffer (and a Node Buffer) are records like any other.
      const backing = payloadFor(7, 64);
      const view = backing.subarray(9, 30);
      records.set(outbox.append(view), view.slice());
      const buffer = Buffer.from([5, 6, 7, 8]);
      records.set(outbox.append(buffer), new Uint8Array(buffer));
      assertDeliversExactly(outbox, records, 0, 'after refused types');
    });
  }
});

// ─── Sequence numbers ────────────────────────────────────────────────────

describe('ack: bad sequence numbers', () => {
  for (const mode of MODES) {
    test(`out-of-range or future sequence numbers throw RangeError and change nothing (${mode})`, () => {
      const { flash, outbox, records } = smallOutbox(mode, 6, { maxUnpersistedAcks: 0 });
      outbox.ack(1);
      const before = flash.snapshot().data;
      const stats = outbox.stats();
      assert.equal(stats.nextSeq, 6);
      for (const seq of [-1, -0.5, 1.5, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 2 ** 32, 2 ** 53, 6, 7, 1000, 0x7fffffff]) {
        assert.throws(() => outbox.ack(seq), RangeError, `ack(${seq})`);
        assertUnchanged(flash, before, `refused ack(${seq})`);
        assert.deepEqual(outbox.stats(), stats, `stats after refused ack(${seq})`);
      }
      assertDeliversExactly(outbox, records, 2, 'after refused acks');
    });

    test(`acking an already-acknowledged record is a no-op (${mode})`, () => {
      const { flash, outbox, records } = smallOutbox(mode, 8, { maxUnpersistedAcks: 0 });
      outbox.ack(4);
      outbox.flush();
      const before = flash.snapshot().data;
      const stats = outbox.stats();
      assert.equal(stats.ackSeq, 5);
      for (const seq of [4, 3, 0]) {
        outbox.ack(seq);
        assertUnchanged(flash, before, `repeated ack(${seq})`);
        assert.deepEqual(outbox.stats(), stats, `stats after repeated ack(${seq})`);
      }
      outbox.flush();
      assertUnchanged(flash, before, 'flush with nothing new');
      assertDeliversExactly(outbox, records, 5, 'after repeated acks');
      assertDeliversExactly(Outbox.open(flash), records, 5, 'after repeated acks, reopened');
    });
  }

  test('ack on an empty outbox is refused: nothing was appended', () => {
    const flash = new SimFlash({ blocks: 2, blockLength: 512 });
    const outbox = Outbox.open(flash);
    const before = flash.snapshot().data;
    for (const seq of [0, 1, 1000, 0x7fffffff]) assert.throws(() => outbox.ack(seq), RangeError, `ack(${seq})`);
    assertUnchanged(flash, before, 'acks on an empty outbox');
  });

  // errors.ts: "Wrong argument types throw TypeError and out-of-range arguments RangeError".
  test('ack with a sequence number that is not a number throws TypeError (errors.ts contract)', () => {
    const { flash, outbox } = smallOutbox('plain', 4);
    const before = flash.snapshot().data;
    for (const [name, value] of [
      ['string "2"', '2'],
      ['bigint 2n', 2n],
      ['undefined', undefined],
      ['object', { valueOf: () => 2 }],
    ] as [string, unknown][]) {
      assert.throws(() => outbox.ack(value as number), TypeError, `ack(${name})`);
    }
    assertUnchanged(flash, before, 'acks of the wrong type');
    assert.equal(outbox.stats().ackSeq, 0);
  });
});

// ─── Options ─────────────────────────────────────────────────────────────

describe('open: bad options', () => {
  const bad: [string, OutboxOptions][] = [
    ['unknown policy', { policy: 'drop-newest' as never }],
    ['empty policy', { policy: '' as never }],
    ['policy in capitals', { policy: 'REJECT' as never }],
    ['numeric policy', { policy: 1 as never }],
    ['negative maxUnpersistedAcks', { maxUnpersistedAcks: -1 }],
    ['fractional maxUnpersistedAcks', { maxUnpersistedAcks: 1.5 }],
    ['NaN maxUnpersistedAcks', { maxUnpersistedAcks: Number.NaN }],
    ['infinite maxUnpersistedAcks', { maxUnpersistedAcks: Number.POSITIVE_INFINITY }],
  ];
  for (const mode of MODES) {
    test(`unknown policies and bad ack bounds throw RangeError without touching the flash (${mode})`, () => {
      const { flash, records } = smallOutbox(mode, 4);
      const before = flash.snapshot().data;
      for (const [name, options] of bad) {
        const logged = new LoggingFlash(flash);
        assert.throws(() => Outbox.open(logged, options), RangeError, name);
        assert.deepEqual(
          logged.calls.filter((call) => call !== 'status'),
          [],
          `${name}: flash calls besides status()`,
        );
        assertUnchanged(flash, before, name);
      }
      // The good options still open the same outbox.
      assertDeliversExactly(Outbox.open(flash, { policy: 'reject', maxUnpersistedAcks: 0 }), records, 0, 'after bad options');
    });
  }
});

// ─── Geometry ────────────────────────────────────────────────────────────

describe('open and format: partitions the outbox cannot use', () => {
  const geometry = (size: number, blockLength: number, blocks: number, writeAlign: number, eraseValue = 0xff): FlashStatus => ({
    size,
    blockLength,
    blocks,
    writeAlign,
    eraseValue,
  });
  const cases: [string, FlashStatus][] = [
    ['one sector', geometry(4096, 4096, 1, 1)],
    ['one strict sector', geometry(4096, 4096, 1, 16)],
    ['zero-length partition', geometry(0, 4096, 0, 1)],
    ['size not a multiple of blockLength', geometry(2 * 4096 + 512, 4096, 2, 1)],
    ['size and block count disagree', geometry(3 * 4096, 4096, 2, 1)],
    ['fractional block count', geometry(2 * 4096 + 512, 4096, 2.125, 1)],
    ['blockLength 64 (< 128)', geometry(4 * 64, 64, 4, 1)],
    ['blockLength 127', geometry(4 * 127, 127, 4, 1)],
    ['blockLength 112, strict', geometry(4 * 112, 112, 4, 16)],
    ['blockLength 0', geometry(0, 0, 4, 1)],
    ['blockLength above 65535 (firstRecordOffset is 16 bits)', geometry(2 * 131072, 131072, 2, 1)],
    ['writeAlign 3', geometry(2 * 4095, 4095, 2, 3)],
    ['writeAlign 32', geometry(2 * 4096, 4096, 2, 32)],
    ['writeAlign 0', geometry(2 * 4096, 4096, 2, 0)],
    ['writeAlign -16', geometry(2 * 4096, 4096, 2, -16)],
    ['writeAlign 1.5', geometry(2 * 4096, 4096, 2, 1.5)],
    ['blockLength 200 not a multiple of writeAlign 16', geometry(2 * 200, 200, 2, 16)],
    ['blockLength 4100 not a multiple of writeAlign 8', geometry(2 * 4100, 4100, 2, 8)],
    ['NaN geometry', geometry(Number.NaN, Number.NaN, Number.NaN, 1)],
    ['more sectors than sectorSeq can number over the flash life (50,000)', geometry(50_000 * 4096, 4096, 50_000, 1)],
  ];
  for (const [name, status] of cases) {
    test(`${name}: StorageError 'bad-geometry', status() is the only flash call`, () => {
      for (const action of ['open', 'format'] as const) {
        const flash = new FakeGeometry(status);
        assertStorageError(() => (action === 'open' ? Outbox.open(flash) : Outbox.format(flash)), 'bad-geometry', `${name}, ${action}`);
        assert.deepEqual(flash.calls, ['status'], `${name}, ${action}: flash calls`);
      }
    });
  }

  // The format recognises free space and torn writes by 0xFF (outbox-format.ts); a partition
  // that erases to another value cannot hold it, and after Outbox.format it would still read as foreign.
  test("a partition whose erase value is not 0xFF: StorageError 'bad-geometry', status() is the only flash call", () => {
    for (const eraseValue of [0x00, 0x5a]) {
      for (const action of ['open', 'format'] as const) {
        const flash = new FakeGeometry(geometry(4 * 4096, 4096, 4, 1, eraseValue));
        assertStorageError(
          () => (action === 'open' ? Outbox.open(flash) : Outbox.format(flash)),
          'bad-geometry',
          `eraseValue 0x${eraseValue.toString(16)}, ${action}`,
        );
        assert.deepEqual(flash.calls, ['status'], `eraseValue 0x${eraseValue.toString(16)}, ${action}: flash calls`);
      }
    }
  });

  test('the smallest accepted geometries work (2 × 128 bytes, plain and strict)', () => {
    for (const mode of MODES) {
      const flash = new SimFlash({ blocks: 2, blockLength: 128, mode });
      const outbox = Outbox.open(flash);
      assert.ok(outbox.maxPayload > 0, `${mode}: maxPayload ${outbox.maxPayload}`);
      const records = new Map<number, Uint8Array>();
      for (let i = 0; i < 3; i++) {
        const payload = payloadFor(i, Math.min(outbox.maxPayload, 5 + i));
        records.set(outbox.append(payload), payload);
      }
      assertDeliversExactly(outbox, records, 0, mode);
      assertDeliversExactly(Outbox.open(flash), records, 0, `${mode}, reopened`);
    }
  });
});

// ─── Newer format ────────────────────────────────────────────────────────

describe('open: a partition written by a newer format', () => {
  // The next format after this firmware's (format 1 was the first; 2 is current: docs/spec/outbox.md).
  const v2: SectorHeader = {
    version: OUTBOX_FORMAT_VERSION + 1,
    unitShift: 0,
    firstRecordOffset: 28,
    sectorSeq: 1,
    firstRecordSeq: 0,
    ackSeq: 0,
    dropped: 0,
    eraseCount: 1,
  };
  for (const mode of MODES) {
    test(`a valid header of the next format version in a blank partition: StorageError 'format-too-new', nothing written (${mode})`, () => {
      const flash = new SimFlash({ blocks: 4, blockLength: 512, mode });
      writeHeader(flash, 0, { ...v2, unitShift: Math.log2(flash.writeAlign), firstRecordOffset: alignUp(HEADER_LENGTH, flash.writeAlign) });
      const before = flash.snapshot().data;
      for (const options of [{}, { policy: 'reject' as const }]) {
        const logged = new LoggingFlash(flash);
        assertStorageError(() => Outbox.open(logged, options), 'format-too-new', mode);
        assert.deepEqual(
          logged.calls.filter((call) => call.startsWith('write') || call.startsWith('erase')),
          [],
          'writes or erases during the refused open',
        );
        assertUnchanged(flash, before, `refused newer format (${mode})`);
      }
    });

    test(`a sector of a later format among current ones: 'format-too-new', nothing written (${mode})`, () => {
      const { flash } = smallOutbox(mode, 10);
      // Sector 2 was never opened by this outbox (10 small records fit in sector 0).
      assert.ok(flash.data.subarray(2 * 512, 3 * 512).every((b) => b === 0xff), 'sector 2 is blank');
      writeHeader(flash, 2, { ...v2, version: 7, unitShift: Math.log2(flash.writeAlign), sectorSeq: 3 });
      const before = flash.snapshot().data;
      assertStorageError(() => Outbox.open(flash), 'format-too-new', mode);
      assertUnchanged(flash, before, `refused mixed formats (${mode})`);
    });
  }
});

// ─── Foreign bytes ───────────────────────────────────────────────────────

describe('open: foreign bytes where the sector headers should be', () => {
  for (const mode of MODES) {
    for (const seed of [1, 2, 3, 4, 5]) {
      test(`random bytes in several sectors: 'not-formatted', unchanged; format makes it usable (${mode}, seed ${seed})`, () => {
        const rng = new Rng(seed);
        const flash = new SimFlash({ blocks: 4, blockLength: 512, mode });
        // Several sectors (always at least two) get 32..512 random bytes from their start.
        const damaged = [0, 1, 2, 3].filter((index) => index < 2 || rng.chance(0.5));
        for (const index of damaged) rng.fill(flash.data.subarray(index * 512, index * 512 + rng.between(32, 512)));
        deriveUnitMap(flash);
        const before = flash.snapshot().data;
        const logged = new LoggingFlash(flash);
        assertStorageError(() => Outbox.open(logged), 'not-formatted', `seed ${seed}, sectors ${damaged.join(',')}`);
        assert.deepEqual(
          logged.calls.filter((call) => call.startsWith('write') || call.startsWith('erase')),
          [],
          `seed ${seed}: writes or erases during the refused open`,
        );
        assertUnchanged(flash, before, `seed ${seed}: refused foreign bytes`);
        // Still refused on a second try (nothing was repaired behind our back).
        assertStorageError(() => Outbox.open(flash, { policy: 'reject' }), 'not-formatted', `seed ${seed}, second open`);

        Outbox.format(flash);
        assert.ok(flash.data.every((b) => b === 0xff), 'format erases every sector');
        const outbox = Outbox.open(flash);
        assert.equal(outbox.stats().queued, 0);
        assert.equal(outbox.stats().dropped, 0);
        const records = new Map<number, Uint8Array>();
        // 36 records fit the 4 strict sectors without a drop (format 2 entries: 6-byte header, 16-byte units).
        for (let i = 0; i < 36; i++) {
          const payload = payloadFor(seed * 1000 + i, 20 + (i % 30));
          records.set(outbox.append(payload), payload);
        }
        assertDeliversExactly(outbox, records, 0, `seed ${seed}, after format`);
        assertDeliversExactly(Outbox.open(flash), records, 0, `seed ${seed}, after format, reopened`);
      });
    }

    test(`a whole partition of random bytes: 'not-formatted', unchanged (${mode})`, () => {
      const flash = new SimFlash({ blocks: 3, blockLength: 4096, mode });
      new Rng(77).fill(flash.data);
      deriveUnitMap(flash);
      const before = flash.snapshot().data;
      assertStorageError(() => Outbox.open(flash), 'not-formatted', mode);
      assertUnchanged(flash, before, 'refused random partition');
    });
  }
});

// ─── Full ring ───────────────────────────────────────────────────────────

describe('a full ring', () => {
  for (const mode of MODES) {
    test(`policy reject: StorageError 'full', nothing written, rejected counts, acks make room (${mode})`, () => {
      const flash = new SimFlash({ blocks: 2, blockLength: 512, mode });
      const outbox = Outbox.open(flash, { policy: 'reject' });
      const records = new Map<number, Uint8Array>();
      let refused: StorageError | undefined;
      let index = 0;
      for (; index < 1000 && refused === undefined; index++) {
        const payload = payloadFor(index, 40);
        const before = flash.snapshot().data;
        const stats = outbox.stats();
        try {
          records.set(outbox.append(payload), payload);
        } catch (error) {
          assert.ok(error instanceof StorageError, `append ${index}: ${String(error)}`);
          refused = error;
          assertUnchanged(flash, before, `refused append ${index}`);
          assert.deepEqual(outbox.stats(), { ...stats, rejected: 1 }, 'stats after the refused append');
        }
      }
      assert.ok(refused !== undefined, 'the ring filled up');
      assert.equal(refused.code, 'full');
      // Refused again: counted again, still nothing written.
      const before = flash.snapshot().data;
      assertStorageError(() => outbox.append(payloadFor(5000, 40)), 'full', 'second refusal');
      assertStorageError(() => outbox.append(payloadFor(5001, 40)), 'full', 'third refusal');
      assertUnchanged(flash, before, 'refused appends');
      assert.equal(outbox.stats().rejected, 3);
      assert.equal(outbox.stats().dropped, 0);
      assert.equal(outbox.stats().queued, records.size);
      assertDeliversExactly(outbox, records, 0, 'full ring (reject)');
      // Reopened: nothing lost, the refusals are this boot's count only.
      const reopened = Outbox.open(flash, { policy: 'reject' });
      assert.equal(reopened.stats().rejected, 0);
      assert.equal(reopened.stats().dropped, 0);
      assertDeliversExactly(reopened, records, 0, 'full ring (reject), reopened');
      // Acking everything makes room; the next appends go through and nothing was dropped.
      const last = Math.max(...records.keys());
      reopened.ack(last);
      const next = payloadFor(6000, 40);
      const seq = reopened.append(next);
      assert.equal(seq, last + 1);
      assert.deepEqual(drain(reopened), [{ seq, payload: next }]);
      assert.equal(reopened.stats().dropped, 0);
    });

    test(`policy drop-oldest: dropped counts exactly the records that disappeared, also after a reopen (${mode})`, () => {
      const flash = new SimFlash({ blocks: 3, blockLength: 512, mode });
      let outbox = Outbox.open(flash, { policy: 'drop-oldest', maxUnpersistedAcks: 4 });
      const records = new Map<number, Uint8Array>();
      const acked = new Set<number>();
      for (let i = 0; i < 160; i++) {
        const payload = payloadFor(i, 12 + ((i * 37) % 90));
        const seq = outbox.append(payload);
        assert.equal(seq, i, 'sequence numbers count appends');
        records.set(seq, payload);
        // Ack the first 10 records early (they must never count as dropped), and one more now and then.
        if (i === 9) {
          outbox.ack(9);
          for (let s = 0; s <= 9; s++) acked.add(s);
        }
        if (i % 25 === 24) {
          // Ack one record in the middle: only the prefix counts, so this acks everything up to it.
          // (Records below the ack point were already acked or dropped: the new ack covers only [ackSeq, upTo].)
          const from = outbox.stats().ackSeq;
          const upTo = drain(outbox)[0]?.seq ?? seq;
          outbox.ack(upTo);
          for (let s = from; s <= upTo; s++) acked.add(s);
        }
        const check = (box: Outbox, what: string) => {
          const delivered = drain(box);
          const seqs = delivered.map((r) => r.seq);
          const stats = box.stats();
          // What was delivered is a contiguous, intact tail ending at the newest record (or nothing: all acked).
          if (seqs.length > 0) assert.equal(seqs.at(-1), seq, `${what}: the newest record is delivered`);
          else assert.ok(acked.has(seq), `${what}: nothing delivered though ${seq} was not acked`);
          for (let k = 1; k < seqs.length; k++) assert.equal(seqs[k], seqs[k - 1] + 1, `${what}: delivery is contiguous`);
          for (const r of delivered) assert.deepEqual(r.payload, records.get(r.seq), `${what}: payload of ${r.seq}`);
          // Records before the first delivered one and never acked disappeared: dropped must equal their count.
          const first = seqs[0] ?? seq + 1;
          let vanished = 0;
          for (let s = 0; s < first; s++) if (!acked.has(s)) vanished++;
          assert.equal(stats.dropped, vanished, `${what}: dropped (first delivered ${first})`);
          assert.equal(stats.ackSeq, first, `${what}: ack point`);
          assert.equal(stats.queued, seqs.length, `${what}: queued`);
        };
        check(outbox, `after append ${i}`);
        if (i % 20 === 19) {
          // Acks persist at most maxUnpersistedAcks behind; flush so the reopen sees the same ack point.
          outbox.flush();
          outbox = Outbox.open(flash, { policy: 'drop-oldest', maxUnpersistedAcks: 4 });
          check(outbox, `after append ${i}, reopened`);
        }
      }
      assert.ok(outbox.stats().dropped > 0, 'the ring wrapped and dropped records');
    });
  }
});
