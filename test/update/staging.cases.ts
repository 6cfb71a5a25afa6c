/**
 * Resumable staging under power cuts, in Node and XS: an image streamed
 * into a slot chunk by chunk, cut at every flash operation; after every
 * reboot the download resumes, re-transfers at most one chunk per cut, and
 * ends with the slot holding exactly the signed bytes.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { encodeProgressEntry, PROGRESS_ENTRY_LENGTH, ProgressKind, StagingProgress } from '../../firmware/update/staging-progress.ts';
import { StorageError } from '../../firmware/storage/errors.ts';
import { crc32 } from '../../firmware/base/crc32.ts';
import { imageTag, stageImage, type ImageSource } from '../../firmware/update/staging.ts';
import { PartitionView } from '../../tools/sim/flash/partition-view.ts';
import { runExhaustive, runRandom, type CutScenario } from '../../tools/sim/power-cut.ts';
import type { FlashMode } from '../../tools/sim/flash/sim-flash.ts';
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { Rng } from '../../tools/sim/rng.ts';
import { bytesEqual, equal, ok, throws } from '../support/check.ts';
import type { CaseEnv, CaseSuite } from '../support/cases.ts';

const BLOCK = 256;
const SLOT_BLOCKS = 8;
const PROGRESS_BLOCKS = 2;
const NOBLE_CRYPTO = { createSha256: () => sha256.create() };

interface StagingState {
  transferred: number;
  boots: number;
  done: boolean;
}

function imageBytes(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  new Rng(length).fill(bytes);
  return bytes;
}

function partitions(flash: FlashPartition): { slot: FlashPartition; progress: FlashPartition } {
  return { slot: new PartitionView(flash, 0, SLOT_BLOCKS), progress: new PartitionView(flash, SLOT_BLOCKS, PROGRESS_BLOCKS) };
}

function countingSource(image: Uint8Array, state: StagingState): ImageSource {
  return {
    read(offset, length) {
      state.transferred += length;
      return image.subarray(offset, offset + length);
    },
  };
}

export function stagingScenario(mode: FlashMode, length: number): CutScenario<StagingState> {
  const image = imageBytes(length);
  const digest = sha256(image);
  return {
    name: `staging/${mode}/${length}`,
    flash: { blocks: SLOT_BLOCKS + PROGRESS_BLOCKS, blockLength: BLOCK, mode },
    createState: () => ({ transferred: 0, boots: 0, done: false }),
    boot(flash, state) {
      // Re-transfer bound: every cut so far costs at most one chunk.
      ok(state.transferred <= length + state.boots * BLOCK, `transferred ${state.transferred} bytes for a ${length}-byte image after ${state.boots} cuts`);
      state.boots++;
      const { slot, progress } = partitions(flash);
      const outcome = stageImage(
        { slot, progress: StagingProgress.open(progress), crypto: NOBLE_CRYPTO },
        { tag: imageTag(digest), length, sha256: digest },
        countingSource(image, state),
      );
      ok(outcome.ok, `staging failed: ${outcome.ok ? '' : outcome.message}`);
      const written = new Uint8Array(length);
      slot.read(0, written);
      bytesEqual(written, image, 'slot contents');
      ok(StagingProgress.open(progress).session()?.complete === true, 'progress says complete');
      state.done = true;
    },
  };
}

/** Write `entries` (kind, tag, value) from slot 0 of a fresh progress partition; a number entry is a raw 16-byte pattern. */
function progressLog(env: CaseEnv, mode: FlashMode, entries: readonly (readonly [number, number, number] | Uint8Array)[]): FlashPartition {
  const flash = env.createFlash({ blocks: PROGRESS_BLOCKS, blockLength: 4096, mode });
  entries.forEach((entry, slot) => flash.write(slot * PROGRESS_ENTRY_LENGTH, entry instanceof Uint8Array ? entry : encodeProgressEntry(entry[0], entry[1], entry[2])));
  return flash;
}

/** An entry whose CRC holds over edited bytes (what newer firmware, not a cut, writes). */
function resealed(kind: number, tag: number, value: number, edit: (bytes: Uint8Array) => void): Uint8Array {
  const bytes = encodeProgressEntry(kind, tag, value);
  edit(bytes);
  new DataView(bytes.buffer).setUint32(12, crc32(bytes, 0, 12), true);
  return bytes;
}

function refusal(run: () => unknown): string {
  try {
    run();
    return 'opened';
  } catch (error) {
    if (error instanceof StorageError) return error.code;
    throw error;
  }
}

const TAG = 0x5eed;
const { BEGIN, CHUNK, COMPLETE, TRIAL, REPORTED, CONFIRMED } = ProgressKind;
/** A torn entry: a cut left part of the 16 bytes programmed, the CRC fails. */
const TORN = Uint8Array.of(1, 4, 0, 0, 0xed, 0x5e, 0, 0, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);

export const suite: CaseSuite = {
  name: 'staging power cuts',
  cases: [
    {
      name: 'progress log: an entry in a newer format is refused (format-too-new), never skipped (it may be a TRIAL)',
      run(env) {
        for (const mode of ['plain', 'strict'] as const) {
          const newerTrial = resealed(TRIAL, TAG, 2, (b) => (b[0] = 2));
          const flash = progressLog(env, mode, [[BEGIN, TAG, 5000], [CHUNK, TAG, 0], [COMPLETE, TAG, 5000], [TRIAL, TAG, 1], newerTrial]);
          equal(refusal(() => StagingProgress.open(flash)), 'format-too-new', `${mode}: a format-2 TRIAL after trial 1`);
        }
        return {};
      },
    },
    {
      name: 'progress log: a CRC-valid entry this format does not define (unknown kind, reserved bytes) is refused (not-formatted)',
      run(env) {
        const unknownKind = resealed(BEGIN, TAG, 1, (b) => (b[1] = 9));
        const reserved = resealed(TRIAL, TAG, 1, (b) => (b[2] = 1));
        equal(refusal(() => StagingProgress.open(progressLog(env, 'plain', [[BEGIN, TAG, 10], unknownKind]))), 'not-formatted', 'kind 9');
        equal(refusal(() => StagingProgress.open(progressLog(env, 'plain', [[BEGIN, TAG, 10], reserved]))), 'not-formatted', 'reserved byte');
        return {};
      },
    },
    {
      name: 'progress log: the trial count is the highest readable TRIAL; unreadable entries after it are suspect (reported), never silently dropped',
      run(env) {
        // trials:suspect (the highest readable TRIAL, and the unreadable entries after it that may have been one).
        const trials = (entries: Parameters<typeof progressLog>[2]) => {
          const session = StagingProgress.open(progressLog(env, 'plain', entries)).session();
          return `${session?.trials}:${session?.suspect}`;
        };
        const base: Parameters<typeof progressLog>[2] = [[BEGIN, TAG, 5000], [CHUNK, TAG, 0], [COMPLETE, TAG, 5000]];
        equal(trials([...base, [TRIAL, TAG, 1], [TRIAL, TAG, 2]]), '2:0', 'two trials');
        equal(trials([...base, [TRIAL, TAG, 1], TORN]), '1:1', 'an unreadable entry after trial 1 may have been trial 2: suspect, reported by the agent');
        equal(trials([...base, [TRIAL, TAG, 1], TORN, [REPORTED, TAG, 1], TORN]), '1:2', 'every unreadable entry after the last TRIAL is suspect');
        equal(trials([...base, TORN, [TRIAL, TAG, 2]]), '2:0', 'an unreadable entry before a later TRIAL adds nothing');
        equal(trials([[BEGIN, TAG, 5000], [CHUNK, TAG, 0], TORN, [CHUNK, TAG, 1], [COMPLETE, TAG, 5000]]), '0:0', 'a torn CHUNK retried is not a trial');
        equal(trials([[BEGIN, TAG, 5000], [CHUNK, TAG, 0], TORN]), '0:0', 'a torn entry before the download reads complete is not a trial (no TRIAL is written before COMPLETE)');
        const confirmed = (entries: Parameters<typeof progressLog>[2]) => StagingProgress.open(progressLog(env, 'plain', entries)).session()?.confirmed;
        equal(confirmed([...base, [TRIAL, TAG, 1], [CONFIRMED, TAG, 1]]), true, 'CONFIRMED for the latest trial');
        equal(confirmed([...base, [TRIAL, TAG, 1], [CONFIRMED, TAG, 1], [TRIAL, TAG, 2]]), false, 'a later TRIAL is unconfirmed again');
        equal(confirmed([...base, [TRIAL, TAG, 1], [CONFIRMED, TAG, 1], TORN]), false, 'an unreadable entry after CONFIRMED may be a later TRIAL');
        const lostBegin = StagingProgress.open(progressLog(env, 'plain', [TORN, [CHUNK, TAG, 0], [COMPLETE, TAG, 5000], [TRIAL, TAG, 1], [TRIAL, TAG, 2]])).session();
        equal(`${lostBegin?.tag}:${lostBegin?.imageLength}:${lostBegin?.trials}`, `${TAG}:5000:2`, 'a damaged BEGIN: the session is rebuilt from its later entries, trials kept');
        const hole = new Uint8Array(PROGRESS_ENTRY_LENGTH).fill(0xff);
        equal(trials([...base, [TRIAL, TAG, 1], hole, [REPORTED, TAG, 1]]), '1:1', 'a blank hole between entries is damage: a possible trial');
        const lostComplete = StagingProgress.open(progressLog(env, 'plain', [[BEGIN, TAG, 5000], [CHUNK, TAG, 0], TORN, [TRIAL, TAG, 1]])).session();
        equal(`${lostComplete?.complete}:${lostComplete?.trials}`, 'true:1', 'a TRIAL after an unreadable COMPLETE still counts (and proves completeness)');
        return {};
      },
    },
    {
      name: 'a complete download whose CHUNK entry is unreadable is re-hashed whole from the slot: no re-download, trial count kept',
      run(env) {
        const length = 3 * BLOCK + 10;
        const image = imageBytes(length);
        const digest = sha256(image);
        const flash = env.createFlash({ blocks: SLOT_BLOCKS + PROGRESS_BLOCKS, blockLength: BLOCK, mode: 'plain' });
        const { slot, progress } = partitions(flash);
        const expected = { tag: imageTag(digest), length, sha256: digest };
        const source = { read: (o: number, l: number) => image.subarray(o, o + l) };
        ok(stageImage({ slot, progress: StagingProgress.open(progress), crypto: NOBLE_CRYPTO }, expected, source).ok, 'first download');
        StagingProgress.open(progress).recordTrial();
        // Damage CHUNK 1 (slot 2 of the log): bits cleared, its CRC fails.
        progress.write(2 * PROGRESS_ENTRY_LENGTH, new Uint8Array(PROGRESS_ENTRY_LENGTH));
        let transferred = 0;
        const again = stageImage({ slot, progress: StagingProgress.open(progress), crypto: NOBLE_CRYPTO }, expected, { read: (o, l) => ((transferred += l), source.read(o, l)) });
        ok(again.ok, `still ok: ${again.ok ? '' : again.message}`);
        equal(transferred, 0, 'nothing transferred again');
        equal(StagingProgress.open(progress).session()?.trials, 1, 'the trial count survived');
        return {};
      },
    },
    ...(['plain', 'strict'] as const).map((mode) => ({
      name: `exhaustive cuts: a ${5 * BLOCK + 37}-byte image, ${mode}`,
      run: (env: CaseEnv) => ({
        ...runExhaustive(stagingScenario(mode, 5 * BLOCK + 37), { createFlash: env.createFlash, saveFailureImage: env.saveFailureImage }),
      }),
    })),
    {
      name: 'random multi-cut runs, strict',
      run: (env) => ({ ...runRandom(stagingScenario('strict', 7 * BLOCK + 3), { createFlash: env.createFlash, runs: 30, maxCuts: 4, seed: 5 }) }),
    },
    {
      name: 'a tampered or truncated image is refused and the next download starts over',
      run(env) {
        for (const mode of ['plain', 'strict'] as const) {
          const length = 5 * BLOCK + 17;
          const image = imageBytes(length);
          const digest = sha256(image);
          const flash = env.createFlash({ blocks: SLOT_BLOCKS + PROGRESS_BLOCKS, blockLength: BLOCK, mode });
          const { slot, progress } = partitions(flash);
          const expected = { tag: imageTag(digest), length, sha256: digest };
          const tampered = image.slice();
          tampered[3 * BLOCK + 5] ^= 0x40;
          const bad = stageImage({ slot, progress: StagingProgress.open(progress), crypto: NOBLE_CRYPTO }, expected, { read: (o, l) => tampered.subarray(o, o + l) });
          equal(bad.ok ? 'ok' : bad.reason, 'tampered', `${mode}: tampered image`);
          const short = stageImage({ slot, progress: StagingProgress.open(progress), crypto: NOBLE_CRYPTO }, expected, { read: (o, l) => image.subarray(o, Math.min(o + l, 4 * BLOCK)) });
          equal(short.ok ? 'ok' : short.reason, 'truncated', `${mode}: truncated image`);
          const good = stageImage({ slot, progress: StagingProgress.open(progress), crypto: NOBLE_CRYPTO }, expected, { read: (o, l) => image.subarray(o, o + l) });
          ok(good.ok, `${mode}: the genuine image stages after a tampered one`);
          const huge = stageImage({ slot, progress: StagingProgress.open(progress), crypto: NOBLE_CRYPTO }, { ...expected, length: SLOT_BLOCKS * BLOCK + 1 }, { read: (o, l) => image.subarray(o, o + l) });
          equal(huge.ok ? 'ok' : huge.reason, 'too-large', `${mode}: an image longer than the slot`);
        }
        throws(() => new PartitionView(env.createFlash({ blocks: 2, blockLength: BLOCK }), 1, 2), 'RangeError', 'a partition past the end of the flash');
      },
    },
  ],
};
