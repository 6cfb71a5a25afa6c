/**
 * Which Ed25519 public keys a root may list (docs/spec/root.md, "Key
 * checks"). Strict RFC 8032 verification (`zip215: false`, noble-crypto.ts)
 * already refuses signatures under the keys below, but a root is also read
 * by other verifiers (node:crypto, libsodium, OpenSSL, a fleet backend), and
 * some of them accept any signature under a small-order key. So a root that
 * lists such a key is refused where it is decoded, and `holdfast keys`
 * never writes one.
 *
 * Refused (RFC 8032 section 5.1.3 decoding, plus the order check):
 * - non-canonical encodings: y >= p (p = 2^255 - 19), or x = 0 with the
 *   sign bit set (the only other way two encodings name one point);
 * - encodings that are not a curve point (no square root for x);
 * - small-order points: the eight points P with [8]P = identity (the
 *   identity, the point of order 2, two of order 4, four of order 8).
 *
 * A key made the RFC 8032 way (clamped scalar times the base point) is
 * never refused. Pure computation on @noble/ed25519's Point (BigInt), no
 * module state; the order check doubles three times instead of noble's
 * `isSmallOrder()`, whose `multiply` builds noble's 4,224-point base table
 * in its module state when the key is the base point itself.
 */
import { Point } from '@noble/ed25519';
import { PUBLIC_KEY_LENGTH } from './verify.ts';
import { isSmallOrderPoint } from './ed25519-verifier.ts';

/** p = 2^255 - 19 as 32 little-endian bytes. */
const FIELD_PRIME_LE: readonly number[] = Object.freeze([0xed, ...new Array<number>(30).fill(0xff), 0x7f]);

/** Why `publicKey` may not be listed in a root, or undefined when it may. */
export function ed25519PublicKeyProblem(publicKey: Uint8Array): string | undefined {
  if (!(publicKey instanceof Uint8Array)) throw new TypeError('publicKey must be a Uint8Array');
  if (publicKey.length !== PUBLIC_KEY_LENGTH) return `${publicKey.length} bytes, an Ed25519 public key is ${PUBLIC_KEY_LENGTH}`;
  if (!yBelowPrime(publicKey)) return 'non-canonical encoding (y >= 2^255 - 19)';
  let point: Point;
  try {
    point = Point.fromBytes(publicKey, false);
  } catch {
    if ((publicKey[31] & 0x80) !== 0 && xIsZero(publicKey)) return 'non-canonical encoding (x = 0 with the sign bit set)';
    return 'not a point of the curve';
  }
  const again = point.toBytes();
  for (let i = 0; i < PUBLIC_KEY_LENGTH; i++) if (again[i] !== publicKey[i]) return 'non-canonical encoding';
  if (isSmallOrderPoint(point)) return 'a small-order point (any signature verifies under it with some verifiers)';
  return undefined;
}

/** y (the encoding with the sign bit cleared, little-endian) < p. */
function yBelowPrime(bytes: Uint8Array): boolean {
  for (let i = PUBLIC_KEY_LENGTH - 1; i >= 0; i--) {
    const b = i === PUBLIC_KEY_LENGTH - 1 ? bytes[i] & 0x7f : bytes[i];
    if (b !== FIELD_PRIME_LE[i]) return b < FIELD_PRIME_LE[i];
  }
  return false;
}

/** x = 0 exactly when y = 1 or y = p - 1 (x^2 = (y^2 - 1) / (d y^2 + 1)). */
function xIsZero(bytes: Uint8Array): boolean {
  const y = bytes.slice();
  y[31] &= 0x7f;
  let one = y[0] === 1;
  let minusOne = y[0] === 0xec;
  for (let i = 1; i < 31; i++) {
    if (y[i] !== 0) one = false;
    if (y[i] !== 0xff) minusOne = false;
  }
  return (one && y[31] === 0) || (minusOne && y[31] === 0x7f);
}
