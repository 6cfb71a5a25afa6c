/**
 * The audit log: the device's evidence (docs/spec/audit-log.md).
 *
 * A ring of blocks on its own partition holding a hash chain of entries.
 * Each entry carries a format version, a value of the persistent counter,
 * an event kind and compact body, the hash of the entry before it and a
 * tag (HMAC-SHA-256 under the device's audit key, 128 bits kept).
 *
 * - `append` returns once the entry is durable; the counter orders entries.
 * - `ack(counter)` marks entries delivered upstream (RAM; it reaches flash
 *   in the next block header, so after a reboot entries acknowledged since
 *   the last opening are published again: duplicates the receiver
 *   recognises by counter).
 * - A full ring reclaims its oldest block. Acknowledged entries go
 *   silently; unacknowledged ones are counted and recorded in a
 *   `dropped-unacknowledged` entry (the drop itself is evidence), kept in
 *   the new block's header until that entry is durable.
 * - Recovery reads every header and the head block, writes nothing, and
 *   refuses ('blank', 'not-formatted', 'format-too-new', 'damaged') what it
 *   cannot read as this log; a torn newest entry is discarded and reported.
 *
 * The HMAC, the hash and the counter come in through interfaces (the Crypto
 * HAL and `{ next() }`), so storage depends only on base and hal.
 */
import type { FlashPartition } from '../hal/flash.ts';
import type { Crypto } from '../hal/crypto.ts';
import { StorageError } from './errors.ts';
import {
  AUDIT_FORMAT_VERSION,
  AUDIT_HASH_LENGTH,
  AUDIT_HEADER_LENGTH,
  AUDIT_MAX_BLOCK_LENGTH,
  AUDIT_MIN_BLOCK_LENGTH,
  DROP_COUNT_UNKNOWN,
  bytesEqual,
  decodeHeader,
  encodeEntry,
  encodeHeader,
  entryHash,
  genesisHash,
  paddedEntryLength,
  type AuditHeader,
} from './_audit-format.ts';
import { AUDIT_KIND_CODES, AuditDecodeError, decodeAuditEvent, encodeAuditEvent, type AuditEvent } from './_audit-events.ts';
import { orderRing, readHeaders, walkBlock, walkChain, type ChainBreak, type Ring } from './_audit-walk.ts';

export type { AuditEvent, AuditEventKind, AuditChannel, AuditKeyRole, AuditStore, AuditDecodeErrorCode } from './_audit-events.ts';
export { AUDIT_KIND_CODES, AUDIT_MAX_BODY, AUDIT_MAX_TOKEN, AuditDecodeError, decodeAuditEvent, encodeAuditEvent, auditKindOf } from './_audit-events.ts';
export { AUDIT_FORMAT_VERSION, AUDIT_TAG_LENGTH, AUDIT_HEADER_LENGTH, AUDIT_MIN_BLOCK_LENGTH, readEntry, tagChecks, entryHash } from './_audit-format.ts';
export type { ChainBreak, BreakReason } from './_audit-walk.ts';

/** Where entry counters come from: the persistent counter (storage/counter.ts), or anything that never repeats a value. */
export interface AuditCounterSource {
  /** A value strictly above every value returned before, 1..2^53-1. */
  next(): number;
}

export interface AuditLogOptions {
  readonly crypto: Crypto;
  /** The device's audit key (16..64 bytes; 32 from HKDF, docs/spec/audit-log.md, "Key"). */
  readonly key: Uint8Array;
  readonly counter: AuditCounterSource;
  /** Called once a `dropped-unacknowledged` entry is durable (for the runtime's log; tests use it to see every drop). */
  readonly onDropRecorded?: (event: AuditEvent, counter: number) => void;
}

export interface AuditRecord {
  readonly counter: number;
  /** Kind code (byte 1 of the entry). */
  readonly kind: number;
  /** The decoded event, or undefined when its body does not decode (`decodeError` says why). */
  readonly event: AuditEvent | undefined;
  readonly decodeError: string | undefined;
  /** The entry's bytes, unpadded: what is published and exported. */
  readonly bytes: Uint8Array;
}

export interface AuditRead {
  /** Entries with counters above the one asked for, oldest first. */
  readonly records: AuditRecord[];
  /** Where the chain is broken (damage, or a torn reclaim of the oldest block: `oldest`). */
  readonly breaks: ChainBreak[];
  /** Unreadable regions the chain shows were torn appends (nothing lost). */
  readonly tornRegions: number;
}

export interface AuditRecoveryReport {
  /**
   * Unreadable bytes after the head's last readable entry, discarded (appends
   * resume after them): what cut appends leave (their append never
   * returned), and also what damage to the newest entries leaves; the two
   * cannot be told apart (docs/spec/audit-log.md, "Known limits").
   */
  readonly tornTail: { readonly byteOffset: number; readonly byteLength: number } | undefined;
  /** Chain breaks inside the head block (damage). */
  readonly headBreaks: readonly ChainBreak[];
  /** Torn appends from earlier cuts inside the head block, stepped over (nothing lost). */
  readonly tornRegions: number;
  /** Blocks of the ring whose header is torn, damaged or stale (their entries are still read). */
  readonly badHeaders: readonly number[];
  /**
   * A drop whose entry is not written yet (the next append writes it first):
   * named in the head header, or found here (a full ring whose oldest block
   * lost its header: a reclaim a cut interrupted, or damage).
   */
  readonly pendingDrop: boolean;
}

export interface AuditLogStats {
  readonly blocks: number;
  readonly blockLength: number;
  readonly headBlock: number;
  readonly headSeq: number;
  readonly usedBlocks: number;
  /** Offset in the head block where the next entry goes. */
  readonly writeOffset: number;
  /** Counter of the newest entry (0: none yet). */
  readonly lastCounter: number;
  /** Entries up to this counter are acknowledged (RAM; on flash in the next header). */
  readonly ackCounter: number;
  /** A drop whose entry is not written yet (the next append writes it; see AuditRecoveryReport.pendingDrop): its block, count (null: unknown) and counter range. */
  readonly pendingDrop: { readonly blockSeq: number; readonly count: number | null; readonly firstCounter: number; readonly lastCounter: number } | undefined;
  /** `dropped-unacknowledged` entries written in this boot. */
  readonly dropsRecorded: number;
  /** Entries written in this boot (drop entries included). */
  readonly entriesWritten: number;
  readonly bytesProgrammed: number;
  readonly erases: number;
}

interface Drop {
  readonly seq: number;
  /** null: not known. */
  readonly count: number | null;
  readonly first: number;
  readonly last: number;
}

const DROP_CODE = AUDIT_KIND_CODES['dropped-unacknowledged'];
const MIN_KEY_LENGTH = 16;
const MAX_KEY_LENGTH = 64;

export class AuditLog {
  private readonly flash: FlashPartition;
  private readonly crypto: Crypto;
  private readonly key: Uint8Array;
  private readonly counter: AuditCounterSource;
  private readonly onDropRecorded: ((event: AuditEvent, counter: number) => void) | undefined;
  private readonly blocks: number;
  private readonly blockLength: number;
  private readonly unitShift: number;
  private readonly recovery: AuditRecoveryReport;
  private head: number;
  private headHeader: AuditHeader;
  private writeOffset: number;
  private lastHash: Uint8Array;
  private lastCounter: number;
  private ackCounter: number;
  private pendingDrop: Drop | undefined;
  /** Largest blockSeq a durable drop record names (0: none seen in the head): a block is never recorded as dropped twice. */
  private droppedThrough: number;
  private dropsRecorded = 0;
  private closed = false;
  private entriesWritten = 0;
  private bytesProgrammed = 0;
  private erases = 0;

  private constructor(flash: FlashPartition, options: AuditLogOptions, geometry: Geometry, state: Recovered) {
    this.flash = flash;
    this.crypto = options.crypto;
    this.key = options.key.slice();
    this.counter = options.counter;
    this.onDropRecorded = options.onDropRecorded;
    this.blocks = geometry.blocks;
    this.blockLength = geometry.blockLength;
    this.unitShift = geometry.unitShift;
    this.head = state.head;
    this.headHeader = state.headHeader;
    this.writeOffset = state.writeOffset;
    this.lastHash = state.lastHash;
    this.lastCounter = state.lastCounter;
    this.ackCounter = state.ackCounter;
    this.pendingDrop = state.pendingDrop;
    this.droppedThrough = state.droppedThrough;
    this.recovery = state.report;
  }

  /**
   * Provisioning: erase every block and write block 0's header (blockSeq 1,
   * the genesis anchor). Evidence held before is gone: only at the factory,
   * never to get past a refusal in the field.
   */
  static format(flash: FlashPartition): void {
    const g = checkGeometry(flash);
    for (let b = 0; b < g.blocks; b++) flash.eraseBlock(b);
    flash.write(0, encodeHeader({ version: AUDIT_FORMAT_VERSION, unitShift: g.unitShift, blockSeq: 1, ackCounter: 0, lastCounter: 0, anchor: genesisHash(), dropSeq: 0, dropCount: 0, dropFirst: 0, dropLast: 0 }));
  }

  /**
   * Recover the log (reads every header and the head block, hashes the head
   * block's entries; writes nothing). Throws StorageError 'bad-geometry',
   * 'blank', 'not-formatted', 'format-too-new' or 'damaged'.
   */
  static open(flash: FlashPartition, options: AuditLogOptions): AuditLog {
    checkOptions(options);
    const g = checkGeometry(flash);
    return new AuditLog(flash, options, g, recover(flash, options.crypto, g));
  }

  /**
   * Append one event; returns its counter once the entry is durable. Writes
   * a pending drop entry first, and opens a new block (reclaiming the oldest
   * when the ring is full) when the head has no room.
   */
  append(event: AuditEvent): number {
    if (this.closed) throw new Error('the audit log is closed');
    const { code, body } = encodeAuditEvent(event);
    if (code === DROP_CODE) throw new RangeError('dropped-unacknowledged entries are written by the log itself');
    this.flushPendingDrop();
    if (this.writeOffset + paddedEntryLength(body.length) > this.blockLength) {
      this.openBlock();
      this.flushPendingDrop();
    }
    return this.writeEntry(code, body);
  }

  /** Entries up to `counter` were delivered upstream (an integer up to the newest counter; lower values change nothing). */
  ack(counter: number): void {
    if (typeof counter !== 'number') throw new TypeError(`counter must be a number, got ${typeof counter}`);
    if (!Number.isSafeInteger(counter) || counter < 0 || counter > this.lastCounter) throw new RangeError(`ack counter must be an integer in 0..${this.lastCounter}, got ${counter}`);
    if (counter > this.ackCounter) this.ackCounter = counter;
  }

  /**
   * The retained entries with counters above `afterCounter` (at most `max`),
   * oldest first, the chain checked across the whole ring: what to publish.
   * Reads every block. Throws StorageError 'format-too-new' when an entry of a
   * newer format is found, 'damaged' when the headers no longer read as a log.
   */
  read(afterCounter = 0, max = Number.MAX_SAFE_INTEGER): AuditRead {
    const { ring, headers } = this.ring();
    const walk = walkChain(this.crypto, ring, (i) => this.readBlock(i), headers);
    if (walk.newer !== undefined) throw new StorageError('format-too-new', `block ${walk.newer.block} holds an entry of audit format ${walk.newer.version}; this firmware reads ${AUDIT_FORMAT_VERSION}`);
    const records: AuditRecord[] = [];
    for (const placed of walk.entries) {
      if (placed.entry.counter <= afterCounter || records.length >= max) continue;
      records.push(toRecord(placed.entry.kind, placed.entry.counter, placed.entry.body, placed.entry.bytes));
    }
    return { records, breaks: walk.breaks, tornRegions: walk.tornRegions };
  }

  /** Unacknowledged entries, oldest first (at most `max`). */
  unacknowledged(max = Number.MAX_SAFE_INTEGER): AuditRead {
    return this.read(this.ackCounter, max);
  }

  /** Zero this instance's copy of the key; appends then throw. Reading still works (it needs no key). */
  close(): void {
    this.key.fill(0);
    this.closed = true;
  }

  report(): AuditRecoveryReport {
    return this.recovery;
  }

  stats(): AuditLogStats {
    return {
      blocks: this.blocks,
      blockLength: this.blockLength,
      headBlock: this.head,
      headSeq: this.headHeader.blockSeq,
      usedBlocks: Math.min(this.headHeader.blockSeq, this.blocks),
      writeOffset: this.writeOffset,
      lastCounter: this.lastCounter,
      ackCounter: this.ackCounter,
      pendingDrop: this.pendingDrop === undefined ? undefined : { blockSeq: this.pendingDrop.seq, count: this.pendingDrop.count, firstCounter: this.pendingDrop.first, lastCounter: this.pendingDrop.last },
      dropsRecorded: this.dropsRecorded,
      entriesWritten: this.entriesWritten,
      bytesProgrammed: this.bytesProgrammed,
      erases: this.erases,
    };
  }

  // ---------------------------------------------------------------- writing

  private writeEntry(code: number, body: Uint8Array): number {
    const counter = this.counter.next();
    if (typeof counter !== 'number' || !Number.isSafeInteger(counter) || counter <= this.lastCounter) {
      throw new RangeError(`the counter source returned ${String(counter)}, not an integer above the newest entry's ${this.lastCounter}`);
    }
    const entry = encodeEntry(this.crypto, this.key, { kind: code, counter, prevHash: this.lastHash, body });
    const padded = new Uint8Array(paddedEntryLength(body.length)).fill(0xff);
    padded.set(entry);
    this.flash.write(this.head * this.blockLength + this.writeOffset, padded);
    this.bytesProgrammed += padded.length;
    this.entriesWritten++;
    this.writeOffset += padded.length;
    this.lastHash = entryHash(this.crypto, entry);
    this.lastCounter = counter;
    return counter;
  }

  private flushPendingDrop(): void {
    const drop = this.pendingDrop;
    if (drop === undefined) return;
    const event = dropEvent(drop);
    const { body } = encodeAuditEvent(event);
    if (this.writeOffset + paddedEntryLength(body.length) > this.blockLength) {
      // No room in the head (torn appends used it): the next header carries the drop on.
      this.openBlock();
      this.flushPendingDrop();
      return;
    }
    const counter = this.writeEntry(DROP_CODE, body);
    this.pendingDrop = undefined;
    this.droppedThrough = Math.max(this.droppedThrough, drop.seq);
    this.dropsRecorded++;
    this.onDropRecorded?.(event, counter);
  }

  /** Erase the next block (reclaiming the oldest when the ring is full) and write its header. */
  private openBlock(): void {
    const seq = this.headHeader.blockSeq + 1;
    const index = (this.head + 1) % this.blocks;
    let drop = this.pendingDrop;
    // (A drop recovery already recorded for this block, after a cut reclaim, is not counted twice.)
    if (seq > this.blocks && Math.max(this.droppedThrough, drop?.seq ?? 0) < seq - this.blocks) {
      const reclaimed = this.dropOf(index, seq - this.blocks);
      if (reclaimed !== undefined) drop = drop === undefined ? reclaimed : mergeDrops(drop, reclaimed);
    }
    this.flash.eraseBlock(index);
    this.erases++;
    const header: AuditHeader = {
      version: AUDIT_FORMAT_VERSION,
      unitShift: this.unitShift,
      blockSeq: seq,
      ackCounter: this.ackCounter,
      lastCounter: this.lastCounter,
      anchor: this.lastHash.slice(),
      dropSeq: drop?.seq ?? 0,
      dropCount: drop === undefined ? 0 : (drop.count ?? DROP_COUNT_UNKNOWN),
      dropFirst: drop?.first ?? 0,
      dropLast: drop?.last ?? 0,
    };
    this.flash.write(index * this.blockLength, encodeHeader(header));
    this.bytesProgrammed += AUDIT_HEADER_LENGTH;
    this.head = index;
    this.headHeader = header;
    this.writeOffset = AUDIT_HEADER_LENGTH;
    this.pendingDrop = drop;
  }

  /**
   * What reclaiming block `index` (which should hold blockSeq `seq`) drops
   * unacknowledged. Exact when the block reads clean and ends where its
   * successor's header says; otherwise (a torn earlier reclaim, damage) the
   * count is unknown and the range runs from the ack point + 1 to the last
   * counter the block can hold.
   */
  private dropOf(index: number, seq: number): Drop | undefined {
    const bytes = this.readBlock(index);
    const header = decodeHeader(bytes);
    const walk = walkBlock(bytes, index);
    const successor = this.headerAt((index + 1) % this.blocks);
    const bound = successor !== undefined && successor.blockSeq === seq + 1 ? successor.lastCounter : undefined;
    const entries = walk.entries.map((p) => p.entry.counter);
    const newest = entries.length > 0 ? entries[entries.length - 1] : undefined;
    const clean =
      header.state === 'valid' && header.header.blockSeq === seq && walk.skipped.length === 0 && walk.dirtyEnd === walk.end && walk.newer === undefined && bound !== undefined && (newest === undefined ? header.header.lastCounter === bound : newest === bound);
    if (clean) {
      const unacked = entries.filter((c) => c > this.ackCounter);
      if (unacked.length === 0) return undefined;
      return { seq, count: unacked.length, first: unacked[0], last: unacked[unacked.length - 1] };
    }
    const last = bound ?? this.lastCounter;
    if (last <= this.ackCounter) return undefined;
    return { seq, count: null, first: this.ackCounter + 1, last };
  }

  private headerAt(index: number): AuditHeader | undefined {
    if (index === this.head) return this.headHeader;
    const bytes = new Uint8Array(AUDIT_HEADER_LENGTH);
    this.flash.read(index * this.blockLength, bytes);
    const h = decodeHeader(bytes);
    return h.state === 'valid' ? h.header : undefined;
  }

  private readBlock(index: number): Uint8Array {
    const bytes = new Uint8Array(this.blockLength);
    this.flash.read(index * this.blockLength, bytes);
    return bytes;
  }

  private ring(): { ring: Ring; headers: ReturnType<typeof readHeaders> } {
    const headers = readHeaders((o, t) => this.flash.read(o, t), this.blocks, this.blockLength);
    const r = orderRing(headers, this.unitShift);
    if (r.state !== 'ring') throw new StorageError('damaged', `the audit partition no longer reads as a log (${r.state})`);
    return { ring: r.ring, headers };
  }
}

// ---------------------------------------------------------------- recovery

interface Geometry {
  blocks: number;
  blockLength: number;
  unitShift: number;
}

interface Recovered {
  head: number;
  headHeader: AuditHeader;
  writeOffset: number;
  lastHash: Uint8Array;
  lastCounter: number;
  ackCounter: number;
  pendingDrop: Drop | undefined;
  droppedThrough: number;
  report: AuditRecoveryReport;
}

function recover(flash: FlashPartition, crypto: Crypto, g: Geometry): Recovered {
  const headers = readHeaders((o, t) => flash.read(o, t), g.blocks, g.blockLength);
  const r = orderRing(headers, g.unitShift);
  if (r.state === 'blank') throw new StorageError('blank', 'the audit partition is blank (never formatted, or wiped)');
  if (r.state === 'not-formatted') throw new StorageError('not-formatted', `the audit partition is not an audit log: ${r.reason}`);
  if (r.state === 'newer') throw new StorageError('format-too-new', `block ${r.block} holds audit format ${r.version}; this firmware reads ${AUDIT_FORMAT_VERSION}`);
  const ring = r.ring;
  const head = ring.head;
  const headHeader = ring.headHeader;
  const bytes = new Uint8Array(g.blockLength);
  flash.read(head * g.blockLength, bytes);
  const walk = walkBlock(bytes, head);
  if (walk.newer !== undefined) throw new StorageError('format-too-new', `block ${head} holds an entry of audit format ${walk.newer}; this firmware reads ${AUDIT_FORMAT_VERSION}`);

  // The chain inside the head block, from its header's anchor.
  let lastHash = headHeader.anchor;
  let lastCounter = headHeader.lastCounter;
  const headBreaks: ChainBreak[] = [];
  let tornRegions = 0;
  let skip = 0;
  for (const placed of walk.entries) {
    const e = placed.entry;
    const inBlock = placed.byteOffset - head * g.blockLength;
    const afterSkip = walk.skipped[skip] !== undefined && walk.skipped[skip].to === inBlock;
    if (afterSkip) skip++;
    if (!bytesEqual(e.prevHash, lastHash)) {
      headBreaks.push({ reason: afterSkip ? 'unreadable' : 'chain', counter: e.counter, byteOffset: placed.byteOffset, block: head, oldest: false, message: `entry at offset ${placed.byteOffset} (counter ${e.counter}) does not follow counter ${lastCounter}` });
    } else if (afterSkip) tornRegions++;
    if (e.counter <= lastCounter) headBreaks.push({ reason: 'counter', counter: e.counter, byteOffset: placed.byteOffset, block: head, oldest: false, message: `counter ${e.counter} is not above ${lastCounter}` });
    lastHash = entryHash(crypto, e.bytes);
    lastCounter = Math.max(lastCounter, e.counter);
  }
  const extent = walk.dirtyEnd - walk.end;
  const tornTail = extent > 0 ? { byteOffset: head * g.blockLength + walk.end, byteLength: extent } : undefined;

  // The block after the head: a torn opening, or the oldest block. Entries newer than the head's there mean the real head's header is damaged.
  const next = (head + 1) % g.blocks;
  if (headers[next].state !== 'valid') {
    const nextBytes = new Uint8Array(g.blockLength);
    flash.read(next * g.blockLength, nextBytes);
    const newer = walkBlock(nextBytes, next).entries.find((p) => p.entry.counter > lastCounter);
    if (newer !== undefined) {
      throw new StorageError('damaged', `block ${next} holds entries newer than the head (counter ${newer.entry.counter}) under a damaged header`);
    }
  }

  let ackCounter = 0;
  for (const i of ring.order) {
    const h = headers[i];
    if (h.state === 'valid' && !ring.badHeaders.includes(i) && h.header.ackCounter > ackCounter) ackCounter = h.header.ackCounter;
  }
  ackCounter = Math.min(ackCounter, lastCounter);

  let pendingDrop: Drop | undefined;
  let droppedThrough = 0;
  for (const p of walk.entries) if (p.entry.kind === DROP_CODE) droppedThrough = Math.max(droppedThrough, dropSeqOf(p.entry.body));
  if (headHeader.dropSeq !== 0) {
    const drop: Drop = { seq: headHeader.dropSeq, count: headHeader.dropCount === DROP_COUNT_UNKNOWN ? null : headHeader.dropCount, first: headHeader.dropFirst, last: headHeader.dropLast };
    const written = walk.entries.some((p) => p.entry.kind === DROP_CODE && sameDrop(p.entry.body, drop));
    if (!written) pendingDrop = drop;
  }
  // A full ring whose oldest block does not hold its header: a reclaim was cut between its erase and its header
  // (or damage hit that header). Its unacknowledged entries are gone or going: record the drop now, count unknown.
  const oldestSeq = headHeader.blockSeq + 1 - g.blocks;
  const oldestHeader = headers[next];
  if (oldestSeq >= 1 && oldestSeq > Math.max(droppedThrough, pendingDrop?.seq ?? 0) && !(oldestHeader.state === 'valid' && oldestHeader.header.blockSeq === oldestSeq)) {
    const successor = headers[(next + 1) % g.blocks];
    const last = successor.state === 'valid' && successor.header.blockSeq === oldestSeq + 1 ? successor.header.lastCounter : lastCounter;
    if (last > ackCounter) {
      const interrupted: Drop = { seq: oldestSeq, count: null, first: ackCounter + 1, last };
      pendingDrop = pendingDrop === undefined ? interrupted : mergeDrops(pendingDrop, interrupted);
    }
  }

  return {
    head,
    headHeader,
    writeOffset: walk.dirtyEnd,
    lastHash: lastHash.length === AUDIT_HASH_LENGTH ? lastHash.slice() : genesisHash(),
    lastCounter,
    ackCounter,
    pendingDrop,
    droppedThrough,
    report: { tornTail, headBreaks, tornRegions, badHeaders: ring.badHeaders, pendingDrop: pendingDrop !== undefined },
  };
}

/** The blockSeq a drop entry's body names (0 when it does not decode). */
function dropSeqOf(body: Uint8Array): number {
  try {
    const e = decodeAuditEvent(DROP_CODE, body);
    return e.kind === 'dropped-unacknowledged' ? e.blockSeq : 0;
  } catch (error) {
    if (error instanceof AuditDecodeError) return 0;
    throw error;
  }
}

function sameDrop(body: Uint8Array, drop: Drop): boolean {
  try {
    const e = decodeAuditEvent(DROP_CODE, body);
    return e.kind === 'dropped-unacknowledged' && e.blockSeq === drop.seq && e.count === drop.count && e.firstCounter === drop.first && e.lastCounter === drop.last;
  } catch (error) {
    if (error instanceof AuditDecodeError) return false;
    throw error;
  }
}

function mergeDrops(a: Drop, b: Drop): Drop {
  return { seq: b.seq, count: a.count === null || b.count === null ? null : a.count + b.count, first: Math.min(a.first, b.first), last: Math.max(a.last, b.last) };
}

function dropEvent(drop: Drop): AuditEvent {
  return { kind: 'dropped-unacknowledged', blockSeq: drop.seq, count: drop.count, firstCounter: drop.first, lastCounter: drop.last };
}

function toRecord(kind: number, counter: number, body: Uint8Array, bytes: Uint8Array): AuditRecord {
  try {
    return { counter, kind, event: decodeAuditEvent(kind, body), decodeError: undefined, bytes };
  } catch (error) {
    if (!(error instanceof AuditDecodeError)) throw error;
    return { counter, kind, event: undefined, decodeError: `${error.code}: ${error.message}`, bytes };
  }
}

function checkGeometry(flash: FlashPartition): Geometry {
  const s = flash.status();
  const unitShift = [1, 2, 4, 8, 16].indexOf(s.writeAlign);
  if (unitShift < 0) throw new StorageError('bad-geometry', `writeAlign ${s.writeAlign} is not 1, 2, 4, 8 or 16`);
  if (s.eraseValue !== 0xff) throw new StorageError('bad-geometry', `eraseValue ${s.eraseValue} is not 0xFF`);
  if (!Number.isInteger(s.blockLength) || s.blockLength < AUDIT_MIN_BLOCK_LENGTH || s.blockLength > AUDIT_MAX_BLOCK_LENGTH || s.blockLength % 16 !== 0) {
    throw new StorageError('bad-geometry', `blockLength ${s.blockLength} is not a multiple of 16 in ${AUDIT_MIN_BLOCK_LENGTH}..${AUDIT_MAX_BLOCK_LENGTH}`);
  }
  if (!Number.isInteger(s.blocks) || s.blocks < 2 || s.blocks > 0xffff) throw new StorageError('bad-geometry', `an audit log needs 2..65535 blocks, got ${s.blocks}`);
  return { blocks: s.blocks, blockLength: s.blockLength, unitShift };
}

function checkOptions(options: AuditLogOptions): void {
  if (typeof options !== 'object' || options === null) throw new TypeError('audit log options must be an object');
  if (typeof options.crypto !== 'object' || options.crypto === null) throw new TypeError('options.crypto must be a Crypto');
  if (!(options.key instanceof Uint8Array)) throw new TypeError('options.key must be a Uint8Array');
  if (options.key.length < MIN_KEY_LENGTH || options.key.length > MAX_KEY_LENGTH) throw new RangeError(`options.key must be ${MIN_KEY_LENGTH}..${MAX_KEY_LENGTH} bytes, got ${options.key.length}`);
  if (options.onDropRecorded !== undefined && typeof options.onDropRecorded !== 'function') throw new TypeError('options.onDropRecorded must be a function');
  if (typeof options.counter !== 'object' || options.counter === null || typeof options.counter.next !== 'function') throw new TypeError('options.counter must have next()');
}
