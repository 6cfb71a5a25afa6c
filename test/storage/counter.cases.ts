/**
 * The monotonic counter (docs/spec/counter.md) under power cuts and bad
 * input, in Node and in XS. The invariant after every recovery: every value
 * returned later is strictly above every value returned before (so none
 * repeats and none goes backwards), within a boot and across boots.
 */
import { WriteBackFlash } from '../support/write-back-flash.ts';
import {
  Counter,
  COUNTER_ENTRY_LENGTH,
  COUNTER_MAX_VALUE,
  decodeCounterSlot,
  DEFAULT_COUNTER_RESERVE,
  encodeCounterEntry,
  MAX_COUNTER_RESERVE,
} from '../../firmware/storage/counter.ts';
import { StorageError, type StorageErrorCode } from '../../firmware/storage/errors.ts';
import { crc32 } from '../../firmware/base/crc32.ts';
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { runExhaustive, runRandom, PowerCutFailure, type CutScenario, type CuttableFlash, type RunnerOptions } from '../../tools/sim/power-cut.ts';
import { Rng } from '../../tools/sim/rng.ts';
import type { FlashMode, SimFlashOptions } from '../../tools/sim/flash/sim-flash.ts';
import { bytesEqual, CheckFailure, equal, ok, throws } from '../support/check.ts';
import type { CaseEnv, CaseSuite, FirmwareCase } from '../support/cases.ts';

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
  /** 'blank': the partition starts blank and is opened without format; 'format': garbage, then Counter.format. */
  firstBoot?: 'blank' | 'format';
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
    createState: () => ({ maxReturned: 0, returned: 0, maxRecovered: 0, opens: 0, prepared: o.firstBoot !== 'format', formatted: o.firstBoot !== 'format' }),
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

function garbage(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  new Rng(0xc0de + seed).fill(bytes);
  return bytes;
}

function runnerOptions(env: CaseEnv): RunnerOptions {
  return { createFlash: env.createFlash, saveFailureImage: env.saveFailureImage };
}

function throwsStorage(run: () => unknown, code: StorageErrorCode, message: string): void {
  const error = throws(run, 'StorageError', message);
  ok(error instanceof StorageError, `${message}: not a StorageError`);
  equal(error.code, code, `${message}: code`);
}

/** A fresh simulated flash (blank) for the input cases. */
function blankFlash(env: CaseEnv, blockLength = 64, blocks = 2, mode: FlashMode = 'plain'): CuttableFlash {
  return env.createFlash(flashOptions(mode, blockLength, blocks));
}

function writeEntry(flash: FlashPartition, block: number, slot: number, bytes: Uint8Array): void {
  flash.write(block * flash.status().blockLength + slot * COUNTER_ENTRY_LENGTH, bytes);
}

/** An entry of a hypothetical format 2 (same first unit: version byte, CRC over 0..11 at 12). */
function entryOfVersion(version: number, reservedUpTo: number): Uint8Array {
  const entry = encodeCounterEntry(reservedUpTo);
  entry[0] = version;
  const crc = crc32(entry, 0, 12);
  entry[12] = crc & 0xff;
  entry[13] = (crc >>> 8) & 0xff;
  entry[14] = (crc >>> 16) & 0xff;
  entry[15] = (crc >>> 24) & 0xff;
  return entry;
}

function sameContents(flash: CuttableFlash, before: Uint8Array, message: string): void {
  bytesEqual(flash.snapshot().data, before, message);
}

/** 120 values, K=3, 4 slots per block: 48 bounds and 11 rotations in the clean run. */
const SMALL = { blockLength: 64, reserve: 3, total: 120, perSession: 10 } as const;
const FIRST_BOOT = { blockLength: 64, reserve: 3, total: 24, perSession: 4 } as const;

function exhaustiveCase(name: string, options: CounterScenarioOptions): FirmwareCase {
  return { name, run: (env) => ({ ...runExhaustive(counterScenario(options), runnerOptions(env)) }) };
}

export const suite: CaseSuite = {
  name: 'counter',
  cases: [
    ...(['plain', 'strict'] as const).flatMap((mode) => [
      exhaustiveCase(`exhaustive cuts, ${mode}, K=3, 64-byte blocks, 10 values per boot (48 bounds, 11 rotations)`, { mode, ...SMALL }),
      exhaustiveCase(`exhaustive cuts, ${mode}, K=5, 128-byte blocks, 1 value per boot (40 bounds, 4 rotations)`, { mode, blockLength: 128, reserve: 5, total: 40, perSession: 1 }),
      exhaustiveCase(`first boot, blank partition opened without format, ${mode}, cut at every operation`, { mode, ...FIRST_BOOT, firstBoot: 'blank' }),
      exhaustiveCase(`first boot, garbage then format then count, ${mode}, cut at every operation`, { mode, ...FIRST_BOOT, firstBoot: 'format' }),
      {
        name: `random multi-cut runs (up to 4 cuts each), ${mode}`,
        run: (env: CaseEnv) => ({ ...runRandom(counterScenario({ mode, ...SMALL }), { ...runnerOptions(env), runs: 70, maxCuts: 4, seed: mode === 'plain' ? 11 : 12 }) }),
      },
    ]),
    {
      name: 'the invariant catches values returned before their bound is durable',
      run(env) {
        let caught: PowerCutFailure | undefined;
        try {
          const scenario = counterScenario({ mode: 'plain', ...SMALL, checkBound: false, wrap: (flash) => new WriteBackFlash(flash), name: 'counter/write-back-flash' });
          runExhaustive(scenario, { ...runnerOptions(env), saveFailureImage: () => undefined });
        } catch (error) {
          if (!(error instanceof PowerCutFailure)) throw error;
          caught = error;
        }
        ok(caught, 'a counter whose bound was not durable before its values were returned passed every power cut');
        ok(caught.failure instanceof CheckFailure, `failure should be an invariant violation, was ${String(caught.failure)}`);
        ok(/returned before/.test(caught.failure.message), `the value invariant should fail, got: ${caught.failure.message}`);
        equal(caught.cutPlans.length, 1, 'one cut in the failing run');
        return { caughtAtOperation: caught.cutPlans[0].atOperation };
      },
    },
    {
      name: 'options: reserve must be an integer in 1..2^32',
      run(env) {
        const flash = blankFlash(env);
        for (const reserve of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, MAX_COUNTER_RESERVE + 1]) {
          throws(() => Counter.open(flash, { reserve }), 'RangeError', `reserve ${reserve}`);
        }
        throws(() => Counter.open(flash, { reserve: '5' as unknown as number }), 'TypeError', 'reserve as a string');
        throws(() => Counter.open(flash, 5 as unknown as { reserve: number }), 'TypeError', 'options as a number');
        throws(() => Counter.open(flash, null as unknown as { reserve: number }), 'TypeError', 'options null');
        equal(Counter.open(flash).stats().reserve, DEFAULT_COUNTER_RESERVE, 'default K');
        equal(Counter.open(flash, {}).stats().reserve, DEFAULT_COUNTER_RESERVE, 'default K with {}');
        equal(Counter.open(flash, { reserve: MAX_COUNTER_RESERVE }).stats().reserve, MAX_COUNTER_RESERVE, 'largest K');
        equal(flash.counters.operations, 0, 'open writes nothing');
      },
    },
    {
      name: 'geometry: fewer than 2 blocks, writeAlign not dividing 16, odd block length -> bad-geometry',
      run(env) {
        throwsStorage(() => Counter.open(blankFlash(env, 64, 1)), 'bad-geometry', 'one block');
        throwsStorage(() => Counter.format(blankFlash(env, 64, 1)), 'bad-geometry', 'format, one block');
        throwsStorage(() => Counter.open(env.createFlash({ blocks: 2, blockLength: 64, writeAlign: 32 })), 'bad-geometry', 'writeAlign 32');
        throwsStorage(() => Counter.open(env.createFlash({ blocks: 2, blockLength: 40 })), 'bad-geometry', 'block length 40');
        // writeAlign 8 divides 16; a 16-byte block holds one entry: every entry rotates.
        const tiny = env.createFlash({ blocks: 2, blockLength: 16, writeAlign: 8 });
        const counter = Counter.open(tiny, { reserve: 1 });
        for (let v = 1; v <= 5; v++) equal(counter.next(), v, 'value on one-slot blocks');
        equal(Counter.open(tiny, { reserve: 1 }).next(), 6, 'after reopen');
      },
    },
    {
      name: 'entry bytes match the spec example; first entry lands in block 0 slot 0',
      run(env) {
        const expected = Uint8Array.of(0x01, 0x01, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0e, 0xc9, 0x20, 0x46);
        bytesEqual(encodeCounterEntry(4096), expected, 'entry for 4096');
        bytesEqual(
          encodeCounterEntry(COUNTER_MAX_VALUE),
          Uint8Array.of(0x01, 0x01, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x00, 0xd4, 0x49, 0xe4, 0x16),
          'entry for 2^53-1',
        );
        for (const v of [0, 1, 4096, 0xffffffff, 0x100000000, 2 ** 40 + 3, COUNTER_MAX_VALUE]) {
          const slot = decodeCounterSlot(encodeCounterEntry(v));
          ok(slot.kind === 'bound' && slot.reservedUpTo === v, `round trip of ${v}`);
        }
        throws(() => encodeCounterEntry(COUNTER_MAX_VALUE + 1), 'RangeError', 'bound above 2^53-1');
        const flash = blankFlash(env, 4096);
        const counter = Counter.open(flash);
        equal(counter.current(), undefined, 'current() before next()');
        equal(counter.next(), 1, 'first value');
        const data = flash.snapshot().data;
        bytesEqual(data.subarray(0, 16), expected, 'first entry on flash');
        equal(flash.counters.bytesProgrammed, 16, 'one entry programmed');
        for (let v = 2; v <= 4096; v++) counter.next();
        equal(flash.counters.writes, 1, 'K values per entry');
        equal(counter.next(), 4097, 'value 4097');
        equal(flash.counters.writes, 2, 'the 4097th value writes the next bound');
        equal(counter.stats().reservedUpTo, 8192, 'bound after 4097');
      },
    },
    {
      name: 'recovery reads both blocks in chunks of at most 256 bytes, and nothing else',
      run(env) {
        const flash = blankFlash(env, 4096, 4);
        // Blocks 2 and 3 are not the counter's: fill them with garbage, which it must neither read nor change.
        flash.write(2 * 4096, garbage(2 * 4096, 9));
        const before = flash.snapshot().data.slice(2 * 4096);
        let counter = Counter.open(flash, { reserve: 1 });
        for (let i = 0; i < 600; i++) counter.next(); // 600 entries: two rotations
        const readsBefore = flash.counters.reads;
        const bytesBefore = flash.counters.bytesRead;
        counter = Counter.open(flash, { reserve: 1 });
        equal(flash.counters.bytesRead - bytesBefore, 8192, 'bytes read by open');
        equal(flash.counters.reads - readsBefore, 32, 'reads of 256 bytes');
        equal(counter.stats().recoveryBytesRead, 8192, 'stats().recoveryBytesRead');
        equal(counter.next(), 601, 'value after reopen with K=1');
        bytesEqual(flash.snapshot().data.slice(2 * 4096), before, 'blocks 2 and 3');
        return { erases: flash.counters.erases };
      },
    },
    {
      name: 'a newer format version -> format-too-new, flash unchanged',
      run(env) {
        const flash = blankFlash(env);
        writeEntry(flash, 0, 0, encodeCounterEntry(10));
        writeEntry(flash, 0, 1, entryOfVersion(2, 20));
        const before = flash.snapshot().data;
        const ops = flash.counters.operations;
        throwsStorage(() => Counter.open(flash), 'format-too-new', 'version 2 entry');
        sameContents(flash, before, 'after format-too-new');
        equal(flash.counters.operations, ops, 'no write or erase');
        // In the other block too, behind valid entries of format 1.
        const other = blankFlash(env);
        writeEntry(other, 0, 0, encodeCounterEntry(10));
        writeEntry(other, 1, 3, entryOfVersion(7, 5));
        throwsStorage(() => Counter.open(other), 'format-too-new', 'version 7 entry in block 1');
      },
    },
    {
      name: 'garbage in both blocks -> not-formatted, flash unchanged; format provisions it',
      run(env) {
        const flash = blankFlash(env);
        flash.write(0, garbage(128, 3));
        const before = flash.snapshot().data;
        throwsStorage(() => Counter.open(flash), 'not-formatted', 'garbage partition');
        sameContents(flash, before, 'after not-formatted');
        equal(flash.counters.operations, 1, 'only the test wrote');
        // Block 1 blank, block 0 torn slots with a gap: not the shape of first writes.
        const gap = blankFlash(env);
        writeEntry(gap, 0, 2, garbage(16, 4));
        throwsStorage(() => Counter.open(gap), 'not-formatted', 'a torn slot after a free one');
        // Block 0 blank, block 1 garbage.
        const second = blankFlash(env);
        writeEntry(second, 1, 0, garbage(16, 5));
        throwsStorage(() => Counter.open(second), 'not-formatted', 'garbage in block 1 only');
        Counter.format(flash);
        const counter = Counter.open(flash, { reserve: 3 });
        equal(counter.next(), 1, 'first value after format');
        equal(flash.counters.erases, 2, 'format erases the two blocks');
      },
    },
    {
      name: 'blank opens fresh; torn first writes in block 0 still open fresh',
      run(env) {
        const blank = blankFlash(env);
        equal(Counter.open(blank).stats().reservedUpTo, 0, 'blank partition: bound 0');
        equal(blank.counters.operations, 0, 'open writes nothing');
        const torn = blankFlash(env);
        const partial = encodeCounterEntry(3);
        partial.fill(0xff, 9); // a write cut after 9 bytes
        writeEntry(torn, 0, 0, partial);
        writeEntry(torn, 0, 1, garbage(16, 6));
        const counter = Counter.open(torn, { reserve: 3 });
        equal(counter.stats().skippedSlots, 2, 'torn slots skipped');
        equal(counter.next(), 1, 'first value');
        equal(counter.stats().nextSlot, 3, 'the entry went after the torn slots');
        equal(Counter.open(torn, { reserve: 3 }).next(), 4, 'after reopen');
      },
    },
    {
      name: 'garbage in one block with valid entries in the other opens (torn erase during rotation)',
      run(env) {
        // Block 0 full of bounds, block 1 torn by an interrupted erase.
        const flash = blankFlash(env);
        for (let slot = 0; slot < 4; slot++) writeEntry(flash, 0, slot, encodeCounterEntry(100 + slot * 10));
        flash.write(64, garbage(64, 7));
        let counter = Counter.open(flash, { reserve: 10 });
        equal(counter.stats().reservedUpTo, 130, 'bound from block 0');
        equal(counter.next(), 131, 'resumes above the bound');
        equal(flash.counters.erases, 1, 'rotation erased the garbage block');
        equal(counter.stats().activeBlock, 1, 'block 1 active');
        counter = Counter.open(flash, { reserve: 10 });
        equal(counter.next(), 141, 'after reopen');
        // Block 1 holds the bounds, block 0 garbage.
        const other = blankFlash(env);
        other.write(0, garbage(64, 8));
        writeEntry(other, 1, 0, encodeCounterEntry(50));
        counter = Counter.open(other, { reserve: 10 });
        equal(counter.stats().activeBlock, 1, 'block 1 active');
        equal(counter.next(), 51, 'resumes above block 1 bound');
        equal(counter.stats().nextSlot, 2, 'appended in block 1');
        equal(other.counters.erases, 0, 'no erase');
      },
    },
    {
      name: 'values at the 53-bit bound -> exhausted, in this boot and the next',
      run(env) {
        const flash = blankFlash(env);
        writeEntry(flash, 0, 0, encodeCounterEntry(COUNTER_MAX_VALUE - 2));
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
