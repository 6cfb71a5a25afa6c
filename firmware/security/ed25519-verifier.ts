/**
 * Ed25519 signature verification (RFC 8032 section 5.1.7, the strict
 * branch noble calls `zip215: false`) whose memory the runtime controls.
 *
 * Why not `ed.verify` from @noble/ed25519 3.x: its first verify builds a
 * table of 4,224 multiples of the base point (a fixed 8-bit window) and
 * keeps it in a module-level variable for the life of the program: in XS
 * about 21,000 live slots plus about 4,224 x 4 BigInt chunks, several times
 * the JavaScript heap a Moddable ESP32 build has (docs/design/ram-budget.md).
 * The window is not configurable in 3.x, and `Point.multiply` on any point
 * equal to the base point takes the same path, `isSmallOrder()` included.
 *
 * This module uses only noble's `Point` group operations (`fromBytes`,
 * `add`, `double`, `negate`, `is0`) and never `multiply`, so noble's table
 * is never built. The scalar multiplications are done here:
 * - `baseWindow: 0` (the default): [s]B - [k]A in one double-and-add pass
 *   over both scalars (Straus-Shamir), three temporary points, nothing kept;
 * - `baseWindow: w` (2..8): a table of signed-digit multiples of B for
 *   w-bit windows, built at the first verify and kept in this instance
 *   (never in module state): 2^(w-1) x (ceil(253 / w) + 1) points; [k]A by
 *   double-and-add. w = 8 is noble's own table.
 * Measured costs per window: docs/design/ram-budget.md.
 *
 * Equivalence with `ed.verify(sig, msg, pub, { zip215: false })` is tested
 * case by case (test/security/ed25519-verifier.cases.ts): the same decoding
 * (noble's `Point.fromBytes(bytes, false)` for A and R), S < L, small-order
 * A refused, k = SHA-512(R || A || M) mod L, and the cofactored equation
 * [8]([S]B - R - [k]A) = identity.
 *
 * Variable time: fine for verification, which handles only public data.
 */
import { Point } from '@noble/ed25519';
import { sha512 } from '@noble/hashes/sha2.js';
import { PUBLIC_KEY_LENGTH, SIGNATURE_LENGTH } from './verify.ts';

/** The order of the base point: L = 2^252 + 27742317777372353535851937790883648493. */
const GROUP_ORDER = 0x1000000000000000000000000000000014def9dea2f79cd65812631a5cf5d3edn;
/** Bits in a scalar below L. */
const SCALAR_BITS = 253;
/** Largest accepted base window (noble's fixed window). */
export const MAX_BASE_WINDOW = 8;

export interface Ed25519VerifierOptions {
  /** 0: no base-point table (default); 2..8: a w-bit window table kept in the instance. */
  readonly baseWindow?: number;
}

/** [8]P = identity: the eight points of small order (three doublings; never Point.multiply). */
export function isSmallOrderPoint(point: Point): boolean {
  return point.double().double().double().is0();
}

export class Ed25519Verifier {
  readonly baseWindow: number;
  /** table[j][d - 1] = d * 2^(w j) * B, d = 1..2^(w-1); built at the first verify when baseWindow > 0. */
  private table: readonly (readonly Point[])[] | undefined;

  constructor(options: Ed25519VerifierOptions = {}) {
    const w = options.baseWindow ?? 0;
    if (!Number.isInteger(w) || w < 0 || w === 1 || w > MAX_BASE_WINDOW) throw new RangeError(`baseWindow must be 0 or an integer 2..${MAX_BASE_WINDOW}, got ${String(w)}`);
    this.baseWindow = w;
  }

  /** Points the base table holds (or will hold once built): 0 without a window. */
  get tablePoints(): number {
    const w = this.baseWindow;
    return w === 0 ? 0 : (1 << (w - 1)) * windowCount(w);
  }

  /** Whether the base table has been built (a verify with baseWindow > 0 builds it). */
  get tableBuilt(): boolean {
    return this.table !== undefined;
  }

  /** True when `signature` is a valid strict RFC 8032 signature of `message` under `publicKey`; false for anything else. */
  verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
    if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_LENGTH) return false;
    if (!(publicKey instanceof Uint8Array) || publicKey.length !== PUBLIC_KEY_LENGTH) return false;
    if (!(message instanceof Uint8Array)) return false;
    const sBytes = signature.subarray(32, 64);
    if (!(littleEndianToBigInt(sBytes) < GROUP_ORDER)) return false;
    let a: Point;
    let r: Point;
    try {
      a = Point.fromBytes(publicKey, false);
      r = Point.fromBytes(signature.subarray(0, 32), false);
    } catch {
      return false;
    }
    if (isSmallOrderPoint(a)) return false;
    const hash = sha512.create();
    hash.update(signature.subarray(0, 32));
    hash.update(publicKey);
    hash.update(message);
    const kBytes = bigIntToLittleEndian32(littleEndianToBigInt(hash.digest()) % GROUP_ORDER);
    // sB - kA, then [8](R - (sB - kA)) must be the identity.
    const sbMinusKa = this.baseWindow === 0 ? straus(sBytes, kBytes, a) : this.baseMultiple(sBytes).add(multiplyBits(a, kBytes).negate());
    return isSmallOrderPoint(r.add(sbMinusKa.negate()));
  }

  /** [s]B from the instance's table (built on first use). */
  private baseMultiple(sBytes: Uint8Array): Point {
    const table = this.table ?? (this.table = buildBaseTable(this.baseWindow));
    const w = this.baseWindow;
    const full = 1 << w;
    const half = full >> 1;
    let acc = Point.ZERO;
    let carry = 0;
    for (let j = 0; j < table.length; j++) {
      let digit = readBits(sBytes, j * w, w) + carry;
      carry = 0;
      if (digit > half) {
        digit -= full;
        carry = 1;
      }
      if (digit > 0) acc = acc.add(table[j][digit - 1]);
      else if (digit < 0) acc = acc.add(table[j][-digit - 1].negate());
    }
    if (carry !== 0) throw new Error('ed25519: scalar wider than the base table');
    return acc;
  }
}

/** Windows of w bits covering a scalar below L, plus one for the last signed digit's carry. */
function windowCount(w: number): number {
  return Math.ceil(SCALAR_BITS / w) + 1;
}

function buildBaseTable(w: number): readonly (readonly Point[])[] {
  const half = 1 << (w - 1);
  const windows: (readonly Point[])[] = [];
  let base = Point.BASE;
  for (let j = 0; j < windowCount(w); j++) {
    const row: Point[] = [base];
    for (let d = 2; d <= half; d++) row.push(row[d - 2].add(base));
    windows.push(Object.freeze(row));
    for (let i = 0; i < w; i++) base = base.double();
  }
  return Object.freeze(windows);
}

/** [s]B - [k]A by one left-to-right pass over both scalars' bits. */
function straus(sBytes: Uint8Array, kBytes: Uint8Array, a: Point): Point {
  const negA = a.negate();
  const bMinusA = Point.BASE.add(negA);
  let acc = Point.ZERO;
  for (let i = SCALAR_BITS - 1; i >= 0; i--) {
    acc = acc.double();
    const sb = bit(sBytes, i);
    const kb = bit(kBytes, i);
    if (sb && kb) acc = acc.add(bMinusA);
    else if (sb) acc = acc.add(Point.BASE);
    else if (kb) acc = acc.add(negA);
  }
  return acc;
}

/** [k]P by left-to-right double-and-add over k's little-endian bytes. */
function multiplyBits(p: Point, kBytes: Uint8Array): Point {
  let acc = Point.ZERO;
  for (let i = SCALAR_BITS - 1; i >= 0; i--) {
    acc = acc.double();
    if (bit(kBytes, i)) acc = acc.add(p);
  }
  return acc;
}

function bit(bytes: Uint8Array, i: number): boolean {
  return ((bytes[i >> 3] >> (i & 7)) & 1) === 1;
}

/** `count` bits of a little-endian number from bit `from` (bits past the end read as 0). */
function readBits(bytes: Uint8Array, from: number, count: number): number {
  let value = 0;
  for (let i = 0; i < count; i++) {
    const at = from + i;
    if (at >> 3 < bytes.length && bit(bytes, at)) value |= 1 << i;
  }
  return value;
}

/** A little-endian byte string as a non-negative BigInt. */
export function littleEndianToBigInt(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]);
  return n;
}

/** The low 256 bits of `n` as 32 little-endian bytes. */
export function bigIntToLittleEndian32(n: bigint): Uint8Array {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return out;
}
