/**
 * The outbox: a flash-backed ring of telemetry records (docs/spec/outbox.md).
 *
 * - `append` returns once the record is durable; records keep their order.
 * - Delivery reads from the oldest unacknowledged record without removing
 *   it; `ack(seq)` releases every record up to `seq`. Acks ride on an
 *   append's header (4 bytes, no extra write) once at least `ackRideFrom`
 *   are pending, and are written on their own once more than
 *   `maxUnpersistedAcks` are pending, which bounds the records delivered
 *   again after a reboot.
 * - A full ring drops its oldest sector (`drop-oldest`, counted durably) or
 *   refuses the append (`reject`).
 * - Boot reads 8 bytes per sector plus a bounded part of two or three
 *   sectors; RAM is constant in the number of queued records.
 */
import type { FlashPartition } from '../hal/flash.ts';
import { seqAdd, seqDiff } from '../base/seq.ts';
import { StorageError } from './errors.ts';
import { CLOSING_SLOTS, encodeEntry, entryLength } from './outbox-format.ts';
import { Ring, type Cursor, type FullPolicy } from './_outbox-ring.ts';
import { recover } from './_outbox-recovery.ts';
import { readAt, seek, type OutboxRecord } from './_outbox-reader.ts';
import { openSector, openWouldDrop, planOpen, reclaimNeedsAcks, sealIfDirty, verifyHeadFreeSpace, writeAckEntry, writeClosingAck, writeRecord, fullRingReclaimEnd } from './_outbox-writer.ts';

export type { FullPolicy } from './_outbox-ring.ts';
export type { OutboxRecord } from './_outbox-reader.ts';

export interface OutboxOptions {
  /** What a full ring does with an append: drop its oldest sector (default) or refuse. */
  policy?: FullPolicy;
  /** Acked records that may stay unrecorded on flash (and be delivered again after a reboot). Default 16. */
  maxUnpersistedAcks?: number;
  /**
   * An append carries the ack point (a 4-byte field) only when at least
   * this many acknowledged numbers are not yet recorded: 1 records them
   * with every append. 1 ≤ ackRideFrom ≤ max(1, maxUnpersistedAcks);
   * default min(8, max(1, maxUnpersistedAcks)).
   */
  ackRideFrom?: number;
}

export interface OutboxStats {
  /** Records appended and not yet acknowledged (including any that turn out corrupt). */
  queued: number;
  /** Sequence number the next append gets. */
  nextSeq: number;
  /** Every record before this one is acknowledged. */
  ackSeq: number;
  /** Records that left the ring unacknowledged since it was formatted (persistent). */
  dropped: number;
  /** Records skipped during delivery because they failed their checks (this boot). */
  corrupt: number;
  /** Records whose loss was detected between sectors (a damaged sector header or record chain, this boot). */
  lost: number;
  /** Appends refused by the `reject` policy (this boot). */
  rejected: number;
  /**
   * Sectors found damaged beyond what a power cut explains, where the number
   * of records lost cannot be known (this boot): the head sector's entry
   * chain broken with data after the break, damaged free space, a damaged
   * closing slot, or a ring whose headers cannot all be true.
   */
  damagedSectors: number;
  /** Records cut short by a power cut during their append (which never returned), found at recovery (this boot); never delivered. */
  torn: number;
  /** Acknowledged records not yet recorded on flash: after a reboot they are delivered again. */
  unpersistedAcks: number;
  sectors: number;
  usedSectors: number;
}

export const DEFAULT_MAX_UNPERSISTED_ACKS = 16;
/**
 * Default `ackRideFrom`, measured on the MQTT drain (one ack per record,
 * 64 × 4 KiB, plain, 16-byte records; docs/spec/outbox.md, "Cost model"):
 * write amplification 1.636 at 1 (an ack field on every append), 1.510 at
 * 2, 1.448 at 4, 1.415 at 8, 1.405 at 12, 1.400 at 16. Past 10, workloads
 * that ack 10 at a time (W2, bursts of 10) stop carrying them on the next
 * append and pay an ack entry of their own (burst 10: 1.410 → 1.414), and a
 * reboot may bring back twice as many records; 8 keeps W2 as it was.
 */
export const DEFAULT_ACK_RIDE_FROM = 8;

const MIN_BLOCK_LENGTH = 128;

export class Outbox {
  private readonly ring: Ring;
  private readonly maxUnpersistedAcks: number;
  private readonly ackRideFrom: number;
  private cursor: Cursor | undefined;
  /** Sequence number of the last record `peek`/`next` returned since the last `peek`. */
  private lastReturned: number | undefined;

  private constructor(flash: FlashPartition, options: OutboxOptions) {
    const status = flash.status();
    const policy = options.policy ?? 'drop-oldest';
    this.maxUnpersistedAcks = options.maxUnpersistedAcks ?? DEFAULT_MAX_UNPERSISTED_ACKS;
    if (policy !== 'drop-oldest' && policy !== 'reject') throw new RangeError(`unknown full policy ${String(policy)}`);
    if (!Number.isInteger(this.maxUnpersistedAcks) || this.maxUnpersistedAcks < 0) {
      throw new RangeError(`maxUnpersistedAcks must be a non-negative integer, got ${this.maxUnpersistedAcks}`);
    }
    const rideLimit = Math.max(1, this.maxUnpersistedAcks);
    this.ackRideFrom = options.ackRideFrom ?? Math.min(DEFAULT_ACK_RIDE_FROM, rideLimit);
    if (!Number.isInteger(this.ackRideFrom) || this.ackRideFrom < 1 || this.ackRideFrom > rideLimit) {
      throw new RangeError(`ackRideFrom must be an integer from 1 to ${rideLimit} (maxUnpersistedAcks), got ${String(this.ackRideFrom)}`);
    }
    checkGeometry(status.size, status.blockLength, status.blocks, status.writeAlign, status.eraseValue);
    this.ring = new Ring(flash, policy);
  }

  /**
   * Mount the outbox on `flash`. A blank partition is an empty outbox.
   * Throws StorageError 'format-too-new' or 'not-formatted' without writing.
   */
  static open(flash: FlashPartition, options: OutboxOptions = {}): Outbox {
    const outbox = new Outbox(flash, options);
    recover(outbox.ring);
    return outbox;
  }

  /** Erase every sector: an empty outbox (the dropped count starts again at 0). */
  static format(flash: FlashPartition): void {
    const status = flash.status();
    checkGeometry(status.size, status.blockLength, status.blocks, status.writeAlign, status.eraseValue);
    for (let block = 0; block < status.blocks; block++) flash.eraseBlock(block);
  }

  /** Largest payload an append accepts on this partition. */
  get maxPayload(): number {
    return this.ring.layout.maxPayload;
  }

  /** Append a record; returns its sequence number once it is durable. */
  append(payload: Uint8Array): number {
    const ring = this.ring;
    if (!(payload instanceof Uint8Array)) throw new TypeError('outbox records are Uint8Array');
    if (payload.length < 1 || payload.length > ring.layout.maxPayload) {
      throw new RangeError(`record of ${payload.length} bytes: the outbox takes 1 to ${ring.layout.maxPayload} bytes`);
    }
    verifyHeadFreeSpace(ring);
    // The ack point rides only once ackRideFrom numbers wait (fewer: at most ackRideFrom - 1 ≤ maxUnpersistedAcks come again after a reboot).
    const ack = seqDiff(ring.ackSeq, ring.durableAckSeq) >= this.ackRideFrom ? ring.ackSeq : undefined;
    if (ring.policy === 'reject' && entryLength(payload.length, ack !== undefined, ring.layout.writeAlign) > ring.layout.closeStart - ring.writeOffset) {
      noteUndeliverableReclaim(ring);
    }
    const total = encodeEntry(ring.entryBuffer, payload, ack, ring.layout.writeAlign, ring.nextSeq);
    writeRecord(ring, total);
    if (ack !== undefined) ring.durableAckSeq = ack;
    const seq = ring.nextSeq;
    ring.nextSeq = seqAdd(seq, 1);
    return seq;
  }

  /** Acknowledge every record up to and including `seq`. */
  ack(seq: number): void {
    const ring = this.ring;
    if (typeof seq !== 'number') throw new TypeError(`sequence numbers are numbers, got ${typeof seq}`);
    if (!Number.isInteger(seq) || seq < 0 || seq > 0xffffffff) throw new RangeError(`bad sequence number ${seq}`);
    if (seqDiff(seq, ring.nextSeq) >= 0) throw new RangeError(`cannot ack ${seq}: the newest record is ${seqAdd(ring.nextSeq, -1)}`);
    const next = seqAdd(seq, 1);
    if (seqDiff(next, ring.ackSeq) <= 0) return;
    ring.ackSeq = next;
    if (seqDiff(ring.ackSeq, ring.durableAckSeq) > this.maxUnpersistedAcks) this.flush();
  }

  /**
   * Record every acknowledgement on flash now (normally they ride on the
   * next append). Where the head has no room for an ack entry, the head's
   * closing slot takes it, or else opening the next sector records it in
   * its header. Acks never cost unacknowledged records: when opening would
   * drop some (a ring full of them), the acks wait for the next append and
   * `stats().unpersistedAcks` says how many are waiting.
   */
  flush(): void {
    const ring = this.ring;
    const head = ring.head;
    if (seqDiff(ring.ackSeq, ring.durableAckSeq) <= 0 || head === undefined) return;
    verifyHeadFreeSpace(ring);
    const { ackEntryLength, closeStart, blockLength, dataStart } = ring.layout;
    // A drop found at recovery must reach a header first: an ack in the head would hide it (ring.droppedUnsaved).
    if (ring.droppedUnsaved) ring.writeOffset = closeStart;
    sealIfDirty(ring, Math.min(ackEntryLength, closeStart - ring.writeOffset));
    if (ackEntryLength <= closeStart - ring.writeOffset) {
      writeAckEntry(ring, head.index * blockLength + ring.writeOffset, ring.nextSeq);
      ring.writeOffset += ackEntryLength;
      return;
    }
    if (ring.closingSlotsUsed === 0 && !ring.droppedUnsaved) {
      writeClosingAck(ring);
      return;
    }
    if (openWouldDrop(ring)) return;
    const plan = planOpen(ring);
    // The reclaim's erase would come before any record of these acks (both closing slots spent by cuts): wait.
    if (reclaimNeedsAcks(ring, plan) && ring.closingSlotsUsed >= CLOSING_SLOTS) return;
    if (reclaimNeedsAcks(ring, plan)) writeClosingAck(ring);
    openSector(ring, plan, dataStart, ring.nextSeq);
    ring.writeOffset = dataStart;
  }

  /** The oldest unacknowledged record, or undefined when none is queued. */
  peek(): OutboxRecord | undefined {
    this.cursor = undefined;
    this.lastReturned = undefined;
    return this.next();
  }

  /**
   * The record after the last one returned by `peek`/`next` (for sending
   * several before their acks arrive), or undefined when caught up.
   */
  next(): OutboxRecord | undefined {
    if (this.ring.head === undefined) return undefined;
    const cursor = this.cursor ?? seek(this.ring, this.ring.ackSeq);
    this.cursor = cursor;
    const record = readAt(this.ring, cursor);
    // Delivery only moves forward; headers that make it circle (they cannot all be true) end it.
    if (record !== undefined && this.lastReturned !== undefined && seqDiff(record.seq, this.lastReturned) <= 0) {
      this.ring.damagedSectors++;
      cursor.seq = this.ring.nextSeq;
      return undefined;
    }
    if (record !== undefined) this.lastReturned = record.seq;
    return record;
  }

  stats(): OutboxStats {
    const ring = this.ring;
    return {
      queued: seqDiff(ring.nextSeq, ring.ackSeq),
      nextSeq: ring.nextSeq,
      ackSeq: ring.ackSeq,
      dropped: ring.dropped,
      corrupt: ring.corrupt,
      lost: ring.lost,
      rejected: ring.rejected,
      damagedSectors: ring.damagedSectors,
      torn: ring.torn,
      unpersistedAcks: seqDiff(ring.ackSeq, ring.durableAckSeq),
      sectors: ring.blocks,
      usedSectors: ring.usedSectors(),
    };
  }

  /**
   * Erase count of every sector as its header on flash records it (-1: no
   * readable header, for example a sector never opened). Reads every header.
   */
  eraseCounts(): number[] {
    const counts: number[] = [];
    for (let index = 0; index < this.ring.blocks; index++) counts.push(this.ring.readStoredHeader(index)?.eraseCount ?? -1);
    return counts;
  }
}

/**
 * Policy reject, before an append that needs a new sector (and before its
 * entry is encoded: delivery reads through the same buffer): when the ring
 * is full and the numbers the reclaim would release hold no record that can
 * still be delivered (a torn append's number, numbers skipped after a torn
 * word, corrupt records), the reclaim may proceed; otherwise the append is
 * refused. Without this, a torn number between the ack point and the
 * oldest sector's end blocks every append for good, since no delivered
 * record can acknowledge it (docs/spec/outbox.md, "Full policy").
 */
function noteUndeliverableReclaim(ring: Ring): void {
  ring.undeliverableUpTo = undefined;
  const end = fullRingReclaimEnd(ring);
  if (end === undefined || seqDiff(end, ring.ackSeq) <= 0) return;
  const first = readAt(ring, seek(ring, ring.ackSeq));
  if (first === undefined || seqDiff(first.seq, end) >= 0) ring.undeliverableUpTo = end;
}

/**
 * Sector sequence numbers must never wrap: opens ≤ erase endurance (~100,000
 * cycles on ESP32) × sectors < 2^32 holds up to this many sectors.
 */
const MAX_SECTORS = 42_000;

function checkGeometry(size: number, blockLength: number, blocks: number, writeAlign: number, eraseValue: number): void {
  if (eraseValue !== 0xff) throw new StorageError('bad-geometry', `erase value 0x${eraseValue.toString(16)}: the outbox needs NOR flash that erases to 0xFF`);
  if (!Number.isInteger(writeAlign) || writeAlign < 1 || writeAlign > 16 || (writeAlign & (writeAlign - 1)) !== 0) {
    throw new StorageError('bad-geometry', `program unit ${writeAlign} is not 1, 2, 4, 8 or 16 bytes`);
  }
  if (!Number.isInteger(blockLength) || blockLength < MIN_BLOCK_LENGTH || blockLength > 0xffff || blockLength % writeAlign !== 0) {
    throw new StorageError('bad-geometry', `sector of ${blockLength} bytes: the outbox needs ${MIN_BLOCK_LENGTH} to 65535 bytes, a multiple of ${writeAlign}`);
  }
  if (!Number.isInteger(blocks) || blocks < 2 || blocks > MAX_SECTORS || size !== blocks * blockLength) {
    throw new StorageError('bad-geometry', `partition of ${size} bytes in ${blocks} sectors: the outbox needs 2 to ${MAX_SECTORS} whole sectors`);
  }
}
