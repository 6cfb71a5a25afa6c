/**
 * Replays a trace of the replay-window model against the TypeScript
 * (docs/models/replay-window.md, "Conformance"): the same deliveries, tag
 * failures, crashes and restarts go to a `ReplayStore` on a simulated flash,
 * where a restart is a fresh instance over the same flash and a crash before
 * a ceiling was durable is a power cut of the flash write.
 *
 * Two modes:
 * - conformance (traces of the correct model): every verdict, every ceiling
 *   written (and every accept that writes none), every restart floor must be
 *   the model's;
 * - counterexample (trails of a planted bug, replayed against the correct
 *   TypeScript): every delivery before the last must get the model's verdict,
 *   and the last one, where the buggy model broke its property, must get the
 *   safe verdict: refused where the model accepted a counter twice, accepted
 *   where the model refused a fresh genuine counter.
 */
import { ReplayStore, type ReplayStoreOptions } from '../../firmware/security/replay-store.ts';
import type { ReplayVerdict } from '../../firmware/security/replay-window.ts';
import { isPowerCut } from '../sim/flash/errors.ts';
import { SimFlash, type FlashMode } from '../sim/flash/sim-flash.ts';
import type { ModelEvent, Trace } from './replay-window-trace.ts';
import { TraceDivergence, type ReplayMode } from './trace-file.ts';

export interface ReplayOptions {
  mode: ReplayMode;
  flashMode?: FlashMode;
  /** Small blocks so that the trace's ceilings also cross rotations (64 bytes: 4 entries). */
  blockLength?: number;
}

export interface ReplayReport {
  readonly events: number;
  readonly deliveries: number;
  readonly accepts: number;
  readonly restarts: number;
  readonly cuts: number;
  readonly flashWrites: number;
  readonly flashErases: number;
  /** Counterexample mode: the last delivery's verdicts, model and TypeScript. */
  readonly final?: { readonly c: number; readonly model: string; readonly typescript: ReplayVerdict };
}

/** Replay `trace`; throws TraceDivergence where the TypeScript decides differently. */
export function replayWindowTrace(trace: Trace, options: ReplayOptions): ReplayReport {
  const events = trace.events;
  const config = events[0];
  if (!config || config.kind !== 'config') throw new Error('a trace starts with its EVENT config line');
  const conformance = options.mode === 'conformance';
  if (conformance && config.bug !== 0) throw new Error(`a trace of planted bug ${config.bug} is replayed in counterexample mode`);
  const lastDelivery = lastIndexOf(events, (e) => e.kind === 'deliver');
  if (!conformance && lastDelivery < 0) throw new Error('a counterexample without a delivery');

  let flash = new SimFlash({ blocks: 2, blockLength: options.blockLength ?? 128, mode: options.flashMode ?? 'plain', onBitSet: 'throw' });
  /** Writes and erases of flashes replaced by a cut (see `cutBeforeDurable`). */
  let earlierWrites = 0;
  let earlierErases = 0;
  const storeOptions = { senders: 1, reserve: config.R, windowBits: config.W };
  ReplayStore.format(flash, storeOptions);
  let store = ReplayStore.open(flash, storeOptions);
  /** The delivery in hand: the TypeScript said fresh and the tag is genuine. */
  let pending: { c: number; accepted: boolean } | undefined;
  let deliveries = 0;
  let accepts = 0;
  let restarts = 0;
  let cuts = 0;
  let final: ReplayReport['final'];

  for (let i = 1; i < events.length; i++) {
    const event = events[i];
    const fail = (message: string): never => {
      throw new TraceDivergence(i, trace.lines[i], message);
    };
    switch (event.kind) {
      case 'config':
        fail('a second config line');
        break;
      case 'send':
      case 'end':
        break;
      case 'deliver': {
        deliveries++;
        if (pending && !pending.accepted) fail(`counter ${pending.c} was still in hand`);
        pending = undefined;
        const verdict = store.check(0, event.c);
        if (!conformance && i === lastDelivery) {
          final = { c: event.c, model: event.check, typescript: verdict };
          checkFinal(trace, event, verdict, fail);
        } else if (verdict !== event.check) {
          fail(`the model's window says ${event.check}, the TypeScript says ${verdict}`);
        }
        if (verdict === 'fresh' && event.tag === 'ok') pending = { c: event.c, accepted: false };
        break;
      }
      case 'reject': {
        // The tag failed: the caller never calls accept, and the window did not move.
        const highest = store.highest(0);
        if (store.check(0, event.c) !== 'fresh' && conformance) fail('a counter refused for its tag was not fresh');
        if (store.highest(0) !== highest) fail('check moved the window');
        break;
      }
      case 'persist': {
        if (!conformance) break; // the buggy model's own persistence rule
        if (!pending || pending.accepted) fail('the model persisted a ceiling with no counter in hand');
        const held = pending as { c: number; accepted: boolean };
        const writes = flash.counters.writes;
        store.accept(0, held.c);
        held.accepted = true;
        accepts++;
        if (flash.counters.writes === writes) fail(`the model persisted ceiling ${event.ceiling}, the TypeScript wrote nothing for counter ${held.c}`);
        if (store.ceiling(0) !== event.ceiling) fail(`the model's ceiling is ${event.ceiling}, the TypeScript's ${store.ceiling(0)}`);
        break;
      }
      case 'accept': {
        if (!pending || pending.c !== event.c) {
          if (conformance || i < lastDelivery) fail(`the model accepted counter ${event.c}, the TypeScript did not have it as fresh`);
          break; // the violating accept: the TypeScript refused it at the delivery
        }
        if (!pending.accepted) {
          const writes = flash.counters.writes;
          store.accept(0, event.c);
          accepts++;
          if (conformance && flash.counters.writes !== writes) fail(`the TypeScript wrote a ceiling for counter ${event.c}, the model persisted none`);
        }
        pending = undefined;
        if (store.check(0, event.c) !== 'duplicate') fail(`counter ${event.c} is not a duplicate right after its accept`);
        break;
      }
      case 'restart': {
        restarts++;
        if (pending && !pending.accepted && event.stage === 'persisting') {
          // The model crashed before the new ceiling was durable: cut the TypeScript's accept in its first flash operation.
          const outcome = cutBeforeDurable(flash, store, pending.c, storeOptions, 0x5eed0000 + i * 16);
          if (outcome === 'no-write') {
            if (conformance) fail(`the model needed a ceiling before accepting ${pending.c}, the TypeScript wrote nothing`);
          } else {
            earlierWrites += flash.counters.writes;
            earlierErases += flash.counters.erases;
            flash = outcome;
            cuts++;
          }
        }
        pending = undefined;
        flash.powerOn();
        store = ReplayStore.open(flash, storeOptions);
        if (conformance && store.floor(0) !== event.floor) fail(`the model restarts at floor ${event.floor}, the TypeScript at ${store.floor(0)}`);
        break;
      }
    }
  }
  if (!conformance && pending && !pending.accepted) {
    // The genuine counter the buggy model refused: the TypeScript takes it.
    store.accept(0, pending.c);
    accepts++;
  }
  return {
    events: events.length,
    deliveries,
    accepts,
    restarts,
    cuts,
    flashWrites: earlierWrites + flash.counters.writes,
    flashErases: earlierErases + flash.counters.erases,
    final,
  };
}

/**
 * Cut `store.accept(0, counter)` in its first flash operation so that the new
 * ceiling is not durable, the model's crash in stage "persisting". A torn
 * write may also land whole (the crash came after the bytes were durable,
 * which is the model's stage "accepting"), so torn results are tried, each on
 * a copy of the flash (opened afresh: the crash ends this boot anyway), until
 * one leaves the old ceiling. Returns the flash after that cut, or 'no-write'
 * when the accept needs no new ceiling.
 */
function cutBeforeDurable(flash: SimFlash, store: ReplayStore, counter: number, storeOptions: ReplayStoreOptions, seed: number): SimFlash | 'no-write' {
  const ceiling = store.ceiling(0);
  if (counter <= ceiling) return 'no-write';
  const before = flash.snapshot();
  for (let attempt = 0; attempt < 16; attempt++) {
    const copy = SimFlash.fromSnapshot(before, { onBitSet: 'throw' });
    const trial = ReplayStore.open(copy, storeOptions);
    copy.armCut({ atOperation: 0, seed: seed + attempt });
    try {
      trial.accept(0, counter);
      return 'no-write';
    } catch (error) {
      if (!isPowerCut(error)) throw error;
    }
    copy.disarmCut();
    copy.powerOn();
    if (ReplayStore.open(copy, storeOptions).ceiling(0) === ceiling) return copy;
  }
  throw new Error(`16 torn writes of the ceiling for counter ${counter} all landed whole`);
}

/** The last delivery of a counterexample: the TypeScript must decide the safe way. */
function checkFinal(trace: Trace, event: Extract<ModelEvent, { kind: 'deliver' }>, verdict: ReplayVerdict, fail: (message: string) => never): void {
  const violates = trace.meta.violates ?? '';
  if (violates.includes('accepted_twice')) {
    // The model accepted this counter a second time.
    if (event.check !== 'fresh') fail(`the trail should end with the model taking counter ${event.c} as fresh, it says ${event.check}`);
    if (verdict === 'fresh') fail(`the TypeScript would accept counter ${event.c} again too`);
  } else if (violates.includes('fresh_rejected')) {
    // The model refused a genuine counter that was never accepted.
    if (event.check === 'fresh' || event.tag !== 'ok') fail(`the trail should end with the model refusing genuine counter ${event.c}`);
    if (verdict !== 'fresh') fail(`the TypeScript refuses counter ${event.c} too (${verdict})`);
  } else {
    fail(`the trace header names no violated property (violates: ${JSON.stringify(violates)})`);
  }
}

function lastIndexOf<T>(items: readonly T[], test: (item: T) => boolean): number {
  for (let i = items.length - 1; i >= 0; i--) if (test(items[i])) return i;
  return -1;
}
