/**
 * Stream an image into the inactive slot with a running SHA-256
 * (docs/design/update.md, "Staging").
 *
 * Chunks are one erase block each: a chunk's block is erased right before
 * the chunk is written (the watchdog is fed around every erase, so a long
 * slot erase never starves it), and its progress entry follows once the
 * bytes are durable. After a power cut the download resumes at the first
 * chunk without a progress entry: at most one chunk is transferred again.
 * The hash of the chunks already in the slot is recomputed from flash (of
 * the whole image when the log says it is complete).
 */
import type { FlashPartition } from '../hal/flash.ts';
import type { Crypto, Sha256 } from '../hal/crypto.ts';
import type { Watchdog } from '../hal/watchdog.ts';
import type { StagingProgress } from './staging-progress.ts';

/** Where the image comes from: the messaging layer or the simulator. */
export interface ImageSource {
  /**
   * Exactly `length` bytes at `offset`, or fewer if the source has no more;
   * undefined when they have not arrived yet (a source fed chunk by chunk,
   * the MQTT one): staging stops there, 'pending', and resumes at that
   * offset on the next call.
   */
  read(offset: number, length: number): Uint8Array | undefined;
}

/**
 * RAM kept by the caller between calls of one boot: the running hash of
 * the chunks staged so far, so a download fed one chunk per call does not
 * hash its prefix again from flash on every call (a reboot loses it: then
 * the prefix is hashed once from flash, as after any cut).
 */
export interface StagingCursor {
  tag: number;
  /** Chunks the hash covers. */
  chunk: number;
  hash: Sha256 | undefined;
}

export interface StagingTarget {
  slot: FlashPartition;
  progress: StagingProgress;
  crypto: Pick<Crypto, 'createSha256'>;
  watchdog?: Pick<Watchdog, 'feed'>;
  cursor?: StagingCursor;
}

export interface ExpectedImage {
  /** Ties progress to this image: the first 4 bytes of its digest, as a u32. */
  tag: number;
  length: number;
  sha256: Uint8Array;
}

export type StageOutcome =
  | { ok: true; resumedAtChunk: number; chunksWritten: number }
  | { ok: false; reason: 'too-large' | 'truncated' | 'tampered'; message: string }
  /** The source has not the chunk at `offset` yet: chunks before it are durable, nothing of it was written. */
  | { ok: false; reason: 'pending'; offset: number; length: number; message: string };

export function imageTag(sha256: Uint8Array): number {
  return (sha256[0] | (sha256[1] << 8) | (sha256[2] << 16) | (sha256[3] << 24)) >>> 0;
}

export function stageImage(target: StagingTarget, image: ExpectedImage, source: ImageSource): StageOutcome {
  const { slot, progress } = target;
  const { blockLength, size, writeAlign } = slot.status();
  if (image.length > size) return { ok: false, reason: 'too-large', message: `image of ${image.length} bytes does not fit the ${size}-byte slot` };
  const chunks = Math.ceil(image.length / blockLength);
  if (chunks > progress.capacity) return { ok: false, reason: 'too-large', message: `image needs ${chunks} chunks; the progress log holds ${progress.capacity}` };
  const session = progress.session();
  // A complete session whose BEGIN and COMPLETE were both damaged has an unknown length (0): its tag decides.
  const resumable = session !== undefined && session.tag === image.tag && (session.imageLength === image.length || (session.complete && session.imageLength === 0));
  // A complete session is re-hashed whole from the slot: its chunk entries are not needed (one may be damaged).
  const resumeAt = resumable ? (session.complete ? chunks : Math.min(session.chunksDone, chunks)) : 0;
  if (!resumable) progress.begin(image.tag, image.length);
  const cursor = target.cursor;
  // The caller's hash of this boot continues only where it stopped, for the same image and an unfinished session.
  const kept = cursor !== undefined && cursor.hash !== undefined && resumable && !session.complete && cursor.tag === image.tag && cursor.chunk === resumeAt ? cursor.hash : undefined;
  if (cursor !== undefined) cursor.hash = undefined;
  const hash = kept ?? target.crypto.createSha256();
  const buffer = new Uint8Array(blockLength);
  for (let chunk = 0; kept === undefined && chunk < resumeAt; chunk++) {
    const part = buffer.subarray(0, chunkLength(image.length, blockLength, chunk));
    slot.read(chunk * blockLength, part);
    hash.update(part);
  }
  if (!(resumable && session.complete)) {
    for (let chunk = resumeAt; chunk < chunks; chunk++) {
      const length = chunkLength(image.length, blockLength, chunk);
      const data = source.read(chunk * blockLength, length);
      if (data === undefined) {
        if (cursor !== undefined) {
          cursor.tag = image.tag;
          cursor.chunk = chunk;
          cursor.hash = hash;
        }
        return { ok: false, reason: 'pending', offset: chunk * blockLength, length, message: `waiting for ${length} bytes at ${chunk * blockLength}` };
      }
      if (data.length !== length) {
        return { ok: false, reason: 'truncated', message: `the source ended at byte ${chunk * blockLength + data.length} of ${image.length}` };
      }
      target.watchdog?.feed();
      slot.eraseBlock(chunk);
      target.watchdog?.feed();
      slot.write(chunk * blockLength, padTo(data, writeAlign, buffer));
      hash.update(data);
      progress.chunkDone(chunk);
    }
  }
  if (!equalBytes(hash.digest(), image.sha256)) {
    // Start over next time: these bytes are not the signed image.
    progress.begin(0, 0);
    return { ok: false, reason: 'tampered', message: 'the image in the slot does not hash to the signed digest' };
  }
  if (!(resumable && session.complete)) progress.markComplete();
  return { ok: true, resumedAtChunk: resumeAt, chunksWritten: chunks - resumeAt };
}

function chunkLength(imageLength: number, blockLength: number, chunk: number): number {
  return Math.min(blockLength, imageLength - chunk * blockLength);
}

/** `data` padded with 0xFF to a whole number of program units (in `scratch` when it must be copied). */
function padTo(data: Uint8Array, writeAlign: number, scratch: Uint8Array): Uint8Array {
  if (data.length % writeAlign === 0) return data;
  const padded = scratch.subarray(0, Math.ceil(data.length / writeAlign) * writeAlign);
  padded.set(data);
  padded.fill(0xff, data.length);
  return padded;
}

/** Equal length and bytes, without an early exit on the first difference. */
function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a[i] ^ b[i];
  return difference === 0;
}
