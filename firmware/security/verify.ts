/**
 * Threshold signature checks: "at least T distinct keys of a role signed
 * these exact bytes" (TUF's signature thresholds, docs/spec/root.md).
 *
 * Keys are named by an 8-byte key id, the first 8 bytes of SHA-256 of the
 * 32-byte Ed25519 public key. Signatures are checked through the Crypto HAL
 * (dependency injected), so the Moddable target may back it natively.
 *
 * Counting rules:
 * - a signature counts only if its key id names a key of the role AND it
 *   verifies under that key's public key;
 * - each key counts once, however many signatures carry its id;
 * - a signature is verified at most once per public key, and verification
 *   stops as soon as the threshold is met, so the cost is bounded by the
 *   number of signatures (at most 8 in a holdfast envelope).
 */
import type { Crypto } from '../hal/crypto.ts';
import { constantTimeEqual } from './_ct.ts';

/** Bytes in a key id: the first 8 bytes of SHA-256(public key). */
export const KEY_ID_LENGTH = 8;
/** Bytes in an Ed25519 public key (RFC 8032 section 5.1.5). */
export const PUBLIC_KEY_LENGTH = 32;
/** Bytes in an Ed25519 signature (RFC 8032 section 5.1.6). */
export const SIGNATURE_LENGTH = 64;

export interface KeyEntry {
  readonly keyId: Uint8Array;
  readonly publicKey: Uint8Array;
}

export interface SignatureEntry {
  readonly keyId: Uint8Array;
  readonly signature: Uint8Array;
}

export interface ThresholdTally {
  /** At least `threshold` distinct keys of the role signed validly. */
  readonly met: boolean;
  readonly threshold: number;
  /** Distinct keys of the role with a valid signature (counting stops at the threshold). */
  readonly valid: number;
  /** Signatures naming a key of the role that did not verify (among those examined). */
  readonly invalid: number;
  /** Signatures naming no key of the role (among those examined). */
  readonly unknown: number;
  /** Signatures examined: all of them unless the threshold was met early. */
  readonly examined: number;
}

/** The key id of `publicKey`: SHA-256(publicKey)[0..8). */
export function keyIdOf(crypto: Crypto, publicKey: Uint8Array): Uint8Array {
  if (!(publicKey instanceof Uint8Array)) throw new TypeError('publicKey must be a Uint8Array');
  if (publicKey.length !== PUBLIC_KEY_LENGTH) throw new RangeError(`publicKey must be ${PUBLIC_KEY_LENGTH} bytes, got ${publicKey.length}`);
  const hash = crypto.createSha256();
  hash.update(publicKey);
  return hash.digest().slice(0, KEY_ID_LENGTH);
}

/** Lower-case hex, for key ids in messages and tools. */
export function bytesToHex(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16);
  return out;
}

/**
 * One message and its signatures; tallies them against any number of key
 * sets (a root rotation checks the old and the new root keys against the
 * same signatures), verifying each (signature, public key) pair once.
 */
export class SignatureTally {
  private readonly verified: ({ publicKey: Uint8Array; valid: boolean } | undefined)[] = [];

  constructor(
    private readonly crypto: Crypto,
    private readonly message: Uint8Array,
    private readonly signatures: readonly SignatureEntry[],
  ) {}

  count(keys: readonly KeyEntry[], threshold: number): ThresholdTally {
    if (!Number.isInteger(threshold) || threshold < 1) throw new RangeError(`threshold must be an integer >= 1, got ${threshold}`);
    const counted: boolean[] = keys.map(() => false);
    let valid = 0;
    let invalid = 0;
    let unknown = 0;
    let examined = 0;
    for (let i = 0; i < this.signatures.length && valid < threshold; i++) {
      examined++;
      const entry = this.signatures[i];
      const k = findKey(keys, entry.keyId);
      if (k < 0) {
        unknown++;
        continue;
      }
      if (counted[k]) continue;
      if (this.check(i, keys[k].publicKey)) {
        counted[k] = true;
        valid++;
      } else {
        invalid++;
      }
    }
    return { met: valid >= threshold, threshold, valid, invalid, unknown, examined };
  }

  private check(index: number, publicKey: Uint8Array): boolean {
    const memo = this.verified[index];
    if (memo && constantTimeEqual(memo.publicKey, publicKey)) return memo.valid;
    const valid = this.crypto.ed25519Verify(this.signatures[index].signature, this.message, publicKey);
    this.verified[index] = { publicKey, valid };
    return valid;
  }
}

function findKey(keys: readonly KeyEntry[], keyId: Uint8Array): number {
  for (let k = 0; k < keys.length; k++) if (constantTimeEqual(keys[k].keyId, keyId)) return k;
  return -1;
}
