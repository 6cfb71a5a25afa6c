/**
 * The provisioning record (docs/spec/provisioning.md) in Node and in XS: the
 * byte layout, a round trip, a blank partition read as its own state, and
 * every refusal: foreign bytes, format 0, a newer format, each single-bit
 * flip of a record, a torn (truncated) write, a record whose digest
 * matches but whose fields are out of range. The broker password is
 * pinned to a vector (provisioning-property.test.ts rebuilds it with
 * @noble/hashes). Node-only property and fuzz tests:
 * provisioning-property.test.ts.
 */
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import {
  deriveBrokerPassword,
  encodeProvisioning,
  PROVISIONING_FORMAT_VERSION,
  PROVISIONING_HEADER_LENGTH,
  PROVISIONING_PARTITION_LABEL,
  provisioningImage,
  ProvisioningError,
  readProvisioning,
  type ProvisioningErrorCode,
  type ProvisioningIdentity,
} from '../../firmware/security/provisioning.ts';
import { bytesEqual, equal, ok, throws } from '../support/check.ts';
import { throwsCode } from '../support/case-helpers.ts';
import type { CaseSuite } from '../support/cases.ts';

/** RFC 8032 §7.1 test public keys 1..3 (valid, full-order points). */
export const KEY_1 = hexBytes('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a');
export const KEY_2 = hexBytes('3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c');
export const KEY_3 = hexBytes('fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025');

export function hexBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

function filled(length: number, start: number, step: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (start + i * step) & 0xff;
  return out;
}

export function sampleIdentity(overrides: Partial<ProvisioningIdentity> = {}): ProvisioningIdentity {
  return {
    deviceId: Uint8Array.of(0xd1, 0, 0, 0, 0, 0, 0, 0x0a),
    keyId: 1,
    boardId: 'esp32-devkitc',
    deviceSecret: filled(32, 0x11, 7),
    deviceSeed: filled(32, 0x42, 3),
    devicePublicKey: KEY_1,
    commandKey: { keyId: 7, publicKey: KEY_2 },
    consoleKey: KEY_3,
    revocationKey: KEY_1,
    rootDocument: filled(100, 1, 1),
    brokerHost: 'broker.example',
    brokerPort: 8883,
    ...overrides,
  };
}

/** The refusal code of `bytes`, 'blank', or 'provisioned'. */
export function verdictOf(bytes: Uint8Array): ProvisioningErrorCode | 'blank' | 'provisioned' {
  try {
    return readProvisioning(createNobleCrypto(), bytes).state;
  } catch (error) {
    if (error instanceof ProvisioningError) return error.code;
    throw error;
  }
}

function sameIdentity(actual: ProvisioningIdentity, expected: ProvisioningIdentity, what: string): void {
  bytesEqual(actual.deviceId, expected.deviceId, `${what}: device id`);
  equal(actual.keyId, expected.keyId, `${what}: key id`);
  equal(actual.boardId, expected.boardId, `${what}: board id`);
  bytesEqual(actual.deviceSecret, expected.deviceSecret, `${what}: secret`);
  bytesEqual(actual.deviceSeed, expected.deviceSeed, `${what}: seed`);
  bytesEqual(actual.devicePublicKey, expected.devicePublicKey, `${what}: device public key`);
  equal(actual.commandKey.keyId, expected.commandKey.keyId, `${what}: command key id`);
  bytesEqual(actual.commandKey.publicKey, expected.commandKey.publicKey, `${what}: command key`);
  equal(actual.consoleKey === undefined, expected.consoleKey === undefined, `${what}: console key present`);
  if (actual.consoleKey !== undefined && expected.consoleKey !== undefined) bytesEqual(actual.consoleKey, expected.consoleKey, `${what}: console key`);
  equal(actual.revocationKey === undefined, expected.revocationKey === undefined, `${what}: revocation key present`);
  if (actual.revocationKey !== undefined && expected.revocationKey !== undefined) bytesEqual(actual.revocationKey, expected.revocationKey, `${what}: revocation key`);
  equal(actual.rootDocument === undefined, expected.rootDocument === undefined, `${what}: root present`);
  if (actual.rootDocument !== undefined && expected.rootDocument !== undefined) bytesEqual(actual.rootDocument, expected.rootDocument, `${what}: root`);
  equal(actual.brokerHost, expected.brokerHost, `${what}: broker host`);
  equal(actual.brokerPort, expected.brokerPort, `${what}: broker port`);
}

/** Re-seal a record after editing its bytes (so the digest matches): for the malformed cases. */
function reseal(record: Uint8Array): Uint8Array {
  const crypto = createNobleCrypto();
  const bodyLength = record[6] | (record[7] << 8);
  const hash = crypto.createSha256();
  hash.update(record.subarray(0, PROVISIONING_HEADER_LENGTH + bodyLength));
  const out = record.slice(0, PROVISIONING_HEADER_LENGTH + bodyLength + 32);
  out.set(hash.digest(), PROVISIONING_HEADER_LENGTH + bodyLength);
  return out;
}

/** Broker password of sampleIdentity(): pinned (the property test rebuilds it with @noble/hashes' HKDF). */
export const SAMPLE_BROKER_PASSWORD = '2f12bc9bcc899630c30467ef9e531e7d9d3584bed0720c92d76d7af026f02e1a';

export const suite: CaseSuite = {
  name: 'provisioning record',
  cases: [
    {
      name: 'layout: HFPV, format version, flags 0, body length, fields in order, SHA-256 last',
      run() {
        const crypto = createNobleCrypto();
        const id = sampleIdentity();
        const record = encodeProvisioning(crypto, id);
        bytesEqual(record.subarray(0, 4), Uint8Array.of(0x48, 0x46, 0x50, 0x56), 'magic');
        equal(record[4], PROVISIONING_FORMAT_VERSION, 'format version');
        equal(PROVISIONING_FORMAT_VERSION, 1, 'format 1');
        equal(record[5], 0, 'flags');
        const body = 8 + 4 + 1 + 13 + 1 + 32 + 32 + 32 + 4 + 32 + 1 + 32 + 1 + 32 + 2 + 100 + 1 + 14 + 2;
        equal(record[6] | (record[7] << 8), body, 'body length');
        equal(record.length, 8 + body + 32, 'record length');
        bytesEqual(record.subarray(8, 16), id.deviceId, 'device id first');
        bytesEqual(record.subarray(16, 20), Uint8Array.of(1, 0, 0, 0), 'key id u32 LE');
        equal(record[20], 13, 'board id length');
        equal(record[34], 32, 'secret length');
        bytesEqual(record.subarray(35, 67), id.deviceSecret, 'secret');
        const hash = crypto.createSha256();
        hash.update(record.subarray(0, 8 + body));
        bytesEqual(record.subarray(8 + body), hash.digest(), 'digest over header and body');
        equal(PROVISIONING_PARTITION_LABEL, 'hf_prov', 'partition label');
      },
    },
    {
      name: 'round trip: the image of a 4 KiB partition reads back every field; without console key, root and broker too',
      run() {
        const crypto = createNobleCrypto();
        for (const id of [sampleIdentity(), sampleIdentity({ consoleKey: undefined, revocationKey: undefined, rootDocument: undefined, brokerHost: '', brokerPort: 0, deviceSecret: filled(64, 9, 5), keyId: 0xffff_ffff })]) {
          const image = provisioningImage(crypto, id, 4096);
          equal(image.length, 4096, 'image length');
          equal(image[4095], 0xff, 'padded with 0xFF');
          const reading = readProvisioning(crypto, image);
          ok(reading.state === 'provisioned', 'provisioned');
          if (reading.state === 'provisioned') {
            sameIdentity(reading.identity, id, 'image');
            equal(reading.recordLength, encodeProvisioning(crypto, id).length, 'record length');
          }
        }
      },
    },
    {
      name: 'blank: an erased partition is its own reading; all zeros, garbage and a lone 0xFF-headed record are refused',
      run() {
        equal(verdictOf(new Uint8Array(4096).fill(0xff)), 'blank', 'erased 4 KiB');
        equal(verdictOf(new Uint8Array(64).fill(0xff)), 'blank', 'erased prefix');
        equal(verdictOf(new Uint8Array(4096)), 'foreign', 'zeros');
        const almost = new Uint8Array(4096).fill(0xff);
        almost[4000] = 0xfe;
        equal(verdictOf(almost), 'foreign', 'one programmed bit past the header is not blank');
        equal(verdictOf(new Uint8Array(0)), 'too-short', 'no bytes');
        equal(verdictOf(Uint8Array.of(0x48, 0x46, 0x50, 0x56, 1, 0, 0, 0)), 'too-short', 'a header alone');
        equal(verdictOf(filled(4096, 0x48, 37)), 'foreign', 'garbage');
      },
    },
    {
      name: 'format version: 0 is unknown, 2 and 255 are newer (checked before the digest), never blank',
      run() {
        const record = encodeProvisioning(createNobleCrypto(), sampleIdentity());
        for (const [version, code] of [[0, 'unknown-format'], [2, 'newer-format'], [255, 'newer-format']] as const) {
          const edited = record.slice();
          edited[4] = version;
          throwsCode<ProvisioningError>(() => readProvisioning(createNobleCrypto(), edited), 'ProvisioningError', code, `version ${version}`);
          equal(verdictOf(reseal(edited)), code, `version ${version}, resealed`);
        }
      },
    },
    {
      name: 'damage: every single-bit flip in the record is refused (foreign, unknown or newer format, damaged); none reads as provisioned or blank',
      run() {
        const record = encodeProvisioning(createNobleCrypto(), sampleIdentity());
        const image = new Uint8Array(4096).fill(0xff);
        image.set(record, 0);
        let flips = 0;
        for (let at = 0; at < record.length; at++) {
          for (const bit of [0x01, 0x80]) {
            const bad = image.slice();
            bad[at] ^= bit;
            const verdict = verdictOf(bad);
            const expected = at < 4 ? 'foreign' : at === 4 ? (bad[4] === 0 ? 'unknown-format' : 'newer-format') : 'damaged';
            equal(verdict, expected, `flip 0x${bit.toString(16)} at ${at}`);
            flips += 1;
          }
        }
        return { flips };
      },
    },
    {
      name: 'torn write: a record cut at any byte (the rest still erased) is refused, never blank or provisioned',
      run() {
        const record = encodeProvisioning(createNobleCrypto(), sampleIdentity());
        for (let cut = 1; cut < record.length; cut += 7) {
          const image = new Uint8Array(4096).fill(0xff);
          image.set(record.subarray(0, cut), 0);
          const verdict = verdictOf(image);
          ok(verdict !== 'provisioned' && verdict !== 'blank', `cut at ${cut}: ${verdict}`);
        }
      },
    },
    {
      name: 'malformed: a matching digest over out-of-range fields, flags or trailing bytes is refused',
      run() {
        const crypto = createNobleCrypto();
        const record = encodeProvisioning(crypto, sampleIdentity());
        const edit = (at: number, value: number): Uint8Array => {
          const out = record.slice();
          out[at] = value;
          return reseal(out);
        };
        equal(verdictOf(edit(5, 1)), 'malformed', 'flags 1');
        equal(verdictOf(edit(20, 0)), 'malformed', 'board id of 0 bytes');
        equal(verdictOf(edit(21, 0x41)), 'malformed', 'board id with an upper-case letter');
        equal(verdictOf(edit(34, 31)), 'malformed', 'secret of 31 bytes');
        equal(verdictOf(edit(34, 65)), 'malformed', 'secret of 65 bytes');
        // Device public key (at 8+8+4+1+13+1+32+32 = 99): a small-order point (the identity, 01 00..00).
        const small = record.slice();
        small.set(new Uint8Array(32), 99);
        small[99] = 1;
        equal(verdictOf(reseal(small)), 'malformed', 'small-order device public key');
        // Body longer by one byte: trailing data after the broker port.
        const bodyLength = record[6] | (record[7] << 8);
        const longer = new Uint8Array(record.length + 1);
        longer.set(record.subarray(0, 8 + bodyLength), 0);
        longer[6] = (bodyLength + 1) & 0xff;
        longer[7] = (bodyLength + 1) >>> 8;
        equal(verdictOf(reseal(longer)), 'malformed', 'a byte after the last field');
        // Body shorter by one byte: the broker port runs past the end.
        const shorter = record.slice();
        shorter[6] = (bodyLength - 1) & 0xff;
        shorter[7] = (bodyLength - 1) >>> 8;
        equal(verdictOf(reseal(shorter)), 'malformed', 'the last field cut');
        // A length that does not fit the bytes given.
        const huge = record.slice();
        huge[6] = 0xff;
        huge[7] = 0x0f;
        equal(verdictOf(huge), 'damaged', 'body length past the partition');
      },
    },
    {
      name: 'the encoder refuses what the reader would refuse; error messages never hold the secret',
      run() {
        const crypto = createNobleCrypto();
        throws(() => encodeProvisioning(crypto, sampleIdentity({ deviceSecret: new Uint8Array(31) })), 'RangeError', 'short secret');
        throws(() => encodeProvisioning(crypto, sampleIdentity({ deviceId: new Uint8Array(7) })), 'RangeError', 'short device id');
        throws(() => encodeProvisioning(crypto, sampleIdentity({ boardId: 'Bad Board' })), 'RangeError', 'board id');
        throws(() => encodeProvisioning(crypto, sampleIdentity({ brokerHost: 'h', brokerPort: 0 })), 'RangeError', 'host without port');
        throws(() => encodeProvisioning(crypto, sampleIdentity({ commandKey: { keyId: 1, publicKey: new Uint8Array(32) } })), 'RangeError', 'zero command key');
        throws(() => encodeProvisioning(crypto, sampleIdentity({ rootDocument: new Uint8Array(2049) })), 'RangeError', 'root too long');
        throws(() => provisioningImage(crypto, sampleIdentity(), 100), 'RangeError', 'partition too small');
        const record = encodeProvisioning(crypto, sampleIdentity());
        record[34] = 10;
        const error = throws(() => readProvisioning(crypto, reseal(record)), 'ProvisioningError', 'malformed');
        ok(!error.message.includes('1118'), 'no secret bytes in the message');
      },
    },
    {
      name: 'broker password: 64 hex digits, bound to the device id and the secret, the pinned vector',
      run() {
        const crypto = createNobleCrypto();
        const id = sampleIdentity();
        const password = deriveBrokerPassword(crypto, id.deviceSecret, id.deviceId);
        ok(/^[0-9a-f]{64}$/.test(password), 'hex');
        equal(password, SAMPLE_BROKER_PASSWORD, 'vector');
        ok(deriveBrokerPassword(crypto, id.deviceSecret, Uint8Array.of(0xd1, 0, 0, 0, 0, 0, 0, 0x0b)) !== password, 'another device');
        ok(deriveBrokerPassword(crypto, filled(32, 0x12, 7), id.deviceId) !== password, 'another secret');
        throws(() => deriveBrokerPassword(crypto, new Uint8Array(8), id.deviceId), 'RangeError', 'short secret');
      },
    },
  ],
};
