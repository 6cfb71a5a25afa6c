/**
 * The byte layouts of docs/spec/image-manifest.md and docs/spec/root.md, as
 * annotated byte builders, and the specs' hex examples checked against the
 * code so the documents cannot drift.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { bytesToHex } from '../../firmware/security/verify.ts';
import { decodeImageBody, encodeImageBody } from '../../firmware/update/manifest.ts';
import { decodeEnvelope, MAX_ENVELOPE_LENGTH } from '../../firmware/update/signed-document.ts';
import { decodeRootBody, trustProvisionedRoot } from '../../firmware/update/root.ts';
import { sha256, signBody, signedRoot, testKey } from './manifest-fixtures.ts';

const crypto = createNobleCrypto();
const u32 = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24];
const ascii = (s: string) => Array.from(s, (c) => c.charCodeAt(0));

/** The hex dump that follows `<!-- example: name -->` in a spec. */
function specExample(doc: string, name: string): Uint8Array {
  const text = readFileSync(new URL(`../../docs/spec/${doc}`, import.meta.url), 'utf8');
  const at = text.indexOf(`<!-- example: ${name} -->`);
  assert.ok(at >= 0, `${doc} has an example named ${name}`);
  const block = /```text\n([\s\S]*?)```/.exec(text.slice(at));
  assert.ok(block, `${doc}: example ${name} has a text block`);
  const bytes = block[1]
    .trim()
    .split('\n')
    .flatMap((line) => line.trim().split(/\s+/).slice(1))
    .map((h) => parseInt(h, 16));
  return Uint8Array.from(bytes);
}

describe('IMAGE manifest layout', () => {
  const digest = sha256(crypto, Uint8Array.from(ascii('abc')));
  const fields = { rootVersion: 1, imageVersion: 7, securityVersion: 2, imageLength: 0x100000, imageDigest: digest, boardId: 'esp32-wroom-32e-4mb', rollout: { percent: 25, cohort: 3 } };

  it('the body is the documented bytes, field by field', () => {
    const expected = Uint8Array.from([
      0x02, // kind IMAGE
      0x01, // format version 1
      ...u32(1), // root version
      ...u32(7), // image version
      ...u32(2), // security version
      ...u32(0x100000), // image length
      ...digest, // SHA-256 of the image
      0x01, // flags: rollout
      25, // rollout percent
      ...u32(3), // rollout cohort
      19, // board id length
      ...ascii('esp32-wroom-32e-4mb'), // board id
    ]);
    assert.deepEqual(encodeImageBody(fields), expected);
    assert.equal(expected.length, 57 + 19);
  });

  it('the spec example decodes to its fields and is what the code signs', () => {
    const example = specExample('image-manifest.md', 'image-manifest');
    const signed = signBody(encodeImageBody(fields), [testKey(crypto, 11)]);
    assert.equal(bytesToHex(signed), bytesToHex(example), 'docs/spec/image-manifest.md example is stale');
    const doc = decodeEnvelope(example);
    assert.equal(doc.kind, 'image');
    assert.equal(bytesToHex(doc.signatures[0].keyId), 'fdf72a088f18f739');
    const m = decodeImageBody(doc.body);
    assert.equal(m.imageVersion, 7);
    assert.equal(m.boardId, 'esp32-wroom-32e-4mb');
    assert.deepEqual({ ...m.rollout }, { percent: 25, cohort: 3 });
  });

  it('the largest envelope is 2633 bytes', () => {
    assert.equal(MAX_ENVELOPE_LENGTH, 8 + 2048 + 1 + 8 * 72);
    assert.equal(MAX_ENVELOPE_LENGTH, 2633);
  });
});

describe('ROOT layout', () => {
  const k1 = testKey(crypto, 1);
  const k11 = testKey(crypto, 11);

  it('the body is the documented bytes, field by field', () => {
    const root = signedRoot({ version: 1, rootThreshold: 1, rootKeys: [k1], targetsThreshold: 1, targetsKeys: [k11] }, [k1]);
    const body = decodeEnvelope(root).body;
    const expected = Uint8Array.from([
      0x01, // kind ROOT
      0x01, // format version 1
      ...u32(1), // root version
      1, // root threshold
      1, // root keys
      1, // targets threshold
      1, // targets keys
      ...k1.publicKey, // root key 0
      ...k11.publicKey, // targets key 0
    ]);
    assert.deepEqual(body, expected);
    const decoded = decodeRootBody(crypto, body);
    assert.equal(bytesToHex(decoded.root.keys[0].keyId), '34750f98bd59fcfc');
  });

  it('the spec example is what the code signs, and it is a trusted root', () => {
    const example = specExample('root.md', 'root');
    const signed = signedRoot({ version: 1, rootThreshold: 1, rootKeys: [k1], targetsThreshold: 1, targetsKeys: [k11] }, [k1]);
    assert.equal(bytesToHex(signed), bytesToHex(example), 'docs/spec/root.md example is stale');
    assert.equal(trustProvisionedRoot(crypto, example).ok, true);
  });
});
