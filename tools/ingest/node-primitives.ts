/**
 * The envelope's primitives (firmware/security/envelope-primitives.ts) on
 * Node's OpenSSL: HMAC-SHA-256, ChaCha20-Poly1305 and AES-256-GCM, the same
 * algorithms as the portable @noble build at native speed (the ingest opens
 * tens of thousands of envelopes a second). Checked against the noble
 * primitives in test/ingest/cli.test.ts ("Node envelope primitives agree with the portable ones").
 *
 * Host tool (Node).
 */
import { createCipheriv, createDecipheriv, createHmac } from 'node:crypto';
import type { AeadSuite, EnvelopePrimitives } from '../../firmware/security/envelope-primitives.ts';
import { EnvelopeSuite } from '../../firmware/security/envelope-format.ts';
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';

const TAG = 16;

function algorithm(suite: AeadSuite): 'chacha20-poly1305' | 'aes-256-gcm' {
  if (suite === EnvelopeSuite.chacha20Poly1305) return 'chacha20-poly1305';
  if (suite === EnvelopeSuite.aes256Gcm) return 'aes-256-gcm';
  throw new RangeError(`suite 0x${(suite as number).toString(16)} is not an AEAD`);
}

export function nodeEnvelopePrimitives(): EnvelopePrimitives {
  const noble = createNobleCrypto();
  return Object.freeze<EnvelopePrimitives>({
    hmacSha256: (key, data) => new Uint8Array(createHmac('sha256', key).update(data).digest()),
    aeadSeal(suite, key, nonce, plaintext, aad) {
      const cipher = createCipheriv(algorithm(suite) as 'aes-256-gcm', key, nonce, { authTagLength: TAG });
      cipher.setAAD(aad, { plaintextLength: plaintext.length });
      const body = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
      return new Uint8Array(body.buffer, body.byteOffset, body.length);
    },
    aeadOpen(suite, key, nonce, sealed, aad) {
      if (sealed.length < TAG) return undefined;
      try {
        const decipher = createDecipheriv(algorithm(suite) as 'aes-256-gcm', key, nonce, { authTagLength: TAG });
        decipher.setAAD(aad, { plaintextLength: sealed.length - TAG });
        decipher.setAuthTag(sealed.subarray(sealed.length - TAG));
        const body = Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - TAG)), decipher.final()]);
        return new Uint8Array(body.buffer, body.byteOffset, body.length);
      } catch {
        return undefined;
      }
    },
    // Telemetry never uses signatures; kept for completeness through the portable code.
    ed25519Verify: (signature, message, publicKey) => noble.ed25519Verify(signature, message, publicKey),
  });
}
