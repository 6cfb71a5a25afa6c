/**
 * Internal: delivery from the outbox ring (docs/spec/outbox.md, "Delivery"):
 * find the oldest unacknowledged record, then read record after record,
 * across sector boundaries, past damage, never below the ack point.
 */
import { seqAdd, seqDiff, seqMax } from '../base/seq.ts';
import { ACK_FIELD_LENGTH, decodeWord, entryChecks, entryLength, OUTBOX_FORMAT_VERSION, RECORD_HEADER_LENGTH } from './outbox-format.ts';
import type { Cursor, LiveSector, Ring } from './_outbox-ring.ts';

export interface OutboxRecord {
  /** Sequence number (u32, wraps); pass it to `ack`. */
  readonly seq: number;
  readonly payload: Uint8Array;
}

/** Position a cursor on the record with sequence number `target` (or the first after it that exists). */
export function seek(ring: Ring, target: number): Cursor {
  const head = ring.head!;
  const oldest = ring.oldest!;
  if (seqDiff(target, ring.nextSeq) >= 0) return { index: head.index, sectorSeq: head.sectorSeq, offset: ring.writeOffset, seq: ring.nextSeq };
  // Binary search for the last live sector whose first record is at or before `target`.
  let low = 0;
  let high = head.sectorSeq - oldest.sectorSeq;
  let found: Cursor = { index: oldest.index, sectorSeq: oldest.sectorSeq, offset: oldest.firstRecordOffset, seq: oldest.firstRecordSeq };
  while (low <= high) {
    const middle = (low + high) >>> 1;
    const sectorSeq = oldest.sectorSeq + middle;
    const index = (sectorSeq - 1) % ring.blocks;
    const header = ring.readHeader(index);
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
  return skipTo(ring, found, target);
}

/** Advance `cursor` over entry headers (without reading payloads) until it reaches `target`. */
function skipTo(ring: Ring, cursor: Cursor, target: number): Cursor {
  const { closeStart, writeAlign } = ring.layout;
  while (seqDiff(cursor.seq, target) < 0 && cursor.offset < closeStart) {
    const word = ring.wordBuffer.subarray(0, 2);
    if (cursor.offset + 2 > closeStart) break;
    ring.flash.read(cursor.index * ring.layout.blockLength + cursor.offset, word);
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
export function readAt(ring: Ring, cursor: Cursor): OutboxRecord | undefined {
  const { closeStart, writeAlign, dataStart, blockLength } = ring.layout;
  // No honest ring needs more steps than it has entries and sectors: a bound against headers that cannot all be true.
  let steps = ring.blocks * (Math.floor(blockLength / entryLength(1, false, writeAlign)) + 2);
  for (;;) {
    if (seqDiff(cursor.seq, ring.nextSeq) >= 0) return undefined;
    if (--steps < 0) {
      ring.damagedSectors++;
      cursor.seq = ring.nextSeq;
      return undefined;
    }
    keepInsideRing(ring, cursor);
    if (atHeadEnd(ring, cursor)) return undefined;
    const inThisSector = closeStart - cursor.offset;
    if (inThisSector <= 0) {
      moveToSuccessor(ring, cursor);
      continue;
    }
    // The header word itself may straddle the sector end (program unit 1).
    let successor = inThisSector < 2 ? liveSuccessor(ring, cursor) : undefined;
    const word = ring.wordBuffer.subarray(0, 2);
    if (!readSpan(ring, cursor, 0, word, successor)) {
      moveToSuccessor(ring, cursor);
      continue;
    }
    const entry = decodeWord(word[0] | (word[1] << 8));
    if (entry.kind !== 'entry') {
      moveToSuccessor(ring, cursor);
      continue;
    }
    const total = entryLength(entry.length, entry.hasAck, writeAlign);
    const spill = Math.max(0, total - inThisSector);
    const seq = cursor.seq;
    const following = entry.length > 0 ? seqAdd(seq, 1) : seq;
    if (spill > 0) successor ??= liveSuccessor(ring, cursor) ?? rebuildForSpill(ring, cursor, entry.length, entry.hasAck, spill);
    if (spill > 0 && successor === undefined) {
      moveToSuccessor(ring, cursor);
      continue;
    }
    const consistent = spill === 0 || (successor!.firstRecordOffset === dataStart + spill && successor!.firstRecordSeq === following);
    const bytes = ring.entryBuffer.subarray(0, total);
    const intact = consistent && readSpan(ring, cursor, 0, bytes, successor) && entryChecks(bytes, entry.length, entry.hasAck, seq);
    if (spill > 0) {
      Object.assign(cursor, { index: successor!.index, sectorSeq: successor!.sectorSeq, offset: successor!.firstRecordOffset });
      if (!consistent) {
        // Not the entry the next sector continues: everything from here to where it starts is gone.
        const gap = seqDiff(successor!.firstRecordSeq, seq);
        if (gap > 0 && !explainedGap(ring, seq, gap)) countLost(ring, seq, gap);
      }
      cursor.seq = consistent ? following : seqMax(successor!.firstRecordSeq, seq);
    } else {
      cursor.offset += total;
      cursor.seq = following;
    }
    if (entry.length === 0 || seqDiff(seq, ring.ackSeq) < 0) continue;
    if (intact) {
      const start = RECORD_HEADER_LENGTH + (entry.hasAck ? ACK_FIELD_LENGTH : 0);
      return { seq, payload: ring.entryBuffer.slice(start, start + entry.length) };
    }
    // A torn tail (from the last power cut) is expected; anything else failing its check is damage.
    if (consistent && seq !== ring.tornSeq) countCorrupt(ring, seq);
  }
}

/**
 * Read `target.length` bytes of the entry at the cursor, starting `skip`
 * bytes in, continuing into `successor`'s stream area past the sector end.
 * False when the bytes continue past the end and there is no successor.
 */
function readSpan(ring: Ring, cursor: Cursor, skip: number, target: Uint8Array, successor: LiveSector | undefined): boolean {
  const { closeStart, dataStart, blockLength } = ring.layout;
  const inThisSector = Math.max(0, Math.min(target.length, closeStart - cursor.offset - skip));
  if (inThisSector > 0) ring.flash.read(cursor.index * blockLength + cursor.offset + skip, target.subarray(0, inThisSector));
  if (inThisSector === target.length) return true;
  if (successor === undefined) return false;
  ring.flash.read(successor.index * blockLength + dataStart, target.subarray(inThisSector));
  return true;
}

/** Records dropped while the cursor pointed at them: continue at the oldest live record. */
function keepInsideRing(ring: Ring, cursor: Cursor): void {
  const oldest = ring.oldest!;
  if (seqDiff(cursor.seq, oldest.firstRecordSeq) >= 0 && cursor.sectorSeq >= oldest.sectorSeq) return;
  Object.assign(cursor, { index: oldest.index, sectorSeq: oldest.sectorSeq, offset: oldest.firstRecordOffset, seq: oldest.firstRecordSeq });
}

function atHeadEnd(ring: Ring, cursor: Cursor): boolean {
  return cursor.index === ring.head!.index && cursor.sectorSeq === ring.head!.sectorSeq && cursor.offset >= ring.writeOffset;
}

/** The next live sector after the cursor's, if its header is readable. */
function liveSuccessor(ring: Ring, cursor: Cursor): LiveSector | undefined {
  if (cursor.sectorSeq >= ring.head!.sectorSeq) return undefined;
  const sectorSeq = cursor.sectorSeq + 1;
  const index = (sectorSeq - 1) % ring.blocks;
  const header = ring.readHeader(index);
  if (header === undefined || header.sectorSeq !== sectorSeq) return undefined;
  return { index, sectorSeq, firstRecordOffset: header.firstRecordOffset, firstRecordSeq: header.firstRecordSeq };
}

/**
 * The next live sector has no readable header, but the entry spilling into
 * it checks across both sectors: its header was damaged after it was
 * written. Rebuild it from what the spill implies.
 */
function rebuildForSpill(ring: Ring, cursor: Cursor, length: number, hasAck: boolean, spill: number): LiveSector | undefined {
  if (cursor.sectorSeq >= ring.head!.sectorSeq) return undefined;
  const sectorSeq = cursor.sectorSeq + 1;
  const index = (sectorSeq - 1) % ring.blocks;
  const firstRecordSeq = length > 0 ? seqAdd(cursor.seq, 1) : cursor.seq;
  if (ring.layout.dataStart + spill > ring.layout.closeStart) return undefined;
  if (!ring.spanChecks(cursor.index, cursor.offset, index, length, hasAck, cursor.seq)) return undefined;
  return rebuilt(ring, index, sectorSeq, ring.layout.dataStart + spill, firstRecordSeq);
}

/** The stream of the cursor's sector ended exactly at its end: the next sector's first entry starts at dataStart. */
function rebuildAtCleanEnd(ring: Ring, cursor: Cursor): LiveSector | undefined {
  if (cursor.sectorSeq >= ring.head!.sectorSeq || cursor.offset < ring.layout.closeStart) return undefined;
  const sectorSeq = cursor.sectorSeq + 1;
  const index = (sectorSeq - 1) % ring.blocks;
  // A readable header is the truth: only a sector without one is rebuilt (issue 15, defect 11).
  const stored = ring.readHeader(index);
  if (stored !== undefined && stored.sectorSeq === sectorSeq) return undefined;
  if (!ring.firstEntryChecks(index * ring.layout.blockLength + ring.layout.dataStart, cursor.seq)) return undefined;
  return rebuilt(ring, index, sectorSeq, ring.layout.dataStart, cursor.seq);
}

function rebuilt(ring: Ring, index: number, sectorSeq: number, firstRecordOffset: number, firstRecordSeq: number): LiveSector {
  ring.noteRebuilt(index, {
    version: OUTBOX_FORMAT_VERSION,
    unitShift: ring.unitShift,
    firstRecordOffset,
    sectorSeq,
    firstRecordSeq,
    ackSeq: ring.ackSeq,
    dropped: ring.dropped,
    eraseCount: 0,
  });
  return { index, sectorSeq, firstRecordOffset, firstRecordSeq };
}

/** Leave the cursor's sector for the next readable one, counting records lost on the way. */
function moveToSuccessor(ring: Ring, cursor: Cursor): void {
  const repaired = rebuildAtCleanEnd(ring, cursor);
  if (repaired !== undefined) {
    Object.assign(cursor, { index: repaired.index, sectorSeq: repaired.sectorSeq, offset: repaired.firstRecordOffset });
    return;
  }
  for (let sectorSeq = cursor.sectorSeq + 1; sectorSeq <= ring.head!.sectorSeq; sectorSeq++) {
    const index = (sectorSeq - 1) % ring.blocks;
    const header = ring.readHeader(index);
    if (header === undefined || header.sectorSeq !== sectorSeq) continue;
    const gap = seqDiff(header.firstRecordSeq, cursor.seq);
    if (gap > 0 && !explainedGap(ring, cursor.seq, gap)) countLost(ring, cursor.seq, gap);
    Object.assign(cursor, { index, sectorSeq, offset: header.firstRecordOffset, seq: seqMax(header.firstRecordSeq, cursor.seq) });
    return;
  }
  // Nothing readable after it: everything up to the head's position is gone.
  const gap = seqDiff(ring.nextSeq, cursor.seq);
  if (gap > 0 && !explainedGap(ring, cursor.seq, gap)) countLost(ring, cursor.seq, gap);
  cursor.seq = ring.nextSeq;
}

/**
 * Each peek() pass reads the same records again: count a number as lost or
 * corrupt only the first time a pass reaches it in this boot (issue 15,
 * defect 13). Passes move forward in sequence order, so one mark suffices.
 */
function countLost(ring: Ring, from: number, gap: number): void {
  const end = seqAdd(from, gap);
  const start = ring.reportedUpTo === undefined ? from : seqMax(from, ring.reportedUpTo);
  const fresh = seqDiff(end, start);
  if (fresh > 0) ring.lost += fresh;
  ring.reportedUpTo = ring.reportedUpTo === undefined ? end : seqMax(ring.reportedUpTo, end);
}

function countCorrupt(ring: Ring, seq: number): void {
  if (ring.reportedUpTo !== undefined && seqDiff(seq, ring.reportedUpTo) < 0) return;
  ring.corrupt++;
  ring.reportedUpTo = seqAdd(seq, 1);
}

/**
 * The one gap already accounted for: the record torn by the last cut.
 * (After damage in the head sector the gap is an upper bound: the numbers
 * its unknown records may have had are never handed out again.)
 */
function explainedGap(ring: Ring, from: number, gap: number): boolean {
  return gap === 1 && from === ring.tornSeq;
}
