/**
 * The Ed25519 verifier that keeps noble's base table out of the heap
 * (firmware/security/ed25519-verifier.ts), in Node and in XS: it answers
 * exactly as @noble/ed25519's strict `verify(…, { zip215: false })` on
 * valid signatures, tampered ones and the edge cases of RFC 8032 decoding
 * (S >= L, non-canonical R, small-order keys, the base point as a key),
 * for no table and for the windows 2, 4 and 8; its table sizes; its refusals
 * of bad options.
 */
import * as ed from '@noble/ed25519';
import { sha512 } from '@noble/hashes/sha2.js';
import { configureEd25519, createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { Ed25519Verifier, isSmallOrderPoint } from '../../firmware/security/ed25519-verifier.ts';
import { equal, ok, throws } from '../support/check.ts';
import type { CaseSuite } from '../support/cases.ts';
import { concat } from '../support/bytes.ts';

const L = 0x1000000000000000000000000000000014def9dea2f79cd65812631a5cf5d3edn;
const WINDOWS = [0, 2, 4, 8] as const;

function le32(n: bigint): Uint8Array {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return out;
}

function fromLe(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]);
  return n;
}

interface Triple {
  readonly what: string;
  readonly signature: Uint8Array;
  readonly message: Uint8Array;
  readonly publicKey: Uint8Array;
}

/** Every verifier answers as noble's strict verify; returns how many were valid. */
function agree(triples: readonly Triple[]): number {
  const verifiers = WINDOWS.map((w) => new Ed25519Verifier({ baseWindow: w }));
  let valid = 0;
  for (const t of triples) {
    let want: boolean;
    try {
      want = ed.verify(t.signature, t.message, t.publicKey, { zip215: false });
    } catch {
      want = false;
    }
    if (want) valid++;
    for (const v of verifiers) equal(v.verify(t.signature, t.message, t.publicKey), want, `${t.what}, window ${v.baseWindow}`);
  }
  return valid;
}

/** A signature by the scalar `a` itself (not an RFC 8032 seed): lets a test sign under any point [a]B. */
function signWithScalar(a: bigint, r: bigint, message: Uint8Array): { publicKey: Uint8Array; signature: Uint8Array } {
  const publicKey = ed.Point.BASE.multiply(a).toBytes();
  const rBytes = ed.Point.BASE.multiply(r).toBytes();
  const k = fromLe(sha512(concat(rBytes, publicKey, message))) % L;
  return { publicKey, signature: concat(rBytes, le32((r + k * a) % L)) };
}

export const suite: CaseSuite = {
  name: 'ed25519 verifier',
  cases: [
    {
      name: 'answers as noble strict verify on valid and tampered signatures, every window',
      run() {
        configureEd25519();
        const triples: Triple[] = [];
        for (let i = 0; i < 4; i++) {
          const seed = new Uint8Array(32).fill(0x21 + i);
          const publicKey = ed.getPublicKey(seed);
          const message = new Uint8Array(i * 17).fill(0x30 + i);
          const signature = ed.sign(message, seed);
          triples.push({ what: `key ${i} valid`, signature, message, publicKey });
          const badR = signature.slice();
          badR[i * 5] ^= 0x04;
          triples.push({ what: `key ${i} R bit flipped`, signature: badR, message, publicKey });
          const badS = signature.slice();
          badS[40 + i] ^= 0x01;
          triples.push({ what: `key ${i} S bit flipped`, signature: badS, message, publicKey });
          const badM = concat(message, Uint8Array.of(0));
          triples.push({ what: `key ${i} message extended`, signature, message: badM, publicKey });
        }
        const valid = agree(triples);
        equal(valid, 4, 'valid signatures');
        return { triples: triples.length, valid };
      },
    },
    {
      name: 'RFC 8032 edge cases: S >= L, non-canonical R, small-order keys, the base point as a key',
      run() {
        configureEd25519();
        const message = Uint8Array.of(1, 2, 3);
        const seed = new Uint8Array(32).fill(0x44);
        const publicKey = ed.getPublicKey(seed);
        const signature = ed.sign(message, seed);
        const sPlusL = concat(signature.subarray(0, 32), le32(fromLe(signature.subarray(32)) + L));
        // y = p: the non-canonical encoding of y = 0; strict decoding refuses it.
        const yEqualsP = concat(Uint8Array.of(0xed), new Uint8Array(30).fill(0xff), Uint8Array.of(0x7f));
        const identity = concat(Uint8Array.of(1), new Uint8Array(31));
        const orderTwo = concat(Uint8Array.of(0xec), new Uint8Array(30).fill(0xff), Uint8Array.of(0x7f));
        const base = signWithScalar(1n, 0x1234567n, message);
        const three = signWithScalar(3n, 0x7654321n, message);
        const triples: Triple[] = [
          { what: 'S + L', signature: sPlusL, message, publicKey },
          { what: 'R non-canonical', signature: concat(yEqualsP, signature.subarray(32)), message, publicKey },
          { what: 'key non-canonical', signature, message, publicKey: yEqualsP },
          { what: 'identity key, identity R, S = 0', signature: concat(identity, new Uint8Array(32)), message, publicKey: identity },
          { what: 'order-2 key, identity R, S = 0', signature: concat(identity, new Uint8Array(32)), message, publicKey: orderTwo },
          { what: 'base point as the key (scalar 1)', signature: base.signature, message, publicKey: base.publicKey },
          { what: 'scalar 3 key', signature: three.signature, message, publicKey: three.publicKey },
          { what: 'S = 0', signature: concat(signature.subarray(0, 32), new Uint8Array(32)), message, publicKey },
          { what: 'all-zero signature', signature: new Uint8Array(64), message, publicKey },
        ];
        const valid = agree(triples);
        equal(valid, 2, 'the two hand-made signatures are valid, nothing else');
        ok(isSmallOrderPoint(ed.Point.fromBytes(orderTwo, false)), 'order-2 point is small order');
        ok(!isSmallOrderPoint(ed.Point.fromBytes(publicKey, false)), 'a real key is not');
        return { triples: triples.length };
      },
    },
    {
      name: 'malformed input is false, never a throw; the HAL verifies through it',
      run() {
        const v = new Ed25519Verifier();
        const bad = [new Uint8Array(63), new Uint8Array(65)];
        for (const s of bad) equal(v.verify(s, new Uint8Array(1), new Uint8Array(32)), false, `${s.length}-byte signature`);
        equal(v.verify(new Uint8Array(64), new Uint8Array(1), new Uint8Array(31)), false, '31-byte key');
        equal(v.verify([] as unknown as Uint8Array, new Uint8Array(1), new Uint8Array(32)), false, 'not bytes');
        configureEd25519();
        const seed = new Uint8Array(32).fill(0x55);
        const message = Uint8Array.of(9);
        const signature = ed.sign(message, seed);
        for (const w of WINDOWS) {
          const crypto = createNobleCrypto({ ed25519BaseWindow: w });
          equal(crypto.ed25519Verify(signature, message, ed.getPublicKey(seed)), true, `createNobleCrypto window ${w}`);
        }
      },
    },
    {
      name: 'table sizes per window (8 is noble’s 4,224 points), built at the first verify only with a window, bad windows refused',
      run() {
        equal(new Ed25519Verifier().tablePoints, 0, 'no window');
        equal(new Ed25519Verifier({ baseWindow: 2 }).tablePoints, 2 * 128, 'w = 2');
        equal(new Ed25519Verifier({ baseWindow: 4 }).tablePoints, 8 * 65, 'w = 4');
        equal(new Ed25519Verifier({ baseWindow: 8 }).tablePoints, 128 * 33, 'w = 8');
        configureEd25519();
        const seed = new Uint8Array(32).fill(0x66);
        const signature = ed.sign(Uint8Array.of(), seed);
        const windowed = new Ed25519Verifier({ baseWindow: 4 });
        const plain = new Ed25519Verifier();
        equal(windowed.tableBuilt, false, 'not before the first verify');
        ok(windowed.verify(signature, Uint8Array.of(), ed.getPublicKey(seed)), 'verifies');
        ok(plain.verify(signature, Uint8Array.of(), ed.getPublicKey(seed)), 'verifies without a table');
        equal(windowed.tableBuilt, true, 'built by the first verify');
        equal(plain.tableBuilt, false, 'never without a window');
        for (const w of [1, 9, -1, 2.5, Number.NaN]) throws(() => new Ed25519Verifier({ baseWindow: w }), 'RangeError', `window ${w}`);
      },
    },
  ],
};
