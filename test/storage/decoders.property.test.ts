/**
 * Property tests (fast-check) for every decoder that reads bytes from flash
 * or from a file: the outbox record header word, entries and sector headers
 * (firmware/storage/outbox-format.ts), frames (firmware/storage/frame.ts),
 * flash images (tools/sim/flash/image-codec.ts), and Outbox.open + delivery
 * over arbitrary partition contents.
 *
 * Each property states what a decoder must do with ANY input: round-trip
 * what its encoder wrote, reject every single-bit error its check is meant
 * to catch, and never throw (or throw only its documented error) and never
 * hang on anything else. A failure prints fast-check's seed and path; the
 * deterministic tests at the end pin the counterexamples found so far.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { BudgetFlash, Hang } from '../support/budget-flash.ts';
import {
  ACK_FIELD_LENGTH,
  decodeHeader,
  decodeWord,
  encodeEntry,
  encodeHeader,
  encodeWord,
  entryChecks,
  entryLength,
  HEADER_LENGTH,
  makeLayout,
  MAX_PAYLOAD_FIELD,
  RECORD_HEADER_LENGTH,
  type SectorHeader,
} from '../../firmware/storage/outbox-format.ts';
import { decodeFrame, encodeFrame, frameLength, FRAME_HEADER_LENGTH, MAX_FRAME_PAYLOAD } from '../../firmware/storage/frame.ts';
import { Outbox } from '../../firmware/storage/outbox.ts';
import { StorageError } from '../../firmware/storage/errors.ts';
import { SimFlash, type FlashMode } from '../../tools/sim/flash/sim-flash.ts';
import { decodeImage, encodeImage } from '../../tools/sim/flash/image-codec.ts';

const WRITE_ALIGNS = [1, 2, 4, 8, 16] as const;
const writeAlignArb = fc.constantFrom(...WRITE_ALIGNS);
const u32 = fc.integer({ min: 0, max: 0xffffffff });

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = bytes.slice();
  out[bit >>> 3] ^= 1 << (bit & 7);
  return out;
}

// ─── Record header word ─────────────────────────────────────────────────

describe('outbox record header word (decodeWord / encodeWord)', () => {
  test('every length 0..0x7ff with and without an ack field round-trips; length 0 without ack is bad', () => {
    for (let length = 0; length <= MAX_PAYLOAD_FIELD; length++) {
      for (const hasAck of [false, true]) {
        const word = encodeWord(length, hasAck);
        assert.ok(Number.isInteger(word) && word >= 0 && word <= 0xffff, `word ${word} for ${length}/${hasAck}`);
        assert.notEqual(word, 0xffff, `length ${length}, ack ${hasAck} encodes to the erased value`);
        const read = decodeWord(word);
        if (length === 0 && !hasAck) assert.deepEqual(read, { kind: 'bad' }, 'length 0 without ack');
        else assert.deepEqual(read, { kind: 'entry', length, hasAck }, `length ${length}, ack ${hasAck}`);
      }
    }
  });

  test('0xFFFF is erased', () => {
    assert.deepEqual(decodeWord(0xffff), { kind: 'erased' });
  });

  test('all 65536 words: exactly the 4095 encoded words are entries, 1 in 16 passes the check nibble', () => {
    let entries = 0;
    let nibbleOk = 0;
    for (let word = 0; word <= 0xffff; word++) {
      const read = decodeWord(word);
      if (read.kind === 'entry') {
        entries++;
        assert.equal(encodeWord(read.length, read.hasAck), word, `word 0x${word.toString(16)} decodes to an entry it does not encode to`);
      }
      const low = word & 0xfff;
      if (encodeWord(low & 0x7ff, (low & 0x800) !== 0) === word) nibbleOk++;
    }
    assert.equal(entries, 2 * (MAX_PAYLOAD_FIELD + 1) - 1);
    assert.equal(nibbleOk, 4096);
  });

  test('any single-bit error in a valid word is never read as an entry', () => {
    for (let length = 0; length <= MAX_PAYLOAD_FIELD; length++) {
      for (const hasAck of [false, true]) {
        if (length === 0 && !hasAck) continue;
        const word = encodeWord(length, hasAck);
        for (let bit = 0; bit < 16; bit++) {
          assert.notEqual(decodeWord(word ^ (1 << bit)).kind, 'entry', `length ${length}, ack ${hasAck}, bit ${bit}`);
        }
      }
    }
  });

  test('a random 16-bit value always decodes to erased, bad or a valid entry (never throws)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff }), (word) => {
        const read = decodeWord(word);
        assert.ok(read.kind === 'erased' || read.kind === 'bad' || read.kind === 'entry');
        if (read.kind === 'entry') {
          assert.ok(read.length >= 0 && read.length <= MAX_PAYLOAD_FIELD);
          assert.ok(read.length > 0 || read.hasAck);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

// ─── Entries ────────────────────────────────────────────────────────────

const entryArb = fc
  .record({
    payload: fc.uint8Array({ minLength: 0, maxLength: 300 }),
    ack: fc.option(u32, { nil: undefined }),
    writeAlign: writeAlignArb,
    /** Where in a larger buffer the entry is encoded (the outbox encodes into subarrays). */
    at: fc.integer({ min: 0, max: 17 }),
    /** The entry's position in the stream, which its CRC binds. */
    seq: u32,
  })
  .filter((e) => e.payload.length > 0 || e.ack !== undefined);

function encodeAt(e: { payload: Uint8Array; ack: number | undefined; writeAlign: number; at: number; seq: number }) {
  const total = entryLength(e.payload.length, e.ack !== undefined, e.writeAlign);
  const backing = new Uint8Array(e.at + total + 8).fill(0x5a);
  const out = backing.subarray(e.at);
  const written = encodeEntry(out, e.payload, e.ack, e.writeAlign, e.seq);
  return { backing, out, total, written };
}

describe('outbox entries (encodeEntry / entryChecks)', () => {
  test('round trip: word, CRC, ack field, payload, 0xFF padding; nothing written past the entry', () => {
    fc.assert(
      fc.property(entryArb, (e) => {
        const { backing, out, total, written } = encodeAt(e);
        const hasAck = e.ack !== undefined;
        assert.equal(written, total);
        assert.equal(total % e.writeAlign, 0);
        assert.deepEqual(decodeWord(out[0] | (out[1] << 8)), { kind: 'entry', length: e.payload.length, hasAck });
        assert.ok(entryChecks(out.subarray(0, total), e.payload.length, hasAck, e.seq), 'entryChecks on the encoded entry');
        const start = RECORD_HEADER_LENGTH + (hasAck ? ACK_FIELD_LENGTH : 0);
        if (hasAck) assert.equal(new DataView(out.buffer, out.byteOffset).getUint32(RECORD_HEADER_LENGTH, true), e.ack);
        assert.deepEqual(out.subarray(start, start + e.payload.length), e.payload);
        assert.ok(out.subarray(start + e.payload.length, total).every((b) => b === 0xff), 'padding is 0xFF');
        assert.ok(backing.subarray(0, e.at).every((b) => b === 0x5a), 'nothing written before the entry');
        assert.ok(out.subarray(total).every((b) => b === 0x5a), 'nothing written after the entry');
      }),
      { numRuns: 600 },
    );
  });

  test('any single-bit error in the covered bytes (word, CRC, ack, payload) makes entryChecks false', () => {
    fc.assert(
      fc.property(entryArb, fc.nat(), (e, pick) => {
        const { out, total } = encodeAt(e);
        const hasAck = e.ack !== undefined;
        const covered = RECORD_HEADER_LENGTH + (hasAck ? ACK_FIELD_LENGTH : 0) + e.payload.length;
        const bit = pick % (covered * 8);
        const damaged = flipBit(out.subarray(0, total), bit);
        assert.equal(entryChecks(damaged, e.payload.length, hasAck, e.seq), false, `bit ${bit} of ${covered} covered bytes`);
      }),
      { numRuns: 1500 },
    );
  });

  test('an entry read at another position (sequence number) does not check', () => {
    fc.assert(
      fc.property(entryArb, fc.integer({ min: 1, max: 0xffff }), (e, shift) => {
        const { out, total } = encodeAt(e);
        assert.equal(entryChecks(out.subarray(0, total), e.payload.length, e.ack !== undefined, (e.seq + shift) >>> 0), false, `read at seq + ${shift}`);
      }),
      { numRuns: 1000 },
    );
  });

  test('a torn write never checks: any prefix or any bit subset of the entry over erased flash (format 2, issue 15 defect 12)', () => {
    fc.assert(
      fc.property(entryArb, fc.nat(), fc.integer({ min: 1, max: 1000 }), fc.boolean(), (e, pick, landingPermille, prefix) => {
        const { out, total } = encodeAt(e);
        const hasAck = e.ack !== undefined;
        const intended = out.slice(0, total);
        const torn = new Uint8Array(total).fill(0xff);
        if (prefix) {
          torn.set(intended.subarray(0, pick % total));
        } else {
          // Each bit the program was to clear lands with probability landing (a NOR program cut short).
          let x = (pick * 2_654_435_761) >>> 0;
          for (let i = 0; i < total; i++) {
            for (let bit = 0; bit < 8; bit++) {
              x = (Math.imul(x, 1_103_515_245) + 12_345) >>> 0;
              if ((intended[i] & (1 << bit)) === 0 && x % 1000 < landingPermille) torn[i] &= ~(1 << bit);
            }
          }
        }
        const covered = RECORD_HEADER_LENGTH + (hasAck ? ACK_FIELD_LENGTH : 0) + e.payload.length;
        let same = true;
        for (let i = 0; i < covered; i++) if (torn[i] !== intended[i]) same = false;
        if (!same) assert.equal(entryChecks(torn, e.payload.length, hasAck, e.seq), false, prefix ? `prefix of ${pick % total} bytes` : `bit subset, landing ${landingPermille}‰`);
      }),
      { numRuns: 3000 },
    );
  });

  test('format 1 collision: the prefix tear that passed the 16-bit check fails the 32-bit one', () => {
    // Record 1 of test/storage/outbox-defects.cases.ts: a 150-byte payload torn after 80 of its bytes.
    const payload = new Uint8Array(150);
    let x = (530 * 2_654_435_761 + 12_345) >>> 0;
    for (let i = 0; i < payload.length; i++) {
      x = (Math.imul(x, 1_103_515_245) + 12_345) >>> 0;
      payload[i] = x >>> 24;
    }
    const { out, total } = encodeAt({ payload, ack: undefined, writeAlign: 1, at: 0, seq: 1 });
    for (let keep = 0; keep < total; keep++) {
      const torn = new Uint8Array(total).fill(0xff);
      torn.set(out.subarray(0, keep));
      assert.equal(entryChecks(torn, 150, false, 1), false, `prefix of ${keep} bytes`);
    }
  });

  test('every single-bit error of small entries is caught (exhaustive)', () => {
    for (const writeAlign of WRITE_ALIGNS) {
      for (const [length, ack] of [
        [1, undefined],
        [0, 0],
        [5, 0xffffffff],
        [33, 7],
      ] as [number, number | undefined][]) {
        const payload = new Uint8Array(length).map((_, i) => (i * 37 + 11) & 0xff);
        const { out, total } = encodeAt({ payload, ack, writeAlign, at: 0, seq: 77 });
        const covered = RECORD_HEADER_LENGTH + (ack !== undefined ? ACK_FIELD_LENGTH : 0) + length;
        for (let bit = 0; bit < covered * 8; bit++) {
          assert.equal(entryChecks(flipBit(out.subarray(0, total), bit), length, ack !== undefined, 77), false, `align ${writeAlign}, length ${length}, bit ${bit}`);
        }
      }
    }
  });
});

// ─── Sector headers ─────────────────────────────────────────────────────

const headerArb: fc.Arbitrary<SectorHeader> = fc.record({
  version: fc.integer({ min: 0, max: 255 }),
  unitShift: fc.integer({ min: 0, max: 255 }),
  firstRecordOffset: fc.integer({ min: 0, max: 0xffff }),
  sectorSeq: u32,
  firstRecordSeq: u32,
  ackSeq: u32,
  dropped: u32,
  eraseCount: u32,
});

describe('outbox sector header (encodeHeader / decodeHeader)', () => {
  test('round trip for arbitrary field values, also from inside a larger buffer', () => {
    fc.assert(
      fc.property(headerArb, fc.integer({ min: 0, max: 40 }), (header, at) => {
        const bytes = encodeHeader(header);
        assert.equal(bytes.length, HEADER_LENGTH);
        assert.deepEqual(decodeHeader(bytes), { ...header });
        const backing = new Uint8Array(at + HEADER_LENGTH + 5).fill(0xa5);
        backing.set(bytes, at);
        assert.deepEqual(decodeHeader(backing.subarray(at)), { ...header }, `at offset ${at}`);
      }),
      { numRuns: 800 },
    );
  });

  test('any single-bit error in the 28 bytes makes decodeHeader undefined', () => {
    fc.assert(
      fc.property(headerArb, fc.integer({ min: 0, max: HEADER_LENGTH * 8 - 1 }), (header, bit) => {
        assert.equal(decodeHeader(flipBit(encodeHeader(header), bit)), undefined, `bit ${bit}`);
      }),
      { numRuns: 1500 },
    );
  });

  test('random 28-byte inputs never throw; a decoded header re-encodes to the same bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: HEADER_LENGTH, maxLength: HEADER_LENGTH }), (bytes) => {
        const header = decodeHeader(bytes);
        if (header !== undefined) assert.deepEqual(encodeHeader(header), bytes);
      }),
      { numRuns: 1500 },
    );
    // The erased header is not a header.
    assert.equal(decodeHeader(new Uint8Array(HEADER_LENGTH).fill(0xff)), undefined);
  });
});

// ─── Frames ─────────────────────────────────────────────────────────────

describe('frames (encodeFrame / decodeFrame)', () => {
  const frameArb = fc.record({ payload: fc.uint8Array({ minLength: 0, maxLength: 700 }), writeAlign: writeAlignArb, trailing: fc.uint8Array({ maxLength: 40 }) });

  test('round trip, also with bytes after the frame', () => {
    fc.assert(
      fc.property(frameArb, ({ payload, writeAlign, trailing }) => {
        const frame = encodeFrame(payload, writeAlign);
        assert.equal(frame.length, frameLength(payload.length, writeAlign));
        assert.equal(frame.length % writeAlign, 0);
        const withTrailing = new Uint8Array(frame.length + trailing.length);
        withTrailing.set(frame);
        withTrailing.set(trailing, frame.length);
        for (const bytes of [frame, withTrailing]) {
          const read = decodeFrame(bytes, writeAlign);
          assert.equal(read.kind, 'frame');
          if (read.kind !== 'frame') return;
          assert.deepEqual(read.payload, payload);
          assert.equal(read.byteLength, frame.length);
        }
      }),
      { numRuns: 500 },
    );
  });

  test('arbitrary bytes never throw and read as erased, corrupt (with a reason) or a frame that fits', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), writeAlignArb, (bytes, writeAlign) => {
        const read = decodeFrame(bytes, writeAlign);
        if (read.kind === 'corrupt') assert.ok(read.reason.length > 0);
        else if (read.kind === 'frame') {
          assert.ok(read.byteLength <= bytes.length);
          assert.ok(read.payload.length <= MAX_FRAME_PAYLOAD);
          // What was decoded is exactly what encodeFrame writes for it, up to the padding.
          const again = encodeFrame(read.payload, writeAlign);
          assert.deepEqual(bytes.subarray(0, FRAME_HEADER_LENGTH + read.payload.length), again.subarray(0, FRAME_HEADER_LENGTH + read.payload.length));
        } else assert.equal(read.kind, 'erased');
      }),
      { numRuns: 1500 },
    );
    // Length fields that check but a CRC that does not (random bytes almost never reach the CRC).
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 200 }), fc.uint8Array({ minLength: 208, maxLength: 208 }), writeAlignArb, (length, rest, writeAlign) => {
        const bytes = rest.slice();
        new DataView(bytes.buffer).setUint16(0, length, true);
        new DataView(bytes.buffer).setUint16(2, ~length & 0xffff, true);
        const read = decodeFrame(bytes, writeAlign);
        assert.ok(read.kind === 'corrupt' || read.kind === 'frame');
      }),
      { numRuns: 500 },
    );
  });

  test('a truncated frame, or one torn by a power cut, is never decoded as a frame', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 200 }),
        writeAlignArb,
        fc.nat(),
        fc.integer({ min: 0, max: 255 }),
        (payload, writeAlign, pick, torn) => {
          const frame = encodeFrame(payload, writeAlign);
          const cut = pick % frame.length;
          // Truncated: the buffer ends early.
          assert.notEqual(decodeFrame(frame.subarray(0, cut), writeAlign).kind, 'frame', `truncated to ${cut} of ${frame.length}`);
          // Torn (plain NOR): a prefix landed, the next byte got some of its 0 bits, the rest is still erased.
          const tornBytes = new Uint8Array(frame.length).fill(0xff);
          tornBytes.set(frame.subarray(0, cut));
          tornBytes[cut] = frame[cut] | torn;
          const read = decodeFrame(tornBytes, writeAlign);
          if (read.kind === 'frame') assert.deepEqual(tornBytes, frame, `torn at ${cut} read as a frame though it differs`);
        },
      ),
      { numRuns: 1500 },
    );
  });

  test('payloads over MAX_FRAME_PAYLOAD are refused with RangeError', () => {
    assert.throws(() => encodeFrame(new Uint8Array(MAX_FRAME_PAYLOAD + 1), 1), RangeError);
  });
});

// ─── Flash images ───────────────────────────────────────────────────────

/** An image with `magic`, a declared header length, header bytes and a body. */
function imageBytes(header: Uint8Array, body: Uint8Array, declared = header.length, magic = 'HFIMAGE1'): Uint8Array {
  const m = new TextEncoder().encode(magic);
  const out = new Uint8Array(m.length + 4 + header.length + body.length);
  out.set(m);
  new DataView(out.buffer).setUint32(m.length, declared >>> 0, true);
  out.set(header, m.length + 4);
  out.set(body, m.length + 4 + header.length);
  return out;
}

/**
 * decodeImage's contract: a SimFlash, or an Error with a message (RangeError
 * from SimFlash's geometry checks included). Whether every message is a
 * clear one is pinned separately below.
 */
function decodeOrClearError(bytes: Uint8Array): SimFlash | Error {
  try {
    const flash = decodeImage(bytes);
    assert.ok(flash instanceof SimFlash);
    assert.equal(flash.data.length, flash.blocks * flash.blockLength);
    return flash;
  } catch (error) {
    assert.ok(error instanceof Error, `threw a non-Error: ${String(error)}`);
    assert.ok(error.message.length > 0, 'an error without a message');
    return error;
  }
}

const geometryValue = fc.oneof(
  fc.integer({ min: -4, max: 40 }),
  fc.constantFrom(0, 1, 2, 16, 32, 64, 1.5, -16, Number.MAX_SAFE_INTEGER),
  fc.constantFrom(null, '16', true, [], {}),
);

const imageHeaderArb = fc.record(
  {
    format: fc.oneof(fc.constant(1), fc.constantFrom(0, 2, '1', null)),
    mode: fc.constantFrom('plain', 'strict'),
    blockLength: fc.oneof(fc.constantFrom(16, 32, 64), geometryValue),
    blocks: fc.oneof(fc.constantFrom(1, 2, 3), geometryValue),
    writeAlign: fc.oneof(fc.constantFrom(1, 16), geometryValue),
  },
  { requiredKeys: [] },
);

describe('flash images (decodeImage)', () => {
  test('arbitrary bytes: a SimFlash or a clear Error, never a crash or a hang', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        decodeOrClearError(bytes);
      }),
      { numRuns: 500 },
    );
  });

  test('the right magic with arbitrary header bytes, JSON values and bodies: a SimFlash or a clear Error', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 60 }),
          fc.jsonValue({ maxDepth: 2 }).map((v) => new TextEncoder().encode(JSON.stringify(v) ?? '')),
          fc.string({ maxLength: 40 }).map((s) => new TextEncoder().encode(s)),
        ),
        fc.uint8Array({ maxLength: 120 }),
        fc.option(fc.integer({ min: 0, max: 0xffffffff }), { nil: undefined }),
        (header, body, declared) => {
          decodeOrClearError(imageBytes(header, body, declared ?? header.length));
        },
      ),
      { numRuns: 800 },
    );
  });

  test('structured headers with odd geometry, bodies of exactly the implied size or not: a SimFlash or a clear Error', () => {
    fc.assert(
      fc.property(imageHeaderArb, fc.boolean(), fc.integer({ min: -3, max: 3 }), fc.integer({ min: 0, max: 255 }), (header, exact, delta, fill) => {
        const json = new TextEncoder().encode(JSON.stringify(header));
        const h = header as Record<string, unknown>;
        const blocks = Number(h.blocks);
        const blockLength = Number(h.blockLength);
        const writeAlign = Number(h.writeAlign);
        const size = blocks * blockLength;
        const implied = size + size / writeAlign + blocks * 4;
        const bodyLength = exact && Number.isInteger(implied) && implied >= 0 && implied < 20_000 ? implied : 40 + delta;
        const body = new Uint8Array(bodyLength).fill(fill);
        const result = decodeOrClearError(imageBytes(json, body));
        if (result instanceof SimFlash) {
          assert.ok(result.mode === 'plain' || result.mode === 'strict', `decoded a flash in mode ${String(result.mode)}`);
        }
      }),
      { numRuns: 1500 },
    );
  });

  test('encodeImage output always decodes to the same flash', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<FlashMode>('plain', 'strict'),
        fc.integer({ min: 1, max: 4 }),
        fc.constantFrom(64, 128),
        fc.uint8Array({ maxLength: 64 }),
        (mode, blocks, blockLength, seed) => {
          const flash = new SimFlash({ blocks, blockLength, mode });
          for (let i = 0; i < seed.length; i++) flash.data[(i * 97) % flash.data.length] = seed[i];
          flash.unitProgrammed.fill(1, 0, Math.floor(flash.unitProgrammed.length / 2));
          flash.eraseCounts.fill(seed.length * 1000);
          const back = decodeImage(encodeImage(flash));
          assert.deepEqual(back.snapshot(), flash.snapshot());
        },
      ),
      { numRuns: 200 },
    );
  });
});

// ─── Outbox.open over arbitrary partitions ──────────────────────────────



const BLOCK = 256;

/** Strict mode: units not all 0xFF count as programmed (loadRawImage's rule for raw dumps). */
function withDerivedUnits(flash: SimFlash): SimFlash {
  return flash.deriveUnitsFromContents();
}

interface Drained {
  seqs: number[];
  payloads: Uint8Array[];
}

/**
 * Open and drain with hang guards: only StorageError may escape open, every
 * outbox call must end within the flash budget, delivery must end within
 * `cap` records and come in increasing order; open must write nothing.
 */
function openAndDrain(sim: SimFlash, what: string, cap = 2000): Drained | StorageError {
  const flash = new BudgetFlash(sim, 200_000);
  const before = sim.data.slice();
  let outbox: Outbox;
  try {
    outbox = Outbox.open(flash);
  } catch (error) {
    if (error instanceof StorageError) {
      assert.ok(Buffer.from(sim.data).equals(Buffer.from(before)), `${what}: a refused open changed the flash`);
      return error;
    }
    assert.fail(`${what}: open threw ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
  }
  assert.ok(Buffer.from(sim.data).equals(Buffer.from(before)), `${what}: open changed the flash`);
  const drained: Drained = { seqs: [], payloads: [] };
  try {
    flash.reset();
    for (let record = outbox.peek(); record !== undefined; record = outbox.next()) {
      flash.reset();
      assert.ok(drained.seqs.length < cap, `${what}: delivery did not end after ${cap} records (seqs ${drained.seqs.slice(0, 8).join(', ')} …)`);
      drained.seqs.push(record.seq);
      drained.payloads.push(record.payload);
    }
  } catch (error) {
    if (error instanceof Hang) assert.fail(`${what}: a delivery call did not terminate (${drained.seqs.length} records delivered before)`);
    throw error;
  }
  const stats = outbox.stats();
  for (const value of [stats.queued, stats.corrupt, stats.lost, stats.dropped]) assert.ok(Number.isInteger(value), `${what}: stats ${JSON.stringify(stats)}`);
  return drained;
}

function assertIncreasing(seqs: number[], what: string): void {
  for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], `${what}: delivered ${seqs[i]} after ${seqs[i - 1]}`);
}

const modeArb = fc.constantFrom<FlashMode>('plain', 'strict');

/**
 * A sector built from the format's own encoders (so CRCs pass and the
 * outbox's code paths past the checks are reached), with sequence fields in
 * a window far below 2^31 as every real partition has them.
 */
const sectorArb = fc.record({
  kind: fc.constantFrom('header', 'header', 'header', 'header', 'erased', 'random', 'sparse'),
  seqShift: fc.integer({ min: -1, max: 3 }),
  offset: fc.oneof(fc.constant('dataStart' as const), fc.constant('tail' as const), fc.integer({ min: 0, max: BLOCK + 8 })),
  tail: fc.integer({ min: 1, max: 60 }),
  firstRecordSeq: fc.integer({ min: 0, max: 60 }),
  ackSeq: fc.integer({ min: 0, max: 60 }),
  dropped: fc.integer({ min: 0, max: 9 }),
  entries: fc.array(fc.record({ length: fc.integer({ min: 0, max: 70 }), ack: fc.option(fc.integer({ min: 0, max: 60 }), { nil: undefined }) }), { maxLength: 8 }),
  noise: fc.array(fc.record({ at: fc.integer({ min: 0, max: BLOCK - 1 }), value: fc.integer({ min: 0, max: 255 }) }), { maxLength: 2 }),
  random: fc.uint8Array({ minLength: BLOCK, maxLength: BLOCK }),
});
type SectorSpec = typeof sectorArb extends fc.Arbitrary<infer T> ? T : never;

/** The payload of a structured entry: its length repeated (so a delivered payload can be recognised). */
function patternPayload(length: number): Uint8Array {
  return new Uint8Array(length).fill(length & 0xff);
}

function buildStructured(mode: FlashMode, specs: SectorSpec[]): SimFlash {
  const flash = new SimFlash({ blocks: specs.length, blockLength: BLOCK, mode });
  const layout = makeLayout(BLOCK, flash.writeAlign);
  const entryBuffer = new Uint8Array(entryLength(MAX_PAYLOAD_FIELD, true, flash.writeAlign));
  specs.forEach((spec, index) => {
    const base = index * BLOCK;
    if (spec.kind === 'erased') return;
    if (spec.kind === 'random') {
      flash.data.set(spec.random, base);
      return;
    }
    if (spec.kind === 'sparse') {
      for (const { at, value } of spec.noise) flash.data[base + at] = value;
      flash.data[base + (spec.tail % BLOCK)] = spec.random[0];
      return;
    }
    const firstRecordOffset =
      spec.offset === 'dataStart' ? layout.dataStart : spec.offset === 'tail' ? layout.dataStart + spec.tail * flash.writeAlign : spec.offset;
    const header = encodeHeader({
      version: 1,
      unitShift: Math.log2(flash.writeAlign),
      firstRecordOffset,
      sectorSeq: Math.max(0, index + 1 + spec.seqShift * specs.length),
      firstRecordSeq: spec.firstRecordSeq,
      ackSeq: spec.ackSeq,
      dropped: spec.dropped,
      eraseCount: 1,
    });
    flash.data.set(header, base);
    let at = Math.max(layout.dataStart, Math.min(firstRecordOffset, layout.closeStart));
    at = Math.ceil(at / flash.writeAlign) * flash.writeAlign;
    let seq = spec.firstRecordSeq;
    for (const entry of spec.entries) {
      if (entry.length === 0 && entry.ack === undefined) continue;
      const total = encodeEntry(entryBuffer, patternPayload(entry.length), entry.ack, flash.writeAlign, seq);
      if (entry.length > 0) seq = (seq + 1) >>> 0;
      if (at + total > layout.closeStart) break;
      flash.data.set(entryBuffer.subarray(0, total), base + at);
      at += total;
    }
    for (const { at: where, value } of spec.noise) flash.data[base + where] = value;
  });
  return withDerivedUnits(flash);
}

describe('Outbox.open over arbitrary partitions (2–4 sectors of 256 bytes)', () => {
  test('random bytes: open throws nothing but StorageError; delivery terminates, in order', () => {
    fc.assert(
      fc.property(modeArb, fc.integer({ min: 2, max: 4 }), fc.uint8Array({ minLength: 4 * BLOCK, maxLength: 4 * BLOCK }), (mode, blocks, bytes) => {
        const flash = new SimFlash({ blocks, blockLength: BLOCK, mode });
        flash.data.set(bytes.subarray(0, blocks * BLOCK));
        const result = openAndDrain(withDerivedUnits(flash), `${mode} ${blocks} sectors of random bytes`);
        if (!(result instanceof StorageError)) assertIncreasing(result.seqs, 'random bytes');
      }),
      { numRuns: 300 },
    );
  });

  test('mostly erased with a few random bytes (blank, torn first opening, foreign): only StorageError; delivery terminates', () => {
    fc.assert(
      fc.property(
        modeArb,
        fc.integer({ min: 2, max: 4 }),
        fc.array(fc.record({ at: fc.integer({ min: 0, max: 4 * BLOCK - 1 }), value: fc.integer({ min: 0, max: 255 }) }), { maxLength: 6 }),
        (mode, blocks, pokes) => {
          const flash = new SimFlash({ blocks, blockLength: BLOCK, mode });
          for (const { at, value } of pokes) flash.data[at % flash.data.length] = value;
          const result = openAndDrain(withDerivedUnits(flash), `${mode} ${blocks} sectors, ${pokes.length} bytes set`);
          if (!(result instanceof StorageError)) assert.deepEqual(result.seqs, [], 'a partition with no valid header delivers nothing');
        },
      ),
      { numRuns: 400 },
    );
  });

  test('sectors built from valid headers and entries (plus erased, random and damaged ones): only StorageError; delivery terminates, in order, never garbage', () => {
    fc.assert(
      fc.property(modeArb, fc.array(sectorArb, { minLength: 2, maxLength: 4 }), (mode, specs) => {
        const flash = buildStructured(mode, specs);
        const what = `${mode}, sectors ${specs.map((s) => s.kind).join('/')}`;
        const result = openAndDrain(flash, what);
        if (result instanceof StorageError) return;
        assertIncreasing(result.seqs, what);
        // Without random bytes or noise every entry on flash was written by encodeEntry: anything delivered is one of them.
        if (specs.every((s) => (s.kind === 'header' || s.kind === 'erased') && s.noise.length === 0)) {
          for (const payload of result.payloads) {
            assert.deepEqual(payload, patternPayload(payload.length), `${what}: delivered bytes no entry holds`);
          }
        }
      }),
      { numRuns: 4000 },
    );
  });

  test('an outbox built by appends, then arbitrary byte damage: only StorageError; delivery terminates, in order', () => {
    fc.assert(
      fc.property(
        modeArb,
        fc.integer({ min: 2, max: 4 }),
        fc.integer({ min: 1, max: 80 }),
        fc.array(fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 4 }),
        (mode, blocks, appends, pokes) => {
          const flash = new SimFlash({ blocks, blockLength: BLOCK, mode });
          const outbox = Outbox.open(flash);
          for (let i = 0; i < appends; i++) outbox.append(patternPayload(1 + ((i * 7) % 30)));
          for (const { at, value } of pokes) flash.data[at % flash.data.length] = value;
          const result = openAndDrain(withDerivedUnits(flash), `${mode} ${blocks} sectors, ${appends} appends, damage ${JSON.stringify(pokes)}`);
          if (!(result instanceof StorageError)) assertIncreasing(result.seqs, 'after damage');
        },
      ),
      { numRuns: 1000 },
    );
  });
});

// ─── Counterexamples pinned ─────────────────────────────────────────────

/** A plain 3 × 256 partition with the given sectors (valid CRCs), each holding 1-byte records. */
function craftedPartition(
  mode: FlashMode,
  sectors: { index: number; sectorSeq: number; firstRecordSeq: number; ackSeq?: number; firstRecordOffset?: number; acks?: (number | undefined)[] }[],
): SimFlash {
  const flash = new SimFlash({ blocks: 3, blockLength: BLOCK, mode });
  const layout = makeLayout(BLOCK, flash.writeAlign);
  const buffer = new Uint8Array(64);
  for (const s of sectors) {
    const base = s.index * BLOCK;
    const firstRecordOffset = s.firstRecordOffset ?? layout.dataStart;
    flash.data.set(
      encodeHeader({ version: 1, unitShift: Math.log2(flash.writeAlign), firstRecordOffset, sectorSeq: s.sectorSeq, firstRecordSeq: s.firstRecordSeq, ackSeq: s.ackSeq ?? 0, dropped: 0, eraseCount: 1 }),
      base,
    );
    let at = base + layout.dataStart;
    let seq = s.firstRecordSeq;
    for (const ack of s.acks ?? []) {
      const total = encodeEntry(buffer, new Uint8Array([s.index + 1]), ack, flash.writeAlign, seq);
      seq = (seq + 1) >>> 0;
      flash.data.set(buffer.subarray(0, total), at);
      at += total;
    }
  }
  return withDerivedUnits(flash);
}

describe('pinned counterexamples', () => {
  // Found by the structured property with sequence fields over the whole u32 range. No outbox writes
  // such headers (its windows stay far below 2^31), but a partition is input: boot must not hang on it.
  test('sector headers whose firstRecordSeq are 2^31 apart: delivery still terminates', () => {
    const cases = [
      {
        name: 'oldest firstRecordSeq 0x80000000, head firstRecordSeq 0 (peek never returns)',
        flash: craftedPartition('plain', [
          { index: 1, sectorSeq: 2, firstRecordSeq: 0x80000000, acks: [undefined] },
          { index: 2, sectorSeq: 3, firstRecordSeq: 0, acks: [undefined] },
        ]),
      },
      {
        name: 'head firstRecordSeq 0xffffffff, oldest 0x80000001 (the same records come back forever)',
        flash: craftedPartition('plain', [
          { index: 0, sectorSeq: 25, firstRecordSeq: 0xffffffff, acks: [0, 0x7fffffff, 0xfffffffe] },
          { index: 1, sectorSeq: 23, firstRecordSeq: 0x80000001, acks: [undefined] },
          { index: 2, sectorSeq: 3, firstRecordSeq: 0, ackSeq: 0x7fffffff, firstRecordOffset: 0 },
        ]),
      },
    ];
    const failures: string[] = [];
    for (const { name, flash } of cases) {
      try {
        openAndDrain(flash, name, 100);
      } catch (error) {
        failures.push(error instanceof Error ? error.message : String(error));
      }
    }
    assert.deepEqual(failures, []);
  });

  // A header passes its CRC but its firstRecordOffset is not on the 16-byte program unit (no
  // version-1 writer produces it; a foreign writer or a bug can). Recovery resumes appends there.
  test('strict mode: a CRC-valid header with an unaligned firstRecordOffset never makes append misuse the flash', () => {
    for (const firstRecordOffset of [28, 40, 33]) {
      const flash = craftedPartition('strict', [
        { index: 0, sectorSeq: 1, firstRecordSeq: 0 },
        { index: 1, sectorSeq: 2, firstRecordSeq: 0, firstRecordOffset },
      ]);
      let outbox: Outbox;
      try {
        outbox = Outbox.open(flash);
      } catch (error) {
        assert.ok(error instanceof StorageError, `firstRecordOffset ${firstRecordOffset}: open threw ${String(error)}`);
        continue;
      }
      for (let i = 0; i < 5; i++) {
        try {
          outbox.append(new Uint8Array([i + 1]));
        } catch (error) {
          assert.ok(error instanceof StorageError, `firstRecordOffset ${firstRecordOffset}: append ${i} threw ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
        }
      }
    }
  });

  test('decodeImage: a header that is JSON null is refused with a clear flash-image Error', () => {
    const bytes = imageBytes(new TextEncoder().encode('null'), new Uint8Array(0));
    assert.throws(() => decodeImage(bytes), (error: unknown) => error instanceof Error && error.name === 'Error' && /flash image/.test(error.message));
  });

  test("decodeImage: a header with an unknown mode is refused (not a SimFlash in mode 'weird')", () => {
    const header = new TextEncoder().encode(JSON.stringify({ format: 1, mode: 'weird', blockLength: 16, blocks: 1, writeAlign: 1 }));
    const bytes = imageBytes(header, new Uint8Array(16 + 16 + 4));
    assert.throws(() => decodeImage(bytes), (error: unknown) => error instanceof Error && /mode/.test(error.message));
  });
});
