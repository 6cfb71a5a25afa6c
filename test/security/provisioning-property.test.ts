/**
 * Node-only property and fuzz tests of the provisioning record
 * (docs/spec/provisioning.md): random identities round-trip; random bytes
 * of any length, random bytes behind a valid header, random bodies under a
 * matching digest (so the field decoder itself is fuzzed) and mutated
 * records are refused with a typed ProvisioningError or read back exactly,
 * never crash, never read as blank unless every byte is 0xFF; the broker
 * password matches @noble/hashes' HKDF rebuilt from the spec.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { BROKER_HKDF_SALT, BROKER_PASSWORD_LABEL, deriveBrokerPassword, encodeProvisioning, ProvisioningError, readProvisioning, type ProvisioningErrorCode, type ProvisioningIdentity } from '../../firmware/security/provisioning.ts';
import { KEY_1, KEY_2, KEY_3, SAMPLE_BROKER_PASSWORD, sampleIdentity } from './provisioning.cases.ts';

const crypto = createNobleCrypto();
const CODES: readonly ProvisioningErrorCode[] = ['too-short', 'foreign', 'unknown-format', 'newer-format', 'damaged', 'malformed'];

function verdict(bytes: Uint8Array): ProvisioningErrorCode | 'blank' | ProvisioningIdentity {
  try {
    const reading = readProvisioning(crypto, bytes);
    return reading.state === 'blank' ? 'blank' : reading.identity;
  } catch (error) {
    assert.ok(error instanceof ProvisioningError, `not a ProvisioningError: ${String(error)}`);
    assert.ok(CODES.includes(error.code), `unknown code ${error.code}`);
    return error.code;
  }
}

const identities = fc.record({
  deviceId: fc.uint8Array({ minLength: 8, maxLength: 8 }),
  keyId: fc.integer({ min: 0, max: 0xffff_ffff }),
  boardId: fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,62}$/),
  deviceSecret: fc.uint8Array({ minLength: 32, maxLength: 64 }),
  deviceSeed: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  devicePublicKey: fc.constantFrom(KEY_1, KEY_2, KEY_3),
  commandKey: fc.record({ keyId: fc.integer({ min: 0, max: 0xffff_ffff }), publicKey: fc.constantFrom(KEY_1, KEY_2, KEY_3) }),
  consoleKey: fc.option(fc.constantFrom(KEY_1, KEY_2, KEY_3), { nil: undefined }),
  revocationKey: fc.option(fc.constantFrom(KEY_1, KEY_2, KEY_3), { nil: undefined }),
  rootDocument: fc.option(fc.uint8Array({ minLength: 1, maxLength: 2048 }), { nil: undefined }),
  broker: fc.option(fc.record({ host: fc.stringMatching(/^[A-Za-z0-9.:-]{1,253}$/), port: fc.integer({ min: 1, max: 0xffff }) }), { nil: undefined }),
}).map(({ broker, ...rest }): ProvisioningIdentity => ({ ...rest, brokerHost: broker?.host ?? '', brokerPort: broker?.port ?? 0 }));

function sealed(header: Uint8Array, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + body.length + 32);
  out.set(header.subarray(0, 8), 0);
  out[6] = body.length & 0xff;
  out[7] = body.length >>> 8;
  out.set(body, 8);
  out.set(createHash('sha256').update(out.subarray(0, 8 + body.length)).digest(), 8 + body.length);
  return out;
}

describe('provisioning record properties', () => {
  it('random identities round-trip through a 4 KiB image', () => {
    fc.assert(
      fc.property(identities, (id) => {
        const record = encodeProvisioning(crypto, id);
        const image = new Uint8Array(4096).fill(0xff);
        image.set(record, 0);
        const read = verdict(image);
        assert.ok(typeof read === 'object', `read back: ${String(read)}`);
        assert.deepEqual({ ...read, commandKey: { ...read.commandKey } }, { ...id, commandKey: { ...id.commandKey } });
      }),
      { numRuns: 200 },
    );
  });

  it('fuzz: random bytes of any length are refused with a typed error (blank only when all 0xFF)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 5000 }), (bytes) => {
        const v = verdict(bytes);
        assert.ok(typeof v === 'string', 'never provisioned');
        assert.equal(v === 'blank', bytes.length > 0 && bytes.every((b) => b === 0xff));
      }),
      { numRuns: 1000 },
    );
  });

  it('fuzz: random bytes behind a valid magic and version are damaged, too short or malformed, never provisioned', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 4200 }), (tail) => {
        const bytes = new Uint8Array(5 + tail.length);
        bytes.set([0x48, 0x46, 0x50, 0x56, 1], 0);
        bytes.set(tail, 5);
        const v = verdict(bytes);
        assert.ok(v === 'damaged' || v === 'too-short' || v === 'malformed', String(v));
      }),
      { numRuns: 1000 },
    );
  });

  it('fuzz: random bodies under a matching digest exercise the field decoder: malformed or provisioned, nothing else', () => {
    const header = Uint8Array.of(0x48, 0x46, 0x50, 0x56, 1, 0, 0, 0);
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 600 }), (body) => {
        const v = verdict(sealed(header, body));
        assert.ok(v === 'malformed' || typeof v === 'object', String(v));
      }),
      { numRuns: 1000 },
    );
    // Bodies that start as a valid record's and go random from a point: the decoder meets each field boundary.
    const good = encodeProvisioning(crypto, sampleIdentity());
    const goodBody = good.subarray(8, good.length - 32);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: goodBody.length }), fc.uint8Array({ minLength: 0, maxLength: 300 }), (keep, tail) => {
        const body = new Uint8Array(keep + tail.length);
        body.set(goodBody.subarray(0, keep), 0);
        body.set(tail, keep);
        const v = verdict(sealed(header, body));
        assert.ok(v === 'malformed' || typeof v === 'object', String(v));
      }),
      { numRuns: 1000 },
    );
  });

  it('mutations of a valid record (byte overwrites, truncation, extension) are refused or read back unchanged', () => {
    const record = encodeProvisioning(crypto, sampleIdentity());
    const image = new Uint8Array(4096).fill(0xff);
    image.set(record, 0);
    const original = verdict(image);
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 4095 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.integer({ min: 1, max: 4096 }), (writes, length) => {
        const bad = image.slice(0, length);
        for (const [at, value] of writes) if (at < bad.length) bad[at] = value;
        const v = verdict(bad);
        if (typeof v === 'object') assert.deepEqual(v, original, 'a record that still reads must be the same record');
        else assert.notEqual(v, 'blank');
      }),
      { numRuns: 1000 },
    );
  });

  it('broker password: HKDF-SHA-256 (salt "holdfast broker v1", info label || 0 || device id || 0u32), hex', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 64 }), fc.uint8Array({ minLength: 8, maxLength: 8 }), (secret, deviceId) => {
        const info = new Uint8Array([...Buffer.from(BROKER_PASSWORD_LABEL, 'ascii'), 0, ...deviceId, 0, 0, 0, 0]);
        const expected = Buffer.from(hkdf(sha256, secret, Buffer.from(BROKER_HKDF_SALT, 'ascii'), info, 32)).toString('hex');
        assert.equal(deriveBrokerPassword(crypto, secret, deviceId), expected);
      }),
      { numRuns: 100 },
    );
    const id = sampleIdentity();
    const info = new Uint8Array([...Buffer.from(BROKER_PASSWORD_LABEL, 'ascii'), 0, ...id.deviceId, 0, 0, 0, 0]);
    assert.equal(Buffer.from(hkdf(sha256, id.deviceSecret, Buffer.from(BROKER_HKDF_SALT, 'ascii'), info, 32)).toString('hex'), SAMPLE_BROKER_PASSWORD);
  });
});
