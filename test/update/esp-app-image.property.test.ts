/**
 * Bad input for the ESP-IDF image validator (Node, fast-check): random slot
 * contents and mutated valid images always give a typed verdict (never a
 * throw, never a hang); any one changed byte of a valid image is refused;
 * the hand vector's SHA-256 agrees with node:crypto.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { sha256 } from '@noble/hashes/sha2.js';
import { SimFlash } from '../../tools/sim/flash/sim-flash.ts';
import { buildAppImage, writeAppImage } from '../../tools/sim/bootloader.ts';
import { encodeEspAppImage, ESP_CHIPS, holdfastRules, readEspAppDesc, verifyEspAppImage, type EspImageRules } from '../../firmware/update/esp-app-image.ts';
import { MINIMAL_HEX, MINIMAL_SPEC } from './esp-app-image.cases.ts';

const createSha256 = () => sha256.create();
const REASONS = new Set(['blank', 'bad-magic', 'wrong-chip', 'chip-revision', 'too-many-segments', 'bad-segment-length', 'segment-misaligned', 'no-app-desc', 'efuse-block-revision', 'truncated', 'bad-checksum', 'bad-hash', 'no-hash', 'slot-too-large']);
const HOLDFAST = holdfastRules(ESP_CHIPS.esp32);
/** The simulated bootloader's rules with anti-rollback (ESP-IDF: no hash required). */
const BOOTLOADER: EspImageRules = { chip: ESP_CHIPS.esp32, requireAppDesc: true, requireHash: false };
const GOOD = buildAppImage({ imageVersion: 5, secureVersion: 2 }, 1000, createSha256);

function slotHolding(bytes: Uint8Array, blocks = 1): SimFlash {
  const slot = new SimFlash({ blocks });
  if (bytes.length > 0) writeAppImage(slot, bytes);
  return slot;
}

function typed(rules: EspImageRules, slot: SimFlash): string {
  const check = verifyEspAppImage(slot, rules, createSha256);
  if (check.ok) return 'ok';
  assert.ok(REASONS.has(check.reason), `unknown reason ${check.reason}`);
  assert.equal(typeof check.message, 'string');
  assert.ok(!check.message.includes('\n'), 'one line');
  return check.reason;
}

describe('esp-app-image: bad input', () => {
  it("the hand vector's appended SHA-256 is node:crypto's over bytes 0..47", () => {
    const image = encodeEspAppImage(MINIMAL_SPEC, createSha256);
    assert.equal(Buffer.from(image.subarray(48)).toString('hex'), createHash('sha256').update(image.subarray(0, 48)).digest('hex'));
    assert.equal(Buffer.from(image).toString('hex'), MINIMAL_HEX.replace(/\s+/g, ''));
  });

  it('random slot contents: a typed verdict, never a throw', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4096 }), fc.boolean(), (bytes, magic) => {
        const data = bytes.slice();
        if (magic && data.length > 0) data[0] = 0xe9; // get past the magic check more often
        const slot = slotHolding(data);
        typed(HOLDFAST, slot);
        typed(BOOTLOADER, slot);
        readEspAppDesc(slot);
      }),
      { numRuns: 400 },
    );
  });

  it('random headers over a valid image: segment counts and lengths never make it throw or run away', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 0xffffffff })), { maxLength: 4 }), (count, lengths) => {
        const image = GOOD.slice();
        image[1] = count;
        const view = new DataView(image.buffer);
        // Overwrite the first segment headers' data_len at their places in the valid image.
        const places = [28, 24 + 8 + 256 + 4];
        lengths.forEach(([which, length]) => view.setUint32(places[which % places.length], length, true));
        typed(HOLDFAST, slotHolding(image, 2));
      }),
      { numRuns: 300 },
    );
  });

  it('any one byte of a valid image changed: refused (holdfast rules; the bootloader too, but for hash_appended cleared)', () => {
    assert.equal(typed(HOLDFAST, slotHolding(GOOD)), 'ok');
    fc.assert(
      fc.property(fc.integer({ min: 0, max: GOOD.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, xor) => {
        const image = GOOD.slice();
        image[at] ^= xor;
        const slot = slotHolding(image);
        assert.notEqual(typed(HOLDFAST, slot), 'ok', `byte ${at} ^ 0x${xor.toString(16)}`);
        // ESP-IDF reads a cleared hash_appended as "no hash": the checksum alone then decides, and passes.
        if (!(at === 23 && image[23] === 0)) assert.notEqual(typed(BOOTLOADER, slot), 'ok', `bootloader: byte ${at} ^ 0x${xor.toString(16)}`);
      }),
      { numRuns: 500 },
    );
  });

  it('a valid image cut at any length (the rest erased): refused', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: GOOD.length - 1 }), (length) => {
        const cut = GOOD.subarray(0, length);
        if (length > 0 && cut.length === GOOD.length) return;
        const verdict = typed(HOLDFAST, slotHolding(cut));
        // Only a cut inside the hash whose missing bytes were all 0xFF could pass: then it is the same image.
        if (verdict === 'ok') assert.ok(GOOD.subarray(length).every((b) => b === 0xff), `cut at ${length} verifies`);
      }),
      { numRuns: 300 },
    );
  });

  it('bytes after the image are not read as part of it', () => {
    const slot = new SimFlash({ blocks: 1 });
    const padded = new Uint8Array(4096).fill(0x5a);
    padded.set(GOOD);
    slot.write(0, padded);
    assert.equal(typed(HOLDFAST, slot), 'ok');
  });
});
