/**
 * Persisted anti-replay windows (docs/spec/replay-window.md): one
 * `ReplayWindow` per sender, made restart-safe by a ceiling on flash.
 *
 * Reserve ahead, as the counter does (docs/spec/counter.md): for each sender
 * a durable ceiling C bounds every counter accepted. Before accepting a
 * counter above C, the store first makes C' = counter + R durable; after a
 * restart each window resumes with floor = C and an empty bitmap, so nothing
 * accepted before the restart can be accepted again. The rule is counted in
 * counter values, never in messages: a rule like "refuse anything at or
 * below the persisted value plus K" is unsound once counters skip, which the
 * model docs/models/replay-window.pml shows (planted bug message-counted).
 *
 * The ceilings are 16-byte write-once entries (one strict-mode unit) in the
 * first two blocks of the partition, used as a two-block rotation: when the
 * active block is full, the other block is erased, every other sender's
 * ceiling is copied into it, then the new entry is written. Recovery takes,
 * per sender, the largest valid ceiling of either block.
 */
import { FORMAT_VERSIONS } from '../base/format-versions.ts';
import type { FlashPartition } from '../hal/flash.ts';
import { encodeEntry16, readEntry16 } from '../base/entry16.ts';
import { checkWindowBits, REPLAY_COUNTER_MAX, ReplayError, ReplayWindow, type ReplayVerdict } from './replay-window.ts';

/** Bytes per entry: one 16-byte unit of ESP32 flash encryption. */
export const REPLAY_ENTRY_LENGTH = 16;
/** Format version of the entries, separate from the package version (docs/spec/replay-window.md). */
export const REPLAY_STORE_FORMAT = FORMAT_VERSIONS.replayStore;
/** Entry kind: a sender's ceiling ('R'); distinct from the counter's kind so neither partition opens as the other. */
export const REPLAY_KIND_CEILING = 0x52;
/** Default R: 16 bytes per 256 accepted counters; a restart refuses at most 256 values per sender (docs/spec/replay-window.md). */
export const DEFAULT_CEILING_RESERVE = 256;
/** Largest R accepted. */
export const MAX_CEILING_RESERVE = 0x1_0000_0000;
/** Largest sender index the entry can name (u16), whatever the geometry. */
export const MAX_REPLAY_SENDERS = 0x1_0000;

/** Blocks the store uses: the first two of its partition. */
const ROTATION_BLOCKS = 2;
/** Recovery reads the blocks in chunks of at most this many bytes (a multiple of the entry length). */
const SCAN_CHUNK = 256;
const ERASED = 0xff;

export interface ReplayStoreOptions {
  /** Number of senders (windows), indexed 0..senders-1: integer 1..65536, at most half the slots of a block. Default 1. */
  senders?: number;
  /** R: how far above an accepted counter a new ceiling is set; integer 1..2^32. Default 256. */
  reserve?: number;
  /** Window size W in bits for every sender: integer 1..1024, default 64. */
  windowBits?: number;
}

export interface ReplayStoreStats {
  senders: number;
  reserve: number;
  windowBits: number;
  /** Block (0 or 1) that receives the next entry, before any rotation. */
  activeBlock: number;
  /** Slot index in the active block of the next entry (slotsPerBlock when the block is full). */
  nextSlot: number;
  slotsPerBlock: number;
  /** Entries programmed in this boot (raises and rotation copies). */
  entriesWritten: number;
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
  /** Per sender, the largest valid ceiling in the block, or -1. */
  max: number[];
  /** Valid entries in the block. */
  valid: number;
  /** Index of the last slot that is not free, or -1 when the block is blank. */
  lastUsed: number;
  /** A non-free slot follows a free one (not the shape of appends). */
  gap: boolean;
  /** Non-free slots that are not valid entries. */
  skipped: number;
}

interface Recovered {
  blockLength: number;
  active: number;
  nextSlot: number;
  /** Per sender, the durable ceiling (0: none written). */
  ceilings: number[];
  bytesRead: number;
  skipped: number;
}

interface Config {
  senders: number;
  reserve: number;
  windowBits: number;
}

export class ReplayStore {
  readonly senders: number;
  private readonly flash: FlashPartition;
  private readonly reserve: number;
  private readonly windowBits: number;
  private readonly blockLength: number;
  private readonly slotsPerBlock: number;
  /** Reused for every entry written. */
  private readonly entry = new Uint8Array(REPLAY_ENTRY_LENGTH);
  private readonly windows: ReplayWindow[];
  /** Per sender, the durable ceiling: raised only after its entry is durable. */
  private readonly ceilings: number[];
  private active: number;
  private nextSlot: number;
  private entriesWritten = 0;
  private bytesProgrammed = 0;
  private erases = 0;
  private readonly recoveryBytesRead: number;
  private readonly skippedSlots: number;

  private constructor(flash: FlashPartition, config: Config, recovered: Recovered) {
    this.flash = flash;
    this.senders = config.senders;
    this.reserve = config.reserve;
    this.windowBits = config.windowBits;
    this.blockLength = recovered.blockLength;
    this.slotsPerBlock = recovered.blockLength / REPLAY_ENTRY_LENGTH;
    this.ceilings = recovered.ceilings;
    this.windows = recovered.ceilings.map((ceiling) => new ReplayWindow({ bits: config.windowBits, floor: ceiling }));
    this.active = recovered.active;
    this.nextSlot = recovered.nextSlot;
    this.recoveryBytesRead = recovered.bytesRead;
    this.skippedSlots = recovered.skipped;
  }

  /**
   * Recover the windows from `flash` (reads its first two blocks, writes
   * nothing). Each window starts with floor = its sender's durable ceiling
   * and an empty bitmap. Throws ReplayError 'bad-geometry', 'format-too-new',
   * 'too-many-senders' or 'not-formatted' (docs/spec/replay-window.md,
   * "Recovery"); a blank partition opens with every floor at 0.
   */
  static open(flash: FlashPartition, options?: ReplayStoreOptions): ReplayStore {
    const config = checkOptions(options);
    return new ReplayStore(flash, config, recover(flash, config.senders));
  }

  /**
   * Provisioning: erase the store's two blocks, so every floor opens at 0.
   * Counters already accepted become acceptable again: do it only together
   * with new sender keys, never to get past 'not-formatted' in the field.
   */
  static format(flash: FlashPartition): void {
    checkGeometry(flash, 1);
    for (let block = 0; block < ROTATION_BLOCKS; block++) flash.eraseBlock(block);
  }

  /** The verdict of `sender`'s window for `counter`; changes nothing (reads no flash). */
  check(sender: number, counter: number): ReplayVerdict {
    return this.windows[this.checkSender(sender)].check(counter);
  }

  /**
   * Accept `counter` from `sender`. Call only after the message's tag
   * verified. Throws ReplayError 'not-fresh' (nothing changed) when `check`
   * does not call it fresh. When the counter is above the sender's ceiling,
   * first writes a new ceiling (counter + R, at most 2^53 - 1) and returns
   * only once it is durable; a failure of that write (a power cut) leaves the
   * window unmoved.
   */
  accept(sender: number, counter: number): void {
    const index = this.checkSender(sender);
    const window = this.windows[index];
    const verdict = window.check(counter);
    if (verdict !== 'fresh') throw new ReplayError('not-fresh', `counter ${counter} of sender ${index} is ${verdict}, not fresh`, verdict);
    if (counter > this.ceilings[index]) {
      const ceiling = counter > REPLAY_COUNTER_MAX - this.reserve ? REPLAY_COUNTER_MAX : counter + this.reserve;
      this.persist(index, ceiling);
    }
    window.accept(counter);
  }

  /** The restart floor of `sender` in this boot: everything at or below it is stale. */
  floor(sender: number): number {
    return this.windows[this.checkSender(sender)].floor;
  }

  /** The durable ceiling of `sender`: no counter above it was accepted; the next boot's floor. */
  ceiling(sender: number): number {
    return this.ceilings[this.checkSender(sender)];
  }

  /** The highest counter `sender`'s window accepted in this boot, or its floor. */
  highest(sender: number): number {
    return this.windows[this.checkSender(sender)].highest();
  }

  stats(): ReplayStoreStats {
    return {
      senders: this.senders,
      reserve: this.reserve,
      windowBits: this.windowBits,
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

  private checkSender(sender: number): number {
    if (typeof sender !== 'number') throw new TypeError(`sender must be a number, got ${typeof sender}`);
    if (!Number.isInteger(sender) || sender < 0 || sender >= this.senders) throw new RangeError(`sender must be an integer in 0..${this.senders - 1}, got ${sender}`);
    return sender;
  }

  /** Make `ceiling` durable for `sender`, rotating first when the active block is full. */
  private persist(sender: number, ceiling: number): void {
    if (this.nextSlot >= this.slotsPerBlock) this.rotate(sender);
    this.append(sender, ceiling);
    this.ceilings[sender] = ceiling;
  }

  /**
   * The active block is full and holds every sender's ceiling: erase the
   * other block, make it active and copy the other senders' ceilings into it.
   * The entry for `sender` (the raise) follows, written last: until it is
   * durable the old block still holds every ceiling.
   */
  private rotate(sender: number): void {
    const other = 1 - this.active;
    this.flash.eraseBlock(other);
    this.erases++;
    this.active = other;
    this.nextSlot = 0;
    for (let s = 0; s < this.senders; s++) {
      if (s !== sender && this.ceilings[s] > 0) this.append(s, this.ceilings[s]);
    }
  }

  /** Write one entry at the next slot of the active block; returns once it is durable. */
  private append(sender: number, ceiling: number): void {
    // Consume the slot before programming it: after a failed write the slot is never programmed again.
    const slot = this.nextSlot++;
    encodeReplayEntry(sender, ceiling, this.entry);
    this.flash.write(this.active * this.blockLength + slot * REPLAY_ENTRY_LENGTH, this.entry);
    this.entriesWritten++;
    this.bytesProgrammed += REPLAY_ENTRY_LENGTH;
  }
}

/** Encode the format-1 entry "the ceiling of `sender` is `ceiling`" into `target` (16 bytes). */
export function encodeReplayEntry(sender: number, ceiling: number, target: Uint8Array = new Uint8Array(REPLAY_ENTRY_LENGTH)): Uint8Array {
  if (!Number.isInteger(sender) || sender < 0 || sender >= MAX_REPLAY_SENDERS) throw new RangeError(`sender must be an integer in 0..${MAX_REPLAY_SENDERS - 1}, got ${sender}`);
  if (!Number.isSafeInteger(ceiling) || ceiling < 0) throw new RangeError(`ceiling must be an integer in 0..2^53-1, got ${ceiling}`);
  if (target.length !== REPLAY_ENTRY_LENGTH) throw new RangeError(`an entry is ${REPLAY_ENTRY_LENGTH} bytes, target has ${target.length}`);
  return encodeEntry16(target, REPLAY_STORE_FORMAT, REPLAY_KIND_CEILING, sender, ceiling);
}

export type ReplaySlot =
  | { kind: 'free' }
  | { kind: 'ceiling'; sender: number; ceiling: number }
  /** CRC good, version newer than this firmware reads. */
  | { kind: 'too-new'; version: number }
  /** CRC good and not newer, but not a replay-store entry (another format's entry): the partition is not a store. */
  | { kind: 'foreign' }
  /** Torn or damaged: the CRC does not check. */
  | { kind: 'corrupt' };

/** Classify the 16-byte slot at `bytes[at, at + 16)`. */
export function decodeReplaySlot(bytes: Uint8Array, at = 0): ReplaySlot {
  const entry = readEntry16(bytes, at);
  if (entry.kind !== 'entry') return entry.kind === 'free' ? FREE : CORRUPT;
  if (entry.version > REPLAY_STORE_FORMAT) return { kind: 'too-new', version: entry.version };
  if (entry.version !== REPLAY_STORE_FORMAT || entry.tag !== REPLAY_KIND_CEILING || entry.value === undefined) return FOREIGN;
  return { kind: 'ceiling', sender: entry.extra, ceiling: entry.value };
}

const FREE: ReplaySlot = Object.freeze({ kind: 'free' });
const CORRUPT: ReplaySlot = Object.freeze({ kind: 'corrupt' });
const FOREIGN: ReplaySlot = Object.freeze({ kind: 'foreign' });

function checkOptions(options: ReplayStoreOptions | undefined): Config {
  if (options === undefined) return { senders: 1, reserve: DEFAULT_CEILING_RESERVE, windowBits: checkWindowBits(undefined) };
  if (typeof options !== 'object' || options === null) throw new TypeError('replay store options must be an object');
  return {
    senders: checkInteger('senders', options.senders, 1, 1, MAX_REPLAY_SENDERS),
    reserve: checkInteger('reserve', options.reserve, DEFAULT_CEILING_RESERVE, 1, MAX_CEILING_RESERVE),
    windowBits: checkWindowBits(options.windowBits),
  };
}

function checkInteger(name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number, got ${typeof value}`);
  if (!Number.isInteger(value) || value < min || value > max) throw new RangeError(`${name} must be an integer in ${min}..${max}, got ${value}`);
  return value;
}

/** The geometry the format needs for `senders` senders; returns the block length. */
function checkGeometry(flash: FlashPartition, senders: number): number {
  const { blocks, blockLength, writeAlign, eraseValue } = flash.status();
  if (blocks < ROTATION_BLOCKS) throw new ReplayError('bad-geometry', `the replay store needs ${ROTATION_BLOCKS} blocks, the partition has ${blocks}`);
  if (!(writeAlign >= 1) || REPLAY_ENTRY_LENGTH % writeAlign !== 0) {
    throw new ReplayError('bad-geometry', `a ${REPLAY_ENTRY_LENGTH}-byte entry is not a whole number of ${writeAlign}-byte program units`);
  }
  if (!(blockLength >= REPLAY_ENTRY_LENGTH) || blockLength % REPLAY_ENTRY_LENGTH !== 0) {
    throw new ReplayError('bad-geometry', `block length ${blockLength} is not a multiple of the ${REPLAY_ENTRY_LENGTH}-byte entry`);
  }
  if (eraseValue !== ERASED) throw new ReplayError('bad-geometry', `the format needs erased bytes of 0xFF, the flash erases to ${eraseValue}`);
  // A rotation writes one entry per sender: keep at least as many slots free after it.
  if (blockLength / REPLAY_ENTRY_LENGTH < 2 * senders) {
    throw new ReplayError('bad-geometry', `${senders} senders need blocks of at least ${2 * senders} entries, a block holds ${blockLength / REPLAY_ENTRY_LENGTH}`);
  }
  return blockLength;
}

/** Recovery (docs/spec/replay-window.md, "Recovery"): read both blocks, take each sender's largest valid ceiling. */
function recover(flash: FlashPartition, senders: number): Recovered {
  const blockLength = checkGeometry(flash, senders);
  const chunk = new Uint8Array(Math.min(SCAN_CHUNK, blockLength));
  const scans: BlockScan[] = [];
  for (let block = 0; block < ROTATION_BLOCKS; block++) scans.push(scanBlock(flash, block, blockLength, chunk, senders));
  const bytesRead = ROTATION_BLOCKS * blockLength;
  const skipped = scans[0].skipped + scans[1].skipped;
  const slotsPerBlock = blockLength / REPLAY_ENTRY_LENGTH;
  if (scans[0].valid + scans[1].valid === 0) {
    // Blank, or block 0 holding only first writes that power cuts tore (a prefix of non-free
    // slots) while block 1 is blank: no counter was ever accepted. Anything else is not a store.
    if (scans[1].lastUsed < 0 && !scans[0].gap) {
      return { blockLength, active: 0, nextSlot: scans[0].lastUsed + 1, ceilings: new Array<number>(senders).fill(0), bytesRead, skipped };
    }
    throw new ReplayError('not-formatted', 'neither replay-store block holds a valid entry and the partition is not blank: the floors cannot be proven');
  }
  const ceilings: number[] = [];
  for (let s = 0; s < senders; s++) ceilings.push(Math.max(0, scans[0].max[s], scans[1].max[s]));
  // Append only into a block that holds every sender's ceiling: the next rotation erases the other one.
  const matches = scans.map((scan) => countMatches(scan, ceilings));
  const room = scans.map((scan) => slotsPerBlock - 1 - scan.lastUsed);
  let active: number;
  if (matches[0] === matches[1]) active = room[1] > room[0] ? 1 : 0;
  else active = matches[1] > matches[0] ? 1 : 0;
  return { blockLength, active, nextSlot: scans[active].lastUsed + 1, ceilings, bytesRead, skipped };
}

/** Senders whose overall ceiling this block holds (a block holding all of them is complete). */
function countMatches(scan: BlockScan, ceilings: readonly number[]): number {
  let matches = 0;
  for (let s = 0; s < ceilings.length; s++) if (ceilings[s] === 0 || scan.max[s] === ceilings[s]) matches++;
  return matches;
}

function scanBlock(flash: FlashPartition, block: number, blockLength: number, chunk: Uint8Array, senders: number): BlockScan {
  const scan: BlockScan = { max: new Array<number>(senders).fill(-1), valid: 0, lastUsed: -1, gap: false, skipped: 0 };
  let sawFree = false;
  for (let offset = 0; offset < blockLength; offset += chunk.length) {
    const view = chunk.length <= blockLength - offset ? chunk : chunk.subarray(0, blockLength - offset);
    flash.read(block * blockLength + offset, view);
    for (let at = 0; at < view.length; at += REPLAY_ENTRY_LENGTH) {
      const slot = decodeReplaySlot(view, at);
      if (slot.kind === 'free') {
        sawFree = true;
        continue;
      }
      if (slot.kind === 'too-new') {
        throw new ReplayError('format-too-new', `replay-store entry of format ${slot.version} in block ${block}; this firmware reads format ${REPLAY_STORE_FORMAT}`);
      }
      if (slot.kind === 'foreign') {
        throw new ReplayError('not-formatted', `block ${block} slot ${(offset + at) / REPLAY_ENTRY_LENGTH} holds a checked entry that is not a replay-store ceiling`);
      }
      if (sawFree) scan.gap = true;
      scan.lastUsed = (offset + at) / REPLAY_ENTRY_LENGTH;
      if (slot.kind === 'corrupt') {
        scan.skipped++;
        continue;
      }
      if (slot.sender >= senders) {
        throw new ReplayError('too-many-senders', `block ${block} holds a ceiling for sender ${slot.sender}; the store is configured for ${senders}`);
      }
      scan.valid++;
      scan.max[slot.sender] = Math.max(scan.max[slot.sender], slot.ceiling);
    }
  }
  return scan;
}
