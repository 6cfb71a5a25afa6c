/**
 * Internal: writing to the outbox ring (docs/spec/outbox.md, "Writing"):
 * records at the head, records continuing into a newly opened sector, the
 * reclaim of the oldest sector, and ack entries.
 */
import { seqAdd, seqDiff } from '../base/seq.ts';
import { StorageError } from './errors.ts';
import { alignUp, CLOSING_SLOTS, encodeEntry, encodeHeader, entryLength, HEADER_LENGTH, OUTBOX_FORMAT_VERSION, type SectorHeader } from './outbox-format.ts';
import type { LiveSector, Ring } from './_outbox-ring.ts';

/** The sector to open next and, in a full ring, what reclaiming the oldest releases. */
export interface OpenPlan {
  index: number;
  sectorSeq: number;
  /** Sequence number the reclaimed sector's successor starts with (ring full only). */
  reclaimEnd: number | undefined;
  successor: LiveSector | undefined;
}

export const EMPTY = new Uint8Array(0);

/** Write the encoded record at the head, continuing into a new sector if it does not fit. */
export function writeRecord(ring: Ring, total: number): void {
  const { blockLength, closeStart, dataStart } = ring.layout;
  if (ring.head !== undefined && ring.droppedUnsaved) ring.writeOffset = closeStart;
  if (ring.head !== undefined) sealIfDirty(ring, Math.min(total, closeStart - ring.writeOffset));
  if (ring.head !== undefined && total <= closeStart - ring.writeOffset) {
    ring.flash.write(ring.head!.index * blockLength + ring.writeOffset, ring.entryBuffer.subarray(0, total));
    ring.writeOffset += total;
    return;
  }
  const plan = planOpen(ring);
  const room = ring.head === undefined ? 0 : closeStart - ring.writeOffset;
  // Acked records only in RAM live in the sector about to be erased: record the acks first.
  if (reclaimNeedsAcks(ring, plan)) writeClosingAck(ring);
  if (room > 0) ring.flash.write(ring.head!.index * blockLength + ring.writeOffset, ring.entryBuffer.subarray(0, room));
  const rest = total - room;
  // A record that began in the old sector is not the new sector's first: that one follows the spilled tail.
  if (room > 0) openSector(ring, plan, dataStart + rest, seqAdd(ring.nextSeq, 1));
  else openSector(ring, plan, dataStart, ring.nextSeq);
  ring.flash.write(ring.head!.index * blockLength + dataStart, ring.entryBuffer.subarray(room, total));
  ring.writeOffset = dataStart + rest;
}

/**
 * Free space must read erased before it is programmed: damage there (a bit
 * flipped, outside writes) would corrupt the new entry, and on an encrypted
 * partition the write would be refused. Damaged free space ends the sector.
 */
export function sealIfDirty(ring: Ring, length: number): void {
  if (length <= 0 || ring.rangeIsErased(ring.head!.index * ring.layout.blockLength + ring.writeOffset, length)) return;
  ring.damagedSectors++;
  ring.writeOffset = ring.layout.closeStart;
}

/**
 * Once per boot, before the first write after recovery: the head's stream
 * past the write offset must read erased. Recovery stops at the first
 * erased entry position and reads no further (bounded boot); bytes beyond
 * it are the leftovers of a torn write (any bit subset of an entry of at
 * most the largest entry's length) or damage such as an erased hole in the
 * middle of the head's records. Either way the head is sealed and the
 * numbers the bytes could hold are skipped, so no number is handed out
 * twice. Bytes within one entry's length are reported as torn, bytes
 * reaching further as damage.
 */
export function verifyHeadFreeSpace(ring: Ring): void {
  const head = ring.head;
  if (ring.headVerified || head === undefined) return;
  ring.headVerified = true;
  const { blockLength, closeStart, writeAlign } = ring.layout;
  const from = head.index * blockLength + ring.writeOffset;
  if (ring.writeOffset >= closeStart) return;
  const last = ring.lastProgrammedByte(from, closeStart - ring.writeOffset);
  if (last < 0) return;
  const span = last - from + 1;
  // Within one entry's reach: what a torn append leaves (damage looks the same), reported as torn.
  if (span > ring.entryBuffer.length) ring.damagedSectors++;
  else ring.torn++;
  ring.nextSeq = seqAdd(ring.nextSeq, Math.ceil(span / entryLength(1, false, writeAlign)));
  ring.writeOffset = closeStart;
}

/** Decide which sector opens next; refuses (policy reject) before anything is written. */
export function planOpen(ring: Ring): OpenPlan {
  const head = ring.head;
  const index = head === undefined ? 0 : (head.index + 1) % ring.blocks;
  const sectorSeq = head === undefined ? 1 : head.sectorSeq + 1;
  const oldest = ring.oldest;
  if (head === undefined || oldest === undefined || head.sectorSeq - oldest.sectorSeq + 1 < ring.blocks) {
    return { index, sectorSeq, reclaimEnd: undefined, successor: undefined };
  }
  const successor = successorOf(ring, oldest);
  const reclaimEnd = successor.firstRecordSeq;
  if (seqDiff(reclaimEnd, ring.ackSeq) > 0 && ring.policy === 'reject' && ring.undeliverableUpTo !== reclaimEnd) {
    ring.rejected++;
    throw new StorageError('full', `outbox full: ${seqDiff(ring.nextSeq, ring.ackSeq)} records await acknowledgement (policy reject)`);
  }
  return { index, sectorSeq, reclaimEnd, successor };
}

/** In a full ring, where the oldest sector's records end (its successor's firstRecordSeq); undefined when not full. */
export function fullRingReclaimEnd(ring: Ring): number | undefined {
  const head = ring.head;
  const oldest = ring.oldest;
  if (head === undefined || oldest === undefined || head.sectorSeq - oldest.sectorSeq + 1 < ring.blocks) return undefined;
  return successorOf(ring, oldest).firstRecordSeq;
}

/** True when opening a sector now would drop unacknowledged records or be refused. */
export function openWouldDrop(ring: Ring): boolean {
  const head = ring.head;
  const oldest = ring.oldest;
  if (head === undefined || oldest === undefined || head.sectorSeq - oldest.sectorSeq + 1 < ring.blocks) return false;
  return seqDiff(successorOf(ring, oldest).firstRecordSeq, ring.ackSeq) > 0;
}

function successorOf(ring: Ring, oldest: LiveSector): LiveSector {
  const head = ring.head!;
  if (oldest.sectorSeq + 1 === head.sectorSeq) {
    return { index: head.index, sectorSeq: head.sectorSeq, firstRecordOffset: headFirstRecordOffset(ring), firstRecordSeq: head.firstRecordSeq };
  }
  const index = (oldest.index + 1) % ring.blocks;
  const header = ring.readHeader(index);
  if (header === undefined || header.sectorSeq !== oldest.sectorSeq + 1) {
    // A damaged header inside the ring: its records are unreadable; reclaim up to where the next readable sector starts.
    return successorOf(ring, { index, sectorSeq: oldest.sectorSeq + 1, firstRecordOffset: 0, firstRecordSeq: oldest.firstRecordSeq });
  }
  return { index, sectorSeq: header.sectorSeq, firstRecordOffset: header.firstRecordOffset, firstRecordSeq: header.firstRecordSeq };
}

function headFirstRecordOffset(ring: Ring): number {
  return ring.readHeader(ring.head!.index)?.firstRecordOffset ?? ring.layout.dataStart;
}

/**
 * Erase the planned sector and write its header. In a full ring this
 * reclaims the oldest sector: acknowledged records that were only in RAM
 * are first written to the head's closing slot, so a cut right after the
 * erase cannot turn them into "dropped".
 */
export function openSector(ring: Ring, plan: OpenPlan, firstRecordOffset: number, firstRecordSeq: number): void {
  const { blockLength, writeAlign } = ring.layout;
  const eraseCount = nextEraseCount(ring, plan);
  ring.flash.eraseBlock(plan.index);
  if (ring.rebuilt?.index === plan.index) ring.rebuilt = undefined;
  if (plan.reclaimEnd !== undefined && plan.successor !== undefined) {
    const unacked = seqDiff(plan.reclaimEnd, ring.ackSeq);
    if (unacked > 0) {
      ring.dropped += unacked;
      ring.ackSeq = plan.reclaimEnd;
    }
    ring.oldest = plan.successor;
  }
  const header: SectorHeader = {
    version: OUTBOX_FORMAT_VERSION,
    unitShift: ring.unitShift,
    firstRecordOffset,
    sectorSeq: plan.sectorSeq,
    firstRecordSeq,
    ackSeq: ring.ackSeq,
    dropped: ring.dropped,
    eraseCount,
  };
  const bytes = new Uint8Array(alignUp(HEADER_LENGTH, writeAlign)).fill(0xff);
  bytes.set(encodeHeader(header));
  ring.flash.write(plan.index * blockLength, bytes);
  ring.durableAckSeq = ring.ackSeq;
  ring.head = { index: plan.index, sectorSeq: plan.sectorSeq, eraseCount, firstRecordSeq };
  ring.closingSlotsUsed = 0;
  ring.droppedUnsaved = false;
  ring.headVerified = true;
  ring.undeliverableUpTo = undefined;
  if (ring.oldest === undefined) ring.oldest = { index: plan.index, sectorSeq: plan.sectorSeq, firstRecordOffset, firstRecordSeq };
}

/**
 * The sector's erase count after the erase about to happen: the count its
 * header on flash records, plus 1. Only when that header is unreadable (a
 * blank sector, a cut opening, damage) is it estimated: the number of times
 * the rotation has reached this index (sectorSeq arithmetic), or the head's
 * count (+1 once the rotation wraps past index 0), whichever is larger
 * (docs/spec/outbox.md, "Sector header", eraseCount).
 */
function nextEraseCount(ring: Ring, plan: OpenPlan): number {
  const previous = ring.readStoredHeader(plan.index);
  if (previous !== undefined) return previous.eraseCount + 1;
  const laps = Math.floor((plan.sectorSeq - 1) / ring.blocks) + 1;
  const head = ring.head;
  const fromHead = head === undefined ? 1 : head.eraseCount + (plan.index <= head.index ? 1 : 0);
  return Math.max(laps, fromHead);
}

/** True when the sector the plan reclaims holds acknowledged records whose acks are not yet on flash. */
export function reclaimNeedsAcks(ring: Ring, plan: OpenPlan): boolean {
  return plan.reclaimEnd !== undefined && seqDiff(seqMin(ring.ackSeq, plan.reclaimEnd), ring.durableAckSeq) > 0;
}

/** Write an ack-only entry at `byteOffset`; `position` is what its CRC binds it to (docs/spec/outbox.md). */
export function writeAckEntry(ring: Ring, byteOffset: number, position: number): void {
  const total = encodeEntry(ring.ackBuffer, EMPTY, ring.ackSeq, ring.layout.writeAlign, position);
  ring.flash.write(byteOffset, ring.ackBuffer.subarray(0, total));
  ring.durableAckSeq = ring.ackSeq;
}

/**
 * Write the acks to the head's next closing slot. A flush takes slot 0
 * only, so slot 1 is always free for the write before a reclaim.
 */
export function writeClosingAck(ring: Ring): void {
  // Both slots can be spent only across power cuts in one sector's life; the acks then wait (stats().unpersistedAcks).
  const { closeStart, ackEntryLength, blockLength } = ring.layout;
  while (ring.closingSlotsUsed < CLOSING_SLOTS) {
    const slot = ring.head!.index * blockLength + closeStart + ring.closingSlotsUsed * ackEntryLength;
    ring.closingSlotsUsed++;
    if (!ring.rangeIsErased(slot, ackEntryLength)) continue; // damaged: skip it
    writeAckEntry(ring, slot, ring.head!.sectorSeq);
    return;
  }
}

function seqMin(a: number, b: number): number {
  return seqDiff(a, b) <= 0 ? a : b;
}
