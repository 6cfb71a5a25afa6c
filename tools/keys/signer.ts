/**
 * Host-side Ed25519 keys and signing for holdfast documents. Seeds come from
 * node:crypto's CSPRNG; signing uses @noble/ed25519 (the same library the
 * firmware verifies with, docs/spec/image-manifest.md).
 */
import { randomBytes } from 'node:crypto';
import * as ed from '@noble/ed25519';
import type { Crypto } from '../../firmware/hal/crypto.ts';
import { configureEd25519, createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { bytesToHex, keyIdOf } from '../../firmware/security/verify.ts';
import { encodeEnvelope, MAX_SIGNATURES } from '../../firmware/update/signed-document.ts';

/** An Ed25519 key pair; `seed` is the 32-byte RFC 8032 secret key. Never print it. */
export interface SecretKey {
  readonly keyId: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly seed: Uint8Array;
}

const state: { crypto?: Crypto } = {};

/** The @noble Crypto HAL, created once per process. */
export function hostCrypto(): Crypto {
  state.crypto ??= createNobleCrypto();
  return state.crypto;
}

export function keyFromSeed(seed: Uint8Array): SecretKey {
  if (seed.length !== 32) throw new RangeError(`an Ed25519 seed is 32 bytes, got ${seed.length}`);
  configureEd25519();
  const publicKey = ed.getPublicKey(seed);
  return Object.freeze({ keyId: keyIdOf(hostCrypto(), publicKey), publicKey, seed: Uint8Array.from(seed) });
}

export function generateKey(): SecretKey {
  return keyFromSeed(new Uint8Array(randomBytes(32)));
}

export function keyIdHex(key: { keyId: Uint8Array }): string {
  return bytesToHex(key.keyId);
}

/** The envelope of `body` signed by each of `keys` (in order). */
export function signEnvelope(body: Uint8Array, keys: readonly SecretKey[]): Uint8Array {
  if (keys.length > MAX_SIGNATURES) throw new RangeError(`${keys.length} signers, an envelope holds at most ${MAX_SIGNATURES} signatures`);
  configureEd25519();
  return encodeEnvelope(
    body,
    keys.map((k) => ({ keyId: k.keyId, signature: ed.sign(body, k.seed) })),
  );
}

export function hexToBytes(hex: string): Uint8Array {
  if (!/^(?:[0-9a-f]{2})*$/i.test(hex)) throw new RangeError('not an even-length hex string');
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}
