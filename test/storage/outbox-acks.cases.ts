/**
 * When the outbox's acks ride on an append (`ackRideFrom`,
 * docs/spec/outbox.md, guarantee 4), in Node and in XS: the flash bytes a
 * drain that acknowledges every record one by one programs (an ack field
 * on every append cost 4 bytes per record), the option's bounds, and the
 * redelivery bound under power cuts (every operation cut, both tear modes,
 * plain and strict), with the acks of a drain that never batches them.
 */
import { DEFAULT_ACK_RIDE_FROM, Outbox, type OutboxOptions } from '../../firmware/storage/outbox.ts';
import { entryLength, HEADER_LENGTH } from '../../firmware/storage/outbox-format.ts';
import type { FlashPartition, FlashStatus } from '../../firmware/hal/flash.ts';
import type { CaseEnv, CaseSuite, FirmwareCase } from '../support/cases.ts';
import { equal, ok, throws } from '../support/check.ts';
import { runExhaustive, runRandom, type RunnerOptions } from '../../tools/sim/power-cut.ts';
import type { FlashMode } from '../../tools/sim/flash/sim-flash.ts';
import { outboxScenario, type OutboxGhost, type OutboxWorkload } from './outbox-model.ts';
import type { CutScenario } from '../../tools/sim/power-cut.ts';

/** Counts the bytes every write programs and the erases, whatever the flash underneath is. */
class CountingFlash implements FlashPartition {
  bytesWritten = 0;
  erases = 0;

  constructor(private readonly inner: FlashPartition) {}

  status(): FlashStatus {
    return this.inner.status();
  }

  read(byteOffset: number, target: Uint8Array): void {
    this.inner.read(byteOffset, target);
  }

  write(byteOffset: number, data: Uint8Array): void {
    this.bytesWritten += data.length;
    this.inner.write(byteOffset, data);
  }

  eraseBlock(block: number): void {
    this.erases++;
    this.inner.eraseBlock(block);
  }
}

const RECORDS = 400;
const SIZE = 16;

/**
 * A drain as the MQTT session makes it with a PUBACK per record: append one
 * record, then acknowledge it before the next append. 400 records of 16
 * bytes on 4 plain sectors of 4 KiB (no reclaim: 400 × 26 bytes fit in
 * three). Returns the bytes programmed and the most acks ever waiting after
 * an append.
 */
function drain(env: CaseEnv, options: OutboxOptions): { bytes: number; erases: number; maxWaitingAfterAppend: number } {
  const flash = new CountingFlash(env.createFlash({ blocks: 4, blockLength: 4096, mode: 'plain' }));
  const outbox = Outbox.open(flash, options);
  const record = new Uint8Array(SIZE);
  let maxWaiting = 0;
  for (let i = 0; i < RECORDS; i++) {
    record.fill(i & 0xff);
    const seq = outbox.append(record);
    maxWaiting = Math.max(maxWaiting, outbox.stats().unpersistedAcks);
    outbox.ack(seq);
  }
  equal(outbox.stats().queued, 0, 'every record acknowledged');
  return { bytes: flash.bytesWritten, erases: flash.erases, maxWaitingAfterAppend: maxWaiting };
}

/** A drain under cuts: every append followed by the ack of the oldest record. Sized to fill a 3-sector ring and reclaim its oldest sectors. */
function drainWorkload(mode: FlashMode, ackRideFrom: number): OutboxWorkload {
  return {
    name: `drain-one-ack-per-record-ride-from-${ackRideFrom}`,
    flash: { blocks: 3, blockLength: 512, mode },
    policy: 'drop-oldest',
    maxUnpersistedAcks: 16,
    ackRideFrom,
    // Each append is followed by one ack, so never more than ackRideFrom acks wait when a cut strikes.
    redeliveryBound: ackRideFrom,
    appends: mode === 'plain' ? 90 : 60,
    size: (i) => 16 + (i % 5),
    ackEvery: 1,
    ackBatch: 1,
  };
}

/** The scenario, plus the most acknowledged records any recovery of any run brought back. */
function tracked(w: OutboxWorkload): { scenario: CutScenario<OutboxGhost>; maxRedelivered: () => number } {
  const base = outboxScenario(w);
  const ghosts: OutboxGhost[] = [];
  const scenario: CutScenario<OutboxGhost> = {
    name: base.name,
    flash: base.flash,
    createState: () => {
      const ghost = base.createState();
      ghosts.push(ghost);
      return ghost;
    },
    boot: (flash, ghost, index) => base.boot(flash, ghost, index),
  };
  return { scenario, maxRedelivered: () => ghosts.reduce((m, g) => Math.max(m, g.maxRedelivered), 0) };
}

function runner(env: CaseEnv): RunnerOptions {
  return { createFlash: env.createFlash, saveFailureImage: env.saveFailureImage };
}

function cutCase(mode: FlashMode, ackRideFrom: number): FirmwareCase {
  return {
    name: `redelivery bound under cuts, one ack per append, ackRideFrom ${ackRideFrom} (maxUnpersistedAcks 16): at most ${ackRideFrom} acknowledged records come back, ${mode}`,
    run(env) {
      const w = drainWorkload(mode, ackRideFrom);
      const { scenario, maxRedelivered } = tracked(w);
      const report = runExhaustive(scenario, runner(env));
      // The bound is reached: cut just before the append that carries the acks, all ackRideFrom come back.
      equal(maxRedelivered(), ackRideFrom, `the most records one recovery brought back (${ackRideFrom}: cut before the append carrying them)`);
      return { ...report, maxRedelivered: maxRedelivered() };
    },
  };
}

export const suite: CaseSuite = {
  name: 'outbox acks riding on appends (ackRideFrom)',
  cases: [
    {
      name: 'a drain acknowledging every record: the ack field rides on one append in ackRideFrom, not on every append (flash bytes counted)',
      run(env) {
        const everyAppend = drain(env, { ackRideFrom: 1 });
        const byDefault = drain(env, {});
        const entry = entryLength(SIZE, false, 1);
        const withAck = entryLength(SIZE, true, 1);
        // Sector headers (one write each, HEADER_LENGTH bytes at writeAlign 1) as counted by the erases.
        const headers = (d: { erases: number }): number => d.erases * HEADER_LENGTH;
        equal(everyAppend.bytes, headers(everyAppend) + RECORDS * withAck - withAck + entry, 'ackRideFrom 1: every append but the first carries an ack field');
        // Each ack field records at least DEFAULT_ACK_RIDE_FROM of the RECORDS - 1 acks given before the last append; nothing else is written.
        const rides = Math.floor((RECORDS - 1) / DEFAULT_ACK_RIDE_FROM);
        const most = headers(byDefault) + RECORDS * entry + rides * (withAck - entry);
        ok(byDefault.bytes <= most, `default: ${byDefault.bytes} bytes programmed, at most one ack field per ${DEFAULT_ACK_RIDE_FROM} appends and no ack entry of its own (≤ ${most})`);
        ok(byDefault.maxWaitingAfterAppend <= DEFAULT_ACK_RIDE_FROM - 1, `after an append at most ${DEFAULT_ACK_RIDE_FROM - 1} acks wait (${byDefault.maxWaitingAfterAppend})`);
        equal(everyAppend.maxWaitingAfterAppend, 0, 'ackRideFrom 1: none wait after an append');
        const saved = (everyAppend.bytes - byDefault.bytes) / RECORDS;
        ok(saved > 3.4, `saves ${saved.toFixed(2)} bytes per record of the 4 an ack field costs`);
        return { bytesPerRecordEveryAppend: everyAppend.bytes / RECORDS, bytesPerRecordDefault: byDefault.bytes / RECORDS };
      },
    },
    {
      name: 'ackRideFrom: default min(8, maxUnpersistedAcks), bounds checked (1 ≤ ackRideFrom ≤ max(1, maxUnpersistedAcks))',
      run(env) {
        const flash = (): FlashPartition => env.createFlash({ blocks: 2, blockLength: 512, mode: 'plain' });
        for (const bad of [0, -1, 1.5, 17, Number.NaN]) throws(() => Outbox.open(flash(), { ackRideFrom: bad }), 'RangeError', `ackRideFrom ${bad}`);
        throws(() => Outbox.open(flash(), { maxUnpersistedAcks: 4, ackRideFrom: 5 }), 'RangeError', 'above maxUnpersistedAcks');
        throws(() => Outbox.open(flash(), { maxUnpersistedAcks: 0, ackRideFrom: 2 }), 'RangeError', 'above 1 when acks are flushed at once');
        Outbox.open(flash(), { maxUnpersistedAcks: 0, ackRideFrom: 1 });
        Outbox.open(flash(), { maxUnpersistedAcks: 16, ackRideFrom: 16 });
        // The default follows maxUnpersistedAcks down: with 3, an append carries the acks once 3 wait.
        const outbox = Outbox.open(flash(), { maxUnpersistedAcks: 3 });
        const seqs = [outbox.append(new Uint8Array([1])), outbox.append(new Uint8Array([2])), outbox.append(new Uint8Array([3]))];
        outbox.ack(seqs[1]);
        outbox.append(new Uint8Array([4]));
        equal(outbox.stats().unpersistedAcks, 2, 'two waiting: below min(8, 3), not carried');
        outbox.ack(seqs[2]);
        outbox.append(new Uint8Array([5]));
        equal(outbox.stats().unpersistedAcks, 0, 'three waiting: carried by the append');
        // The default with maxUnpersistedAcks 16 is 8.
        const o16 = Outbox.open(flash());
        for (let i = 0; i < 8; i++) o16.ack(o16.append(new Uint8Array([i + 1])));
        equal(o16.stats().unpersistedAcks, 8, 'eight acks waiting, none carried yet (each append came with fewer waiting)');
        o16.append(new Uint8Array([9]));
        equal(o16.stats().unpersistedAcks, 0, 'the ninth append carries them');
        // flush() still records them on demand, whatever is waiting.
        o16.ack(o16.stats().nextSeq - 1);
        o16.flush();
        equal(o16.stats().unpersistedAcks, 0, 'flush records one waiting ack');
      },
    },
    cutCase('plain', DEFAULT_ACK_RIDE_FROM),
    cutCase('strict', DEFAULT_ACK_RIDE_FROM),
    cutCase('plain', 1),
    {
      name: 'random multi-cut runs of the drain, ackRideFrom 8, maxUnpersistedAcks 16 (plain and strict)',
      run(env) {
        const plain = tracked({ ...drainWorkload('plain', 8), appends: 200 });
        const strict = tracked({ ...drainWorkload('strict', 8), appends: 120 });
        const a = runRandom(plain.scenario, { ...runner(env), runs: 30, maxCuts: 4, seed: 41 });
        const b = runRandom(strict.scenario, { ...runner(env), runs: 30, maxCuts: 4, seed: 42 });
        return { plainRuns: a.runs, plainCuts: a.cuts, strictRuns: b.runs, strictCuts: b.cuts, maxRedelivered: Math.max(plain.maxRedelivered(), strict.maxRedelivered()) };
      },
    },
  ],
};
