/**
 * The two-block log (docs/spec/two-block-log.md) under power cuts (single
 * and double, prefix and bit-subset tears) and damage (every bit, every
 * 16-byte unit, every record, every block), in Node and XS. The invariant:
 * no key's value ever reads lower than the last write that returned, nor
 * higher than any write asked for; single faults always recover exactly;
 * anything worse recovers or is refused with a typed StorageError.
 */
import { LOG_PAIR_LENGTH, LOG_TAG_HANDOFF, LOG_TAG_HEADER, TwoBlockLog, type TwoBlockLogSpec } from '../../firmware/base/two-block-log.ts';
import { encodeEntry16, ENTRY16_LENGTH } from '../../firmware/base/entry16.ts';
import { StorageError, type StorageErrorCode } from '../../firmware/base/storage-error.ts';
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { runRandom, type CutScenario } from '../../tools/sim/power-cut.ts';
import { SimFlash, type FlashMode } from '../../tools/sim/flash/sim-flash.ts';
import { bytesEqual, CheckFailure, equal, ok, throws } from '../support/check.ts';
import { exhaustiveCase, garbage, runnerOptions, throwsCode } from '../support/case-helpers.ts';
import { runDamageSuite, type ByteRange, type DamageSubject } from '../support/damage.ts';
import type { CaseEnv, CaseSuite } from '../support/cases.ts';

const MODES: readonly FlashMode[] = ['plain', 'strict'];

function spec(keys: number): TwoBlockLogSpec {
  return { name: `test log (${keys} keys)`, version: 2, kind: 0x54, keys };
}

interface LogState {
  /** Format-first scenarios: the garbage that precedes provisioning was written (or begun). */
  prepared: boolean;
  formatted: boolean;
  /** Per key, the last value whose write returned. */
  durable: number[];
  /** Per key, the largest value a write was asked for. */
  asked: number[];
  writes: number;
}

interface LogScenarioOptions {
  mode: FlashMode;
  keys: number;
  blockLength: number;
  /** Writes in all (round robin over the keys, each one above the key's value). */
  total: number;
  /** Writes per boot before a clean reboot. */
  perBoot: number;
  /** Format under cuts on the first boots (the partition starts with garbage). */
  formatFirst?: boolean;
}

/** Every key's value within [durable, asked], after every recovery. */
function checkValues(log: TwoBlockLog, state: LogState): void {
  for (let key = 0; key < state.durable.length; key++) {
    const value = log.value(key);
    ok(value >= state.durable[key], `key ${key} reads ${value}, below ${state.durable[key]} whose write returned`);
    ok(value <= state.asked[key], `key ${key} reads ${value}, above anything asked (${state.asked[key]})`);
  }
}

export function logScenario(o: LogScenarioOptions): CutScenario<LogState> {
  const s = spec(o.keys);
  return {
    name: `two-block-log/${o.mode}/keys${o.keys}/block${o.blockLength}/${o.total}${o.formatFirst ? '/format-first' : ''}`,
    flash: { blocks: 2, blockLength: o.blockLength, mode: o.mode, onBitSet: 'throw' },
    createState: () => ({ prepared: !o.formatFirst, formatted: false, durable: new Array<number>(o.keys).fill(0), asked: new Array<number>(o.keys).fill(0), writes: 0 }),
    boot(flash, state) {
      if (!state.prepared) {
        // A partition holding something else; a cut here just leaves less of it.
        state.prepared = true;
        flash.write(0, garbage(2 * o.blockLength, 1));
      }
      if (!state.formatted) {
        TwoBlockLog.format(flash, s);
        state.formatted = true;
      }
      while (state.writes < o.total) {
        const log = TwoBlockLog.open(flash, s);
        checkValues(log, state);
        for (let key = 0; key < o.keys; key++) state.durable[key] = log.value(key);
        for (let i = 0; i < o.perBoot && state.writes < o.total; i++) {
          const key = state.writes % o.keys;
          const value = log.value(key) + 1 + (state.writes % 3);
          state.asked[key] = Math.max(state.asked[key], value);
          log.write(key, value);
          state.durable[key] = value;
          state.writes++;
        }
      }
      checkValues(TwoBlockLog.open(flash, s), state);
    },
  };
}

function throwsStorage(run: () => unknown, code: StorageErrorCode, message: string): StorageError {
  return throwsCode<StorageError>(run, 'StorageError', code, message);
}

/** A formatted log with `writes` round-robin writes done (value = write index + 1 for its key). */
function populated(mode: FlashMode, keys: number, blockLength: number, writes: number): { flash: SimFlash; values: number[] } {
  const flash = new SimFlash({ blocks: 2, blockLength, mode, onBitSet: 'throw' });
  TwoBlockLog.format(flash, spec(keys));
  const log = TwoBlockLog.open(flash, spec(keys));
  const values = new Array<number>(keys).fill(0);
  for (let i = 0; i < writes; i++) {
    const key = i % keys;
    values[key] += 7;
    log.write(key, values[key]);
  }
  return { flash, values };
}

/** Damage subject: a log after several rotations; single faults recover exactly, worse ones recover or refuse. */
function logDamageSubject(mode: FlashMode, keys: number, blockLength: number, writes: number): DamageSubject<number[]> {
  return {
    name: `two-block-log/${mode}/keys${keys}`,
    flash: { blocks: 2, blockLength, mode },
    populate(flash) {
      TwoBlockLog.format(flash, spec(keys));
      const log = TwoBlockLog.open(flash, spec(keys));
      const values = new Array<number>(keys).fill(0);
      for (let i = 0; i < writes; i++) {
        values[i % keys] += 7;
        log.write(i % keys, values[i % keys]);
      }
      return values;
    },
    entries(flash) {
      const out: ByteRange[] = [];
      for (let at = 0; at < flash.data.length; at += ENTRY16_LENGTH) out.push({ byteOffset: at, byteLength: ENTRY16_LENGTH });
      return out;
    },
    verify(flash, values, damage) {
      let log: TwoBlockLog;
      try {
        log = TwoBlockLog.open(flash, spec(keys));
      } catch (error) {
        if (!(error instanceof StorageError)) throw error;
        // A single bit or one 16-byte unit never destroys both copies of anything: it must recover.
        ok(damage.kind === 'block', `refused (${error.code}: ${error.message}) after a single fault`);
        ok(error.code === 'damaged' || error.code === 'not-formatted' || error.code === 'blank', `refusal code ${error.code}`);
        return 'refused';
      }
      for (let key = 0; key < keys; key++) {
        if (damage.kind === 'block') ok(log.value(key) >= values[key], `key ${key} reads ${log.value(key)} < ${values[key]}`);
        else equal(log.value(key), values[key], `key ${key} after a single fault`);
      }
      // The damaged log keeps working: one more write per key lands and reads back.
      for (let key = 0; key < keys; key++) log.write(key, log.value(key) + 1);
      const again = TwoBlockLog.open(flash, spec(keys));
      for (let key = 0; key < keys; key++) equal(again.value(key), log.value(key), `key ${key} after a write on the damaged log`);
      return 'recovered';
    },
  };
}

/** Write raw entry `bytes` into both copies of `pair` of `block`. */
function putPair(flash: FlashPartition, block: number, pair: number, version: number, tag: number, extra: number, value: number, copies = 2): void {
  const entry = encodeEntry16(new Uint8Array(ENTRY16_LENGTH), version, tag, extra, value);
  const at = block * flash.status().blockLength + pair * LOG_PAIR_LENGTH;
  for (let c = 0; c < copies; c++) flash.write(at + c * ENTRY16_LENGTH, entry);
}

/** Damage (not a program): 16 bytes of garbage at `at`, whatever was there. */
function damageAt(flash: SimFlash, at: number, seed: number): void {
  flash.data.set(garbage(ENTRY16_LENGTH, seed), at);
  flash.deriveUnitsFromContents();
}

/** Two records per block: 5 writes rotate twice. */
const SINGLE = { keys: 1, blockLength: 128, total: 5, perBoot: 3 } as const;
const MULTI = { keys: 3, blockLength: 192, total: 18, perBoot: 4 } as const;


export const suite: CaseSuite = {
  name: 'two-block log',
  cases: [
    ...MODES.flatMap((mode) => [
      exhaustiveCase(`exhaustive cuts with a second cut at every operation of every recovery boot, ${mode}, 1 key, 2 rotations`, logScenario({ mode, ...SINGLE }), { secondCuts: 'every' }),
      exhaustiveCase(`exhaustive cuts with sampled second cuts, ${mode}, 3 keys, 6 records per block`, logScenario({ mode, ...MULTI }), { secondCuts: { sample: 3 } }),
      exhaustiveCase(`format on garbage under cuts, ${mode}`, logScenario({ mode, keys: 2, blockLength: 160, total: 4, perBoot: 2, formatFirst: true }), { secondCuts: { sample: 3 } }),
      {
        name: `random multi-cut runs (up to 5 cuts), ${mode}, 3 keys`,
        run: (env: CaseEnv) => ({ ...runRandom(logScenario({ mode, keys: 3, blockLength: 192, total: 40, perBoot: 5 }), { ...runnerOptions(env), runs: 60, maxCuts: 5, seed: mode === 'plain' ? 21 : 22 }) }),
      },
      {
        name: `damage: every bit, unit, entry and block, ${mode}, 1 key after 3 rotations`,
        run: () => ({ ...runDamageSuite(logDamageSubject(mode, 1, 128, 8), { allBits: true }) }),
      },
      {
        name: `damage: every bit, unit, entry and block, ${mode}, 3 keys after 2 rotations`,
        run: () => ({ ...runDamageSuite(logDamageSubject(mode, 3, 192, 11)) }),
      },
    ]),
    {
      name: 'blank partition -> blank (never read as zero); garbage -> not-formatted; flash unchanged',
      run(env) {
        const blank = env.createFlash({ blocks: 2, blockLength: 128 });
        throwsStorage(() => TwoBlockLog.open(blank, spec(1)), 'blank', 'blank partition');
        const junk = env.createFlash({ blocks: 2, blockLength: 128 });
        junk.write(0, garbage(256, 2));
        const before = junk.snapshot().data;
        throwsStorage(() => TwoBlockLog.open(junk, spec(1)), 'not-formatted', 'garbage');
        bytesEqual(junk.snapshot().data, before, 'open writes nothing');
        equal(junk.counters.operations, 1, 'only the test wrote');
      },
    },
    {
      name: 'format writes the spec bytes: block 1 generation 1 naming generation 2, block 0 generation 2',
      run(env) {
        const flash = env.createFlash({ blocks: 2, blockLength: 128 });
        TwoBlockLog.format(flash, spec(1));
        const data = flash.snapshot().data;
        // Header of generation 2 in block 0, pair 0, copy 1 (docs/spec/two-block-log.md, example).
        bytesEqual(data.subarray(0, 16), Uint8Array.of(0x02, 0x48, 0x54, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0x15, 0x81, 0xbf, 0x09), 'block 0 header');
        bytesEqual(data.subarray(16, 32), data.subarray(0, 16), 'copy 2 = copy 1');
        equal(data[128 + 1], LOG_TAG_HEADER, 'block 1 header tag');
        equal(data[128 + 4], 1, 'block 1 generation');
        equal(data[128 + 96 + 1], LOG_TAG_HANDOFF, 'block 1 handoff tag');
        equal(data[128 + 96 + 4], 2, 'block 1 names generation 2');
        const log = TwoBlockLog.open(flash, spec(1));
        equal(log.value(0), 0, 'a formatted log holds 0');
        equal(log.stats().generation, 2, 'generation');
        equal(log.stats().activeBlock, 0, 'block 0 active');
      },
    },
    {
      name: 'a newer format -> format-too-new; an older one or another store -> not-formatted; too many keys',
      run(env) {
        const flash = env.createFlash({ blocks: 2, blockLength: 128 });
        TwoBlockLog.format(flash, spec(1));
        putPair(flash, 0, 1, 3, 0x54, 0, 5);
        throwsStorage(() => TwoBlockLog.open(flash, spec(1)), 'format-too-new', 'a version 3 record');
        const old = env.createFlash({ blocks: 2, blockLength: 128 });
        putPair(old, 0, 0, 1, 0x01, 0, 4096, 1);
        const error = throwsStorage(() => TwoBlockLog.open(old, spec(1)), 'not-formatted', 'a format 1 entry');
        ok(error.message.includes('format 1'), 'the message names the old format');
        const other = env.createFlash({ blocks: 2, blockLength: 128 });
        TwoBlockLog.format(other, { ...spec(1), kind: 0x46 });
        throwsStorage(() => TwoBlockLog.open(other, spec(1)), 'not-formatted', "another store's partition");
        const many = env.createFlash({ blocks: 2, blockLength: 192 });
        TwoBlockLog.format(many, spec(3));
        TwoBlockLog.open(many, spec(3)).write(2, 9);
        throwsStorage(() => TwoBlockLog.open(many, spec(2)), 'too-many-keys', 'a record for key 2 of 2');
      },
    },
    {
      name: 'evidence of loss is refused as damaged: both copies unreadable, copies that disagree, a lost newer block, a generation gap',
      run() {
        const base = populated('plain', 1, 128, 2);
        // Record pair 1 of block 0 holds 7, pair 2 holds 14: destroy both copies of pair 2.
        const both = SimFlash.fromSnapshot(base.flash.snapshot());
        both.data.set(garbage(32, 3), 2 * LOG_PAIR_LENGTH);
        throwsStorage(() => TwoBlockLog.open(both, spec(1)), 'damaged', 'both copies of the newest record');
        const disagree = SimFlash.fromSnapshot(base.flash.snapshot());
        disagree.data.set(encodeEntry16(new Uint8Array(16), 2, 0x54, 0, 99), 2 * LOG_PAIR_LENGTH + 16);
        throwsStorage(() => TwoBlockLog.open(disagree, spec(1)), 'damaged', 'copies that disagree');
        const lost = SimFlash.fromSnapshot(base.flash.snapshot());
        lost.data.fill(0xff, 0, 128);
        lost.deriveUnitsFromContents();
        throwsStorage(() => TwoBlockLog.open(lost, spec(1)), 'damaged', 'the current block erased: the older block names it');
        const gap = SimFlash.fromSnapshot(base.flash.snapshot());
        gap.data.set(encodeEntry16(new Uint8Array(16), 2, LOG_TAG_HEADER, 0x54, 5), 128);
        throwsStorage(() => TwoBlockLog.open(gap, spec(1)), 'damaged', 'generations 2 and 5');
      },
    },
    {
      name: 'a cut between the new block header and the handoff: values count, the next write names the block first',
      run(env) {
        const flash = env.createFlash({ blocks: 2, blockLength: 128 });
        TwoBlockLog.format(flash, spec(1));
        const log = TwoBlockLog.open(flash, spec(1));
        log.write(0, 1);
        log.write(0, 2);
        // The block is full: the next write rotates (erase, record x2, header x2, handoff x2): cut the first handoff copy.
        const ops = flash.counters.operations;
        flash.armCut({ atOperation: 5, seed: 1 });
        throws(() => log.write(0, 3), 'PowerCut', 'the cut');
        flash.powerOn();
        equal(flash.counters.operations - ops, 6, 'the sixth operation was cut');
        const recovered = TwoBlockLog.open(flash, spec(1));
        equal(recovered.value(0), 3, 'the new block is complete: its value counts');
        equal(recovered.report().handoffPending, true, 'handoff pending');
        recovered.settle();
        equal(recovered.report().handoffPending, false, 'settled');
        const again = TwoBlockLog.open(flash, spec(1));
        equal(again.report().handoffPending, false, 'the handoff is durable');
        equal(again.value(0), 3, 'value');
      },
    },
    {
      name: 'a value one copy holds (a cut between the copies) is written whole by settle: damage to that copy later cannot lower it',
      run() {
        // A record: copy 1 landed, copy 2 never written; then that copy is damaged after settle.
        const flash = new SimFlash({ blocks: 2, blockLength: 160, onBitSet: 'throw' });
        TwoBlockLog.format(flash, spec(1));
        TwoBlockLog.open(flash, spec(1)).write(0, 3);
        putPair(flash, 0, 2, 2, 0x54, 0, 4, 1);
        const lone = TwoBlockLog.open(flash, spec(1));
        equal(lone.value(0), 4, 'the lone copy counts');
        const ops = flash.counters.operations;
        lone.settle();
        equal(flash.counters.operations - ops, 2, 'settle wrote one whole pair');
        damageAt(flash, 2 * LOG_PAIR_LENGTH, 4);
        equal(TwoBlockLog.open(flash, spec(1)).value(0), 4, 'the lone copy damaged: the settled pair holds the value');
        // A full block: settle rotates instead.
        const full = new SimFlash({ blocks: 2, blockLength: 128, onBitSet: 'throw' });
        TwoBlockLog.format(full, spec(1));
        TwoBlockLog.open(full, spec(1)).write(0, 1);
        putPair(full, 0, 2, 2, 0x54, 0, 2, 1);
        const rotating = TwoBlockLog.open(full, spec(1));
        rotating.settle();
        equal(rotating.stats().activeBlock, 1, 'rotated');
        damageAt(full, 2 * LOG_PAIR_LENGTH, 5);
        equal(TwoBlockLog.open(full, spec(1)).value(0), 2, 'after rotation');
        // A header: a cut between its copies in a rotation; settle rotates anew.
        const header = new SimFlash({ blocks: 2, blockLength: 128, onBitSet: 'throw' });
        TwoBlockLog.format(header, spec(1));
        const log = TwoBlockLog.open(header, spec(1));
        log.write(0, 1);
        log.write(0, 2);
        // Rotation: erase, record x2, header copy 1, header copy 2 (cut here).
        header.armCut({ atOperation: 4, seed: 1 });
        throws(() => log.write(0, 3), 'PowerCut', 'the cut');
        header.powerOn();
        const shown = TwoBlockLog.open(header, spec(1));
        equal(shown.value(0), 3, 'the new block counts on its one header copy');
        shown.settle();
        equal(shown.stats().activeBlock, 0, 'a fresh rotation');
        damageAt(header, 128, 6);
        const after = TwoBlockLog.open(header, spec(1));
        equal(after.value(0), 3, 'the lone header damaged: the value holds');
        after.write(0, 4);
        equal(TwoBlockLog.open(header, spec(1)).value(0), 4, 'and the log keeps working');
      },
    },
    {
      name: 'geometry: too few blocks, too small for the keys, writeAlign not dividing 16 -> bad-geometry',
      run(env) {
        throwsStorage(() => TwoBlockLog.open(env.createFlash({ blocks: 1, blockLength: 128 }), spec(1)), 'bad-geometry', 'one block');
        throwsStorage(() => TwoBlockLog.format(env.createFlash({ blocks: 2, blockLength: 96 }), spec(1)), 'bad-geometry', '3 records per block, 1 key');
        throwsStorage(() => TwoBlockLog.format(env.createFlash({ blocks: 2, blockLength: 160 }), spec(3)), 'bad-geometry', '5 records per block, 3 keys');
        throwsStorage(() => TwoBlockLog.open(env.createFlash({ blocks: 2, blockLength: 128, writeAlign: 32 }), spec(1)), 'bad-geometry', 'writeAlign 32');
        throwsStorage(() => TwoBlockLog.open(env.createFlash({ blocks: 2, blockLength: 144 }), spec(1)), 'bad-geometry', 'block of 144');
        const log = (() => {
          const flash = env.createFlash({ blocks: 2, blockLength: 128 });
          TwoBlockLog.format(flash, spec(1));
          return TwoBlockLog.open(flash, spec(1));
        })();
        throws(() => log.write(0, 0), 'RangeError', 'a value not above the current one');
        throws(() => log.write(1, 5), 'RangeError', 'key out of range');
        throws(() => log.write(0, 2 ** 53), 'RangeError', 'above 2^53-1');
      },
    },
    {
      name: 'the damage harness itself fails a log that falls back to older values (planted bug)',
      run() {
        // A "log" that ignores the newest record: reading the older block's values must be caught.
        const subject = logDamageSubject('plain', 1, 128, 8);
        const planted: DamageSubject<number[]> = {
          ...subject,
          verify(flash, values, damage) {
            const lowered = values.map((v) => v - 7);
            return subject.verify(flash, lowered, damage);
          },
        };
        let caught = false;
        try {
          runDamageSuite(planted, { kinds: ['unit'] });
        } catch (error) {
          caught = error instanceof CheckFailure;
        }
        ok(caught, 'a subject reading values lower than written passed the damage suite');
      },
    },
  ],
};
