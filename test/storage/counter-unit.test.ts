/**
 * Node-only extras for the counter (the shared cases run in both engines):
 * longer power-cut runs than the XS budget allows, and the ESP32 geometry.
 * The record codec's properties are the two-block log's
 * (test/base/two-block-log-property.test.ts).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Counter } from '../../firmware/storage/counter.ts';
import { runExhaustive, runRandom } from '../../tools/sim/power-cut.ts';
import { SimFlash } from '../../tools/sim/flash/sim-flash.ts';
import { NODE_ENV } from '../support/engines.ts';
import { counterScenario } from './counter.cases.ts';

const options = { createFlash: NODE_ENV.createFlash, saveFailureImage: NODE_ENV.saveFailureImage };

describe('counter under power cuts (Node only, longer runs)', () => {
  for (const mode of ['plain', 'strict'] as const) {
    it(`exhaustive, ${mode}, K=3, 128-byte blocks, 10 torn variants per cut point, second cuts sampled`, (t) => {
      const report = runExhaustive(counterScenario({ mode, blockLength: 128, reserve: 3, total: 120, perSession: 10 }), { ...options, variants: 10, secondCuts: { sample: 2 } });
      t.diagnostic(JSON.stringify(report));
    });

    it(`exhaustive, ${mode}, ESP32 4096-byte blocks, K=1, 300 values (two rotations)`, (t) => {
      const report = runExhaustive(counterScenario({ mode, blockLength: 4096, reserve: 1, total: 300, perSession: 100 }), options);
      t.diagnostic(JSON.stringify(report));
    });

    it(`random, ${mode}, up to 8 cuts per run, 1,000 runs`, (t) => {
      const report = runRandom(counterScenario({ mode, blockLength: 128, reserve: 2, total: 200, perSession: 7 }), { ...options, runs: 1000, maxCuts: 8, seed: mode === 'plain' ? 21 : 22 });
      t.diagnostic(JSON.stringify(report));
    });
  }
});

describe('counter at ESP32 geometry', () => {
  it('1,000,000 increments with the default K: 245 records of two copies, one rotation (126 records per block), 0.0079 bytes per increment', () => {
    const flash = new SimFlash({ blocks: 2, onBitSet: 'throw' });
    Counter.format(flash);
    const before = flash.counters.writes;
    const erases = flash.counters.erases;
    const counter = Counter.open(flash);
    for (let i = 1; i <= 1_000_000; i++) assert.equal(counter.next(), i);
    // 245 records of two copies, plus the rotation's header and handoff (two copies each).
    assert.equal(flash.counters.writes - before, 2 * Math.ceil(1_000_000 / 4096) + 4);
    assert.equal(flash.counters.erases - erases, 1);
    assert.equal(Counter.open(flash).next(), 245 * 4096 + 1);
  });
});
