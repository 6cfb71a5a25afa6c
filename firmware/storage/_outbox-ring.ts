/**
 * Internal: the outbox's ring state and its flash helpers, shared by the
 * writer, recovery and reader modules (`_outbox-*.ts`). Not exported from
 * the storage area; `outbox.ts` is the public face.
 */
import type { FlashPartition } from '../hal/flash.ts';
import {
  ACK_FIELD_LENGTH,
  decodeHeader,
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
  /** A record torn by the last power cut: skipped at delivery without counting it as corrupt. */
  tornSeq: number | undefined;

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

  readHeader(index: number): SectorHeader | undefined {
    this.flash.read(index * this.layout.blockLength, this.headerBuffer);
    const header = decodeHeader(this.headerBuffer);
    if (header === undefined || header.version !== OUTBOX_FORMAT_VERSION || header.unitShift !== this.unitShift) return undefined;
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
   * A power cut tears at most the one entry being written, so past the
   * longest entry nothing but erased bytes can follow the break. Data there
   * means damage: records after the break are lost, how many is unknown.
   */
  holdsDataBeyondTornReach(base: number, breakOffset: number): boolean {
    const reach = breakOffset + entryLength(this.layout.maxPayload, true, this.layout.writeAlign);
    const chunk = this.entryBuffer.subarray(0, Math.min(256, this.entryBuffer.length));
    for (let offset = reach; offset < this.layout.closeStart; offset += chunk.length) {
      const part = chunk.subarray(0, Math.min(chunk.length, this.layout.closeStart - offset));
      this.flash.read(base + offset, part);
      if (!isErased(part)) return true;
    }
    return false;
  }

  entryChecksAt(byteOffset: number, length: number, hasAck: boolean): boolean {
    const total = entryLength(length, hasAck, this.layout.writeAlign);
    const bytes = this.entryBuffer.subarray(0, total);
    this.flash.read(byteOffset, bytes);
    return entryChecks(bytes, length, hasAck);
  }
}

export function isErased(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0xff) return false;
  return true;
}

export function readU32(bytes: Uint8Array, at: number): number {
  return (bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24)) >>> 0;
}
