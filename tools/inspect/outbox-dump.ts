/**
 * A human-readable dump of an outbox partition (docs/spec/outbox.md), for
 * debugging failures and inspecting flash images. Reads everything; never
 * writes.
 */
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import {
  CLOSING_SLOTS,
  decodeHeader,
  decodeWord,
  entryChecks,
  entryLength,
  HEADER_LENGTH,
  makeLayout,
  RECORD_HEADER_LENGTH,
} from '../../firmware/storage/outbox-format.ts';

export interface DumpedEntry {
  offset: number;
  /** Position the entry checks against (counted from the sector's firstRecordSeq). */
  seq?: number;
  kind: 'record' | 'ack' | 'bad' | 'erased';
  length?: number;
  ack?: number;
  intact?: boolean;
  spills?: number;
}

export interface DumpedSector {
  index: number;
  header: ReturnType<typeof decodeHeader> | 'erased' | 'unreadable';
  entries: DumpedEntry[];
  /** Each closing slot: erased, an ack entry (its value), or garbage. */
  closingSlots: ('erased' | 'garbage' | number)[];
}

export function dumpOutbox(flash: FlashPartition): DumpedSector[] {
  const status = flash.status();
  const layout = makeLayout(status.blockLength, status.writeAlign);
  const sectors: DumpedSector[] = [];
  const block = new Uint8Array(status.blockLength);
  for (let index = 0; index < status.blocks; index++) {
    flash.read(index * status.blockLength, block);
    const header = block.subarray(0, HEADER_LENGTH).every((b) => b === 0xff) ? 'erased' : (decodeHeader(block) ?? 'unreadable');
    const entries: DumpedEntry[] = [];
    let offset = typeof header === 'object' ? header.firstRecordOffset : layout.dataStart;
    let seq = typeof header === 'object' ? header.firstRecordSeq : 0;
    while (offset + 2 <= layout.closeStart) {
      const entry = decodeWord(block[offset] | (block[offset + 1] << 8));
      if (entry.kind === 'erased') {
        entries.push({ offset, kind: 'erased' });
        break;
      }
      if (entry.kind === 'bad') {
        entries.push({ offset, kind: 'bad' });
        break;
      }
      const total = entryLength(entry.length, entry.hasAck, status.writeAlign);
      const spills = Math.max(0, offset + total - layout.closeStart);
      const ack = entry.hasAck ? new DataView(block.buffer).getUint32(offset + RECORD_HEADER_LENGTH, true) : undefined;
      const intact = spills === 0 ? entryChecks(block.subarray(offset, offset + total), entry.length, entry.hasAck, seq) : undefined;
      entries.push({ offset, seq, kind: entry.length > 0 ? 'record' : 'ack', length: entry.length, ack, intact, spills });
      if (entry.length > 0) seq = (seq + 1) >>> 0;
      offset += total;
    }
    const closingSlots: DumpedSector['closingSlots'] = [];
    for (let i = 0; i < CLOSING_SLOTS; i++) {
      const at = layout.closeStart + i * layout.ackEntryLength;
      const slot = block.subarray(at, at + layout.ackEntryLength);
      const word = decodeWord(slot[0] | (slot[1] << 8));
      if (slot.every((b) => b === 0xff)) closingSlots.push('erased');
      else if (word.kind === 'entry' && word.hasAck && word.length === 0 && typeof header === 'object' && entryChecks(slot, 0, true, header.sectorSeq)) closingSlots.push(new DataView(block.buffer).getUint32(at + RECORD_HEADER_LENGTH, true));
      else closingSlots.push('garbage');
    }
    sectors.push({ index, header, entries, closingSlots });
  }
  return sectors;
}
