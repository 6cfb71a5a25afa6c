/**
 * Node-only property and fuzz tests of the revocation list
 * (docs/spec/revocation.md): random lists round-trip with their queries;
 * random bytes (also behind a valid header and signer key id) and mutated
 * lists are refused with a typed RevocationError, never crash or open;
 * a re-signed random body opens only when it is canonical.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { isCommandKeyRevoked, isDeviceRevoked, openRevocationList, RevocationError, type RevocationEntry, type RevocationErrorCode } from '../../firmware/security/revocation.ts';
import { FLEET_SEED, publicKeyOf, resign, SAMPLE, signedList } from './revocation.cases.ts';

const crypto = createNobleCrypto();
const KEY = publicKeyOf(FLEET_SEED);
const CODES: readonly RevocationErrorCode[] = ['too-short', 'foreign', 'unknown-format', 'newer-format', 'malformed', 'wrong-signer', 'bad-signature', 'not-newer'];

function verdict(bytes: Uint8Array, last = 0): RevocationErrorCode | 'opened' {
  try {
    openRevocationList(crypto, bytes, KEY, last);
    return 'opened';
  } catch (error) {
    assert.ok(error instanceof RevocationError, `not a RevocationError: ${String(error)}`);
    assert.ok(CODES.includes(error.code));
    return error.code;
  }
}

const deviceId = fc.uint8Array({ minLength: 8, maxLength: 8 });
const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const entry: fc.Arbitrary<RevocationEntry> = fc.oneof(
  deviceId.map((d) => ({ kind: 'device' as const, deviceId: d })),
  fc.tuple(deviceId, u32).map(([d, k]) => ({ kind: 'device-key' as const, deviceId: d, keyId: k })),
  u32.map((k) => ({ kind: 'command-key' as const, keyId: k })),
);
const key = (e: RevocationEntry): string => `${e.kind}/${e.kind === 'command-key' ? '' : Buffer.from(e.deviceId).toString('hex')}/${e.kind === 'device' ? 0 : e.keyId}`;

describe('revocation list properties', () => {
  it('random lists round-trip: every entry is found by its query, in canonical order', () => {
    fc.assert(
      fc.property(fc.uniqueArray(entry, { selector: key, maxLength: 40 }), fc.integer({ min: 1, max: 0xffff_ffff }), (entries, number) => {
        const list = openRevocationList(crypto, signedList({ number, issuedAt: 5, entries }), KEY, number - 1);
        assert.equal(list.number, number);
        assert.deepEqual(list.entries.map(key).sort(), entries.map(key).sort());
        for (const e of entries) {
          if (e.kind === 'command-key') assert.ok(isCommandKeyRevoked(list, e.keyId));
          else if (e.kind === 'device') assert.ok(isDeviceRevoked(list, e.deviceId));
          else assert.ok(isDeviceRevoked(list, e.deviceId, e.keyId));
        }
        assert.equal(verdict(signedList({ number, issuedAt: 5, entries }), number), 'not-newer');
      }),
      { numRuns: 60 },
    );
  });

  it('fuzz: random bytes, and random bytes behind a valid header, never open and never throw anything else', () => {
    const header = signedList(SAMPLE).subarray(0, 16);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 800 }), fc.boolean(), (random, withHeader) => {
        const bytes = withHeader ? new Uint8Array([...header, ...random]) : random;
        assert.notEqual(verdict(bytes), 'opened');
      }),
      { numRuns: 1000 },
    );
  });

  it('mutations of a signed list (byte overwrites, truncation, extension) never open; re-signed random bodies open only when canonical', () => {
    const good = signedList(SAMPLE);
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }), fc.integer({ min: -20, max: 20 }), (writes, grow) => {
        const bytes = grow >= 0 ? new Uint8Array([...good, ...new Uint8Array(grow)]) : good.slice(0, good.length + grow);
        let changed = grow !== 0;
        for (const [at, value] of writes) if (at < bytes.length && bytes[at] !== value) ((bytes[at] = value), (changed = true));
        if (changed) assert.notEqual(verdict(bytes), 'opened');
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 39, maxLength: 39 }), (entries) => {
        const bytes = good.slice();
        bytes.set(entries, 16);
        const v = verdict(resign(bytes));
        assert.ok(v === 'opened' || v === 'malformed', v);
      }),
      { numRuns: 300 },
    );
  });
});
