/**
 * The anti-replay window and its persisted store (docs/spec/replay-window.md)
 * under power cuts and bad input, in Node and in XS.
 *
 * The power-cut invariants, checked after every recovery and every call:
 * - no counter is ever accepted twice, across any cut and restart: every
 *   recovered floor is at or above every counter accepted before;
 * - every verdict equals a reference's: fresh exactly when the counter is
 *   above the restart floor, above H - W, and not accepted in this boot, so
 *   a genuine counter above the floor is accepted;
 * - a floor never goes down and never passes the largest counter handed to
 *   `accept` plus R.
 */
import { WriteBackFlash } from '../support/write-back-flash.ts';
import {
  DEFAULT_WINDOW_BITS,
  MAX_WINDOW_BITS,
  REPLAY_COUNTER_MAX,
  ReplayError,
  ReplayWindow,
  type ReplayErrorCode,
  type ReplayVerdict,
} from '../../firmware/security/replay-window.ts';
import { DEFAULT_CEILING_RESERVE, REPLAY_STORE_FORMAT, replayBlockLength, replayLog, ReplayStore } from '../../firmware/security/replay-store.ts';
import { Counter } from '../../firmware/storage/counter.ts';
import { TwoBlockLog } from '../../firmware/base/two-block-log.ts';
import { encodeEntry16 } from '../../firmware/base/entry16.ts';
import { runDamageSuite, type DamageSubject } from '../support/damage.ts';
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { runExhaustive, runRandom, type CutScenario, type CuttableFlash } from '../../tools/sim/power-cut.ts';
import { Rng } from '../../tools/sim/rng.ts';
import type { FlashMode, SimFlashOptions } from '../../tools/sim/flash/sim-flash.ts';
import { bytesEqual, equal, ok, throws } from '../support/check.ts';
import { caughtByInvariant, exhaustiveCase, garbage, runnerOptions, throwsCode } from '../support/case-helpers.ts';
import type { CaseEnv, CaseSuite } from '../support/cases.ts';

/** One message as the receiver gets it: a genuine tag or a forged one. */
export interface Delivery {
  readonly sender: number;
  readonly counter: number;
  readonly tag: boolean;
}

export interface ScriptOptions {
  senders: number;
  deliveries: number;
  /** The sender's counter grows by 1..maxSkip per message, with occasional far jumps. */
  maxSkip: number;
  /** Size of the occasional far jump: windowBits + 1 .. 3 * windowBits. */
  windowBits: number;
  seed: number;
}

/**
 * A deterministic adversarial delivery sequence: counters that skip and jump,
 * drops, duplicates, reorders (a dropped counter delivered later), replays of
 * anything sent, and forgeries with any counter.
 */
export function deliveryScript(o: ScriptOptions): Delivery[] {
  const rng = new Rng(o.seed);
  const last: number[] = new Array<number>(o.senders).fill(0);
  const sent: number[][] = [];
  for (let s = 0; s < o.senders; s++) sent.push([]);
  const script: Delivery[] = [];
  while (script.length < o.deliveries) {
    const sender = rng.below(o.senders);
    const mine = sent[sender];
    const roll = rng.below(100);
    if (roll < 45 || mine.length === 0) {
      last[sender] += rng.chance(0.08) ? rng.between(o.windowBits + 1, 3 * o.windowBits) : rng.between(1, o.maxSkip);
      mine.push(last[sender]);
      if (!rng.chance(0.15)) script.push({ sender, counter: last[sender], tag: true }); // else dropped, for now
    } else if (roll < 58) {
      script.push({ sender, counter: mine[mine.length - 1], tag: true }); // duplicate
    } else if (roll < 70) {
      script.push({ sender, counter: mine[Math.max(0, mine.length - 1 - rng.below(4))], tag: true }); // reorder
    } else if (roll < 85) {
      script.push({ sender, counter: mine[rng.below(mine.length)], tag: true }); // replay
    } else {
      script.push({ sender, counter: rng.between(1, last[sender] + 2 * o.windowBits), tag: false }); // forgery
    }
  }
  return script;
}

/** What the test knows; it survives reboots. */
export interface WindowState {
  /** Index of the next delivery of the script (a delivery cut in the middle is delivered again). */
  next: number;
  /** Per sender, every counter `accept` returned for, in any boot. */
  accepted: number[][];
  /** Per sender, the largest counter handed to `accept` (returned or cut). */
  maxAttempted: number[];
  /** Per sender, the floor the last recovery reported. */
  lastFloor: number[];
  acceptedCount: number;
  opens: number;
  /** First-boot scenarios: the garbage that precedes provisioning was written (or begun). */
  prepared: boolean;
  /** First-boot scenarios: `ReplayStore.format` returned. */
  formatted: boolean;
}

export interface WindowScenarioOptions {
  mode: FlashMode;
  blockLength: number;
  senders: number;
  reserve: number;
  windowBits: number;
  deliveries: number;
  maxSkip: number;
  /** Deliveries per open: a clean reboot (fresh instance) after each session. */
  perSession: number;
  seed: number;
  /** 'format': the partition starts with garbage, then ReplayStore.format. */
  firstBoot?: 'format';
  /** Stand a different flash between the store and the simulator (the broken-flash demonstration). */
  wrap?: (flash: FlashPartition) => FlashPartition;
  name?: string;
}

function flashOptions(mode: FlashMode, blockLength: number, blocks = 2): SimFlashOptions {
  return { blocks, blockLength, mode, onBitSet: 'throw' };
}

export function windowScenario(o: WindowScenarioOptions): CutScenario<WindowState> {
  const script = deliveryScript({ senders: o.senders, deliveries: o.deliveries, maxSkip: o.maxSkip, windowBits: o.windowBits, seed: o.seed });
  const name =
    o.name ?? `replay-window/${o.mode}/block${o.blockLength}/senders${o.senders}/R${o.reserve}/W${o.windowBits}/${o.deliveries}${o.firstBoot ? '/first-boot-format' : ''}`;
  const storeOptions = { senders: o.senders, reserve: o.reserve, windowBits: o.windowBits };
  return {
    name,
    flash: flashOptions(o.mode, o.blockLength),
    createState: () => ({
      next: 0,
      accepted: Array.from({ length: o.senders }, () => [] as number[]),
      maxAttempted: new Array<number>(o.senders).fill(0),
      lastFloor: new Array<number>(o.senders).fill(0),
      acceptedCount: 0,
      opens: 0,
      prepared: o.firstBoot !== 'format',
      formatted: false,
    }),
    boot(flash, state) {
      if (!state.prepared) {
        state.prepared = true;
        for (let block = 0; block < 2; block++) flash.write(block * o.blockLength, garbage(o.blockLength, block + 1));
      }
      if (!state.formatted) {
        ReplayStore.format(flash, { senders: o.senders });
        state.formatted = true;
      }
      const target = o.wrap ? o.wrap(flash) : flash;
      while (state.next < script.length) {
        const store = ReplayStore.open(target, storeOptions);
        checkRecovered(store, state, o);
        // The receiver's RAM in this boot: the reference windows.
        const reference = Array.from({ length: o.senders }, (_, s) => new ReferenceWindow(store.floor(s), o.windowBits));
        const end = Math.min(script.length, state.next + o.perSession);
        while (state.next < end) {
          const d = script[state.next];
          const verdict = store.check(d.sender, d.counter);
          equal(verdict, reference[d.sender].verdict(d.counter), `verdict for counter ${d.counter} of sender ${d.sender} (delivery ${state.next}, floor ${store.floor(d.sender)})`);
          if (verdict === 'fresh' && d.tag) {
            if (d.counter > state.maxAttempted[d.sender]) state.maxAttempted[d.sender] = d.counter;
            store.accept(d.sender, d.counter);
            ok(!state.accepted[d.sender].includes(d.counter), `counter ${d.counter} of sender ${d.sender} accepted twice (delivery ${state.next})`);
            state.accepted[d.sender].push(d.counter);
            state.acceptedCount++;
            reference[d.sender].accept(d.counter);
            ok(store.ceiling(d.sender) >= d.counter, `ceiling ${store.ceiling(d.sender)} below the accepted counter ${d.counter}`);
          } else if (verdict === 'fresh') {
            // A forged tag: the caller never calls accept, and nothing moves.
            equal(store.check(d.sender, d.counter), 'fresh', 'a forged counter left the window unchanged');
          }
          state.next++;
        }
      }
    },
  };
}

/** After every open: each floor covers every counter accepted before, never goes down, and skips at most R. */
function checkRecovered(store: ReplayStore, state: WindowState, o: WindowScenarioOptions): void {
  state.opens++;
  for (let s = 0; s < o.senders; s++) {
    const floor = store.floor(s);
    equal(store.highest(s), floor, 'highest() right after open');
    equal(store.ceiling(s), floor, 'ceiling() right after open');
    for (const counter of state.accepted[s]) ok(counter <= floor, `recovered floor ${floor} of sender ${s} is below counter ${counter}, accepted before`);
    ok(floor >= state.lastFloor[s], `recovered floor ${floor} of sender ${s} is below the floor ${state.lastFloor[s]} of an earlier boot`);
    ok(floor === 0 || floor <= state.maxAttempted[s] + o.reserve, `recovered floor ${floor} of sender ${s} skips past ${state.maxAttempted[s]} + R`);
    state.lastFloor[s] = floor;
  }
}

/** The window as a set: fresh iff above the floor, above H - W, and not accepted in this boot. */
export class ReferenceWindow {
  private readonly seen = new Set<number>();
  private top: number;

  constructor(
    readonly floor: number,
    readonly bits: number,
  ) {
    this.top = floor;
  }

  verdict(counter: number): ReplayVerdict {
    if (!Number.isSafeInteger(counter) || counter < 0) return 'out-of-range';
    if (counter <= this.floor || counter <= this.top - this.bits) return 'stale';
    return this.seen.has(counter) ? 'duplicate' : 'fresh';
  }

  accept(counter: number): void {
    this.seen.add(counter);
    if (counter > this.top) this.top = counter;
  }

  highest(): number {
    return this.top;
  }
}

function throwsReplay(run: () => unknown, code: ReplayErrorCode, message: string): ReplayError {
  return throwsCode<ReplayError>(run, 'ReplayError', code, message);
}

/** A fresh simulated flash, formatted for `senders` unless asked not to. */
function storeFlash(env: CaseEnv, o: { blockLength?: number; blocks?: number; senders?: number; blank?: boolean } = {}): CuttableFlash {
  const flash = env.createFlash(flashOptions('plain', o.blockLength ?? 128, o.blocks ?? 2));
  if (!o.blank) ReplayStore.format(flash, { senders: o.senders ?? 1 });
  return flash;
}

/** Damage subject (issue 15, defect 1): after 50 was accepted, no single fault makes 50 fresh again. */
function replayDamageSubject(mode: FlashMode, senders: number, accepts: number): DamageSubject<number[]> {
  return {
    name: `replay-store/${mode}/senders${senders}`,
    flash: { blocks: 2, blockLength: replayBlockLength(senders) + 64, mode },
    populate(flash) {
      ReplayStore.format(flash, { senders });
      const store = ReplayStore.open(flash, { senders, reserve: 4 });
      const highest = new Array<number>(senders).fill(0);
      for (let i = 0; i < accepts; i++) {
        const sender = i % senders;
        highest[sender] += 1 + (i % 7);
        store.accept(sender, highest[sender]);
      }
      return highest;
    },
    verify(flash, highest) {
      let store: ReplayStore;
      try {
        store = ReplayStore.open(flash, { senders, reserve: 4 });
      } catch (error) {
        if (error instanceof ReplayError) return 'refused';
        throw error;
      }
      for (let sender = 0; sender < senders; sender++) {
        ok(store.check(sender, highest[sender]) !== 'fresh', `sender ${sender}: counter ${highest[sender]}, accepted before the damage, is fresh again`);
      }
      return 'recovered';
    },
  };
}

/** Accept `counter` after checking that it is fresh, as a receiver does once the tag verified. */
function acceptFresh(window: ReplayWindow, counter: number): void {
  equal(window.check(counter), 'fresh', `counter ${counter} before accept`);
  window.accept(counter);
}

/** One sender, W = 4 and R = 3 as in the model; two records per block: many rotations. */
const ONE_SENDER = { blockLength: 128, senders: 1, reserve: 3, windowBits: 4, deliveries: 200, maxSkip: 3, perSession: 25, seed: 1 } as const;
/** Three senders, W = 64, R = 2, four records per block: rotations copy the other senders' ceilings. */
const THREE_SENDERS = { blockLength: 192, senders: 3, reserve: 2, windowBits: 64, deliveries: 200, maxSkip: 4, perSession: 40, seed: 2 } as const;
/** Two senders, three records per block, R = 1: a rotation (a copy and the raise) leaves one free record. */
const TIGHT = { blockLength: 160, senders: 2, reserve: 1, windowBits: 8, deliveries: 100, maxSkip: 2, perSession: 100, seed: 3 } as const;


export const suite: CaseSuite = {
  name: 'replay window',
  cases: [
    ...(['plain', 'strict'] as const).flatMap((mode) => [
      exhaustiveCase(`exhaustive cuts, ${mode}, 1 sender, W=4, R=3, two records per block, 200 deliveries, reboot every 25`, windowScenario({ mode, ...ONE_SENDER })),
      exhaustiveCase(`exhaustive cuts, ${mode}, 3 senders, W=64, R=2, four records per block, 200 deliveries (rotations copy ceilings)`, windowScenario({ mode, ...THREE_SENDERS })),
      exhaustiveCase(`exhaustive cuts with sampled second cuts, ${mode}, 2 senders, W=8, R=1, 60 deliveries (a rotation every other raise)`, windowScenario({ mode, ...TIGHT, deliveries: 60 }), { secondCuts: { sample: 2 } }),
      exhaustiveCase(`first boot, garbage then format then deliveries, ${mode}, cut at every operation`, windowScenario({ mode, ...ONE_SENDER, deliveries: 30, firstBoot: 'format' })),
      {
        name: `random multi-cut runs (up to 4 cuts each), ${mode}`,
        run: (env: CaseEnv) => ({
          ...runRandom(windowScenario({ mode, ...THREE_SENDERS, seed: 4 }), { ...runnerOptions(env), runs: 60, maxCuts: 4, seed: mode === 'plain' ? 21 : 22 }),
        }),
      },
      {
        name: `issue 15.1: after 50 was accepted, no damaged bit, unit or entry makes it fresh again, ${mode}`,
        run: () => ({ ...runDamageSuite(replayDamageSubject(mode, 1, 8), { kinds: ['bit', 'unit', 'entry'], allBits: true }) }),
      },
      {
        name: `damage: every bit, unit and block, ${mode}, 3 senders after rotations`,
        run: () => ({ ...runDamageSuite(replayDamageSubject(mode, 3, 30)) }),
      },
    ]),
    {
      name: 'the invariant catches counters accepted before their ceiling is durable',
      run(env) {
        const scenario = windowScenario({ mode: 'plain', ...ONE_SENDER, wrap: (flash) => new WriteBackFlash(flash), name: 'replay-window/write-back-flash' });
        // Single cuts only: the assertion is about the one cut that catches it.
        const caught = caughtByInvariant(
          () => runExhaustive(scenario, runnerOptions(env, { saveFailureImage: () => undefined, secondCuts: 'none' })),
          /accepted before|accepted twice/,
          'a store whose ceiling was not durable before its counters were accepted',
        );
        return { caughtAtOperation: caught.cutPlans[0].atOperation };
      },
    },
    {
      name: 'window: duplicates inside the window, stale below it, fresh above it',
      run() {
        const window = new ReplayWindow({ bits: 8 });
        equal(window.bits, 8, 'bits');
        equal(window.floor, 0, 'floor');
        equal(window.highest(), 0, 'highest before any accept');
        equal(window.check(0), 'stale', 'counter 0 is at the floor');
        for (const c of [5, 3, 4, 10]) acceptFresh(window, c);
        equal(window.highest(), 10, 'highest');
        equal(window.acceptedCount(), 4, 'accepted count');
        for (const c of [10, 5, 4, 3]) equal(window.check(c), 'duplicate', `counter ${c} again`);
        for (const c of [1, 2]) equal(window.check(c), 'stale', `counter ${c} below H - W + 1 = 3`);
        for (const c of [6, 7, 8, 9, 11, 1000]) equal(window.check(c), 'fresh', `counter ${c}`);
        acceptFresh(window, 11);
        equal(window.check(3), 'stale', 'counter 3 left the window when H became 11');
        equal(window.check(4), 'duplicate', 'counter 4 is the oldest counter of the window');
        const error = throwsReplay(() => window.accept(4), 'not-fresh', 'accept of a duplicate');
        equal(error.verdict, 'duplicate', 'verdict carried by the error');
        equal(throwsReplay(() => window.accept(2), 'not-fresh', 'accept of a stale counter').verdict, 'stale', 'stale verdict');
        equal(window.highest(), 11, 'a refused accept moves nothing');
        equal(window.acceptedCount(), 5, 'a refused accept counts nothing');
      },
    },
    {
      name: 'window: the oldest bit is H - W + 1, and H - W is stale (the model\'s window-edge bug)',
      run() {
        for (const bits of [1, 4, 31, 32, 33, 64, 65, 100]) {
          const window = new ReplayWindow({ bits });
          acceptFresh(window, 1);
          acceptFresh(window, 1 + bits);
          equal(window.check(1), 'stale', `W=${bits}: counter H - W`);
          if (bits > 1) {
            equal(window.check(2), 'fresh', `W=${bits}: counter H - W + 1, never accepted`);
            acceptFresh(window, 2);
            equal(window.check(2), 'duplicate', `W=${bits}: counter H - W + 1 after accept`);
          }
        }
      },
    },
    {
      name: 'window: jumps shift the bitmap across word boundaries, beyond W it clears',
      run() {
        for (const bits of [32, 64, 96, 100]) {
          for (const jump of [1, 5, 31, 32, 33, 63, 64, 65, 99, 100, 101, 1000]) {
            const window = new ReplayWindow({ bits });
            const reference = new ReferenceWindow(0, bits);
            // A dense prefix: every counter 1..bits accepted, then the jump, then everything re-checked.
            for (let c = 1; c <= bits; c++) {
              acceptFresh(window, c);
              reference.accept(c);
            }
            const top = bits + jump;
            acceptFresh(window, top);
            reference.accept(top);
            for (let c = 0; c <= top + 2; c++) equal(window.check(c), reference.verdict(c), `W=${bits}, jump ${jump}: counter ${c}`);
          }
        }
      },
    },
    {
      name: 'window: counters up to 2^53 - 1; anything else is out of range or a TypeError',
      run() {
        const window = new ReplayWindow({ floor: REPLAY_COUNTER_MAX - 100 });
        equal(window.check(REPLAY_COUNTER_MAX - 100), 'stale', 'the floor itself');
        acceptFresh(window, REPLAY_COUNTER_MAX - 1);
        acceptFresh(window, REPLAY_COUNTER_MAX - 63);
        equal(window.check(REPLAY_COUNTER_MAX - 64), 'fresh', 'the oldest counter of the window at H = 2^53 - 2');
        acceptFresh(window, REPLAY_COUNTER_MAX);
        equal(window.check(REPLAY_COUNTER_MAX - 64), 'stale', 'H - W at the top of the range');
        equal(window.check(REPLAY_COUNTER_MAX - 63), 'duplicate', 'H - W + 1 at the top of the range');
        equal(window.check(REPLAY_COUNTER_MAX), 'duplicate', '2^53 - 1 twice');
        equal(window.check(REPLAY_COUNTER_MAX - 1), 'duplicate', '2^53 - 2 twice');
        equal(window.check(REPLAY_COUNTER_MAX - 2), 'fresh', '2^53 - 3 never accepted');
        for (const bad of [REPLAY_COUNTER_MAX + 1, 2 ** 53, 2 ** 64, -1, -0.5, 1.5, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
          equal(window.check(bad), 'out-of-range', `counter ${bad}`);
          equal(throwsReplay(() => window.accept(bad), 'not-fresh', `accept ${bad}`).verdict, 'out-of-range', `accept ${bad} verdict`);
        }
        throws(() => window.check('5' as unknown as number), 'TypeError', 'a string counter');
        throws(() => window.accept(5n as unknown as number), 'TypeError', 'a BigInt counter');
        equal(window.highest(), REPLAY_COUNTER_MAX, 'highest');
      },
    },
    {
      name: 'window: check is pure, so a tag that fails verification never moves the window',
      run() {
        const window = new ReplayWindow({ bits: 16 });
        acceptFresh(window, 20);
        // A forged message with a far counter: check says fresh, the tag fails, the caller does not accept.
        for (let i = 0; i < 3; i++) equal(window.check(1_000_000), 'fresh', 'the forged counter is fresh by value');
        equal(window.highest(), 20, 'the window did not move');
        for (const c of [5, 6, 19, 21]) equal(window.check(c), 'fresh', `genuine counter ${c} still fresh`);
        equal(window.acceptedCount(), 1, 'accepted count');
      },
    },
    {
      name: 'window: options',
      run() {
        equal(new ReplayWindow().bits, DEFAULT_WINDOW_BITS, 'default W');
        equal(new ReplayWindow({}).floor, 0, 'default floor');
        equal(new ReplayWindow({ bits: MAX_WINDOW_BITS }).bits, MAX_WINDOW_BITS, 'largest W');
        for (const bits of [0, -1, 1.5, MAX_WINDOW_BITS + 1, Number.NaN]) throws(() => new ReplayWindow({ bits }), 'RangeError', `bits ${bits}`);
        for (const floor of [-1, 0.5, REPLAY_COUNTER_MAX + 1, Number.NaN]) throws(() => new ReplayWindow({ floor }), 'RangeError', `floor ${floor}`);
        throws(() => new ReplayWindow({ bits: '64' as unknown as number }), 'TypeError', 'bits as a string');
        throws(() => new ReplayWindow({ floor: '1' as unknown as number }), 'TypeError', 'floor as a string');
        throws(() => new ReplayWindow(null as unknown as object), 'TypeError', 'options null');
        const floored = new ReplayWindow({ bits: 4, floor: 10 });
        equal(floored.check(10), 'stale', 'at the floor');
        equal(floored.check(9), 'stale', 'below the floor');
        equal(floored.check(11), 'fresh', 'above the floor');
      },
    },
    {
      name: 'store: a ceiling is written only above the ceiling, a restart resumes at it',
      run(env) {
        const flash = storeFlash(env, { blockLength: 4096 });
        const ops = flash.counters.operations;
        const writes = flash.counters.writes;
        let store = ReplayStore.open(flash);
        equal(store.senders, 1, 'default senders');
        equal(store.stats().reserve, DEFAULT_CEILING_RESERVE, 'default R');
        equal(store.stats().windowBits, DEFAULT_WINDOW_BITS, 'default W');
        equal(store.floor(0), 0, 'a formatted partition opens at floor 0');
        equal(flash.counters.operations, ops, 'open writes nothing');
        equal(store.check(0, 7), 'fresh', 'check');
        equal(flash.counters.operations, ops, 'check writes nothing');
        store.accept(0, 7);
        equal(store.ceiling(0), 7 + DEFAULT_CEILING_RESERVE, 'first ceiling: counter + R');
        equal(flash.counters.writes - writes, 2, 'one record: two copies');
        for (let c = 8; c <= 7 + DEFAULT_CEILING_RESERVE; c += 3) store.accept(0, c);
        equal(flash.counters.writes - writes, 2, 'counters up to the ceiling write nothing');
        store.accept(0, 8 + DEFAULT_CEILING_RESERVE);
        equal(flash.counters.writes - writes, 4, 'a counter above the ceiling writes one record');
        equal(store.ceiling(0), 8 + 2 * DEFAULT_CEILING_RESERVE, 'the new ceiling');
        equal(throwsReplay(() => store.accept(0, 8 + DEFAULT_CEILING_RESERVE), 'not-fresh', 'a duplicate').verdict, 'duplicate', 'verdict');
        equal(throwsReplay(() => store.accept(0, 7), 'not-fresh', 'a stale counter').verdict, 'stale', 'verdict');
        equal(flash.counters.writes - writes, 4, 'a refused accept writes nothing');
        store = ReplayStore.open(flash);
        equal(store.floor(0), 8 + 2 * DEFAULT_CEILING_RESERVE, 'the restart floor is the durable ceiling');
        equal(store.highest(0), store.floor(0), 'the window starts at the floor');
        equal(store.check(0, 8 + DEFAULT_CEILING_RESERVE), 'stale', 'counters accepted before are stale');
        equal(store.check(0, 9 + DEFAULT_CEILING_RESERVE), 'stale', 'so are counters below the floor that were never seen');
        equal(store.check(0, 9 + 2 * DEFAULT_CEILING_RESERVE), 'fresh', 'the first counter above the floor');
        store.accept(0, 9 + 2 * DEFAULT_CEILING_RESERVE);
        equal(store.stats().recordsWritten, 1, 'the first accept of a boot writes');
        return { bytesProgrammed: flash.counters.bytesProgrammed };
      },
    },
    {
      name: 'store: the ceiling is capped at 2^53 - 1, after which a restart refuses everything',
      run(env) {
        const flash = storeFlash(env);
        const writes = flash.counters.writes;
        const store = ReplayStore.open(flash, { reserve: 1000 });
        store.accept(0, REPLAY_COUNTER_MAX - 10);
        equal(store.ceiling(0), REPLAY_COUNTER_MAX, 'capped ceiling');
        store.accept(0, REPLAY_COUNTER_MAX);
        equal(flash.counters.writes - writes, 2, 'no second record');
        const reopened = ReplayStore.open(flash, { reserve: 1000 });
        equal(reopened.floor(0), REPLAY_COUNTER_MAX, 'floor 2^53 - 1');
        equal(reopened.check(0, REPLAY_COUNTER_MAX), 'stale', 'the last counter');
        equal(reopened.check(0, REPLAY_COUNTER_MAX + 1), 'out-of-range', 'past the range');
      },
    },
    {
      name: 'store: senders have separate windows and ceilings; rotations copy the others',
      run(env) {
        const flash = storeFlash(env, { blockLength: 160, senders: 2 }); // three records per block
        let store = ReplayStore.open(flash, { senders: 2, reserve: 1, windowBits: 4 });
        store.accept(0, 100);
        store.accept(1, 5);
        equal(store.check(0, 5), 'stale', 'sender 0 is far ahead');
        equal(store.check(1, 5), 'duplicate', 'sender 1 saw 5');
        // Ceilings 8, 10, ..., 22 for sender 1 beside sender 0's 101: each rotation copies 101.
        for (let c = 6; c <= 21; c++) store.accept(1, c);
        ok(store.stats().erases >= 2, `rotations: ${store.stats().erases}`);
        store = ReplayStore.open(flash, { senders: 2, reserve: 1, windowBits: 4 });
        equal(store.floor(0), 101, 'sender 0 floor survived the rotations');
        equal(store.floor(1), 22, 'sender 1 floor');
        throws(() => store.check(2, 1), 'RangeError', 'sender 2 of 2');
        throws(() => store.accept(-1, 1), 'RangeError', 'sender -1');
        throws(() => store.floor(0.5), 'RangeError', 'sender 0.5');
        throws(() => store.ceiling('0' as unknown as number), 'TypeError', 'sender as a string');
      },
    },
    {
      name: 'store: recovery reads both blocks in chunks of at most 256 bytes, and nothing else',
      run(env) {
        const flash = storeFlash(env, { blockLength: 4096, blocks: 4 });
        flash.write(2 * 4096, garbage(2 * 4096, 9));
        const before = flash.snapshot().data.slice(2 * 4096);
        let store = ReplayStore.open(flash, { reserve: 1 });
        for (let c = 1; c <= 600; c++) store.accept(0, c); // R = 1: a raise every other counter, 300 records, two rotations
        const readsBefore = flash.counters.reads;
        const bytesBefore = flash.counters.bytesRead;
        store = ReplayStore.open(flash, { reserve: 1 });
        equal(flash.counters.bytesRead - bytesBefore, 8192, 'bytes read by open');
        equal(flash.counters.reads - readsBefore, 32, 'reads of 256 bytes');
        equal(store.stats().recoveryBytesRead, 8192, 'stats().recoveryBytesRead');
        equal(store.floor(0), 600, 'floor after 600 accepts with R = 1');
        bytesEqual(flash.snapshot().data.slice(2 * 4096), before, 'blocks 2 and 3');
        return { erases: flash.counters.erases };
      },
    },
    {
      name: 'store: blank, a newer format, garbage, a counter partition, more senders than configured -> refused, flash unchanged',
      run(env) {
        throwsReplay(() => ReplayStore.open(storeFlash(env, { blank: true })), 'blank', 'blank partition: never every floor at 0');
        const newer = storeFlash(env);
        newer.write(32, encodeEntry16(new Uint8Array(16), REPLAY_STORE_FORMAT + 1, 0x52, 0, 20));
        let before = newer.snapshot().data;
        throwsReplay(() => ReplayStore.open(newer), 'format-too-new', 'a record of the next format');
        bytesEqual(newer.snapshot().data, before, 'after format-too-new');
        const junk = storeFlash(env, { blank: true });
        junk.write(0, garbage(256, 3));
        before = junk.snapshot().data;
        throwsReplay(() => ReplayStore.open(junk), 'not-formatted', 'garbage partition');
        bytesEqual(junk.snapshot().data, before, 'after not-formatted');
        const counter = storeFlash(env, { blank: true });
        Counter.format(counter);
        throwsReplay(() => ReplayStore.open(counter), 'not-formatted', 'a counter partition');
        const wide = storeFlash(env, { blockLength: 192, senders: 3 });
        TwoBlockLog.open(wide, replayLog(3)).write(2, 50);
        throwsReplay(() => ReplayStore.open(wide, { senders: 2 }), 'too-many-senders', 'a ceiling for sender 2 of 2');
        equal(ReplayStore.open(wide, { senders: 3 }).floor(2), 50, 'opens with 3 senders');
        ReplayStore.format(junk);
        equal(ReplayStore.open(junk).floor(0), 0, 'floor 0 after format');
      },
    },
    {
      name: 'store: options and geometry',
      run(env) {
        const flash = storeFlash(env, { blockLength: 160, senders: 2 });
        const ops = flash.counters.operations;
        for (const reserve of [0, -1, 1.5, 2 ** 32 + 1]) throws(() => ReplayStore.open(flash, { reserve }), 'RangeError', `reserve ${reserve}`);
        for (const senders of [0, 1.5, 65537]) throws(() => ReplayStore.open(flash, { senders }), 'RangeError', `senders ${senders}`);
        throws(() => ReplayStore.open(flash, { windowBits: 0 }), 'RangeError', 'windowBits 0');
        throws(() => ReplayStore.open(flash, { reserve: '5' as unknown as number }), 'TypeError', 'reserve as a string');
        throws(() => ReplayStore.open(flash, 5 as unknown as object), 'TypeError', 'options as a number');
        throwsReplay(() => ReplayStore.open(flash, { senders: 3 }), 'bad-geometry', '3 senders in 5-record blocks');
        equal(ReplayStore.open(flash, { senders: 2 }).senders, 2, '2 senders in 5-record blocks');
        equal(replayBlockLength(2), 160, 'smallest block for 2 senders');
        throwsReplay(() => ReplayStore.open(env.createFlash(flashOptions('plain', 128, 1))), 'bad-geometry', 'one block');
        throwsReplay(() => ReplayStore.format(env.createFlash(flashOptions('plain', 128, 1))), 'bad-geometry', 'format, one block');
        throwsReplay(() => ReplayStore.open(env.createFlash({ blocks: 2, blockLength: 128, writeAlign: 32 })), 'bad-geometry', 'writeAlign 32');
        throwsReplay(() => ReplayStore.open(env.createFlash({ blocks: 2, blockLength: 40 })), 'bad-geometry', 'block length 40');
        equal(flash.counters.operations, ops, 'nothing written');
      },
    },
  ],
};
