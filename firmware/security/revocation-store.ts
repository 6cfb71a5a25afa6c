/**
 * The device's store of the newest revocation list it accepted
 * (docs/spec/revocation.md, "On the device"): the `hf_revoke` partition,
 * two slots of half the partition each (two 4 KiB blocks on the boards:
 * room for the largest list, 512 entries, 6,744 bytes). One slot holds the
 * committed list; a new list is written into the other slot (erase, list
 * bytes, then the 32-byte slot header last: the commit), then the old slot
 * is erased. So at every instant at least one slot holds a valid header,
 * and a power cut at any flash operation leaves the old list or the new one.
 *
 * Slot header (32 bytes, little-endian): "HFRS" | version | flags 0 |
 * length u16 | number u32 | 4 zero bytes | first 16 bytes of SHA-256 over
 * the header's first 16 bytes and the list bytes. The list bytes follow
 * from byte 32. `format` writes slot 0 with number 0 and no list ("no list
 * yet"): after it every state has a valid slot, so a store without one is
 * damage, never "no list".
 *
 * Open (fail closed, StorageError): a slot whose header is all 0xFF is
 * empty; a header of a newer version is `format-too-new`; the valid slot
 * with the highest number is the store's; no valid slot is `blank` (every
 * header erased: never formatted) or `damaged`; a list that no longer opens
 * against the revocation key is `damaged`. Nothing is ever read as "no list"
 * but the formatted record.
 *
 * Runs in XS and Node: no Node imports, no module state.
 */
import type { Crypto } from '../hal/crypto.ts';
import type { FlashPartition } from '../hal/flash.ts';
import { FORMAT_VERSIONS } from '../base/format-versions.ts';
import { StorageError } from '../base/storage-error.ts';
import { MAX_REVOCATION_LIST_LENGTH, openRevocationList, RevocationError, type RevocationList } from './revocation.ts';

/** "HFRS". */
export const REVOCATION_STORE_MAGIC: readonly number[] = Object.freeze([0x48, 0x46, 0x52, 0x53]);
export const REVOCATION_STORE_FORMAT = FORMAT_VERSIONS.revocationStore;
export const REVOCATION_SLOT_HEADER = 32;
const DIGEST_BYTES = 16;
/** Bytes a slot needs: its header and the largest list. */
export const REVOCATION_SLOT_MIN_BYTES = REVOCATION_SLOT_HEADER + MAX_REVOCATION_LIST_LENGTH;

export interface HeldRevocationList {
  /** 0: none accepted yet. */
  readonly number: number;
  readonly list: RevocationList | undefined;
}

interface SlotReading {
  readonly state: 'empty' | 'valid' | 'invalid' | 'newer';
  readonly number: number;
  readonly bytes: Uint8Array | undefined;
}

export class RevocationStore {
  private current: number;
  private held: HeldRevocationList;

  private constructor(
    private readonly flash: FlashPartition,
    private readonly crypto: Crypto,
    private readonly key: Uint8Array,
    current: number,
    held: HeldRevocationList,
  ) {
    this.current = current;
    this.held = held;
  }

  /** Provisioning: both slots erased, slot 0 "no list yet" (number 0). */
  static format(flash: FlashPartition, crypto: Crypto): void {
    geometry(flash);
    for (let b = 0; b < flash.status().blocks; b++) flash.eraseBlock(b);
    flash.write(0, header(crypto, 0, new Uint8Array(0)));
  }

  /** Recover the held list (reads both slots, writes nothing). Throws StorageError (see the file comment). */
  static open(flash: FlashPartition, crypto: Crypto, revocationKey: Uint8Array): RevocationStore {
    const slotBytes = geometry(flash);
    const slots = [readSlot(flash, crypto, 0), readSlot(flash, crypto, slotBytes)];
    if (slots.some((s) => s.state === 'newer')) throw new StorageError('format-too-new', 'a revocation store slot of a newer format');
    let best = -1;
    for (let i = 0; i < 2; i++) if (slots[i].state === 'valid' && (best < 0 || slots[i].number > slots[best].number)) best = i;
    if (best < 0) {
      if (slots.every((s) => s.state === 'empty')) throw new StorageError('blank', 'the revocation store is blank (never formatted)');
      throw new StorageError('damaged', 'no revocation store slot is valid');
    }
    const chosen = slots[best];
    let list: RevocationList | undefined;
    if (chosen.bytes !== undefined) {
      try {
        list = openRevocationList(crypto, chosen.bytes, revocationKey, 0);
      } catch (error) {
        if (!(error instanceof RevocationError)) throw error;
        throw new StorageError('damaged', `the stored list does not open: ${error.code}`);
      }
      if (list.number !== chosen.number) throw new StorageError('damaged', `slot number ${chosen.number} is not the list's ${list.number}`);
    }
    return new RevocationStore(flash, crypto, revocationKey, best, Object.freeze({ number: chosen.number, list }));
  }

  /** The list held now (number 0 and no list before the first). */
  holding(): HeldRevocationList {
    return this.held;
  }

  /**
   * Accept `bytes` if it opens against the revocation key and is newer than
   * the held list (RevocationError otherwise, nothing written); returns once
   * it is durable (StorageError when the flash refuses: the held list stays).
   */
  accept(bytes: Uint8Array): RevocationList {
    const list = openRevocationList(this.crypto, bytes, this.key, this.held.number);
    const slotBytes = this.flash.status().size / 2;
    const target = 1 - this.current;
    const blocksPerSlot = slotBytes / this.flash.status().blockLength;
    for (let b = 0; b < blocksPerSlot; b++) this.flash.eraseBlock(target * blocksPerSlot + b);
    const align = this.flash.status().writeAlign;
    const padded = new Uint8Array(Math.ceil(bytes.length / align) * align).fill(0xff);
    padded.set(bytes, 0);
    this.flash.write(target * slotBytes + REVOCATION_SLOT_HEADER, padded);
    this.flash.write(target * slotBytes, header(this.crypto, list.number, bytes));
    // Committed: the new list is the store's from here on, whatever happens to the old slot.
    this.current = target;
    this.held = Object.freeze({ number: list.number, list });
    const old = 1 - target;
    for (let b = 0; b < blocksPerSlot; b++) this.flash.eraseBlock(old * blocksPerSlot + b);
    return list;
  }
}

function geometry(flash: FlashPartition): number {
  const { size, blocks, blockLength, writeAlign } = flash.status();
  if (blocks < 2 || blocks % 2 !== 0 || size / 2 < REVOCATION_SLOT_MIN_BYTES || REVOCATION_SLOT_HEADER % writeAlign !== 0 || blockLength % writeAlign !== 0) {
    throw new StorageError('bad-geometry', `revocation store: ${blocks} blocks of ${blockLength} bytes: expected an even number of blocks, each half at least ${REVOCATION_SLOT_MIN_BYTES} bytes`);
  }
  return size / 2;
}

function digestOf(crypto: Crypto, head: Uint8Array, list: Uint8Array): Uint8Array {
  const hash = crypto.createSha256();
  hash.update(head.subarray(0, 16));
  hash.update(list);
  return hash.digest().subarray(0, DIGEST_BYTES);
}

function header(crypto: Crypto, number: number, list: Uint8Array): Uint8Array {
  const out = new Uint8Array(REVOCATION_SLOT_HEADER);
  out.set(REVOCATION_STORE_MAGIC, 0);
  out[4] = REVOCATION_STORE_FORMAT;
  out[5] = 0;
  out[6] = list.length & 0xff;
  out[7] = list.length >>> 8;
  out[8] = number & 0xff;
  out[9] = (number >>> 8) & 0xff;
  out[10] = (number >>> 16) & 0xff;
  out[11] = (number >>> 24) & 0xff;
  out.set(digestOf(crypto, out, list), 16);
  return out;
}

function readSlot(flash: FlashPartition, crypto: Crypto, at: number): SlotReading {
  const head = new Uint8Array(REVOCATION_SLOT_HEADER);
  flash.read(at, head);
  let erased = true;
  for (let i = 0; i < head.length; i++) if (head[i] !== 0xff) erased = false;
  if (erased) return { state: 'empty', number: 0, bytes: undefined };
  for (let i = 0; i < 4; i++) if (head[i] !== REVOCATION_STORE_MAGIC[i]) return { state: 'invalid', number: 0, bytes: undefined };
  if (head[4] > REVOCATION_STORE_FORMAT) return { state: 'newer', number: 0, bytes: undefined };
  const length = head[6] | (head[7] << 8);
  const number = (head[8] | (head[9] << 8) | (head[10] << 16) | (head[11] << 24)) >>> 0;
  let zero = head[5] === 0 && head[4] === REVOCATION_STORE_FORMAT;
  for (let i = 12; i < 16; i++) if (head[i] !== 0) zero = false;
  if (!zero || length > MAX_REVOCATION_LIST_LENGTH || (length === 0) !== (number === 0)) return { state: 'invalid', number: 0, bytes: undefined };
  const list = new Uint8Array(length);
  if (length > 0) flash.read(at + REVOCATION_SLOT_HEADER, list);
  const digest = digestOf(crypto, head, list);
  let diff = 0;
  for (let i = 0; i < DIGEST_BYTES; i++) diff |= digest[i] ^ head[16 + i];
  if (diff !== 0) return { state: 'invalid', number: 0, bytes: undefined };
  return { state: 'valid', number, bytes: length > 0 ? list : undefined };
}
