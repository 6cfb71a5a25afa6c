/**
 * SimFlash (tools/sim/flash/sim-flash.ts): NOR semantics, plain and strict
 * (16-byte write-once units) modes, counters, and power cuts that tear a
 * write or an erase exactly the way firmware/hal/flash.ts allows.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SimFlash, type SimFlashOptions, type SimFlashSnapshot } from '../../tools/sim/flash/sim-flash.ts';
import { FlashMisuse, PowerCut, isPowerCut } from '../../tools/sim/flash/errors.ts';
import { Rng } from '../../tools/sim/rng.ts';

function read(flash: SimFlash, byteOffset: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  flash.read(byteOffset, out);
  return out;
}

function filled(length: number, value: number): Uint8Array {
  return new Uint8Array(length).fill(value);
}

function randomBytes(seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  new Rng(seed).fill(out);
  return out;
}

function hex(byte: number): string {
  return `0x${byte.toString(16).padStart(2, '0')}`;
}

/** Run `op` expecting the armed cut to strike; returns the PowerCut. */
function expectCut(op: () => void): PowerCut {
  let caught: unknown;
  try {
    op();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof PowerCut, `expected PowerCut, got ${String(caught)}`);
  assert.ok(isPowerCut(caught));
  return caught;
}

function snapshotsEqual(a: SimFlashSnapshot, b: SimFlashSnapshot): boolean {
  return (
    Buffer.from(a.data).equals(Buffer.from(b.data)) &&
    Buffer.from(a.unitProgrammed).equals(Buffer.from(b.unitProgrammed)) &&
    Buffer.from(new Uint8Array(a.eraseCounts.buffer, a.eraseCounts.byteOffset, a.eraseCounts.byteLength)).equals(
      Buffer.from(new Uint8Array(b.eraseCounts.buffer, b.eraseCounts.byteOffset, b.eraseCounts.byteLength)),
    )
  );
}

describe('SimFlash geometry', () => {
  test('status() reports the geometry; defaults are 4096-byte blocks, plain, writeAlign 1', () => {
    const flash = new SimFlash({ blocks: 3 });
    assert.deepEqual(flash.status(), { size: 3 * 4096, blockLength: 4096, blocks: 3, writeAlign: 1, eraseValue: 0xff });
    assert.equal(flash.mode, 'plain');
    assert.equal(flash.data.length, 3 * 4096);
    assert.equal(flash.eraseCounts.length, 3);
  });

  test('strict mode defaults to a 16-byte program unit', () => {
    const flash = new SimFlash({ blocks: 2, blockLength: 256, mode: 'strict' });
    assert.deepEqual(flash.status(), { size: 512, blockLength: 256, blocks: 2, writeAlign: 16, eraseValue: 0xff });
    assert.equal(flash.unitProgrammed.length, 512 / 16);
  });

  test('the constructor rejects bad geometry with RangeError', () => {
    const bad: SimFlashOptions[] = [
      { blocks: 0 },
      { blocks: -1 },
      { blocks: 1.5 },
      { blocks: Number.NaN },
      { blocks: 1, blockLength: 8 },
      { blocks: 1, blockLength: 0 },
      { blocks: 1, blockLength: 100.5 },
      { blocks: 1, blockLength: 100, mode: 'strict' },
      { blocks: 1, blockLength: 64, writeAlign: 3 },
      { blocks: 1, blockLength: 64, writeAlign: 0 },
      { blocks: 1, blockLength: 64, writeAlign: -16 },
    ];
    for (const options of bad) {
      assert.throws(() => new SimFlash(options), RangeError, `should reject ${JSON.stringify(options)}`);
    }
  });

  test('the constructor rejects a program unit that is not a positive integer', () => {
    // 64 % 0.5 === 0, so the "multiple of writeAlign" check alone lets this through.
    assert.throws(() => new SimFlash({ blocks: 1, blockLength: 64, writeAlign: 0.5 }), RangeError);
  });
});

describe('SimFlash NOR semantics (plain)', () => {
  test('a fresh flash reads 0xFF everywhere', () => {
    const flash = new SimFlash({ blocks: 2, blockLength: 512 });
    assert.deepEqual(read(flash, 0, 1024), filled(1024, 0xff));
  });

  test('eraseBlock sets that block, and only that block, to 0xFF', () => {
    const flash = new SimFlash({ blocks: 3, blockLength: 256 });
    flash.write(0, filled(768, 0x00));
    flash.eraseBlock(1);
    assert.deepEqual(read(flash, 0, 256), filled(256, 0x00));
    assert.deepEqual(read(flash, 256, 256), filled(256, 0xff));
    assert.deepEqual(read(flash, 512, 256), filled(256, 0x00));
    assert.deepEqual([...flash.eraseCounts], [0, 1, 0]);
  });

  test('write can only clear bits: 0xF0 then 0x0F gives 0x00', () => {
    const flash = new SimFlash({ blocks: 1, blockLength: 64 });
    flash.write(10, Uint8Array.of(0xf0));
    assert.deepEqual(read(flash, 10, 1), Uint8Array.of(0xf0));
    flash.write(10, Uint8Array.of(0x0f));
    assert.deepEqual(read(flash, 10, 1), Uint8Array.of(0x00));
  });

  test('the stored byte is old & new for arbitrary patterns', () => {
    const flash = new SimFlash({ blocks: 1, blockLength: 256 });
    const a = randomBytes(11, 256);
    const b = randomBytes(12, 256);
    flash.write(0, a);
    flash.write(0, b);
    const expected = a.map((x, i) => x & b[i]);
    assert.deepEqual(read(flash, 0, 256), expected);
  });

  test('plain mode allows byte-granular writes at any offset', () => {
    const flash = new SimFlash({ blocks: 1, blockLength: 64 });
    flash.write(3, Uint8Array.of(0x12));
    flash.write(7, Uint8Array.of(0x34, 0x56, 0x78, 0x9a, 0xbc));
    flash.write(63, Uint8Array.of(0x01));
    const expected = filled(64, 0xff);
    expected[3] = 0x12;
    expected.set([0x34, 0x56, 0x78, 0x9a, 0xbc], 7);
    expected[63] = 0x01;
    assert.deepEqual(read(flash, 0, 64), expected);
  });

  test("onBitSet 'ignore' (the default): setting a bit back to 1 is silently a no-op for that bit", () => {
    const flash = new SimFlash({ blocks: 1, blockLength: 64 });
    flash.write(0, Uint8Array.of(0x0f));
    flash.write(0, Uint8Array.of(0xf0));
    assert.deepEqual(read(flash, 0, 1), Uint8Array.of(0x00));
    assert.deepEqual(flash.bitSetAttempts, []);
    assert.equal(flash.counters.writes, 2);
  });

  test("onBitSet 'record': the write happens (bits AND) and bitSetAttempts gets a message", () => {
    const flash = new SimFlash({ blocks: 1, blockLength: 64, onBitSet: 'record' });
    flash.write(5, Uint8Array.of(0x0f));
    flash.write(5, Uint8Array.of(0x05)); // only clears bits: not recorded
    assert.deepEqual(flash.bitSetAttempts, []);
    flash.write(4, Uint8Array.of(0xff, 0xf5)); // byte 5 holds 0x05; 0xf5 asks to set 0xf0
    assert.equal(flash.bitSetAttempts.length, 1);
    assert.match(flash.bitSetAttempts[0], /\b5\b/);
    assert.match(flash.bitSetAttempts[0], /0x05/);
    assert.match(flash.bitSetAttempts[0], /0xf5/);
    assert.deepEqual(read(flash, 4, 2), Uint8Array.of(0xff, 0x05));
    assert.equal(flash.counters.writes, 3);
  });

  test("onBitSet 'throw': FlashMisuse, nothing written, nothing counted", () => {
    const flash = new SimFlash({ blocks: 1, blockLength: 64, onBitSet: 'throw' });
    flash.write(0, Uint8Array.of(0xff, 0x0f, 0xff));
    flash.write(0, Uint8Array.of(0xfe, 0x0e, 0xfe)); // only clears: fine
    const before = { ...flash.counters };
    assert.throws(() => flash.write(0, Uint8Array.of(0x00, 0x1e, 0x00)), FlashMisuse);
    assert.deepEqual(read(flash, 0, 3), Uint8Array.of(0xfe, 0x0e, 0xfe));
    assert.equal(flash.counters.writes, before.writes);
    assert.equal(flash.counters.operations, before.operations);
    assert.equal(flash.counters.bytesProgrammed, before.bytesProgrammed);
    assert.deepEqual(flash.bitSetAttempts, []);
  });

  test('out-of-range read, write and erase throw FlashMisuse and change nothing', () => {
    const flash = new SimFlash({ blocks: 2, blockLength: 64 });
    const cases: Array<[string, () => void]> = [
      ['read past the end', () => flash.read(127, new Uint8Array(2))],
      ['read at size', () => flash.read(128, new Uint8Array(1))],
      ['read at a negative offset', () => flash.read(-1, new Uint8Array(1))],
      ['read at a fractional offset', () => flash.read(1.5, new Uint8Array(1))],
      ['write past the end', () => flash.write(120, new Uint8Array(9))],
      ['write at a negative offset', () => flash.write(-4, new Uint8Array(1))],
      ['write at NaN', () => flash.write(Number.NaN, new Uint8Array(1))],
      ['erase block -1', () => flash.eraseBlock(-1)],
      ['erase block == blocks', () => flash.eraseBlock(2)],
      ['erase a fractional block', () => flash.eraseBlock(0.5)],
    ];
    for (const [what, op] of cases) assert.throws(op, FlashMisuse, what);
    assert.deepEqual(flash.counters, { bytesProgrammed: 0, bytesRead: 0, erases: 0, reads: 0, writes: 0, operations: 0 });
    assert.deepEqual(read(flash, 0, 128), filled(128, 0xff));
    // The last byte is in range.
    flash.write(127, Uint8Array.of(0x42));
    assert.deepEqual(read(flash, 127, 1), Uint8Array.of(0x42));
  });
});

describe('SimFlash strict mode (16-byte write-once units)', () => {
  const strict = (blocks = 2) => new SimFlash({ blocks, blockLength: 256, mode: 'strict' });

  test('misaligned offset or length throws FlashMisuse', () => {
    const flash = strict();
    assert.throws(() => flash.write(8, new Uint8Array(16)), FlashMisuse, 'misaligned offset');
    assert.throws(() => flash.write(1, new Uint8Array(16)), FlashMisuse, 'misaligned offset');
    assert.throws(() => flash.write(0, new Uint8Array(8)), FlashMisuse, 'short length');
    assert.throws(() => flash.write(16, new Uint8Array(17)), FlashMisuse, 'length not a multiple');
    assert.throws(() => flash.write(0, new Uint8Array(1)), FlashMisuse, 'one byte');
    assert.equal(flash.counters.operations, 0);
    assert.deepEqual([...flash.unitProgrammed], new Array(32).fill(0));
    assert.deepEqual(read(flash, 0, 512), filled(512, 0xff));
  });

  test('aligned whole-unit writes land and mark their units programmed', () => {
    const flash = strict();
    const data = randomBytes(3, 32);
    flash.write(32, data);
    assert.deepEqual(read(flash, 32, 32), data);
    const expected = new Array(32).fill(0);
    expected[2] = 1;
    expected[3] = 1;
    assert.deepEqual([...flash.unitProgrammed], expected);
  });

  test('a second write to a unit before an erase throws FlashMisuse, even one that only clears bits', () => {
    const flash = strict();
    flash.write(16, filled(16, 0xf0));
    assert.throws(() => flash.write(16, filled(16, 0x00)), FlashMisuse);
    assert.throws(() => flash.write(16, filled(16, 0xff)), FlashMisuse);
    assert.deepEqual(read(flash, 16, 16), filled(16, 0xf0));
    assert.equal(flash.counters.writes, 1);
  });

  test('a write spanning a programmed unit is refused as a whole', () => {
    const flash = strict();
    flash.write(32, filled(16, 0x11));
    assert.throws(() => flash.write(16, filled(48, 0x22)), FlashMisuse);
    assert.deepEqual(read(flash, 16, 16), filled(16, 0xff), 'unit before untouched');
    assert.deepEqual(read(flash, 48, 16), filled(16, 0xff), 'unit after untouched');
    assert.equal(flash.unitProgrammed[1], 0);
    assert.equal(flash.unitProgrammed[3], 0);
  });

  test("after an erase of the unit's block the unit may be written again; erasing another block does not free it", () => {
    const flash = strict();
    flash.write(16, filled(16, 0xf0));
    flash.write(256 + 16, filled(16, 0xf0));
    flash.eraseBlock(1);
    assert.throws(() => flash.write(16, filled(16, 0x0f)), FlashMisuse);
    flash.write(256 + 16, filled(16, 0x0f)); // block 1 was erased
    assert.deepEqual(read(flash, 256 + 16, 16), filled(16, 0x0f));
    flash.eraseBlock(0);
    assert.deepEqual([...flash.unitProgrammed.subarray(0, 16)], new Array(16).fill(0));
    flash.write(16, filled(16, 0x0f));
    assert.deepEqual(read(flash, 16, 16), filled(16, 0x0f));
  });

  test('unitProgrammed tracks exactly the written units per block', () => {
    const flash = strict();
    flash.write(0, filled(16, 0));
    flash.write(240, filled(32, 0)); // last unit of block 0 and first of block 1
    flash.write(496, filled(16, 0));
    const expected = new Array(32).fill(0);
    for (const u of [0, 15, 16, 31]) expected[u] = 1;
    assert.deepEqual([...flash.unitProgrammed], expected);
    flash.eraseBlock(0);
    for (const u of [0, 15]) expected[u] = 0;
    assert.deepEqual([...flash.unitProgrammed], expected);
  });

  test('an explicit writeAlign is honoured in strict mode', () => {
    const flash = new SimFlash({ blocks: 1, blockLength: 256, mode: 'strict', writeAlign: 32 });
    assert.equal(flash.status().writeAlign, 32);
    assert.equal(flash.unitProgrammed.length, 8);
    assert.throws(() => flash.write(16, new Uint8Array(32)), FlashMisuse);
    flash.write(32, new Uint8Array(32));
    assert.throws(() => flash.write(32, new Uint8Array(32)), FlashMisuse);
  });
});

describe('SimFlash counters', () => {
  test('count bytes, reads, writes, erases and operations (writes + erases, not reads)', () => {
    const flash = new SimFlash({ blocks: 3, blockLength: 64 });
    flash.write(0, new Uint8Array(10));
    flash.read(0, new Uint8Array(7));
    flash.write(20, new Uint8Array(5));
    flash.read(3, new Uint8Array(3));
    flash.read(3, new Uint8Array(0));
    flash.eraseBlock(0);
    flash.eraseBlock(2);
    flash.eraseBlock(2);
    assert.deepEqual(flash.counters, { bytesProgrammed: 15, bytesRead: 10, erases: 3, reads: 3, writes: 2, operations: 5 });
    assert.deepEqual([...flash.eraseCounts], [1, 0, 2]);
  });

  test('resetCounters zeroes the counters and counting restarts from zero', () => {
    const flash = new SimFlash({ blocks: 2, blockLength: 64 });
    flash.write(0, new Uint8Array(4));
    flash.read(0, new Uint8Array(4));
    flash.eraseBlock(1);
    flash.resetCounters();
    assert.deepEqual(flash.counters, { bytesProgrammed: 0, bytesRead: 0, erases: 0, reads: 0, writes: 0, operations: 0 });
    flash.write(8, new Uint8Array(2));
    assert.deepEqual(flash.counters, { bytesProgrammed: 2, bytesRead: 0, erases: 0, reads: 0, writes: 1, operations: 1 });
  });
});

describe('SimFlash power cuts', () => {
  test('armCut tears exactly the n-th write/erase from arming; reads do not count', () => {
    const flash = new SimFlash({ blocks: 2, blockLength: 64 });
    flash.write(0, Uint8Array.of(1)); // before arming: not counted against the cut
    flash.armCut({ atOperation: 2, seed: 7 });
    flash.write(1, Uint8Array.of(0x02)); // op 0 from arming
    flash.read(0, new Uint8Array(4));
    flash.eraseBlock(1); // op 1
    flash.read(0, new Uint8Array(64));
    flash.read(0, new Uint8Array(64));
    const cut = expectCut(() => flash.write(2, filled(8, 0x00))); // op 2
    assert.equal(cut.operation, 3, 'operation index is the flash-wide one');
    assert.deepEqual(flash.lastTornOperation(), { kind: 'write', operation: 3, byteOffset: 2, byteLength: 8 });
    assert.equal(flash.isPowered, false);
  });

  test('atOperation 0 tears the very next operation', () => {
    const flash = new SimFlash({ blocks: 2, blockLength: 64 });
    flash.write(0, filled(64, 0));
    flash.armCut({ atOperation: 0, seed: 1 });
    expectCut(() => flash.eraseBlock(0));
    assert.deepEqual(flash.lastTornOperation(), { kind: 'erase', operation: 1, byteOffset: 0, byteLength: 64 });
  });

  test('after the cut every call throws PowerCut until powerOn; then contents persist and the cut is consumed', () => {
    const flash = new SimFlash({ blocks: 2, blockLength: 64 });
    flash.write(0, Uint8Array.of(0x12, 0x34));
    flash.armCut({ atOperation: 1, seed: 99 });
    flash.write(64, Uint8Array.of(0x56));
    expectCut(() => flash.write(10, filled(4, 0)));
    const before = flash.snapshot();
    expectCut(() => flash.read(0, new Uint8Array(2)));
    expectCut(() => flash.write(20, Uint8Array.of(0)));
    expectCut(() => flash.eraseBlock(1));
    expectCut(() => flash.read(0, new Uint8Array(0)));
    assert.ok(snapshotsEqual(flash.snapshot(), before), 'nothing changed while unpowered');
    flash.powerOn();
    assert.equal(flash.isPowered, true);
    assert.deepEqual(read(flash, 0, 2), Uint8Array.of(0x12, 0x34));
    assert.deepEqual(read(flash, 64, 1), Uint8Array.of(0x56));
    assert.ok(snapshotsEqual(flash.snapshot(), before));
    // The cut is consumed: everything works again.
    for (let i = 0; i < 5; i++) flash.write(30 + i, Uint8Array.of(i));
    flash.eraseBlock(1);
    assert.deepEqual(read(flash, 30, 5), Uint8Array.of(0, 1, 2, 3, 4));
  });

  test('disarmCut cancels an armed cut; armCut rejects a bad index', () => {
    const flash = new SimFlash({ blocks: 1, blockLength: 64 });
    flash.armCut({ atOperation: 0, seed: 1 });
    flash.disarmCut();
    flash.write(0, Uint8Array.of(0));
    flash.eraseBlock(0);
    assert.equal(flash.isPowered, true);
    assert.equal(flash.lastTornOperation(), undefined);
    assert.throws(() => flash.armCut({ atOperation: -1, seed: 1 }), RangeError);
    assert.throws(() => flash.armCut({ atOperation: 1.5, seed: 1 }), RangeError);
  });

  test('re-arming restarts the count from the new arming', () => {
    const flash = new SimFlash({ blocks: 1, blockLength: 64 });
    flash.armCut({ atOperation: 1, seed: 1 });
    flash.write(0, Uint8Array.of(0));
    flash.armCut({ atOperation: 1, seed: 1 });
    flash.write(1, Uint8Array.of(0)); // op 0 of the second arming
    expectCut(() => flash.write(2, Uint8Array.of(0)));
    assert.equal(flash.lastTornOperation()?.operation, 2);
  });

  test('a refused (misused) write does not count as an operation for the cut', () => {
    const flash = new SimFlash({ blocks: 1, blockLength: 256, mode: 'strict' });
    flash.armCut({ atOperation: 0, seed: 3 });
    assert.throws(() => flash.write(8, new Uint8Array(16)), FlashMisuse);
    assert.equal(flash.isPowered, true);
    expectCut(() => flash.write(0, new Uint8Array(16)));
  });

  test('torn program (plain): prefix of new bytes, one byte with a subset of the bits to clear, then the old bytes', () => {
    const offset = 8;
    const length = 24;
    for (let seed = 0; seed < 400; seed++) {
      const flash = new SimFlash({ blocks: 1, blockLength: 64 });
      const old = randomBytes(10_000 + seed, length);
      const next = randomBytes(20_000 + seed, length);
      flash.write(offset, old);
      flash.armCut({ atOperation: 0, seed });
      expectCut(() => flash.write(offset, next));
      flash.powerOn();
      const all = read(flash, 0, 64);
      assert.deepEqual(all.subarray(0, offset), filled(offset, 0xff), `seed ${seed}: bytes before the write`);
      assert.deepEqual(all.subarray(offset + length), filled(64 - offset - length, 0xff), `seed ${seed}: bytes after the write`);
      const result = all.subarray(offset, offset + length);
      let k = 0;
      while (k < length && result[k] === (old[k] & next[k])) k++;
      if (k < length) {
        const full = old[k] & next[k];
        // result = old & m with m ⊇ new  <=>  (old & new) ⊆ result ⊆ old
        assert.equal(result[k] & ~old[k] & 0xff, 0, `seed ${seed}: byte ${k} ${hex(result[k])} sets a bit old ${hex(old[k])} lacked`);
        assert.equal(result[k] & full, full, `seed ${seed}: byte ${k} ${hex(result[k])} keeps a bit new ${hex(next[k])} did not clear`);
        for (let i = k + 1; i < length; i++) {
          assert.equal(result[i], old[i], `seed ${seed}: byte ${i} after the torn byte changed`);
        }
      }
      assert.deepEqual(flash.lastTornOperation(), { kind: 'write', operation: 1, byteOffset: offset, byteLength: length });
    }
  });

  test('torn program (plain): across seeds a full write, an empty prefix and a partial byte all occur', () => {
    const length = 8;
    let full = 0;
    let empty = 0;
    let partialByte = 0;
    for (let seed = 0; seed < 300; seed++) {
      const flash = new SimFlash({ blocks: 1, blockLength: 64 });
      flash.armCut({ atOperation: 0, seed });
      expectCut(() => flash.write(16, filled(length, 0x00)));
      flash.powerOn();
      const result = read(flash, 16, length);
      let prefix = 0;
      while (prefix < length && result[prefix] === 0x00) prefix++;
      // Exact shape: zeros, at most one other byte, then 0xFF.
      for (let i = prefix + 1; i < length; i++) assert.equal(result[i], 0xff, `seed ${seed}: byte ${i}`);
      if (prefix === length) full++;
      if (result[0] !== 0x00) empty++;
      if (prefix < length && result[prefix] !== 0xff) partialByte++;
    }
    assert.ok(full > 0, 'no seed wrote the whole data');
    assert.ok(empty > 0, 'no seed left the first byte unwritten');
    assert.ok(partialByte > 0, 'no seed left a byte half-programmed');
  });

  test('torn program (strict): units before the tear land, units after stay erased, the one in flight is erased or garbage-programmed', () => {
    const units = 4;
    const offset = 32;
    let fullWrites = 0;
    let garbage = 0;
    let erasedInFlight = 0;
    let nothing = 0;
    for (let seed = 0; seed < 300; seed++) {
      const flash = new SimFlash({ blocks: 1, blockLength: 256, mode: 'strict' });
      const next = randomBytes(30_000 + seed, units * 16);
      flash.armCut({ atOperation: 0, seed });
      expectCut(() => flash.write(offset, next));
      flash.powerOn();
      const unitAt = (u: number) => read(flash, offset + u * 16, 16);
      const programmed = (u: number) => flash.unitProgrammed[offset / 16 + u];
      let done = 0;
      while (done < units && Buffer.from(unitAt(done)).equals(Buffer.from(next.subarray(done * 16, done * 16 + 16)))) {
        assert.equal(programmed(done), 1, `seed ${seed}: written unit ${done} must be programmed`);
        done++;
      }
      if (done === units) fullWrites++;
      if (done === 0) nothing++;
      let firstErased = done;
      if (done < units) {
        const inFlight = unitAt(done);
        if (programmed(done) === 1) {
          garbage++;
          firstErased = done + 1;
        } else {
          assert.deepEqual(inFlight, filled(16, 0xff), `seed ${seed}: unprogrammed unit in flight must read 0xFF`);
          erasedInFlight++;
        }
      }
      for (let u = firstErased; u < units; u++) {
        assert.deepEqual(unitAt(u), filled(16, 0xff), `seed ${seed}: unit ${u} after the tear`);
        assert.equal(programmed(u), 0, `seed ${seed}: unit ${u} after the tear must stay unprogrammed`);
      }
      // Units outside the write are untouched.
      for (let u = 0; u < 16; u++) {
        if (u >= offset / 16 && u < offset / 16 + units) continue;
        assert.equal(flash.unitProgrammed[u], 0, `seed ${seed}: unit ${u} outside the write`);
        assert.deepEqual(read(flash, u * 16, 16), filled(16, 0xff));
      }
      // Writability after reboot follows unitProgrammed.
      for (let u = 0; u < units; u++) {
        const at = offset + u * 16;
        if (programmed(u)) assert.throws(() => flash.write(at, filled(16, 0)), FlashMisuse);
        else flash.write(at, filled(16, 0));
      }
    }
    assert.ok(fullWrites > 0, 'no seed completed the write');
    assert.ok(nothing > 0, 'no seed tore the first unit');
    assert.ok(garbage > 0, 'no seed left a garbage unit');
    assert.ok(erasedInFlight > 0, 'no seed left the unit in flight erased');
  });

  test("torn program, tear 'prefix' given explicitly: byte-identical to a plan without a tear mode", () => {
    for (const mode of ['plain', 'strict'] as const) {
      for (let seed = 0; seed < 100; seed++) {
        const results = [undefined, 'prefix' as const].map((tear) => {
          const flash = new SimFlash({ blocks: 1, blockLength: 256, mode });
          flash.armCut({ atOperation: 0, seed, ...(tear ? { tear } : {}) });
          expectCut(() => flash.write(32, randomBytes(seed, 96)));
          return flash.snapshot();
        });
        assert.ok(snapshotsEqual(results[0], results[1]), `${mode} seed ${seed}`);
      }
    }
  });

  test('armCut rejects an unknown tear mode', () => {
    const flash = new SimFlash({ blocks: 1, blockLength: 64 });
    assert.throws(() => flash.armCut({ atOperation: 0, seed: 1, tear: 'sideways' as 'prefix' }), RangeError);
  });

  test("torn program (plain, 'bit-subset'): any subset of the bit clears lands, anywhere; no other bit moves", () => {
    const offset = 8;
    const length = 24;
    let outOfOrder = 0;
    let allButFew = 0;
    let nothing = 0;
    let everything = 0;
    for (let seed = 0; seed < 600; seed++) {
      const flash = new SimFlash({ blocks: 1, blockLength: 64 });
      const old = randomBytes(10_000 + seed, length);
      const next = randomBytes(20_000 + seed, length);
      flash.write(offset, old);
      flash.armCut({ atOperation: 0, seed, tear: 'bit-subset' });
      expectCut(() => flash.write(offset, next));
      flash.powerOn();
      const all = read(flash, 0, 64);
      assert.deepEqual(all.subarray(0, offset), filled(offset, 0xff), `seed ${seed}: bytes before the write`);
      assert.deepEqual(all.subarray(offset + length), filled(64 - offset - length, 0xff), `seed ${seed}: bytes after the write`);
      const result = all.subarray(offset, offset + length);
      let missing = 0;
      let firstIncomplete = -1;
      let lastComplete = -1;
      for (let i = 0; i < length; i++) {
        const full = old[i] & next[i];
        assert.equal(result[i] & ~old[i] & 0xff, 0, `seed ${seed}: byte ${i} sets a bit old ${hex(old[i])} lacked`);
        assert.equal(result[i] & full, full, `seed ${seed}: byte ${i} clears a bit new ${hex(next[i])} did not ask to clear`);
        for (let bit = 0; bit < 8; bit++) if (((result[i] ^ full) >> bit) & 1) missing++;
        if (result[i] !== full && firstIncomplete < 0) firstIncomplete = i;
        if (result[i] === full && old[i] !== full) lastComplete = i;
      }
      if (firstIncomplete >= 0 && lastComplete > firstIncomplete) outOfOrder++;
      if (missing >= 1 && missing <= 4) allButFew++;
      if (Buffer.from(result).equals(Buffer.from(old))) nothing++;
      if (missing === 0) everything++;
      assert.deepEqual(flash.lastTornOperation(), { kind: 'write', operation: 1, byteOffset: offset, byteLength: length });
    }
    assert.ok(outOfOrder > 100, `a later byte landed while an earlier did not in only ${outOfOrder} tears`);
    assert.ok(allButFew > 50, `all but a few bits landed in only ${allButFew} tears`);
    assert.ok(nothing > 0, 'no tear left everything old');
    assert.ok(everything > 0, 'no tear landed everything');
  });

  test("torn program (strict, 'bit-subset'): each unit lands whole, stays erased and writable, or is garbage; in any order", () => {
    const units = 4;
    const offset = 32;
    const seen = { landedAfterMiss: 0, garbageUnits: 0, erasedUnits: 0, severalGarbage: 0, full: 0 };
    for (let seed = 0; seed < 400; seed++) {
      const flash = new SimFlash({ blocks: 1, blockLength: 256, mode: 'strict' });
      const next = randomBytes(30_000 + seed, units * 16);
      flash.armCut({ atOperation: 0, seed, tear: 'bit-subset' });
      expectCut(() => flash.write(offset, next));
      flash.powerOn();
      let missed = false;
      let garbage = 0;
      let landed = 0;
      for (let u = 0; u < units; u++) {
        const bytes = read(flash, offset + u * 16, 16);
        const programmed = flash.unitProgrammed[offset / 16 + u];
        if (Buffer.from(bytes).equals(Buffer.from(next.subarray(u * 16, u * 16 + 16)))) {
          assert.equal(programmed, 1, `seed ${seed}: landed unit ${u} is programmed`);
          landed++;
          if (missed) seen.landedAfterMiss++;
        } else {
          missed = true;
          if (programmed) {
            garbage++;
            seen.garbageUnits++;
            assert.throws(() => flash.write(offset + u * 16, filled(16, 0)), FlashMisuse);
          } else {
            assert.deepEqual(bytes, filled(16, 0xff), `seed ${seed}: an unprogrammed unit ${u} reads 0xFF`);
            seen.erasedUnits++;
            flash.write(offset + u * 16, filled(16, 0));
          }
        }
      }
      if (garbage > 1) seen.severalGarbage++;
      if (landed === units) seen.full++;
      for (let u = 0; u < 16; u++) {
        if (u >= offset / 16 && u < offset / 16 + units) continue;
        assert.equal(flash.unitProgrammed[u], 0, `seed ${seed}: unit ${u} outside the write`);
      }
    }
    for (const [what, n] of Object.entries(seen)) assert.ok(n > 0, `never seen: ${what}`);
  });

  test('a torn erase ignores the tear mode', () => {
    for (const mode of ['plain', 'strict'] as const) {
      for (let seed = 0; seed < 50; seed++) {
        const results = (['prefix', 'bit-subset'] as const).map((tear) => {
          const flash = new SimFlash({ blocks: 2, blockLength: 256, mode });
          flash.write(0, randomBytes(seed, 256));
          flash.armCut({ atOperation: 0, seed, tear });
          expectCut(() => flash.eraseBlock(0));
          return flash.snapshot();
        });
        assert.ok(snapshotsEqual(results[0], results[1]), `${mode} seed ${seed}`);
      }
    }
  });

  test('torn erase (plain): every bit is the old bit or 1; neighbours untouched; some bytes stay old, some erase, some mix', () => {
    let stayedOld = 0;
    let erased = 0;
    let mixed = 0;
    for (let seed = 0; seed < 200; seed++) {
      const flash = new SimFlash({ blocks: 3, blockLength: 256 });
      const old = randomBytes(40_000 + seed, 768);
      old.fill(0x00, 256 + 64, 256 + 128); // a stretch where old, erased and mixed bytes are all distinguishable
      flash.write(0, old);
      flash.armCut({ atOperation: 0, seed });
      expectCut(() => flash.eraseBlock(1));
      assert.deepEqual(flash.lastTornOperation(), { kind: 'erase', operation: 1, byteOffset: 256, byteLength: 256 });
      flash.powerOn();
      const all = read(flash, 0, 768);
      assert.deepEqual(all.subarray(0, 256), old.subarray(0, 256), `seed ${seed}: block 0`);
      assert.deepEqual(all.subarray(512), old.subarray(512), `seed ${seed}: block 2`);
      for (let i = 256; i < 512; i++) {
        assert.equal(all[i] & old[i], old[i], `seed ${seed}: byte ${i} ${hex(all[i])} lost a 1 bit of old ${hex(old[i])}`);
      }
      for (let i = 256 + 64; i < 256 + 128; i++) {
        if (all[i] === 0x00) stayedOld++;
        else if (all[i] === 0xff) erased++;
        else mixed++;
      }
    }
    assert.ok(stayedOld > 0, 'no byte kept its old value');
    assert.ok(erased > 0, 'no byte was erased');
    assert.ok(mixed > 0, 'no byte came out a mix');
  });

  test('torn erase (strict): afterwards a unit is writable iff it reads all 0xFF', () => {
    let writable = 0;
    let notWritable = 0;
    for (let seed = 0; seed < 150; seed++) {
      const flash = new SimFlash({ blocks: 2, blockLength: 256, mode: 'strict' });
      flash.write(0, randomBytes(50_000 + seed, 512).map((b) => b & 0x7f)); // no unit starts all 0xFF
      flash.armCut({ atOperation: 0, seed });
      expectCut(() => flash.eraseBlock(0));
      flash.powerOn();
      for (let u = 0; u < 16; u++) {
        const allErased = read(flash, u * 16, 16).every((b) => b === 0xff);
        assert.equal(flash.unitProgrammed[u], allErased ? 0 : 1, `seed ${seed}: unit ${u} state`);
        if (allErased) {
          flash.write(u * 16, filled(16, 0x5a));
          assert.deepEqual(read(flash, u * 16, 16), filled(16, 0x5a));
          writable++;
        } else {
          assert.throws(() => flash.write(u * 16, filled(16, 0x5a)), FlashMisuse, `seed ${seed}: unit ${u}`);
          notWritable++;
        }
      }
      // Block 1 is untouched and still fully programmed.
      assert.deepEqual([...flash.unitProgrammed.subarray(16)], new Array(16).fill(1));
    }
    assert.ok(writable > 0, 'no unit came out erased');
    assert.ok(notWritable > 0, 'no unit came out partly erased');
  });

  test('the same seed gives byte-identical torn results; different seeds differ', () => {
    const tornWrite = (mode: 'plain' | 'strict', seed: number) => {
      const flash = new SimFlash({ blocks: 2, blockLength: 4096, mode });
      flash.write(0, randomBytes(5, 4096));
      flash.armCut({ atOperation: 0, seed });
      expectCut(() => flash.write(4096, randomBytes(6, 4096)));
      flash.powerOn();
      return flash.snapshot();
    };
    const tornErase = (mode: 'plain' | 'strict', seed: number) => {
      const flash = new SimFlash({ blocks: 2, blockLength: 4096, mode });
      flash.write(0, new Uint8Array(8192));
      flash.armCut({ atOperation: 0, seed });
      expectCut(() => flash.eraseBlock(1));
      flash.powerOn();
      return flash.snapshot();
    };
    for (const mode of ['plain', 'strict'] as const) {
      for (const make of [tornWrite, tornErase]) {
        assert.ok(snapshotsEqual(make(mode, 1234), make(mode, 1234)), `${mode} ${make.name}: same seed`);
        assert.ok(snapshotsEqual(make(mode, 0xdeadbeef), make(mode, 0xdeadbeef)), `${mode} ${make.name}: same seed`);
        const results = [1, 2, 3, 4].map((s) => make(mode, s));
        const distinct = new Set(results.map((s) => Buffer.from(s.data).toString('hex')));
        assert.ok(distinct.size > 1, `${mode} ${make.name}: different seeds all gave the same result`);
      }
    }
  });
});

describe('SimFlash snapshots', () => {
  test('snapshot()/fromSnapshot round-trip contents, unit map, erase counts, mode and geometry', () => {
    const flash = new SimFlash({ blocks: 3, blockLength: 256, mode: 'strict' });
    flash.write(0, randomBytes(1, 64));
    flash.eraseBlock(1);
    flash.eraseBlock(1);
    flash.eraseBlock(2);
    flash.write(512 + 32, randomBytes(2, 32));
    const snap = flash.snapshot();
    assert.equal(snap.mode, 'strict');
    assert.equal(snap.blocks, 3);
    assert.equal(snap.blockLength, 256);
    assert.equal(snap.writeAlign, 16);
    assert.deepEqual([...snap.eraseCounts], [0, 2, 1]);

    const copy = SimFlash.fromSnapshot(snap);
    assert.equal(copy.mode, 'strict');
    assert.deepEqual(copy.status(), flash.status());
    assert.deepEqual(copy.data, flash.data);
    assert.deepEqual(copy.unitProgrammed, flash.unitProgrammed);
    assert.deepEqual(copy.eraseCounts, flash.eraseCounts);
    assert.ok(snapshotsEqual(copy.snapshot(), snap));
    // Restored unit state is enforced.
    assert.throws(() => copy.write(0, new Uint8Array(16)), FlashMisuse);
    copy.write(64, new Uint8Array(16));
  });

  test('a snapshot is a copy: later changes to either side do not leak', () => {
    const flash = new SimFlash({ blocks: 1, blockLength: 64 });
    flash.write(0, Uint8Array.of(0x0f));
    const snap = flash.snapshot();
    flash.write(1, Uint8Array.of(0x00));
    flash.eraseBlock(0);
    assert.equal(snap.data[0], 0x0f);
    assert.equal(snap.data[1], 0xff);
    assert.equal(snap.eraseCounts[0], 0);
    const copy = SimFlash.fromSnapshot(snap);
    copy.write(2, Uint8Array.of(0));
    assert.equal(snap.data[2], 0xff);
  });

  test('fromSnapshot takes the onBitSet policy', () => {
    const flash = new SimFlash({ blocks: 1, blockLength: 64 });
    flash.write(0, Uint8Array.of(0x00));
    const copy = SimFlash.fromSnapshot(flash.snapshot(), { onBitSet: 'throw' });
    assert.throws(() => copy.write(0, Uint8Array.of(0x01)), FlashMisuse);
  });
});
