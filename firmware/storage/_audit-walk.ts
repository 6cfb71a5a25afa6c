/**
 * Reading an audit partition (docs/spec/audit-log.md, "Reading"): the ring
 * order of its blocks from their headers, the entries of one block with
 * resynchronisation past unreadable bytes, and the chain check across
 * entries. The only code that tolerates torn bytes; shared by the device
 * (audit-log.ts) and the host verifier (tools/audit/verify.ts).
 */
import type { Crypto } from '../hal/crypto.ts';
import {
  AUDIT_ENTRY_ALIGN,
  AUDIT_HEADER_LENGTH,
  alignUp,
  bytesEqual,
  decodeHeader,
  entryHash,
  paddedEntryLength,
  readEntry,
  type AuditEntryRaw,
  type AuditHeader,
  type HeaderRead,
} from './_audit-format.ts';

/** An entry found in a block, with where it is. */
export interface PlacedEntry {
  readonly entry: AuditEntryRaw;
  /** Partition offset of the entry. */
  readonly byteOffset: number;
  /** Block index. */
  readonly block: number;
}

export interface BlockWalk {
  readonly entries: PlacedEntry[];
  /** Offset in the block just past the last readable entry (padded), or past the header. */
  readonly end: number;
  /** Offset in the block just past the last byte that is not 0xFF, aligned up to 16 (≥ end): where appends may resume. */
  readonly dirtyEnd: number;
  /** Unreadable regions [from, to) (offsets in the block) followed by a readable entry. */
  readonly skipped: readonly { readonly from: number; readonly to: number }[];
  /** An entry of a newer format was found (its version). */
  readonly newer: number | undefined;
}

/** The entries of one block (`block` holds its blockLength bytes; `index` its block index). */
export function walkBlock(block: Uint8Array, index: number): BlockWalk {
  const blockLength = block.length;
  const base = index * blockLength;
  const entries: PlacedEntry[] = [];
  const skipped: { from: number; to: number }[] = [];
  let at = AUDIT_HEADER_LENGTH;
  let newer: number | undefined;
  while (at + AUDIT_ENTRY_ALIGN <= blockLength) {
    const read = readEntry(block, at, blockLength);
    if (read.state === 'entry') {
      entries.push({ entry: read.entry, byteOffset: base + at, block: index });
      at += paddedEntryLength(read.entry.body.length);
      continue;
    }
    if (read.state === 'newer') {
      newer = read.version;
      break;
    }
    // Erased or unreadable here: look for the next readable entry (a torn append leaves at most one entry of bytes).
    const next = findEntry(block, at + AUDIT_ENTRY_ALIGN);
    if (next === undefined) break;
    skipped.push({ from: at, to: next });
    at = next;
  }
  const end = at;
  let last = blockLength;
  while (last > end && block[last - 1] === 0xff) last--;
  return { entries, end, dirtyEnd: Math.min(blockLength, alignUp(last, AUDIT_ENTRY_ALIGN)), skipped, newer };
}

function findEntry(block: Uint8Array, from: number): number | undefined {
  for (let at = from; at + AUDIT_ENTRY_ALIGN <= block.length; at += AUDIT_ENTRY_ALIGN) {
    const read = readEntry(block, at, block.length);
    if (read.state === 'entry' || read.state === 'newer') return at;
  }
  return undefined;
}

/** The header of every block. */
export function readHeaders(read: (byteOffset: number, target: Uint8Array) => void, blocks: number, blockLength: number): HeaderRead[] {
  const out: HeaderRead[] = [];
  const bytes = new Uint8Array(AUDIT_HEADER_LENGTH);
  for (let b = 0; b < blocks; b++) {
    read(b * blockLength, bytes);
    out.push(decodeHeader(bytes));
  }
  return out;
}

export interface Ring {
  /** Block index of the head (largest valid blockSeq). */
  readonly head: number;
  readonly headHeader: AuditHeader;
  /** Block indexes from the oldest to the head. */
  readonly order: readonly number[];
  /** Blocks whose header is not valid for their place: torn, damaged, or stale (indexes). */
  readonly badHeaders: readonly number[];
}

export type RingRead =
  | { readonly state: 'ring'; readonly ring: Ring }
  | { readonly state: 'blank' }
  | { readonly state: 'not-formatted'; readonly reason: string }
  | { readonly state: 'newer'; readonly version: number; readonly block: number };

/**
 * Order the blocks: the head has the largest valid blockSeq S; when S ≥ N
 * every block is in the ring, oldest first from the one after the head;
 * otherwise blocks 0..S−1. A header is valid for its place when its CRC
 * checks, its unitShift is the partition's and (blockSeq − 1) mod N is its
 * index.
 */
export function orderRing(headers: readonly HeaderRead[], unitShift: number): RingRead {
  const n = headers.length;
  let head = -1;
  let headHeader: AuditHeader | undefined;
  let anyForeign = false;
  for (let i = 0; i < n; i++) {
    const h = headers[i];
    if (h.state === 'newer') return { state: 'newer', version: h.version, block: i };
    if (h.state !== 'valid') {
      if (h.state === 'invalid') anyForeign = true;
      continue;
    }
    if (h.header.unitShift !== unitShift) return { state: 'not-formatted', reason: `block ${i} was written with a ${1 << h.header.unitShift}-byte program unit` };
    if ((h.header.blockSeq - 1) % n !== i) {
      // A header of a ring with another block count (or copied from another place): not this log's.
      anyForeign = true;
      continue;
    }
    if (headHeader === undefined || h.header.blockSeq > headHeader.blockSeq) {
      head = i;
      headHeader = h.header;
    }
  }
  if (headHeader === undefined) return anyForeign ? { state: 'not-formatted', reason: 'no block holds a valid audit header' } : { state: 'blank' };
  const seq = headHeader.blockSeq;
  const order: number[] = [];
  const used = Math.min(seq, n);
  for (let k = used - 1; k >= 0; k--) order.push((((head - k) % n) + n) % n);
  const badHeaders: number[] = [];
  for (const i of order) {
    const h = headers[i];
    const expected = seq - ((((head - i) % n) + n) % n);
    if (h.state !== 'valid' || h.header.blockSeq !== expected) badHeaders.push(i);
  }
  return { state: 'ring', ring: { head, headHeader, order, badHeaders } };
}

/** Why the chain broke before an entry. */
export type BreakReason =
  /** Its prevHash is not the hash of the entry read before it: entries between are missing, or it was moved. */
  | 'chain'
  /** Its counter is not above the one before it. */
  | 'counter'
  /** Unreadable bytes before it that the chain does not explain (damage). */
  | 'unreadable';

export interface ChainBreak {
  readonly reason: BreakReason;
  /** Counter of the entry after the break (undefined: the break is at the end). */
  readonly counter: number | undefined;
  /** Partition offset of the entry after the break, or of the unreadable bytes. */
  readonly byteOffset: number;
  readonly block: number;
  /** The break touches the oldest block (a reclaim a cut tore leaves the same picture as damage there). */
  readonly oldest: boolean;
  readonly message: string;
}

export interface ChainWalk {
  readonly entries: PlacedEntry[];
  readonly breaks: ChainBreak[];
  /** Unreadable regions the chain shows were torn appends (nothing lost). */
  readonly tornRegions: number;
  /** Hash of the last entry (or the head header's anchor when there is none). */
  readonly lastHash: Uint8Array;
  readonly lastCounter: number;
  /** An entry of a newer format was found: where, and its version (the walk of that block stopped there). */
  readonly newer: { readonly block: number; readonly version: number } | undefined;
}

/**
 * Walk the ring's blocks in order and check the chain: each entry's
 * prevHash is the hash of the entry before it and its counter is larger.
 * `readBlock` fills a block's bytes. The first entry's prevHash is the
 * start (its predecessor was dropped, or it is the genesis hash).
 */
export function walkChain(crypto: Crypto, ring: Ring, readBlock: (index: number) => Uint8Array, headers: readonly HeaderRead[]): ChainWalk {
  const entries: PlacedEntry[] = [];
  const breaks: ChainBreak[] = [];
  let tornRegions = 0;
  let newer: { block: number; version: number } | undefined;
  let lastHash: Uint8Array | undefined;
  let lastCounter = 0;
  const oldest = ring.order[0];
  for (const index of ring.order) {
    const block = readBlock(index);
    const walk = walkBlock(block, index);
    if (walk.newer !== undefined && newer === undefined) newer = { block: index, version: walk.newer };
    const blockLength = block.length;
    const header = headers[index];
    // The block's header anchors its first entry, when it is valid for its place.
    const anchor = header.state === 'valid' && !ring.badHeaders.includes(index) ? header.header : undefined;
    let skip = 0;
    for (const placed of walk.entries) {
      const e = placed.entry;
      const inBlock = placed.byteOffset - index * blockLength;
      const before = walk.skipped[skip];
      const afterSkip = before !== undefined && before.to === inBlock;
      if (afterSkip) skip++;
      if (lastHash !== undefined) {
        if (!bytesEqual(e.prevHash, lastHash)) {
          breaks.push({ reason: afterSkip ? 'unreadable' : 'chain', counter: e.counter, byteOffset: placed.byteOffset, block: index, oldest: index === oldest || placed === entries[0], message: afterSkip ? `unreadable bytes at offset ${index * blockLength + (before as { from: number }).from} hid entries between counter ${lastCounter} and ${e.counter}` : `prevHash of counter ${e.counter} is not the hash of counter ${lastCounter}` });
        } else if (afterSkip) tornRegions++;
        if (e.counter <= lastCounter) breaks.push({ reason: 'counter', counter: e.counter, byteOffset: placed.byteOffset, block: index, oldest: index === oldest, message: `counter ${e.counter} is not above ${lastCounter}` });
      } else if (anchor !== undefined ? !bytesEqual(e.prevHash, anchor.anchor) : inBlock !== AUDIT_HEADER_LENGTH) {
        // The first entry read: its header's anchor (or, without a usable header, its place) says whether entries came before it.
        breaks.push({ reason: afterSkip ? 'unreadable' : 'chain', counter: e.counter, byteOffset: placed.byteOffset, block: index, oldest: index === oldest, message: `entries before counter ${e.counter} (block ${index}) are unreadable or missing` });
      }
      entries.push(placed);
      lastHash = entryHash(crypto, e.bytes);
      lastCounter = e.counter;
    }
    // A block that is not the head must not end in unreadable bytes unless its successor's anchor shows nothing was lost.
    if (index !== ring.head && walk.dirtyEnd > walk.end) {
      const next = ring.order[ring.order.indexOf(index) + 1];
      const nextHeader = headers[next];
      const explained = nextHeader.state === 'valid' && lastHash !== undefined && bytesEqual(nextHeader.header.anchor, lastHash);
      if (explained) tornRegions++;
      else breaks.push({ reason: 'unreadable', counter: undefined, byteOffset: index * blockLength + walk.end, block: index, oldest: index === oldest, message: `unreadable bytes at offset ${index * blockLength + walk.end} after counter ${lastCounter}` });
    }
    if (lastHash === undefined && anchor !== undefined && index === ring.head) {
      lastHash = anchor.anchor;
      lastCounter = anchor.lastCounter;
    }
  }
  return { entries, breaks, tornRegions, newer, lastHash: lastHash ?? ring.headHeader.anchor, lastCounter: lastHash === undefined ? ring.headHeader.lastCounter : lastCounter };
}
