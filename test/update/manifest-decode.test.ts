/**
 * Bad input for the signed-document decoders and checks (Node, fast-check):
 * random bytes, every single-bit flip, every truncation, extensions,
 * reordered and duplicated signatures. Always a clear reason: the decoders
 * throw UpdateError and nothing else, the checks never throw, and nothing
 * mutated is ever accepted.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as ed from '@noble/ed25519';
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { UpdateError, UPDATE_REASONS, type UpdateReason } from '../../firmware/update/errors.ts';
import {
  checkManifest,
  decodeImageBody,
  decodeImageManifest,
  encodeImageBody,
  type ImageManifest,
  type ManifestPolicy,
} from '../../firmware/update/manifest.ts';
import { decodeEnvelope, encodeEnvelope, MAX_ENVELOPE_LENGTH } from '../../firmware/update/signed-document.ts';
import { decodeRoot, decodeRootBody, rotateRoot, trustProvisionedRoot } from '../../firmware/update/root.ts';
import { BOARD, manifestFields, rootBody, signedManifest, signedRoot, SLOT_SIZE, testImage, testKey, testWorld } from './manifest-fixtures.ts';

const crypto = createNobleCrypto();
const POLICY: ManifestPolicy = { boardId: BOARD, runningVersion: 1, securityFloor: 1, slotSize: SLOT_SIZE };
const RUNS = 300;

/** Runs `f`; it may return or throw UpdateError with a known code and a one-line message, nothing else. */
function decodesOrUpdateError(f: () => unknown): UpdateReason | 'ok' {
  try {
    f();
    return 'ok';
  } catch (error) {
    assert.ok(error instanceof UpdateError, `threw ${String(error)}`);
    assert.ok(Object.hasOwn(UPDATE_REASONS, error.code), `unknown code ${error.code}`);
    assert.ok(error.message.length > 0 && !error.message.includes('\n'), 'one-line message');
    return error.code;
  }
}

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = bytes.slice();
  out[bit >> 3] ^= 1 << (bit & 7);
  return out;
}

describe('envelope decoder on arbitrary bytes', () => {
  it('random bytes: a document or UpdateError (malformed / unknown-format), never another throw', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: MAX_ENVELOPE_LENGTH + 64 }), (bytes) => {
        const code = decodesOrUpdateError(() => decodeEnvelope(bytes));
        assert.ok(code === 'ok' || code === 'malformed' || code === 'unknown-format', code);
      }),
      { numRuns: 2000 },
    );
  });

  it('random bytes behind a valid header and body length: still only UpdateError', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff }), fc.uint8Array({ maxLength: 3000 }), fc.constantFrom(0x01, 0x02, 0x00, 0x07), (bodyLength, rest, kind) => {
        const bytes = new Uint8Array(8 + rest.length);
        bytes.set([0x48, 0x46, 0x53, 0x44, 1, 0, bodyLength & 0xff, bodyLength >> 8]);
        bytes.set(rest, 8);
        if (rest.length > 1) {
          bytes[8] = kind;
          bytes[9] = 1;
        }
        decodesOrUpdateError(() => decodeImageManifest(bytes));
        decodesOrUpdateError(() => decodeRoot(crypto, bytes));
      }),
      { numRuns: 2000 },
    );
  });

  it('random IMAGE and ROOT bodies: decoded or malformed', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 2, maxLength: 600 }), (body) => {
        body[1] = 1;
        body[0] = 0x02;
        const image = decodesOrUpdateError(() => decodeImageBody(body));
        assert.ok(image === 'ok' || image === 'malformed', image);
        body[0] = 0x01;
        const root = decodesOrUpdateError(() => decodeRootBody(crypto, body));
        assert.ok(root === 'ok' || root === 'malformed', root);
      }),
      { numRuns: 3000 },
    );
  });

  it('body decoders check the kind and format bytes themselves (issue 15.4): nothing but their own kind in format 1 decodes', () => {
    const w = testWorld(crypto);
    const image = encodeImageBody(manifestFields(crypto, testImage(10)));
    const root = rootBody(w.spec);
    // The issue's reproduction: a valid body relabelled kind 7, format 9.
    for (const [name, body, decode] of [
      ['IMAGE', image, (b: Uint8Array) => decodeImageBody(b)],
      ['ROOT', root, (b: Uint8Array) => decodeRootBody(crypto, b)],
    ] as const) {
      assert.equal(decodesOrUpdateError(() => decode(body)), 'ok', `${name} as built`);
      const relabelled = body.slice();
      relabelled[0] = 7;
      relabelled[1] = 9;
      assert.equal(decodesOrUpdateError(() => decode(relabelled)), 'unknown-format', `${name} body as kind 7, format 9`);
      const otherFormat = body.slice();
      otherFormat[1] = 2;
      assert.equal(decodesOrUpdateError(() => decode(otherFormat)), 'unknown-format', `${name} body in format 2`);
      const erased = body.slice();
      erased[0] = 0xff;
      erased[1] = 0xff;
      assert.equal(decodesOrUpdateError(() => decode(erased)), 'unknown-format', `${name} body with erased kind and format`);
      assert.equal(decodesOrUpdateError(() => decode(body.subarray(0, 1))), 'malformed', `${name} body of one byte`);
    }
    assert.equal(decodesOrUpdateError(() => decodeImageBody(root)), 'wrong-kind', 'a ROOT body given to decodeImageBody');
    assert.equal(decodesOrUpdateError(() => decodeRootBody(crypto, image)), 'wrong-kind', 'an IMAGE body given to decodeRootBody');
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), (kind, format) => {
        for (const [own, body, decode] of [
          [0x02, image, (b: Uint8Array) => decodeImageBody(b)],
          [0x01, root, (b: Uint8Array) => decodeRootBody(crypto, b)],
        ] as const) {
          const b = body.slice();
          b[0] = kind;
          b[1] = format;
          const code = decodesOrUpdateError(() => decode(b));
          if (kind === own && format === 1) assert.equal(code, 'ok');
          else if (format !== 1 || (kind !== 0x01 && kind !== 0x02)) assert.equal(code, 'unknown-format', `kind ${kind} format ${format}`);
          else assert.equal(code, 'wrong-kind', `kind ${kind} format ${format}`);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('a huge input fails on its length without reading it', () => {
    const huge = new Uint8Array(16 * 1024 * 1024);
    huge.set([0x48, 0x46, 0x53, 0x44, 1, 0, 0x00, 0x08]);
    const started = performance.now();
    assert.equal(decodesOrUpdateError(() => decodeEnvelope(huge)), 'malformed');
    assert.ok(performance.now() - started < 50, 'fails fast');
  });

  it('checkManifest never throws on arbitrary bytes', () => {
    const w = testWorld(crypto);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        const verdict = checkManifest(crypto, w.root1, bytes, POLICY);
        assert.equal(verdict.ok, false);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('mutations of a valid signed manifest', () => {
  const w = testWorld(crypto);
  const image = testImage(1000);
  const good = signedManifest(manifestFields(crypto, image, { rollout: { percent: 50, cohort: 3 } }), [w.targetsKeys[0]]);

  it('the original is accepted', () => {
    assert.equal(checkManifest(crypto, w.root1, good, POLICY).ok, true);
  });

  it('every single-bit flip is refused with a reason (exhaustive)', () => {
    const reasons = new Map<string, number>();
    for (let bit = 0; bit < good.length * 8; bit++) {
      const verdict = checkManifest(crypto, w.root1, flipBit(good, bit), POLICY);
      assert.equal(verdict.ok, false, `bit ${bit} flipped was accepted`);
      if (!verdict.ok) reasons.set(verdict.reason, (reasons.get(verdict.reason) ?? 0) + 1);
    }
    // Header flips are malformed or unknown-format, body flips bad-signature (or a decode reason), key id flips wrong-key.
    for (const reason of ['malformed', 'unknown-format', 'bad-signature', 'wrong-key']) assert.ok(reasons.has(reason), `no flip gave ${reason}: ${[...reasons]}`);
  });

  it('every truncation is malformed (exhaustive); every extension is malformed', () => {
    for (let length = 0; length < good.length; length++) {
      const verdict = checkManifest(crypto, w.root1, good.subarray(0, length), POLICY);
      assert.equal(verdict.ok ? 'ok' : verdict.reason, 'malformed', `truncated to ${length}`);
    }
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 100 }), (tail) => {
        const longer = new Uint8Array(good.length + tail.length);
        longer.set(good);
        longer.set(tail, good.length);
        const verdict = checkManifest(crypto, w.root1, longer, POLICY);
        assert.equal(verdict.ok ? 'ok' : verdict.reason, 'malformed');
      }),
      { numRuns: RUNS },
    );
  });

  it('random byte overwrites are never accepted', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 6 }), (edits) => {
        const bytes = good.slice();
        for (const [at, xor] of edits) bytes[at] ^= xor;
        const verdict = checkManifest(crypto, w.root1, bytes, POLICY);
        assert.equal(verdict.ok, false);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('signature lists: reordered, duplicated, foreign, corrupt', () => {
  const w = testWorld(crypto, 2);
  const body = encodeImageBody(manifestFields(crypto, testImage(64)));
  const stranger = testKey(crypto, 77);
  // Pool: valid signatures of the three targets keys, a stranger, and a corrupt copy of each targets key's signature.
  const valid = w.targetsKeys.map((k) => ({ keyId: k.keyId, signature: ed.sign(body, k.seed), key: k.keyId, good: true }));
  const corrupt = valid.map((s) => ({ ...s, signature: flipBit(s.signature, 9), good: false }));
  const foreign = { keyId: stranger.keyId, signature: ed.sign(body, stranger.seed), key: stranger.keyId, good: false };
  const pool = [...valid, ...corrupt, foreign];

  it('accepted exactly when at least 2 distinct targets keys have a valid signature among them', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(pool.length - 1), { maxLength: 8 }), (picks) => {
        const entries = picks.map((i) => pool[i]);
        const distinctValid = new Set(entries.filter((e) => e.good).map((e) => e.keyId.join())).size;
        const verdict = checkManifest(crypto, w.root1, encodeEnvelope(body, entries), POLICY);
        assert.equal(verdict.ok, distinctValid >= 2, `picks ${picks}: ${verdict.ok ? 'ok' : `${verdict.reason}: ${verdict.message}`}`);
        if (!verdict.ok) {
          const anyCorruptKnown = entries.some((e) => !e.good && e !== foreign);
          const anyKnown = entries.some((e) => e !== foreign);
          if (entries.length === 0) assert.equal(verdict.reason, 'too-few-signatures');
          else if (!anyKnown) assert.equal(verdict.reason, 'wrong-key');
          else if (!anyCorruptKnown) assert.equal(verdict.reason, 'too-few-signatures');
          else assert.ok(verdict.reason === 'bad-signature' || verdict.reason === 'too-few-signatures', verdict.reason);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('verification stops at the threshold: 8 signatures cost at most 8 verifies, duplicates none', () => {
    let calls = 0;
    const counting = { ...crypto, ed25519Verify: (s: Uint8Array, m: Uint8Array, p: Uint8Array) => (calls++, crypto.ed25519Verify(s, m, p)) };
    const entries = [valid[0], valid[0], valid[0], valid[0], valid[0], valid[0], valid[1], valid[2]];
    assert.equal(checkManifest(counting, w.root1, encodeEnvelope(body, entries), POLICY).ok, true);
    assert.equal(calls, 2, 'one verify for key 11 (its duplicates skipped) and one for key 12');
  });
});

describe('round trips', () => {
  const manifestArb = fc.record({
    rootVersion: fc.integer({ min: 1, max: 0xffffffff }),
    imageVersion: fc.integer({ min: 0, max: 0xffffffff }),
    securityVersion: fc.integer({ min: 0, max: 0xffffffff }),
    imageLength: fc.integer({ min: 1, max: 0xffffffff }),
    imageDigest: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    boardId: fc.stringMatching(/^[\x21-\x7e]{1,32}$/),
    rollout: fc.option(fc.record({ percent: fc.integer({ min: 0, max: 100 }), cohort: fc.integer({ min: 0, max: 0xffffffff }) }), { nil: undefined }),
  });

  it('IMAGE body: decode(encode(m)) == m', () => {
    fc.assert(
      fc.property(manifestArb, (m) => {
        const { rollout, ...rest } = m;
        const fields: ImageManifest = rollout === undefined ? rest : { ...rest, rollout: { ...rollout } };
        const decoded = decodeImageBody(encodeImageBody(fields));
        assert.deepEqual({ ...decoded, rollout: decoded.rollout && { ...decoded.rollout } }, { ...rest, rollout: rollout && { ...rollout } });
      }),
      { numRuns: 1000 },
    );
  });

  it('ROOT body: decode(encode(r)) keeps version, thresholds and keys in order', () => {
    const keys = Array.from({ length: 10 }, (_, i) => testKey(crypto, 100 + i));
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 0xffffffff }),
        fc.uniqueArray(fc.nat(9), { minLength: 1, maxLength: 8 }),
        fc.uniqueArray(fc.nat(9), { minLength: 1, maxLength: 8 }),
        fc.nat(),
        fc.nat(),
        (version, rootIdx, targetsIdx, rt, tt) => {
          const spec = {
            version,
            rootKeys: rootIdx.map((i) => keys[i]),
            rootThreshold: 1 + (rt % rootIdx.length),
            targetsKeys: targetsIdx.map((i) => keys[i]),
            targetsThreshold: 1 + (tt % targetsIdx.length),
          };
          const decoded = decodeRootBody(crypto, rootBody(spec));
          assert.equal(decoded.version, version);
          assert.equal(decoded.root.threshold, spec.rootThreshold);
          assert.equal(decoded.targets.threshold, spec.targetsThreshold);
          assert.deepEqual(decoded.root.keys.map((k) => [...k.keyId]), spec.rootKeys.map((k) => [...k.keyId]));
          assert.deepEqual(decoded.targets.keys.map((k) => [...k.publicKey]), spec.targetsKeys.map((k) => [...k.publicKey]));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('ROOT body refuses a key listed twice in one role', () => {
    const k = testKey(crypto, 5);
    const body = rootBody({ version: 1, rootKeys: [k, testKey(crypto, 6)], rootThreshold: 1, targetsKeys: [k], targetsThreshold: 1 });
    body.set(k.publicKey, 10 + 32); // second root key := first
    assert.equal(decodesOrUpdateError(() => decodeRootBody(crypto, body)), 'malformed');
  });
});

describe('mutations of signed roots', () => {
  const w = testWorld(crypto);
  const k4 = testKey(crypto, 4);
  const spec2 = { ...w.spec, version: 2, rootKeys: [k4, w.rootKeys[1], w.rootKeys[2]] };
  const root2 = signedRoot(spec2, [w.rootKeys[1], w.rootKeys[2], k4]);

  it('the rotation is accepted as built', () => {
    assert.equal(rotateRoot(crypto, w.root1, root2).ok, true);
  });

  it('every single-bit flip of a rotation is refused (exhaustive), never thrown', () => {
    // Signed by kept keys 2 and 3 and added key 4, each needed: a damaged signature or key id of 2 or 3 loses both
    // thresholds of 2, one of key 4 loses the added key's signature.
    for (let bit = 0; bit < root2.length * 8; bit++) {
      const verdict = rotateRoot(crypto, w.root1, flipBit(root2, bit));
      assert.equal(verdict.ok, false, `bit ${bit} flipped was accepted`);
    }
  });

  it('every truncation of a provisioned root is malformed', () => {
    for (let length = 0; length < w.root1Bytes.length; length++) {
      const verdict = trustProvisionedRoot(crypto, w.root1Bytes.subarray(0, length));
      assert.equal(verdict.ok ? 'ok' : verdict.reason, 'malformed', `truncated to ${length}`);
    }
  });
});
