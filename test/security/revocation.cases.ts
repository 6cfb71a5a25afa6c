/**
 * The signed revocation list (docs/spec/revocation.md) in Node and in XS:
 * layout, a round trip with queries (device, device key, command key),
 * and every refusal: another signer, a flipped bit anywhere (signature or
 * structure), a newer or unknown format, foreign bytes, an older or equal
 * number, entries out of canonical order or of an unknown kind (even when
 * correctly signed), a truncated list. Node-only property tests:
 * revocation-property.test.ts.
 */
import * as ed from '@noble/ed25519';
import { configureEd25519, createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import {
  encodeRevocationBody,
  isCommandKeyRevoked,
  isDeviceRevoked,
  openRevocationList,
  REVOCATION_ENTRY_LENGTH,
  REVOCATION_FORMAT_VERSION,
  REVOCATION_HEADER_LENGTH,
  RevocationError,
  sealRevocationList,
  type RevocationErrorCode,
  type RevocationList,
} from '../../firmware/security/revocation.ts';
import { bytesEqual, equal, ok, throws } from '../support/check.ts';
import type { CaseSuite } from '../support/cases.ts';

export const FLEET_SEED = Uint8Array.from({ length: 32 }, (_, i) => (i * 13 + 5) & 0xff);
export const OTHER_SEED = Uint8Array.from({ length: 32 }, (_, i) => (i * 7 + 1) & 0xff);
export const DEV_A = Uint8Array.of(0xa0, 0, 0, 0, 0, 0, 0, 0xa1);
export const DEV_B = Uint8Array.of(0xb0, 0, 0, 0, 0, 0, 0, 0xb2);

export function publicKeyOf(seed: Uint8Array): Uint8Array {
  configureEd25519();
  return ed.getPublicKey(seed);
}

/** A list signed by `seed` (default: the fleet key). */
export function signedList(list: RevocationList, seed: Uint8Array = FLEET_SEED): Uint8Array {
  configureEd25519();
  const body = encodeRevocationBody(createNobleCrypto(), list, ed.getPublicKey(seed));
  return sealRevocationList(body, ed.sign(body, seed));
}

/** Re-sign edited bytes (everything but the signature) with the fleet key: structure refusals behind a valid signature. */
export function resign(bytes: Uint8Array, seed: Uint8Array = FLEET_SEED): Uint8Array {
  configureEd25519();
  const body = bytes.slice(0, bytes.length - 64);
  return sealRevocationList(body, ed.sign(body, seed));
}

export const SAMPLE: RevocationList = {
  number: 7,
  issuedAt: 1_790_000_000,
  entries: [
    { kind: 'command-key', keyId: 3 },
    { kind: 'device-key', deviceId: DEV_B, keyId: 1 },
    { kind: 'device', deviceId: DEV_A },
  ],
};

export function verdictOf(bytes: Uint8Array, last = 0, key: Uint8Array = publicKeyOf(FLEET_SEED)): RevocationErrorCode | 'opened' {
  try {
    openRevocationList(createNobleCrypto(), bytes, key, last);
    return 'opened';
  } catch (error) {
    if (error instanceof RevocationError) return error.code;
    throw error;
  }
}

export const suite: CaseSuite = {
  name: 'revocation list',
  cases: [
    {
      name: 'layout: HFRL, version, count, number, issued-at, 13-byte entries sorted by kind then id, signer key id, signature',
      run() {
        const bytes = signedList(SAMPLE);
        equal(bytes.length, REVOCATION_HEADER_LENGTH + 3 * REVOCATION_ENTRY_LENGTH + 8 + 64, 'length');
        bytesEqual(bytes.subarray(0, 4), Uint8Array.of(0x48, 0x46, 0x52, 0x4c), 'magic');
        equal(bytes[4], REVOCATION_FORMAT_VERSION, 'version');
        equal(REVOCATION_FORMAT_VERSION, 1, 'format 1');
        equal(bytes[6] | (bytes[7] << 8), 3, 'count');
        bytesEqual(bytes.subarray(8, 12), Uint8Array.of(7, 0, 0, 0), 'number u32 LE');
        equal([bytes[16], bytes[29], bytes[42]].join(','), '1,2,3', 'sorted: device, device key, command key');
        bytesEqual(bytes.subarray(17, 25), DEV_A, 'device entry id');
        const crypto = createNobleCrypto();
        const hash = crypto.createSha256();
        hash.update(publicKeyOf(FLEET_SEED));
        bytesEqual(bytes.subarray(55, 63), hash.digest().subarray(0, 8), 'signer key id');
      },
    },
    {
      name: 'round trip and queries: a revoked device (every key), a revoked device key, a revoked command key',
      run() {
        const list = openRevocationList(createNobleCrypto(), signedList(SAMPLE), publicKeyOf(FLEET_SEED), 6);
        equal(list.number, 7, 'number');
        equal(list.issuedAt, 1_790_000_000, 'issued at');
        equal(list.entries.length, 3, 'entries');
        ok(isDeviceRevoked(list, DEV_A), 'device A');
        ok(isDeviceRevoked(list, DEV_A, 9), 'device A, any key');
        ok(!isDeviceRevoked(list, DEV_B), 'device B is not revoked as a whole');
        ok(isDeviceRevoked(list, DEV_B, 1), 'device B key 1');
        ok(!isDeviceRevoked(list, DEV_B, 2), 'device B key 2');
        ok(isCommandKeyRevoked(list, 3), 'command key 3');
        ok(!isCommandKeyRevoked(list, 4), 'command key 4');
        const empty = openRevocationList(createNobleCrypto(), signedList({ number: 1, issuedAt: 0, entries: [] }), publicKeyOf(FLEET_SEED));
        equal(empty.entries.length, 0, 'an empty list');
      },
    },
    {
      name: 'numbers: an older or equal list is not-newer, a newer one opens',
      run() {
        const bytes = signedList(SAMPLE);
        equal(verdictOf(bytes, 7), 'not-newer', 'equal');
        equal(verdictOf(bytes, 8), 'not-newer', 'older');
        equal(verdictOf(bytes, 6), 'opened', 'newer');
        equal(verdictOf(bytes, 0), 'opened', 'first');
      },
    },
    {
      name: 'signer: another key is wrong-signer; the right key id over another key\'s signature is bad-signature',
      run() {
        equal(verdictOf(signedList(SAMPLE, OTHER_SEED)), 'wrong-signer', 'other key');
        const forged = signedList(SAMPLE, OTHER_SEED);
        const right = signedList(SAMPLE);
        forged.set(right.subarray(55, 63), 55);
        equal(verdictOf(forged), 'bad-signature', 'right key id, wrong signature');
      },
    },
    {
      name: 'damage: every single-bit flip is refused (foreign, format, malformed, wrong signer, bad signature), never opened',
      run() {
        const bytes = signedList(SAMPLE);
        let flips = 0;
        for (let at = 0; at < bytes.length; at++) {
          const bad = bytes.slice();
          bad[at] ^= 1 << (at % 8);
          const v = verdictOf(bad);
          const expected = at < 4 ? 'foreign' : at === 4 ? 'newer-format' : at === 6 || at === 7 ? 'malformed' : at >= 55 && at < 63 ? 'wrong-signer' : 'bad-signature';
          equal(v, expected, `flip at ${at}`);
          flips += 1;
        }
        equal(verdictOf(bytes.subarray(0, bytes.length - 1)), 'malformed', 'truncated');
        equal(verdictOf(bytes.subarray(0, 40)), 'too-short', 'too short');
        equal(verdictOf(new Uint8Array(200).fill(0xff)), 'foreign', 'erased');
        return { flips };
      },
    },
    {
      name: 'format: version 0 unknown, 2 newer (before the signature is checked)',
      run() {
        const bytes = signedList(SAMPLE);
        bytes[4] = 0;
        equal(verdictOf(bytes), 'unknown-format', 'version 0');
        bytes[4] = 2;
        equal(verdictOf(bytes), 'newer-format', 'version 2');
      },
    },
    {
      name: 'structure behind a valid signature: flags, number 0, unsorted or duplicate entries, unknown kind, a device entry with a key id, a command entry with a device id',
      run() {
        const base = signedList(SAMPLE);
        const edit = (change: (b: Uint8Array) => void): Uint8Array => {
          const b = base.slice();
          change(b);
          return resign(b);
        };
        equal(verdictOf(edit((b) => (b[5] = 1))), 'malformed', 'flags');
        equal(verdictOf(edit((b) => b.fill(0, 8, 12))), 'malformed', 'number 0');
        equal(verdictOf(edit((b) => b.copyWithin(29, 16, 29))), 'malformed', 'duplicate entry');
        equal(verdictOf(edit((b) => { const first = b.slice(16, 29); b.copyWithin(16, 29, 42); b.set(first, 29); })), 'malformed', 'unsorted');
        equal(verdictOf(edit((b) => (b[42] = 9))), 'malformed', 'unknown kind');
        equal(verdictOf(edit((b) => (b[25] = 1))), 'malformed', 'device entry with a key id');
        equal(verdictOf(edit((b) => (b[43] = 1))), 'malformed', 'command entry with a device id');
        throws(() => encodeRevocationBody(createNobleCrypto(), { ...SAMPLE, entries: [SAMPLE.entries[0], SAMPLE.entries[0]] }, publicKeyOf(FLEET_SEED)), 'RangeError', 'duplicate refused by the encoder');
        throws(() => encodeRevocationBody(createNobleCrypto(), { ...SAMPLE, number: 0 }, publicKeyOf(FLEET_SEED)), 'RangeError', 'number 0 refused by the encoder');
      },
    },
  ],
};
