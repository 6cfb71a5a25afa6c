/**
 * Node-only extras for the replay window (the shared cases in
 * replay-window.cases.ts run in both engines): property checks against a
 * reference set model with fast-check, the entry codec under every torn
 * prefix, and longer power-cut runs than the XS budget allows.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { REPLAY_COUNTER_MAX, ReplayWindow } from '../../firmware/security/replay-window.ts';
import { ReplayStore } from '../../firmware/security/replay-store.ts';
import { runExhaustive, runRandom } from '../../tools/sim/power-cut.ts';
import { SimFlash } from '../../tools/sim/flash/sim-flash.ts';
import { NODE_ENV } from '../support/engines.ts';
import { ReferenceWindow, windowScenario } from './replay-window.cases.ts';

const options = { createFlash: NODE_ENV.createFlash, saveFailureImage: NODE_ENV.saveFailureImage };
const WINDOW_SIZES = [1, 2, 3, 4, 8, 31, 32, 33, 63, 64, 65, 100, 128, 1024];

/** A counter near the window: below, inside or above it, relative to H. */
const offsetArb = fc.oneof(fc.integer({ min: -1100, max: 40 }), fc.integer({ min: -70, max: 70 }), fc.integer({ min: 1, max: 5000 }));

describe('window against a reference set model (no restarts)', () => {
  it('accept iff never accepted, above the floor and above H - W; check never changes anything', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...WINDOW_SIZES),
        fc.integer({ min: 0, max: 1000 }),
        fc.array(fc.record({ offset: offsetArb, tag: fc.boolean() }), { maxLength: 200 }),
        (bits, floor, steps) => {
          const window = new ReplayWindow({ bits, floor });
          const reference = new ReferenceWindow(floor, bits);
          const accepted = new Set<number>();
          for (const { offset, tag } of steps) {
            const counter = reference.highest() + offset;
            const verdict = window.check(counter);
            assert.equal(verdict, reference.verdict(counter), `W=${bits} floor=${floor} H=${reference.highest()} counter=${counter}`);
            assert.equal(window.check(counter), verdict, 'check is pure');
            if (verdict === 'fresh' && tag) {
              assert.ok(!accepted.has(counter), `counter ${counter} accepted twice`);
              window.accept(counter);
              reference.accept(counter);
              accepted.add(counter);
            }
            assert.equal(window.highest(), reference.highest(), 'H');
          }
          assert.equal(window.acceptedCount(), accepted.size);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('near 2^53 - 1 the window still agrees with the reference', () => {
    fc.assert(
      fc.property(fc.constantFrom(...WINDOW_SIZES), fc.array(fc.integer({ min: 0, max: 300 }), { maxLength: 100 }), (bits, below) => {
        const floor = REPLAY_COUNTER_MAX - 300;
        const window = new ReplayWindow({ bits, floor });
        const reference = new ReferenceWindow(floor, bits);
        for (const distance of below) {
          const counter = REPLAY_COUNTER_MAX - distance;
          assert.equal(window.check(counter), reference.verdict(counter));
          if (reference.verdict(counter) === 'fresh') {
            window.accept(counter);
            reference.accept(counter);
          }
          assert.equal(window.check(counter + 301), 'out-of-range');
        }
      }),
    );
  });
});

describe('store with restarts against a reference (ceiling rule)', () => {
  it('verdicts, ceilings and floors match, and no counter is accepted twice across restarts', () => {
    type Op = { kind: 'deliver'; sender: number; offset: number; tag: boolean } | { kind: 'restart' };
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      { weight: 12, arbitrary: fc.record({ kind: fc.constant('deliver' as const), sender: fc.integer({ min: 0, max: 2 }), offset: offsetArb, tag: fc.boolean() }) },
      { weight: 1, arbitrary: fc.constant({ kind: 'restart' as const }) },
    );
    fc.assert(
      fc.property(
        fc.constantFrom(1, 4, 8, 64),
        fc.integer({ min: 1, max: 40 }),
        fc.constantFrom<'plain' | 'strict'>('plain', 'strict'),
        fc.array(opArb, { maxLength: 150 }),
        (bits, reserve, mode, ops) => {
          const flash = new SimFlash({ blocks: 2, blockLength: 224, mode, onBitSet: 'throw' });
          const storeOptions = { senders: 3, reserve, windowBits: bits };
          ReplayStore.format(flash, storeOptions);
          let store = ReplayStore.open(flash, storeOptions);
          const ceilings = [0, 0, 0];
          const accepted = [new Set<number>(), new Set<number>(), new Set<number>()];
          let windows = ceilings.map((c) => new ReferenceWindow(c, bits));
          for (const op of ops) {
            if (op.kind === 'restart') {
              store = ReplayStore.open(flash, storeOptions);
              windows = ceilings.map((c) => new ReferenceWindow(c, bits));
              for (let s = 0; s < 3; s++) assert.equal(store.floor(s), ceilings[s], `floor of sender ${s}`);
              continue;
            }
            const window = windows[op.sender];
            const counter = Math.max(0, window.highest() + op.offset);
            const verdict = store.check(op.sender, counter);
            assert.equal(verdict, window.verdict(counter), `sender ${op.sender} counter ${counter}`);
            if (verdict !== 'fresh' || !op.tag) continue;
            store.accept(op.sender, counter);
            window.accept(counter);
            assert.ok(!accepted[op.sender].has(counter), `counter ${counter} of sender ${op.sender} accepted twice`);
            accepted[op.sender].add(counter);
            if (counter > ceilings[op.sender]) ceilings[op.sender] = counter + reserve;
            assert.equal(store.ceiling(op.sender), ceilings[op.sender], 'ceiling');
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('replay store under power cuts (Node only, longer runs)', () => {
  const configs = {
    'three senders, four records per block, R=2': { blockLength: 192, senders: 3, reserve: 2, windowBits: 64, deliveries: 200, maxSkip: 4, perSession: 40, seed: 2 },
    'two senders, three records per block, R=1': { blockLength: 160, senders: 2, reserve: 1, windowBits: 8, deliveries: 100, maxSkip: 2, perSession: 100, seed: 3 },
    'two senders, three records per block, R=3, reboot every 30': { blockLength: 160, senders: 2, reserve: 3, windowBits: 8, deliveries: 150, maxSkip: 2, perSession: 30, seed: 5 },
  } as const;
  for (const mode of ['plain', 'strict'] as const) {
    for (const [name, config] of Object.entries(configs)) {
      // Multi-cut runs: a rotation that wrote the raise before the copies needs two cuts to lose a ceiling.
      it(`random, ${mode}, ${name}, up to 6 cuts per run, 1,000 runs`, (t) => {
        const report = runRandom(windowScenario({ mode, ...config }), { ...options, runs: 1000, maxCuts: 6, seed: mode === 'plain' ? 31 : 32 });
        t.diagnostic(JSON.stringify(report));
      });
    }
    it(`exhaustive, ${mode}, ESP32 4096-byte blocks, 2 senders, R=1, 4 torn variants per cut point`, (t) => {
      const report = runExhaustive(
        windowScenario({ mode, blockLength: 4096, senders: 2, reserve: 1, windowBits: 64, deliveries: 300, maxSkip: 3, perSession: 100, seed: 6 }),
        { ...options, variants: 4 },
      );
      t.diagnostic(JSON.stringify(report));
    });
  }
});
