/**
 * The outbox's on-flash format, version 2 (docs/spec/outbox.md is normative).
 * Pure encoding and decoding; no flash access here.
 *
 * Little-endian throughout. A sector (erase block) holds a header, then a
 * stream area of records, then a closing ack slot:
 *
 *   0            dataStart                               closeStart   blockLength
 *   | header (28) | records … (a record may continue into | 2 closing  |
 *   |  + pad      |  the next sector's stream area)       | ack slots  |
 */
import { crc32, crc32Final, crc32Init, crc32Update } from '../base/crc32.ts';
import { FORMAT_VERSIONS } from '../base/format-versions.ts';

export const OUTBOX_FORMAT_VERSION = FORMAT_VERSIONS.outbox;

/**
 * Ack entries at the end of each sector, outside the record stream: one for
 * a flush that finds the stream full, one for the acks that must be on flash
 * before the oldest sector is erased (docs/spec/outbox.md, "Closing slots").
 */
export const CLOSING_SLOTS = 2;

/** Header bytes read per sector by the boot scan: version, unitShift, firstRecordOffset, sectorSeq. */
export const HEADER_SCAN_LENGTH = 8;
export const HEADER_LENGTH = 28;
/** Entry header: the 16-bit word, then the entry's CRC-32 (format 2; format 1 had a CRC-16 here). */
export const RECORD_HEADER_LENGTH = 6;
/** Where an entry's CRC-32 sits: right after the word. */
const ENTRY_CRC_OFFSET = 2;
export const ACK_FIELD_LENGTH = 4;
/** Largest payload the length field can carry; a geometry may allow less. */
export const MAX_PAYLOAD_FIELD = 0x7ff;

const LENGTH_MASK = 0x7ff;
const HAS_ACK = 0x800;

export interface SectorHeader {
  version: number;
  /** log2 of the program unit the sector was written with. */
  unitShift: number;
  /** Offset in the sector of the first entry (record or ack-only) that starts in it. */
  firstRecordOffset: number;
  /** Opening order of sectors: 1 for the first sector ever opened, +1 per opening. */
  sectorSeq: number;
  /** Sequence number of the record at firstRecordOffset (u32, wraps). */
  firstRecordSeq: number;
  /** Every record before this sequence number was acknowledged when the sector was opened. */
  ackSeq: number;
  /** Records dropped unacknowledged since the outbox was formatted, as of the opening. */
  dropped: number;
  /** Times this sector has been erased, as far as the outbox knows. */
  eraseCount: number;
}

export interface Layout {
  blockLength: number;
  writeAlign: number;
  /** Where the stream area starts in each sector: the header rounded up to writeAlign. */
  dataStart: number;
  /** Where the closing ack slots start; the stream area ends here. */
  closeStart: number;
  /** Bytes of an ack-only entry, padded (also each closing slot's size). */
  ackEntryLength: number;
  /** Largest payload a record may carry in this geometry. */
  maxPayload: number;
}

export function alignUp(value: number, align: number): number {
  return Math.ceil(value / align) * align;
}

export function makeLayout(blockLength: number, writeAlign: number): Layout {
  const dataStart = alignUp(HEADER_LENGTH, writeAlign);
  const ackEntryLength = alignUp(RECORD_HEADER_LENGTH + ACK_FIELD_LENGTH, writeAlign);
  const closeStart = blockLength - CLOSING_SLOTS * ackEntryLength;
  const stream = closeStart - dataStart;
  // A record may continue into the next sector but never past it.
  const maxPayload = Math.min(MAX_PAYLOAD_FIELD, stream - RECORD_HEADER_LENGTH - ACK_FIELD_LENGTH - writeAlign);
  return { blockLength, writeAlign, dataStart, closeStart, ackEntryLength, maxPayload };
}

export function encodeHeader(header: SectorHeader): Uint8Array {
  const out = new Uint8Array(HEADER_LENGTH);
  const view = new DataView(out.buffer);
  out[0] = header.version;
  out[1] = header.unitShift;
  view.setUint16(2, header.firstRecordOffset, true);
  view.setUint32(4, header.sectorSeq, true);
  view.setUint32(8, header.firstRecordSeq, true);
  view.setUint32(12, header.ackSeq, true);
  view.setUint32(16, header.dropped, true);
  view.setUint32(20, header.eraseCount, true);
  view.setUint32(24, crc32(out, 0, 24), true);
  return out;
}

/** The full header, or undefined when its CRC fails. The caller checks the version. */
export function decodeHeader(bytes: Uint8Array): SectorHeader | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_LENGTH);
  if (view.getUint32(24, true) !== crc32(bytes, 0, 24)) return undefined;
  return {
    version: bytes[0],
    unitShift: bytes[1],
    firstRecordOffset: view.getUint16(2, true),
    sectorSeq: view.getUint32(4, true),
    firstRecordSeq: view.getUint32(8, true),
    ackSeq: view.getUint32(12, true),
    dropped: view.getUint32(16, true),
    eraseCount: view.getUint32(20, true),
  };
}

/**
 * Record header word: bits 0–10 payload length, bit 11 "an ack field
 * follows", bits 12–15 a check nibble over bits 0–11. 0xFFFF (erased) never
 * checks, so free space and a header torn in its first bytes are told apart.
 */
export function encodeWord(length: number, hasAck: boolean): number {
  const low = (length & LENGTH_MASK) | (hasAck ? HAS_ACK : 0);
  return low | (checkNibble(low) << 12);
}

export type WordRead = { kind: 'erased' } | { kind: 'bad' } | { kind: 'entry'; length: number; hasAck: boolean };

export function decodeWord(word: number): WordRead {
  if (word === 0xffff) return { kind: 'erased' };
  const low = word & 0xfff;
  if (word >>> 12 !== checkNibble(low)) return { kind: 'bad' };
  const length = low & LENGTH_MASK;
  const hasAck = (low & HAS_ACK) !== 0;
  // An entry with neither payload nor ack carries nothing: never written.
  if (length === 0 && !hasAck) return { kind: 'bad' };
  return { kind: 'entry', length, hasAck };
}

function checkNibble(low12: number): number {
  return ((low12 & 0xf) + ((low12 >>> 4) & 0xf) + ((low12 >>> 8) & 0xf) + 5) & 0xf;
}

/** Total bytes of an entry on flash, padded to the program unit. */
export function entryLength(length: number, hasAck: boolean, writeAlign: number): number {
  return alignUp(RECORD_HEADER_LENGTH + (hasAck ? ACK_FIELD_LENGTH : 0) + length, writeAlign);
}

/**
 * Encode an entry into `out` (at least entryLength bytes; the padding is
 * set to 0xFF). `ackSeq` undefined: no ack field. `seq` is the entry's
 * position in the stream (the sequence number of the record, or of the
 * record that follows an ack-only entry; a closing slot uses its sector's
 * sectorSeq): the CRC covers it, so an entry read at the wrong position
 * never checks. Returns the entry length.
 */
export function encodeEntry(out: Uint8Array, payload: Uint8Array, ackSeq: number | undefined, writeAlign: number, seq: number): number {
  const hasAck = ackSeq !== undefined;
  const total = entryLength(payload.length, hasAck, writeAlign);
  const view = new DataView(out.buffer, out.byteOffset, total);
  view.setUint16(0, encodeWord(payload.length, hasAck), true);
  let at = RECORD_HEADER_LENGTH;
  if (hasAck) {
    view.setUint32(at, ackSeq, true);
    at += ACK_FIELD_LENGTH;
  }
  out.set(payload, at);
  out.fill(0xff, at + payload.length, total);
  view.setUint32(ENTRY_CRC_OFFSET, entryCrc(out, at + payload.length, seq), true);
  return total;
}

/** CRC check of an entry whose bytes (header, ack field, payload) are in `entry`, read at position `seq`. */
export function entryChecks(entry: Uint8Array, length: number, hasAck: boolean, seq: number): boolean {
  const end = RECORD_HEADER_LENGTH + (hasAck ? ACK_FIELD_LENGTH : 0) + length;
  const stored = (entry[ENTRY_CRC_OFFSET] | (entry[ENTRY_CRC_OFFSET + 1] << 8) | (entry[ENTRY_CRC_OFFSET + 2] << 16) | (entry[ENTRY_CRC_OFFSET + 3] << 24)) >>> 0;
  return entryCrc(entry, end, seq) === stored;
}

/**
 * CRC-32 (IEEE, firmware/base/crc32.ts) over the position (u32 LE), the
 * header word, the ack field and the payload. 32 bits, not 16: a torn write
 * (any prefix, or any subset of its bits) passes with probability about
 * 2^-32 instead of 2^-16 (docs/spec/outbox.md, "Entries").
 */
function entryCrc(entry: Uint8Array, end: number, seq: number): number {
  const position = Uint8Array.of(seq & 0xff, (seq >>> 8) & 0xff, (seq >>> 16) & 0xff, (seq >>> 24) & 0xff);
  let crc = crc32Update(crc32Init(), position);
  crc = crc32Update(crc, entry, 0, ENTRY_CRC_OFFSET);
  return crc32Final(crc32Update(crc, entry, RECORD_HEADER_LENGTH, end));
}
