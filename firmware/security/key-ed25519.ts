/**
 * The device's own private-key operations, needed only for a key rotation
 * (docs/spec/key-rotation.md): Ed25519 signing (RFC 8032 section 5.1.6)
 * and the X25519 shared secret (RFC 7748) between the device's new key and
 * the fleet authority's Ed25519 public key.
 *
 * Why not noble's `ed.sign` / `getPublicKey`: both compute [r]B with
 * `Point.BASE.multiply`, whose first call builds noble's 4,224-point base
 * table in its module state (several times the device's JavaScript heap,
 * docs/design/ram-budget.md and ed25519-verifier.ts). A sign happens once
 * per rotation, so no table: [k]P here is a double-and-add over the 255 bits
 * of the clamped scalar that doubles and adds at every bit (the sum is
 * kept or dropped), on noble's `Point` group operations only. The sequence of
 * point operations does not depend on the secret; noble's BigInt field
 * arithmetic is not constant time, which is accepted for an operation done
 * once per rotation (years apart) and documented in key-rotation.md.
 *
 * X25519 without @noble/curves: the Ed25519 and Curve25519 groups are
 * birationally equivalent (RFC 7748 section 4.1, u = (1 + y) / (1 - y)),
 * and the map is a group homomorphism, so for a clamped scalar a and an
 * Edwards point P, u([a]P) = X25519(a, u(P)). `x25519` computes [a]P on the
 * Edwards curve with a = the Ed25519 secret scalar of `seed` (SHA-512 of the
 * seed, first half, clamped: exactly the X25519 private key RFC 7748 makes
 * from those 32 bytes) and returns u, 32 bytes little-endian: the same bytes
 * as X25519(sha512(seed)[0..32], u(peer)) (test/security/key-ed25519.cases.ts
 * checks it against node:crypto's X25519). An all-zero result (a small-order
 * peer) is refused.
 *
 * No module state; runs in XS and Node.
 */
import { etc, Point } from '@noble/ed25519';
import { sha512 } from '@noble/hashes/sha2.js';
import { PUBLIC_KEY_LENGTH, SIGNATURE_LENGTH } from './verify.ts';
import { bigIntToLittleEndian32, isSmallOrderPoint, littleEndianToBigInt } from './ed25519-verifier.ts';

/** RFC 8032 private key (seed) bytes. */
export const ED25519_SEED_LENGTH = 32;
/** X25519 shared secret bytes. */
export const X25519_SHARED_LENGTH = 32;

/** L, the order of the base point. */
const GROUP_ORDER = 0x1000000000000000000000000000000014def9dea2f79cd65812631a5cf5d3edn;
/** p = 2^255 - 19. */
const FIELD_PRIME = (1n << 255n) - 19n;
/** Bits of a clamped scalar (bit 254 set, bit 255 clear). */
const CLAMPED_BITS = 255;

interface Expanded {
  /** The clamped secret scalar, 32 bytes little-endian. */
  readonly scalar: Uint8Array;
  /** The second half of SHA-512(seed): the nonce prefix. */
  readonly prefix: Uint8Array;
}

function expand(seed: Uint8Array): Expanded {
  if (!(seed instanceof Uint8Array) || seed.length !== ED25519_SEED_LENGTH) throw new RangeError(`an Ed25519 seed is ${ED25519_SEED_LENGTH} bytes`);
  const h = sha512(seed);
  const scalar = h.slice(0, 32);
  scalar[0] &= 248;
  scalar[31] &= 127;
  scalar[31] |= 64;
  const prefix = h.slice(32, 64);
  h.fill(0);
  return { scalar, prefix };
}

/** [k]P for a little-endian scalar of at most 255 bits: double and add at every bit, the sum kept when the bit is set. */
function multiplyUniform(p: Point, k: Uint8Array): Point {
  let acc = Point.ZERO;
  for (let i = CLAMPED_BITS - 1; i >= 0; i--) {
    acc = acc.double();
    const sum = acc.add(p);
    if (((k[i >> 3] >> (i & 7)) & 1) === 1) acc = sum;
  }
  return acc;
}

/** The Ed25519 public key of `seed` (RFC 8032 section 5.1.5). */
export function ed25519PublicKeyOf(seed: Uint8Array): Uint8Array {
  const { scalar, prefix } = expand(seed);
  const a = multiplyUniform(Point.BASE, scalar).toBytes();
  scalar.fill(0);
  prefix.fill(0);
  return a;
}

/** An RFC 8032 Ed25519 signature (64 bytes) of `message` by `seed`; deterministic, as the RFC says. */
export function ed25519SignWith(seed: Uint8Array, message: Uint8Array): Uint8Array {
  if (!(message instanceof Uint8Array)) throw new TypeError('message must be a Uint8Array');
  const { scalar, prefix } = expand(seed);
  const publicKey = multiplyUniform(Point.BASE, scalar).toBytes();
  const rHash = sha512.create();
  rHash.update(prefix);
  rHash.update(message);
  const r = littleEndianToBigInt(rHash.digest()) % GROUP_ORDER;
  const rBytes = bigIntToLittleEndian32(r);
  const R = multiplyUniform(Point.BASE, rBytes).toBytes();
  const kHash = sha512.create();
  kHash.update(R);
  kHash.update(publicKey);
  kHash.update(message);
  const k = littleEndianToBigInt(kHash.digest()) % GROUP_ORDER;
  const s = (r + k * littleEndianToBigInt(scalar)) % GROUP_ORDER;
  const signature = new Uint8Array(SIGNATURE_LENGTH);
  signature.set(R, 0);
  signature.set(bigIntToLittleEndian32(s), 32);
  scalar.fill(0);
  prefix.fill(0);
  rBytes.fill(0);
  return signature;
}

/**
 * X25519 between the secret scalar of `seed` and the Montgomery form of the
 * Ed25519 public key `peer` (see the file comment). Throws RangeError for a
 * peer that is not a canonical point, a small-order one, or an all-zero
 * result.
 */
export function x25519WithEd25519(seed: Uint8Array, peer: Uint8Array): Uint8Array {
  if (!(peer instanceof Uint8Array) || peer.length !== PUBLIC_KEY_LENGTH) throw new RangeError(`the peer key is an Ed25519 public key of ${PUBLIC_KEY_LENGTH} bytes`);
  let point: Point;
  try {
    point = Point.fromBytes(peer, false);
  } catch {
    throw new RangeError('the peer key is not a point of the curve');
  }
  if (isSmallOrderPoint(point)) throw new RangeError('the peer key is a small-order point');
  const { scalar, prefix } = expand(seed);
  const shared = multiplyUniform(point, scalar);
  scalar.fill(0);
  prefix.fill(0);
  const u = montgomeryU(shared);
  let any = 0;
  for (let i = 0; i < u.length; i++) any |= u[i];
  if (any === 0) throw new RangeError('the shared secret is zero');
  return u;
}

/** The Montgomery u-coordinate (1 + y) / (1 - y) of an Edwards point, 32 bytes little-endian. */
export function montgomeryU(point: Point): Uint8Array {
  const { y } = point.toAffine();
  const denominator = etc.mod(1n - y, FIELD_PRIME);
  const u = denominator === 0n ? 0n : etc.mod((1n + y) * etc.invert(denominator, FIELD_PRIME), FIELD_PRIME);
  return bigIntToLittleEndian32(u);
}

/** u(peer) for an Ed25519 public key: its X25519 public key (RFC 7748 birational map). */
export function montgomeryPublicKey(peer: Uint8Array): Uint8Array {
  return montgomeryU(Point.fromBytes(peer, false));
}
