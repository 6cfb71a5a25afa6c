/**
 * The @noble Crypto HAL against Node's OpenSSL (a differential oracle):
 * Ed25519 both ways, SHA-256, HMAC-SHA-256 and ChaCha20-Poly1305 on random
 * inputs.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as nodeCrypto from 'node:crypto';
import fc from 'fast-check';
import * as ed from '@noble/ed25519';
import { configureEd25519, createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { ed25519PublicKeyProblem } from '../../firmware/security/ed25519-key.ts';

const crypto = createNobleCrypto();

function rawPublicKey(key: nodeCrypto.KeyObject): Uint8Array {
  return new Uint8Array(Buffer.from(key.export({ format: 'jwk' }).x as string, 'base64url'));
}

describe('noble Crypto HAL against node:crypto', () => {
  it('Ed25519: OpenSSL signatures verify, mutated ones do not', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), (message, flip) => {
        const { publicKey, privateKey } = nodeCrypto.generateKeyPairSync('ed25519');
        const signature = new Uint8Array(nodeCrypto.sign(null, message, privateKey));
        const pub = rawPublicKey(publicKey);
        assert.equal(crypto.ed25519Verify(signature, message, pub), true);
        const bad = signature.slice();
        bad[flip % 64] ^= 1 << (flip % 8);
        assert.equal(crypto.ed25519Verify(bad, message, pub), nodeCrypto.verify(null, message, publicKey, bad));
        assert.equal(crypto.ed25519Verify(bad, message, pub), false);
      }),
      { numRuns: 100 },
    );
  });

  it('Ed25519: @noble signatures (the CLI signs with them) verify in OpenSSL', () => {
    configureEd25519();
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 300 }), (seed, message) => {
        const pub = ed.getPublicKey(seed);
        const signature = ed.sign(message, seed);
        const key = nodeCrypto.createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(pub).toString('base64url') }, format: 'jwk' });
        assert.equal(nodeCrypto.verify(null, message, key, signature), true);
      }),
      { numRuns: 100 },
    );
  });

  it('SHA-256 and HMAC-SHA-256 match', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.uint8Array({ maxLength: 100 }), (data, key) => {
        const h = crypto.createSha256();
        h.update(data.subarray(0, data.length >> 1));
        h.update(data.subarray(data.length >> 1));
        assert.deepEqual(h.digest(), new Uint8Array(nodeCrypto.createHash('sha256').update(data).digest()));
        assert.deepEqual(crypto.hmacSha256(key, data), new Uint8Array(nodeCrypto.createHmac('sha256', key).update(data).digest()));
      }),
      { numRuns: 200 },
    );
  });

  it('ChaCha20-Poly1305 matches and opens what OpenSSL seals', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 12, maxLength: 12 }), fc.uint8Array({ maxLength: 500 }), fc.uint8Array({ maxLength: 40 }), (key, nonce, plaintext, aad) => {
        const cipher = nodeCrypto.createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
        cipher.setAAD(aad, { plaintextLength: plaintext.length });
        const expected = new Uint8Array(Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]));
        assert.deepEqual(crypto.aeadSeal(key, nonce, plaintext, aad), expected);
        assert.deepEqual(crypto.aeadOpen(key, nonce, expected, aad), plaintext);
      }),
      { numRuns: 200 },
    );
  });

  it('argument errors: wrong AEAD key or nonce length is a RangeError, a used SHA-256 refuses more data', () => {
    assert.throws(() => crypto.aeadSeal(new Uint8Array(31), new Uint8Array(12), new Uint8Array(1), new Uint8Array(0)), RangeError);
    assert.throws(() => crypto.aeadOpen(new Uint8Array(32), new Uint8Array(8), new Uint8Array(20), new Uint8Array(0)), RangeError);
    const h = crypto.createSha256();
    h.digest();
    assert.throws(() => h.update(new Uint8Array(1)), /finished/);
  });

  it('configureEd25519 is idempotent and keeps a SHA-512 that is already there', () => {
    const before = ed.hashes.sha512;
    configureEd25519();
    configureEd25519();
    assert.equal(ed.hashes.sha512, before);
  });
});

describe('root key checks (firmware/security/ed25519-key.ts, docs/spec/root.md "Key checks")', () => {
  const P = 2n ** 255n - 19n;
  const yOf = (bytes: Uint8Array) => {
    let y = 0n;
    for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(i === 31 ? bytes[i] & 0x7f : bytes[i]);
    return y;
  };

  it('every key OpenSSL generates is accepted', () => {
    for (let i = 0; i < 200; i++) {
      const pub = rawPublicKey(nodeCrypto.generateKeyPairSync('ed25519').publicKey);
      assert.equal(ed25519PublicKeyProblem(pub), undefined);
    }
  });

  it('random 32 bytes: refused exactly when non-canonical, off the curve, or of small order', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.boolean(), (bytes, nearPrime) => {
        if (nearPrime) {
          // Put y within 32 of p so the y >= p boundary is exercised.
          bytes.fill(0xff, 1, 31);
          bytes[31] |= 0x7f;
          bytes[0] = 0xd0 + (bytes[0] & 0x3f);
        }
        const y = yOf(bytes);
        const sign = (bytes[31] & 0x80) !== 0;
        let expected: boolean;
        if (y >= P) expected = false;
        else {
          let point: ed.Point | undefined;
          try {
            point = ed.Point.fromBytes(bytes, true); // lenient decoding, then our own canonical and order rules
          } catch {
            point = undefined;
          }
          if (point === undefined) expected = false;
          else if (point.x === 0n && sign) expected = false;
          else expected = !point.isSmallOrder();
        }
        assert.equal(ed25519PublicKeyProblem(bytes) === undefined, expected, Buffer.from(bytes).toString('hex'));
      }),
      { numRuns: 3000 },
    );
  });

  it('a mixed-order key (a valid key plus a torsion point) is not refused: the documented limit', () => {
    configureEd25519();
    const pub = ed.Point.fromBytes(ed.getPublicKey(new Uint8Array(32).fill(9)));
    const torsion = ed.Point.fromBytes(Buffer.from('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a', 'hex'));
    const mixed = pub.add(torsion).toBytes();
    assert.equal(ed25519PublicKeyProblem(mixed), undefined);
    assert.equal(ed.Point.fromBytes(mixed).isTorsionFree(), false);
  });
});
