/**
 * The update path: flash traffic of staging a 1 MiB image, re-transfer after
 * a power cut at 50 %, cut points covered by the exhaustive suites, and the
 * cost of verification in the real XS engine.
 */
import { performance } from 'node:perf_hooks';
import { sha256 } from '@noble/hashes/sha2.js';
import { PROGRESS_ENTRY_LENGTH, StagingProgress } from '../firmware/update/staging-progress.ts';
import { imageTag, stageImage } from '../firmware/update/staging.ts';
import { setBootSlot } from '../firmware/update/otadata.ts';
import { PartitionView } from '../tools/sim/flash/partition-view.ts';
import { SimFlash } from '../tools/sim/flash/sim-flash.ts';
import { isPowerCut } from '../tools/sim/flash/errors.ts';
import { countOperations } from '../tools/sim/power-cut.ts';
import { provisionDevice } from '../tools/sim/bootloader.ts';
import { updateScenario } from '../test/update/agent.cases.ts';
import { stagingScenario } from '../test/update/staging.cases.ts';
import { makeWorld, partitionsOf } from '../test/update/agent-world.ts';
import type { BenchGroup, Figure } from './figures.ts';
import { openGuest } from './xs-guest.ts';

const MIB = 1 << 20;
const IMAGE = new Uint8Array(MIB).map((_, i) => (i * 131 + (i >>> 9)) & 0xff);
const DIGEST = sha256(IMAGE);
const CRYPTO = { createSha256: () => sha256.create() };

/** Otadata (2 blocks), a 1.5 MiB slot (384 blocks) and the progress log (2 blocks) on one flash. */
function layout() {
  const flash = new SimFlash({ blocks: 2 + 384 + 2 });
  return { flash, otadata: new PartitionView(flash, 0, 2), slot: new PartitionView(flash, 2, 384), progress: new PartitionView(flash, 386, 2) };
}

function stage(parts: ReturnType<typeof layout>, counter: { bytes: number }) {
  return stageImage(
    { slot: parts.slot, progress: StagingProgress.open(parts.progress), crypto: CRYPTO },
    { tag: imageTag(DIGEST), length: IMAGE.length, sha256: DIGEST },
    { read: (offset, length) => ((counter.bytes += length), IMAGE.subarray(offset, offset + length)) },
  );
}

function wholeUpdate(): { programmed: number; erases: number } {
  const parts = layout();
  stage(parts, { bytes: 0 });
  setBootSlot(parts.otadata, 1);
  return { programmed: parts.flash.counters.bytesProgrammed, erases: parts.flash.counters.erases };
}

function retransferAfterCutAtHalf(): number {
  const clean = layout();
  stage(clean, { bytes: 0 });
  const half = Math.floor(clean.flash.counters.operations / 2);
  const parts = layout();
  const counter = { bytes: 0 };
  parts.flash.armCut({ atOperation: half, seed: 50 });
  try {
    stage(parts, counter);
  } catch (error) {
    if (!isPowerCut(error)) throw error;
  }
  parts.flash.powerOn();
  const result = stage(parts, counter);
  if (!result.ok) throw new Error(`resumed staging failed: ${result.message}`);
  return counter.bytes - IMAGE.length;
}

function exhaustiveCutPoints(): number {
  const world = makeWorld();
  const provisioned = (options: ConstructorParameters<typeof SimFlash>[0]) => {
    const flash = new SimFlash(options);
    provisionDevice(partitionsOf(flash), world.factory.image);
    return flash;
  };
  let total = 0;
  for (const mode of ['plain', 'strict'] as const) {
    for (const behaviour of ['good', 'hang', 'fails-self-test'] as const) total += countOperations(updateScenario(mode, behaviour, world), { createFlash: provisioned });
    total += countOperations(stagingScenario(mode, 5 * 256 + 37), { createFlash: (o) => new SimFlash(o) });
  }
  return total;
}

export const updateBench: BenchGroup = {
  title: 'A/B update',
  prefix: 'update.',
  workload:
    'Staging a 1 MiB image into a 1.5 MiB slot in 4 KiB chunks (erase, program, progress entry per chunk) and selecting it in otadata; ' +
    'the same staging cut at half its flash operations and resumed; the cut points of the exhaustive update suites (whole update good and hanging, ' +
    'staging; plain and strict); one manifest check (Ed25519 verify of a targets signature, SHA-256 key ids) and SHA-256 of 1 MiB, in pure ' +
    'JavaScript in the real XS engine.',
  async run(progress) {
    progress('  update: staging a 1 MiB image');
    const update = wholeUpdate();
    const figures: Figure[] = [
      { name: 'update.bytesProgrammed.1MiB', value: update.programmed, unit: 'bytes', label: 'bytes programmed per 1 MiB update (image, progress log, otadata)', kind: 'count', target: '≈ 1 MiB + progress + 32', limit: MIB + (MIB / 4096 + 2) * PROGRESS_ENTRY_LENGTH + 32, direction: 'max' },
      { name: 'update.erases.1MiB', value: update.erases, unit: 'erases', label: 'sector erases per 1 MiB update (256 slot sectors, progress log, otadata)', kind: 'count' },
      { name: 'update.retransferBytes.cutAt50', value: retransferAfterCutAtHalf(), unit: 'bytes', label: 'bytes transferred again after a power cut at 50 % of the staging', kind: 'count', target: '≤ one chunk (4,096)', limit: 4_096, direction: 'max' },
      { name: 'update.cutPoints', value: exhaustiveCutPoints(), unit: 'cut points', label: 'flash operations cut (× 3 torn variants each) by the exhaustive update suites', kind: 'count' },
    ];
    progress('  update: verification in XS');
    const guest = await openGuest('bench/update-guest.ts', 'serveUpdateBench');
    try {
      guest.call({ op: 'prepare' });
      const one = guest.call({ op: 'verify', count: 1 }).meter.compute;
      const started = performance.now();
      const eleven = guest.call({ op: 'verify', count: 11 }).meter.compute;
      const ms = (performance.now() - started) / 11;
      const sha = guest.call({ op: 'sha256', bytes: MIB }).meter.compute;
      figures.push(
        { name: 'update.verifyManifest.xsCompute', value: Math.round((eleven - one) / 10), unit: 'compute', label: 'XS compute per manifest check (one Ed25519 verify, pure JavaScript)', kind: 'count', anchor: '1.4e6 per Ed25519 verify (../shared/DESIGN.md)' },
        { name: 'update.verifyManifest.ms', value: Number(ms.toFixed(2)), unit: 'ms', label: 'milliseconds per manifest check in host XS', kind: 'timing', anchor: '≈ 5 ms per Ed25519 verify (../shared/DESIGN.md)' },
        { name: 'update.sha256PerMiB.xsCompute', value: sha, unit: 'compute', label: 'XS compute for SHA-256 of 1 MiB in pure JavaScript (the device uses native SHA-256)', kind: 'count', anchor: '5.5e8 (../shared/DESIGN.md)' },
      );
    } finally {
      guest.close();
    }
    return figures;
  },
};
