/**
 * Signed manifests and roots, verified inside the engines that run firmware
 * (Node and XS 13.3): the @noble-backed Crypto HAL, acceptance, every attack
 * with its reason code, and root rotation with revocation.
 */
import * as ed from '@noble/ed25519';
import type { Crypto } from '../../firmware/hal/crypto.ts';
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { bytesToHex } from '../../firmware/security/verify.ts';
import type { UpdateReason } from '../../firmware/update/errors.ts';
import {
  checkImageDigest,
  checkManifest,
  encodeImageBody,
  rolloutBucket,
  type ManifestPolicy,
} from '../../firmware/update/manifest.ts';
import { decodeEnvelope, encodeEnvelope } from '../../firmware/update/signed-document.ts';
import { applyRootChain, decodeRootBody, encodeRootBody, rotateRoot, trustProvisionedRoot, type TrustedRoot } from '../../firmware/update/root.ts';
import { ed25519PublicKeyProblem } from '../../firmware/security/ed25519-key.ts';
import { UpdateError } from '../../firmware/update/errors.ts';
import { bytesEqual, equal, ok } from '../support/check.ts';
import type { CaseSuite, FirmwareCase } from '../support/cases.ts';
import {
  BOARD,
  manifestFields,
  sha256,
  signBody,
  signedManifest,
  signedRoot,
  SLOT_SIZE,
  testImage,
  testKey,
  testWorld,
} from './manifest-fixtures.ts';

const POLICY: ManifestPolicy = Object.freeze({ boardId: BOARD, runningVersion: 1, securityFloor: 1, slotSize: SLOT_SIZE });

function hex(text: string): Uint8Array {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function ascii(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

function expectReason(verdict: { ok: boolean; reason?: UpdateReason; message?: string }, reason: UpdateReason, what: string): void {
  ok(!verdict.ok, `${what}: accepted, expected ${reason}`);
  equal(verdict.reason, reason, `${what} (${verdict.message})`);
  ok(typeof verdict.message === 'string' && verdict.message.length > 0 && !verdict.message.includes('\n'), `${what}: one-line message`);
}

function expectOk<T extends { ok: boolean; reason?: string; message?: string }>(verdict: T, what: string): T & { ok: true } {
  ok(verdict.ok, `${what}: refused with ${verdict.reason}: ${verdict.message}`);
  return verdict as T & { ok: true };
}

/** Root 2 of testWorld: root key 1 replaced by key 4, targets key 11 replaced by key 14. */
function rotatedWorld(crypto: Crypto) {
  const w = testWorld(crypto);
  const k4 = testKey(crypto, 4);
  const k14 = testKey(crypto, 14);
  const spec2 = { ...w.spec, version: 2, rootKeys: [k4, w.rootKeys[1], w.rootKeys[2]], targetsKeys: [k14, w.targetsKeys[1], w.targetsKeys[2]] };
  return { ...w, k4, k14, spec2 };
}

/** p = 2^255 - 19, little-endian; y + p for small y is a non-canonical encoding of y. */
function plusPrime(y: number, sign: boolean): Uint8Array {
  const out = new Uint8Array(32).fill(0xff);
  out[0] = 0xed + y;
  out[31] = sign ? 0xff : 0x7f;
  return out;
}

/**
 * Every encoding of a small-order point that a lenient (ZIP-215) decoder
 * accepts: the eight canonical encodings (identity, order 2, two of order 4,
 * four of order 8) and the non-canonical ones (x = 0 with the sign bit,
 * y + p for y = 0 and 1). Each is checked to decode to a point P with [8]P = 0.
 */
function smallOrderEncodings(): Uint8Array[] {
  const canonical = [
    '0100000000000000000000000000000000000000000000000000000000000000',
    'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
    '0000000000000000000000000000000000000000000000000000000000000000',
    '0000000000000000000000000000000000000000000000000000000000000080',
    'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
    'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
    '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
    '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85',
  ].map(hex);
  const withSign = (bytes: Uint8Array) => {
    const out = bytes.slice();
    out[31] |= 0x80;
    return out;
  };
  const all = [...canonical, withSign(canonical[0]), withSign(canonical[1]), plusPrime(0, false), plusPrime(0, true), plusPrime(1, false), plusPrime(1, true)];
  const points = new Set<string>();
  for (const bytes of all) {
    const point = ed.Point.fromBytes(bytes, true);
    ok(point.isSmallOrder(), `${bytesToHex(bytes)} is of small order`);
    points.add(point.toHex());
  }
  equal(points.size, 8, 'the encodings name all eight small-order points');
  equal(new Set(all.map(bytesToHex)).size, all.length, 'distinct encodings');
  return all;
}

/** y + p (both signs) for the y in 2..18 that are ordinary curve points. */
function nonCanonicalOrdinary(): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let y = 2; y < 19; y++) {
    for (const sign of [false, true]) {
      const bytes = plusPrime(y, sign);
      try {
        if (!ed.Point.fromBytes(bytes, true).isSmallOrder()) out.push(bytes);
      } catch {
        // not a point
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------- crypto HAL

const cryptoCases: FirmwareCase[] = [
  {
    name: 'noble Crypto HAL: SHA-256 and HMAC-SHA-256 vectors (FIPS 180-4, RFC 4231 case 2)',
    run() {
      const crypto = createNobleCrypto();
      bytesEqual(sha256(crypto, ascii('abc')), hex('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'), 'SHA-256("abc")');
      const h = crypto.createSha256();
      h.update(ascii('a'));
      h.update(ascii('bc'));
      bytesEqual(h.digest(), sha256(crypto, ascii('abc')), 'incremental SHA-256');
      bytesEqual(
        crypto.hmacSha256(ascii('Jefe'), ascii('what do ya want for nothing?')),
        hex('5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843'),
        'HMAC-SHA-256 RFC 4231 test case 2',
      );
    },
  },
  {
    name: 'noble Crypto HAL: Ed25519 verify (RFC 8032 7.1 test 1), strict on malformed input',
    run() {
      const crypto = createNobleCrypto();
      const pub = hex('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a');
      const sig = hex('e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b');
      ok(crypto.ed25519Verify(sig, new Uint8Array(0), pub), 'RFC 8032 test 1 verifies');
      bytesEqual(ed.getPublicKey(hex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60')), pub, 'RFC 8032 test 1 public key');
      ok(!crypto.ed25519Verify(sig, Uint8Array.of(0), pub), 'another message fails');
      ok(!crypto.ed25519Verify(sig.subarray(0, 63), new Uint8Array(0), pub), 'short signature is false, not a throw');
      ok(!crypto.ed25519Verify(sig, new Uint8Array(0), pub.subarray(1)), 'short key is false');
      const flipped = sig.slice();
      flipped[63] ^= 0x80;
      ok(!crypto.ed25519Verify(flipped, new Uint8Array(0), pub), 'non-canonical S is false');
      // A small-order public key (the identity, y = 1) with R = identity and S = 0 verifies any message under ZIP-215 rules;
      // strict RFC 8032 verification must refuse it.
      const identity = new Uint8Array(32);
      identity[0] = 1;
      const weak = new Uint8Array(64);
      weak[0] = 1;
      ok(!crypto.ed25519Verify(weak, ascii('any message'), identity), 'small-order key refused');
      ok(ed.verify(weak, ascii('any message'), identity), 'the library default (ZIP-215) would accept it: why we pass zip215: false');
    },
  },
  {
    name: 'noble Crypto HAL: ChaCha20-Poly1305 (RFC 8439 2.8.2) seal and open',
    run() {
      const crypto = createNobleCrypto();
      const key = hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
      const nonce = hex('070000004041424344454647');
      const aad = hex('50515253c0c1c2c3c4c5c6c7');
      const plaintext = ascii("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.");
      const sealed = crypto.aeadSeal(key, nonce, plaintext, aad);
      bytesEqual(sealed.subarray(sealed.length - 16), hex('1ae10b594f09e26a7e902ecbd0600691'), 'RFC 8439 2.8.2 tag');
      bytesEqual(sealed.subarray(0, 16), hex('d31a8d34648e60db7b86afbc53ef7ec2'), 'RFC 8439 2.8.2 first ciphertext block');
      const opened = crypto.aeadOpen(key, nonce, sealed, aad);
      ok(opened !== undefined, 'opens');
      bytesEqual(opened, plaintext, 'round trip');
      const bad = sealed.slice();
      bad[3] ^= 1;
      equal(crypto.aeadOpen(key, nonce, bad, aad), undefined, 'tampered ciphertext');
      equal(crypto.aeadOpen(key, nonce, sealed, Uint8Array.of(1)), undefined, 'other AAD');
      equal(crypto.aeadOpen(key, nonce, sealed.subarray(0, 5), aad), undefined, 'shorter than a tag');
    },
  },
];

// ---------------------------------------------------------------- manifests

const manifestCases: FirmwareCase[] = [
  {
    name: 'a manifest signed by a targets key of the trusted root is accepted; the image matches',
    run() {
      const crypto = createNobleCrypto();
      const w = testWorld(crypto);
      const image = testImage(3000);
      const fields = manifestFields(crypto, image, { rollout: { percent: 40, cohort: 7 } });
      const bytes = signedManifest(fields, [w.targetsKeys[1]]);
      const verdict = expectOk(checkManifest(crypto, w.root1, bytes, POLICY), 'valid manifest');
      equal(verdict.manifest.imageVersion, 2, 'image version');
      equal(verdict.manifest.boardId, BOARD, 'board');
      equal(verdict.manifest.rollout?.percent, 40, 'rollout percent');
      equal(verdict.signers, 1, 'signers');
      expectOk(checkImageDigest(verdict.manifest, sha256(crypto, image), image.length), 'image digest');
      const bucket = rolloutBucket(crypto, ascii('device-0001'), 7);
      ok(bucket >= 0 && bucket < 100, 'bucket in 0..99');
      equal(rolloutBucket(crypto, ascii('device-0001'), 7), bucket, 'bucket is stable');
      const inside = checkManifest(crypto, w.root1, bytes, { ...POLICY, rolloutBucket: 39 });
      expectOk(inside, 'bucket 39 is inside a 40% rollout');
      expectReason(checkManifest(crypto, w.root1, bytes, { ...POLICY, rolloutBucket: 40 }), 'not-in-rollout', 'bucket 40 of a 40% rollout');
      return { envelopeBytes: bytes.length };
    },
  },
  {
    name: 'threshold 2 of 3: duplicated and reordered signatures count once per key',
    run() {
      const crypto = createNobleCrypto();
      const w = testWorld(crypto, 2);
      const image = testImage(100);
      const body = encodeImageBody(manifestFields(crypto, image));
      const [a, b] = w.targetsKeys;
      const sa = { keyId: a.keyId, signature: ed.sign(body, a.seed) };
      const sb = { keyId: b.keyId, signature: ed.sign(body, b.seed) };
      expectOk(checkManifest(crypto, w.root1, encodeEnvelope(body, [sb, sa]), POLICY), 'two keys, reordered');
      expectReason(checkManifest(crypto, w.root1, encodeEnvelope(body, [sa, sa, sa, sa, sa, sa, sa, sa]), POLICY), 'too-few-signatures', 'one key eight times');
      const garbage = { keyId: b.keyId, signature: new Uint8Array(64).fill(9) };
      expectOk(checkManifest(crypto, w.root1, encodeEnvelope(body, [garbage, sa, sb]), POLICY), 'a bad copy of b does not spoil its good one');
      expectReason(checkManifest(crypto, w.root1, encodeEnvelope(body, [garbage, sa]), POLICY), 'bad-signature', 'a and a bad b');
      const stranger = testKey(crypto, 99);
      const ss = { keyId: stranger.keyId, signature: ed.sign(body, stranger.seed) };
      expectReason(checkManifest(crypto, w.root1, encodeEnvelope(body, [ss, sa]), POLICY), 'too-few-signatures', 'a and a stranger');
      // A stranger's signature under a targets key's id is a bad signature, not a valid one.
      expectReason(checkManifest(crypto, w.root1, encodeEnvelope(body, [{ keyId: b.keyId, signature: ss.signature }, sa]), POLICY), 'bad-signature', 'stranger claims b');
    },
  },
];

interface AttackRow {
  name: string;
  expected: UpdateReason;
  /** Returns the manifest bytes and optional policy changes. */
  build(crypto: Crypto, w: ReturnType<typeof testWorld>, image: Uint8Array): { bytes: Uint8Array; policy?: Partial<ManifestPolicy>; trusted?: TrustedRoot };
}

/** Attacks on manifests, each refused with its reason (docs/spec/image-manifest.md, "Reason codes"). */
const ATTACKS: readonly AttackRow[] = [
  { name: 'signed by a key that is not a targets key', expected: 'wrong-key', build: (c, w, i) => ({ bytes: signedManifest(manifestFields(c, i), [testKey(c, 99)]) }) },
  { name: 'signed by a root key instead of a targets key', expected: 'wrong-key', build: (c, w, i) => ({ bytes: signedManifest(manifestFields(c, i), [w.rootKeys[0]]) }) },
  { name: 'no signatures', expected: 'too-few-signatures', build: (c, w, i) => ({ bytes: signedManifest(manifestFields(c, i), []) }) },
  {
    name: 'body changed after signing (version bumped)',
    expected: 'bad-signature',
    build(c, w, i) {
      const bytes = signedManifest(manifestFields(c, i), [w.targetsKeys[0]]);
      bytes[8 + 6] += 1; // image version, low byte
      return { bytes };
    },
  },
  { name: 'for another board', expected: 'wrong-board', build: (c, w, i) => ({ bytes: signedManifest(manifestFields(c, i, { boardId: 'esp32-c3-devkit' }), [w.targetsKeys[0]]) }) },
  {
    name: 'replay of an older validly signed manifest',
    expected: 'old-version',
    build: (c, w, i) => ({ bytes: signedManifest(manifestFields(c, i, { imageVersion: 2 }), [w.targetsKeys[0]]), policy: { runningVersion: 3 } }),
  },
  { name: 'the running version again', expected: 'old-version', build: (c, w, i) => ({ bytes: signedManifest(manifestFields(c, i, { imageVersion: 1 }), [w.targetsKeys[0]]) }) },
  {
    name: 'security version below the floor',
    expected: 'below-security-floor',
    build: (c, w, i) => ({ bytes: signedManifest(manifestFields(c, i, { imageVersion: 9, securityVersion: 2 }), [w.targetsKeys[0]]), policy: { securityFloor: 3 } }),
  },
  {
    name: 'declared length exceeds the slot',
    expected: 'too-large',
    build: (c, w, i) => ({ bytes: signedManifest(manifestFields(c, i, { imageLength: SLOT_SIZE + 1 }), [w.targetsKeys[0]]) }),
  },
  {
    name: 'unknown envelope format version',
    expected: 'unknown-format',
    build(c, w, i) {
      const bytes = signedManifest(manifestFields(c, i), [w.targetsKeys[0]]);
      bytes[4] = 2;
      return { bytes };
    },
  },
  {
    name: 'unknown body format version (validly signed)',
    expected: 'unknown-format',
    build(c, w, i) {
      const body = encodeImageBody(manifestFields(c, i));
      body[1] = 2;
      return { bytes: signBody(body, [w.targetsKeys[0]]) };
    },
  },
  {
    name: 'unknown document kind',
    expected: 'unknown-format',
    build(c, w, i) {
      const body = encodeImageBody(manifestFields(c, i));
      body[0] = 0x07;
      return { bytes: signBody(body, [w.targetsKeys[0]]) };
    },
  },
  { name: 'a root document offered as a manifest', expected: 'wrong-kind', build: (c, w) => ({ bytes: w.root1Bytes }) },
  {
    name: 'signed under a root the device does not have yet',
    expected: 'unknown-root',
    build: (c, w, i) => ({ bytes: signedManifest(manifestFields(c, i, { rootVersion: 2 }), [w.targetsKeys[0]]) }),
  },
  {
    name: 'truncated envelope',
    expected: 'malformed',
    build: (c, w, i) => ({ bytes: signedManifest(manifestFields(c, i), [w.targetsKeys[0]]).subarray(0, 100) }),
  },
  { name: 'erased flash', expected: 'malformed', build: () => ({ bytes: new Uint8Array(200).fill(0xff) }) },
  {
    name: 'trailing bytes after the signatures',
    expected: 'malformed',
    build(c, w, i) {
      const bytes = signedManifest(manifestFields(c, i), [w.targetsKeys[0]]);
      const longer = new Uint8Array(bytes.length + 1);
      longer.set(bytes);
      return { bytes: longer };
    },
  },
];

const attackCases: FirmwareCase[] = ATTACKS.map((row) => ({
  name: `attack refused (${row.expected}): ${row.name}`,
  run() {
    const crypto = createNobleCrypto();
    const w = testWorld(crypto);
    const image = testImage(2000);
    const { bytes, policy, trusted } = row.build(crypto, w, image);
    expectReason(checkManifest(crypto, trusted ?? w.root1, bytes, { ...POLICY, ...policy }), row.expected, row.name);
  },
}));

const imageCases: FirmwareCase[] = [
  {
    name: 'streamed image: tampered, truncated and overlong images are refused',
    run() {
      const crypto = createNobleCrypto();
      const w = testWorld(crypto);
      const image = testImage(4096);
      const verdict = expectOk(checkManifest(crypto, w.root1, signedManifest(manifestFields(crypto, image), [w.targetsKeys[0]]), POLICY), 'manifest');
      const m = verdict.manifest;
      const tampered = image.slice();
      tampered[1234] ^= 0x01;
      expectReason(checkImageDigest(m, sha256(crypto, tampered), tampered.length), 'tampered', 'one bit flipped');
      const short = image.subarray(0, 4000);
      expectReason(checkImageDigest(m, sha256(crypto, short), short.length), 'truncated', 'image cut short');
      const long = new Uint8Array(4097);
      long.set(image);
      expectReason(checkImageDigest(m, sha256(crypto, long), long.length), 'tampered', 'image with an extra byte');
      expectOk(checkImageDigest(m, sha256(crypto, image), image.length), 'the real image');
    },
  },
];

// ---------------------------------------------------------------- roots

function rootCase(name: string, run: (crypto: Crypto, w: ReturnType<typeof rotatedWorld>) => void): FirmwareCase {
  return { name, run: () => run(createNobleCrypto(), rotatedWorld(createNobleCrypto())) };
}

const rootCases: FirmwareCase[] = [
  rootCase('root rotation 1 -> 2 signed by a threshold of the old and of the new root keys, including the added key, is accepted', (crypto, w) => {
    // Keys 2 and 3 are in both roots (both thresholds of 2); key 4 is added and signs for itself.
    const bytes = signedRoot(w.spec2, [w.rootKeys[1], w.rootKeys[2], w.k4]);
    const verdict = expectOk(rotateRoot(crypto, w.root1, bytes), 'rotation');
    equal(verdict.root.version, 2, 'new version');
    bytesEqual(verdict.root.targets.keys[0].keyId, w.k14.keyId, 'new targets key');
    bytesEqual(verdict.root.bytes, bytes, 'envelope kept for persistence');
  }),
  rootCase('root rotation signed only by the new root keys is refused (root-not-cross-signed)', (crypto, w) => {
    const k5 = testKey(crypto, 5);
    const k6 = testKey(crypto, 6);
    const spec = { ...w.spec2, rootKeys: [w.k4, k5, k6] };
    expectReason(rotateRoot(crypto, w.root1, signedRoot(spec, [w.k4, k5, k6])), 'root-not-cross-signed', 'only new keys');
  }),
  rootCase('root rotation signed only by the old root keys is refused (root-not-cross-signed)', (crypto, w) => {
    const k5 = testKey(crypto, 5);
    const k6 = testKey(crypto, 6);
    const spec = { ...w.spec2, rootKeys: [w.k4, k5, k6] };
    expectReason(rotateRoot(crypto, w.root1, signedRoot(spec, [w.rootKeys[0], w.rootKeys[1]])), 'root-not-cross-signed', 'only old keys');
    expectOk(rotateRoot(crypto, w.root1, signedRoot(spec, [w.rootKeys[0], w.rootKeys[1], w.k4, k6])), 'both thresholds: 2 old + 2 new');
  }),
  rootCase('rotation signed by kept keys only is refused when it adds a key: old-only, new-only, kept-only, old+new (issue 15.6)', (crypto, w) => {
    // Root 2 replaces root key 1 by key 4 (thresholds 2 of 3): kept keys 2 and 3, removed key 1, added key 4.
    const [k1, k2, k3] = w.rootKeys;
    const k4 = w.k4;
    const rotate = (signers: typeof w.rootKeys) => rotateRoot(crypto, w.root1, signedRoot(w.spec2, signers));
    // Kept keys meet both thresholds of 2, but no added key signed: nobody showed that key 4 is held.
    expectReason(rotate([k2, k3]), 'root-not-cross-signed', 'kept-only (keys 2, 3)');
    expectReason(rotate([k1, k2, k3]), 'root-not-cross-signed', 'old keys and kept keys, no added key');
    // Old-only: the removed key and one kept key meet the old threshold, not the new one.
    expectReason(rotate([k1, k2]), 'root-not-cross-signed', 'old-only (keys 1, 2)');
    expectReason(rotate([k1]), 'too-few-signatures', 'old-only, one key: neither threshold');
    // New-only: the added key alone, or with one kept key (new 2/2, old 1/2).
    expectReason(rotate([k4]), 'wrong-key', 'new-only (key 4): no key of root 1 signed');
    expectReason(rotate([k4, k3]), 'root-not-cross-signed', 'new-only plus one kept key: old threshold missed');
    // Old + new: accepted with the old threshold, the new threshold and the added key.
    expectOk(rotate([k2, k3, k4]), 'kept 2, 3 and added 4');
    expectOk(rotate([k1, k2, k4]), 'removed 1, kept 2 and added 4');
    expectOk(rotate([k4, k1, k3]), 'any order');
    // Adding two keys at threshold 2: both must sign (min(threshold, keys added) = 2).
    const k5 = testKey(crypto, 5);
    const spec = { ...w.spec2, rootKeys: [k4, k5, k3] };
    expectReason(rotateRoot(crypto, w.root1, signedRoot(spec, [k1, k3, k4])), 'root-not-cross-signed', 'two added, one signed');
    expectOk(rotateRoot(crypto, w.root1, signedRoot(spec, [k1, k3, k4, k5])), 'two added, both signed');
    // Replacing every key: a threshold of the added keys, i.e. the new threshold.
    const k6 = testKey(crypto, 6);
    const all = { ...w.spec2, rootKeys: [k4, k5, k6] };
    expectReason(rotateRoot(crypto, w.root1, signedRoot(all, [k1, k2, k4])), 'root-not-cross-signed', 'all replaced, one new signature');
    expectOk(rotateRoot(crypto, w.root1, signedRoot(all, [k1, k2, k4, k6])), 'all replaced, two new signatures');
    // No root key added (only targets keys change, or a threshold): kept keys suffice.
    const targetsOnly = { ...w.spec2, rootKeys: w.rootKeys };
    expectOk(rotateRoot(crypto, w.root1, signedRoot(targetsOnly, [k2, k3])), 'no root key added: kept keys 2, 3');
    const smaller = { ...w.spec2, rootThreshold: 1, rootKeys: [k2, k3] };
    expectOk(rotateRoot(crypto, w.root1, signedRoot(smaller, [k2, k3])), 'key 1 removed, none added');
    // A targets key of root 1 promoted to a root key counts as added: it has never signed a root.
    const promoted = { ...w.spec2, rootKeys: [w.targetsKeys[0], k2, k3] };
    expectReason(rotateRoot(crypto, w.root1, signedRoot(promoted, [k2, k3])), 'root-not-cross-signed', 'promoted targets key did not sign');
    expectOk(rotateRoot(crypto, w.root1, signedRoot(promoted, [k2, k3, w.targetsKeys[0]])), 'promoted targets key signed');
  }),
  rootCase('root rotation with one old key short of the threshold is refused', (crypto, w) => {
    const spec = { ...w.spec2, rootKeys: [w.k4, testKey(crypto, 5), w.rootKeys[2]] };
    // Key 3 counts for both, key 4 for the new root only: old 1/2, new 2/2.
    expectReason(rotateRoot(crypto, w.root1, signedRoot(spec, [w.rootKeys[2], w.k4])), 'root-not-cross-signed', 'old threshold missed');
  }),
  rootCase('root versions must go up by exactly one: skips, replays and repeats are refused', (crypto, w) => {
    const signers = [w.rootKeys[1], w.rootKeys[2], w.k4];
    expectReason(rotateRoot(crypto, w.root1, signedRoot({ ...w.spec2, version: 3 }, signers)), 'root-not-sequential', 'skip 1 -> 3');
    expectReason(rotateRoot(crypto, w.root1, w.root1Bytes), 'root-not-sequential', 'replay of root 1');
    const root2 = expectOk(rotateRoot(crypto, w.root1, signedRoot(w.spec2, signers)), 'root 2').root;
    expectReason(rotateRoot(crypto, root2, w.root1Bytes), 'root-not-sequential', 'rollback 2 -> 1');
    expectReason(rotateRoot(crypto, root2, root2.bytes), 'root-not-sequential', 'root 2 again');
  }),
  rootCase('root rotation signed by strangers, or tampered, gives a signature reason', (crypto, w) => {
    expectReason(rotateRoot(crypto, w.root1, signedRoot(w.spec2, [testKey(crypto, 98), testKey(crypto, 99)])), 'wrong-key', 'strangers');
    const bytes = signedRoot(w.spec2, [w.rootKeys[1], w.rootKeys[2], w.k4]);
    bytes[8 + 10 + 5] ^= 0x20; // inside the first root key
    expectReason(rotateRoot(crypto, w.root1, bytes), 'bad-signature', 'a root key changed after signing');
    const manifest = signedManifest(manifestFields(crypto, testImage(10)), [w.targetsKeys[0]]);
    expectReason(rotateRoot(crypto, w.root1, manifest), 'wrong-kind', 'a manifest offered as a root');
  }),
  rootCase('a provisioned root must carry a threshold of its own root keys', (crypto, w) => {
    expectReason(trustProvisionedRoot(crypto, signedRoot(w.spec, [w.rootKeys[0]])), 'too-few-signatures', 'one of two');
    expectReason(trustProvisionedRoot(crypto, signedRoot(w.spec, [w.targetsKeys[0], w.targetsKeys[1]])), 'wrong-key', 'signed by targets keys');
    expectOk(trustProvisionedRoot(crypto, w.root1Bytes), 'root 1');
  }),
  rootCase('chain root.1 -> root.2 -> root.3 revokes the first targets key: its manifests are refused, new ones accepted', (crypto, w) => {
    const image = testImage(5000, 3);
    const beforeRevocation = signedManifest(manifestFields(crypto, image, { imageVersion: 2 }), [w.targetsKeys[0]]);
    expectOk(checkManifest(crypto, w.root1, beforeRevocation, POLICY), 'key 11 is valid under root 1');
    // Root 2 replaces root key 1 with key 4; root 3 replaces targets key 11 with key 14.
    const spec2 = { ...w.spec, version: 2, rootKeys: [w.k4, w.rootKeys[1], w.rootKeys[2]] };
    const spec3 = { ...spec2, version: 3, targetsKeys: [w.k14, w.targetsKeys[1], w.targetsKeys[2]] };
    const root2 = signedRoot(spec2, [w.rootKeys[1], w.rootKeys[2], w.k4]);
    const root3 = signedRoot(spec3, [w.k4, w.rootKeys[2]]);
    const chain = applyRootChain(crypto, w.root1, [root2, root3]);
    const root = expectOk(chain, 'chain').root;
    equal(root.version, 3, 'reached root 3');
    expectReason(checkManifest(crypto, root, beforeRevocation, POLICY), 'wrong-key', 'manifest signed with the revoked key');
    const forged = signedManifest(manifestFields(crypto, image, { rootVersion: 3, imageVersion: 7 }), [w.targetsKeys[0]]);
    expectReason(checkManifest(crypto, root, forged, POLICY), 'wrong-key', 'new manifest signed with the revoked key');
    const fresh = signedManifest(manifestFields(crypto, image, { rootVersion: 3, imageVersion: 3 }), [w.k14]);
    expectOk(checkManifest(crypto, root, fresh, POLICY), 'manifest signed with the new key');
    const byKept = signedManifest(manifestFields(crypto, image, { rootVersion: 1, imageVersion: 4 }), [w.targetsKeys[1]]);
    expectOk(checkManifest(crypto, root, byKept, POLICY), 'an old manifest by a key that was kept stays valid');
    // Out of order, or with a gap, the chain stops and says where.
    const broken = applyRootChain(crypto, w.root1, [root3, root2]);
    ok(!broken.ok, 'reordered chain refused');
    if (!broken.ok) {
      equal(broken.reason, 'root-not-sequential', 'reordered chain reason');
      equal(broken.index, 0, 'stops at the first entry');
      equal(broken.root.version, 1, 'trust stays at root 1');
    }
    // Root key 1, removed by root 2, no longer counts: with kept key 3 it makes 1 of 2 for root 2 and for root 3.
    const r2 = expectOk(rotateRoot(crypto, w.root1, root2), 'root 2').root;
    expectReason(rotateRoot(crypto, r2, signedRoot(spec3, [w.rootKeys[0], w.rootKeys[2]])), 'too-few-signatures', 'revoked root key 1 signing root 3');
    return { rootKeyIds: r2.root.keys.map((k) => bytesToHex(k.keyId)).join(',') };
  }),
  rootCase('a root listing a small-order or non-canonical Ed25519 key is refused: every small-order encoding, in both roles (issue 15.5)', (crypto, w) => {
    const weak = smallOrderEncodings();
    equal(weak.length, 14, 'eight small-order points: 8 canonical and 6 non-canonical encodings');
    const message = ascii('install image 666');
    const identityR = new Uint8Array(64);
    identityR[0] = 1; // R = identity, S = 0
    for (const key of weak) {
      // The threat: a lenient (ZIP-215, cofactored) verifier accepts this forgery under every one of them.
      ok(ed.verify(identityR, message, key), `lenient verifier accepts a forgery under ${bytesToHex(key)}`);
      ok(!crypto.ed25519Verify(identityR, message, key), `strict verifier refuses it under ${bytesToHex(key)}`);
      ok(ed25519PublicKeyProblem(key) !== undefined, `${bytesToHex(key)} has a problem`);
      for (const [role, at] of [['root', 10], ['targets', 10 + 3 * 32]] as const) {
        const body = signedRoot(w.spec, []).subarray(8, 8 + 10 + 6 * 32).slice();
        body.set(key, at);
        let code = 'decoded';
        try {
          decodeRootBody(crypto, body);
        } catch (error) {
          ok(error instanceof UpdateError, `threw ${String(error)}`);
          code = (error as UpdateError).code;
        }
        equal(code, 'malformed', `${role} key ${bytesToHex(key)} in a root body`);
        const envelope = signBody(body, w.rootKeys.slice(0, 2));
        expectReason(trustProvisionedRoot(crypto, envelope), 'malformed', `provisioned root with ${role} key ${bytesToHex(key)}`);
        const rotation = body.slice();
        rotation[2] = 2;
        expectReason(rotateRoot(crypto, w.root1, signBody(rotation, w.rootKeys)), 'malformed', `rotation to a root with ${role} key ${bytesToHex(key)}`);
      }
      let threw = '';
      try {
        encodeRootBody({ version: 1, root: { threshold: 1, publicKeys: [key] }, targets: { threshold: 1, publicKeys: [w.targetsKeys[0].publicKey] } });
      } catch (error) {
        threw = error instanceof Error ? error.name : String(error);
      }
      equal(threw, 'RangeError', `encodeRootBody (holdfast keys init/rotate) refuses ${bytesToHex(key)}`);
    }
    // Non-canonical encodings of ordinary points (y + p) and bytes that are no point at all.
    const odd = nonCanonicalOrdinary();
    ok(odd.length > 0, 'some y + p encodes an ordinary point');
    for (const key of odd) ok(ed25519PublicKeyProblem(key)?.includes('non-canonical') === true, `${bytesToHex(key)} is non-canonical`);
    const notPoint = hex('0200000000000000000000000000000000000000000000000000000000000000');
    let onCurve = true;
    try {
      ed.Point.fromBytes(notPoint, true);
    } catch {
      onCurve = false;
    }
    ok(!onCurve, 'y = 2 is not on the curve');
    equal(ed25519PublicKeyProblem(notPoint), 'not a point of the curve', 'y = 2');
    // Every key the fixtures (and RFC 8032 key generation) make is fine.
    for (let n = 1; n <= 40; n++) equal(ed25519PublicKeyProblem(testKey(crypto, n).publicKey), undefined, `test key ${n}`);
    return { smallOrderEncodings: weak.length, nonCanonicalOrdinary: odd.length };
  }),
  rootCase('decodeEnvelope reads back what encodeEnvelope wrote', (crypto, w) => {
    const doc = decodeEnvelope(w.root1Bytes);
    equal(doc.kind, 'root', 'kind');
    equal(doc.signatures.length, 2, 'signatures');
    bytesEqual(doc.signatures[0].keyId, w.rootKeys[0].keyId, 'first signer');
  }),
];

export const suite: CaseSuite = {
  name: 'signed manifests and roots',
  cases: [...cryptoCases, ...manifestCases, ...attackCases, ...imageCases, ...rootCases],
};
