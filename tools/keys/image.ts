/**
 * Host side of image signing and verification (`holdfast sign`, `holdfast
 * verify`): the same firmware functions the device runs (checkManifest,
 * checkImageDigest), fed from files.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bytesToHex } from '../../firmware/security/verify.ts';
import { UpdateError, type UpdateReason } from '../../firmware/update/errors.ts';
import {
  checkImageDigest,
  checkManifest,
  decodeImageManifest,
  encodeImageBody,
  type ImageManifest,
  type Rollout,
} from '../../firmware/update/manifest.ts';
import { MAX_U32 } from '../../firmware/update/signed-document.ts';
import type { TrustedRoot } from '../../firmware/update/root.ts';
import { REPO_ROOT } from '../cli/package-info.ts';
import { loadRootChain, loadTargetsSigners } from './keystore.ts';
import { hostCrypto, keyIdHex, signEnvelope } from './signer.ts';
import { hashInput, statInput } from '../cli/files.ts';

/** Reasons checkManifest gives only after the signatures passed. */
const AFTER_SIGNATURES: ReadonlySet<UpdateReason> = new Set<UpdateReason>(['wrong-board', 'old-version', 'below-security-floor', 'too-large', 'not-in-rollout']);

export interface SignImageOptions {
  imageVersion: number;
  securityVersion: number;
  boardId: string;
  rollout?: Rollout;
}

export interface SignedImage {
  manifest: ImageManifest;
  bytes: Uint8Array;
  signers: string[];
}

/** An image as the checks see it: its length, and its SHA-256 computed only when needed (streamed from a file). */
export interface ImageSource {
  length: number;
  digest(): Promise<Uint8Array>;
}

/**
 * A manifest for `image`, signed by the current targets keys of the chain in
 * `dir`; with `partial`, by whichever of them the directory holds (even none),
 * for other key holders to `holdfast cosign` and `holdfast combine`.
 */
export async function signImage(dir: string, image: ImageSource, options: SignImageOptions, partial = false): Promise<SignedImage & { complete: boolean }> {
  if (image.length === 0) throw new Error('the image is empty: expected the app binary to install');
  if (image.length > MAX_U32) throw new Error(`the image is ${image.length} bytes: a manifest describes at most ${MAX_U32}`);
  const { trusted } = loadRootChain(dir);
  const signers = loadTargetsSigners(dir, trusted, partial);
  const manifest: ImageManifest = {
    rootVersion: trusted.version,
    imageVersion: options.imageVersion,
    securityVersion: options.securityVersion,
    imageLength: image.length,
    imageDigest: await image.digest(),
    boardId: options.boardId,
    ...(options.rollout ? { rollout: options.rollout } : {}),
  };
  const bytes = signEnvelope(encodeImageBody(manifest), signers);
  const check = await verifyImage({ length: image.length, digest: async () => manifest.imageDigest }, bytes, { trusted, runningVersion: 0, securityFloor: 0, boardId: options.boardId, slotSize: MAX_U32 });
  const complete = check.ok || check.reason === 'old-version';
  if (!complete && !partial) throw new Error(`internal: the new manifest does not verify: ${check.reason}: ${check.message}`);
  return { manifest, bytes, signers: signers.map(keyIdHex), complete };
}

export interface VerifyImageOptions {
  trusted: TrustedRoot;
  runningVersion: number;
  securityFloor: number;
  /** Default: the manifest's own board (no board check). */
  boardId?: string;
  /** Default: the board's app slot from boards/<board>/board.json, else 2^32 - 1. */
  slotSize?: number;
}

export type VerifyImageResult =
  | { ok: true; manifest: ImageManifest; signers: number; slotSize: number }
  | {
      ok: false;
      reason: UpdateReason;
      message: string;
      /** The decoded manifest, if it decodes. */
      manifest: ImageManifest | undefined;
      /** Whether the manifest's signatures passed (the refusal is about its content or the image). */
      authenticated: boolean;
    };

/** The device's checks: the manifest first; the image is hashed only if the manifest passes and the length matches. */
export async function verifyImage(image: ImageSource, manifestBytes: Uint8Array, options: VerifyImageOptions): Promise<VerifyImageResult> {
  const unauthenticated = tryDecode(manifestBytes);
  const boardId = options.boardId ?? unauthenticated?.boardId ?? '';
  const slotSize = options.slotSize ?? boardSlotSize(boardId) ?? MAX_U32;
  const verdict = checkManifest(hostCrypto(), options.trusted, manifestBytes, {
    boardId,
    runningVersion: options.runningVersion,
    securityFloor: options.securityFloor,
    slotSize,
  });
  if (!verdict.ok) return { ok: false, reason: verdict.reason, message: verdict.message, manifest: unauthenticated, authenticated: AFTER_SIGNATURES.has(verdict.reason) };
  // A length that differs is refused without reading the image (checkImageDigest checks the length first).
  const digest = image.length === verdict.manifest.imageLength ? await image.digest() : new Uint8Array(32);
  const image_ = checkImageDigest(verdict.manifest, digest, image.length);
  if (!image_.ok) return { ok: false, reason: image_.reason, message: image_.message, manifest: verdict.manifest, authenticated: true };
  return { ok: true, manifest: verdict.manifest, signers: verdict.signers, slotSize };
}

/** The smallest app slot (ota_*) of boards/<boardId>/board.json, if that board is known: an image must fit either slot. */
export function boardSlotSize(boardId: string): number | undefined {
  if (!/^[\w.-]+$/.test(boardId)) return undefined;
  try {
    const board = JSON.parse(readFileSync(join(REPO_ROOT, 'boards', boardId, 'board.json'), 'utf8')) as { partitions?: Record<string, { size: number }> };
    const sizes = Object.entries(board.partitions ?? {})
      .filter(([name]) => /^ota_\d+$/.test(name))
      .map(([, p]) => p.size);
    return sizes.length > 0 ? Math.min(...sizes) : undefined;
  } catch {
    return undefined;
  }
}

/** JSON view of a manifest (digest in hex). */
export function manifestJson(manifest: ImageManifest): Record<string, unknown> {
  return {
    rootVersion: manifest.rootVersion,
    imageVersion: manifest.imageVersion,
    securityVersion: manifest.securityVersion,
    imageLength: manifest.imageLength,
    imageSha256: bytesToHex(manifest.imageDigest),
    boardId: manifest.boardId,
    rollout: manifest.rollout ?? null,
  };
}

function tryDecode(bytes: Uint8Array): ImageManifest | undefined {
  try {
    return decodeImageManifest(bytes).manifest;
  } catch (error) {
    if (error instanceof UpdateError) return undefined;
    throw error;
  }
}

/** An image file as an ImageSource: its size now, its SHA-256 streamed on demand. */
export function imageFile(path: string): ImageSource {
  const stats = statInput(path, 'an image file (the app binary)');
  return { length: stats.size, digest: async () => (await hashInput(path, 'an image file (the app binary)', Number.MAX_SAFE_INTEGER)).digest };
}
