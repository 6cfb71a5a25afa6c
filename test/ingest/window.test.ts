/**
 * The ingest window (tools/ingest/window.ts, docs/spec/ingest.md "Window"):
 * the rule table row by row, persistence round trips, and fast-check
 * properties against a model that keeps every accepted counter in a Set:
 * no counter is ever accepted twice, every counter above the highest or
 * inside the window and not accepted is accepted, whatever the gaps, and a
 * window rebuilt from its persisted state decides exactly as the one that
 * never stopped (a restart reopens nothing and refuses nothing fresh).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { INGEST_WINDOW_BITS, IngestWindow, WINDOW_BITMAP_BYTES } from '../../tools/ingest/window.ts';

const W = INGEST_WINDOW_BITS;

describe('ingest window: rules', () => {
  it('a new sender accepts any first counter, then refuses it as a duplicate', () => {
    const w = new IngestWindow();
    assert.equal(w.check(5_000_000_000_000), 'fresh');
    w.accept(5_000_000_000_000);
    assert.equal(w.check(5_000_000_000_000), 'duplicate');
    assert.equal(w.highest, 5_000_000_000_000);
    assert.equal(w.first, 5_000_000_000_000);
    assert.equal(w.gaps, 0);
  });

  it('above the highest: fresh whatever the gap; inside the window: fresh once; at H - W and below: stale', () => {
    const w = new IngestWindow();
    w.accept(10_000);
    assert.equal(w.check(10_000 + 4095), 'fresh', 'a reboot skip');
    assert.equal(w.check(10_000 - 1), 'fresh', 'just below, never seen');
    assert.equal(w.check(10_000 - W + 1), 'fresh', 'the window bottom');
    assert.equal(w.check(10_000 - W), 'stale', 'H - W has no bit: stale');
    assert.equal(w.check(1), 'stale');
    w.accept(10_000 - W + 1);
    assert.equal(w.check(10_000 - W + 1), 'duplicate');
    w.accept(10_100);
    assert.equal(w.check(10_000 - W + 1), 'stale', 'moved out of the window by 100');
    assert.equal(w.check(10_000), 'duplicate', 'still inside');
    assert.equal(w.accepted, 3);
    assert.equal(w.gaps, 10_100 - (10_000 - W + 1) + 1 - 3);
  });

  it('accept of a counter that is not fresh throws and changes nothing', () => {
    const w = new IngestWindow();
    w.accept(3);
    assert.throws(() => w.accept(3), /internal: accept of a duplicate/);
    assert.equal(w.accepted, 1);
  });

  it('counters outside 1..2^53-1 throw', () => {
    const w = new IngestWindow();
    for (const bad of [0, -1, 1.5, Number.NaN, 2 ** 53]) assert.throws(() => w.check(bad), RangeError, String(bad));
    w.accept(Number.MAX_SAFE_INTEGER);
    assert.equal(w.check(Number.MAX_SAFE_INTEGER), 'duplicate');
  });

  it('state round-trips and damaged state is refused', () => {
    const w = new IngestWindow();
    for (const c of [7, 9, 30, 1000, 1001, 1500]) w.accept(c);
    const state = w.state();
    assert.equal(state.bitmap.length, WINDOW_BITMAP_BYTES);
    const again = new IngestWindow(state);
    for (let c = 1; c <= 1600; c++) assert.equal(again.check(c), w.check(c), `counter ${c}`);
    assert.throws(() => new IngestWindow({ ...state, bitmap: new Uint8Array(WINDOW_BITMAP_BYTES) }), /does not mark the highest/);
    assert.throws(() => new IngestWindow({ ...state, bitmap: new Uint8Array(3) }), RangeError);
    assert.throws(() => new IngestWindow({ ...state, first: state.highest + 1 }), RangeError);
    const low = new IngestWindow();
    low.accept(5);
    const bits = low.state().bitmap.slice();
    bits[1] = 1; // counter 5 - 8 < 1
    assert.throws(() => new IngestWindow({ ...low.state(), bitmap: bits }), /below 1/);
  });
});

/** Reference model: the exact accepted set, and the same rule written from the spec. */
class Model {
  readonly seen = new Set<number>();
  highest = 0;
  verdict(c: number): 'fresh' | 'duplicate' | 'stale' {
    if (c > this.highest) return 'fresh';
    if (c <= this.highest - W) return 'stale';
    return this.seen.has(c) ? 'duplicate' : 'fresh';
  }
  accept(c: number): void {
    this.seen.add(c);
    if (c > this.highest) this.highest = c;
  }
}

/** A device's counter: increments, reboot skips up to 4095, occasional huge jumps (a year of reboots). */
const stepArb = fc.oneof(
  { weight: 20, arbitrary: fc.constant(1) },
  { weight: 3, arbitrary: fc.integer({ min: 2, max: 4096 }) },
  { weight: 1, arbitrary: fc.integer({ min: 4097, max: 1_000_000_000 }) },
);

/** Deliveries: each genuine counter once, in an order disturbed by bounded reorders, plus duplicates and replays of earlier ones. */
const scenarioArb = fc
  .record({
    start: fc.integer({ min: 1, max: 2 ** 40 }),
    steps: fc.array(stepArb, { minLength: 1, maxLength: 400 }),
    swaps: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 40 })), { maxLength: 80 }),
    replays: fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 120 }),
    restarts: fc.array(fc.nat(), { maxLength: 5 }),
  })
  .map(({ start, steps, swaps, replays, restarts }) => {
    const genuine: number[] = [];
    let c = start;
    for (const s of steps) {
      genuine.push(c);
      c += s;
    }
    const order = [...genuine];
    for (const [at, by] of swaps) {
      const i = at % order.length;
      const j = Math.min(order.length - 1, i + by);
      [order[i], order[j]] = [order[j], order[i]];
    }
    const deliveries = [...order];
    for (const [from, at] of replays) deliveries.splice(at % (deliveries.length + 1), 0, genuine[from % genuine.length]);
    return { genuine, deliveries, restarts: new Set(restarts.map((r) => r % deliveries.length)) };
  });

describe('ingest window: properties (fast-check)', () => {
  it('decides as the model, never accepts twice, and a restart from persisted state changes nothing', () => {
    fc.assert(
      fc.property(scenarioArb, ({ deliveries, restarts }) => {
        let w = new IngestWindow();
        const model = new Model();
        const accepted = new Set<number>();
        deliveries.forEach((c, i) => {
          if (restarts.has(i)) w = new IngestWindow(w.state());
          const verdict = w.check(c);
          assert.equal(verdict, model.verdict(c), `delivery ${i} counter ${c}`);
          if (verdict === 'fresh') {
            assert.ok(!accepted.has(c), `counter ${c} accepted twice`);
            accepted.add(c);
            w.accept(c);
            model.accept(c);
          }
        });
        assert.equal(w.accepted, accepted.size);
        const min = Math.min(...accepted);
        assert.equal(w.gaps, w.highest - min + 1 - accepted.size);
      }),
      { numRuns: 300, seed: 0x17 },
    );
  });

  it('no genuine record is refused when its delay stays under W counter values, and no replay is accepted', () => {
    fc.assert(
      fc.property(scenarioArb, ({ genuine, deliveries }) => {
        const w = new IngestWindow();
        const index = new Map(genuine.map((c, i) => [c, i]));
        let maxSoFar = 0;
        const accepted = new Set<number>();
        for (const c of deliveries) {
          const first = !accepted.has(c);
          const verdict = w.check(c);
          if (verdict === 'fresh') {
            w.accept(c);
            accepted.add(c);
          } else if (first && c > maxSoFar - W) {
            assert.fail(`genuine ${c} (index ${index.get(c)}) refused as ${verdict} although within W of the highest ${maxSoFar}`);
          }
          maxSoFar = Math.max(maxSoFar, c);
        }
        // Every accepted counter is genuine and accepted once (the Set), and replays never added one.
        for (const c of accepted) assert.ok(index.has(c));
      }),
      { numRuns: 300, seed: 0x18 },
    );
  });

  it('a device back after a year offline with a huge backlog: every record accepted once, every replay refused', () => {
    // A year of reboots: counter jumps by up to 4095 at each of 365 × 24 reboots, the backlog drains in order (the outbox is FIFO).
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 45 }), fc.array(fc.integer({ min: 1, max: 4095 }), { minLength: 8760, maxLength: 8760 }), fc.nat(), (start, skips, seed) => {
        let w = new IngestWindow();
        w.accept(start);
        // Persisted before the device went away; the ingest restarted many times meanwhile.
        w = new IngestWindow(w.state());
        const backlog: number[] = [];
        let c = start;
        for (const skip of skips) {
          c += skip;
          backlog.push(c, c + 1, c + 2);
          c += 2;
        }
        for (const b of backlog) {
          assert.equal(w.check(b), 'fresh');
          w.accept(b);
        }
        assert.equal(w.accepted, backlog.length + 1);
        // Replays of anything in the backlog: duplicate inside the window, stale below it; never fresh.
        for (let i = 0; i < 500; i++) {
          const r = backlog[(seed + i * 7919) % backlog.length];
          assert.notEqual(w.check(r), 'fresh', `replay of ${r}`);
        }
        assert.notEqual(w.check(start), 'fresh');
      }),
      { numRuns: 20, seed: 0x19 },
    );
  });
});
