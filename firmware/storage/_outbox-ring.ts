/**
 * Internal: the outbox's ring state and its flash helpers, shared by the
 * writer, recovery and reader modules (`_outbox-*.ts`). Not exported from
 * the storage area; `outbox.ts` is the public face.
 */
import type { FlashPartition } from '../hal/flash.ts';
import {
  ACK_FIELD_LENGTH,
  decodeHeader,
  decodeWord,
  entryChecks,
  entryLength,
  HEADER_LENGTH,
  makeLayout,
  OUTBOX_FORMAT_VERSION,
  RECORD_HEADER_LENGTH,
  type Layout,
  type SectorHeader,
} from './outbox-format.ts';

export type FullPolicy = 'drop-oldest' | 'reject';

/** The sector appends go to. */
export interface HeadSector {
  index: number;
  sectorSeq: number;
  eraseCount: number;
  firstRecordSeq: number;
}

/** A live sector as its header describes it (the oldest, or a successor). */
export interface LiveSector {
  index: number;
  sectorSeq: number;
  firstRecordOffset: number;
  firstRecordSeq: number;
}

/** Where delivery stands: the entry at `offset` of sector `index` has sequence number `seq`. */
export interface Cursor {
  index: number;
  sectorSeq: number;
  offset: number;
  seq: number;
}

export class Ring {
  readonly layout: Layout;
  readonly blocks: number;
  readonly unitShift: number;
  readonly entryBuffer: Uint8Array;
  /** Ack-only entries get their own buffer: one may be written while a record waits in entryBuffer. */
  readonly ackBuffer: Uint8Array;
  readonly headerBuffer = new Uint8Array(HEADER_LENGTH);
  readonly wordBuffer = new Uint8Array(RECORD_HEADER_LENGTH + ACK_FIELD_LENGTH);
  /** Scratch for erased-range checks, apart from the buffers that may hold an entry being written. */
  private readonly scanBuffer = new Uint8Array(256);

  head: HeadSector | undefined;
  oldest: LiveSector | undefined;
  writeOffset = 0;
  /** Closing slots of the head sector already written (or unreadable). */
  closingSlotsUsed = 0;
  nextSeq = 0;
  ackSeq = 0;
  durableAckSeq = 0;
  dropped = 0;
  corrupt = 0;
  lost = 0;
  rejected = 0;
  damagedSectors = 0;
  /** Records cut short by a power cut while being appended, found at recovery (their append never returned). */
  torn = 0;
  /** A sector whose header was damaged after it was written, rebuilt at recovery and kept in RAM until it is erased. */
  rebuilt: { index: number; header: SectorHeader } | undefined;
  /** A record torn by the last power cut: skipped at delivery without counting it as corrupt. */
  tornSeq: number | undefined;
  /**
   * Records found dropped at recovery are counted in RAM only: until a new
   * sector's header records them, writes open a sector instead of adding to
   * the head (an ack saved in the head would hide the gap at the next boot).
   */
  droppedUnsaved = false;
  /**
   * Policy reject: the oldest sector's end when the numbers from the ack
   * point up to it hold no record that can still be delivered (torn,
   * skipped or corrupt ones only); reclaiming it then loses nothing, and
   * refusing would block appends for good. Set by the append that needs a
   * sector, cleared when one opens.
   */
  undeliverableUpTo: number | undefined;
  /** The head's free space was checked this boot (docs/spec/outbox.md, "Writing"); a sector opened this boot needs no check. */
  headVerified = false;
  /** Delivery has counted `corrupt`/`lost` for every number before this one in this boot (undefined: none yet). */
  reportedUpTo: number | undefined;

  constructor(readonly flash: FlashPartition, readonly policy: FullPolicy) {
    const status = flash.status();
    this.blocks = status.blocks;
    this.layout = makeLayout(status.blockLength, status.writeAlign);
    this.unitShift = Math.log2(status.writeAlign);
    this.entryBuffer = new Uint8Array(entryLength(this.layout.maxPayload, true, status.writeAlign));
    this.ackBuffer = new Uint8Array(this.layout.ackEntryLength);
  }

  /** Sectors from the oldest to the head. */
  usedSectors(): number {
    return this.head && this.oldest ? this.head.sectorSeq - this.oldest.sectorSeq + 1 : 0;
  }

  /** The sector's header: the rebuilt one kept in RAM for a damaged sector, else the one on flash. */
  readHeader(index: number): SectorHeader | undefined {
    if (this.rebuilt !== undefined && this.rebuilt.index === index) return this.rebuilt.header;
    return this.readStoredHeader(index);
  }

  /** The header as flash holds it (never a rebuilt one): what wear accounting reads. */
  readStoredHeader(index: number): SectorHeader | undefined {
    this.flash.read(index * this.layout.blockLength, this.headerBuffer);
    const header = decodeHeader(this.headerBuffer);
    if (header === undefined || header.version !== OUTBOX_FORMAT_VERSION || header.unitShift !== this.unitShift) return undefined;
    // A header that checks but points outside its stream area is not one this outbox wrote.
    const { dataStart, closeStart, writeAlign } = this.layout;
    if (header.firstRecordOffset < dataStart || header.firstRecordOffset > closeStart || header.firstRecordOffset % writeAlign !== 0) return undefined;
    return header;
  }

  unitIsErased(byteOffset: number): boolean {
    const unit = this.entryBuffer.subarray(0, Math.max(RECORD_HEADER_LENGTH, this.layout.writeAlign));
    const sectorEnd = (Math.floor(byteOffset / this.layout.blockLength) * this.layout.blockLength) + this.layout.closeStart;
    const length = Math.min(unit.length, sectorEnd - byteOffset);
    this.flash.read(byteOffset, unit.subarray(0, length));
    return isErased(unit.subarray(0, length));
  }

  /**
   * Keep a rebuilt header for a sector whose header was damaged after it
   * was written (its entries check at the positions its neighbour implies).
   * One is kept at a time; each newly rebuilt sector is reported.
   */
  noteRebuilt(index: number, header: SectorHeader): void {
    if (this.rebuilt?.index !== index) this.damagedSectors++;
    this.rebuilt = { index, header };
  }

  /** Does the entry at `offset` of sector `from`, spilling into sector `into`, check at position `seq`? */
  spanChecks(from: number, offset: number, into: number, length: number, hasAck: boolean, seq: number): boolean {
    const { blockLength, closeStart, dataStart, writeAlign } = this.layout;
    const total = entryLength(length, hasAck, writeAlign);
    const bytes = this.entryBuffer.subarray(0, total);
    const first = closeStart - offset;
    this.flash.read(from * blockLength + offset, bytes.subarray(0, first));
    this.flash.read(into * blockLength + dataStart, bytes.subarray(first));
    return entryChecks(bytes, length, hasAck, seq);
  }

  /** Is there an entry at `byteOffset` that checks at position `seq` and ends inside its sector's stream? */
  firstEntryChecks(byteOffset: number, seq: number): boolean {
    const word = this.wordBuffer.subarray(0, 2);
    this.flash.read(byteOffset, word);
    const entry = decodeWord(word[0] | (word[1] << 8));
    if (entry.kind !== 'entry') return false;
    const total = entryLength(entry.length, entry.hasAck, this.layout.writeAlign);
    return (byteOffset % this.layout.blockLength) + total <= this.layout.closeStart && this.entryChecksAt(byteOffset, entry.length, entry.hasAck, seq);
  }

  /** True when every byte of [byteOffset, byteOffset + length) is erased. */
  rangeIsErased(byteOffset: number, length: number): boolean {
    const chunk = this.scanBuffer;
    for (let at = 0; at < length; at += chunk.length) {
      const part = chunk.subarray(0, Math.min(chunk.length, length - at));
      this.flash.read(byteOffset + at, part);
      if (!isErased(part)) return false;
    }
    return true;
  }

  /** Offset (in the partition) of the last byte of [byteOffset, byteOffset + length) that is not erased, or -1. */
  lastProgrammedByte(byteOffset: number, length: number): number {
    const chunk = this.scanBuffer;
    for (let end = length; end > 0; end -= chunk.length) {
      const size = Math.min(chunk.length, end);
      const part = chunk.subarray(0, size);
      this.flash.read(byteOffset + end - size, part);
      for (let i = size - 1; i >= 0; i--) if (part[i] !== 0xff) return byteOffset + end - size + i;
    }
    return -1;
  }

  entryChecksAt(byteOffset: number, length: number, hasAck: boolean, seq: number): boolean {
    const total = entryLength(length, hasAck, this.layout.writeAlign);
    const bytes = this.entryBuffer.subarray(0, total);
    this.flash.read(byteOffset, bytes);
    return entryChecks(bytes, length, hasAck, seq);
  }
}

export function isErased(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0xff) return false;
  return true;
}

export function readU32(bytes: Uint8Array, at: number): number {
  return (bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24)) >>> 0;
}
