/**
 * Property tests of the two-block log (Node; the shared cases run in both
 * engines): the 16-byte entry codec, every torn copy, and random histories
 * of writes, reboots, power cuts (both tear modes) and one damaged unit,
 * checked against what was durably written.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeEntry16, ENTRY16_LENGTH, readEntry16 } from '../../firmware/base/entry16.ts';
import { StorageError } from '../../firmware/base/storage-error.ts';
import { TwoBlockLog } from '../../firmware/base/two-block-log.ts';
import { isPowerCut } from '../../tools/sim/flash/errors.ts';
import { SimFlash } from '../../tools/sim/flash/sim-flash.ts';

const SPEC = { name: 'property log', version: 2, kind: 0x54, keys: 2 } as const;

describe('entry codec', () => {
  it('round-trips every value, tag and extra', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 0xffff }), (value, tag, extra) => {
        const read = readEntry16(encodeEntry16(new Uint8Array(16), 2, tag, extra, value));
        assert.deepEqual(read, { kind: 'entry', version: 2, tag, extra, value });
      }),
    );
  });

  it('a change to any one byte of an entry is never read as an entry', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.integer({ min: 0, max: 15 }), fc.integer({ min: 1, max: 255 }), (value, at, flip) => {
        const entry = encodeEntry16(new Uint8Array(16), 2, 0x54, 0, value);
        entry[at] ^= flip;
        assert.equal(readEntry16(entry).kind, 'corrupt');
      }),
    );
  });

  it('every torn program of a copy over a free slot (any subset of its bit clears) reads free, corrupt, or the whole entry', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.uint8Array({ minLength: 16, maxLength: 16 }), (value, keep) => {
        const entry = encodeEntry16(new Uint8Array(16), 2, 0x54, 1, value);
        // Bits set in `keep` stay erased: the program landed only the others.
        const torn = entry.map((b, i) => b | keep[i]);
        const read = readEntry16(torn);
        const whole = torn.every((b, i) => b === entry[i]);
        if (whole) assert.equal(read.kind, 'entry');
        else assert.ok(read.kind === 'free' || read.kind === 'corrupt', read.kind);
      }),
      { numRuns: 5000 },
    );
  });
});

type Step = { kind: 'write'; key: number; step: number } | { kind: 'reboot' } | { kind: 'cut'; after: number; seed: number; bits: boolean } | { kind: 'damage'; unit: number; seed: number };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 10, arbitrary: fc.record({ kind: fc.constant('write' as const), key: fc.integer({ min: 0, max: 1 }), step: fc.integer({ min: 1, max: 5 }) }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'reboot' as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('cut' as const), after: fc.integer({ min: 0, max: 6 }), seed: fc.nat(), bits: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('damage' as const), unit: fc.nat(), seed: fc.nat() }) },
);

describe('random histories', () => {
  it('writes, reboots, cuts and at most one damaged unit: never lower than durable, never above asked; refused only after damage', () => {
    fc.assert(
      fc.property(fc.constantFrom<'plain' | 'strict'>('plain', 'strict'), fc.constantFrom(160, 192, 256), fc.array(stepArb, { maxLength: 60 }), (mode, blockLength, steps) => {
        const flash = new SimFlash({ blocks: 2, blockLength, mode, onBitSet: 'throw' });
        TwoBlockLog.format(flash, SPEC);
        const durable = [0, 0];
        const asked = [0, 0];
        let damaged = false;
        let log = TwoBlockLog.open(flash, SPEC);
        /** False when the log refused (allowed only once damage joined the cuts: then the run ends). The values it shows become durable. */
        const reopen = (): boolean => {
          flash.disarmCut();
          flash.powerOn();
          try {
            log = TwoBlockLog.open(flash, SPEC);
          } catch (error) {
            if (!(error instanceof StorageError) || !damaged) throw error;
            assert.equal(error.code, 'damaged', error.message);
            return false;
          }
          // Before any value is used (the stores settle on first use): a value shown must stay shown.
          log.settle();
          for (let key = 0; key < 2; key++) {
            assert.ok(log.value(key) >= durable[key], `key ${key}: ${log.value(key)} < durable ${durable[key]}`);
            assert.ok(log.value(key) <= asked[key], `key ${key}: ${log.value(key)} > asked ${asked[key]}`);
            durable[key] = log.value(key);
          }
          return true;
        };
        for (const step of steps) {
          if (step.kind === 'reboot') {
            if (!reopen()) return;
          }
          else if (step.kind === 'cut') flash.armCut({ atOperation: step.after, seed: step.seed, tear: step.bits ? 'bit-subset' : 'prefix' });
          else if (step.kind === 'damage') {
            if (damaged) continue;
            // One unit of garbage, anywhere in the two blocks, once: a single fault beside any number of cuts.
            damaged = true;
            const unit = step.unit % (flash.data.length / ENTRY16_LENGTH);
            const bytes = flash.data.subarray(unit * ENTRY16_LENGTH, (unit + 1) * ENTRY16_LENGTH);
            for (let i = 0; i < bytes.length; i++) bytes[i] ^= 1 << ((step.seed + i) % 8);
            flash.deriveUnitsFromContents();
            if (!reopen()) return;
          } else {
            const value = log.value(step.key) + step.step;
            asked[step.key] = Math.max(asked[step.key], value);
            try {
              log.write(step.key, value);
              durable[step.key] = value;
            } catch (error) {
              if (!isPowerCut(error)) throw error;
              if (!reopen()) return;
            }
          }
        }
        reopen();
      }),
      { numRuns: 400 },
    );
  });

  it('opening any bytes at all either recovers or throws a StorageError (never another error, never a hang)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 320, maxLength: 320 }), fc.integer({ min: 0, max: 9 }), (bytes, formattedBlocks) => {
        const flash = new SimFlash({ blocks: 2, blockLength: 160 });
        if (formattedBlocks > 4) TwoBlockLog.format(flash, SPEC);
        // Overwrite a random part with the random bytes (sometimes all of it).
        const from = formattedBlocks > 4 ? (formattedBlocks - 5) * 64 : 0;
        flash.data.set(bytes.subarray(from), from);
        flash.deriveUnitsFromContents();
        try {
          TwoBlockLog.open(flash, SPEC);
        } catch (error) {
          assert.ok(error instanceof StorageError, String(error));
        }
      }),
      { numRuns: 2000 },
    );
  });
});
