/**
 * The test's model of an outbox under power cuts: what the firmware was told
 * happened (appends that returned, acks that returned, the operation in
 * flight when the power went) and the invariants the flash must honour
 * after every recovery (docs/spec/outbox.md, "Guarantees").
 */
import { Outbox, type FullPolicy } from '../../firmware/storage/outbox.ts';
import { StorageError } from '../../firmware/storage/errors.ts';
import { seqDiff } from '../../firmware/base/seq.ts';
import type { CutScenario } from '../../tools/sim/power-cut.ts';
import type { SimFlashOptions } from '../../tools/sim/flash/sim-flash.ts';
import { Rng } from '../../tools/sim/rng.ts';
import { bytesEqual, CheckFailure, equal, ok } from '../support/check.ts';

export interface OutboxWorkload {
  name: string;
  flash: SimFlashOptions;
  policy: FullPolicy;
  maxUnpersistedAcks: number;
  /** The outbox's ackRideFrom (default: its own). */
  ackRideFrom?: number;
  /**
   * When set, also checked at every recovery: at most this many acknowledged
   * records (appends that returned; numbers skipped after a torn append do
   * not count) come back. Tighter than maxUnpersistedAcks (which counts
   * numbers), for workloads that ack one record per append.
   */
  redeliveryBound?: number;
  /** Appends in the whole run. */
  appends: number;
  /** Payload length of the i-th append. */
  size: (index: number) => number;
  /** Deliver and ack after every `ackEvery` appends (0: only when the policy refuses). */
  ackEvery: number;
  /** Records read per delivery step (the last one read is acked). */
  ackBatch: number;
  /** Start from a partition full of foreign bytes: the first boot must format it. */
  garbageAtStart?: boolean;
}

export interface OutboxGhost {
  /** Payload of every append that returned, by sequence number. */
  records: Map<number, Uint8Array>;
  nextIndex: number;
  inFlight: Uint8Array | undefined;
  /** The outbox's ack point as the test last confirmed it. */
  knownAck: number;
  /** An ack() under way when the power went: its new ack point. */
  ackInFlight: number | undefined;
  expectedDropped: number;
  /** Acked records the outbox said were not yet on flash (may exceed the bound only in a full ring). */
  reportedUnpersisted: number;
  formatted: boolean;
  delivered: number;
  redelivered: number;
  /** The most acknowledged records (appends that returned) one recovery brought back. */
  maxRedelivered: number;
}

export function payloadFor(index: number, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  new Rng(index * 7919 + 17).fill(bytes);
  bytes[0] = index & 0xff;
  return bytes;
}

export function outboxScenario(w: OutboxWorkload): CutScenario<OutboxGhost> {
  return {
    name: `outbox/${w.name}/${w.flash.mode ?? 'plain'}`,
    flash: w.flash,
    createState: () => ({
      records: new Map(),
      nextIndex: 0,
      inFlight: undefined,
      knownAck: 0,
      ackInFlight: undefined,
      expectedDropped: 0,
      reportedUnpersisted: 0,
      formatted: !w.garbageAtStart,
      delivered: 0,
      redelivered: 0,
      maxRedelivered: 0,
    }),
    boot(flash, ghost) {
      if (!ghost.formatted) {
        ghost.formatted = formatIfForeign(flash, w);
      }
      const outbox = Outbox.open(flash, { policy: w.policy, maxUnpersistedAcks: w.maxUnpersistedAcks, ...(w.ackRideFrom === undefined ? {} : { ackRideFrom: w.ackRideFrom }) });
      verifyRecovery(outbox, ghost, w);
      while (ghost.nextIndex < w.appends) {
        const payload = payloadFor(ghost.nextIndex, w.size(ghost.nextIndex));
        ghost.inFlight = payload;
        let seq: number;
        try {
          seq = outbox.append(payload);
        } catch (error) {
          if (!(error instanceof StorageError) || error.code !== 'full' || w.policy !== 'reject') throw error;
          ghost.inFlight = undefined;
          if (deliverAndAck(outbox, ghost, w) === 0) throw new CheckFailure('outbox refuses appends with nothing to deliver');
          continue;
        }
        ok(!ghost.records.has(seq), `append returned sequence number ${seq} twice`);
        ghost.records.set(seq, payload);
        ghost.inFlight = undefined;
        ghost.nextIndex++;
        syncDrops(outbox, ghost, w);
        if (w.ackEvery > 0 && ghost.nextIndex % w.ackEvery === 0) deliverAndAck(outbox, ghost, w);
      }
    },
  };
}

/** First boot on a foreign partition: open refuses it untouched, then format. Returns true once formatted. */
function formatIfForeign(flash: Parameters<typeof Outbox.open>[0], w: OutboxWorkload): boolean {
  try {
    Outbox.open(flash, { policy: w.policy });
  } catch (error) {
    if (!(error instanceof StorageError) || error.code !== 'not-formatted') throw error;
    Outbox.format(flash);
  }
  return true;
}

/** After an append: drop-oldest may have released unacked records; the count must match exactly. */
function syncDrops(outbox: Outbox, ghost: OutboxGhost, w: OutboxWorkload): void {
  const stats = outbox.stats();
  const released = seqDiff(stats.ackSeq, ghost.knownAck);
  if (released > 0) {
    // Policy reject may release only numbers that hold no appended record (a torn append's, skipped ones).
    if (w.policy !== 'drop-oldest') checkNoAppendedRecord(ghost, ghost.knownAck, released, `policy ${w.policy} released`);
    ghost.expectedDropped += released;
    ghost.knownAck = stats.ackSeq;
  }
  equal(stats.dropped, ghost.expectedDropped, 'dropped count after append');
}

/** None of the `count` numbers from `from` holds a record whose append returned. */
function checkNoAppendedRecord(ghost: OutboxGhost, from: number, count: number, what: string): void {
  for (let i = 0; i < count; i++) {
    const seq = (from + i) >>> 0;
    ok(!ghost.records.has(seq), `${what} record ${seq}, whose append returned (unacked)`);
  }
}

/** Read up to ackBatch records from the oldest unacked one, check them, ack the last. Returns how many were read. */
function deliverAndAck(outbox: Outbox, ghost: OutboxGhost, w: OutboxWorkload): number {
  let last: number | undefined;
  let count = 0;
  for (let record = outbox.peek(); record !== undefined && count < w.ackBatch; record = outbox.next()) {
    checkDelivered(record.seq, record.payload, ghost, last);
    last = record.seq;
    count++;
  }
  if (last !== undefined) {
    ghost.ackInFlight = last + 1;
    outbox.ack(last);
    ghost.knownAck = last + 1;
    ghost.ackInFlight = undefined;
    const stats = outbox.stats();
    if (stats.unpersistedAcks > w.maxUnpersistedAcks) {
      // Only allowed when recording the acks would cost unacknowledged records: a ring with every sector in use.
      equal(stats.usedSectors, stats.sectors, `${stats.unpersistedAcks} acks unrecorded (bound ${w.maxUnpersistedAcks}) in a ring that is not full`);
    }
    ghost.reportedUnpersisted = stats.unpersistedAcks;
  }
  ghost.delivered += count;
  return count;
}

function checkDelivered(seq: number, payload: Uint8Array, ghost: OutboxGhost, previous: number | undefined): void {
  if (previous !== undefined) ok(seqDiff(seq, previous) > 0, `delivered ${seq} after ${previous}: out of order`);
  const expected = ghost.records.get(seq);
  if (expected === undefined) {
    // Only the append that was in flight at the cut may appear without having returned.
    ok(ghost.inFlight !== undefined, `delivered record ${seq} was never appended`);
    bytesEqual(payload, ghost.inFlight, `record ${seq}: the only unreturned append that may appear is the one in flight`);
    ghost.records.set(seq, ghost.inFlight);
    ghost.inFlight = undefined;
    ghost.nextIndex++;
    return;
  }
  bytesEqual(payload, expected, `record ${seq}`);
}

/**
 * After a reboot: the ack point is at most `maxUnpersistedAcks` behind what
 * the test acked (those records come again), never past it except for an ack
 * in flight or records dropped by the policy; every appended record at or
 * after the ack point is delivered, in order, once, intact.
 */
function verifyRecovery(outbox: Outbox, ghost: OutboxGhost, w: OutboxWorkload): void {
  const stats = outbox.stats();
  const behind = seqDiff(ghost.knownAck, stats.ackSeq);
  const bound = Math.max(w.maxUnpersistedAcks, ghost.reportedUnpersisted);
  ok(behind <= bound, `recovered ack point ${stats.ackSeq} is ${behind} behind the acked ${ghost.knownAck} (bound ${bound})`);
  let behindRecords = 0;
  for (const seq of ghost.records.keys()) if (seqDiff(seq, stats.ackSeq) >= 0 && seqDiff(seq, ghost.knownAck) < 0) behindRecords++;
  if (w.redeliveryBound !== undefined) ok(behindRecords <= w.redeliveryBound, `recovery brings back ${behindRecords} acknowledged records (ack point ${stats.ackSeq}, acked ${ghost.knownAck}; workload bound ${w.redeliveryBound})`);
  if (behindRecords > ghost.maxRedelivered) ghost.maxRedelivered = behindRecords;
  // What the app acknowledged, counting an ack() under way when the power went.
  const inFlight = ghost.ackInFlight !== undefined && seqDiff(ghost.ackInFlight, ghost.knownAck) > 0 ? seqDiff(ghost.ackInFlight, ghost.knownAck) : 0;
  const appAck = (ghost.knownAck + inFlight) >>> 0;
  const ahead = seqDiff(stats.ackSeq, appAck);
  if (ahead > 0) {
    if (w.policy !== 'drop-oldest') checkNoAppendedRecord(ghost, appAck, ahead, 'policy reject lost');
    ghost.expectedDropped += ahead;
  }
  // docs/spec/outbox.md, "Known limits" 1: when cuts have used both closing slots, a reclaim cannot record
  // the acks held in RAM first; a cut between its erase and the new header then counts those acknowledged
  // records as dropped. Only acknowledged numbers whose acks may not have reached flash qualify.
  const extra = stats.dropped - ghost.expectedDropped;
  if (extra > 0) {
    ok(extra <= bound + inFlight, `dropped ${stats.dropped}, ${extra} more than the records that left unacknowledged (${ghost.expectedDropped})`);
    ghost.expectedDropped += extra;
  }
  equal(stats.dropped, ghost.expectedDropped, 'dropped count after recovery');
  ghost.ackInFlight = undefined;
  ghost.redelivered += Math.max(0, behind);
  let previous: number | undefined;
  const seen = new Set<number>();
  for (let record = outbox.peek(); record !== undefined; record = outbox.next()) {
    ok(seqDiff(record.seq, stats.ackSeq) >= 0, `delivered ${record.seq} below the ack point ${stats.ackSeq}`);
    checkDelivered(record.seq, record.payload, ghost, previous);
    seen.add(record.seq);
    previous = record.seq;
  }
  for (const seq of ghost.records.keys()) {
    if (seqDiff(seq, stats.ackSeq) >= 0) ok(seen.has(seq), `record ${seq} was appended and not delivered (ack point ${stats.ackSeq}, next ${stats.nextSeq})`);
  }
  ghost.knownAck = stats.ackSeq;
  ghost.inFlight = undefined;
  ghost.reportedUnpersisted = 0;
}
