/**
 * The device's rotation-only key operations (firmware/security/key-ed25519.ts)
 * in Node and in XS: signatures byte-identical to @noble/ed25519's
 * `sign` (RFC 8032 is deterministic) and verified by the device's own strict
 * verifier; public keys identical to noble's; X25519 symmetric between the
 * two sides (device seed with the authority's public key and back), refusing
 * small-order and malformed peers; RFC 8032 test 1 and 2 vectors. The XS
 * meter of the "one signature" case is the figure docs/design/ram-budget.md
 * quotes. node:crypto's X25519 is the independent reference in
 * key-ed25519.test.ts (Node only).
 */
import * as ed from '@noble/ed25519';
import { configureEd25519, createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { ed25519PublicKeyOf, ed25519SignWith, x25519WithEd25519 } from '../../firmware/security/key-ed25519.ts';
import { bytesEqual, equal, ok, throws } from '../support/check.ts';
import type { CaseSuite } from '../support/cases.ts';

function hex(text: string): Uint8Array {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function seedOf(n: number): Uint8Array {
  const seed = new Uint8Array(32);
  for (let i = 0; i < 32; i++) seed[i] = (n * 31 + i * 7 + 1) & 0xff;
  return seed;
}

/** RFC 8032 section 7.1, TEST 1 and TEST 2. */
const RFC8032 = [
  {
    seed: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
    publicKey: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    message: '',
    signature: 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
  },
  {
    seed: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
    publicKey: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
    message: '72',
    signature: '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
  },
] as const;

export const suite: CaseSuite = {
  name: 'key-ed25519',
  cases: [
    {
      name: 'RFC 8032 vectors: public key and signature',
      run() {
        for (const v of RFC8032) {
          bytesEqual(ed25519PublicKeyOf(hex(v.seed)), hex(v.publicKey), `public key of ${v.seed.slice(0, 8)}`);
          bytesEqual(ed25519SignWith(hex(v.seed), hex(v.message)), hex(v.signature), `signature of ${v.seed.slice(0, 8)}`);
        }
      },
    },
    {
      name: 'signatures equal noble sign and verify under the strict verifier',
      run() {
        configureEd25519();
        const crypto = createNobleCrypto();
        for (let n = 0; n < 4; n++) {
          const seed = seedOf(n);
          const message = new Uint8Array(n * 37).fill(n);
          const signature = ed25519SignWith(seed, message);
          bytesEqual(signature, ed.sign(message, seed), `seed ${n}`);
          bytesEqual(ed25519PublicKeyOf(seed), ed.getPublicKey(seed), `public key ${n}`);
          ok(crypto.ed25519Verify(signature, message, ed25519PublicKeyOf(seed)), `verifies ${n}`);
          const tampered = message.length > 0 ? message.slice() : new Uint8Array(1);
          tampered[0] ^= 1;
          ok(!crypto.ed25519Verify(signature, tampered, ed25519PublicKeyOf(seed)), `tampered ${n} refused`);
        }
      },
    },
    {
      name: 'the HAL exposes sign, public key and x25519',
      run() {
        const crypto = createNobleCrypto();
        const seed = seedOf(9);
        ok(crypto.ed25519Sign !== undefined && crypto.ed25519PublicKey !== undefined && crypto.x25519 !== undefined, 'present');
        bytesEqual(crypto.ed25519PublicKey(seed), ed25519PublicKeyOf(seed), 'public key');
        bytesEqual(crypto.ed25519Sign(seed, new Uint8Array([1, 2])), ed25519SignWith(seed, new Uint8Array([1, 2])), 'signature');
      },
    },
    {
      name: 'one signature (the XS meter of this case is the cost of a rotation signature)',
      run() {
        const signature = ed25519SignWith(seedOf(3), new Uint8Array(80).fill(7));
        equal(signature.length, 64, 'length');
      },
    },
    {
      name: 'one X25519 (the XS meter of this case is the cost of the rotation secret)',
      run() {
        const shared = x25519WithEd25519(seedOf(3), ed25519PublicKeyOf(seedOf(4)));
        equal(shared.length, 32, 'length');
      },
    },
    {
      name: 'X25519 is symmetric: device and authority compute the same secret',
      run() {
        for (let n = 0; n < 3; n++) {
          const device = seedOf(10 + n);
          const authority = seedOf(20 + n);
          const a = x25519WithEd25519(device, ed25519PublicKeyOf(authority));
          const b = x25519WithEd25519(authority, ed25519PublicKeyOf(device));
          bytesEqual(a, b, `pair ${n}`);
          const c = x25519WithEd25519(device, ed25519PublicKeyOf(seedOf(30 + n)));
          ok(c.some((x, i) => x !== a[i]), `another authority gives another secret ${n}`);
        }
      },
    },
    {
      name: 'X25519 refuses a small-order, malformed or short peer',
      run() {
        const seed = seedOf(1);
        const identity = new Uint8Array(32);
        identity[0] = 1;
        throws(() => x25519WithEd25519(seed, identity), 'RangeError', 'identity', 'small-order');
        const order2 = new Uint8Array(32).fill(0);
        order2[0] = 0xec;
        for (let i = 1; i < 31; i++) order2[i] = 0xff;
        order2[31] = 0x7f;
        throws(() => x25519WithEd25519(seed, order2), 'RangeError', 'order 2', 'small-order');
        const notOnCurve = new Uint8Array(32);
        notOnCurve[0] = 2;
        throws(() => x25519WithEd25519(seed, notOnCurve), 'RangeError', 'not a point');
        throws(() => x25519WithEd25519(seed, new Uint8Array(31)), 'RangeError', 'short');
        throws(() => x25519WithEd25519(new Uint8Array(31), ed25519PublicKeyOf(seed)), 'RangeError', 'short seed');
      },
    },
  ],
};
