/**
 * `Crypto` for the device: SHA-256 on the ESP32's engine through Moddable's
 * `Digest` (module `crypt`, "SHA256"), everything else from the @noble
 * reference (firmware/security/noble-crypto.ts). When the build has no
 * `crypt` module, or `new Digest("SHA256")` throws, SHA-256 falls back to
 * @noble too: slower (docs/design/crypto.md), same bytes.
 */
import type { Crypto, Sha256 } from '../../hal/crypto.ts';
import { createNobleCrypto } from '../../security/noble-crypto.ts';
import type { DigestClass } from './modules.ts';

export const SHA256_LENGTH = 32;

export interface ModdableCrypto extends Crypto {
  /** 'native' when SHA-256 runs on Moddable's Digest, 'noble' when it fell back. */
  readonly sha256Engine: 'native' | 'noble';
}

export function createModdableCrypto(Digest: DigestClass | undefined): ModdableCrypto {
  const noble = createNobleCrypto();
  const native = Digest !== undefined && digestWorks(Digest);
  const createSha256 = native && Digest !== undefined ? () => nativeSha256(Digest) : () => noble.createSha256();
  return Object.freeze<ModdableCrypto>({
    sha256Engine: native ? 'native' : 'noble',
    createSha256,
    hmacSha256: (key, data) => noble.hmacSha256(key, data),
    ed25519Verify: (signature, message, publicKey) => noble.ed25519Verify(signature, message, publicKey),
    aeadSeal: (key, nonce, plaintext, aad) => noble.aeadSeal(key, nonce, plaintext, aad),
    aeadOpen: (key, nonce, sealed, aad) => noble.aeadOpen(key, nonce, sealed, aad),
    ed25519PublicKey: noble.ed25519PublicKey,
    ed25519Sign: noble.ed25519Sign,
    x25519: noble.x25519,
  });
}

function digestWorks(Digest: DigestClass): boolean {
  try {
    const probe = new Digest('SHA256');
    return probe.close().byteLength === SHA256_LENGTH;
  } catch {
    return false;
  }
}

function nativeSha256(Digest: DigestClass): Sha256 {
  const digest = new Digest('SHA256');
  let finished = false;
  return {
    update(data: Uint8Array): void {
      if (finished) throw new Error('SHA-256 already finished');
      if (!(data instanceof Uint8Array)) throw new TypeError('data must be a Uint8Array');
      if (data.length > 0) digest.write(data);
    },
    digest(): Uint8Array {
      if (finished) throw new Error('SHA-256 already finished');
      finished = true;
      const out = new Uint8Array(digest.close());
      if (out.length !== SHA256_LENGTH) throw new Error(`Digest SHA256 returned ${out.length} bytes`);
      return out;
    },
  };
}
