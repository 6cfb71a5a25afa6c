/**
 * Image manifests (docs/spec/image-manifest.md, format 1): the IMAGE body
 * and the checks the update agent runs before it writes anything
 * (`checkManifest`) and after streaming (`checkImageDigest`).
 *
 * The signed envelope both document kinds travel in is signed-document.ts;
 * the ROOT body and the trust rules are root.ts (docs/spec/root.md).
 */
import type { Crypto } from '../hal/crypto.ts';
import { constantTimeEqual } from '../security/_ct.ts';
import { SignatureTally } from '../security/verify.ts';
import { reject, UpdateError, type Rejection } from './errors.ts';
import type { TrustedRoot } from './root.ts';
import {
  checkBodyKind,
  checkU32,
  decodeDocument,
  DOCUMENT_KIND,
  hex2,
  rejectSignatures,
  SIGNED_DOCUMENT_FORMAT_VERSION,
  type SignedDocument,
} from './signed-document.ts';

/** IMAGE body: fixed part before the board id (docs/spec/image-manifest.md, "IMAGE body"). */
export const IMAGE_FIXED_LENGTH = 57;
export const MAX_BOARD_ID_LENGTH = 32;
export const SHA256_LENGTH = 32;
/** IMAGE flags bit 0: the rollout fields are in force. Other bits are reserved (0). */
export const IMAGE_FLAG_ROLLOUT = 0x01;
export interface Rollout {
  /** Share of devices, 0..100; a device is in when its bucket (0..99) is below it. */
  readonly percent: number;
  /** Salt of the device's bucket: a new cohort reshuffles which devices go first. */
  readonly cohort: number;
}

export interface ImageManifest {
  /** Version of the root whose targets keys signed this manifest. */
  readonly rootVersion: number;
  readonly imageVersion: number;
  readonly securityVersion: number;
  /** Exact image length in bytes. */
  readonly imageLength: number;
  /** SHA-256 of the whole image. */
  readonly imageDigest: Uint8Array;
  /** Printable ASCII (0x21..0x7E), 1..32 bytes. */
  readonly boardId: string;
  readonly rollout?: Rollout;
}

/** What the device knows about itself when it judges a manifest. */
export interface ManifestPolicy {
  readonly boardId: string;
  /** Version of the running image: a manifest must be strictly above it. */
  readonly runningVersion: number;
  /** Persisted anti-rollback floor: the security version must not be below it. */
  readonly securityFloor: number;
  /** Bytes of the slot the image will be written to. */
  readonly slotSize: number;
  /** This device's rollout bucket, 0..99 (`rolloutBucket`); without it rollout fields are not applied. */
  readonly rolloutBucket?: number;
}

export type ManifestVerdict =
  | { readonly ok: true; readonly manifest: ImageManifest; readonly signers: number }
  | Rejection;

export type ImageVerdict = { readonly ok: true } | Rejection;

// ---------------------------------------------------------------- IMAGE body

export function encodeImageBody(manifest: ImageManifest): Uint8Array {
  checkU32(manifest.rootVersion, 'rootVersion', 1);
  checkU32(manifest.imageVersion, 'imageVersion', 0);
  checkU32(manifest.securityVersion, 'securityVersion', 0);
  checkU32(manifest.imageLength, 'imageLength', 1);
  if (!(manifest.imageDigest instanceof Uint8Array) || manifest.imageDigest.length !== SHA256_LENGTH) throw new RangeError('imageDigest must be 32 bytes');
  const board = boardIdBytes(manifest.boardId);
  const out = new Uint8Array(IMAGE_FIXED_LENGTH + board.length);
  const view = new DataView(out.buffer);
  out[0] = DOCUMENT_KIND.image;
  out[1] = SIGNED_DOCUMENT_FORMAT_VERSION;
  view.setUint32(2, manifest.rootVersion, true);
  view.setUint32(6, manifest.imageVersion, true);
  view.setUint32(10, manifest.securityVersion, true);
  view.setUint32(14, manifest.imageLength, true);
  out.set(manifest.imageDigest, 18);
  if (manifest.rollout !== undefined) {
    const { percent, cohort } = manifest.rollout;
    if (!Number.isInteger(percent) || percent < 0 || percent > 100) throw new RangeError(`rollout percent must be an integer 0..100, got ${percent}`);
    checkU32(cohort, 'rollout cohort', 0);
    out[50] = IMAGE_FLAG_ROLLOUT;
    out[51] = percent;
    view.setUint32(52, cohort, true);
  }
  out[56] = board.length;
  out.set(board, IMAGE_FIXED_LENGTH);
  return out;
}

/**
 * Decode an IMAGE body. Throws UpdateError: 'unknown-format' for an unknown
 * kind or format byte, 'wrong-kind' for a ROOT body, 'malformed' otherwise.
 */
export function decodeImageBody(body: Uint8Array): ImageManifest {
  checkBodyKind(body, 'image');
  if (body.length < IMAGE_FIXED_LENGTH + 1) throw new UpdateError('malformed', `image body of ${body.length} bytes, at least ${IMAGE_FIXED_LENGTH + 1}`);
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const rootVersion = view.getUint32(2, true);
  const imageVersion = view.getUint32(6, true);
  const securityVersion = view.getUint32(10, true);
  const imageLength = view.getUint32(14, true);
  const flags = body[50];
  const percent = body[51];
  const cohort = view.getUint32(52, true);
  const boardLength = body[56];
  if (rootVersion === 0) throw new UpdateError('malformed', 'root version 0 (versions start at 1)');
  if (imageLength === 0) throw new UpdateError('malformed', 'image length 0');
  if ((flags & ~IMAGE_FLAG_ROLLOUT) !== 0) throw new UpdateError('malformed', `reserved flag bits set: 0x${hex2(flags)}`);
  const hasRollout = (flags & IMAGE_FLAG_ROLLOUT) !== 0;
  if (hasRollout && percent > 100) throw new UpdateError('malformed', `rollout percent ${percent} above 100`);
  if (!hasRollout && (percent !== 0 || cohort !== 0)) throw new UpdateError('malformed', 'rollout fields set without the rollout flag');
  if (boardLength < 1 || boardLength > MAX_BOARD_ID_LENGTH) throw new UpdateError('malformed', `board id length ${boardLength} outside 1..${MAX_BOARD_ID_LENGTH}`);
  if (body.length !== IMAGE_FIXED_LENGTH + boardLength) {
    throw new UpdateError('malformed', `image body is ${body.length} bytes, its board id of ${boardLength} makes ${IMAGE_FIXED_LENGTH + boardLength}`);
  }
  let boardId = '';
  for (let i = IMAGE_FIXED_LENGTH; i < body.length; i++) {
    if (body[i] < 0x21 || body[i] > 0x7e) throw new UpdateError('malformed', `board id byte 0x${hex2(body[i])} is not printable ASCII`);
    boardId += String.fromCharCode(body[i]);
  }
  const manifest: ImageManifest = {
    rootVersion,
    imageVersion,
    securityVersion,
    imageLength,
    imageDigest: body.slice(18, 18 + SHA256_LENGTH),
    boardId,
    ...(hasRollout ? { rollout: Object.freeze({ percent, cohort }) } : {}),
  };
  return Object.freeze(manifest);
}

/** Decode a manifest envelope without judging it (the fields are unauthenticated until `checkManifest`). */
export function decodeImageManifest(bytes: Uint8Array): { document: SignedDocument; manifest: ImageManifest } {
  const document = decodeDocument(bytes, 'image');
  return { document, manifest: decodeImageBody(document.body) };
}

// ---------------------------------------------------------------- checks

/**
 * Everything the update agent checks before it writes a byte of the image,
 * in this order (docs/spec/image-manifest.md, "Checks"): well-formed and a
 * known format; signed under a root the device has; a threshold of that
 * root's targets keys; then, on authenticated fields only: board, version
 * strictly above the running one, security version not below the floor,
 * length within the slot, rollout. Pure: no flash, no clock.
 */
export function checkManifest(crypto: Crypto, trusted: TrustedRoot, bytes: Uint8Array, policy: ManifestPolicy): ManifestVerdict {
  checkPolicy(policy);
  let decoded: { document: SignedDocument; manifest: ImageManifest };
  try {
    decoded = decodeImageManifest(bytes);
  } catch (error) {
    if (error instanceof UpdateError) return reject(error.code, error.message);
    throw error;
  }
  const { document, manifest } = decoded;
  if (manifest.rootVersion > trusted.version) {
    return reject('unknown-root', `manifest names root ${manifest.rootVersion}, this device trusts root ${trusted.version}: apply the newer roots first`);
  }
  const tally = new SignatureTally(crypto, document.body, document.signatures).count(trusted.targets.keys, trusted.targets.threshold);
  if (!tally.met) return rejectSignatures(tally, document.signatures.length, `targets keys of root ${trusted.version}`);
  if (manifest.boardId !== policy.boardId) return reject('wrong-board', `manifest is for board ${manifest.boardId}, this is ${policy.boardId}`);
  if (manifest.imageVersion <= policy.runningVersion) {
    return reject('old-version', `image version ${manifest.imageVersion} is not above the running version ${policy.runningVersion}`);
  }
  if (manifest.securityVersion < policy.securityFloor) {
    return reject('below-security-floor', `security version ${manifest.securityVersion} is below the floor ${policy.securityFloor}`);
  }
  if (manifest.imageLength > policy.slotSize) return reject('too-large', `image of ${manifest.imageLength} bytes does not fit the ${policy.slotSize}-byte slot`);
  if (manifest.rollout !== undefined && policy.rolloutBucket !== undefined && policy.rolloutBucket >= manifest.rollout.percent) {
    return reject('not-in-rollout', `rollout at ${manifest.rollout.percent}% (cohort ${manifest.rollout.cohort}) does not include bucket ${policy.rolloutBucket}`);
  }
  return { ok: true, manifest, signers: tally.valid };
}

/**
 * After streaming: the image's SHA-256 and byte count against the manifest.
 * Shorter than declared is 'truncated'; longer, or another digest, 'tampered'.
 */
export function checkImageDigest(manifest: ImageManifest, digest: Uint8Array, length: number): ImageVerdict {
  if (!(digest instanceof Uint8Array) || digest.length !== SHA256_LENGTH) throw new RangeError('digest must be a 32-byte SHA-256');
  if (!Number.isInteger(length) || length < 0) throw new RangeError(`length must be a non-negative integer, got ${length}`);
  if (length < manifest.imageLength) return reject('truncated', `image has ${length} of the ${manifest.imageLength} bytes the manifest declares`);
  if (length > manifest.imageLength) return reject('tampered', `image has ${length} bytes, the manifest declares ${manifest.imageLength}`);
  if (!constantTimeEqual(digest, manifest.imageDigest)) return reject('tampered', 'image SHA-256 differs from the manifest');
  return { ok: true };
}

/**
 * A device's rollout bucket for `cohort`, 0..99: the first four bytes of
 * SHA-256(cohort as u32 LE || deviceId), little-endian, modulo 100. Stable
 * for a device and cohort; raising the percentage only adds devices.
 */
export function rolloutBucket(crypto: Crypto, deviceId: Uint8Array, cohort: number): number {
  if (!(deviceId instanceof Uint8Array)) throw new TypeError('deviceId must be a Uint8Array');
  checkU32(cohort, 'cohort', 0);
  const prefix = new Uint8Array(4);
  new DataView(prefix.buffer).setUint32(0, cohort, true);
  const hash = crypto.createSha256();
  hash.update(prefix);
  hash.update(deviceId);
  const d = hash.digest();
  return ((d[0] | (d[1] << 8) | (d[2] << 16) | (d[3] << 24)) >>> 0) % 100;
}

// ---------------------------------------------------------------- helpers

function checkPolicy(policy: ManifestPolicy): void {
  if (typeof policy !== 'object' || policy === null) throw new TypeError('policy must be an object');
  if (typeof policy.boardId !== 'string') throw new TypeError('policy.boardId must be a string');
  checkU32(policy.runningVersion, 'policy.runningVersion', 0);
  checkU32(policy.securityFloor, 'policy.securityFloor', 0);
  if (!Number.isSafeInteger(policy.slotSize) || policy.slotSize < 0) throw new RangeError(`policy.slotSize must be a non-negative integer, got ${policy.slotSize}`);
  const bucket = policy.rolloutBucket;
  if (bucket !== undefined && (!Number.isInteger(bucket) || bucket < 0 || bucket > 99)) throw new RangeError(`policy.rolloutBucket must be 0..99, got ${bucket}`);
}

function boardIdBytes(boardId: string): Uint8Array {
  if (typeof boardId !== 'string') throw new TypeError('boardId must be a string');
  if (boardId.length < 1 || boardId.length > MAX_BOARD_ID_LENGTH) throw new RangeError(`board id must be 1..${MAX_BOARD_ID_LENGTH} characters, got ${boardId.length}`);
  const out = new Uint8Array(boardId.length);
  for (let i = 0; i < boardId.length; i++) {
    const c = boardId.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) throw new RangeError(`board id ${JSON.stringify(boardId)} must be printable ASCII without spaces`);
    out[i] = c;
  }
  return out;
}
