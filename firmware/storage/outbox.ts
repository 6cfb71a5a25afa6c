/**
 * The outbox: a flash-backed ring of telemetry records (docs/spec/outbox.md).
 *
 * - `append` returns once the record is durable; records keep their order.
 * - Delivery reads from the oldest unacknowledged record without removing
 *   it; `ack(seq)` releases every record up to `seq`. Acks ride on the next
 *   append's header (free of extra writes) and are written on their own
 *   once more than `maxUnpersistedAcks` are pending, which bounds the
 *   records delivered again after a reboot.
 * - A full ring drops its oldest sector (`drop-oldest`, counted durably) or
 *   refuses the append (`reject`).
 * - Boot reads 8 bytes per sector plus a bounded part of two or three
 *   sectors; RAM is constant in the number of queued records.
 */
import type { FlashPartition } from '../hal/flash.ts';
import { seqAdd, seqDiff, seqMax } from '../base/seq.ts';
import { StorageError } from './errors.ts';
import {
  ACK_FIELD_LENGTH,
  alignUp,
  CLOSING_SLOTS,
  decodeHeader,
  decodeWord,
  encodeEntry,
  encodeHeader,
  entryChecks,
  entryLength,
  HEADER_LENGTH,
  HEADER_SCAN_LENGTH,
  makeLayout,
  OUTBOX_FORMAT_VERSION,
  RECORD_HEADER_LENGTH,
  type Layout,
  type SectorHeader,
} from './outbox-format.ts';

export type FullPolicy = 'drop-oldest' | 'reject';

export interface OutboxOptions {
  /** What a full ring does with an append: drop its oldest sector (default) or refuse. */
  policy?: FullPolicy;
  /** Acked records that may stay unrecorded on flash (and be delivered again after a reboot). Default 16. */
  maxUnpersistedAcks?: number;
}

export interface OutboxRecord {
  /** Sequence number (u32, wraps); pass it to `ack`. */
  readonly seq: number;
  readonly payload: Uint8Array;
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
   * chain broken with data after the break.
   */
  damagedSectors: number;
  /** Acknowledged records not yet recorded on flash: after a reboot they are delivered again. */
  unpersistedAcks: number;
  sectors: number;
  usedSectors: number;
}

export const DEFAULT_MAX_UNPERSISTED_ACKS = 16;

const MIN_BLOCK_LENGTH = 128;

interface HeadSector {
  index: number;
  sectorSeq: number;
  eraseCount: number;
  firstRecordSeq: number;
}

interface OldestSector {
  index: number;
  sectorSeq: number;
  firstRecordOffset: number;
  firstRecordSeq: number;
}

interface Cursor {
  index: number;
  sectorSeq: number;
  offset: number;
  seq: number;
}

interface OpenPlan {
  index: number;
  sectorSeq: number;
  /** Sequence number the reclaimed sector's successor starts with (ring full only). */
  reclaimEnd: number | undefined;
  successor: OldestSector | undefined;
}

interface EntryAt {
  offset: number;
  length: number;
  hasAck: boolean;
  ack: number;
}

export class Outbox {
  private readonly layout: Layout;
  private readonly blocks: number;
  private readonly unitShift: number;
  private readonly policy: FullPolicy;
  private readonly maxUnpersistedAcks: number;
  private readonly entryBuffer: Uint8Array;
  /** Ack-only entries get their own buffer: one may be written while a record waits in entryBuffer. */
  private readonly ackBuffer: Uint8Array;
  private readonly headerBuffer = new Uint8Array(HEADER_LENGTH);
  private readonly wordBuffer = new Uint8Array(RECORD_HEADER_LENGTH + ACK_FIELD_LENGTH);

  private head: HeadSector | undefined;
  private oldest: OldestSector | undefined;
  private writeOffset = 0;
  /** Closing slots of the head sector already written (or unreadable). */
  private closingSlotsUsed = 0;
  private nextSeq = 0;
  private ackSeq = 0;
  private durableAckSeq = 0;
  private dropped = 0;
  private corrupt = 0;
  private lost = 0;
  private rejected = 0;
  private damagedSectors = 0;
  /** A record torn by the last power cut: skipped at delivery without counting it as corrupt. */
  private tornSeq: number | undefined;
  private cursor: Cursor | undefined;

  private constructor(private readonly flash: FlashPartition, options: OutboxOptions) {
    const status = flash.status();
    this.policy = options.policy ?? 'drop-oldest';
    this.maxUnpersistedAcks = options.maxUnpersistedAcks ?? DEFAULT_MAX_UNPERSISTED_ACKS;
    if (this.policy !== 'drop-oldest' && this.policy !== 'reject') throw new RangeError(`unknown full policy ${String(this.policy)}`);
    if (!Number.isInteger(this.maxUnpersistedAcks) || this.maxUnpersistedAcks < 0) {
      throw new RangeError(`maxUnpersistedAcks must be a non-negative integer, got ${this.maxUnpersistedAcks}`);
    }
    checkGeometry(status.size, status.blockLength, status.blocks, status.writeAlign, status.eraseValue);
    this.blocks = status.blocks;
    this.layout = makeLayout(status.blockLength, status.writeAlign);
    this.unitShift = Math.log2(status.writeAlign);
    this.entryBuffer = new Uint8Array(entryLength(this.layout.maxPayload, true, status.writeAlign));
    this.ackBuffer = new Uint8Array(this.layout.ackEntryLength);
  }

  /**
   * Mount the outbox on `flash`. A blank partition is an empty outbox.
   * Throws StorageError 'format-too-new' or 'not-formatted' without writing.
   */
  static open(flash: FlashPartition, options: OutboxOptions = {}): Outbox {
    const outbox = new Outbox(flash, options);
    outbox.recover();
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
    return this.layout.maxPayload;
  }

  /** Append a record; returns its sequence number once it is durable. */
  append(payload: Uint8Array): number {
    if (!(payload instanceof Uint8Array)) throw new TypeError('outbox records are Uint8Array');
    if (payload.length < 1 || payload.length > this.layout.maxPayload) {
      throw new RangeError(`record of ${payload.length} bytes: the outbox takes 1 to ${this.layout.maxPayload} bytes`);
    }
    const ack = seqDiff(this.ackSeq, this.durableAckSeq) > 0 ? this.ackSeq : undefined;
    const total = encodeEntry(this.entryBuffer, payload, ack, this.layout.writeAlign);
    this.writeRecord(total);
    if (ack !== undefined) this.durableAckSeq = ack;
    const seq = this.nextSeq;
    this.nextSeq = seqAdd(seq, 1);
    return seq;
  }

  /** Acknowledge every record up to and including `seq`. */
  ack(seq: number): void {
    if (typeof seq !== 'number') throw new TypeError(`sequence numbers are numbers, got ${typeof seq}`);
    if (!Number.isInteger(seq) || seq < 0 || seq > 0xffffffff) throw new RangeError(`bad sequence number ${seq}`);
    if (seqDiff(seq, this.nextSeq) >= 0) throw new RangeError(`cannot ack ${seq}: the newest record is ${seqAdd(this.nextSeq, -1)}`);
    const next = seqAdd(seq, 1);
    if (seqDiff(next, this.ackSeq) <= 0) return;
    this.ackSeq = next;
    if (seqDiff(this.ackSeq, this.durableAckSeq) > this.maxUnpersistedAcks) this.flush();
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
    const head = this.head;
    if (seqDiff(this.ackSeq, this.durableAckSeq) <= 0 || head === undefined) return;
    if (this.layout.ackEntryLength <= this.layout.closeStart - this.writeOffset) {
      this.writeAckEntry(head.index * this.layout.blockLength + this.writeOffset);
      this.writeOffset += this.layout.ackEntryLength;
      return;
    }
    if (this.closingSlotsUsed === 0) {
      this.writeClosingAck();
      return;
    }
    if (this.openWouldDrop()) return;
    const plan = this.planOpen();
    if (this.reclaimNeedsAcks(plan)) this.writeClosingAck();
    this.openSector(plan, this.layout.dataStart, this.nextSeq);
    this.writeOffset = this.layout.dataStart;
  }

  /** The oldest unacknowledged record, or undefined when none is queued. */
  peek(): OutboxRecord | undefined {
    this.cursor = undefined;
    return this.next();
  }

  /**
   * The record after the last one returned by `peek`/`next` (for sending
   * several before their acks arrive), or undefined when caught up.
   */
  next(): OutboxRecord | undefined {
    if (this.head === undefined) return undefined;
    const cursor = this.cursor ?? this.seek(this.ackSeq);
    this.cursor = cursor;
    return this.readAt(cursor);
  }

  stats(): OutboxStats {
    return {
      queued: seqDiff(this.nextSeq, this.ackSeq),
      nextSeq: this.nextSeq,
      ackSeq: this.ackSeq,
      dropped: this.dropped,
      corrupt: this.corrupt,
      lost: this.lost,
      rejected: this.rejected,
      damagedSectors: this.damagedSectors,
      unpersistedAcks: seqDiff(this.ackSeq, this.durableAckSeq),
      sectors: this.blocks,
      usedSectors: this.head && this.oldest ? this.head.sectorSeq - this.oldest.sectorSeq + 1 : 0,
    };
  }

  /** Erase count of every sector as its header records it (-1: no readable header). Reads every header. */
  eraseCounts(): number[] {
    const counts: number[] = [];
    for (let index = 0; index < this.blocks; index++) counts.push(this.readHeader(index)?.eraseCount ?? -1);
    return counts;
  }

  // ─── Writing ──────────────────────────────────────────────────────────

  /** Write the encoded record at the head, continuing into a new sector if it does not fit. */
  private writeRecord(total: number): void {
    const { blockLength, closeStart, dataStart } = this.layout;
    if (this.head !== undefined && total <= closeStart - this.writeOffset) {
      this.flash.write(this.head!.index * blockLength + this.writeOffset, this.entryBuffer.subarray(0, total));
      this.writeOffset += total;
      return;
    }
    const plan = this.planOpen();
    const room = this.head === undefined ? 0 : closeStart - this.writeOffset;
    // Acked records only in RAM live in the sector about to be erased: record the acks first.
    if (this.reclaimNeedsAcks(plan)) this.writeClosingAck();
    if (room > 0) this.flash.write(this.head!.index * blockLength + this.writeOffset, this.entryBuffer.subarray(0, room));
    const rest = total - room;
    // A record that began in the old sector is not the new sector's first: that one follows the spilled tail.
    if (room > 0) this.openSector(plan, dataStart + rest, seqAdd(this.nextSeq, 1));
    else this.openSector(plan, dataStart, this.nextSeq);
    this.flash.write(this.head!.index * blockLength + dataStart, this.entryBuffer.subarray(room, total));
    this.writeOffset = dataStart + rest;
  }

  /** Decide which sector opens next; refuses (policy reject) before anything is written. */
  private planOpen(): OpenPlan {
    const head = this.head;
    const index = head === undefined ? 0 : (head.index + 1) % this.blocks;
    const sectorSeq = head === undefined ? 1 : head.sectorSeq + 1;
    const oldest = this.oldest;
    if (head === undefined || oldest === undefined || head.sectorSeq - oldest.sectorSeq + 1 < this.blocks) {
      return { index, sectorSeq, reclaimEnd: undefined, successor: undefined };
    }
    const successor = this.successorOf(oldest);
    const reclaimEnd = successor.firstRecordSeq;
    if (seqDiff(reclaimEnd, this.ackSeq) > 0 && this.policy === 'reject') {
      this.rejected++;
      throw new StorageError('full', `outbox full: ${seqDiff(this.nextSeq, this.ackSeq)} records await acknowledgement (policy reject)`);
    }
    return { index, sectorSeq, reclaimEnd, successor };
  }

  /** True when opening a sector now would drop unacknowledged records or be refused. */
  private openWouldDrop(): boolean {
    const head = this.head;
    const oldest = this.oldest;
    if (head === undefined || oldest === undefined || head.sectorSeq - oldest.sectorSeq + 1 < this.blocks) return false;
    return seqDiff(this.successorOf(oldest).firstRecordSeq, this.ackSeq) > 0;
  }

  private successorOf(oldest: OldestSector): OldestSector {
    const head = this.head!;
    if (oldest.sectorSeq + 1 === head.sectorSeq) {
      return { index: head.index, sectorSeq: head.sectorSeq, firstRecordOffset: this.headFirstRecordOffset(), firstRecordSeq: head.firstRecordSeq };
    }
    const index = (oldest.index + 1) % this.blocks;
    const header = this.readHeader(index);
    if (header === undefined || header.sectorSeq !== oldest.sectorSeq + 1) {
      // A damaged header inside the ring: its records are unreadable; reclaim up to where the next readable sector starts.
      return this.successorOf({ index, sectorSeq: oldest.sectorSeq + 1, firstRecordOffset: 0, firstRecordSeq: oldest.firstRecordSeq });
    }
    return { index, sectorSeq: header.sectorSeq, firstRecordOffset: header.firstRecordOffset, firstRecordSeq: header.firstRecordSeq };
  }

  private headFirstRecordOffset(): number {
    return this.readHeader(this.head!.index)?.firstRecordOffset ?? this.layout.dataStart;
  }

  /**
   * Erase the planned sector and write its header. In a full ring this
   * reclaims the oldest sector: acknowledged records that were only in RAM
   * are first written to the head's closing slot, so a cut right after the
   * erase cannot turn them into "dropped".
   */
  private openSector(plan: OpenPlan, firstRecordOffset: number, firstRecordSeq: number): void {
    const { blockLength, writeAlign } = this.layout;
    const previous = this.readHeader(plan.index);
    const eraseCount = (previous?.eraseCount ?? this.head?.eraseCount ?? 0) + 1;
    this.flash.eraseBlock(plan.index);
    if (plan.reclaimEnd !== undefined && plan.successor !== undefined) {
      const unacked = seqDiff(plan.reclaimEnd, this.ackSeq);
      if (unacked > 0) {
        this.dropped += unacked;
        this.ackSeq = plan.reclaimEnd;
      }
      this.oldest = plan.successor;
    }
    const header: SectorHeader = {
      version: OUTBOX_FORMAT_VERSION,
      unitShift: this.unitShift,
      firstRecordOffset,
      sectorSeq: plan.sectorSeq,
      firstRecordSeq,
      ackSeq: this.ackSeq,
      dropped: this.dropped,
      eraseCount,
    };
    const bytes = new Uint8Array(alignUp(HEADER_LENGTH, writeAlign)).fill(0xff);
    bytes.set(encodeHeader(header));
    this.flash.write(plan.index * blockLength, bytes);
    this.durableAckSeq = this.ackSeq;
    this.head = { index: plan.index, sectorSeq: plan.sectorSeq, eraseCount, firstRecordSeq };
    this.closingSlotsUsed = 0;
    if (this.oldest === undefined) this.oldest = { index: plan.index, sectorSeq: plan.sectorSeq, firstRecordOffset, firstRecordSeq };
  }

  /** True when the sector the plan reclaims holds acknowledged records whose acks are not yet on flash. */
  private reclaimNeedsAcks(plan: OpenPlan): boolean {
    return plan.reclaimEnd !== undefined && seqDiff(seqMin(this.ackSeq, plan.reclaimEnd), this.durableAckSeq) > 0;
  }

  private writeAckEntry(byteOffset: number): void {
    const total = encodeEntry(this.ackBuffer, EMPTY, this.ackSeq, this.layout.writeAlign);
    this.flash.write(byteOffset, this.ackBuffer.subarray(0, total));
    this.durableAckSeq = this.ackSeq;
  }

  /**
   * Write the acks to the head's next closing slot. A flush takes slot 0
   * only, so slot 1 is always free for the write before a reclaim.
   */
  private writeClosingAck(): void {
    // Both slots can be spent only across power cuts in one sector's life; the acks then wait (stats().unpersistedAcks).
    if (this.closingSlotsUsed >= CLOSING_SLOTS) return;
    const slot = this.layout.closeStart + this.closingSlotsUsed * this.layout.ackEntryLength;
    this.closingSlotsUsed++;
    this.writeAckEntry(this.head!.index * this.layout.blockLength + slot);
  }

  // ─── Recovery ─────────────────────────────────────────────────────────

  private recover(): void {
    const head = this.findHead();
    if (head === undefined) return;
    this.head = { index: head.index, sectorSeq: head.header.sectorSeq, eraseCount: head.header.eraseCount, firstRecordSeq: head.header.firstRecordSeq };
    this.oldest = this.findOldest(head.header);
    this.dropped = head.header.dropped;
    this.ackSeq = head.header.ackSeq;
    this.walkHead(head.header);
    this.readClosingSlots();
    // Records before the oldest readable sector are gone: dropped unacknowledged (or destroyed with that sector).
    const missing = seqDiff(this.oldest.firstRecordSeq, this.ackSeq);
    if (missing > 0) {
      this.dropped += missing;
      this.ackSeq = this.oldest.firstRecordSeq;
    }
    this.durableAckSeq = this.ackSeq;
  }

  /** Scan 8 bytes of every sector; the newest valid sector is the head. */
  private findHead(): { index: number; header: SectorHeader } | undefined {
    const scan = new Uint8Array(HEADER_SCAN_LENGTH);
    const rejectedSeqs: number[] = [];
    for (;;) {
      let best = -1;
      let bestSeq = 0;
      let foreign = 0;
      for (let index = 0; index < this.blocks; index++) {
        this.flash.read(index * this.layout.blockLength, scan);
        if (isErased(scan)) continue;
        const sectorSeq = scan[4] | (scan[5] << 8) | (scan[6] << 16) | ((scan[7] << 24) >>> 0);
        const plausible = scan[0] === OUTBOX_FORMAT_VERSION && scan[1] === this.unitShift && sectorSeq >= 1 && (sectorSeq - 1) % this.blocks === index;
        if (!plausible) {
          if (scan[0] > OUTBOX_FORMAT_VERSION && scan[0] !== 0xff) this.refuseNewerFormat(index);
          foreign++;
          continue;
        }
        if (sectorSeq > bestSeq && !rejectedSeqs.includes(sectorSeq)) {
          best = index;
          bestSeq = sectorSeq;
        }
      }
      if (best < 0) {
        if (foreign + rejectedSeqs.length === 1 && this.tornFirstOpening()) return undefined;
        if (foreign > 0 || rejectedSeqs.length > 0) {
          throw new StorageError('not-formatted', `no outbox sector in this ${this.blocks}-sector partition, and ${foreign + rejectedSeqs.length} sectors hold other data: format it first`);
        }
        return undefined;
      }
      const header = this.readHeader(best);
      if (header !== undefined && header.sectorSeq === bestSeq) return { index: best, header };
      rejectedSeqs.push(bestSeq);
    }
  }

  /**
   * The first sector ever opened (sector 0) may be cut while its header is
   * written. If sector 0 holds bytes only inside its header area and the
   * partition is otherwise blank, that is what happened: the outbox is
   * still empty. Anything else unreadable is foreign data and is refused.
   */
  private tornFirstOpening(): boolean {
    const { blockLength, dataStart } = this.layout;
    const scan = new Uint8Array(HEADER_SCAN_LENGTH);
    for (let index = 1; index < this.blocks; index++) {
      this.flash.read(index * blockLength, scan);
      if (!isErased(scan)) return false;
    }
    const rest = new Uint8Array(256);
    for (let offset = dataStart; offset < blockLength; offset += rest.length) {
      const chunk = rest.subarray(0, Math.min(rest.length, blockLength - offset));
      this.flash.read(offset, chunk);
      if (!isErased(chunk)) return false;
    }
    return true;
  }

  private refuseNewerFormat(index: number): void {
    this.flash.read(index * this.layout.blockLength, this.headerBuffer);
    const header = decodeHeader(this.headerBuffer);
    if (header !== undefined && header.version > OUTBOX_FORMAT_VERSION) {
      throw new StorageError('format-too-new', `sector ${index} holds outbox format ${header.version}; this firmware reads format ${OUTBOX_FORMAT_VERSION}`);
    }
  }

  /** The oldest live sector: normally the one just after the head, or sector 0 in a ring not yet full. */
  private findOldest(head: SectorHeader): OldestSector {
    for (let sectorSeq = Math.max(1, head.sectorSeq - this.blocks + 1); sectorSeq < head.sectorSeq; sectorSeq++) {
      const index = (sectorSeq - 1) % this.blocks;
      const header = this.readHeader(index);
      if (header !== undefined && header.sectorSeq === sectorSeq) {
        return { index, sectorSeq, firstRecordOffset: header.firstRecordOffset, firstRecordSeq: header.firstRecordSeq };
      }
    }
    return { index: (head.sectorSeq - 1) % this.blocks, sectorSeq: head.sectorSeq, firstRecordOffset: head.firstRecordOffset, firstRecordSeq: head.firstRecordSeq };
  }

  /**
   * Walk the head sector's entry headers to find where appends resume and
   * the newest acknowledgement. Only the newest entry can be torn by a cut;
   * an entry that cannot be parsed seals the sector (appends move on).
   */
  private walkHead(header: SectorHeader): void {
    const { closeStart, writeAlign } = this.layout;
    const base = this.head!.index * this.layout.blockLength;
    let offset = header.firstRecordOffset;
    let seq = header.firstRecordSeq;
    let last: EntryAt | undefined;
    let lastSeq = seq;
    const acks: EntryAt[] = [];
    let sealed = false;
    while (offset < closeStart) {
      const available = Math.min(this.wordBuffer.length, closeStart - offset);
      const word = this.wordBuffer.subarray(0, available);
      this.flash.read(base + offset, word);
      const entry = available >= 2 ? decodeWord(word[0] | (word[1] << 8)) : ({ kind: 'bad' } as const);
      if (isErased(word)) {
        if (!this.unitIsErased(base + offset)) sealed = true;
        break;
      }
      if (entry.kind !== 'entry') {
        sealed = true;
        break;
      }
      const total = entryLength(entry.length, entry.hasAck, writeAlign);
      if (offset + total > closeStart) {
        sealed = true; // continues into a sector that was never opened: torn
        break;
      }
      const candidate = { offset, length: entry.length, hasAck: entry.hasAck, ack: entry.hasAck ? readU32(word, RECORD_HEADER_LENGTH) : 0 };
      if (entry.hasAck) acks.push(candidate);
      if (acks.length > 2) acks.shift();
      if (entry.length > 0) {
        last = candidate;
        lastSeq = seq;
        seq = seqAdd(seq, 1);
      }
      offset += total;
    }
    this.nextSeq = seq;
    this.writeOffset = sealed ? closeStart : offset;
    if (sealed && this.holdsDataBeyondTornReach(base, offset)) this.damagedSectors++;
    if (last !== undefined && !this.entryChecksAt(base + last.offset, last.length, last.hasAck)) this.tornSeq = lastSeq;
    // No record starts in the head yet: the newest record is the one spilling into it, which a cut may have torn.
    if (last === undefined && header.firstRecordOffset > this.layout.dataStart) this.tornSeq = seqAdd(header.firstRecordSeq, -1);
    for (let i = acks.length - 1; i >= 0; i--) {
      if (this.entryChecksAt(base + acks[i].offset, acks[i].length, true)) {
        this.ackSeq = seqMax(this.ackSeq, acks[i].ack);
        break;
      }
    }
  }

  /** The head's closing slots: how many are used, and the newest ack they hold. */
  private readClosingSlots(): void {
    const { closeStart, ackEntryLength, blockLength } = this.layout;
    const slot = this.ackBuffer;
    for (let i = 0; i < CLOSING_SLOTS; i++) {
      this.flash.read(this.head!.index * blockLength + closeStart + i * ackEntryLength, slot);
      if (isErased(slot)) break;
      this.closingSlotsUsed = i + 1;
      const entry = decodeWord(slot[0] | (slot[1] << 8));
      if (entry.kind === 'entry' && entry.hasAck && entry.length === 0 && entryChecks(slot, 0, true)) {
        this.ackSeq = seqMax(this.ackSeq, readU32(slot, RECORD_HEADER_LENGTH));
      }
    }
  }

  // ─── Delivery ─────────────────────────────────────────────────────────

  /** Position a cursor on the record with sequence number `target` (or the first after it that exists). */
  private seek(target: number): Cursor {
    const head = this.head!;
    const oldest = this.oldest!;
    if (seqDiff(target, this.nextSeq) >= 0) return { index: head.index, sectorSeq: head.sectorSeq, offset: this.writeOffset, seq: this.nextSeq };
    // Binary search for the last live sector whose first record is at or before `target`.
    let low = 0;
    let high = head.sectorSeq - oldest.sectorSeq;
    let found: Cursor = { index: oldest.index, sectorSeq: oldest.sectorSeq, offset: oldest.firstRecordOffset, seq: oldest.firstRecordSeq };
    while (low <= high) {
      const middle = (low + high) >>> 1;
      const sectorSeq = oldest.sectorSeq + middle;
      const index = (sectorSeq - 1) % this.blocks;
      const header = this.readHeader(index);
      if (header === undefined || header.sectorSeq !== sectorSeq) {
        high = middle - 1; // unreadable: look earlier; the reader steps over it later
        continue;
      }
      if (seqDiff(header.firstRecordSeq, target) <= 0) {
        found = { index, sectorSeq, offset: header.firstRecordOffset, seq: header.firstRecordSeq };
        low = middle + 1;
      } else {
        high = middle - 1;
      }
    }
    return this.skipTo(found, target);
  }

  /** Advance `cursor` over entry headers (without reading payloads) until it reaches `target`. */
  private skipTo(cursor: Cursor, target: number): Cursor {
    const { closeStart, writeAlign } = this.layout;
    while (seqDiff(cursor.seq, target) < 0 && cursor.offset < closeStart) {
      const word = this.wordBuffer.subarray(0, 2);
      if (cursor.offset + 2 > closeStart) break;
      this.flash.read(cursor.index * this.layout.blockLength + cursor.offset, word);
      const entry = decodeWord(word[0] | (word[1] << 8));
      if (entry.kind !== 'entry') break;
      const total = entryLength(entry.length, entry.hasAck, writeAlign);
      if (cursor.offset + total > closeStart) break; // the target is in a later sector: readAt moves on
      cursor.offset += total;
      if (entry.length > 0) cursor.seq = seqAdd(cursor.seq, 1);
    }
    return cursor;
  }

  /** Read the record at the cursor, moving past ack entries, damage and sector ends; advances the cursor. */
  private readAt(cursor: Cursor): OutboxRecord | undefined {
    const { closeStart, writeAlign, dataStart } = this.layout;
    for (;;) {
      if (seqDiff(cursor.seq, this.nextSeq) >= 0) return undefined;
      this.keepInsideRing(cursor);
      if (this.atHeadEnd(cursor)) return undefined;
      const inThisSector = closeStart - cursor.offset;
      if (inThisSector <= 0) {
        this.moveToSuccessor(cursor);
        continue;
      }
      // The header word itself may straddle the sector end (program unit 1).
      let successor = inThisSector < 2 ? this.liveSuccessor(cursor) : undefined;
      const word = this.wordBuffer.subarray(0, 2);
      if (!this.readSpan(cursor, 0, word, successor)) {
        this.moveToSuccessor(cursor);
        continue;
      }
      const entry = decodeWord(word[0] | (word[1] << 8));
      if (entry.kind !== 'entry') {
        this.moveToSuccessor(cursor);
        continue;
      }
      const total = entryLength(entry.length, entry.hasAck, writeAlign);
      const spill = Math.max(0, total - inThisSector);
      const seq = cursor.seq;
      const following = entry.length > 0 ? seqAdd(seq, 1) : seq;
      if (spill > 0) successor ??= this.liveSuccessor(cursor);
      if (spill > 0 && successor === undefined) {
        this.moveToSuccessor(cursor);
        continue;
      }
      const consistent = spill === 0 || (successor!.firstRecordOffset === dataStart + spill && successor!.firstRecordSeq === following);
      const bytes = this.entryBuffer.subarray(0, total);
      const intact = consistent && this.readSpan(cursor, 0, bytes, successor) && entryChecks(bytes, entry.length, entry.hasAck);
      if (spill > 0) {
        Object.assign(cursor, { index: successor!.index, sectorSeq: successor!.sectorSeq, offset: successor!.firstRecordOffset });
        cursor.seq = consistent ? following : seqMax(successor!.firstRecordSeq, seq);
      } else {
        cursor.offset += total;
        cursor.seq = following;
      }
      if (entry.length === 0 || seqDiff(seq, this.ackSeq) < 0) continue;
      if (intact) {
        const start = RECORD_HEADER_LENGTH + (entry.hasAck ? ACK_FIELD_LENGTH : 0);
        return { seq, payload: this.entryBuffer.slice(start, start + entry.length) };
      }
      // A torn tail (from the last power cut) is expected; anything else failing its check is damage.
      if (consistent && seq !== this.tornSeq) this.corrupt++;
    }
  }

  /**
   * Read `target.length` bytes of the entry at the cursor, starting `skip`
   * bytes in, continuing into `successor`'s stream area past the sector end.
   * False when the bytes continue past the end and there is no successor.
   */
  private readSpan(cursor: Cursor, skip: number, target: Uint8Array, successor: OldestSector | undefined): boolean {
    const { closeStart, dataStart, blockLength } = this.layout;
    const inThisSector = Math.max(0, Math.min(target.length, closeStart - cursor.offset - skip));
    if (inThisSector > 0) this.flash.read(cursor.index * blockLength + cursor.offset + skip, target.subarray(0, inThisSector));
    if (inThisSector === target.length) return true;
    if (successor === undefined) return false;
    this.flash.read(successor.index * blockLength + dataStart, target.subarray(inThisSector));
    return true;
  }

  /** Records dropped while the cursor pointed at them: continue at the oldest live record. */
  private keepInsideRing(cursor: Cursor): void {
    const oldest = this.oldest!;
    if (seqDiff(cursor.seq, oldest.firstRecordSeq) >= 0 && cursor.sectorSeq >= oldest.sectorSeq) return;
    Object.assign(cursor, { index: oldest.index, sectorSeq: oldest.sectorSeq, offset: oldest.firstRecordOffset, seq: oldest.firstRecordSeq });
  }

  private atHeadEnd(cursor: Cursor): boolean {
    return cursor.index === this.head!.index && cursor.sectorSeq === this.head!.sectorSeq && cursor.offset >= this.writeOffset;
  }

  /** The next live sector after the cursor's, if its header is readable. */
  private liveSuccessor(cursor: Cursor): OldestSector | undefined {
    if (cursor.sectorSeq >= this.head!.sectorSeq) return undefined;
    const sectorSeq = cursor.sectorSeq + 1;
    const index = (sectorSeq - 1) % this.blocks;
    const header = this.readHeader(index);
    if (header === undefined || header.sectorSeq !== sectorSeq) return undefined;
    return { index, sectorSeq, firstRecordOffset: header.firstRecordOffset, firstRecordSeq: header.firstRecordSeq };
  }

  /** Leave the cursor's sector for the next readable one, counting records lost on the way. */
  private moveToSuccessor(cursor: Cursor): void {
    for (let sectorSeq = cursor.sectorSeq + 1; sectorSeq <= this.head!.sectorSeq; sectorSeq++) {
      const index = (sectorSeq - 1) % this.blocks;
      const header = this.readHeader(index);
      if (header === undefined || header.sectorSeq !== sectorSeq) continue;
      const gap = seqDiff(header.firstRecordSeq, cursor.seq);
      if (gap > 0 && !(gap === 1 && cursor.seq === this.tornSeq)) this.lost += gap;
      Object.assign(cursor, { index, sectorSeq, offset: header.firstRecordOffset, seq: seqMax(header.firstRecordSeq, cursor.seq) });
      return;
    }
    // Nothing readable after it: everything up to the head's position is gone.
    this.lost += Math.max(0, seqDiff(this.nextSeq, cursor.seq));
    cursor.seq = this.nextSeq;
  }

  // ─── Flash helpers ────────────────────────────────────────────────────

  private readHeader(index: number): SectorHeader | undefined {
    this.flash.read(index * this.layout.blockLength, this.headerBuffer);
    const header = decodeHeader(this.headerBuffer);
    if (header === undefined || header.version !== OUTBOX_FORMAT_VERSION || header.unitShift !== this.unitShift) return undefined;
    return header;
  }

  private unitIsErased(byteOffset: number): boolean {
    const unit = this.entryBuffer.subarray(0, Math.max(RECORD_HEADER_LENGTH, this.layout.writeAlign));
    const sectorEnd = (Math.floor(byteOffset / this.layout.blockLength) * this.layout.blockLength) + this.layout.closeStart;
    const length = Math.min(unit.length, sectorEnd - byteOffset);
    this.flash.read(byteOffset, unit.subarray(0, length));
    return isErased(unit.subarray(0, length));
  }

  /**
   * A power cut tears at most the one entry being written, so past the
   * longest entry nothing but erased bytes can follow the break. Data there
   * means damage: records after the break are lost, how many is unknown.
   */
  private holdsDataBeyondTornReach(base: number, breakOffset: number): boolean {
    const reach = breakOffset + entryLength(this.layout.maxPayload, true, this.layout.writeAlign);
    const chunk = this.entryBuffer.subarray(0, Math.min(256, this.entryBuffer.length));
    for (let offset = reach; offset < this.layout.closeStart; offset += chunk.length) {
      const part = chunk.subarray(0, Math.min(chunk.length, this.layout.closeStart - offset));
      this.flash.read(base + offset, part);
      if (!isErased(part)) return true;
    }
    return false;
  }

  private entryChecksAt(byteOffset: number, length: number, hasAck: boolean): boolean {
    const total = entryLength(length, hasAck, this.layout.writeAlign);
    const bytes = this.entryBuffer.subarray(0, total);
    this.flash.read(byteOffset, bytes);
    return entryChecks(bytes, length, hasAck);
  }
}

const EMPTY = new Uint8Array(0);

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

function isErased(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0xff) return false;
  return true;
}

function readU32(bytes: Uint8Array, at: number): number {
  return (bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24)) >>> 0;
}

function seqMin(a: number, b: number): number {
  return seqDiff(a, b) <= 0 ? a : b;
}
