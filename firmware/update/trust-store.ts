/**
 * The trusted root in flash (docs/spec/root.md, "Persistence", format 2):
 * two blocks, one record each, so a power cut can never destroy the only
 * copy; and marks that make damage visible, so a damaged newest record is
 * refused instead of read as an older root or as "never provisioned".
 *
 * Block layout (U = the 16-byte unit, or writeAlign if larger):
 *
 *   0                     16                 16+len         B-2U     B-U      B
 *   +---------------------+------------------+----- ... ----+--------+--------+
 *   | record header       | root envelope    | 0xFF         | C mark | S mark |
 *   +---------------------+------------------+----- ... ----+--------+--------+
 *
 *   record header:  "HFTR" | fmt | ~fmt | len u16 | root version u32 | CRC-32
 *   mark (16 bytes): "HFTM" | fmt | ~fmt | kind | 0x00 | root version u32 | CRC-32
 *
 * Little-endian. A record's CRC-32 (base/crc32.ts) covers header bytes 0..11
 * and the envelope; a mark's covers its bytes 0..11. The format byte is
 * followed by its complement in every format, so a torn or damaged format
 * byte reads as damage, never as "a newer format". C (kind 0x43) in a
 * block says "this block's record of root v was complete"; S (kind 0x53)
 * says "the other block held a complete record of root v". Every write is
 * one aligned program into erased flash, so strict (flash-encryption) mode
 * works too.
 *
 * Save of root v (the newest stored root s is in block A, the target is the
 * other block B): erase B; program the record in B; program C(v) in B;
 * program S(v) in A. Returns when all four are done.
 *
 * Load, first match wins (docs/spec/root.md has the table and the reasons):
 * 1. a record or mark of a newer format: StorageError 'format-too-new';
 *    of an older format: 'not-formatted';
 * 2. R := the intact record with the highest version (CRC, header version
 *    equal to the envelope's, and a threshold of its own root keys);
 * 3. a readable mark names a version above R's (or there is no R): the
 *    newest root was damaged, StorageError 'damaged';
 * 4. a mark is neither erased nor readable and there is no R: 'damaged';
 * 5. R, or undefined (never provisioned) when no block has a root or a mark.
 */
import { FORMAT_VERSIONS } from '../base/format-versions.ts';
import type { Crypto } from '../hal/crypto.ts';
import type { FlashPartition } from '../hal/flash.ts';
import { crc32Final, crc32Init, crc32Update } from '../base/crc32.ts';
import { StorageError } from '../storage/errors.ts';
import { MAX_ENVELOPE_LENGTH } from './signed-document.ts';
import { trustProvisionedRoot, type TrustedRoot } from './root.ts';

/** Format version of the trust store's records and marks. */
export const TRUST_STORE_FORMAT_VERSION = FORMAT_VERSIONS.trustStore;
/** "HFTR": holdfast trusted root. */
export const TRUST_RECORD_MAGIC: readonly number[] = Object.freeze([0x48, 0x46, 0x54, 0x52]);
/** "HFTM": holdfast trust mark. */
export const TRUST_MARK_MAGIC: readonly number[] = Object.freeze([0x48, 0x46, 0x54, 0x4d]);
/** One 16-byte unit of ESP32 flash encryption. */
export const TRUST_RECORD_HEADER_LENGTH = 16;
export const TRUST_MARK_LENGTH = 16;
/** Mark kinds: C, "this block's record is complete"; S, "the other block's record is complete". */
export const TRUST_MARK_KIND = Object.freeze({ complete: 0x43, successor: 0x53 });
/** Blocks the store uses, from `firstBlock`. */
export const TRUST_STORE_BLOCKS = 2;

export interface TrustStoreOptions {
  /** First of the two blocks to use (default 0). */
  firstBlock?: number;
}

/** A mark slot as read: erased, a version, or neither. */
export type TrustMarkState = { readonly kind: 'none' } | { readonly kind: 'mark'; readonly version: number } | { readonly kind: 'unreadable'; readonly reason: string };

/** What `inspect` found in one block. */
export interface TrustBlockState {
  readonly record:
    | { readonly kind: 'blank' }
    | { readonly kind: 'root'; readonly version: number }
    | { readonly kind: 'corrupt'; readonly reason: string };
  /** C: this block's record was complete. */
  readonly complete: TrustMarkState;
  /** S: the other block's record was complete. */
  readonly successor: TrustMarkState;
}

type RecordRead =
  | { readonly kind: 'blank' }
  | { readonly kind: 'root'; readonly root: TrustedRoot }
  | { readonly kind: 'corrupt'; readonly reason: string }
  | { readonly kind: 'format'; readonly format: number };

type MarkRead = TrustMarkState | { readonly kind: 'format'; readonly format: number };

interface BlockRead {
  readonly record: RecordRead;
  readonly complete: MarkRead;
  readonly successor: MarkRead;
}

export class TrustStore {
  private readonly firstBlock: number;
  private readonly blockLength: number;
  private readonly writeAlign: number;
  private readonly markUnit: number;

  constructor(
    private readonly flash: FlashPartition,
    private readonly crypto: Crypto,
    options: TrustStoreOptions = {},
  ) {
    const status = flash.status();
    this.firstBlock = options.firstBlock ?? 0;
    this.blockLength = status.blockLength;
    this.writeAlign = status.writeAlign;
    this.markUnit = Math.ceil(TRUST_MARK_LENGTH / this.writeAlign) * this.writeAlign;
    if (!Number.isInteger(this.firstBlock) || this.firstBlock < 0 || this.firstBlock + TRUST_STORE_BLOCKS > status.blocks) {
      throw new StorageError('bad-geometry', `the trust store needs blocks ${this.firstBlock} and ${this.firstBlock + 1}, the partition has ${status.blocks}`);
    }
    if (status.eraseValue !== 0xff) throw new StorageError('bad-geometry', `erase value 0x${status.eraseValue.toString(16)}: the trust store needs NOR flash that erases to 0xFF`);
    const needed = recordLength(MAX_ENVELOPE_LENGTH, this.writeAlign) + 2 * this.markUnit;
    if (needed > this.blockLength) {
      throw new StorageError('bad-geometry', `a ${this.blockLength}-byte block cannot hold a ${recordLength(MAX_ENVELOPE_LENGTH, this.writeAlign)}-byte root record and two marks`);
    }
  }

  /**
   * The newest intact root, or undefined when the store was never
   * provisioned (both blocks hold no root and no mark). Throws StorageError
   * 'format-too-new', 'not-formatted' or 'damaged' rather than read an
   * older root than the newest one stored, or read a damaged store as blank.
   */
  load(): TrustedRoot | undefined {
    return this.scan().root;
  }

  /** Each block's state, for diagnostics and tests; never throws on flash contents. */
  inspect(): TrustBlockState[] {
    const states: TrustBlockState[] = [];
    for (let i = 0; i < TRUST_STORE_BLOCKS; i++) {
      const read = this.readBlock(i);
      const record = read.record;
      states.push({
        record:
          record.kind === 'root'
            ? { kind: 'root', version: record.root.version }
            : record.kind === 'format'
              ? { kind: 'corrupt', reason: `record format ${record.format}` }
              : record,
        complete: markState(read.complete),
        successor: markState(read.successor),
      });
    }
    return states;
  }

  /**
   * Persist `root` (already accepted by `trustProvisionedRoot` or
   * `rotateRoot`). It must be newer than the stored root. Durable on return.
   * Throws what `load` throws when the stored state cannot be read.
   */
  save(root: TrustedRoot): void {
    if (!(root.bytes instanceof Uint8Array) || root.bytes.length > MAX_ENVELOPE_LENGTH) throw new RangeError('root.bytes must be a root envelope');
    const current = this.scan();
    if (current.root !== undefined && root.version <= current.root.version) {
      throw new RangeError(`root ${root.version} is not newer than the stored root ${current.root.version}`);
    }
    const target = current.block === undefined ? 0 : 1 - current.block;
    const other = 1 - target;
    const targetBase = (this.firstBlock + target) * this.blockLength;
    this.flash.eraseBlock(this.firstBlock + target);
    this.flash.write(targetBase, encodeRecord(root.version, root.bytes, this.writeAlign));
    this.flash.write(targetBase + this.markOffset(TRUST_MARK_KIND.complete), this.encodeMark(TRUST_MARK_KIND.complete, root.version));
    // The S slot of the other block has been erased since that block was last
    // written, unless damage touched it: then programming it would only make
    // garbage (and break strict mode), so it is left, and the whole-block
    // protection of this root waits for the next save.
    const successorAt = (this.firstBlock + other) * this.blockLength + this.markOffset(TRUST_MARK_KIND.successor);
    const slot = new Uint8Array(this.markUnit);
    this.flash.read(successorAt, slot);
    if (slot.every((b) => b === 0xff)) this.flash.write(successorAt, this.encodeMark(TRUST_MARK_KIND.successor, root.version));
  }

  private scan(): { root: TrustedRoot | undefined; block: number | undefined } {
    const blocks: BlockRead[] = [];
    for (let i = 0; i < TRUST_STORE_BLOCKS; i++) blocks.push(this.readBlock(i));
    blocks.forEach((b, i) => {
      for (const [what, read] of [['record', b.record], ['C mark', b.complete], ['S mark', b.successor]] as const) {
        if (read.kind !== 'format') continue;
        if (read.format > TRUST_STORE_FORMAT_VERSION) {
          throw new StorageError('format-too-new', `trust store block ${i}: ${what} of format ${read.format}, this firmware reads format ${TRUST_STORE_FORMAT_VERSION}; nothing was changed`);
        }
        throw new StorageError('not-formatted', `trust store block ${i}: ${what} of format ${read.format}, this firmware reads only format ${TRUST_STORE_FORMAT_VERSION}; nothing was changed`);
      }
    });
    let root: TrustedRoot | undefined;
    let block: number | undefined;
    blocks.forEach((b, i) => {
      if (b.record.kind === 'root' && (root === undefined || b.record.root.version > root.version)) {
        root = b.record.root;
        block = i;
      }
    });
    const have = root === undefined ? 0 : (root as TrustedRoot).version;
    blocks.forEach((b, i) => {
      for (const [what, mark] of [['C', b.complete], ['S', b.successor]] as const) {
        if (mark.kind === 'mark' && mark.version > have) {
          throw new StorageError(
            'damaged',
            `trust store block ${i}: its ${what} mark says root ${mark.version} was stored, the newest readable root is ${have === 0 ? 'none' : have}; refusing to fall back`,
          );
        }
        if (mark.kind === 'unreadable' && root === undefined) {
          throw new StorageError('damaged', `trust store block ${i}: its ${what} mark is damaged (${mark.reason}) and no root is readable; refusing to read the store as blank`);
        }
      }
    });
    return { root, block };
  }

  private markOffset(kind: number): number {
    return this.blockLength - (kind === TRUST_MARK_KIND.complete ? 2 : 1) * this.markUnit;
  }

  private encodeMark(kind: number, version: number): Uint8Array {
    const out = new Uint8Array(this.markUnit).fill(0xff);
    out.set(TRUST_MARK_MAGIC, 0);
    out[4] = TRUST_STORE_FORMAT_VERSION;
    out[5] = ~TRUST_STORE_FORMAT_VERSION & 0xff;
    out[6] = kind;
    out[7] = 0;
    const view = new DataView(out.buffer);
    view.setUint32(8, version, true);
    view.setUint32(12, crc32Final(crc32Update(crc32Init(), out, 0, 12)), true);
    return out;
  }

  private readBlock(index: number): BlockRead {
    const base = (this.firstBlock + index) * this.blockLength;
    return {
      record: this.readRecord(base),
      complete: this.readMark(base + this.markOffset(TRUST_MARK_KIND.complete), TRUST_MARK_KIND.complete),
      successor: this.readMark(base + this.markOffset(TRUST_MARK_KIND.successor), TRUST_MARK_KIND.successor),
    };
  }

  private readMark(at: number, kind: number): MarkRead {
    const unit = new Uint8Array(TRUST_MARK_LENGTH);
    this.flash.read(at, unit);
    if (unit.every((b) => b === 0xff)) return { kind: 'none' };
    for (let i = 0; i < TRUST_MARK_MAGIC.length; i++) if (unit[i] !== TRUST_MARK_MAGIC[i]) return { kind: 'unreadable', reason: 'bad magic' };
    if ((unit[4] ^ unit[5]) !== 0xff) return { kind: 'unreadable', reason: 'format byte and its complement disagree (torn or damaged)' };
    if (unit[4] !== TRUST_STORE_FORMAT_VERSION) return { kind: 'format', format: unit[4] };
    const view = new DataView(unit.buffer);
    if (view.getUint32(12, true) !== crc32Final(crc32Update(crc32Init(), unit, 0, 12))) return { kind: 'unreadable', reason: 'CRC mismatch' };
    if (unit[6] !== kind || unit[7] !== 0) return { kind: 'unreadable', reason: 'wrong kind or reserved byte' };
    const version = view.getUint32(8, true);
    if (version === 0) return { kind: 'unreadable', reason: 'version 0' };
    return { kind: 'mark', version };
  }

  private readRecord(base: number): RecordRead {
    const header = new Uint8Array(TRUST_RECORD_HEADER_LENGTH);
    this.flash.read(base, header);
    if (header.every((b) => b === 0xff)) return { kind: 'blank' };
    for (let i = 0; i < TRUST_RECORD_MAGIC.length; i++) if (header[i] !== TRUST_RECORD_MAGIC[i]) return { kind: 'corrupt', reason: 'bad magic' };
    // Format 1 (before marks) had a reserved 0x00 where later formats repeat the format byte complemented.
    if (header[4] === 1 && header[5] === 0) return { kind: 'format', format: 1 };
    if ((header[4] ^ header[5]) !== 0xff) return { kind: 'corrupt', reason: 'format byte and its complement disagree (torn or damaged)' };
    if (header[4] !== TRUST_STORE_FORMAT_VERSION) return { kind: 'format', format: header[4] };
    const view = new DataView(header.buffer);
    const length = view.getUint16(6, true);
    const version = view.getUint32(8, true);
    if (length === 0 || length > MAX_ENVELOPE_LENGTH) return { kind: 'corrupt', reason: `length ${length}` };
    const envelope = new Uint8Array(length);
    this.flash.read(base + TRUST_RECORD_HEADER_LENGTH, envelope);
    if (view.getUint32(12, true) !== recordCrc(header, envelope)) return { kind: 'corrupt', reason: 'CRC mismatch' };
    const verdict = trustProvisionedRoot(this.crypto, envelope);
    if (!verdict.ok) return { kind: 'corrupt', reason: `${verdict.reason}: ${verdict.message}` };
    if (verdict.root.version !== version) return { kind: 'corrupt', reason: `header says root ${version}, the envelope ${verdict.root.version}` };
    return { kind: 'root', root: verdict.root };
  }
}

function markState(read: MarkRead): TrustMarkState {
  return read.kind === 'format' ? { kind: 'unreadable', reason: `mark format ${read.format}` } : read;
}

function recordLength(envelopeLength: number, writeAlign: number): number {
  return Math.ceil((TRUST_RECORD_HEADER_LENGTH + envelopeLength) / writeAlign) * writeAlign;
}

function encodeRecord(version: number, envelope: Uint8Array, writeAlign: number): Uint8Array {
  const out = new Uint8Array(recordLength(envelope.length, writeAlign)).fill(0xff);
  const view = new DataView(out.buffer);
  out.set(TRUST_RECORD_MAGIC, 0);
  out[4] = TRUST_STORE_FORMAT_VERSION;
  out[5] = ~TRUST_STORE_FORMAT_VERSION & 0xff;
  view.setUint16(6, envelope.length, true);
  view.setUint32(8, version, true);
  out.set(envelope, TRUST_RECORD_HEADER_LENGTH);
  view.setUint32(12, recordCrc(out, envelope), true);
  return out;
}

function recordCrc(header: Uint8Array, envelope: Uint8Array): number {
  return crc32Final(crc32Update(crc32Update(crc32Init(), header, 0, 12), envelope));
}
