/**
 * The power-cut runner (tools/sim/power-cut.ts) on a tiny scenario of its
 * own: N values, each in its own 16-byte slot with a CRC, appended in order.
 * Checks the runner's counts, that it catches a scenario that trusts a torn
 * value, that a failure replays exactly, and how it reports scenarios that
 * never finish or misuse the flash.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  countOperations,
  effectiveSecondCuts,
  exhaustiveTier,
  PowerCutFailure,
  replayCuts,
  runExhaustive,
  runRandom,
  type CutScenario,
  type RunnerOptions,
} from '../../tools/sim/power-cut.ts';
import { SimFlash, type CutPlan, type FlashMode, type SimFlashOptions, type SimFlashSnapshot } from '../../tools/sim/flash/sim-flash.ts';
import { FlashMisuse, PowerCut } from '../../tools/sim/flash/errors.ts';
import { loadImage, saveImage } from '../../tools/sim/flash/image-file.ts';
import { deriveSeed } from '../../tools/sim/rng.ts';
import { crc32Final, crc32Init, crc32Update } from '../../firmware/base/crc32.ts';
import type { FlashPartition } from '../../firmware/hal/flash.ts';

const dir = mkdtempSync(join(tmpdir(), 'holdfast-runner-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const SLOT = 16;
const BLOCK_LENGTH = 256;
const SLOTS = BLOCK_LENGTH / SLOT;

class InvariantViolation extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvariantViolation';
  }
}

interface SlotState {
  formatted: boolean;
  durable: number[];
  inFlight: number | undefined;
}

type Flaw = 'none' | 'trusts-torn' | 'rewrites-torn' | 'misaligned';

/** Every byte differs from 0xFF, so a torn value is visible. */
function valueFor(index: number): number {
  return (0x10203040 + index * 0x01010101) >>> 0;
}

function crcOf(bytes: Uint8Array): number {
  return crc32Final(crc32Update(crc32Init(), bytes, 0, 4));
}

function encodeSlot(value: number): Uint8Array {
  const slot = new Uint8Array(SLOT).fill(0xff);
  const view = new DataView(slot.buffer);
  view.setUint32(0, value, true);
  view.setUint32(4, crcOf(slot), true);
  return slot;
}

function decodeSlot(slot: Uint8Array): { value: number; valid: boolean } {
  const view = new DataView(slot.buffer, slot.byteOffset, slot.byteLength);
  const value = view.getUint32(0, true);
  return { value, valid: view.getUint32(4, true) === crcOf(slot) };
}

/** Counts the writes and erases a scenario issues (independently of SimFlash's counters). */
const issued = { writes: 0, erases: 0 };

function slotScenario(mode: FlashMode, total: number, flaw: Flaw = 'none'): CutScenario<SlotState> {
  return {
    name: `slots/${mode}/${total}/${flaw}`,
    flash: { blocks: 1, blockLength: BLOCK_LENGTH, mode },
    createState: () => ({ formatted: false, durable: [], inFlight: undefined }),
    boot(flash: FlashPartition, state: SlotState) {
      const write = (offset: number, data: Uint8Array) => {
        issued.writes++;
        flash.write(offset, data);
      };
      if (!state.formatted) {
        issued.erases++;
        flash.eraseBlock(0);
        state.formatted = true;
      }
      // Recover: valid slots in order; a torn slot is skipped; the first erased slot ends the log.
      const seen: number[] = [];
      const slot = new Uint8Array(SLOT);
      let next = 0;
      let tornSlot: number | undefined;
      for (; next < SLOTS; next++) {
        flash.read(next * SLOT, slot);
        if (slot.every((b) => b === 0xff)) break;
        const { value, valid } = decodeSlot(slot);
        if (valid || flaw === 'trusts-torn') seen.push(value);
        else tornSlot = next;
      }
      const extra = seen.length - state.durable.length;
      const matches = state.durable.every((v, i) => seen[i] === v);
      if (!matches || !(extra === 0 || (extra === 1 && state.inFlight !== undefined && seen[seen.length - 1] === state.inFlight))) {
        throw new InvariantViolation(`recovered [${seen.map((v) => v.toString(16))}], durable [${state.durable.map((v) => v.toString(16))}]`);
      }
      if (extra === 1) state.durable.push(state.inFlight as number);
      state.inFlight = undefined;
      if (flaw === 'rewrites-torn' && tornSlot !== undefined) next = tornSlot;
      // Carry on.
      while (state.durable.length < total) {
        if (next >= SLOTS) throw new InvariantViolation('out of slots');
        const value = valueFor(state.durable.length);
        state.inFlight = value;
        write(flaw === 'misaligned' ? next * SLOT + 8 : next * SLOT, encodeSlot(value));
        state.durable.push(value);
        state.inFlight = undefined;
        next++;
      }
    },
  };
}

/** A SimFlash that remembers the cuts armed on it. */
class RecordingFlash extends SimFlash {
  static armed: CutPlan[] = [];
  override armCut(plan: CutPlan): void {
    RecordingFlash.armed.push({ ...plan });
    super.armCut(plan);
  }
}

const savedNames: string[] = [];
function saveFailureImage(name: string, snapshot: SimFlashSnapshot): string {
  savedNames.push(name);
  const path = join(dir, `${name.replace(/[^\w.-]+/g, '_')}.hfimg`);
  saveImage(path, snapshot);
  return path;
}

const options: RunnerOptions = { createFlash: (o: SimFlashOptions) => new SimFlash(o) };
const recording: RunnerOptions = { createFlash: (o: SimFlashOptions) => new RecordingFlash(o) };

function catchFailure(run: () => unknown): PowerCutFailure {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof PowerCutFailure, `expected PowerCutFailure, got ${String(error)}`);
    assert.equal(error.name, 'PowerCutFailure');
    return error;
  }
  assert.fail('expected a PowerCutFailure, the run passed');
}

describe('power-cut runner: counting and coverage', () => {
  for (const mode of ['plain', 'strict'] as const) {
    test(`countOperations equals the scenario's writes + erases (${mode})`, () => {
      issued.writes = 0;
      issued.erases = 0;
      assert.equal(countOperations(slotScenario(mode, 6), options), 7);
      assert.deepEqual(issued, { writes: 6, erases: 1 });
      issued.writes = 0;
      issued.erases = 0;
      assert.equal(countOperations(slotScenario(mode, 11), options), 12);
      assert.deepEqual(issued, { writes: 11, erases: 1 });
    });

    test(`runExhaustive cuts every operation with every variant and the sound scenario passes (${mode})`, () => {
      RecordingFlash.armed = [];
      const report = runExhaustive(slotScenario(mode, 6), { ...recording, variants: 4 });
      assert.deepEqual(report, {
        scenario: `slots/${mode}/6/none`,
        operations: 7,
        cutPoints: 7,
        runs: 28,
        cuts: 28,
        boots: 56,
        prefixRuns: 14,
        bitSubsetRuns: 14,
        doubleCutRuns: 0,
      });
      const cutAt = RecordingFlash.armed.map((p) => p.atOperation);
      for (let at = 0; at < 7; at++) assert.equal(cutAt.filter((a) => a === at).length, 4, `operation ${at} cut 4 times`);
      assert.equal(cutAt.length, 28);
      for (let at = 0; at < 7; at++) {
        const seeds = new Set(RecordingFlash.armed.filter((p) => p.atOperation === at).map((p) => p.seed));
        assert.equal(seeds.size, 4, `operation ${at}: the variants use different seeds`);
      }
    });
  }

  test('runExhaustive defaults to 3 variants', () => {
    const report = runExhaustive(slotScenario('plain', 6), options);
    assert.equal(report.operations, 7);
    assert.equal(report.cutPoints, 7);
    assert.equal(report.runs, 21);
    assert.equal(report.cuts, 21);
    assert.equal(report.boots, 42);
  });

  test('variants: 1 with one tear mode gives one run per operation', () => {
    const report = runExhaustive(slotScenario('strict', 6), { ...options, variants: 1, tears: ['prefix'] });
    assert.equal(report.runs, 7);
    assert.equal(report.cuts, 7);
    assert.equal(report.prefixRuns, 7);
    assert.equal(report.bitSubsetRuns, 0);
  });

  test('variants: 1 still cuts every operation once in each tear mode', () => {
    RecordingFlash.armed = [];
    const report = runExhaustive(slotScenario('strict', 6), { ...recording, variants: 1 });
    assert.equal(report.runs, 14);
    assert.equal(report.prefixRuns, 7);
    assert.equal(report.bitSubsetRuns, 7);
    for (let at = 0; at < 7; at++) {
      const tears = RecordingFlash.armed.filter((p) => p.atOperation === at).map((p) => p.tear);
      assert.deepEqual(tears, ['prefix', 'bit-subset'], `operation ${at}`);
    }
  });

  test('variants cycle through the tear modes: variant v tears in mode tears[v % tears.length]', () => {
    RecordingFlash.armed = [];
    const report = runExhaustive(slotScenario('plain', 3), { ...recording });
    assert.equal(report.runs, 4 * 3);
    assert.equal(report.prefixRuns, 4 * 2);
    assert.equal(report.bitSubsetRuns, 4);
    assert.deepEqual(
      RecordingFlash.armed.slice(0, 3).map((p) => p.tear),
      ['prefix', 'bit-subset', 'prefix'],
    );
    RecordingFlash.armed = [];
    runExhaustive(slotScenario('plain', 3), { ...recording, tears: ['bit-subset'] });
    assert.ok(RecordingFlash.armed.every((p) => p.tear === 'bit-subset'));
    assert.throws(() => runExhaustive(slotScenario('plain', 3), { ...options, tears: [] }), RangeError);
  });

  test('a tear mode does not change the seeds: variant v keeps the seed it had before tear modes', () => {
    RecordingFlash.armed = [];
    runExhaustive(slotScenario('plain', 3), { ...recording, tears: ['prefix'] });
    const prefixOnly = RecordingFlash.armed.map((p) => p.seed);
    RecordingFlash.armed = [];
    runExhaustive(slotScenario('plain', 3), { ...recording });
    assert.deepEqual(
      RecordingFlash.armed.map((p) => p.seed),
      prefixOnly,
    );
  });

  test('cutRange limits the slice of operations cut', () => {
    RecordingFlash.armed = [];
    const report = runExhaustive(slotScenario('plain', 6), { ...recording, variants: 2, cutRange: { from: 2, to: 5 } });
    assert.deepEqual(report, {
      scenario: 'slots/plain/6/none',
      operations: 7,
      cutPoints: 3,
      runs: 6,
      cuts: 6,
      boots: 12,
      prefixRuns: 3,
      bitSubsetRuns: 3,
      doubleCutRuns: 0,
    });
    assert.deepEqual(
      RecordingFlash.armed.map((p) => p.atOperation),
      [2, 2, 3, 3, 4, 4],
    );
  });

  test('cutRange past the end is clamped to the operation count', () => {
    const report = runExhaustive(slotScenario('plain', 6), { ...options, variants: 2, cutRange: { from: 5, to: 100 } });
    assert.equal(report.cutPoints, 2);
    assert.equal(report.runs, 4);
    assert.equal(report.cuts, 4);
  });

  test('cuts counts only the cuts that struck', () => {
    // The clean (counting) run does two extra writes; the cut runs do not, so
    // the cuts armed at the last two operation indexes never strike.
    let created = 0;
    const base = slotScenario('plain', 4);
    const scenario: CutScenario<SlotState & { extra: boolean }> = {
      ...base,
      name: 'slots/shrinking',
      createState: () => ({ ...base.createState(), extra: created++ === 0 }),
      boot(flash, state, bootIndex) {
        base.boot(flash, state, bootIndex);
        if (state.extra) {
          state.extra = false;
          flash.write(BLOCK_LENGTH - 32, new Uint8Array(16));
          flash.write(BLOCK_LENGTH - 16, new Uint8Array(16));
        }
      },
    };
    const report = runExhaustive(scenario, { ...options, variants: 2 });
    assert.equal(report.operations, 7);
    assert.equal(report.cutPoints, 7);
    assert.equal(report.runs, 14);
    assert.equal(report.cuts, 10);
    assert.equal(report.boots, 14 + 10);
  });

  test('replayCuts reports the cuts that struck and the boots it took', () => {
    const scenario = slotScenario('plain', 5);
    assert.deepEqual(replayCuts(scenario, [], options), { cuts: 0, boots: 1 });
    assert.deepEqual(replayCuts(scenario, [{ atOperation: 100, seed: 1 }], options), { cuts: 0, boots: 1 });
    assert.deepEqual(replayCuts(scenario, [{ atOperation: 2, seed: 1 }], options), { cuts: 1, boots: 2 });
    assert.deepEqual(
      replayCuts(
        scenario,
        [
          { atOperation: 1, seed: 1 },
          { atOperation: 0, seed: 2 },
          { atOperation: 2, seed: 3 },
        ],
        options,
      ),
      { cuts: 3, boots: 4 },
    );
  });

  test('the same seed gives the same cut seeds; another seed gives others', () => {
    const seedsFor = (seed: number | undefined) => {
      RecordingFlash.armed = [];
      runExhaustive(slotScenario('plain', 3), { ...recording, variants: 2, seed });
      return RecordingFlash.armed.map((p) => p.seed);
    };
    assert.deepEqual(seedsFor(11), seedsFor(11));
    assert.deepEqual(seedsFor(undefined), seedsFor(undefined));
    assert.notDeepEqual(seedsFor(11), seedsFor(12));
  });
});

describe('power-cut runner: failures', () => {
  test('a scenario that trusts a torn value fails with a replayable PowerCutFailure', () => {
    savedNames.length = 0;
    const scenario = slotScenario('plain', 6, 'trusts-torn');
    const failure = catchFailure(() => runExhaustive(scenario, { ...options, saveFailureImage }));
    assert.ok(failure.failure instanceof InvariantViolation, `failure was ${String(failure.failure)}`);
    assert.equal(failure.scenario, 'slots/plain/6/trusts-torn');
    assert.equal(failure.cutPlans.length, 1);
    assert.equal(failure.bootIndex, 1, 'caught on the boot after the cut');
    const [plan] = failure.cutPlans;
    assert.ok(plan.atOperation >= 1 && plan.atOperation < 7, 'a write was torn');
    const message = failure.message;
    assert.ok(message.includes('[slots/plain/6/trusts-torn]'), message);
    assert.ok(message.includes(`op ${plan.atOperation}`), message);
    assert.ok(message.includes(`seed 0x${(plan.seed >>> 0).toString(16)}`), message);
    assert.match(message, /seed 0x[0-9a-f]+/);
    assert.ok(message.includes('replay: replayCuts'), message);
    assert.ok(message.includes(JSON.stringify(failure.cutPlans)), 'the replay line carries the exact cut plans');
    assert.ok(message.includes('InvariantViolation'), message);

    assert.ok(failure.imagePath, 'the image path is reported');
    assert.ok(message.includes(`flash image: ${failure.imagePath}`), message);
    assert.ok(existsSync(failure.imagePath));
    assert.equal(savedNames.length, 1);
    assert.ok(savedNames[0].startsWith('slots/plain/6/trusts-torn'), savedNames[0]);
    const image = loadImage(failure.imagePath);
    assert.equal(image.blocks, 1);
    assert.equal(image.blockLength, BLOCK_LENGTH);
    assert.equal(image.mode, 'plain');
    assert.equal(image.eraseCounts[0], 1);
    const imageBytes = readFileSync(failure.imagePath);

    // Replay reproduces the same failure, deterministically, twice.
    for (let i = 0; i < 2; i++) {
      const again = catchFailure(() => replayCuts(scenario, failure.cutPlans, { ...options, saveFailureImage }));
      assert.equal(again.message, failure.message);
      assert.deepEqual(again.cutPlans, failure.cutPlans);
      assert.equal(again.bootIndex, failure.bootIndex);
      assert.ok(again.failure instanceof InvariantViolation);
      assert.equal((again.failure as Error).message, (failure.failure as Error).message);
      assert.equal(again.imagePath, failure.imagePath);
      assert.deepEqual(readFileSync(again.imagePath as string), imageBytes, 'the same flash image');
    }
    // A later plan that never got to strike is not part of the failure.
    const extended = catchFailure(() => replayCuts(scenario, [...failure.cutPlans, { atOperation: 3, seed: 99 }], options));
    assert.deepEqual(extended.cutPlans, failure.cutPlans);
    assert.equal(extended.bootIndex, 1);
    // The sound scenario survives the very same cut.
    assert.deepEqual(replayCuts(slotScenario('plain', 6), failure.cutPlans, options), { cuts: 1, boots: 2 });
  });

  test('without saveFailureImage the failure carries no image path', () => {
    const failure = catchFailure(() => runExhaustive(slotScenario('strict', 6, 'trusts-torn'), options));
    assert.equal(failure.imagePath, undefined);
    assert.ok(!failure.message.includes('flash image:'));
    assert.ok(failure.message.includes('replay: replayCuts'));
  });

  test('a scenario that is cut on every boot fails with "did not finish"', () => {
    const scenario: CutScenario<null> = {
      name: 'always-cut',
      flash: { blocks: 1, blockLength: BLOCK_LENGTH },
      createState: () => null,
      boot(flash) {
        // Re-arms a cut on itself: every boot loses power at its first write.
        (flash as SimFlash).armCut({ atOperation: 0, seed: 1 });
        flash.write(0, Uint8Array.of(0));
      },
    };
    const failure = catchFailure(() => replayCuts(scenario, [], options));
    assert.match(failure.message, /did not finish within 64 boots/);
    assert.match(failure.message, /\[always-cut\]/);
    assert.equal(failure.bootIndex, 64);
    const viaExhaustive = catchFailure(() => runExhaustive(scenario, { ...options, maxBoots: 5 }));
    assert.match(viaExhaustive.message, /did not finish within 5 boots/);
    assert.equal(viaExhaustive.bootIndex, 5);
  });

  test('a scenario whose boot always throws PowerCut fails with "did not finish" (maxBoots honoured)', () => {
    let boots = 0;
    const scenario: CutScenario<null> = {
      name: 'never-done',
      flash: { blocks: 1, blockLength: BLOCK_LENGTH },
      createState: () => null,
      boot() {
        boots++;
        throw new PowerCut(0);
      },
    };
    const failure = catchFailure(() => runExhaustive(scenario, { ...options, maxBoots: 7 }));
    assert.match(failure.message, /did not finish within 7 boots/);
    assert.equal(boots, 7);
  });

  test('a clean run that is cut is reported by countOperations', () => {
    const scenario: CutScenario<{ cut: boolean }> = {
      name: 'cut-once',
      flash: { blocks: 1, blockLength: BLOCK_LENGTH },
      createState: () => ({ cut: false }),
      boot(flash, state) {
        if (!state.cut) {
          state.cut = true;
          (flash as SimFlash).armCut({ atOperation: 0, seed: 1 });
        }
        flash.write(0, Uint8Array.of(0));
      },
    };
    assert.throws(() => countOperations(scenario, options), /\[cut-once\] clean run was cut/);
  });

  test('a FlashMisuse in the clean run surfaces as a PowerCutFailure whose failure is that error', () => {
    const failure = catchFailure(() => runExhaustive(slotScenario('strict', 3, 'misaligned'), { ...options, saveFailureImage }));
    assert.ok(failure.failure instanceof FlashMisuse, `failure was ${String(failure.failure)}`);
    assert.deepEqual(failure.cutPlans, []);
    assert.equal(failure.bootIndex, 0);
    assert.match(failure.message, /FlashMisuse/);
    assert.match(failure.message, /after cuts \(none\)/);
    assert.ok(failure.imagePath && existsSync(failure.imagePath));
  });

  test('a FlashMisuse after a cut (re-programming a torn strict unit) surfaces with the cut that caused it', () => {
    const scenario = slotScenario('strict', 6, 'rewrites-torn');
    const failure = catchFailure(() => runExhaustive(scenario, options));
    assert.ok(failure.failure instanceof FlashMisuse, `failure was ${String(failure.failure)}`);
    assert.equal(failure.cutPlans.length, 1);
    assert.equal(failure.bootIndex, 1);
    assert.match(failure.message, /FlashMisuse: strict mode/);
    const again = catchFailure(() => replayCuts(scenario, failure.cutPlans, options));
    assert.equal(again.message, failure.message);
    assert.ok(again.failure instanceof FlashMisuse);
  });
});

describe('power-cut runner: random runs', () => {
  test('runRandom with a seed is deterministic and its cuts strike', () => {
    const run = () => runRandom(slotScenario('plain', 8), { ...options, runs: 25, maxCuts: 3, seed: 42 });
    const first = run();
    const second = run();
    assert.deepEqual(first, second);
    assert.equal(first.scenario, 'slots/plain/8/none');
    assert.equal(first.operations, 9);
    assert.equal(first.runs, 25);
    assert.ok(first.cuts > 0, 'no cut struck');
    assert.ok(first.cuts <= 25 * 3);
    assert.equal(first.cutPoints, first.cuts);
    assert.equal(first.boots, first.runs + first.cuts, 'each cut costs exactly one extra boot');
  });

  test('runRandom arms the same plans for the same seed', () => {
    const plansFor = (seed: number) => {
      RecordingFlash.armed = [];
      runRandom(slotScenario('strict', 8), { ...recording, runs: 10, maxCuts: 2, seed });
      return RecordingFlash.armed;
    };
    const a = plansFor(9);
    assert.ok(a.length > 0);
    assert.deepEqual(plansFor(9), a);
    assert.notDeepEqual(plansFor(10), a);
  });

  test('runRandom catches the scenario that trusts torn values', () => {
    const failure = catchFailure(() =>
      runRandom(slotScenario('plain', 8, 'trusts-torn'), { ...options, runs: 200, maxCuts: 2, seed: 3 }),
    );
    assert.ok(failure.failure instanceof InvariantViolation);
    assert.ok(failure.cutPlans.length >= 1);
    assert.equal(failure.cutPlans.length, failure.bootIndex, 'the failure lists exactly the cuts that struck before it');
    const again = catchFailure(() => replayCuts(slotScenario('plain', 8, 'trusts-torn'), failure.cutPlans, options));
    assert.equal(again.message, failure.message);
  });
});

/**
 * A toy log of 32-byte records whose last byte is a commit mark (0x00); the
 * reader trusts a record whose mark is set. 'sound' programs the body, then
 * the mark's own unit in a second write; 'mark-in-body-write' programs body
 * and mark in one write and never checks the body. Cut as a prefix, the mark
 * of that one write lands only after every body byte did (plain), or in a
 * unit that lands after the body's (strict), so the flaw survives prefix
 * tears; a bit-subset tear can land the mark and not all of the body.
 */
const RECORD = 32;
const RECORDS = BLOCK_LENGTH / RECORD;

function recordBody(index: number): Uint8Array {
  const body = new Uint8Array(16);
  new DataView(body.buffer).setUint32(0, valueFor(index), true);
  for (let i = 4; i < 16; i++) body[i] = (index * 31 + i * 7) & 0x7f;
  return body;
}

function markUnit(): Uint8Array {
  const unit = new Uint8Array(16).fill(0xff);
  unit[15] = 0x00;
  return unit;
}

interface RecordState {
  formatted: boolean;
  durable: number[];
  inFlight: number | undefined;
}

/** The toy stores' provisioning: erase their one block once (a cut here just erases again). */
function eraseOnFirstBoot(flash: FlashPartition, state: { formatted: boolean }): void {
  if (state.formatted) return;
  flash.eraseBlock(0);
  state.formatted = true;
}

function commitMarkScenario(mode: FlashMode, total: number, flaw: 'sound' | 'mark-in-body-write'): CutScenario<RecordState> {
  return {
    name: `commit-mark/${mode}/${total}/${flaw}`,
    flash: { blocks: 1, blockLength: BLOCK_LENGTH, mode },
    createState: () => ({ formatted: false, durable: [], inFlight: undefined }),
    boot(flash, state) {
      eraseOnFirstBoot(flash, state);
      // Recover: a record counts when its mark is set; anything else written is skipped.
      const seen: number[] = [];
      const record = new Uint8Array(RECORD);
      let next = 0;
      for (let slot = 0; slot < RECORDS; slot++) {
        flash.read(slot * RECORD, record);
        if (record.every((b) => b === 0xff)) break;
        next = slot + 1;
        if (record[RECORD - 1] !== 0x00) continue;
        const index = seen.length;
        const body = record.subarray(0, 16);
        if (!body.every((b, i) => b === recordBody(index)[i])) {
          throw new InvariantViolation(`record ${slot} carries a set commit mark over a body that was never written whole`);
        }
        seen.push(valueFor(index));
      }
      const extra = seen.length - state.durable.length;
      if (!(extra === 0 || (extra === 1 && state.inFlight !== undefined))) {
        throw new InvariantViolation(`recovered ${seen.length} records, ${state.durable.length} were durable`);
      }
      if (extra === 1) state.durable.push(state.inFlight as number);
      state.inFlight = undefined;
      while (state.durable.length < total) {
        if (next >= RECORDS) throw new InvariantViolation('out of records');
        const index = state.durable.length;
        state.inFlight = valueFor(index);
        if (flaw === 'sound') {
          flash.write(next * RECORD, recordBody(index));
          flash.write(next * RECORD + 16, markUnit());
        } else {
          const whole = new Uint8Array(RECORD);
          whole.set(recordBody(index));
          whole.set(markUnit(), 16);
          flash.write(next * RECORD, whole);
        }
        state.durable.push(state.inFlight);
        state.inFlight = undefined;
        next++;
      }
    },
  };
}

/**
 * A slot store whose recovery "repairs" a torn slot by erasing the block
 * and rewriting the values it recovered: correct when it runs to the end,
 * but a cut during that erase or rewrite loses durable values. The clean
 * run never repairs, so no single cut can reach the repair: only a second
 * cut during the recovery boot does.
 */
function repairScenario(mode: FlashMode, total: number): CutScenario<SlotState> {
  return {
    name: `slots-repair/${mode}/${total}`,
    flash: { blocks: 1, blockLength: BLOCK_LENGTH, mode },
    createState: () => ({ formatted: false, durable: [], inFlight: undefined }),
    boot(flash, state) {
      eraseOnFirstBoot(flash, state);
      const seen: number[] = [];
      const slot = new Uint8Array(SLOT);
      let next = 0;
      let torn = false;
      for (; next < SLOTS; next++) {
        flash.read(next * SLOT, slot);
        if (slot.every((b) => b === 0xff)) break;
        const { value, valid } = decodeSlot(slot);
        if (valid) seen.push(value);
        else torn = true;
      }
      const extra = seen.length - state.durable.length;
      if (!state.durable.every((v, i) => seen[i] === v) || !(extra === 0 || (extra === 1 && state.inFlight !== undefined))) {
        throw new InvariantViolation(`recovered [${seen.map((v) => v.toString(16))}], durable [${state.durable.map((v) => v.toString(16))}]`);
      }
      if (extra === 1) state.durable.push(state.inFlight as number);
      state.inFlight = undefined;
      if (torn) {
        // The planted flaw: not idempotent under a cut (the only copy is erased first).
        flash.eraseBlock(0);
        seen.forEach((value, i) => flash.write(i * SLOT, encodeSlot(value)));
        next = seen.length;
      }
      while (state.durable.length < total) {
        const value = valueFor(state.durable.length);
        state.inFlight = value;
        flash.write(next * SLOT, encodeSlot(value));
        state.durable.push(value);
        state.inFlight = undefined;
        next++;
      }
    },
  };
}

describe('power-cut runner: bit-subset tears', () => {
  for (const mode of ['plain', 'strict'] as const) {
    test(`prefix tears miss a commit mark programmed with its body; bit-subset tears catch it (${mode})`, () => {
      const flawed = commitMarkScenario(mode, 6, 'mark-in-body-write');
      // Many prefix variants, none catches it: a prefix lands the mark last.
      const prefixOnly = runExhaustive(flawed, { ...options, variants: 24, tears: ['prefix'] });
      assert.equal(prefixOnly.prefixRuns, prefixOnly.runs);
      assert.equal(prefixOnly.cuts, prefixOnly.runs);
      const failure = catchFailure(() => runExhaustive(flawed, options));
      assert.ok(failure.failure instanceof InvariantViolation, `failure was ${String(failure.failure)}`);
      assert.match((failure.failure as Error).message, /commit mark over a body that was never written whole/);
      assert.equal(failure.cutPlans.length, 1);
      assert.equal(failure.cutPlans[0].tear, 'bit-subset');
      assert.ok(failure.message.includes('bit-subset'), failure.message);
      // Replays exactly, and the sound layout survives the very same cut and every other.
      const again = catchFailure(() => replayCuts(flawed, failure.cutPlans, options));
      assert.equal(again.message, failure.message);
      assert.deepEqual(replayCuts(commitMarkScenario(mode, 6, 'sound'), failure.cutPlans, options).cuts, 1);
      const sound = runExhaustive(commitMarkScenario(mode, 6, 'sound'), { ...options, variants: 8 });
      assert.equal(sound.bitSubsetRuns, sound.runs / 2);
    });
  }

  test('runRandom alternates tear modes cut by cut without changing its cut points', () => {
    RecordingFlash.armed = [];
    runRandom(slotScenario('plain', 8), { ...recording, runs: 10, maxCuts: 3, seed: 5, tears: ['prefix'] });
    const prefixOnly = RecordingFlash.armed.map(({ atOperation, seed }) => ({ atOperation, seed }));
    RecordingFlash.armed = [];
    const report = runRandom(slotScenario('plain', 8), { ...recording, runs: 10, maxCuts: 3, seed: 5 });
    assert.deepEqual(
      RecordingFlash.armed.map(({ atOperation, seed }) => ({ atOperation, seed })),
      prefixOnly,
    );
    assert.ok(RecordingFlash.armed.some((p) => p.tear === 'prefix'));
    assert.ok(RecordingFlash.armed.some((p) => p.tear === 'bit-subset'));
    assert.equal(report.prefixRuns + report.bitSubsetRuns, report.runs);
    assert.ok(report.prefixRuns > 0 && report.bitSubsetRuns > 0);
  });

  test('runRandom catches the commit mark programmed with its body', () => {
    const failure = catchFailure(() => runRandom(commitMarkScenario('plain', 6, 'mark-in-body-write'), { ...options, runs: 300, maxCuts: 2, seed: 4 }));
    assert.ok(failure.failure instanceof InvariantViolation);
    assert.ok(failure.cutPlans.some((p) => p.tear === 'bit-subset'));
  });
});

describe('power-cut runner: double cuts', () => {
  const single: RunnerOptions = { ...options, secondCuts: 'none', exhaustive: false };

  for (const mode of ['plain', 'strict'] as const) {
    test(`single cuts miss a recovery that is not safe to cut; second cuts in the recovery boot catch it (${mode})`, () => {
      const scenario = repairScenario(mode, 6);
      const once = runExhaustive(scenario, { ...single, variants: 8 });
      assert.equal(once.doubleCutRuns, 0);
      assert.equal(once.cuts, once.runs);
      savedNames.length = 0;
      const failure = catchFailure(() => runExhaustive(scenario, { ...options, secondCuts: 'every', exhaustive: false, saveFailureImage }));
      assert.ok(failure.failure instanceof InvariantViolation, `failure was ${String(failure.failure)}`);
      assert.equal(failure.cutPlans.length, 2, 'two cuts struck');
      assert.equal(failure.bootIndex, 2, 'caught on the boot after the second cut');
      const [first, second] = failure.cutPlans;
      assert.ok(failure.message.includes(`op ${first.atOperation} seed 0x${(first.seed >>> 0).toString(16)} ${first.tear}`), failure.message);
      assert.ok(failure.message.includes(`then (reboot 1) op ${second.atOperation} seed 0x${(second.seed >>> 0).toString(16)} ${second.tear}`), failure.message);
      assert.ok(failure.message.includes(JSON.stringify(failure.cutPlans)), failure.message);
      assert.ok(failure.imagePath && existsSync(failure.imagePath));
      assert.match(savedNames[0], /reboot_1/);
      // The replay names both cuts and reproduces the failure exactly.
      const again = catchFailure(() => replayCuts(scenario, failure.cutPlans, { ...options, saveFailureImage }));
      assert.equal(again.message, failure.message);
      assert.deepEqual(readFileSync(again.imagePath as string), readFileSync(failure.imagePath));
      // The first cut alone is harmless: the bug needs the second.
      assert.deepEqual(replayCuts(scenario, [first], options), { cuts: 1, boots: 2 });
    });
  }

  /** Operations of the boot after `first` struck, counted here without the runner. */
  function recoveryOperations(scenario: CutScenario<SlotState>, first: CutPlan): number {
    const flash = new SimFlash(scenario.flash);
    const state = scenario.createState();
    flash.armCut(first);
    assert.throws(() => scenario.boot(flash, state, 0), PowerCut);
    flash.powerOn();
    const before = flash.counters.operations;
    scenario.boot(flash, state, 1);
    return flash.counters.operations - before;
  }

  function firstPlans(operations: number, variants: number, seed: number): CutPlan[] {
    const plans: CutPlan[] = [];
    for (let at = 0; at < operations; at++) {
      for (let v = 0; v < variants; v++) plans.push({ atOperation: at, seed: deriveSeed(seed, at, v), tear: v % 2 === 0 ? 'prefix' : 'bit-subset' });
    }
    return plans;
  }

  test("'every' cuts each operation of the recovery boot in each tear mode, and the sound scenario passes", () => {
    RecordingFlash.armed = [];
    const scenario = slotScenario('plain', 4);
    const report = runExhaustive(scenario, { ...recording, variants: 2, seed: 77, secondCuts: 'every', exhaustive: false });
    const firsts = firstPlans(5, 2, 77);
    const expected = firsts.map((plan) => recoveryOperations(scenario, plan));
    assert.ok(expected.every((n) => n >= 0) && expected.some((n) => n > 1));
    assert.equal(report.doubleCutRuns, expected.reduce((a, n) => a + 2 * n, 0));
    assert.equal(report.runs, firsts.length + report.doubleCutRuns);
    // Every second cut of the recovery boot strikes: one cut per single run, two per double run.
    assert.equal(report.cuts, firsts.length + 2 * report.doubleCutRuns);
    assert.equal(report.boots, report.runs + report.cuts);
    // The armed plans: each first cut, then its second cuts at 0..n-1, each tear mode once.
    let i = 0;
    firsts.forEach((plan, k) => {
      assert.deepEqual(RecordingFlash.armed[i++], plan);
      for (let at = 0; at < expected[k]; at++) {
        for (const tear of ['prefix', 'bit-subset']) {
          assert.deepEqual(RecordingFlash.armed[i++], plan, 'a double run starts with the same first cut');
          const second = RecordingFlash.armed[i++];
          assert.equal(second.atOperation, at);
          assert.equal(second.tear, tear);
        }
      }
    });
    assert.equal(i, RecordingFlash.armed.length);
  });

  test('{ sample: n } cuts n points of each recovery boot, seeded; 0 cuts none', () => {
    const scenario = slotScenario('plain', 10);
    const sampled = runExhaustive(scenario, { ...options, variants: 2, seed: 78, secondCuts: { sample: 3 }, exhaustive: false });
    const expected = firstPlans(11, 2, 78).map((plan) => Math.min(3, 2 * recoveryOperations(scenario, plan)));
    assert.equal(sampled.doubleCutRuns, expected.reduce((a, n) => a + n, 0));
    assert.deepEqual(runExhaustive(scenario, { ...options, variants: 2, seed: 78, secondCuts: { sample: 3 }, exhaustive: false }), sampled);
    const none = runExhaustive(scenario, { ...options, variants: 2, secondCuts: { sample: 0 }, exhaustive: false });
    assert.equal(none.doubleCutRuns, 0);
    assert.throws(() => runExhaustive(scenario, { ...options, secondCuts: { sample: -1 }, exhaustive: false }), RangeError);
  });

  test("the exhaustive tier: unset → a sample of 4, a sample → every operation, an explicit 'none' stays", () => {
    assert.equal(effectiveSecondCuts({ exhaustive: false }), 'none');
    assert.deepEqual(effectiveSecondCuts({ exhaustive: false, secondCuts: { sample: 2 } }), { sample: 2 });
    assert.deepEqual(effectiveSecondCuts({ exhaustive: true }), { sample: 4 });
    assert.equal(effectiveSecondCuts({ exhaustive: true, secondCuts: 'none' }), 'none');
    assert.equal(effectiveSecondCuts({ exhaustive: true, secondCuts: { sample: 2 } }), 'every');
    assert.equal(effectiveSecondCuts({ exhaustive: true, secondCuts: 'every' }), 'every');
    const tiered = runExhaustive(slotScenario('plain', 4), { ...options, variants: 2, secondCuts: { sample: 1 }, exhaustive: true });
    const every = runExhaustive(slotScenario('plain', 4), { ...options, variants: 2, secondCuts: 'every', exhaustive: false });
    assert.deepEqual(tiered, every);
    const saved = process.env.HOLDFAST_EXHAUSTIVE;
    try {
      process.env.HOLDFAST_EXHAUSTIVE = '1';
      assert.equal(exhaustiveTier(), true);
      assert.equal(effectiveSecondCuts({ secondCuts: { sample: 3 } }), 'every');
      assert.deepEqual(effectiveSecondCuts({}), { sample: 4 });
      assert.equal(effectiveSecondCuts({ secondCuts: 'none' }), 'none');
      process.env.HOLDFAST_EXHAUSTIVE = '0';
      assert.equal(exhaustiveTier(), false);
      assert.deepEqual(effectiveSecondCuts({ secondCuts: { sample: 3 } }), { sample: 3 });
      delete process.env.HOLDFAST_EXHAUSTIVE;
      assert.equal(exhaustiveTier(), false);
    } finally {
      if (saved === undefined) delete process.env.HOLDFAST_EXHAUSTIVE;
      else process.env.HOLDFAST_EXHAUSTIVE = saved;
    }
  });
});
