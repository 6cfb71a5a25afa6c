/**
 * The security floor in flash (docs/spec/floor-store.md): the lowest
 * security version the device accepts. On an ESP32 with anti-rollback the
 * secure-version eFuse is the hardware floor; this store keeps the same
 * floor in flash so a build without the eFuse still refuses downgrades, and
 * `readFloor` takes the higher of the two.
 *
 * Two blocks of 16-byte write-once entries (base/entry16.ts); recovery
 * takes the highest valid entry, so a torn entry or a torn erase of the
 * other block can only leave the old floor, never a lower one. A raise
 * appends to the active block; a full block moves on to the other one,
 * erased first, whose first entry is the new floor.
 */
import type { FlashPartition } from '../hal/flash.ts';
import { encodeEntry16, readEntry16 } from '../base/entry16.ts';
import { FORMAT_VERSIONS } from '../base/format-versions.ts';
import { StorageError } from '../storage/errors.ts';

export const FLOOR_ENTRY_LENGTH = 16;
const KIND_FLOOR = 0x46;

export class FloorStore {
  private floor = 0;
  private activeBlock = 0;
  private nextSlot = 0;
  private readonly slotsPerBlock: number;
  private readonly blockLength: number;

  /** Erase both blocks: floor 0 (provisioning only). */
  static format(flash: FlashPartition): void {
    flash.eraseBlock(0);
    flash.eraseBlock(1);
  }

  /** Throws StorageError 'format-too-new' or 'not-formatted' (fail closed) without writing. */
  constructor(private readonly flash: FlashPartition) {
    const status = flash.status();
    if (status.blocks < 2 || FLOOR_ENTRY_LENGTH % status.writeAlign !== 0 || status.blockLength % FLOOR_ENTRY_LENGTH !== 0) {
      throw new RangeError('the floor store needs two blocks of whole 16-byte entries');
    }
    this.blockLength = status.blockLength;
    this.slotsPerBlock = status.blockLength / FLOOR_ENTRY_LENGTH;
    this.recover();
  }

  get secureVersion(): number {
    return this.floor;
  }

  /** Raise the floor to `version` (never lowers it); returns once durable. */
  raise(version: number): void {
    if (!Number.isInteger(version) || version < 0 || version > 0xffffffff) throw new RangeError(`bad security version ${version}`);
    if (version <= this.floor) return;
    if (this.nextSlot >= this.slotsPerBlock) {
      this.activeBlock = 1 - this.activeBlock;
      this.flash.eraseBlock(this.activeBlock);
      this.nextSlot = 0;
    }
    this.flash.write(this.activeBlock * this.blockLength + this.nextSlot * FLOOR_ENTRY_LENGTH, encodeFloorEntry(version));
    this.nextSlot++;
    this.floor = version;
  }

  private recover(): void {
    const entry = new Uint8Array(FLOOR_ENTRY_LENGTH);
    let best = -1;
    let written = 0;
    for (let block = 0; block < 2; block++) {
      for (let slot = 0; slot < this.slotsPerBlock; slot++) {
        this.flash.read(block * this.blockLength + slot * FLOOR_ENTRY_LENGTH, entry);
        if (entry.every((b) => b === 0xff)) continue;
        written++;
        if (isNewerFormat(entry)) {
          throw new StorageError('format-too-new', `floor entry of format ${entry[0]}; this firmware reads format ${FORMAT_VERSIONS.floorStore}`);
        }
        const value = decodeFloorEntry(entry);
        if (value !== undefined && value > best) {
          best = value;
          this.activeBlock = block;
        }
      }
    }
    // Fail closed: a floor that cannot be read back must not silently become 0 (that would allow downgrades).
    // One torn first entry (written ≤ 1, nothing valid) is what a cut during the very first raise leaves.
    if (best < 0 && written > 1) throw new StorageError('not-formatted', 'the security floor store holds no valid entry: re-provision it');
    // Appends continue after the last used slot (valid or torn) of the block holding the highest floor.
    this.nextSlot = this.usedSlots(this.activeBlock);
    this.floor = Math.max(0, best);
  }

  private usedSlots(block: number): number {
    const entry = new Uint8Array(FLOOR_ENTRY_LENGTH);
    let used = 0;
    for (let slot = 0; slot < this.slotsPerBlock; slot++) {
      this.flash.read(block * this.blockLength + slot * FLOOR_ENTRY_LENGTH, entry);
      if (!entry.every((b) => b === 0xff)) used = slot + 1;
    }
    return used;
  }
}

/** A floor the agent can raise: the secure-version eFuse where there is one. */
export interface HardwareFloor {
  readonly secureVersion: number;
  raise(version: number): void;
}

/**
 * The floor in force is the higher of the flash store and the eFuse; a
 * raise goes to flash first, then to the eFuse (both only after VALID).
 */
export function combinedFloor(store: FloorStore, efuse: HardwareFloor | undefined): HardwareFloor {
  return {
    get secureVersion() {
      return Math.max(efuse?.secureVersion ?? 0, store.secureVersion);
    },
    raise(version: number) {
      store.raise(version);
      efuse?.raise(version);
    },
  };
}

export function encodeFloorEntry(version: number): Uint8Array {
  return encodeEntry16(new Uint8Array(FLOOR_ENTRY_LENGTH), FORMAT_VERSIONS.floorStore, KIND_FLOOR, 0, version >>> 0);
}

/** The floor an entry holds, or undefined when it is not a valid floor entry of this format. */
export function decodeFloorEntry(entry: Uint8Array): number | undefined {
  const read = readEntry16(entry);
  if (read.kind !== 'entry' || read.version !== FORMAT_VERSIONS.floorStore || read.tag !== KIND_FLOOR || read.extra !== 0) return undefined;
  return read.value !== undefined && read.value <= 0xffffffff ? read.value : undefined;
}

/** A valid entry of a newer format (refused rather than misread). */
function isNewerFormat(entry: Uint8Array): boolean {
  const read = readEntry16(entry);
  return read.kind === 'entry' && read.tag === KIND_FLOOR && read.version > FORMAT_VERSIONS.floorStore;
}
