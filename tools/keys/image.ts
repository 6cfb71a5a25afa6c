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

/** A manifest for `image`, signed by the current targets keys of the chain in `dir`. */
export function signImage(dir: string, image: Uint8Array, options: SignImageOptions): SignedImage {
  if (image.length === 0) throw new Error('the image is empty');
  if (image.length > MAX_U32) throw new Error(`the image is ${image.length} bytes, a manifest describes at most ${MAX_U32}`);
  const { trusted } = loadRootChain(dir);
  const hash = hostCrypto().createSha256();
  hash.update(image);
  const manifest: ImageManifest = {
    rootVersion: trusted.version,
    imageVersion: options.imageVersion,
    securityVersion: options.securityVersion,
    imageLength: image.length,
    imageDigest: hash.digest(),
    boardId: options.boardId,
    ...(options.rollout ? { rollout: options.rollout } : {}),
  };
  const signers = loadTargetsSigners(dir, trusted);
  const bytes = signEnvelope(encodeImageBody(manifest), signers);
  const check = verifyImage(image, bytes, { trusted, runningVersion: 0, securityFloor: 0, boardId: options.boardId, slotSize: MAX_U32 });
  if (!check.ok && check.reason !== 'old-version') throw new Error(`internal: the new manifest does not verify: ${check.reason}: ${check.message}`);
  return { manifest, bytes, signers: signers.map(keyIdHex) };
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

export function verifyImage(image: Uint8Array, manifestBytes: Uint8Array, options: VerifyImageOptions): VerifyImageResult {
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
  const hash = hostCrypto().createSha256();
  hash.update(image);
  const image_ = checkImageDigest(verdict.manifest, hash.digest(), image.length);
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
