/**
 * Internal: mounting the outbox ring from flash alone (docs/spec/outbox.md,
 * "Recovery"). Reads 8 bytes per sector, then a bounded part of the head
 * sector; writes nothing.
 */
import { seqAdd, seqDiff, seqMax } from '../base/seq.ts';
import { StorageError } from './errors.ts';
import {
  CLOSING_SLOTS,
  decodeHeader,
  decodeWord,
  entryChecks,
  entryLength,
  HEADER_SCAN_LENGTH,
  OUTBOX_FORMAT_VERSION,
  RECORD_HEADER_LENGTH,
  type SectorHeader,
} from './outbox-format.ts';
import { isErased, readU32, type LiveSector, type Ring } from './_outbox-ring.ts';

/** An entry found while walking the head sector. */
interface EntryAt {
  offset: number;
  length: number;
  hasAck: boolean;
  ack: number;
  /** Its position: the record's sequence number (or the next record's, for an ack-only entry). */
  seq: number;
}

/** How the walk of the head ended when the head's stream is used up. */
interface WalkEnd {
  /** The stream area is used up (an entry continues past it, or it ends exactly there). */
  full: boolean;
  /** The entry continuing past the stream area, if any. */
  spill: { offset: number; length: number; hasAck: boolean; seq: number } | undefined;
}

export function recover(ring: Ring): void {
  const head = findHead(ring);
  if (head === undefined) return;
  ring.head = { index: head.index, sectorSeq: head.header.sectorSeq, eraseCount: head.header.eraseCount, firstRecordSeq: head.header.firstRecordSeq };
  ring.oldest = findOldest(ring, head.header);
  ring.dropped = head.header.dropped;
  ring.ackSeq = head.header.ackSeq;
  const end = walkHead(ring, head.header);
  readClosingSlots(ring);
  if (end.full) rebuildDamagedSuccessor(ring, end);
  // Records before the oldest readable sector are gone: dropped unacknowledged (or destroyed with that sector).
  const missing = seqDiff(ring.oldest.firstRecordSeq, ring.ackSeq);
  if (missing > 0) {
    ring.dropped += missing;
    ring.ackSeq = ring.oldest.firstRecordSeq;
    // Only RAM knows this drop: the next write opens a sector, whose header records it (issue 15, defect 10).
    ring.droppedUnsaved = true;
  }
  ring.durableAckSeq = ring.ackSeq;
}

/** Scan 8 bytes of every sector; the newest valid sector is the head. */
function findHead(ring: Ring): { index: number; header: SectorHeader } | undefined {
  const scan = new Uint8Array(HEADER_SCAN_LENGTH);
  const rejectedSeqs: number[] = [];
  for (;;) {
    let best = -1;
    let bestSeq = 0;
    let foreign = 0;
    for (let index = 0; index < ring.blocks; index++) {
      ring.flash.read(index * ring.layout.blockLength, scan);
      if (isErased(scan)) continue;
      const sectorSeq = scan[4] | (scan[5] << 8) | (scan[6] << 16) | ((scan[7] << 24) >>> 0);
      const plausible = scan[0] === OUTBOX_FORMAT_VERSION && scan[1] === ring.unitShift && sectorSeq >= 1 && (sectorSeq - 1) % ring.blocks === index;
      if (!plausible) {
        if (scan[0] > OUTBOX_FORMAT_VERSION && scan[0] !== 0xff) refuseNewerFormat(ring, index);
        foreign++;
        continue;
      }
      if (sectorSeq > bestSeq && !rejectedSeqs.includes(sectorSeq)) {
        best = index;
        bestSeq = sectorSeq;
      }
    }
    if (best < 0) {
      if (foreign + rejectedSeqs.length === 1 && tornFirstOpening(ring)) return undefined;
      if (foreign > 0 || rejectedSeqs.length > 0) {
        throw new StorageError('not-formatted', `no outbox sector in this ${ring.blocks}-sector partition, and ${foreign + rejectedSeqs.length} sectors hold other data: format it first`);
      }
      return undefined;
    }
    const header = ring.readHeader(best);
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
function tornFirstOpening(ring: Ring): boolean {
  const { blockLength, dataStart } = ring.layout;
  const scan = new Uint8Array(HEADER_SCAN_LENGTH);
  for (let index = 1; index < ring.blocks; index++) {
    ring.flash.read(index * blockLength, scan);
    if (!isErased(scan)) return false;
  }
  const rest = new Uint8Array(256);
  for (let offset = dataStart; offset < blockLength; offset += rest.length) {
    const chunk = rest.subarray(0, Math.min(rest.length, blockLength - offset));
    ring.flash.read(offset, chunk);
    if (!isErased(chunk)) return false;
  }
  return true;
}

function refuseNewerFormat(ring: Ring, index: number): void {
  ring.flash.read(index * ring.layout.blockLength, ring.headerBuffer);
  const header = decodeHeader(ring.headerBuffer);
  if (header !== undefined && header.version > OUTBOX_FORMAT_VERSION) {
    throw new StorageError('format-too-new', `sector ${index} holds outbox format ${header.version}; this firmware reads format ${OUTBOX_FORMAT_VERSION}`);
  }
}

/** The oldest live sector: normally the one just after the head, or sector 0 in a ring not yet full. */
function findOldest(ring: Ring, head: SectorHeader): LiveSector {
  for (let sectorSeq = Math.max(1, head.sectorSeq - ring.blocks + 1); sectorSeq < head.sectorSeq; sectorSeq++) {
    const index = (sectorSeq - 1) % ring.blocks;
    const header = ring.readHeader(index);
    if (header !== undefined && header.sectorSeq === sectorSeq) {
      return { index, sectorSeq, firstRecordOffset: header.firstRecordOffset, firstRecordSeq: header.firstRecordSeq };
    }
  }
  return { index: (head.sectorSeq - 1) % ring.blocks, sectorSeq: head.sectorSeq, firstRecordOffset: head.firstRecordOffset, firstRecordSeq: head.firstRecordSeq };
}

/**
 * Walk the head sector's entry headers to find where appends resume and
 * the newest acknowledgement. Only the newest entry can be torn by a cut;
 * an entry that cannot be parsed seals the sector (appends move on).
 */
function walkHead(ring: Ring, header: SectorHeader): WalkEnd {
  const { closeStart, writeAlign } = ring.layout;
  const base = ring.head!.index * ring.layout.blockLength;
  let offset = header.firstRecordOffset;
  let seq = header.firstRecordSeq;
  let last: EntryAt | undefined;
  let lastSeq = seq;
  const acks: EntryAt[] = [];
  let ackEntries = 0;
  let sealed = false;
  /** The walk stopped at bytes that are not an entry (as opposed to an entry continuing into an unopened sector). */
  let unreadable = false;
  let spill: WalkEnd['spill'];
  while (offset < closeStart) {
    const available = Math.min(ring.wordBuffer.length, closeStart - offset);
    const word = ring.wordBuffer.subarray(0, available);
    ring.flash.read(base + offset, word);
    const entry = available >= 2 ? decodeWord(word[0] | (word[1] << 8)) : ({ kind: 'bad' } as const);
    if (isErased(word)) {
      if (!ring.unitIsErased(base + offset)) sealed = unreadable = true;
      break;
    }
    if (entry.kind !== 'entry') {
      sealed = unreadable = true;
      break;
    }
    const total = entryLength(entry.length, entry.hasAck, writeAlign);
    if (offset + total > closeStart) {
      sealed = true; // continues into a sector that was never opened: torn (unless that sector's header is what broke)
      spill = { offset, length: entry.length, hasAck: entry.hasAck, seq };
      break;
    }
    const candidate = { offset, length: entry.length, hasAck: entry.hasAck, ack: entry.hasAck ? readU32(word, RECORD_HEADER_LENGTH) : 0, seq };
    if (entry.hasAck) {
      acks.push(candidate);
      ackEntries++;
    }
    if (acks.length > 2) acks.shift();
    if (entry.length > 0) {
      last = candidate;
      lastSeq = seq;
      seq = seqAdd(seq, 1);
    }
    offset += total;
  }
  ring.nextSeq = seq;
  ring.writeOffset = sealed ? closeStart : offset;
  if (unreadable) {
    // Bytes that are not an entry: a torn append (any bit subset of at most one entry) or damage. The
    // numbers of whatever records the bytes up to the last programmed one may hold are skipped, never
    // handed out again (the skipped numbers show as `lost` at later boots: an upper bound). Programmed
    // bytes beyond one entry's reach are damage, not a cut (issue 15, damage suite).
    const last = ring.lastProgrammedByte(base + offset, closeStart - offset);
    const span = last < 0 ? 0 : last - (base + offset) + 1;
    if (span > ring.entryBuffer.length) ring.damagedSectors++;
    else ring.tornSeq = seq;
    ring.nextSeq = seqAdd(seq, Math.max(1, Math.ceil(span / entryLength(1, false, writeAlign))));
  }
  if (last !== undefined && !ring.entryChecksAt(base + last.offset, last.length, last.hasAck, lastSeq)) ring.tornSeq = lastSeq;
  // No record starts in the head yet: the newest record is the one spilling into it, which a cut may have torn.
  if (last === undefined && header.firstRecordOffset > ring.layout.dataStart) ring.tornSeq = seqAdd(header.firstRecordSeq, -1);
  if (ring.tornSeq !== undefined) ring.torn++;
  // The newest ack-bearing entry that checks holds the largest ack point (acks only grow). Cuts can leave
  // any number of torn ack entries after it (each retry of a cut flush adds one): when both kept
  // candidates fail, walk the head again and check every ack-bearing entry (issue 15, defect 9).
  let checked = false;
  // A newer ack-bearing entry that fails its check is what a cut flush leaves, or damage: reported as torn.
  for (let i = acks.length - 1; i >= 0 && !checked; i--) {
    if (ring.entryChecksAt(base + acks[i].offset, acks[i].length, true, acks[i].seq)) {
      ring.ackSeq = seqMax(ring.ackSeq, acks[i].ack);
      checked = true;
    } else if (acks[i].length === 0 || acks[i].seq !== ring.tornSeq) ring.torn++;
  }
  if (!checked && ackEntries > acks.length) ring.ackSeq = seqMax(ring.ackSeq, newestCheckingAck(ring, header, offset) ?? ring.ackSeq);
  return { full: !unreadable && (spill !== undefined || offset >= closeStart), spill };
}

/**
 * The largest ack field among the entries of the head that check, walking
 * from its first entry up to `end` (where the first walk stopped: every
 * word before it is valid). Undefined when none checks.
 */
function newestCheckingAck(ring: Ring, header: SectorHeader, end: number): number | undefined {
  const base = ring.head!.index * ring.layout.blockLength;
  const word = ring.wordBuffer;
  let offset = header.firstRecordOffset;
  let seq = header.firstRecordSeq;
  let best: number | undefined;
  while (offset < end) {
    ring.flash.read(base + offset, word.subarray(0, 2));
    const entry = decodeWord(word[0] | (word[1] << 8));
    if (entry.kind !== 'entry') break;
    if (entry.hasAck && ring.entryChecksAt(base + offset, entry.length, true, seq)) {
      const ack = readU32(ring.entryBuffer, RECORD_HEADER_LENGTH);
      best = best === undefined ? ack : seqMax(best, ack);
    }
    offset += entryLength(entry.length, entry.hasAck, ring.layout.writeAlign);
    if (entry.length > 0) seq = seqAdd(seq, 1);
  }
  return best;
}

/**
 * The head's stream is used up, so the sector after it may already have
 * been opened. If that sector holds bytes but no readable header, and the
 * entries it must start with check at their positions (the record spilling
 * into it, or its first entry), its header was damaged after it was
 * written: rebuild the header in RAM, report the damage, and make it the
 * head. Otherwise it is a cut opening (torn erase or header) and stays unused.
 */
function rebuildDamagedSuccessor(ring: Ring, end: WalkEnd): void {
  const previous = ring.head!;
  const { blockLength, dataStart, closeStart, writeAlign } = ring.layout;
  const index = (previous.index + 1) % ring.blocks;
  // An erased header area does not settle it: damage can erase a header too. A cut opening leaves no entry
  // that checks at the implied position (a torn erase leaves only stale entries, bound to other numbers).
  if (ring.readHeader(index) !== undefined) return;
  const spill = end.spill;
  const spilled = spill ? entryLength(spill.length, spill.hasAck, writeAlign) - (closeStart - spill.offset) : 0;
  const firstRecordOffset = dataStart + spilled;
  const firstRecordSeq = spill && spill.length > 0 ? seqAdd(spill.seq, 1) : ring.nextSeq;
  if (firstRecordOffset > closeStart) return;
  const header: SectorHeader = {
    version: OUTBOX_FORMAT_VERSION,
    unitShift: ring.unitShift,
    firstRecordOffset,
    sectorSeq: previous.sectorSeq + 1,
    firstRecordSeq,
    ackSeq: ring.ackSeq,
    dropped: ring.dropped,
    eraseCount: previous.eraseCount,
  };
  const spillChecks = spill !== undefined && ring.spanChecks(previous.index, spill.offset, index, spill.length, spill.hasAck, spill.seq);
  if (!spillChecks && !ring.firstEntryChecks(index * blockLength + firstRecordOffset, firstRecordSeq)) return;
  ring.noteRebuilt(index, header);
  ring.head = { index, sectorSeq: header.sectorSeq, eraseCount: header.eraseCount, firstRecordSeq };
  ring.closingSlotsUsed = 0;
  ring.tornSeq = undefined;
  walkHead(ring, header);
  readClosingSlots(ring);
}

/** The head's closing slots: how many are used, and the newest ack they hold. */
function readClosingSlots(ring: Ring): void {
  const { closeStart, ackEntryLength, blockLength } = ring.layout;
  const slot = ring.ackBuffer;
  for (let i = 0; i < CLOSING_SLOTS; i++) {
    ring.flash.read(ring.head!.index * blockLength + closeStart + i * ackEntryLength, slot);
    if (isErased(slot)) break;
    ring.closingSlotsUsed = i + 1;
    const entry = decodeWord(slot[0] | (slot[1] << 8));
    if (entry.kind === 'entry' && entry.hasAck && entry.length === 0 && entryChecks(slot, 0, true, ring.head!.sectorSeq)) {
      ring.ackSeq = seqMax(ring.ackSeq, readU32(slot, RECORD_HEADER_LENGTH));
    }
  }
}
