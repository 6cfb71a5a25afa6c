/**
 * Engine-neutral builders for signed roots and manifests (fixed seeds, no
 * Node APIs): used by the cases that run in Node and XS and by Node tests.
 */
import * as ed from '@noble/ed25519';
import type { Crypto } from '../../firmware/hal/crypto.ts';
import { configureEd25519 } from '../../firmware/security/noble-crypto.ts';
import { keyIdOf } from '../../firmware/security/verify.ts';
import { encodeImageBody, type ImageManifest } from '../../firmware/update/manifest.ts';
import { encodeEnvelope } from '../../firmware/update/signed-document.ts';
import { encodeRootBody, trustProvisionedRoot, type TrustedRoot } from '../../firmware/update/root.ts';

export const BOARD = 'esp32-wroom-32e-4mb';
export const SLOT_SIZE = 0x180000;

export interface TestKey {
  readonly seed: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly keyId: Uint8Array;
}

/** Key number `n` (1..255): seed of 32 bytes all equal to n. */
export function testKey(crypto: Crypto, n: number): TestKey {
  configureEd25519();
  const seed = new Uint8Array(32).fill(n);
  const publicKey = ed.getPublicKey(seed);
  return { seed, publicKey, keyId: keyIdOf(crypto, publicKey) };
}

export function signBody(body: Uint8Array, signers: readonly TestKey[]): Uint8Array {
  configureEd25519();
  return encodeEnvelope(
    body,
    signers.map((k) => ({ keyId: k.keyId, signature: ed.sign(body, k.seed) })),
  );
}

export interface RootSpec {
  version: number;
  rootThreshold: number;
  rootKeys: readonly TestKey[];
  targetsThreshold: number;
  targetsKeys: readonly TestKey[];
}

export function rootBody(spec: RootSpec): Uint8Array {
  return encodeRootBody({
    version: spec.version,
    root: { threshold: spec.rootThreshold, publicKeys: spec.rootKeys.map((k) => k.publicKey) },
    targets: { threshold: spec.targetsThreshold, publicKeys: spec.targetsKeys.map((k) => k.publicKey) },
  });
}

export function signedRoot(spec: RootSpec, signers: readonly TestKey[]): Uint8Array {
  return signBody(rootBody(spec), signers);
}

/** Deterministic image bytes. */
export function testImage(length: number, salt = 1): Uint8Array {
  const out = new Uint8Array(length);
  let x = (0x9e3779b9 ^ salt) >>> 0;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

export function sha256(crypto: Crypto, bytes: Uint8Array): Uint8Array {
  const h = crypto.createSha256();
  h.update(bytes);
  return h.digest();
}

export function manifestFields(crypto: Crypto, image: Uint8Array, overrides: Partial<ImageManifest> = {}): ImageManifest {
  return {
    rootVersion: 1,
    imageVersion: 2,
    securityVersion: 1,
    imageLength: image.length,
    imageDigest: sha256(crypto, image),
    boardId: BOARD,
    ...overrides,
  };
}

export function signedManifest(fields: ImageManifest, signers: readonly TestKey[]): Uint8Array {
  return signBody(encodeImageBody(fields), signers);
}

/** A small trust world: root 1 with root keys 1..3 (threshold 2) and targets keys 11..13 (threshold 1 unless told). */
export function testWorld(crypto: Crypto, targetsThreshold = 1) {
  const rootKeys = [1, 2, 3].map((n) => testKey(crypto, n));
  const targetsKeys = [11, 12, 13].map((n) => testKey(crypto, n));
  const spec: RootSpec = { version: 1, rootThreshold: 2, rootKeys, targetsThreshold, targetsKeys };
  const root1Bytes = signedRoot(spec, rootKeys.slice(0, 2));
  const verdict = trustProvisionedRoot(crypto, root1Bytes);
  if (!verdict.ok) throw new Error(`fixture root does not verify: ${verdict.reason}: ${verdict.message}`);
  const root1: TrustedRoot = verdict.root;
  return { rootKeys, targetsKeys, spec, root1Bytes, root1 };
}
