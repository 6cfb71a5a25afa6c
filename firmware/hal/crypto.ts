/**
 * Cryptographic primitives. The pure-JavaScript @noble implementation is the
 * portable reference; the Moddable target maps SHA-256 onto the ESP32's
 * native engine (hashing a 1.5 MiB image in pure JavaScript is too slow on
 * the device: 1.6 s per MiB even in host XS, docs/design/crypto.md).
 */
export interface Sha256 {
  update(data: Uint8Array): void;
  /** Final 32-byte digest; the object cannot be used afterwards. */
  digest(): Uint8Array;
}

export interface Crypto {
  createSha256(): Sha256;
  /** HMAC-SHA-256 of `data` under `key`, 32 bytes. */
  hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array;
  /** Ed25519 signature check; false for any malformed input, never throws. */
  ed25519Verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean;
  /** ChaCha20-Poly1305 seal: ciphertext followed by a 16-byte tag. */
  aeadSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array;
  /** ChaCha20-Poly1305 open: the plaintext, or undefined if the tag fails. */
  aeadOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array | undefined;
  /**
   * Key rotation only (docs/spec/key-rotation.md); optional: a Crypto
   * without them leaves rotation unavailable (the command is refused).
   * The Ed25519 public key (32 bytes) of a 32-byte RFC 8032 seed.
   */
  ed25519PublicKey?(seed: Uint8Array): Uint8Array;
  /** RFC 8032 Ed25519 signature (64 bytes) of `message` by `seed`. */
  ed25519Sign?(seed: Uint8Array, message: Uint8Array): Uint8Array;
  /**
   * X25519 (RFC 7748) between the secret scalar of `seed` (its Ed25519
   * scalar) and the Montgomery form of the Ed25519 public key `peer`: 32
   * bytes; throws RangeError for a bad or small-order peer.
   */
  x25519?(seed: Uint8Array, peer: Uint8Array): Uint8Array;
}
