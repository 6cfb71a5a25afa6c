/**
 * The primitives the envelope uses, in one injectable object: HMAC-SHA-256
 * and Ed25519 verification from the Crypto HAL (so a target can back them
 * natively), ChaCha20-Poly1305 from the HAL, AES-256-GCM from
 * @noble/ciphers (the HAL has no AES yet). Tests wrap this object to log
 * every (key, nonce) pair an AEAD is asked to use.
 */
import { gcm } from '@noble/ciphers/aes.js';
import type { Crypto } from '../hal/crypto.ts';
import { EnvelopeSuite } from './envelope-format.ts';

export type AeadSuite = typeof EnvelopeSuite.chacha20Poly1305 | typeof EnvelopeSuite.aes256Gcm;

export interface EnvelopePrimitives {
  /** HMAC-SHA-256, 32 bytes. */
  hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array;
  /** Ciphertext followed by the 16-byte tag. */
  aeadSeal(suite: AeadSuite, key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array;
  /** The plaintext, or undefined when the tag fails. Never throws for a bad tag. */
  aeadOpen(suite: AeadSuite, key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array | undefined;
  /** Strict RFC 8032 verification; false for anything malformed. */
  ed25519Verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean;
}

/** The envelope primitives over a Crypto HAL (createNobleCrypto() in tests and the portable build). */
export function envelopePrimitives(crypto: Crypto): EnvelopePrimitives {
  return Object.freeze<EnvelopePrimitives>({
    hmacSha256: (key, data) => crypto.hmacSha256(key, data),
    aeadSeal(suite, key, nonce, plaintext, aad) {
      if (suite === EnvelopeSuite.chacha20Poly1305) return crypto.aeadSeal(key, nonce, plaintext, aad);
      if (suite === EnvelopeSuite.aes256Gcm) return gcm(key, nonce, aad).encrypt(plaintext);
      throw new RangeError(`suite 0x${(suite as number).toString(16)} is not an AEAD`);
    },
    aeadOpen(suite, key, nonce, sealed, aad) {
      if (suite === EnvelopeSuite.chacha20Poly1305) return crypto.aeadOpen(key, nonce, sealed, aad);
      if (suite !== EnvelopeSuite.aes256Gcm) throw new RangeError(`suite 0x${(suite as number).toString(16)} is not an AEAD`);
      try {
        return gcm(key, nonce, aad).decrypt(sealed);
      } catch {
        return undefined;
      }
    },
    ed25519Verify: (signature, message, publicKey) => crypto.ed25519Verify(signature, message, publicKey),
  });
}
