/**
 * Flash images (tools/sim/flash/image-codec.ts, image-file.ts): encode/decode
 * and save/load keep everything a replay needs; damaged files are refused
 * with a clear error; raw dumps load with inferred strict-mode unit state.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { SimFlash } from '../../tools/sim/flash/sim-flash.ts';
import { FlashMisuse } from '../../tools/sim/flash/errors.ts';
import { decodeImage, encodeImage } from '../../tools/sim/flash/image-codec.ts';
import { loadImage, loadRawImage, saveImage } from '../../tools/sim/flash/image-file.ts';
import { Rng } from '../../tools/sim/rng.ts';

const dir = mkdtempSync(join(tmpdir(), 'holdfast-image-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function randomBytes(seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  new Rng(seed).fill(out);
  return out;
}

/** A strict flash with programmed units, several erases, and a large erase count. */
function busyStrictFlash(): SimFlash {
  const flash = new SimFlash({ blocks: 4, blockLength: 256, mode: 'strict' });
  flash.write(0, randomBytes(1, 48));
  for (let i = 0; i < 300; i++) flash.eraseBlock(1); // > 255: needs the full u32
  flash.write(256 + 128, randomBytes(2, 16));
  flash.eraseBlock(3);
  flash.write(768 + 240, randomBytes(3, 16));
  flash.eraseCounts[2] = 0x12345678;
  return flash;
}

function assertSameFlash(actual: SimFlash, expected: SimFlash): void {
  assert.equal(actual.mode, expected.mode);
  assert.equal(actual.blocks, expected.blocks);
  assert.equal(actual.blockLength, expected.blockLength);
  assert.equal(actual.writeAlign, expected.writeAlign);
  assert.deepEqual(actual.status(), expected.status());
  assert.deepEqual(actual.data, expected.data);
  assert.deepEqual(actual.unitProgrammed, expected.unitProgrammed);
  assert.deepEqual(actual.eraseCounts, expected.eraseCounts);
}

function expectImageError(bytes: Uint8Array, pattern: RegExp, what: string): void {
  assert.throws(
    () => decodeImage(bytes),
    (error: unknown) => {
      assert.ok(error instanceof Error, `${what}: threw a non-Error`);
      assert.match(error.message, pattern, `${what}: unclear message ${JSON.stringify(error.message)}`);
      return true;
    },
    what,
  );
}

/** Replace the image's JSON header with `edit(header)` (same length required). */
function withHeader(image: Uint8Array, edit: (json: string) => string): Uint8Array {
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const length = view.getUint32(8, true);
  const json = new TextDecoder().decode(image.subarray(12, 12 + length));
  const edited = new TextEncoder().encode(edit(json));
  assert.equal(edited.length, length, 'test helper keeps the header length');
  const out = image.slice();
  out.set(edited, 12);
  return out;
}

describe('encodeImage / decodeImage', () => {
  test('round-trip data, unit map, erase counts, mode and geometry (strict)', () => {
    const flash = busyStrictFlash();
    const image = encodeImage(flash);
    assert.equal(new TextDecoder().decode(image.subarray(0, 8)), 'HFIMAGE1');
    const back = decodeImage(image);
    assertSameFlash(back, flash);
    assert.equal(back.eraseCounts[1], 300);
    assert.equal(back.eraseCounts[2], 0x12345678);
    // The restored unit map is live: programmed units refuse a second write.
    assert.throws(() => back.write(0, new Uint8Array(16)), FlashMisuse);
    back.write(48, new Uint8Array(16));
  });

  test('round-trip a plain flash (1-byte units) and a snapshot source', () => {
    const flash = new SimFlash({ blocks: 2, blockLength: 64 });
    flash.write(5, randomBytes(4, 70));
    flash.eraseBlock(0);
    flash.write(3, Uint8Array.of(0x81));
    const fromFlash = decodeImage(encodeImage(flash));
    const fromSnapshot = decodeImage(encodeImage(flash.snapshot()));
    assertSameFlash(fromFlash, flash);
    assertSameFlash(fromSnapshot, flash);
    assert.equal(fromFlash.mode, 'plain');
    assert.equal(fromFlash.writeAlign, 1);
    assert.deepEqual(encodeImage(flash), encodeImage(flash.snapshot()));
  });

  test('round-trip a strict flash with a non-default program unit', () => {
    const flash = new SimFlash({ blocks: 2, blockLength: 128, mode: 'strict', writeAlign: 32 });
    flash.write(32, randomBytes(5, 64));
    const back = decodeImage(encodeImage(flash));
    assertSameFlash(back, flash);
    assert.equal(back.writeAlign, 32);
  });

  test('decodes an image that sits at a non-zero offset of a larger buffer', () => {
    const flash = busyStrictFlash();
    const image = encodeImage(flash);
    const big = new Uint8Array(image.length + 13);
    big.set(image, 7);
    assertSameFlash(decodeImage(big.subarray(7, 7 + image.length)), flash);
  });

  test('the decoded flash is independent of the image bytes', () => {
    const flash = new SimFlash({ blocks: 1, blockLength: 64 });
    const image = encodeImage(flash);
    const back = decodeImage(image);
    back.write(0, Uint8Array.of(0));
    assert.deepEqual(decodeImage(image).data, flash.data);
  });

  test('a corrupted magic is refused with a clear Error', () => {
    const image = encodeImage(busyStrictFlash());
    const bad = image.slice();
    bad[0] ^= 0x20;
    expectImageError(bad, /not a holdfast flash image/, 'corrupted magic');
    const bad2 = image.slice();
    bad2[7] = 0x32; // "HFIMAGE2"
    expectImageError(bad2, /not a holdfast flash image/, 'other magic');
    expectImageError(new Uint8Array(0), /not a holdfast flash image/, 'empty input');
  });

  test('a wrong format number is refused with a clear Error', () => {
    const image = encodeImage(busyStrictFlash());
    const bad = withHeader(image, (json) => json.replace('"format":1', '"format":2'));
    expectImageError(bad, /format 2 is not supported/, 'format 2');
  });

  test('a file truncated in its body, or with trailing bytes, is refused with a clear Error', () => {
    const flash = new SimFlash({ blocks: 1, blockLength: 32, mode: 'strict' });
    const image = encodeImage(flash);
    const headerEnd = 12 + new DataView(image.buffer).getUint32(8, true);
    for (let length = headerEnd; length < image.length; length++) {
      expectImageError(image.subarray(0, length), /flash image is \d+ bytes, header implies \d+/, `truncated to ${length}`);
    }
    const longer = new Uint8Array(image.length + 1);
    longer.set(image);
    expectImageError(longer, /header implies/, 'one byte too many');
  });

  test('a file truncated anywhere (even inside the header) is refused with an Error naming the image', () => {
    const flash = new SimFlash({ blocks: 1, blockLength: 32, mode: 'strict' });
    const image = encodeImage(flash);
    const failures: string[] = [];
    for (let length = 0; length < image.length; length++) {
      try {
        decodeImage(image.subarray(0, length));
        failures.push(`${length}: accepted`);
      } catch (error) {
        if (!(error instanceof Error) || !/image/i.test(error.message)) failures.push(`${length}: ${String(error)}`);
      }
    }
    assert.deepEqual(failures, [], 'truncations without a clear "flash image" error');
  });
});

describe('saveImage / loadImage', () => {
  test('round-trip through a file', () => {
    const flash = busyStrictFlash();
    const path = join(dir, 'busy.hfimg');
    saveImage(path, flash);
    const bytes = new Uint8Array(readFileSync(path));
    assert.deepEqual(bytes, encodeImage(flash));
    assertSameFlash(loadImage(path), flash);
  });

  test('round-trip a snapshot through a file', () => {
    const flash = new SimFlash({ blocks: 3, blockLength: 128 });
    flash.write(100, randomBytes(9, 200));
    flash.eraseBlock(2);
    const path = join(dir, 'snap.hfimg');
    saveImage(path, flash.snapshot());
    assertSameFlash(loadImage(path), flash);
  });

  test('loadImage refuses a damaged file', () => {
    const image = encodeImage(busyStrictFlash());
    const magic = join(dir, 'bad-magic.hfimg');
    const bad = image.slice();
    bad[1] = 0;
    writeFileSync(magic, bad);
    assert.throws(() => loadImage(magic), /not a holdfast flash image/);
    const truncated = join(dir, 'truncated.hfimg');
    writeFileSync(truncated, image.subarray(0, image.length - 5));
    assert.throws(() => loadImage(truncated), /header implies/);
    const format = join(dir, 'format.hfimg');
    writeFileSync(format, withHeader(image, (json) => json.replace('"format":1', '"format":9')));
    assert.throws(() => loadImage(format), /format 9/);
  });
});

describe('loadRawImage', () => {
  test('a raw dump in strict mode: non-0xFF units count as programmed', () => {
    const raw = new Uint8Array(2 * 4096).fill(0xff);
    raw.set(randomBytes(7, 32), 0); // units 0, 1
    raw[4096 + 16 * 5 + 15] = 0xfe; // one byte in unit 261
    raw[4096 + 16 * 9] = 0x00; // unit 265
    const path = join(dir, 'raw.bin');
    writeFileSync(path, raw);
    const flash = loadRawImage(path, { mode: 'strict' });
    assert.equal(flash.mode, 'strict');
    assert.equal(flash.blocks, 2);
    assert.equal(flash.blockLength, 4096);
    assert.equal(flash.writeAlign, 16);
    assert.deepEqual(flash.data, raw);
    assert.deepEqual([...flash.eraseCounts], [0, 0]);
    const programmed = [...flash.unitProgrammed].flatMap((p, u) => (p ? [u] : []));
    assert.deepEqual(programmed, [0, 1, 256 + 5, 256 + 9]);
    assert.throws(() => flash.write(4096 + 16 * 5, new Uint8Array(16)), FlashMisuse);
    flash.write(4096 + 16 * 6, new Uint8Array(16));
  });

  test('a raw dump in plain mode with a custom block length', () => {
    const raw = randomBytes(8, 3 * 256);
    const path = join(dir, 'raw-plain.bin');
    writeFileSync(path, raw);
    const flash = loadRawImage(path, { blockLength: 256 });
    assert.equal(flash.mode, 'plain');
    assert.equal(flash.blocks, 3);
    assert.equal(flash.blockLength, 256);
    assert.deepEqual(flash.data, raw);
  });

  test('a size that is not a whole number of blocks is refused', () => {
    for (const size of [0, 4095, 4097, 3 * 4096 + 16]) {
      const path = join(dir, `raw-${size}.bin`);
      writeFileSync(path, new Uint8Array(size).fill(0xff));
      assert.throws(() => loadRawImage(path), /not a whole number of 4096-byte blocks/, `size ${size}`);
    }
    const path = join(dir, 'raw-odd.bin');
    writeFileSync(path, new Uint8Array(300));
    assert.throws(() => loadRawImage(path, { blockLength: 256 }), /not a whole number of 256-byte blocks/);
  });
});
