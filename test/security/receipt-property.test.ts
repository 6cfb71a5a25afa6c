/**
 * Node-only property tests of the receipt decoder (docs/spec/receipt.md):
 * random bytes of any length and valid receipts mutated (bit flips, byte
 * overwrites, truncation, extension, splices of another device's receipt)
 * are refused with a typed ReceiptError and never crash or open; random
 * ingest windows round-trip with `covers` equal to the window's verdicts;
 * the receipt key matches @noble/hashes' HKDF rebuilt from the spec.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { ENVELOPE_HKDF_SALT, KEY_LABELS } from '../../firmware/security/envelope-keys.ts';
import { openReceipt, RECEIPT_LENGTH, ReceiptError, sealReceipt, type ReceiptErrorCode } from '../../firmware/security/receipt.ts';
import { DEVICE_A, receiptFixture, secret, windowOf } from './receipt.cases.ts';

const f = receiptFixture();
const CODES: readonly ReceiptErrorCode[] = ['bad-length', 'unsupported-version', 'unknown-key', 'bad-tag', 'malformed'];

/** Opens, and returns the refusal code or 'opened'; anything else thrown fails the property. */
function verdict(bytes: Uint8Array): ReceiptErrorCode | 'opened' {
  try {
    openReceipt(bytes, f.keysA, f.primitives);
    return 'opened';
  } catch (error) {
    assert.ok(error instanceof ReceiptError, `not a ReceiptError: ${String(error)}`);
    assert.ok(CODES.includes(error.code), `unknown code ${error.code}`);
    return error.code;
  }
}

const counters = fc.array(fc.integer({ min: 1, max: 20_000 }), { minLength: 0, maxLength: 200 });

describe('receipt decoder properties', () => {
  it('random bytes of any length: a typed refusal, never an open', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 400 }), (bytes) => {
        assert.notEqual(verdict(bytes), 'opened');
      }),
      { numRuns: 3000 },
    );
  });

  it('random 156-byte bodies with a valid version and key id: bad-tag', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: RECEIPT_LENGTH, maxLength: RECEIPT_LENGTH }), (bytes) => {
        bytes[0] = 1;
        bytes.set([1, 0, 0, 0], 1);
        assert.equal(verdict(bytes), 'bad-tag');
      }),
      { numRuns: 2000 },
    );
  });

  it('valid receipts mutated (flips, overwrites, truncation, extension, splices): refused; only the unmutated one opens', () => {
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('flip' as const), bit: fc.integer({ min: 0, max: RECEIPT_LENGTH * 8 - 1 }) }),
      fc.record({ kind: fc.constant('byte' as const), at: fc.integer({ min: 0, max: RECEIPT_LENGTH - 1 }), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('cut' as const), length: fc.integer({ min: 0, max: RECEIPT_LENGTH - 1 }) }),
      fc.record({ kind: fc.constant('extend' as const), extra: fc.uint8Array({ minLength: 1, maxLength: 40 }) }),
      fc.record({ kind: fc.constant('splice' as const), from: fc.integer({ min: 0, max: RECEIPT_LENGTH - 1 }) }),
    );
    fc.assert(
      fc.property(counters, mutation, (accepted, m) => {
        const good = sealReceipt(f.primitives, f.keysA, windowOf(accepted).state());
        assert.equal(verdict(good), 'opened');
        let bad: Uint8Array;
        switch (m.kind) {
          case 'flip':
            bad = good.slice();
            bad[m.bit >> 3] ^= 1 << (m.bit & 7);
            break;
          case 'byte':
            if (good[m.at] === m.value) return;
            bad = good.slice();
            bad[m.at] = m.value;
            break;
          case 'cut':
            bad = good.slice(0, m.length);
            break;
          case 'extend':
            bad = new Uint8Array(good.length + m.extra.length);
            bad.set(good);
            bad.set(m.extra, good.length);
            break;
          case 'splice': {
            // The tail from another device's receipt of the same window.
            const other = sealReceipt(f.primitives, f.keysB, windowOf(accepted).state());
            bad = good.slice();
            bad.set(other.subarray(m.from), m.from);
            if (bad.every((b, i) => b === good[i])) return;
            break;
          }
        }
        assert.notEqual(verdict(bad), 'opened');
      }),
      { numRuns: 3000 },
    );
  });

  it('random windows round-trip: covers(c) equals the window verdict "duplicate"', () => {
    fc.assert(
      fc.property(counters, fc.integer({ min: 0, max: 2 ** 40 }), (accepted, offset) => {
        const window = windowOf(accepted.map((c) => c + offset));
        const opened = openReceipt(sealReceipt(f.primitives, f.keysA, window.state()), f.keysA, f.primitives);
        assert.equal(opened.highest, window.highest);
        const top = window.highest;
        for (let c = Math.max(1, top - 1030); c <= top + 2; c++) assert.equal(opened.covers(c), window.check(c) === 'duplicate', `counter ${c}`);
      }),
      { numRuns: 200 },
    );
  });

  it('the receipt key is HKDF-SHA-256 with the label holdfast/v1/receipt/hmac-sha256 (rebuilt with @noble/hashes from the spec)', () => {
    assert.equal(KEY_LABELS.receipt, 'holdfast/v1/receipt/hmac-sha256');
    const label = new TextEncoder().encode(KEY_LABELS.receipt);
    const info = new Uint8Array(label.length + 1 + 8 + 4);
    info.set(label, 0);
    info.set(DEVICE_A, label.length + 1);
    new DataView(info.buffer).setUint32(label.length + 1 + 8, 1, true);
    assert.deepEqual(f.keysA.receipt, hkdf(sha256, secret(), new TextEncoder().encode(ENVELOPE_HKDF_SALT), info, 32));
  });
});
