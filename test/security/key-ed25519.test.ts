import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, diffieHellman } from 'node:crypto';
import { sha512 } from '@noble/hashes/sha2.js';
import { suite } from './key-ed25519.cases.ts';
import { testInBothEngines } from '../support/engines.ts';
import { ed25519PublicKeyOf, montgomeryPublicKey, x25519WithEd25519 } from '../../firmware/security/key-ed25519.ts';

testInBothEngines(suite, new URL('./key-ed25519.cases.ts', import.meta.url).href);

const b64u = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');

test('key-ed25519: x25519WithEd25519 equals node:crypto X25519 of sha512(seed)[0..32] and u(peer)', () => {
  for (let n = 0; n < 8; n++) {
    const seed = new Uint8Array(32).map((_, i) => (n * 53 + i * 11 + 5) & 0xff);
    const peerSeed = new Uint8Array(32).map((_, i) => (n * 17 + i * 3 + 9) & 0xff);
    const peer = ed25519PublicKeyOf(peerSeed);
    const d = sha512(seed).slice(0, 32);
    const x = montgomeryPublicKey(ed25519PublicKeyOf(seed));
    const privateKey = createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: b64u(d), x: b64u(x) }, format: 'jwk' });
    const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64u(montgomeryPublicKey(peer)) }, format: 'jwk' });
    const want = new Uint8Array(diffieHellman({ privateKey, publicKey }));
    assert.deepEqual(x25519WithEd25519(seed, peer), want, `pair ${n}`);
  }
});
