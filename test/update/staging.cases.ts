/**
 * Resumable staging under power cuts, in Node and XS: an image streamed
 * into a slot chunk by chunk, cut at every flash operation; after every
 * reboot the download resumes, re-transfers at most one chunk per cut, and
 * ends with the slot holding exactly the signed bytes.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { StagingProgress } from '../../firmware/update/staging-progress.ts';
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

export const suite: CaseSuite = {
  name: 'staging power cuts',
  cases: [
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
