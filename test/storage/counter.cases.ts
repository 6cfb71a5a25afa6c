/**
 * The monotonic counter (docs/spec/counter.md) under power cuts and bad
 * input, in Node and in XS. The invariant after every recovery: every value
 * returned later is strictly above every value returned before (so none
 * repeats and none goes backwards), within a boot and across boots.
 */
import { WriteBackFlash } from '../support/write-back-flash.ts';
import { Counter, COUNTER_LOG, COUNTER_MAX_VALUE, DEFAULT_COUNTER_RESERVE, MAX_COUNTER_RESERVE } from '../../firmware/storage/counter.ts';
import { StorageError, type StorageErrorCode } from '../../firmware/storage/errors.ts';
import { TwoBlockLog } from '../../firmware/base/two-block-log.ts';
import { encodeEntry16 } from '../../firmware/base/entry16.ts';
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { runDamageSuite, type DamageSubject } from '../support/damage.ts';
import { runExhaustive, runRandom, type CutScenario, type CuttableFlash } from '../../tools/sim/power-cut.ts';
import { SimFlash, type FlashMode, type SimFlashOptions } from '../../tools/sim/flash/sim-flash.ts';
import { bytesEqual, equal, ok, throws } from '../support/check.ts';
import { caughtByInvariant, exhaustiveCase, garbage, runnerOptions, throwsCode } from '../support/case-helpers.ts';
import type { CaseEnv, CaseSuite } from '../support/cases.ts';

/** What the test knows; it survives reboots. */
export interface CounterState {
  /** Largest value any `next()` returned, in any boot (0: none yet). */
  maxReturned: number;
  /** Values returned in all. */
  returned: number;
  /** Largest bound any recovery reported (0: none yet). */
  maxRecovered: number;
  opens: number;
  /** First-boot scenarios: the garbage that precedes provisioning was written (or begun). */
  prepared: boolean;
  /** First-boot scenarios: `Counter.format` returned. */
  formatted: boolean;
}

export interface CounterScenarioOptions {
  mode: FlashMode;
  /** Small blocks so that rotations come after a few entries. */
  blockLength: number;
  /** K. */
  reserve: number;
  /** Values to take in all. */
  total: number;
  /** Values per open: a clean reboot (fresh instance) after each session. */
  perSession: number;
  /** 'format': garbage, then Counter.format, under cuts (otherwise the partition starts formatted). */
  firstBoot?: 'format';
  /** Check the recovered bound against what was returned (off: only the values returned are checked). */
  checkBound?: boolean;
  /** Stand a different flash between the counter and the simulator (the broken-flash demonstration). */
  wrap?: (flash: FlashPartition) => FlashPartition;
  name?: string;
}

function flashOptions(mode: FlashMode, blockLength: number, blocks = 2): SimFlashOptions {
  // Plain mode: a write that would set a bit back to 1 (a write into a slot that is not free) is a bug: throw.
  return { blocks, blockLength, mode, onBitSet: 'throw' };
}

export function counterScenario(o: CounterScenarioOptions): CutScenario<CounterState> {
  const name = o.name ?? `counter/${o.mode}/block${o.blockLength}/K${o.reserve}/${o.total}${o.firstBoot ? `/first-boot-${o.firstBoot}` : ''}`;
  return {
    name,
    flash: flashOptions(o.mode, o.blockLength),
    createState: () => ({ maxReturned: 0, returned: 0, maxRecovered: 0, opens: 0, prepared: o.firstBoot !== 'format', formatted: false }),
    boot(flash, state) {
      if (!state.prepared) {
        // A partition holding something else; a cut here just leaves less of it.
        state.prepared = true;
        for (let block = 0; block < 2; block++) flash.write(block * o.blockLength, garbage(o.blockLength, block + 1));
      }
      if (!state.formatted) {
        Counter.format(flash);
        state.formatted = true;
      }
      const target = o.wrap ? o.wrap(flash) : flash;
      while (state.returned < o.total) {
        const counter = Counter.open(target, { reserve: o.reserve });
        checkRecovered(counter, state, o);
        const take = Math.min(o.perSession, o.total - state.returned);
        let previous: number | undefined;
        for (let i = 0; i < take; i++) {
          const value = counter.next();
          ok(Number.isSafeInteger(value) && value >= 1, `value ${value} is not an integer in 1..2^53-1`);
          ok(value > state.maxReturned, `value ${value} is not above ${state.maxReturned}, returned before`);
          if (previous !== undefined) equal(value, previous + 1, 'values within a boot are consecutive');
          previous = value;
          state.maxReturned = value;
          state.returned++;
          equal(counter.current(), value, 'current() after next()');
        }
      }
    },
  };
}

/** After every open: nothing returned yet in this boot; the bound covers what was returned, and skips at most K. */
function checkRecovered(counter: Counter, state: CounterState, o: CounterScenarioOptions): void {
  state.opens++;
  equal(counter.current(), undefined, 'current() right after open');
  const { reservedUpTo } = counter.stats();
  if (o.checkBound !== false) {
    ok(reservedUpTo >= state.maxReturned, `recovered bound ${reservedUpTo} is below value ${state.maxReturned}, returned before`);
    // A bound is written as v + K - 1, where v - 1 was returned or recovered: recovery never skips more than K.
    const limit = Math.max(state.maxReturned, state.maxRecovered) + o.reserve;
    ok(reservedUpTo <= limit, `recovered bound ${reservedUpTo} skips past ${limit}`);
  }
  state.maxRecovered = Math.max(state.maxRecovered, reservedUpTo);
}

function throwsStorage(run: () => unknown, code: StorageErrorCode, message: string): void {
  throwsCode<StorageError>(run, 'StorageError', code, message);
}

/** A fresh simulated flash for the input cases, formatted unless asked not to. */
function counterFlash(env: CaseEnv, o: { blockLength?: number; blocks?: number; mode?: FlashMode; blank?: boolean } = {}): CuttableFlash {
  const flash = env.createFlash(flashOptions(o.mode ?? 'plain', o.blockLength ?? 128, o.blocks ?? 2));
  if (!o.blank) Counter.format(flash);
  return flash;
}

function sameContents(flash: CuttableFlash, before: Uint8Array, message: string): void {
  bytesEqual(flash.snapshot().data, before, message);
}

/** Damage subject (issue 15, defect 1): values issued, then any single fault: next() never repeats one. */
function counterDamageSubject(mode: FlashMode, reserve: number, issued: number): DamageSubject<number> {
  return {
    name: `counter/${mode}/K${reserve}/issued${issued}`,
    flash: { blocks: 2, blockLength: 128, mode },
    populate(flash) {
      Counter.format(flash);
      let counter = Counter.open(flash, { reserve });
      for (let i = 0; i < issued; i++) {
        if (i % 5 === 4) counter = Counter.open(flash, { reserve });
        counter.next();
      }
      return counter.current() as number;
    },
    verify(flash, maxReturned) {
      let counter: Counter;
      try {
        counter = Counter.open(flash, { reserve });
      } catch (error) {
        if (error instanceof StorageError) return 'refused';
        throw error;
      }
      const value = counter.next();
      ok(value > maxReturned, `next() returned ${value}, not above ${maxReturned} issued before the damage`);
      return 'recovered';
    },
  };
}

/** 60 values, K=3, two records per block: 20 bounds and about 10 rotations in the clean run. */
const SMALL = { blockLength: 128, reserve: 3, total: 60, perSession: 10 } as const;
const FIRST_BOOT = { blockLength: 128, reserve: 3, total: 12, perSession: 4 } as const;


export const suite: CaseSuite = {
  name: 'counter',
  cases: [
    ...(['plain', 'strict'] as const).flatMap((mode) => [
      exhaustiveCase(`exhaustive cuts, ${mode}, K=3, two records per block, 10 values per boot (20 bounds, 10 rotations)`, counterScenario({ mode, ...SMALL })),
      exhaustiveCase(`exhaustive cuts with second cuts in the recovery boot, ${mode}, K=5, 1 value per boot`, counterScenario({ mode, blockLength: 160, reserve: 5, total: 12, perSession: 1 }), { secondCuts: { sample: 4 } }),
      exhaustiveCase(`first boot, garbage then format then count, ${mode}, cut at every operation`, counterScenario({ mode, ...FIRST_BOOT, firstBoot: 'format' })),
      {
        name: `random multi-cut runs (up to 4 cuts each), ${mode}`,
        run: (env: CaseEnv) => ({ ...runRandom(counterScenario({ mode, ...SMALL }), { ...runnerOptions(env), runs: 70, maxCuts: 4, seed: mode === 'plain' ? 11 : 12 }) }),
      },
      {
        name: `issue 15.1: after 1..3 were issued, any single damaged bit, unit or entry never makes next() repeat a value, ${mode}`,
        run: () => ({ ...runDamageSuite(counterDamageSubject(mode, 4096, 3), { kinds: ['bit', 'unit', 'entry'], allBits: true }) }),
      },
      {
        name: `damage after rotations: every bit, unit and block, ${mode}, K=2`,
        run: () => ({ ...runDamageSuite(counterDamageSubject(mode, 2, 21)) }),
      },
    ]),
    {
      name: 'the invariant catches values returned before their bound is durable',
      run(env) {
        const scenario = counterScenario({ mode: 'plain', ...SMALL, checkBound: false, wrap: (flash) => new WriteBackFlash(flash), name: 'counter/write-back-flash' });
        // Single cuts only: the assertion below is about the one cut that catches it.
        const caught = caughtByInvariant(
          () => runExhaustive(scenario, runnerOptions(env, { saveFailureImage: () => undefined, secondCuts: 'none' })),
          /returned before/,
          'a counter whose bound was not durable before its values were returned',
        );
        equal(caught.cutPlans.length, 1, 'one cut in the failing run');
        return { caughtAtOperation: caught.cutPlans[0].atOperation };
      },
    },
    {
      name: 'options: reserve must be an integer in 1..2^32',
      run(env) {
        const flash = counterFlash(env);
        const ops = flash.counters.operations;
        for (const reserve of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, MAX_COUNTER_RESERVE + 1]) {
          throws(() => Counter.open(flash, { reserve }), 'RangeError', `reserve ${reserve}`);
        }
        throws(() => Counter.open(flash, { reserve: '5' as unknown as number }), 'TypeError', 'reserve as a string');
        throws(() => Counter.open(flash, 5 as unknown as { reserve: number }), 'TypeError', 'options as a number');
        throws(() => Counter.open(flash, null as unknown as { reserve: number }), 'TypeError', 'options null');
        equal(Counter.open(flash).stats().reserve, DEFAULT_COUNTER_RESERVE, 'default K');
        equal(Counter.open(flash, {}).stats().reserve, DEFAULT_COUNTER_RESERVE, 'default K with {}');
        equal(Counter.open(flash, { reserve: MAX_COUNTER_RESERVE }).stats().reserve, MAX_COUNTER_RESERVE, 'largest K');
        equal(flash.counters.operations, ops, 'open writes nothing');
      },
    },
    {
      name: 'geometry: fewer than 2 blocks, writeAlign not dividing 16, blocks too small for a rotation -> bad-geometry',
      run(env) {
        throwsStorage(() => Counter.open(counterFlash(env, { blocks: 1, blank: true })), 'bad-geometry', 'one block');
        throwsStorage(() => Counter.format(counterFlash(env, { blocks: 1, blank: true })), 'bad-geometry', 'format, one block');
        throwsStorage(() => Counter.open(env.createFlash({ blocks: 2, blockLength: 128, writeAlign: 32 })), 'bad-geometry', 'writeAlign 32');
        throwsStorage(() => Counter.format(env.createFlash({ blocks: 2, blockLength: 96 })), 'bad-geometry', 'three records per block');
        // writeAlign 8 divides 16; two records per block: every other bound rotates.
        const tiny = env.createFlash({ blocks: 2, blockLength: 128, writeAlign: 8 });
        Counter.format(tiny);
        const counter = Counter.open(tiny, { reserve: 1 });
        for (let v = 1; v <= 5; v++) equal(counter.next(), v, 'value on two-record blocks');
        equal(Counter.open(tiny, { reserve: 1 }).next(), 6, 'after reopen');
      },
    },
    {
      name: 'a bound costs two 16-byte copies and is written once per K values',
      run(env) {
        const flash = counterFlash(env, { blockLength: 4096 });
        const before = flash.counters.bytesProgrammed;
        const writes = flash.counters.writes;
        const counter = Counter.open(flash);
        equal(counter.current(), undefined, 'current() before next()');
        equal(counter.next(), 1, 'first value');
        equal(flash.counters.bytesProgrammed - before, 32, 'one record: two copies');
        equal(flash.counters.writes - writes, 2, 'copy 1, then copy 2');
        for (let v = 2; v <= 4096; v++) counter.next();
        equal(flash.counters.writes - writes, 2, 'K values per record');
        equal(counter.next(), 4097, 'value 4097');
        equal(flash.counters.writes - writes, 4, 'the 4097th value writes the next bound');
        equal(counter.stats().reservedUpTo, 8192, 'bound after 4097');
      },
    },
    {
      name: 'recovery reads both blocks in chunks of at most 256 bytes, and nothing else',
      run(env) {
        const flash = counterFlash(env, { blockLength: 4096, blocks: 4 });
        // Blocks 2 and 3 are not the counter's: fill them with garbage, which it must neither read nor change.
        flash.write(2 * 4096, garbage(2 * 4096, 9));
        const before = flash.snapshot().data.slice(2 * 4096);
        let counter = Counter.open(flash, { reserve: 1 });
        for (let i = 0; i < 300; i++) counter.next(); // 300 records: two rotations
        const readsBefore = flash.counters.reads;
        const bytesBefore = flash.counters.bytesRead;
        counter = Counter.open(flash, { reserve: 1 });
        equal(flash.counters.bytesRead - bytesBefore, 8192, 'bytes read by open');
        equal(flash.counters.reads - readsBefore, 32, 'reads of 256 bytes');
        equal(counter.stats().recoveryBytesRead, 8192, 'stats().recoveryBytesRead');
        equal(counter.next(), 301, 'value after reopen with K=1');
        bytesEqual(flash.snapshot().data.slice(2 * 4096), before, 'blocks 2 and 3');
        return { erases: flash.counters.erases };
      },
    },
    {
      name: 'a newer format -> format-too-new, a format-1 entry -> not-formatted; flash unchanged',
      run(env) {
        const flash = counterFlash(env);
        const record = encodeEntry16(new Uint8Array(16), COUNTER_LOG.version + 1, COUNTER_LOG.kind, 0, 20);
        flash.write(32, record);
        const before = flash.snapshot().data;
        const ops = flash.counters.operations;
        throwsStorage(() => Counter.open(flash), 'format-too-new', 'a record of the next format');
        sameContents(flash, before, 'after format-too-new');
        equal(flash.counters.operations, ops, 'no write or erase');
        // What holdfast's first counter format wrote (version 1, kind 1, bound 4096): a clean break, refused.
        const old = counterFlash(env, { blank: true });
        old.write(0, encodeEntry16(new Uint8Array(16), 1, 0x01, 0, 4096));
        throwsStorage(() => Counter.open(old), 'not-formatted', 'a format-1 counter');
      },
    },
    {
      name: 'blank -> blank (never a fresh counter); garbage -> not-formatted; flash unchanged; format provisions it',
      run(env) {
        const blank = counterFlash(env, { blank: true });
        throwsStorage(() => Counter.open(blank), 'blank', 'blank partition');
        equal(blank.counters.operations, 0, 'open writes nothing');
        const flash = counterFlash(env, { blank: true });
        flash.write(0, garbage(256, 3));
        const before = flash.snapshot().data;
        throwsStorage(() => Counter.open(flash), 'not-formatted', 'garbage partition');
        sameContents(flash, before, 'after not-formatted');
        Counter.format(flash);
        equal(Counter.open(flash, { reserve: 3 }).next(), 1, 'first value after format');
      },
    },
    {
      name: 'values at the 53-bit bound -> exhausted, in this boot and the next',
      run(env) {
        const flash = counterFlash(env);
        TwoBlockLog.open(flash, COUNTER_LOG).write(0, COUNTER_MAX_VALUE - 2);
        let counter = Counter.open(flash, { reserve: 4096 });
        equal(counter.next(), COUNTER_MAX_VALUE - 1, 'value 2^53-2');
        equal(counter.stats().reservedUpTo, COUNTER_MAX_VALUE, 'the bound is capped at 2^53-1');
        equal(counter.next(), COUNTER_MAX_VALUE, 'value 2^53-1');
        equal(counter.stats().remaining, 0, 'nothing remaining');
        const ops = flash.counters.operations;
        throwsStorage(() => counter.next(), 'exhausted', 'past the bound');
        throwsStorage(() => counter.next(), 'exhausted', 'again');
        equal(counter.current(), COUNTER_MAX_VALUE, 'current() unchanged');
        counter = Counter.open(flash, { reserve: 4096 });
        throwsStorage(() => counter.next(), 'exhausted', 'after a reboot');
        equal(flash.counters.operations, ops, 'exhaustion writes nothing');
      },
    },
  ],
};
