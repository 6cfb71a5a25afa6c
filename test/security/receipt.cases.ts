/**
 * Ingest receipts (docs/spec/receipt.md) in Node and in XS: the byte
 * layout, a round trip from the ingest's own window (tools/ingest/window.ts)
 * whose `covers` matches the window's verdicts exactly, and every refusal:
 * length, version, key id, a flipped tag or bit, another device's receipt,
 * a receipt under another key id, an authentic receipt of an impossible
 * window. Node-only property tests: receipt-property.test.ts.
 */
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { envelopePrimitives, type EnvelopePrimitives } from '../../firmware/security/envelope-primitives.ts';
import { deriveDeviceKeys, type DeviceKeys } from '../../firmware/security/envelope-keys.ts';
import {
  openReceipt,
  RECEIPT_BITMAP_BYTES,
  RECEIPT_FORMAT_VERSION,
  RECEIPT_LENGTH,
  RECEIPT_OFFSETS,
  RECEIPT_TAG_LENGTH,
  RECEIPT_WINDOW_BITS,
  ReceiptError,
  sealReceipt,
} from '../../firmware/security/receipt.ts';
import { writeCounter } from '../../firmware/security/envelope-format.ts';
import { IngestWindow, INGEST_WINDOW_BITS, WINDOW_BITMAP_BYTES } from '../../tools/ingest/window.ts';
import { Rng } from '../../tools/sim/rng.ts';
import { bytesEqual, equal, ok, throws } from '../support/check.ts';
import { throwsCode } from '../support/case-helpers.ts';
import type { CaseSuite } from '../support/cases.ts';

export const DEVICE_A = Uint8Array.of(0xd1, 0, 0, 0, 0, 0, 0, 0x0a);
export const DEVICE_B = Uint8Array.of(0xd1, 0, 0, 0, 0, 0, 0, 0x0b);

export function secret(): Uint8Array {
  const bytes = new Uint8Array(32);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (0x11 + i * 7) & 0xff;
  return bytes;
}

export interface ReceiptFixture {
  primitives: EnvelopePrimitives;
  keysA: DeviceKeys;
  /** Same secret, another device id. */
  keysB: DeviceKeys;
  /** Device A, key id 2. */
  keysA2: DeviceKeys;
}

export function receiptFixture(): ReceiptFixture {
  const crypto = createNobleCrypto();
  return {
    primitives: envelopePrimitives(crypto),
    keysA: deriveDeviceKeys(crypto, secret(), DEVICE_A, 1),
    keysB: deriveDeviceKeys(crypto, secret(), DEVICE_B, 1),
    keysA2: deriveDeviceKeys(crypto, secret(), DEVICE_A, 2),
  };
}

/** An ingest window after accepting `counters` (in the given order; stale or duplicate ones skipped, as the ingest does). */
export function windowOf(counters: readonly number[]): IngestWindow {
  const window = new IngestWindow();
  for (const c of counters) if (window.check(c) === 'fresh') window.accept(c);
  return window;
}

function hex(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16);
  return out;
}

/** A receipt whose tag is computed over whatever bytes 0..139 say (to build authentic receipts of impossible windows). */
function tagged(f: ReceiptFixture, keys: DeviceKeys, body: Uint8Array): Uint8Array {
  const receipt = new Uint8Array(RECEIPT_LENGTH);
  receipt.set(body.subarray(0, RECEIPT_OFFSETS.tag));
  const input = new Uint8Array(8 + RECEIPT_OFFSETS.tag);
  input.set(keys.deviceId, 0);
  input.set(receipt.subarray(0, RECEIPT_OFFSETS.tag), 8);
  receipt.set(f.primitives.hmacSha256(keys.receipt, input).subarray(0, RECEIPT_TAG_LENGTH), RECEIPT_OFFSETS.tag);
  return receipt;
}

export const suite: CaseSuite = {
  name: 'ingest receipts',
  cases: [
    {
      name: 'byte layout: version, key id, H (u56 LE), the ingest bitmap as it keeps it, 16-byte tag over device id || body; 156 bytes',
      run() {
        const f = receiptFixture();
        equal(INGEST_WINDOW_BITS, RECEIPT_WINDOW_BITS, 'W is the ingest window');
        equal(WINDOW_BITMAP_BYTES, RECEIPT_BITMAP_BYTES, 'bitmap bytes');
        equal(RECEIPT_LENGTH, 156, 'length');
        const window = windowOf([5, 7, 0x1feeddccbbaa99 - 3, 0x1feeddccbbaa99]);
        const state = window.state();
        const receipt = sealReceipt(f.primitives, f.keysA, state);
        equal(receipt.length, 156, 'sealed length');
        equal(receipt[0], RECEIPT_FORMAT_VERSION, 'byte 0: version');
        equal(hex(receipt.subarray(1, 5)), '01000000', 'bytes 1..4: key id 1, LE');
        equal(hex(receipt.subarray(5, 12)), '99aabbccddee1f', 'bytes 5..11: H, LE');
        bytesEqual(receipt.subarray(12, 140), state.bitmap, 'bytes 12..139: the bitmap exactly as IngestWindow.state() gives it');
        equal(receipt[12], 0b1001, 'bit 0 = H, bit 3 = H - 3');
        const input = new Uint8Array(8 + 140);
        input.set(DEVICE_A, 0);
        input.set(receipt.subarray(0, 140), 8);
        bytesEqual(receipt.subarray(140), f.primitives.hmacSha256(f.keysA.receipt, input).subarray(0, 16), 'bytes 140..155: HMAC-SHA-256(K_receipt, device id || bytes 0..139)[0..16)');
        const opened = openReceipt(receipt, f.keysA, f.primitives);
        equal(opened.highest, 0x1feeddccbbaa99, 'H');
        equal(opened.keyId, 1, 'key id');
        ok(opened.covers(0x1feeddccbbaa99) && opened.covers(0x1feeddccbbaa99 - 3), 'covers the two top counters');
        ok(!opened.covers(0x1feeddccbbaa99 - 1), 'not a gap');
        ok(!opened.covers(5) && !opened.covers(7), 'counters below the window: the receipt says nothing about them');
      },
    },
    {
      name: 'covers(c) is exactly the ingest window\'s "duplicate" verdict, over 40 seeded windows with gaps, reorders and reboot skips',
      run() {
        const f = receiptFixture();
        let checked = 0;
        let coveredTotal = 0;
        for (let seed = 1; seed <= 40; seed++) {
          const rng = new Rng(seed);
          const counters: number[] = [];
          let c = 1 + rng.below(5000);
          for (let i = 0; i < 300; i++) {
            c += rng.chance(0.05) ? 1 + rng.below(4096) : 1 + rng.below(3);
            counters.push(c);
          }
          // Some reordering within the window.
          for (let i = 0; i < 40; i++) {
            const a = rng.below(counters.length);
            const b = Math.min(counters.length - 1, a + rng.below(8));
            const t = counters[a];
            counters[a] = counters[b];
            counters[b] = t;
          }
          const window = windowOf(counters);
          const opened = openReceipt(sealReceipt(f.primitives, f.keysA, window.state()), f.keysA, f.primitives);
          equal(opened.highest, window.highest, `seed ${seed}: H`);
          const low = Math.max(1, window.highest - RECEIPT_WINDOW_BITS - 5);
          for (let k = low; k <= window.highest + 3; k++) {
            const covered = opened.covers(k);
            equal(covered, window.check(k) === 'duplicate', `seed ${seed}: covers(${k}) vs the window's verdict ${window.check(k)}`);
            checked++;
            if (covered) coveredTotal++;
          }
        }
        return { checked, coveredTotal };
      },
    },
    {
      name: 'an empty window (nothing accepted yet) covers nothing; covers() is false for 0, negatives, fractions, NaN and counters above H',
      run() {
        const f = receiptFixture();
        const empty = openReceipt(sealReceipt(f.primitives, f.keysA, new IngestWindow().state()), f.keysA, f.primitives);
        equal(empty.highest, 0, 'H 0');
        for (const c of [0, 1, 2, 1024]) ok(!empty.covers(c), `empty covers ${c}`);
        const one = openReceipt(sealReceipt(f.primitives, f.keysA, windowOf([1, 2, 3]).state()), f.keysA, f.primitives);
        for (const c of [0, -1, 1.5, Number.NaN, 4, Number.POSITIVE_INFINITY]) ok(!one.covers(c), `covers ${c}`);
        ok(one.covers(1) && one.covers(2) && one.covers(3), 'covers 1..3');
        const full = windowOf(Array.from({ length: 1100 }, (_, i) => i + 1));
        const r = openReceipt(sealReceipt(f.primitives, f.keysA, full.state()), f.keysA, f.primitives);
        ok(r.covers(1100 - 1023), 'the oldest counter in the window (H - W + 1)');
        ok(!r.covers(1100 - 1024), 'H - W: below the window, not covered');
      },
    },
    {
      name: 'refusals, first failure wins: bad-length, unsupported-version, unknown-key, bad-tag (flipped tag, flipped body bit, another device, another key id), malformed',
      run() {
        const f = receiptFixture();
        const good = sealReceipt(f.primitives, f.keysA, windowOf([10, 11, 12]).state());
        throws(() => openReceipt('x' as unknown as Uint8Array, f.keysA, f.primitives), 'TypeError', 'not bytes');
        throwsCode<ReceiptError>(() => openReceipt(good.subarray(0, 155), f.keysA, f.primitives), 'ReceiptError', 'bad-length', 'one byte short');
        const long = new Uint8Array(157);
        long.set(good);
        throwsCode<ReceiptError>(() => openReceipt(long, f.keysA, f.primitives), 'ReceiptError', 'bad-length', 'one byte long');
        throwsCode<ReceiptError>(() => openReceipt(new Uint8Array(0), f.keysA, f.primitives), 'ReceiptError', 'bad-length', 'empty');
        const v2 = good.slice();
        v2[0] = 2;
        throwsCode<ReceiptError>(() => openReceipt(v2, f.keysA, f.primitives), 'ReceiptError', 'unsupported-version', 'version 2');
        throwsCode<ReceiptError>(() => openReceipt(new Uint8Array(156).fill(0xff), f.keysA, f.primitives), 'ReceiptError', 'unsupported-version', 'erased bytes');
        throwsCode<ReceiptError>(() => openReceipt(good, f.keysA2, f.primitives), 'ReceiptError', 'unknown-key', 'a device on key id 2 reading a key id 1 receipt');
        let flips = 0;
        for (let bit = 0; bit < 8 * 156; bit++) {
          const bad = good.slice();
          bad[bit >> 3] ^= 1 << (bit & 7);
          const error = throws(() => openReceipt(bad, f.keysA, f.primitives), 'ReceiptError', `bit ${bit} flipped`) as ReceiptError;
          const expected = bit < 8 ? 'unsupported-version' : bit < 40 ? 'unknown-key' : 'bad-tag';
          equal(error.code, expected, `bit ${bit} flipped`);
          flips++;
        }
        // Another device's receipt (same secret, same key id: only the device id differs).
        const forB = sealReceipt(f.primitives, f.keysB, windowOf([10, 11, 12]).state());
        throwsCode<ReceiptError>(() => openReceipt(forB, f.keysA, f.primitives), 'ReceiptError', 'bad-tag', "device B's receipt at device A");
        // Authentic but impossible windows: refused as malformed, never interpreted.
        const body = good.slice();
        body.fill(0, RECEIPT_OFFSETS.bitmap, RECEIPT_OFFSETS.tag);
        throwsCode<ReceiptError>(() => openReceipt(tagged(f, f.keysA, body), f.keysA, f.primitives), 'ReceiptError', 'malformed', 'H not marked');
        const low = good.slice();
        writeCounter(2, low, RECEIPT_OFFSETS.highest);
        low.fill(0, RECEIPT_OFFSETS.bitmap, RECEIPT_OFFSETS.tag);
        low[RECEIPT_OFFSETS.bitmap] = 0b111;
        throwsCode<ReceiptError>(() => openReceipt(tagged(f, f.keysA, low), f.keysA, f.primitives), 'ReceiptError', 'malformed', 'counter 0 marked');
        const huge = good.slice();
        huge.fill(0xff, RECEIPT_OFFSETS.highest, RECEIPT_OFFSETS.highest + 7);
        throwsCode<ReceiptError>(() => openReceipt(tagged(f, f.keysA, huge), f.keysA, f.primitives), 'ReceiptError', 'malformed', 'H above 2^53 - 1');
        // The seal side refuses the same impossible states.
        throws(() => sealReceipt(f.primitives, f.keysA, { highest: 5, bitmap: new Uint8Array(128) }), 'RangeError', 'seal: H not marked');
        throws(() => sealReceipt(f.primitives, f.keysA, { highest: 0, bitmap: new Uint8Array(128).fill(1) }), 'RangeError', 'seal: marks below 1');
        throws(() => sealReceipt(f.primitives, f.keysA, { highest: 2 ** 53, bitmap: new Uint8Array(128) }), 'RangeError', 'seal: H out of range');
        throws(() => sealReceipt(f.primitives, f.keysA, { highest: 1, bitmap: new Uint8Array(127) }), 'RangeError', 'seal: bitmap length');
        return { flips };
      },
    },
    {
      name: 'the receipt key is its own: distinct from every envelope key, per device and per key id',
      run() {
        const f = receiptFixture();
        const k = f.keysA;
        const all = [k.upHmacSha256, k.upChacha20Poly1305, k.upAes256Gcm, k.downChacha20Poly1305, k.receipt].map(hex);
        equal(new Set(all).size, 5, 'five distinct keys');
        ok(hex(f.keysB.receipt) !== hex(k.receipt), 'another device id, another receipt key');
        ok(hex(f.keysA2.receipt) !== hex(k.receipt), 'another key id, another receipt key');
        // A receipt tag never verifies as an envelope tag key or vice versa: the receipt key is used for nothing else.
        const sameBody = sealReceipt({ hmacSha256: (_key, data) => f.primitives.hmacSha256(k.upHmacSha256, data) }, k, windowOf([3]).state());
        throwsCode<ReceiptError>(() => openReceipt(sameBody, k, f.primitives), 'ReceiptError', 'bad-tag', 'tag made with the telemetry MAC key');
      },
    },
  ],
};
