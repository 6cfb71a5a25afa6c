/**
 * otadata (docs/spec/otadata.md): byte-exact entries, ESP-IDF's CRC, the
 * validity rules, active-copy selection for every combination, seq
 * arithmetic at the edges, and the app-side writes on simulated flash.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { crc32 as zlibCrc32 } from 'node:zlib';
import {
  activeCopy,
  decodeOtaEntry,
  encodeOtaEntry,
  encodeRawEntry,
  isEntryInitial,
  isEntryInvalid,
  isEntryValid,
  markInvalid,
  markValid,
  OTA_SEQ_BLANK,
  planSetBootSlot,
  OTA_STATE_CODES,
  OtadataError,
  otaSeqCrc,
  otaStateFromCode,
  readOtadata,
  seqForSlot,
  seqLabelOf,
  selectCopy,
  setBootSlot,
  slotForSeq,
  stateOfSlot,
  writeOtadataCopy,
  type OtaEntryReading,
  type OtaState,
} from '../../firmware/update/otadata.ts';
import { crc32 } from '../../firmware/base/crc32.ts';
import { SimFlash, type FlashMode } from '../../tools/sim/flash/sim-flash.ts';

const hex = (bytes: Uint8Array): string => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
const FF20 = 'ff'.repeat(20);
const le32 = (value: number): Uint8Array => {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value >>> 0, true);
  return bytes;
};
const entry = (seq: number, state: OtaState): OtaEntryReading => decodeOtaEntry(encodeOtaEntry({ seq, state }));
const raw = (seq: number, stateCode: number, crc: number): OtaEntryReading => decodeOtaEntry(encodeRawEntry(seq, new Uint8Array(20).fill(0xff), stateCode, crc));
const BLANK = decodeOtaEntry(new Uint8Array(32).fill(0xff));

describe('otadata CRC (esp_rom_crc32_le(UINT32_MAX, &ota_seq, 4))', () => {
  // Values computed by ESP-IDF v6.0's own components/esp_rom/linux/esp_rom_crc.c, compiled on the host.
  const VECTORS: ReadonlyArray<[number, number]> = [
    [0x00000000, 0xffffffff],
    [0x00000001, 0x4743989a],
    [0x00000002, 0x55f63774],
    [0x00000003, 0xed4a5011],
    [0xfffffffe, 0x99f8b879],
    [0xffffffff, 0x2144df1c],
  ];
  for (const [seq, crc] of VECTORS) {
    it(`seq 0x${seq.toString(16)} -> 0x${crc.toString(16)}`, () => assert.equal(otaSeqCrc(seq), crc));
  }

  it('is not zlib crc32 of the four seq bytes', () => {
    assert.equal(crc32(le32(1)), 0x99f8b879);
    assert.notEqual(otaSeqCrc(1), crc32(le32(1)));
  });

  it("equals zlib crc32 started from 0xFFFFFFFF (otatool.py: binascii.crc32(seq, 0xFFFFFFFF)) and zlib crc32 of ~seq", () => {
    for (const seq of [0, 1, 2, 7, 0x1234, 0x80000000, 0xdeadbeef, 0xfffffffe]) {
      assert.equal(otaSeqCrc(seq), zlibCrc32(le32(seq), 0xffffffff), `seq ${seq}`);
      assert.equal(otaSeqCrc(seq), crc32(le32(~seq)), `seq ${seq}`);
    }
  });
});

describe('otadata entry bytes', () => {
  it('seq 1 VALID (what the bootloader writes on a fresh device)', () => {
    assert.equal(hex(encodeOtaEntry({ seq: 1, state: 'valid' })), `01000000${FF20}020000009a984347`);
  });

  it('seq 2 NEW (esp_ota_set_boot_partition(ota_1) after that)', () => {
    assert.equal(hex(encodeOtaEntry({ seq: 2, state: 'new' })), `02000000${FF20}000000007437f655`);
  });

  it('state codes are esp_ota_img_states_t', () => {
    assert.deepEqual(OTA_STATE_CODES, { new: 0, 'pending-verify': 1, valid: 2, invalid: 3, aborted: 4, undefined: 0xffffffff });
    for (const [state, code] of Object.entries(OTA_STATE_CODES)) assert.equal(otaStateFromCode(code), state);
    assert.equal(otaStateFromCode(5), 'unrecognized');
    assert.ok(Object.isFrozen(OTA_STATE_CODES));
  });

  it('decode round-trips every field and keeps the label', () => {
    const label = Uint8Array.from({ length: 20 }, (_, i) => i);
    const reading = decodeOtaEntry(encodeOtaEntry({ seq: 0x01020304, state: 'aborted', seqLabel: label }));
    assert.equal(reading.seq, 0x01020304);
    assert.equal(reading.stateCode, 4);
    assert.equal(reading.state, 'aborted');
    assert.equal(reading.crc, otaSeqCrc(0x01020304));
    assert.equal(reading.crcOk, true);
    assert.deepEqual(seqLabelOf(reading), label);
  });

  it('an erased copy reads seq 0xFFFFFFFF, UNDEFINED, CRC mismatch', () => {
    assert.equal(BLANK.seq, OTA_SEQ_BLANK);
    assert.equal(BLANK.state, 'undefined');
    assert.equal(BLANK.crc, 0xffffffff);
    assert.equal(BLANK.crcOk, false);
  });

  it('rejects bad arguments', () => {
    assert.throws(() => encodeOtaEntry({ seq: -1, state: 'new' }), RangeError);
    assert.throws(() => encodeOtaEntry({ seq: 2 ** 32, state: 'new' }), RangeError);
    assert.throws(() => encodeOtaEntry({ seq: 1, state: 'bogus' as OtaState }), TypeError);
    assert.throws(() => encodeOtaEntry({ seq: 1, state: 'new', seqLabel: new Uint8Array(3) }), RangeError);
    assert.throws(() => decodeOtaEntry(new Uint8Array(31)), RangeError);
  });
});

describe('validity (bootloader_common_ota_select_invalid / _valid, initial contents)', () => {
  const cases: ReadonlyArray<[string, OtaEntryReading, { invalid: boolean; valid: boolean; initial: boolean }]> = [
    ['erased', BLANK, { invalid: true, valid: false, initial: true }],
    ['seq 1 VALID', entry(1, 'valid'), { invalid: false, valid: true, initial: false }],
    ['seq 1 NEW', entry(1, 'new'), { invalid: false, valid: true, initial: false }],
    ['seq 1 PENDING_VERIFY (valid: the bootloader aborts it before selecting)', entry(1, 'pending-verify'), { invalid: false, valid: true, initial: false }],
    ['seq 1 UNDEFINED', entry(1, 'undefined'), { invalid: false, valid: true, initial: false }],
    ['seq 1 INVALID', entry(1, 'invalid'), { invalid: true, valid: false, initial: false }],
    ['seq 1 ABORTED', entry(1, 'aborted'), { invalid: true, valid: false, initial: false }],
    ['seq 1, unrecognized state 7 (selectable: only INVALID/ABORTED exclude)', raw(1, 7, otaSeqCrc(1)), { invalid: false, valid: true, initial: false }],
    ['seq 1 VALID, CRC wrong (not "invalid": the CRC is not part of that test)', raw(1, 2, 0x12345678), { invalid: false, valid: false, initial: true }],
    ['seq 1 INVALID, CRC wrong', raw(1, 3, 0), { invalid: true, valid: false, initial: true }],
    ['blank seq with its matching CRC', raw(OTA_SEQ_BLANK, 2, otaSeqCrc(OTA_SEQ_BLANK)), { invalid: true, valid: false, initial: true }],
    ['seq 0, CRC field erased (0xFFFFFFFF is the CRC of seq 0)', raw(0, 0xffffffff, 0xffffffff), { invalid: false, valid: true, initial: false }],
  ];
  for (const [name, reading, expected] of cases) {
    it(name, () => {
      assert.deepEqual({ invalid: isEntryInvalid(reading), valid: isEntryValid(reading), initial: isEntryInitial(reading) }, expected);
    });
  }

  it('32 bytes of noise (an erased sector read through flash encryption) read as initial', () => {
    let x = 12345;
    const noise = Uint8Array.from({ length: 32 }, () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0), x >>> 24));
    assert.equal(isEntryInitial(decodeOtaEntry(noise)), true);
  });
});

describe('active copy (bootloader_common_get_active_otadata)', () => {
  // A pool covering every class: erased, corrupt, rejected states, and valid copies with low/high/equal seqs.
  const POOL: ReadonlyArray<[string, OtaEntryReading]> = [
    ['erased', BLANK],
    ['corrupt seq 5', raw(5, 2, 1)],
    ['seq 5 INVALID', entry(5, 'invalid')],
    ['seq 5 ABORTED', entry(5, 'aborted')],
    ['seq 0 VALID', entry(0, 'valid')],
    ['seq 1 VALID', entry(1, 'valid')],
    ['seq 2 NEW', entry(2, 'new')],
    ['seq 2 VALID', entry(2, 'valid')],
    ['seq 5 PENDING', entry(5, 'pending-verify')],
    ['seq 0xFFFFFFFE UNDEFINED', entry(0xfffffffe, 'undefined')],
  ];
  /** Oracle written from the spec's words, not from the code: larger valid seq, tie to copy 0. */
  const oracle = (a: OtaEntryReading, b: OtaEntryReading): 0 | 1 | undefined => {
    const ok = (r: OtaEntryReading) => r.seq !== 0xffffffff && r.state !== 'invalid' && r.state !== 'aborted' && r.crc === otaSeqCrc(r.seq);
    if (ok(a) && ok(b)) return b.seq > a.seq ? 1 : 0;
    return ok(a) ? 0 : ok(b) ? 1 : undefined;
  };
  it(`all ${POOL.length * POOL.length} combinations`, () => {
    for (const [nameA, a] of POOL) {
      for (const [nameB, b] of POOL) assert.equal(activeCopy([a, b]), oracle(a, b), `${nameA} | ${nameB}`);
    }
  });

  it('equal seqs: copy 0 wins', () => assert.equal(activeCopy([entry(3, 'valid'), entry(3, 'new')]), 0));
  it('plain unsigned compare: 0xFFFFFFFE beats 1 (no wrap-around ordering)', () => assert.equal(activeCopy([entry(1, 'valid'), entry(0xfffffffe, 'valid')]), 1));
  it('min selection (esp_ota_get_last_invalid_partition uses it)', () => assert.equal(selectCopy([entry(4, 'invalid'), entry(3, 'aborted')], [true, true], false), 1));
});

describe('seq -> slot and slot -> seq', () => {
  it('slot = (seq - 1) % 2 in u32', () => {
    assert.deepEqual([1, 2, 3, 4, 0xfffffffe].map((s) => slotForSeq(s)), [0, 1, 0, 1, 1]);
    assert.equal(slotForSeq(0), 1, 'seq 0: 0xFFFFFFFF % 2');
    assert.equal(slotForSeq(0, 3), 0, 'seq 0 with three slots: 0xFFFFFFFF % 3');
  });

  /** compute_ota_seq_for_target_slot's C loop, literally (u32, small inputs only). */
  const cLoop = (current: number, slot: number, n: number): number => {
    const base = (slot + 1) % n;
    let i = 0;
    while (current > ((base + i * n) >>> 0)) i++;
    return (base + i * n) >>> 0;
  };
  it('matches the C loop for every seq 0..300, both slots, 1..4 slots', () => {
    for (let n = 1; n <= 4; n++) for (let slot = 0; slot < n; slot++) for (let seq = 0; seq <= 300; seq++) assert.equal(seqForSlot(seq, slot, n), cLoop(seq, slot, n), `${seq} ${slot} ${n}`);
  });

  it('the new seq always selects the target slot and never goes below the current one', () => {
    for (const seq of [1, 2, 3, 1000, 0x7fffffff, 0xfffffffc, 0xfffffffd]) {
      for (const slot of [0, 1]) {
        const next = seqForSlot(seq, slot);
        assert.ok(next >= seq);
        assert.equal(slotForSeq(next), slot);
      }
    }
  });

  it('top of the range: from 0xFFFFFFFE to slot 0 the answer is 0xFFFFFFFF, the blank seq', () => {
    assert.equal(seqForSlot(0xfffffffd, 1), 0xfffffffe);
    assert.equal(seqForSlot(0xfffffffe, 1), 0xfffffffe);
    assert.equal(seqForSlot(0xfffffffe, 0), 0xffffffff);
  });

  it('refuses what ESP-IDF would overflow (three slots near the top)', () => {
    assert.throws(() => seqForSlot(0xfffffffe, 0, 3), RangeError);
    assert.equal(seqForSlot(0xfffffffe, 1, 3), 0xfffffffe);
    assert.throws(() => seqForSlot(1, 2), RangeError);
  });
});

for (const mode of ['plain', 'strict'] as const satisfies readonly FlashMode[]) {
  describe(`app-side writes on ${mode} flash`, () => {
    const fresh = () => new SimFlash({ blocks: 2, mode, onBitSet: mode === 'plain' ? 'throw' : 'ignore' });

    it('blank otadata: set boot slot 1 writes copy 0 {seq 2, NEW}', () => {
      const flash = fresh();
      assert.deepEqual(setBootSlot(flash, 1), { copy: 0, seq: 2, state: 'new' });
      assert.equal(hex(flash.data.subarray(0, 32)), hex(encodeOtaEntry({ seq: 2, state: 'new' })));
      assert.ok(flash.data.subarray(32, 8192).every((b) => b === 0xff), 'nothing else written');
      assert.deepEqual([flash.counters.erases, flash.counters.writes], [1, 1]);
    });

    it('active copy 0 (slot 0): slot 1 goes to copy 1 with the next seq, label kept', () => {
      const flash = fresh();
      writeOtadataCopy(flash, 0, encodeOtaEntry({ seq: 1, state: 'valid' }));
      const label = Uint8Array.from({ length: 20 }, (_, i) => 0x40 + i);
      writeOtadataCopy(flash, 1, encodeOtaEntry({ seq: 0, state: 'invalid', seqLabel: label }));
      flash.resetCounters();
      assert.deepEqual(setBootSlot(flash, 1), { copy: 1, seq: 2, state: 'new' });
      const [, copy1] = readOtadata(flash);
      assert.deepEqual([copy1.seq, copy1.state, copy1.crcOk], [2, 'new', true]);
      assert.deepEqual(seqLabelOf(copy1), label);
      assert.equal(flash.eraseCounts[0], 1, 'copy 0 untouched since its own write');
      assert.equal(activeCopy(readOtadata(flash)), 1);
    });

    it('planSetBootSlot says what setBootSlot writes, without writing', () => {
      const flash = fresh();
      for (const slot of [1, 0, 0, 1, 1] as const) {
        const planned = planSetBootSlot(readOtadata(flash), slot);
        const operations = flash.counters.operations;
        assert.deepEqual(setBootSlot(flash, slot), planned);
        assert.equal(flash.counters.operations, operations + 2);
      }
    });

    it('copies alternate: seq 1 -> 2 -> 3 -> 4, sectors 0, 1, 0, 1', () => {
      const flash = fresh();
      const writes = [setBootSlot(flash, 0), setBootSlot(flash, 1), setBootSlot(flash, 0), setBootSlot(flash, 1)];
      assert.deepEqual(writes.map((w) => [w.copy, w.seq]), [[0, 1], [1, 2], [0, 3], [1, 4]]);
    });

    it('the slot the active copy already selects: rewritten in place, same seq, NEW (ESP-IDF v6.0)', () => {
      const flash = fresh();
      writeOtadataCopy(flash, 0, encodeOtaEntry({ seq: 1, state: 'valid' }));
      writeOtadataCopy(flash, 1, encodeOtaEntry({ seq: 2, state: 'valid' }));
      assert.deepEqual(setBootSlot(flash, 1), { copy: 1, seq: 2, state: 'new' });
      const [copy0, copy1] = readOtadata(flash);
      assert.deepEqual([copy0.seq, copy0.state, copy1.seq, copy1.state], [1, 'valid', 2, 'new']);
    });

    it('at the top of the seq range the switch silently does not happen (seq 0xFFFFFFFF is blank)', () => {
      const flash = fresh();
      writeOtadataCopy(flash, 0, encodeOtaEntry({ seq: 0xfffffffe, state: 'valid' }));
      assert.deepEqual(setBootSlot(flash, 0), { copy: 1, seq: 0xffffffff, state: 'new' });
      const readings = readOtadata(flash);
      assert.equal(activeCopy(readings), 0);
      assert.equal(slotForSeq(readings[0].seq), 1, 'still slot 1');
    });

    it('mark valid rewrites the active copy in place; no write when already VALID', () => {
      const flash = fresh();
      writeOtadataCopy(flash, 0, encodeOtaEntry({ seq: 1, state: 'valid' }));
      writeOtadataCopy(flash, 1, encodeOtaEntry({ seq: 2, state: 'pending-verify' }));
      flash.resetCounters();
      assert.deepEqual(markValid(flash), { copy: 1, seq: 2, state: 'valid' });
      assert.deepEqual([flash.counters.erases, flash.counters.writes], [1, 1]);
      assert.equal(readOtadata(flash)[1].state, 'valid');
      flash.resetCounters();
      assert.equal(markValid(flash), undefined);
      assert.equal(flash.counters.operations, 0);
    });

    it('mark valid with no active copy: no-active-entry', () => {
      assert.throws(() => markValid(fresh()), (e: unknown) => e instanceof OtadataError && e.code === 'no-active-entry');
    });

    it('mark invalid needs a valid other copy whose slot boots', () => {
      const flash = fresh();
      writeOtadataCopy(flash, 0, encodeOtaEntry({ seq: 1, state: 'valid' }));
      writeOtadataCopy(flash, 1, encodeOtaEntry({ seq: 2, state: 'pending-verify' }));
      const asked: number[] = [];
      assert.throws(
        () => markInvalid(flash, (slot) => (asked.push(slot), false)),
        (e: unknown) => e instanceof OtadataError && e.code === 'rollback-impossible',
      );
      assert.deepEqual(asked, [0]);
      assert.equal(readOtadata(flash)[1].state, 'pending-verify', 'nothing written');
      assert.deepEqual(markInvalid(flash, () => true), { copy: 1, seq: 2, state: 'invalid' });
      assert.equal(activeCopy(readOtadata(flash)), 0);
    });

    it('mark invalid with the other copy erased: rollback-impossible (no factory app)', () => {
      const flash = fresh();
      writeOtadataCopy(flash, 0, encodeOtaEntry({ seq: 1, state: 'pending-verify' }));
      assert.throws(() => markInvalid(flash, () => true), (e: unknown) => e instanceof OtadataError && e.code === 'rollback-impossible');
    });

    it('esp_ota_get_state_partition: first copy (0, then 1) mapping to the slot with a good CRC', () => {
      const flash = fresh();
      writeOtadataCopy(flash, 0, encodeOtaEntry({ seq: 3, state: 'valid' }));
      writeOtadataCopy(flash, 1, encodeOtaEntry({ seq: 2, state: 'aborted' }));
      const readings = readOtadata(flash);
      assert.equal(stateOfSlot(readings, 0), 'valid');
      assert.equal(stateOfSlot(readings, 1), 'aborted');
      assert.equal(stateOfSlot([BLANK, BLANK], 0), undefined);
    });
  });
}

describe('otadata geometry', () => {
  it('refuses one block, 64-byte program units, or a non-0xFF erase value', () => {
    const code = (e: unknown) => e instanceof OtadataError && e.code === 'bad-geometry';
    assert.throws(() => readOtadata(new SimFlash({ blocks: 1 })), code);
    assert.throws(() => readOtadata(new SimFlash({ blocks: 2, writeAlign: 64 })), code);
    const zeroErase = new SimFlash({ blocks: 2 });
    assert.throws(() => readOtadata({ ...zeroErase, status: () => ({ ...zeroErase.status(), eraseValue: 0 }), read: zeroErase.read.bind(zeroErase) } as never), code);
  });

  it('copies live at the start of each sector (blockLength apart)', () => {
    const flash = new SimFlash({ blocks: 2 });
    writeOtadataCopy(flash, 1, encodeOtaEntry({ seq: 9, state: 'valid' }));
    assert.equal(new DataView(flash.data.buffer).getUint32(4096, true), 9);
  });
});
