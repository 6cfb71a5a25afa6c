/**
 * The two-block log (docs/spec/two-block-log.md): the small persistent
 * values holdfast must never read lower than they were written, one
 * monotonic value per key, kept in the first two blocks of a partition.
 * The counter (one key: its reserved bound), the security floor (one key)
 * and the replay store (one key per sender: its ceiling) are thin users.
 *
 * Fail closed, and tell cuts from damage:
 * - every record is written twice, copy 1 then copy 2 (two separate
 *   programs), so a cut leaves (torn, free) or (good, torn) and one damaged
 *   copy always leaves the other: a pair with neither copy readable is
 *   evidence of damage, never of a cut, and is refused, never skipped;
 * - a block's header (its generation) is written last when the block is
 *   filled by a rotation, so a valid header proves the block holds every
 *   key's value; a block without one is scratch and its records do not count;
 * - after the header, the older block gets a handoff naming the newer
 *   block's generation: if the newer block is later lost, the handoff says
 *   so and the log refuses instead of falling back to older values;
 * - `format` writes an older block that names the first one, so even the
 *   first block is covered, and a blank partition is refused ('blank'),
 *   never read as zero.
 */
import type { FlashPartition } from '../hal/flash.ts';
import { ENTRY16_LENGTH, encodeEntry16, readEntry16 } from './entry16.ts';
import { StorageError } from './storage-error.ts';

/** Entry tag of a block header; its `extra` is the store's kind, its value the block's generation. */
export const LOG_TAG_HEADER = 0x48;
/** Entry tag of a handoff (last pair of a block); its value is the generation of the block that replaced it. */
export const LOG_TAG_HANDOFF = 0x4e;
/** Bytes per record: two 16-byte copies. */
export const LOG_PAIR_LENGTH = 2 * ENTRY16_LENGTH;
/** Largest value a key can hold: 2^53 - 1. */
export const LOG_MAX_VALUE = Number.MAX_SAFE_INTEGER;

const BLOCKS = 2;
const ERASED = 0xff;
/** Pairs read per flash read during recovery (256 bytes). */
const SCAN_PAIRS = 8;

export interface TwoBlockLogSpec {
  /** The store's name in messages ('counter', 'security floor', ...). */
  readonly name: string;
  /** The store's format version: an entry of a newer one is refused as 'format-too-new', any other as 'not-formatted'. */
  readonly version: number;
  /** The store's record tag (also stamped in the header's `extra`, so one store never opens as another). */
  readonly kind: number;
  /** Keys 0..keys-1 (1..65536). */
  readonly keys: number;
}

/** Damage and cuts recovery found and survived (all zero on a clean partition). */
export interface TwoBlockLogReport {
  /** Records read from one copy because the other copy was damaged. */
  readonly repairedRecords: number;
  /** Records whose first copy a cut tore: never durable, skipped. */
  readonly tornRecords: number;
  /** Slots found damaged where nothing can be lost (free space, the older block of a finished rotation). */
  readonly damagedSlots: number;
  /** The newer block is complete but the older one does not name it yet; the next write names it. */
  readonly handoffPending: boolean;
}

export interface TwoBlockLogStats {
  readonly generation: number;
  /** Block (0 or 1) that receives the next record. */
  readonly activeBlock: number;
  /** Pair index of the next record in the active block (pairsPerBlock - 1 when the block is full). */
  readonly nextPair: number;
  readonly pairsPerBlock: number;
  /** Records (pairs) programmed in this boot, headers and handoffs included. */
  readonly recordsWritten: number;
  readonly bytesProgrammed: number;
  /** Blocks erased in this boot (rotations). */
  readonly erases: number;
  /** Bytes `open` read to recover. */
  readonly recoveryBytesRead: number;
}

/** One record position: what its two copies say together. */
type Pair =
  | { readonly state: 'free' }
  /** Copy 1 torn by a cut, copy 2 never written. */
  | { readonly state: 'torn' }
  /** Neither copy readable and not the shape a cut leaves: a record may be lost. */
  | { readonly state: 'unreadable' }
  /** Copy 1 free, copy 2 damaged: damage in free space (a cut never writes copy 2 first). */
  | { readonly state: 'damaged-free' }
  | { readonly state: 'record'; readonly tag: number; readonly extra: number; readonly value: number; readonly repaired: boolean };

interface BlockScan {
  /** The block's generation, when its header pair holds a valid header. */
  header: number | undefined;
  /** The generation its handoff names, when its last pair holds a valid handoff. */
  handoff: number | undefined;
  /** Slots of the handoff pair still erased (writable). */
  handoffFree: [boolean, boolean];
  /** Per key, the largest value in the block's records, or -1. */
  max: number[];
  /** Per key, whether a record with both copies good holds that largest value. */
  maxWhole: boolean[];
  /** The header was read from one copy (a cut between its copies, or damage). */
  headerLone: boolean;
  /** Last data pair that is not free (0 when none: pair 0 is the header). */
  lastUsed: number;
  unreadable: number;
  torn: number;
  repaired: number;
  damagedSlots: number;
  /** Every byte of the block is 0xFF. */
  blank: boolean;
  /** At least one valid record of this store. */
  anyRecord: boolean;
}

interface Recovered {
  active: number;
  generation: number;
  nextPair: number;
  values: number[];
  handoffPending: boolean;
  /** Keys whose value only one copy holds (a cut between the two programs, or damage). */
  loneKeys: number[];
  headerLone: boolean;
  handoffFree: [boolean, boolean][];
  report: TwoBlockLogReport;
}

export class TwoBlockLog {
  private readonly spec: TwoBlockLogSpec;
  private readonly flash: FlashPartition;
  private readonly blockLength: number;
  private readonly pairsPerBlock: number;
  /** Reused for every copy written. */
  private readonly entry = new Uint8Array(ENTRY16_LENGTH);
  private readonly values: number[];
  /** Per block, which slots of its handoff pair are still erased. */
  private readonly handoffFree: [boolean, boolean][];
  private readonly recoveryReport: TwoBlockLogReport;
  private readonly recoveryBytesRead: number;
  private active: number;
  private generation: number;
  private nextPair: number;
  private handoffPending: boolean;
  private loneKeys: number[];
  private headerLone: boolean;
  private recordsWritten = 0;
  private bytesProgrammed = 0;
  private erases = 0;

  private constructor(flash: FlashPartition, spec: TwoBlockLogSpec, blockLength: number, recovered: Recovered) {
    this.flash = flash;
    this.spec = spec;
    this.blockLength = blockLength;
    this.pairsPerBlock = blockLength / LOG_PAIR_LENGTH;
    this.values = recovered.values;
    this.handoffFree = recovered.handoffFree;
    this.recoveryReport = recovered.report;
    this.recoveryBytesRead = BLOCKS * blockLength;
    this.active = recovered.active;
    this.generation = recovered.generation;
    this.nextPair = recovered.nextPair;
    this.handoffPending = recovered.handoffPending;
    this.loneKeys = recovered.loneKeys;
    this.headerLone = recovered.headerLone;
  }

  /**
   * Recover from the partition (reads its first two blocks, writes nothing).
   * Throws StorageError 'bad-geometry', 'blank', 'not-formatted',
   * 'format-too-new', 'too-many-keys' or 'damaged' (docs/spec/two-block-log.md,
   * "Recovery"); never opens damaged or unknown contents as lower values.
   */
  static open(flash: FlashPartition, spec: TwoBlockLogSpec): TwoBlockLog {
    const blockLength = checkGeometry(flash, spec);
    return new TwoBlockLog(flash, spec, blockLength, recover(flash, spec, blockLength));
  }

  /**
   * Provisioning: erase both blocks, then write block 1 as an older block
   * (generation 1) that names block 0 (generation 2), every key at 0. Values
   * held before become reusable: only with new keys, never to get past a
   * refusal in the field.
   */
  static format(flash: FlashPartition, spec: TwoBlockLogSpec): void {
    const blockLength = checkGeometry(flash, spec);
    flash.eraseBlock(0);
    flash.eraseBlock(1);
    const last = blockLength / LOG_PAIR_LENGTH - 1;
    const entry = new Uint8Array(ENTRY16_LENGTH);
    const put = (block: number, pair: number, tag: number, value: number) => {
      encodeEntry16(entry, spec.version, tag, spec.kind, value);
      for (let copy = 0; copy < 2; copy++) flash.write(block * blockLength + pair * LOG_PAIR_LENGTH + copy * ENTRY16_LENGTH, entry);
    };
    put(1, 0, LOG_TAG_HEADER, 1);
    put(1, last, LOG_TAG_HANDOFF, 2);
    put(0, 0, LOG_TAG_HEADER, 2);
  }

  /** The value of `key` (0 until first written). */
  value(key: number): number {
    return this.values[this.checkKey(key)];
  }

  /**
   * Make `value` durable for `key`; returns once it is. `value` must be
   * above the key's value. Writes a pending handoff first, rotates when the
   * active block is full.
   */
  write(key: number, value: number): void {
    this.checkKey(key);
    if (!Number.isSafeInteger(value) || value <= this.values[key]) {
      throw new RangeError(`${this.spec.name}: a new value of key ${key} must be an integer in ${this.values[key] + 1}..2^53-1, got ${value}`);
    }
    this.settle();
    if (this.nextPair > this.pairsPerBlock - 2) this.rotate(key, value);
    else this.writePair(this.active, this.nextPair++, this.spec.kind, key, value);
    this.values[key] = value;
  }

  /**
   * Finish what a cut interrupted before any value is used: name the newer
   * block in the older one (or, when its handoff slots were damaged, rotate
   * anew), and write again every value that only one copy holds, so that no
   * value recovery showed can later fall back under one damaged unit.
   * Writes nothing when nothing is pending.
   */
  settle(): void {
    if (this.headerLone) {
      // The header cannot be written again in place: a fresh block rewrites every value and the handoff.
      this.rotate(undefined, 0);
      this.headerLone = false;
      this.handoffPending = false;
      this.loneKeys = [];
      return;
    }
    if (this.handoffPending) {
      const older = 1 - this.active;
      if (this.handoffFree[older][0] || this.handoffFree[older][1]) this.writeHandoff(older, this.generation);
      else this.rotate(undefined, 0);
      this.handoffPending = false;
    }
    while (this.loneKeys.length > 0) {
      if (this.nextPair > this.pairsPerBlock - 2) {
        // A rotation writes every value anew as whole pairs.
        this.rotate(undefined, 0);
        this.loneKeys = [];
      } else {
        const key = this.loneKeys.pop() as number;
        this.writePair(this.active, this.nextPair++, this.spec.kind, key, this.values[key]);
      }
    }
  }

  report(): TwoBlockLogReport {
    return { ...this.recoveryReport, handoffPending: this.handoffPending };
  }

  stats(): TwoBlockLogStats {
    return {
      generation: this.generation,
      activeBlock: this.active,
      nextPair: this.nextPair,
      pairsPerBlock: this.pairsPerBlock,
      recordsWritten: this.recordsWritten,
      bytesProgrammed: this.bytesProgrammed,
      erases: this.erases,
      recoveryBytesRead: this.recoveryBytesRead,
    };
  }

  private checkKey(key: number): number {
    if (typeof key !== 'number') throw new TypeError(`key must be a number, got ${typeof key}`);
    if (!Number.isInteger(key) || key < 0 || key >= this.spec.keys) throw new RangeError(`key must be an integer in 0..${this.spec.keys - 1}, got ${key}`);
    return key;
  }

  /**
   * Move to the other block: erase it, copy every key's value into it (the
   * raised key with its new value), then its header, then the handoff in the
   * old block. Until the header is durable the old block holds every value
   * and the new one is scratch; after it, the new block does.
   */
  private rotate(raisedKey: number | undefined, raisedValue: number): void {
    const from = this.active;
    const to = 1 - from;
    this.flash.eraseBlock(to);
    this.erases++;
    this.handoffFree[to] = [true, true];
    let pair = 1;
    for (let key = 0; key < this.spec.keys; key++) {
      const value = key === raisedKey ? raisedValue : this.values[key];
      if (value > 0) this.writePair(to, pair++, this.spec.kind, key, value);
    }
    this.writePair(to, 0, LOG_TAG_HEADER, this.spec.kind, this.generation + 1);
    this.generation++;
    this.active = to;
    this.nextPair = pair;
    this.writeHandoff(from, this.generation);
  }

  /** Write the handoff naming `generation` into the still-erased slots of `block`'s last pair. */
  private writeHandoff(block: number, generation: number): void {
    const at = block * this.blockLength + (this.pairsPerBlock - 1) * LOG_PAIR_LENGTH;
    encodeEntry16(this.entry, this.spec.version, LOG_TAG_HANDOFF, this.spec.kind, generation);
    let wrote = false;
    for (let copy = 0; copy < 2; copy++) {
      if (!this.handoffFree[block][copy]) continue;
      // Consumed before programming: after a failed write the slot is never programmed again.
      this.handoffFree[block][copy] = false;
      this.flash.write(at + copy * ENTRY16_LENGTH, this.entry);
      this.bytesProgrammed += ENTRY16_LENGTH;
      wrote = true;
    }
    // Damaged handoff slots: the next boot finds the handoff pending and rotates anew.
    if (wrote) this.recordsWritten++;
  }

  /** Copy 1, then copy 2: two programs, so a cut never leaves both copies half written. */
  private writePair(block: number, pair: number, tag: number, extra: number, value: number): void {
    encodeEntry16(this.entry, this.spec.version, tag, extra, value);
    const at = block * this.blockLength + pair * LOG_PAIR_LENGTH;
    this.flash.write(at, this.entry);
    this.flash.write(at + ENTRY16_LENGTH, this.entry);
    this.recordsWritten++;
    this.bytesProgrammed += LOG_PAIR_LENGTH;
  }
}

/** The geometry the format needs; returns the block length. */
function checkGeometry(flash: FlashPartition, spec: TwoBlockLogSpec): number {
  const { blocks, blockLength, writeAlign, eraseValue } = flash.status();
  const fail = (why: string) => new StorageError('bad-geometry', `${spec.name}: ${why}`);
  if (blocks < BLOCKS) throw fail(`needs ${BLOCKS} blocks, the partition has ${blocks}`);
  if (!(writeAlign >= 1) || ENTRY16_LENGTH % writeAlign !== 0) throw fail(`a ${ENTRY16_LENGTH}-byte entry is not a whole number of ${writeAlign}-byte program units`);
  if (!(blockLength >= LOG_PAIR_LENGTH) || blockLength % LOG_PAIR_LENGTH !== 0) throw fail(`block length ${blockLength} is not a multiple of the ${LOG_PAIR_LENGTH}-byte record`);
  if (eraseValue !== ERASED) throw fail(`the format needs erased bytes of 0xFF, the flash erases to ${eraseValue}`);
  // Header, one record per key, one more record, handoff: a rotation always leaves room to write.
  const pairs = blockLength / LOG_PAIR_LENGTH;
  if (pairs < spec.keys + 3) throw fail(`${spec.keys} key(s) need blocks of at least ${(spec.keys + 3) * LOG_PAIR_LENGTH} bytes, a block has ${blockLength}`);
  return blockLength;
}

/** Recovery (docs/spec/two-block-log.md, "Recovery"). */
function recover(flash: FlashPartition, spec: TwoBlockLogSpec, blockLength: number): Recovered {
  const scans = [scanBlock(flash, spec, blockLength, 0), scanBlock(flash, spec, blockLength, 1)];
  const handoffFree = scans.map((s) => s.handoffFree);
  const active = currentBlock(spec, scans);
  const current = scans[active];
  const older = scans[1 - active];
  const generation = current.header as number;
  if (current.handoff !== undefined) {
    throw damaged(spec, `block ${active} (generation ${generation}) names a successor of generation ${current.handoff} that is not there: the newer block was lost`);
  }
  if (current.unreadable > 0) {
    throw damaged(spec, `block ${active} holds ${current.unreadable} record(s) with neither copy readable: a value may be lost`);
  }
  // The older block counts only when it is the previous generation; then it names this one, or is about to.
  const olderIsPrevious = older.header === generation - 1;
  if (olderIsPrevious && older.handoff !== undefined && older.handoff !== generation) {
    throw damaged(spec, `block ${1 - active} names successor generation ${older.handoff}, but block ${active} is generation ${generation}`);
  }
  const values: number[] = [];
  const loneKeys: number[] = [];
  for (let key = 0; key < spec.keys; key++) {
    const value = Math.max(0, current.max[key], olderIsPrevious ? older.max[key] : -1);
    values.push(value);
    const whole = (current.max[key] === value && current.maxWhole[key]) || (olderIsPrevious && older.max[key] === value && older.maxWhole[key]);
    if (value > 0 && !whole) loneKeys.push(key);
  }
  // Damage in the previous generation cannot lower a value (this block holds them all); a scratch block is expected garbage.
  const staleDamage = older.header === undefined ? 0 : older.unreadable + older.repaired + older.damagedSlots;
  return {
    active,
    generation,
    nextPair: current.lastUsed + 1,
    values,
    handoffPending: olderIsPrevious && older.handoff === undefined,
    loneKeys,
    headerLone: current.headerLone,
    handoffFree,
    report: {
      repairedRecords: current.repaired,
      tornRecords: current.torn,
      damagedSlots: current.damagedSlots + staleDamage,
      handoffPending: false,
    },
  };
}

/** The block whose header is valid and newest; refuses when there is none or the two disagree. */
function currentBlock(spec: TwoBlockLogSpec, scans: readonly BlockScan[]): number {
  const [h0, h1] = [scans[0].header, scans[1].header];
  if (h0 === undefined && h1 === undefined) {
    if (scans[0].blank && scans[1].blank) throw new StorageError('blank', `${spec.name}: the partition is blank (never formatted, or wiped)`);
    if (scans[0].anyRecord || scans[1].anyRecord) throw damaged(spec, 'neither block holds a valid header: the values cannot be proven');
    throw new StorageError('not-formatted', `${spec.name}: neither block holds a record of this store`);
  }
  if (h0 !== undefined && h1 !== undefined) {
    if (h0 - h1 === 1) return 0;
    if (h1 - h0 === 1) return 1;
    throw damaged(spec, `the block headers name generations ${h0} and ${h1}, which no rotation leaves`);
  }
  return h0 !== undefined ? 0 : 1;
}

function damaged(spec: TwoBlockLogSpec, why: string): StorageError {
  return new StorageError('damaged', `${spec.name}: ${why}`);
}

function scanBlock(flash: FlashPartition, spec: TwoBlockLogSpec, blockLength: number, block: number): BlockScan {
  const pairs = blockLength / LOG_PAIR_LENGTH;
  const scan: BlockScan = {
    header: undefined,
    handoff: undefined,
    handoffFree: [true, true],
    max: new Array<number>(spec.keys).fill(-1),
    maxWhole: new Array<boolean>(spec.keys).fill(false),
    headerLone: false,
    lastUsed: 0,
    unreadable: 0,
    torn: 0,
    repaired: 0,
    damagedSlots: 0,
    blank: true,
    anyRecord: false,
  };
  const chunk = new Uint8Array(Math.min(SCAN_PAIRS, pairs) * LOG_PAIR_LENGTH);
  for (let first = 0; first < pairs; first += SCAN_PAIRS) {
    const count = Math.min(SCAN_PAIRS, pairs - first);
    const view = chunk.subarray(0, count * LOG_PAIR_LENGTH);
    flash.read(block * blockLength + first * LOG_PAIR_LENGTH, view);
    for (let i = 0; i < count; i++) {
      const index = first + i;
      if (index === pairs - 1) {
        scan.handoffFree = [isErased(view, i * LOG_PAIR_LENGTH), isErased(view, i * LOG_PAIR_LENGTH + ENTRY16_LENGTH)];
      }
      notePair(scan, spec, block, index, pairs, readPair(spec, view, i * LOG_PAIR_LENGTH, block, index));
    }
  }
  return scan;
}

/** Fold one pair into the block's scan, by position: header (pair 0), handoff (last pair) or data. */
function notePair(scan: BlockScan, spec: TwoBlockLogSpec, block: number, index: number, pairs: number, pair: Pair): void {
  if (pair.state === 'free') return;
  scan.blank = false;
  const role = index === 0 ? 'header' : index === pairs - 1 ? 'handoff' : 'data';
  if (pair.state === 'damaged-free') {
    // Never programmed again: appends move past it.
    if (role === 'data') scan.lastUsed = index;
    scan.damagedSlots++;
    return;
  }
  if (pair.state !== 'record') {
    // A torn or unreadable header or handoff only means the block lacks one; in data it is counted.
    if (role === 'data') {
      scan.lastUsed = index;
      if (pair.state === 'torn') scan.torn++;
      else scan.unreadable++;
    } else scan.damagedSlots++;
    return;
  }
  scan.anyRecord = true;
  if (pair.repaired) scan.repaired++;
  const where = `block ${block} pair ${index}`;
  const expected = role === 'header' ? LOG_TAG_HEADER : role === 'handoff' ? LOG_TAG_HANDOFF : spec.kind;
  if (pair.tag !== expected || (role !== 'data' && pair.extra !== spec.kind)) {
    throw new StorageError('not-formatted', `${spec.name}: ${where} holds a checked entry (tag 0x${pair.tag.toString(16)}, extra ${pair.extra}) that is not this store's ${role}`);
  }
  if (role === 'header') {
    scan.header = pair.value;
    scan.headerLone = pair.repaired;
  } else if (role === 'handoff') scan.handoff = pair.value;
  else {
    const key = pair.extra;
    if (key >= spec.keys) throw new StorageError('too-many-keys', `${spec.name}: ${where} holds a value for key ${key}; the store is configured for ${spec.keys}`);
    scan.lastUsed = index;
    if (pair.value > scan.max[key]) {
      scan.max[key] = pair.value;
      scan.maxWhole[key] = !pair.repaired;
    } else if (pair.value === scan.max[key] && !pair.repaired) scan.maxWhole[key] = true;
  }
}

/** Classify the two copies at `bytes[at, at + 32)`. */
function readPair(spec: TwoBlockLogSpec, bytes: Uint8Array, at: number, block: number, index: number): Pair {
  const first = readCopy(spec, bytes, at, block, index);
  const second = readCopy(spec, bytes, at + ENTRY16_LENGTH, block, index);
  if (first.kind === 'entry' && second.kind === 'entry') {
    if (first.tag !== second.tag || first.extra !== second.extra || first.value !== second.value) {
      throw damaged(spec, `block ${block} pair ${index}: its two copies disagree`);
    }
    return { state: 'record', tag: first.tag, extra: first.extra, value: first.value, repaired: false };
  }
  if (first.kind === 'entry') return { state: 'record', tag: first.tag, extra: first.extra, value: first.value, repaired: true };
  if (second.kind === 'entry') return { state: 'record', tag: second.tag, extra: second.extra, value: second.value, repaired: true };
  if (first.kind === 'free') return second.kind === 'free' ? FREE : DAMAGED_FREE;
  return second.kind === 'free' ? TORN : UNREADABLE;
}

type Copy = { readonly kind: 'free' } | { readonly kind: 'bad' } | { readonly kind: 'entry'; readonly tag: number; readonly extra: number; readonly value: number };

/** One 16-byte copy: free, bad (CRC fails), or a checked entry of this store's version (else it throws). */
function readCopy(spec: TwoBlockLogSpec, bytes: Uint8Array, at: number, block: number, index: number): Copy {
  const entry = readEntry16(bytes, at);
  if (entry.kind === 'free') return COPY_FREE;
  if (entry.kind === 'corrupt') return COPY_BAD;
  const where = `block ${block} pair ${index}`;
  if (entry.version > spec.version) {
    throw new StorageError('format-too-new', `${spec.name}: ${where} holds an entry of format ${entry.version}; this firmware reads format ${spec.version}`);
  }
  if (entry.version !== spec.version || entry.value === undefined) {
    throw new StorageError('not-formatted', `${spec.name}: ${where} holds a checked entry of format ${entry.version}, not this store's format ${spec.version} (docs/spec/two-block-log.md, "Migration")`);
  }
  return { kind: 'entry', tag: entry.tag, extra: entry.extra, value: entry.value };
}

function isErased(bytes: Uint8Array, at: number): boolean {
  for (let i = at; i < at + ENTRY16_LENGTH; i++) if (bytes[i] !== ERASED) return false;
  return true;
}

const FREE: Pair = Object.freeze({ state: 'free' });
const TORN: Pair = Object.freeze({ state: 'torn' });
const UNREADABLE: Pair = Object.freeze({ state: 'unreadable' });
const DAMAGED_FREE: Pair = Object.freeze({ state: 'damaged-free' });
const COPY_FREE: Copy = Object.freeze({ kind: 'free' });
const COPY_BAD: Copy = Object.freeze({ kind: 'bad' });
