/**
 * The outbox under power cuts, in Node and in XS: exhaustive cuts (every
 * flash operation, three torn variants each, prefix and bit-subset tears)
 * over small rings that wrap, acknowledge across sector boundaries and fill
 * up under both policies, in plain and strict flash; on the smallest rings a
 * second cut at every operation of the recovery boot; plus seeded random
 * multi-cut runs.
 */
import { exhaustiveTier, runExhaustive, runRandom, type RunnerOptions, type SecondCuts } from '../../tools/sim/power-cut.ts';
import type { FlashMode } from '../../tools/sim/flash/sim-flash.ts';
import type { CaseEnv, CaseSuite, FirmwareCase } from '../support/cases.ts';
import { outboxScenario, type OutboxWorkload } from './outbox-model.ts';

const SMALL = 512;

export function workloads(mode: FlashMode): OutboxWorkload[] {
  return [
    {
      name: 'wrap-with-acks',
      flash: { blocks: 3, blockLength: SMALL, mode },
      policy: 'drop-oldest',
      maxUnpersistedAcks: 8,
      // 110 appends (three wraps) in CI, pays for the double cuts below; 150 in the exhaustive tier.
      appends: exhaustiveTier() ? 150 : 110,
      size: (i) => 12 + ((i * 37) % 90),
      ackEvery: 4,
      ackBatch: 4,
    },
    {
      name: 'spanning-records-acks-written-at-once',
      flash: { blocks: 3, blockLength: SMALL, mode },
      policy: 'drop-oldest',
      maxUnpersistedAcks: 0,
      appends: 40,
      size: (i) => 150 + ((i * 53) % 200),
      ackEvery: 2,
      ackBatch: 2,
    },
    {
      name: 'full-drop-oldest',
      flash: { blocks: 2, blockLength: SMALL, mode },
      policy: 'drop-oldest',
      maxUnpersistedAcks: 4,
      appends: 80,
      size: (i) => 40 + ((i * 11) % 60),
      ackEvery: 9,
      ackBatch: 2,
    },
    {
      name: 'full-reject',
      flash: { blocks: 2, blockLength: SMALL, mode },
      policy: 'reject',
      maxUnpersistedAcks: 4,
      appends: 80,
      size: (i) => 40 + ((i * 11) % 60),
      ackEvery: 0,
      ackBatch: 5,
    },
    {
      // Small enough for a second cut at every operation of each recovery boot: wraps twice, flushes every ack, drops.
      name: 'double-cuts-small-ring',
      flash: { blocks: 2, blockLength: 256, mode },
      policy: 'drop-oldest',
      maxUnpersistedAcks: 0,
      appends: 8,
      size: (i) => 30 + ((i * 29) % 60),
      ackEvery: 3,
      ackBatch: 2,
    },
    {
      name: 'first-boot-on-foreign-bytes',
      flash: { blocks: 2, blockLength: SMALL, mode },
      policy: 'drop-oldest',
      maxUnpersistedAcks: 4,
      appends: 6,
      size: (i) => 30 + i,
      ackEvery: 3,
      ackBatch: 2,
      garbageAtStart: true,
    },
  ];
}

function options(env: CaseEnv): RunnerOptions {
  return { createFlash: env.createFlash, saveFailureImage: env.saveFailureImage };
}

/**
 * Small workloads get a second cut at every operation of each recovery boot
 * (both tear modes); the larger ones run single cuts here (the runner's
 * exhaustive tier, HOLDFAST_EXHAUSTIVE=1, adds sampled second cuts) and
 * multi-cut random runs below.
 */
const EVERY_SECOND_CUT = new Set(['double-cuts-small-ring', 'first-boot-on-foreign-bytes']);

function exhaustiveCase(w: OutboxWorkload): FirmwareCase {
  const secondCuts: SecondCuts | undefined = EVERY_SECOND_CUT.has(w.name) ? 'every' : undefined;
  return {
    name: `exhaustive cuts${secondCuts ? ' with a second cut in every recovery boot' : ''}: ${w.name}, ${w.flash.mode}`,
    run(env) {
      const scenario = outboxScenario(w);
      const createFlash = w.garbageAtStart ? withForeignBytes(env.createFlash) : env.createFlash;
      return { ...runExhaustive(scenario, { ...options(env), createFlash, secondCuts }) };
    },
  };
}

/** A partition that held something else: every block starts with bytes no outbox writes. */
function withForeignBytes(createFlash: RunnerOptions['createFlash']): RunnerOptions['createFlash'] {
  return (flashOptions) => {
    const flash = createFlash(flashOptions);
    const status = flash.status();
    const junk = new Uint8Array(status.writeAlign * 4).map((_, i) => (i * 29 + 3) & 0x7f);
    for (let block = 0; block < status.blocks; block++) flash.write(block * status.blockLength, junk);
    return flash;
  };
}

export const suite: CaseSuite = {
  name: 'outbox power cuts',
  cases: [
    ...(['plain', 'strict'] as const).flatMap((mode) => workloads(mode).map(exhaustiveCase)),
    {
      name: 'random multi-cut runs over a wrapping ring (plain)',
      run: (env) => ({
        ...runRandom(outboxScenario({ ...workloads('plain')[0], name: 'random-long', appends: 200 }), { ...options(env), runs: 40, maxCuts: 4, seed: 11 }),
      }),
    },
    {
      name: 'random multi-cut runs over a full ring (strict)',
      run: (env) => ({
        ...runRandom(outboxScenario({ ...workloads('strict')[2], name: 'random-full', appends: 120 }), { ...options(env), runs: 40, maxCuts: 4, seed: 12 }),
      }),
    },
  ],
};
