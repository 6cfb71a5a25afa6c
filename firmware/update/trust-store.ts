/**
 * The trusted root in flash (docs/spec/root.md, "Persistence"): two blocks,
 * one record each, so a power cut can never destroy the only copy.
 *
 *   0        4     5     6        8            12       16             16+len
 *   +--------+-----+-----+--------+------------+--------+--------------+----------+
 *   | "HFTR" | fmt | 0x00| len    | root vers. | CRC-32 | root envelope| 0xFF pad |
 *   +--------+-----+-----+--------+------------+--------+--------------+----------+
 *
 * Little-endian. The CRC-32 (base/crc32.ts) covers bytes 0..11 and the
 * envelope. A record is written with one aligned program right after its
 * block is erased, so it suits strict (flash-encryption) mode too.
 *
 * Save: erase the block that does NOT hold the newest intact record, then
 * program the new record there. A cut during the erase or the program
 * leaves a torn block that fails its CRC and the old record intact, so
 * `load` returns the old root or the new one, never nothing and never an
 * older one than the last completed save.
 *
 * Load: the intact record with the highest root version whose envelope is
 * still signed by a threshold of its own root keys (every root this store
 * accepts is: a rotation needs the new keys' threshold too). Records are
 * not trusted on their CRC alone: a CRC only detects accidents.
 */
import { FORMAT_VERSIONS } from '../base/format-versions.ts';
import type { Crypto } from '../hal/crypto.ts';
import type { FlashPartition } from '../hal/flash.ts';
import { crc32Final, crc32Init, crc32Update } from '../base/crc32.ts';
import { StorageError } from '../storage/errors.ts';
import { MAX_ENVELOPE_LENGTH } from './signed-document.ts';
import { trustProvisionedRoot, type TrustedRoot } from './root.ts';

/** Format version of the trust store record. */
export const TRUST_STORE_FORMAT_VERSION = FORMAT_VERSIONS.trustStore;
/** "HFTR": holdfast trusted root. */
export const TRUST_RECORD_MAGIC: readonly number[] = Object.freeze([0x48, 0x46, 0x54, 0x52]);
/** One 16-byte unit of ESP32 flash encryption. */
export const TRUST_RECORD_HEADER_LENGTH = 16;
/** Blocks the store uses, from `firstBlock`. */
export const TRUST_STORE_BLOCKS = 2;

export interface TrustStoreOptions {
  /** First of the two blocks to use (default 0). */
  firstBlock?: number;
}

/** What `inspect` found in one block. */
export type TrustBlockState =
  | { readonly kind: 'blank' }
  | { readonly kind: 'root'; readonly version: number }
  | { readonly kind: 'corrupt'; readonly reason: string };

export class TrustStore {
  private readonly firstBlock: number;
  private readonly blockLength: number;
  private readonly writeAlign: number;

  constructor(
    private readonly flash: FlashPartition,
    private readonly crypto: Crypto,
    options: TrustStoreOptions = {},
  ) {
    const status = flash.status();
    this.firstBlock = options.firstBlock ?? 0;
    this.blockLength = status.blockLength;
    this.writeAlign = status.writeAlign;
    if (!Number.isInteger(this.firstBlock) || this.firstBlock < 0 || this.firstBlock + TRUST_STORE_BLOCKS > status.blocks) {
      throw new StorageError('bad-geometry', `the trust store needs blocks ${this.firstBlock} and ${this.firstBlock + 1}, the partition has ${status.blocks}`);
    }
    if (status.eraseValue !== 0xff) throw new StorageError('bad-geometry', `erase value 0x${status.eraseValue.toString(16)}: the trust store needs NOR flash that erases to 0xFF`);
    if (recordLength(MAX_ENVELOPE_LENGTH, this.writeAlign) > this.blockLength) {
      throw new StorageError('bad-geometry', `a ${this.blockLength}-byte block cannot hold a ${recordLength(MAX_ENVELOPE_LENGTH, this.writeAlign)}-byte root record`);
    }
  }

  /** The newest intact root, or undefined when none was ever saved (or both copies are damaged). */
  load(): TrustedRoot | undefined {
    return this.scan().root;
  }

  /** Each block's state, for diagnostics and tests. */
  inspect(): TrustBlockState[] {
    const states: TrustBlockState[] = [];
    for (let i = 0; i < TRUST_STORE_BLOCKS; i++) {
      const read = this.readBlock(i);
      states.push(read.kind === 'root' ? { kind: 'root', version: read.root.version } : read);
    }
    return states;
  }

  /**
   * Persist `root` (already accepted by `trustProvisionedRoot` or
   * `rotateRoot`). It must be newer than the stored root. Durable on return.
   */
  save(root: TrustedRoot): void {
    if (!(root.bytes instanceof Uint8Array) || root.bytes.length > MAX_ENVELOPE_LENGTH) throw new RangeError('root.bytes must be a root envelope');
    const current = this.scan();
    if (current.root !== undefined && root.version <= current.root.version) {
      throw new RangeError(`root ${root.version} is not newer than the stored root ${current.root.version}`);
    }
    const target = current.block === undefined ? 0 : 1 - current.block;
    const record = encodeRecord(root.version, root.bytes, this.writeAlign);
    this.flash.eraseBlock(this.firstBlock + target);
    this.flash.write((this.firstBlock + target) * this.blockLength, record);
  }

  private scan(): { root: TrustedRoot | undefined; block: number | undefined } {
    let best: { root: TrustedRoot | undefined; block: number | undefined } = { root: undefined, block: undefined };
    for (let i = 0; i < TRUST_STORE_BLOCKS; i++) {
      const read = this.readBlock(i);
      if (read.kind === 'root' && (best.root === undefined || read.root.version > best.root.version)) best = { root: read.root, block: i };
    }
    return best;
  }

  private readBlock(index: number): { kind: 'root'; root: TrustedRoot } | { kind: 'blank' } | { kind: 'corrupt'; reason: string } {
    const base = (this.firstBlock + index) * this.blockLength;
    const header = new Uint8Array(TRUST_RECORD_HEADER_LENGTH);
    this.flash.read(base, header);
    if (header.every((b) => b === 0xff)) return { kind: 'blank' };
    for (let i = 0; i < TRUST_RECORD_MAGIC.length; i++) if (header[i] !== TRUST_RECORD_MAGIC[i]) return { kind: 'corrupt', reason: 'bad magic' };
    if (header[4] !== TRUST_STORE_FORMAT_VERSION) return { kind: 'corrupt', reason: `record format ${header[4]}` };
    if (header[5] !== 0) return { kind: 'corrupt', reason: 'reserved byte set' };
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

function recordLength(envelopeLength: number, writeAlign: number): number {
  return Math.ceil((TRUST_RECORD_HEADER_LENGTH + envelopeLength) / writeAlign) * writeAlign;
}

function encodeRecord(version: number, envelope: Uint8Array, writeAlign: number): Uint8Array {
  const out = new Uint8Array(recordLength(envelope.length, writeAlign)).fill(0xff);
  const view = new DataView(out.buffer);
  out.set(TRUST_RECORD_MAGIC, 0);
  out[4] = TRUST_STORE_FORMAT_VERSION;
  out[5] = 0;
  view.setUint16(6, envelope.length, true);
  view.setUint32(8, version, true);
  out.set(envelope, TRUST_RECORD_HEADER_LENGTH);
  view.setUint32(12, recordCrc(out, envelope), true);
  return out;
}

function recordCrc(header: Uint8Array, envelope: Uint8Array): number {
  return crc32Final(crc32Update(crc32Update(crc32Init(), header, 0, 12), envelope));
}
