/**
 * `FlashPartition` (firmware/hal/flash.ts) over Moddable's
 * `embedded:storage/flash`: a partition opened by its label (data
 * partitions), or "running" / "nextota" (the app slots: ESP32's flash module
 * opens app partitions only by those two names).
 *
 * Geometry: `size`, `blockLength`, `blocks` come from the module; the module
 * does not report a program unit, so `writeAlign` is 16 when ESP-IDF
 * encrypts the partition (`esp_partition_t.encrypted`, read through the glue:
 * flash encryption is on and the partition is an app, otadata or flagged
 * `encrypted`) and 1 otherwise; `eraseValue` is 0xFF (NOR).
 *
 * Erased units under flash encryption. `esp_partition_read` of an encrypted
 * partition decrypts, and erased flash (0xFF raw) decrypts to bytes that look
 * random, so through the module an erased unit does not read 0xFF, which
 * every holdfast format relies on (docs/spec/flash.md rule 5). The adapter
 * therefore reads encrypted partitions twice: the decrypted bytes through
 * the module, then the same 16-byte units raw (`esp_partition_read_raw`,
 * glue `readPartitionRaw`); every unit whose raw bytes are all 0xFF is
 * erased and reads as 0xFF. A programmed unit whose ciphertext happens to
 * be all 0xFF would be misread as erased: probability 2^-128 per unit.
 * A unit torn by a power cut holds neither: it decrypts to garbage, which
 * the formats detect by their CRCs, as in the simulator's strict mode.
 *
 * Writes: offset and length must be whole `writeAlign` units inside the
 * partition (RangeError otherwise: ESP-IDF would reject a misaligned
 * encrypted write, and a plain one out of range). That a strict unit is
 * written once per erase is not checked here (it would cost a raw read per
 * write); the formats are proven against the strict simulator, which does
 * check it.
 */
import type { FlashPartition, FlashStatus } from '../../hal/flash.ts';
import { TargetError } from './errors.ts';
import type { FlashModule, FlashStorage, HoldfastNative } from './modules.ts';

/** Program unit of ESP-IDF flash encryption (esp_flash_write_encrypted). */
export const ENCRYPTED_WRITE_ALIGN = 16;
export const ERASE_VALUE = 0xff;

export interface ModdableFlashOptions {
  /** ESP-IDF encrypts this partition: 16-byte units, erased units recognised raw. */
  readonly encrypted: boolean;
  /** Reads the partition's raw (not decrypted) bytes; required when `encrypted`. */
  readonly readRaw?: (byteOffset: number, target: Uint8Array) => void;
}

export class ModdableFlash implements FlashPartition {
  private readonly geometry: FlashStatus;
  private readonly readRaw: ((byteOffset: number, target: Uint8Array) => void) | undefined;

  constructor(private readonly storage: FlashStorage, options: ModdableFlashOptions) {
    const { size, blockLength, blocks } = storage.status();
    if (!isCount(size) || !isCount(blockLength) || !isCount(blocks) || blocks === 0 || size !== blocks * blockLength) {
      throw new TargetError('bad-geometry', `flash partition of ${String(blocks)} x ${String(blockLength)} bytes, size ${String(size)}: expected whole blocks`);
    }
    const writeAlign = options.encrypted ? ENCRYPTED_WRITE_ALIGN : 1;
    if (blockLength % writeAlign !== 0) throw new TargetError('bad-geometry', `block length ${blockLength} is not whole ${writeAlign}-byte units`);
    if (options.encrypted && typeof options.readRaw !== 'function') throw new TypeError('an encrypted partition needs readRaw');
    this.geometry = Object.freeze({ size, blockLength, blocks, writeAlign, eraseValue: ERASE_VALUE });
    this.readRaw = options.encrypted ? options.readRaw : undefined;
  }

  status(): FlashStatus {
    return this.geometry;
  }

  read(byteOffset: number, target: Uint8Array): void {
    if (!(target instanceof Uint8Array)) throw new TypeError('target must be a Uint8Array');
    this.checkRange(byteOffset, target.length);
    if (target.length === 0) return;
    this.storage.read(target, byteOffset);
    if (this.readRaw !== undefined) this.restoreErasedUnits(byteOffset, target, this.readRaw);
  }

  write(byteOffset: number, data: Uint8Array): void {
    if (!(data instanceof Uint8Array)) throw new TypeError('data must be a Uint8Array');
    this.checkRange(byteOffset, data.length);
    const align = this.geometry.writeAlign;
    if (byteOffset % align !== 0 || data.length % align !== 0) {
      throw new RangeError(`write of ${data.length} bytes at ${byteOffset}: offset and length must be multiples of ${align}`);
    }
    if (data.length === 0) return;
    this.storage.write(data, byteOffset);
  }

  eraseBlock(block: number): void {
    if (!Number.isInteger(block) || block < 0 || block >= this.geometry.blocks) {
      throw new RangeError(`block ${String(block)} outside 0..${this.geometry.blocks - 1}`);
    }
    this.storage.eraseBlock(block);
  }

  /** Units whose raw bytes are all 0xFF are erased: they read 0xFF whatever the decryption gave. */
  private restoreErasedUnits(byteOffset: number, target: Uint8Array, readRaw: (byteOffset: number, target: Uint8Array) => void): void {
    const unit = ENCRYPTED_WRITE_ALIGN;
    const start = byteOffset - (byteOffset % unit);
    const end = byteOffset + target.length;
    const alignedEnd = end + ((unit - (end % unit)) % unit);
    const raw = new Uint8Array(alignedEnd - start);
    readRaw(start, raw);
    for (let at = 0; at < raw.length; at += unit) {
      let erased = true;
      for (let i = at; i < at + unit; i++) {
        if (raw[i] !== ERASE_VALUE) {
          erased = false;
          break;
        }
      }
      if (!erased) continue;
      const from = Math.max(start + at, byteOffset);
      const to = Math.min(start + at + unit, end);
      target.fill(ERASE_VALUE, from - byteOffset, to - byteOffset);
    }
  }

  private checkRange(byteOffset: number, length: number): void {
    if (!Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset + length > this.geometry.size) {
      throw new RangeError(`${length} bytes at ${String(byteOffset)} outside the ${this.geometry.size}-byte partition`);
    }
  }
}

/**
 * Open partition `name` (a data partition's label, "running" or "nextota")
 * through the flash module, asking the glue whether ESP-IDF encrypts it.
 * `mode` 'r' makes the module refuse writes and erases ("read-only").
 */
export function openModdableFlash(flash: FlashModule, native: HoldfastNative, name: string, mode: 'r' | 'r+' = 'r+'): ModdableFlash {
  if (typeof name !== 'string' || name.length === 0) throw new TypeError('partition name must be a non-empty string');
  const storage = flash.open({ path: name, mode });
  const encrypted = native.partitionEncrypted(name) === true;
  return new ModdableFlash(storage, { encrypted, readRaw: (byteOffset, target) => native.readPartitionRaw(name, byteOffset, target) });
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0;
}
