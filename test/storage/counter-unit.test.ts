/**
 * Node-only extras for the counter (the shared cases run in both engines):
 * property checks of the entry codec, every torn prefix of an entry, and
 * longer power-cut runs than the XS budget allows.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Counter, COUNTER_ENTRY_LENGTH, COUNTER_MAX_VALUE, decodeCounterSlot, encodeCounterEntry } from '../../firmware/storage/counter.ts';
import { runExhaustive, runRandom } from '../../tools/sim/power-cut.ts';
import { SimFlash } from '../../tools/sim/flash/sim-flash.ts';
import { NODE_ENV } from '../support/engines.ts';
import { counterScenario } from './counter.cases.ts';

const options = { createFlash: NODE_ENV.createFlash, saveFailureImage: NODE_ENV.saveFailureImage };

describe('counter entry codec', () => {
  it('round-trips every bound in 0..2^53-1', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 21 - 1 }), fc.integer({ min: 0, max: 0xffffffff }), (high, low) => {
        const bound = high * 2 ** 32 + low;
        assert.deepEqual(decodeCounterSlot(encodeCounterEntry(bound)), { kind: 'bound', reservedUpTo: bound });
      }),
    );
    assert.deepEqual(decodeCounterSlot(encodeCounterEntry(COUNTER_MAX_VALUE)), { kind: 'bound', reservedUpTo: COUNTER_MAX_VALUE });
  });

  it('a change to any one byte of an entry is never read as a bound', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: COUNTER_MAX_VALUE }), fc.integer({ min: 0, max: 15 }), fc.integer({ min: 1, max: 255 }), (bound, at, flip) => {
        const entry = encodeCounterEntry(bound);
        entry[at] ^= flip;
        assert.equal(decodeCounterSlot(entry).kind, 'corrupt');
      }),
    );
  });

  it('every plain-NOR torn write of an entry over a free slot reads free, torn, or the whole entry', () => {
    // A torn write lands a prefix, then any subset of the bits the next byte was to clear (docs/spec/flash.md, rule 4).
    for (const bound of [1, 4096, 0xffffffff, 2 ** 40 + 12345, COUNTER_MAX_VALUE]) {
      const entry = encodeCounterEntry(bound);
      for (let prefix = 0; prefix <= COUNTER_ENTRY_LENGTH; prefix++) {
        for (let mask = 0; mask < (prefix < COUNTER_ENTRY_LENGTH ? 256 : 1); mask++) {
          const slot = new Uint8Array(COUNTER_ENTRY_LENGTH).fill(0xff);
          for (let i = 0; i < prefix; i++) slot[i] = entry[i];
          if (prefix < COUNTER_ENTRY_LENGTH) slot[prefix] = entry[prefix] | mask;
          const read = decodeCounterSlot(slot);
          const whole = slot.every((b, i) => b === entry[i]);
          if (whole) assert.deepEqual(read, { kind: 'bound', reservedUpTo: bound });
          else assert.ok(read.kind === 'free' || read.kind === 'corrupt', `prefix ${prefix} mask ${mask}: ${read.kind}`);
        }
      }
    }
  });
});

describe('counter under power cuts (Node only, longer runs)', () => {
  for (const mode of ['plain', 'strict'] as const) {
    it(`exhaustive, ${mode}, K=3, 64-byte blocks, 10 torn variants per cut point`, (t) => {
      const report = runExhaustive(counterScenario({ mode, blockLength: 64, reserve: 3, total: 120, perSession: 10 }), { ...options, variants: 10 });
      t.diagnostic(JSON.stringify(report));
    });

    it(`exhaustive, ${mode}, ESP32 4096-byte blocks, K=1, 600 values (two rotations)`, (t) => {
      const report = runExhaustive(counterScenario({ mode, blockLength: 4096, reserve: 1, total: 600, perSession: 100 }), options);
      t.diagnostic(JSON.stringify(report));
    });

    it(`exhaustive, ${mode}, one-slot blocks (16 bytes): every entry rotates`, (t) => {
      const report = runExhaustive(counterScenario({ mode, blockLength: 16, reserve: 2, total: 60, perSession: 3 }), { ...options, variants: 6 });
      t.diagnostic(JSON.stringify(report));
    });

    it(`random, ${mode}, up to 8 cuts per run, 1,000 runs`, (t) => {
      const report = runRandom(counterScenario({ mode, blockLength: 64, reserve: 2, total: 200, perSession: 7 }), { ...options, runs: 1000, maxCuts: 8, seed: mode === 'plain' ? 21 : 22 });
      t.diagnostic(JSON.stringify(report));
    });
  }
});

describe('counter at ESP32 geometry', () => {
  it('1,000,000 increments with the default K: 245 entries, no erase, 0.0039 bytes per increment', () => {
    const flash = new SimFlash({ blocks: 2, onBitSet: 'throw' });
    const counter = Counter.open(flash);
    for (let i = 1; i <= 1_000_000; i++) assert.equal(counter.next(), i);
    assert.equal(flash.counters.writes, Math.ceil(1_000_000 / 4096));
    assert.equal(flash.counters.erases, 0);
    assert.equal(Counter.open(flash).next(), 245 * 4096 + 1);
  });
});
