/**
 * Host side of image signing and verification (`holdfast sign`, `holdfast
 * verify`): the same firmware functions the device runs (checkManifest,
 * checkImageDigest, and the agent's ESP-IDF image check checkAppImage), fed
 * from files: images are read in bounded pieces, never whole.
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
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
import { checkAppImage, ESP_CHIPS, type AppImageVerdict, type EspChip } from '../../firmware/update/esp-app-image.ts';
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { BoardError, listBoards, loadBoard, type Board } from '../boards/board.ts';
import { CliError, UsageError } from '../cli/errors.ts';

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
  /** The image as a read-only partition for the ESP-IDF image checks (absent: not checked, e.g. a manifest alone). */
  open?(): ImageSlot;
}

/** A read-only FlashPartition over a file, read in the validator's bounded pieces. */
export interface ImageSlot extends FlashPartition {
  close(): void;
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
  /**
   * The chip of a board, asked for only once the manifest passed (its board
   * is then authenticated): with it (and an image that can be opened), the
   * image must be a valid ESP-IDF app image for that chip carrying the
   * manifest's versions. It may throw (an unknown board).
   */
  chipFor?: (boardId: string) => EspChip;
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
  if (options.chipFor !== undefined && image.open !== undefined) {
    // What the agent checks before it selects the staged slot (UpdateAgent.checkStagedImage), with its reason.
    const app = checkImageFile(image, options.chipFor(boardId), verdict.manifest);
    if (!app.ok) return { ok: false, reason: 'tampered', message: `the image disagrees with the signed manifest (version ${verdict.manifest.imageVersion}, security version ${verdict.manifest.securityVersion}): ${app.message}`, manifest: verdict.manifest, authenticated: true };
  }
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

/** The manifest's fields without checking its signatures, or undefined if it does not decode. */
export function tryDecode(bytes: Uint8Array): ImageManifest | undefined {
  try {
    return decodeImageManifest(bytes).manifest;
  } catch (error) {
    if (error instanceof UpdateError) return undefined;
    throw error;
  }
}

/** An image file as an ImageSource: its size now, its SHA-256 streamed on demand, its bytes through `open`. */
export function imageFile(path: string): ImageSource {
  const stats = statInput(path, 'an image file (the app binary)');
  return { length: stats.size, digest: async () => (await hashInput(path, 'an image file (the app binary)', Number.MAX_SAFE_INTEGER)).digest, open: () => openImageSlot(path) };
}

/** `path` as a read-only partition of its own size (offset 0 = the image's first byte). */
export function openImageSlot(path: string): ImageSlot {
  const fd = openSync(path, 'r');
  const size = fstatSync(fd).size;
  const refuse = (): never => {
    throw new Error('an image file is read-only here');
  };
  return {
    status: () => ({ size, blockLength: 4096, blocks: Math.ceil(size / 4096), writeAlign: 1, eraseValue: 0xff }),
    read(offset: number, into: Uint8Array): void {
      if (offset < 0 || offset + into.length > size) throw new RangeError(`read of ${into.length} bytes at ${offset} past the ${size}-byte image`);
      for (let done = 0; done < into.length; ) {
        const n = readSync(fd, into, done, into.length - done, offset + done);
        if (n === 0) throw new Error(`the image file shrank while it was read (at ${offset + done})`);
        done += n;
      }
    },
    write: refuse,
    eraseBlock: refuse,
    close: () => closeSync(fd),
  };
}

/** checkAppImage over an image source (its file opened, read in bounded pieces, closed). */
export function checkImageFile(image: ImageSource, chip: EspChip, expected: { imageVersion: number; securityVersion: number }): AppImageVerdict {
  if (image.open === undefined) throw new Error('internal: the image cannot be opened');
  const slot = image.open();
  try {
    return checkAppImage(slot, chip, expected, hostCrypto().createSha256);
  } finally {
    slot.close();
  }
}

/** The chip of a board (boards/<id>/board.json). */
export function chipOf(board: Board): EspChip {
  return ESP_CHIPS[board.chip];
}

/**
 * boards/<id>/board.json, or a one-line CLI error: an id with no board
 * folder is bad usage (exit 2) naming boards/<id>; a board.json that does
 * not validate is a failure (exit 1).
 */
export function boardForFlag(id: string, field = '--board'): Board {
  try {
    return loadBoard(id);
  } catch (error) {
    if (!(error instanceof BoardError)) throw error;
    if (error.code === 'unknown-board') throw new UsageError(`${JSON.stringify(id)}: no boards/${id}/board.json: expected one of ${knownBoards()}`, { field });
    throw new CliError(error.message, { code: 'invalid-file', file: error.file, field: error.field });
  }
}

function knownBoards(): string {
  try {
    return listBoards().join(', ');
  } catch {
    return 'a folder of boards/';
  }
}
