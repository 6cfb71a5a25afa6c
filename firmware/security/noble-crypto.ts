/**
 * The portable Crypto HAL (firmware/hal/crypto.ts) on the audited,
 * zero-dependency @noble packages: @noble/hashes (SHA-256, SHA-512, HMAC),
 * @noble/ed25519 (verification) and @noble/ciphers (ChaCha20-Poly1305).
 * Checked in Node and in XS 13.3 (test/update/manifest.cases.ts). The
 * Moddable target may wrap it and swap in the ESP32's native SHA-256 for
 * image hashing (1.6 s per MiB in pure JavaScript even on host XS).
 *
 * Ed25519 verification is not noble's `ed.verify`: its first call builds
 * a 4,224-point base table in noble's module state, several times the
 * device's JavaScript heap. `ed25519Verify` goes through an Ed25519Verifier
 * (ed25519-verifier.ts) owned by the returned object: no table by default,
 * or a smaller window table that lives and dies with this instance
 * (docs/design/ram-budget.md has the trade-off).
 *
 * @noble/ed25519 3.x needs a synchronous SHA-512 for its synchronous API
 * (`sign`, used by host tools and tests): `hashes.sha512` must be set first.
 * Setting it is a write to the library's module state, so it is not done at
 * load (firmware rule `top-level-effect`, docs/design/firmware-rules.md) but
 * by `configureEd25519()`, which `createNobleCrypto()` calls; it is
 * idempotent.
 */
import * as ed from '@noble/ed25519';
import { Ed25519Verifier } from './ed25519-verifier.ts';
import { ed25519PublicKeyOf, ed25519SignWith, x25519WithEd25519 } from './key-ed25519.ts';
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { hmac } from '@noble/hashes/hmac.js';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import type { Crypto, Sha256 } from '../hal/crypto.ts';

/** ChaCha20-Poly1305 (RFC 8439): 32-byte key, 12-byte nonce, 16-byte tag. */
export const AEAD_KEY_LENGTH = 32;
export const AEAD_NONCE_LENGTH = 12;
export const AEAD_TAG_LENGTH = 16;

/**
 * Give @noble/ed25519 its synchronous SHA-512 (from @noble/hashes). Safe to
 * call any number of times. Throws if the library's `hashes` object is
 * frozen without a SHA-512 (a preloaded, frozen @noble/ed25519 on Moddable:
 * then the assignment must happen during preload, in the target's setup).
 */
export function configureEd25519(): void {
  if (ed.hashes.sha512 !== undefined) return; // ours, or a SHA-512 the platform installed
  if (Object.isFrozen(ed.hashes)) throw new Error('@noble/ed25519 hashes object is frozen without sha512: configure it before freezing');
  ed.hashes.sha512 = sha512;
}

export interface NobleCryptoOptions {
  /**
   * Ed25519 base-point window: 0 (default) keeps no table; 2..8 builds a
   * table of 2^(w-1) x (ceil(253/w) + 1) points at the first verify, kept
   * as long as the returned Crypto (docs/design/ram-budget.md).
   */
  readonly ed25519BaseWindow?: number;
}

export function createNobleCrypto(options: NobleCryptoOptions = {}): Crypto {
  configureEd25519();
  const verifier = new Ed25519Verifier({ baseWindow: options.ed25519BaseWindow ?? 0 });
  return Object.freeze<Crypto>({
    createSha256(): Sha256 {
      const state = sha256.create();
      let finished = false;
      return {
        update(data: Uint8Array): void {
          if (finished) throw new Error('SHA-256 already finished');
          state.update(data);
        },
        digest(): Uint8Array {
          if (finished) throw new Error('SHA-256 already finished');
          finished = true;
          return state.digest();
        },
      };
    },
    hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
      return hmac(sha256, key, data);
    },
    ed25519Verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
      // Strict RFC 8032 / FIPS 186-5 verification (noble's zip215: false): canonical
      // encodings only, small-order public keys rejected; false for any malformed input.
      return verifier.verify(signature, message, publicKey);
    },
    aeadSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
      checkAeadParameters(key, nonce);
      return chacha20poly1305(key, nonce, aad).encrypt(plaintext);
    },
    aeadOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array | undefined {
      checkAeadParameters(key, nonce);
      if (sealed.length < AEAD_TAG_LENGTH) return undefined;
      try {
        return chacha20poly1305(key, nonce, aad).decrypt(sealed);
      } catch {
        return undefined;
      }
    },
    // Key rotation (key-ed25519.ts): no base table, once per rotation.
    ed25519PublicKey: (seed: Uint8Array): Uint8Array => ed25519PublicKeyOf(seed),
    ed25519Sign: (seed: Uint8Array, message: Uint8Array): Uint8Array => ed25519SignWith(seed, message),
    x25519: (seed: Uint8Array, peer: Uint8Array): Uint8Array => x25519WithEd25519(seed, peer),
  });
}

function checkAeadParameters(key: Uint8Array, nonce: Uint8Array): void {
  if (!(key instanceof Uint8Array) || !(nonce instanceof Uint8Array)) throw new TypeError('AEAD key and nonce must be Uint8Arrays');
  if (key.length !== AEAD_KEY_LENGTH) throw new RangeError(`AEAD key must be ${AEAD_KEY_LENGTH} bytes, got ${key.length}`);
  if (nonce.length !== AEAD_NONCE_LENGTH) throw new RangeError(`AEAD nonce must be ${AEAD_NONCE_LENGTH} bytes, got ${nonce.length}`);
}
