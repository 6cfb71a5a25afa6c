/**
 * The persistent monotonic counter (docs/spec/counter.md): numbers messages
 * and drives replay protection, so it never returns a value twice and never
 * goes backwards, across any power cut.
 *
 * Reserve ahead as RFC 8613 appendix B.1.1 does for OSCORE sequence numbers:
 * a durable bound `reservedUpTo` covers the next K values, so K - 1 of every
 * K increments write nothing; the bound is durable before any value above
 * the old bound is returned, and after a reboot the counter resumes above
 * the last durable bound (values up to it count as possibly used).
 *
 * The bounds are 16-byte entries (one strict-mode unit) appended to a log in
 * the first two blocks of the partition, used as a two-sector rotation: when
 * the active block is full, the other block is erased and the next entry is
 * written there first, so an erase never destroys the only copy of the
 * latest bound. Recovery takes the largest valid bound in the two blocks.
 */
import type { FlashPartition } from '../hal/flash.ts';
import { encodeEntry16, readEntry16 } from '../base/entry16.ts';
import { FORMAT_VERSIONS } from '../base/format-versions.ts';
import { StorageError } from './errors.ts';

/** Bytes per entry: one 16-byte unit of ESP32 flash encryption. */
export const COUNTER_ENTRY_LENGTH = 16;
/** The largest value the counter returns: 2^53 - 1, the largest exact integer of a JS number. */
export const COUNTER_MAX_VALUE = Number.MAX_SAFE_INTEGER;
/** Default K: 16 bytes per 4096 increments = 0.0039 bytes programmed per increment (docs/spec/counter.md). */
export const DEFAULT_COUNTER_RESERVE = 4096;
/** Largest K accepted: a reboot skips at most 2^32 values. */
export const MAX_COUNTER_RESERVE = 0x1_0000_0000;
/** Entry kind: a reservation bound (the only kind of format 1). */
export const COUNTER_KIND_BOUND = 0x01;

/** Blocks the counter uses: the first two of its partition. */
const ROTATION_BLOCKS = 2;
/** Recovery reads the blocks in chunks of at most this many bytes (a multiple of the entry length). */
const SCAN_CHUNK = 256;
const ERASED = 0xff;

export interface CounterOptions {
  /** K: values reserved by each persisted bound; integer 1..2^32. Default 4096. */
  reserve?: number;
}

export interface CounterStats {
  /** K in use. */
  reserve: number;
  /** The durable bound: no value above it was returned; after a reboot the counter resumes above it. */
  reservedUpTo: number;
  /** Last value returned in this boot. */
  current: number | undefined;
  /** Values left before `next()` throws 'exhausted'. */
  remaining: number;
  /** Block (0 or 1) that receives the next entry, before any rotation. */
  activeBlock: number;
  /** Slot index in the active block of the next entry (slotsPerBlock when the block is full). */
  nextSlot: number;
  slotsPerBlock: number;
  /** Entries programmed in this boot. */
  entriesWritten: number;
  /** Bytes programmed in this boot. */
  bytesProgrammed: number;
  /** Blocks erased in this boot (rotations). */
  erases: number;
  /** Bytes `open` read to recover. */
  recoveryBytesRead: number;
  /** Slots `open` found neither free nor a valid entry (torn or damaged), and skipped. */
  skippedSlots: number;
}

/** What the recovery scan learned about one block. */
interface BlockScan {
  /** Largest valid bound in the block, or -1. */
  maxBound: number;
  /** Index of the last slot that is not free, or -1 when the block is blank. */
  lastUsed: number;
  /** A non-free slot follows a free one (not the shape of appends). */
  gap: boolean;
  /** Non-free slots that are not valid entries. */
  skipped: number;
}

export class Counter {
  private readonly flash: FlashPartition;
  private readonly reserve: number;
  private readonly blockLength: number;
  private readonly slotsPerBlock: number;
  /** Reused for every entry written. */
  private readonly entry = new Uint8Array(COUNTER_ENTRY_LENGTH);
  private active: number;
  private nextSlot: number;
  /** The durable bound. */
  private bound: number;
  /** Values up to `last` count as used: the last value returned, or the bound recovered at open. */
  private last: number;
  private returned: number | undefined = undefined;
  private entriesWritten = 0;
  private bytesProgrammed = 0;
  private erases = 0;
  private readonly recoveryBytesRead: number;
  private readonly skippedSlots: number;

  private constructor(flash: FlashPartition, reserve: number, recovered: Recovered) {
    this.flash = flash;
    this.reserve = reserve;
    this.blockLength = recovered.blockLength;
    this.slotsPerBlock = recovered.blockLength / COUNTER_ENTRY_LENGTH;
    this.active = recovered.active;
    this.nextSlot = recovered.nextSlot;
    this.bound = recovered.bound;
    this.last = recovered.bound;
    this.recoveryBytesRead = recovered.bytesRead;
    this.skippedSlots = recovered.skipped;
  }

  /**
   * Recover the counter from `flash` (reads its first two blocks, writes
   * nothing). Throws StorageError 'bad-geometry', 'format-too-new' or
   * 'not-formatted' (docs/spec/counter.md, recovery); a blank partition
   * opens as a fresh counter whose first value is 1.
   */
  static open(flash: FlashPartition, options?: CounterOptions): Counter {
    const reserve = checkOptions(options);
    return new Counter(flash, reserve, recover(flash));
  }

  /**
   * Provisioning: erase the counter's two blocks, so the partition opens as a
   * fresh counter (first value 1). Values already returned from this
   * partition become reusable: do it only with a new key, never to get past
   * 'not-formatted' in the field.
   */
  static format(flash: FlashPartition): void {
    checkGeometry(flash);
    for (let block = 0; block < ROTATION_BLOCKS; block++) flash.eraseBlock(block);
  }

  /**
   * The next value: strictly greater than every value returned before, in
   * this boot or any earlier one. Writes a new bound first (and returns once
   * it is durable) when the value is above the current bound.
   */
  next(): number {
    const value = this.last + 1;
    if (value > COUNTER_MAX_VALUE) throw new StorageError('exhausted', `the counter reached its bound ${COUNTER_MAX_VALUE}`);
    if (value > this.bound) this.persist(this.reserve - 1 > COUNTER_MAX_VALUE - value ? COUNTER_MAX_VALUE : value + this.reserve - 1);
    this.last = value;
    this.returned = value;
    return value;
  }

  /** The last value returned in this boot, or undefined before the first `next()`. */
  current(): number | undefined {
    return this.returned;
  }

  stats(): CounterStats {
    return {
      reserve: this.reserve,
      reservedUpTo: this.bound,
      current: this.returned,
      remaining: COUNTER_MAX_VALUE - this.last,
      activeBlock: this.active,
      nextSlot: this.nextSlot,
      slotsPerBlock: this.slotsPerBlock,
      entriesWritten: this.entriesWritten,
      bytesProgrammed: this.bytesProgrammed,
      erases: this.erases,
      recoveryBytesRead: this.recoveryBytesRead,
      skippedSlots: this.skippedSlots,
    };
  }

  /** Append the entry for `bound`; returns once it is durable. */
  private persist(bound: number): void {
    if (this.nextSlot >= this.slotsPerBlock) this.rotate();
    // Consume the slot before programming it: after a failed write the slot is never programmed again.
    const slot = this.nextSlot++;
    encodeCounterEntry(bound, this.entry);
    this.flash.write(this.active * this.blockLength + slot * COUNTER_ENTRY_LENGTH, this.entry);
    this.entriesWritten++;
    this.bytesProgrammed += COUNTER_ENTRY_LENGTH;
    this.bound = bound;
  }

  /** The active block is full and holds the latest bound: erase the other one and make it active. */
  private rotate(): void {
    const other = 1 - this.active;
    this.flash.eraseBlock(other);
    this.erases++;
    this.active = other;
    this.nextSlot = 0;
  }
}

/** Encode the entry of format 1 for `reservedUpTo` into `target` (16 bytes). */
export function encodeCounterEntry(reservedUpTo: number, target: Uint8Array = new Uint8Array(COUNTER_ENTRY_LENGTH)): Uint8Array {
  if (!Number.isSafeInteger(reservedUpTo) || reservedUpTo < 0) throw new RangeError(`reservedUpTo must be an integer in 0..2^53-1, got ${reservedUpTo}`);
  return encodeEntry16(target, FORMAT_VERSIONS.counter, COUNTER_KIND_BOUND, 0, reservedUpTo);
}

export type CounterSlot =
  | { kind: 'free' }
  | { kind: 'bound'; reservedUpTo: number }
  /** CRC good, version newer than this firmware reads. */
  | { kind: 'too-new'; version: number }
  /** Torn, damaged or not a counter entry. */
  | { kind: 'corrupt' };

/** Classify the 16-byte slot at `bytes[at, at + 16)`. */
export function decodeCounterSlot(bytes: Uint8Array, at = 0): CounterSlot {
  const entry = readEntry16(bytes, at);
  if (entry.kind !== 'entry') return entry.kind === 'free' ? FREE : CORRUPT;
  if (entry.version > FORMAT_VERSIONS.counter) return { kind: 'too-new', version: entry.version };
  if (entry.version !== FORMAT_VERSIONS.counter || entry.tag !== COUNTER_KIND_BOUND || entry.extra !== 0 || entry.value === undefined) return CORRUPT;
  return { kind: 'bound', reservedUpTo: entry.value };
}

const FREE: CounterSlot = Object.freeze({ kind: 'free' });
const CORRUPT: CounterSlot = Object.freeze({ kind: 'corrupt' });

interface Recovered {
  blockLength: number;
  active: number;
  nextSlot: number;
  bound: number;
  bytesRead: number;
  skipped: number;
}

function checkOptions(options: CounterOptions | undefined): number {
  if (options === undefined) return DEFAULT_COUNTER_RESERVE;
  if (typeof options !== 'object' || options === null) throw new TypeError('counter options must be an object');
  const reserve = options.reserve;
  if (reserve === undefined) return DEFAULT_COUNTER_RESERVE;
  if (typeof reserve !== 'number') throw new TypeError(`reserve must be a number, got ${typeof reserve}`);
  if (!Number.isInteger(reserve) || reserve < 1 || reserve > MAX_COUNTER_RESERVE) {
    throw new RangeError(`reserve must be an integer in 1..${MAX_COUNTER_RESERVE}, got ${reserve}`);
  }
  return reserve;
}

/** The geometry the format needs; returns the block length. */
function checkGeometry(flash: FlashPartition): number {
  const { blocks, blockLength, writeAlign, eraseValue } = flash.status();
  if (blocks < ROTATION_BLOCKS) throw new StorageError('bad-geometry', `the counter needs ${ROTATION_BLOCKS} blocks, the partition has ${blocks}`);
  if (!(writeAlign >= 1) || COUNTER_ENTRY_LENGTH % writeAlign !== 0) {
    throw new StorageError('bad-geometry', `a ${COUNTER_ENTRY_LENGTH}-byte entry is not a whole number of ${writeAlign}-byte program units`);
  }
  if (!(blockLength >= COUNTER_ENTRY_LENGTH) || blockLength % COUNTER_ENTRY_LENGTH !== 0) {
    throw new StorageError('bad-geometry', `block length ${blockLength} is not a multiple of the ${COUNTER_ENTRY_LENGTH}-byte entry`);
  }
  if (eraseValue !== ERASED) throw new StorageError('bad-geometry', `the format needs erased bytes of 0xFF, the flash erases to ${eraseValue}`);
  return blockLength;
}

/** Recovery (docs/spec/counter.md, "Recovery"): read both blocks, take the largest valid bound. */
function recover(flash: FlashPartition): Recovered {
  const blockLength = checkGeometry(flash);
  const chunk = new Uint8Array(Math.min(SCAN_CHUNK, blockLength));
  const scans: BlockScan[] = [];
  for (let block = 0; block < ROTATION_BLOCKS; block++) scans.push(scanBlock(flash, block, blockLength, chunk));
  const bytesRead = ROTATION_BLOCKS * blockLength;
  const skipped = scans[0].skipped + scans[1].skipped;
  const active = scans[1].maxBound > scans[0].maxBound ? 1 : 0;
  if (scans[active].maxBound >= 0) {
    return { blockLength, active, nextSlot: scans[active].lastUsed + 1, bound: scans[active].maxBound, bytesRead, skipped };
  }
  // No valid entry anywhere. Blank, or block 0 holding only first writes that power cuts tore
  // (a prefix of non-free slots) while block 1 is blank: no value was ever returned. Anything else is not a counter.
  if (scans[1].lastUsed < 0 && !scans[0].gap) {
    return { blockLength, active: 0, nextSlot: scans[0].lastUsed + 1, bound: 0, bytesRead, skipped };
  }
  throw new StorageError('not-formatted', 'neither counter block holds a valid entry and the partition is not blank: the last value cannot be proven');
}

function scanBlock(flash: FlashPartition, block: number, blockLength: number, chunk: Uint8Array): BlockScan {
  const scan: BlockScan = { maxBound: -1, lastUsed: -1, gap: false, skipped: 0 };
  let sawFree = false;
  for (let offset = 0; offset < blockLength; offset += chunk.length) {
    const view = chunk.length <= blockLength - offset ? chunk : chunk.subarray(0, blockLength - offset);
    flash.read(block * blockLength + offset, view);
    for (let at = 0; at < view.length; at += COUNTER_ENTRY_LENGTH) {
      const slot = decodeCounterSlot(view, at);
      if (slot.kind === 'free') {
        sawFree = true;
        continue;
      }
      if (slot.kind === 'too-new') {
        throw new StorageError('format-too-new', `counter entry of format ${slot.version} in block ${block}; this firmware reads format ${FORMAT_VERSIONS.counter}`);
      }
      if (sawFree) scan.gap = true;
      scan.lastUsed = (offset + at) / COUNTER_ENTRY_LENGTH;
      if (slot.kind === 'bound') scan.maxBound = Math.max(scan.maxBound, slot.reservedUpTo);
      else scan.skipped++;
    }
  }
  return scan;
}
