/**
 * Ed25519 verification memoised by the exact bytes (sound: the same bytes
 * get the same answer): the simulator's devices of one machine check the
 * same root at each boot and the same manifests, and the runtime's
 * power-cut tests verify the same signatures at every cut; a verify costs a
 * noticeable part of a second in XS. Everything else passes through,
 * the optional private-key members (key rotation) included when `inner` has them.
 * Engine-neutral (XS guests use it too).
 */
import type { Crypto } from '../../firmware/hal/crypto.ts';

export function memoEd25519(inner: Crypto): Crypto {
  const seen = new Map<string, boolean>();
  const hex = (b: Uint8Array): string => {
    let out = '';
    for (let i = 0; i < b.length; i++) out += (b[i] < 16 ? '0' : '') + b[i].toString(16);
    return out;
  };
  const { ed25519PublicKey, ed25519Sign, x25519 } = inner;
  return {
    ...(ed25519PublicKey !== undefined ? { ed25519PublicKey: (seed: Uint8Array) => ed25519PublicKey.call(inner, seed) } : {}),
    ...(ed25519Sign !== undefined ? { ed25519Sign: (seed: Uint8Array, message: Uint8Array) => ed25519Sign.call(inner, seed, message) } : {}),
    ...(x25519 !== undefined ? { x25519: (seed: Uint8Array, peer: Uint8Array) => x25519.call(inner, seed, peer) } : {}),
    createSha256: () => inner.createSha256(),
    hmacSha256: (key, data) => inner.hmacSha256(key, data),
    aeadSeal: (key, nonce, plaintext, aad) => inner.aeadSeal(key, nonce, plaintext, aad),
    aeadOpen: (key, nonce, sealed, aad) => inner.aeadOpen(key, nonce, sealed, aad),
    ed25519Verify(signature, message, publicKey) {
      const k = `${hex(signature)}:${hex(publicKey)}:${hex(message)}`;
      let verdict = seen.get(k);
      if (verdict === undefined) {
        verdict = inner.ed25519Verify(signature, message, publicKey);
        seen.set(k, verdict);
      }
      return verdict;
    },
  };
}
