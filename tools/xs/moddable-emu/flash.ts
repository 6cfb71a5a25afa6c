/**
 * Emulated `embedded:storage/flash` (Moddable SDK, ESP32: modules/io/flash/
 * esp32/flash-esp32.js + .c) over simulated partitions (SimFlash, or its XS
 * proxy), with ESP-IDF flash encryption modelled where a partition is marked
 * `encrypted`:
 *
 * - the simulated flash holds the *stored* (raw) bytes; the module's `read`
 *   decrypts and `write` encrypts, as `esp_partition_read`/`write` do on an
 *   encrypted partition; `readRaw` (the glue's `esp_partition_read_raw`)
 *   returns the stored bytes;
 * - the cipher is an XOR with a keystream that depends on the partition and
 *   the byte's address and is never 0x00, so an erased byte (stored 0xFF)
 *   never decrypts to 0xFF: exactly the property that makes erased units
 *   unrecognisable through the decrypting path on a device. (Real flash
 *   encryption is AES-XTS; for what the adapter relies on, "stored 0xFF
 *   decrypts to something else, programmed bytes decrypt to what was
 *   written", an address-keyed XOR is the same.)
 *
 * Errors are the module's: "can't find partition" for an unknown label,
 * "read-only" for a write to a partition opened with mode "r".
 */
import type { FlashPartition } from '../../../firmware/hal/flash.ts';
import type { FlashModule, FlashStorage, ModdableBuffer } from '../../../firmware/targets/moddable/modules.ts';

export interface EmuPartition {
  /** The stored bytes (SimFlash in Node, its proxy in XS). */
  readonly flash: FlashPartition;
  /** ESP-IDF encrypts it: the module decrypts on read and encrypts on write. */
  readonly encrypted: boolean;
}

export interface EmuFlashOptions {
  /** Data partitions by label, plus the app slots as "ota_0" and "ota_1" (opened only as "running" / "nextota", as on ESP32). */
  readonly partitions: Readonly<Record<string, EmuPartition>>;
  /** The running app slot: "running" opens ota_<n>, "nextota" the other. */
  readonly runningSlot?: 0 | 1;
}

/** The view of a Moddable buffer argument (ArrayBuffer or a view), as xsmcGetBuffer* sees it. */
export function bytesOf(buffer: ModdableBuffer): Uint8Array {
  if (ArrayBuffer.isView(buffer)) return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  return new Uint8Array(buffer);
}

/** The keystream byte at `address` of partition `salt`: never 0, so erased bytes never decrypt to 0xFF. */
export function keystreamByte(salt: number, address: number): number {
  let x = (Math.imul(address ^ salt, 0x9e3779b1) ^ (address >>> 3)) >>> 0;
  x = Math.imul(x ^ (x >>> 15), 0x85ebca6b) >>> 0;
  x ^= x >>> 13;
  return (x & 0xff) || 0x5a;
}

export class EmuFlashModule implements FlashModule {
  /** Every open, by resolved label (what the adapter asked for). */
  readonly opens: string[] = [];

  constructor(private readonly options: EmuFlashOptions) {}

  /** The partition behind a name, resolved as flash-esp32.c (and the glue) do; throws as they do. */
  resolve(name: string): { label: string; partition: EmuPartition } {
    let label = name;
    // ESP32's module looks labels up among data partitions only: the app slots are reachable as "running" and "nextota".
    if (/^ota_\d+$/.test(name)) throw new Error("can't find partition");
    if (name === 'running' || name === 'nextota') {
      const running = this.options.runningSlot;
      if (running === undefined) throw new Error("can't find partition");
      label = `ota_${name === 'running' ? running : 1 - running}`;
    }
    const partition = Object.prototype.hasOwnProperty.call(this.options.partitions, label) ? this.options.partitions[label] : undefined;
    if (partition === undefined) throw new Error("can't find partition");
    return { label, partition };
  }

  open(options: { path: string; mode?: 'r' | 'r+' }): FlashStorage {
    if (typeof options !== 'object' || options === null || typeof options.path !== 'string') throw new Error('no path');
    if (options.mode !== undefined && options.mode !== 'r' && options.mode !== 'r+') throw new Error('invalid mode');
    const { label, partition } = this.resolve(options.path);
    this.opens.push(label);
    return new EmuFlashStorage(partition, saltOf(label), options.mode === 'r');
  }

  /** The glue's `esp_partition_read_raw`. */
  readRaw(name: string, byteOffset: number, buffer: ModdableBuffer): void {
    const { partition } = this.resolve(name);
    const target = bytesOf(buffer);
    if (byteOffset < 0 || byteOffset + target.length > partition.flash.status().size) throw new RangeError('raw read outside the partition');
    partition.flash.read(byteOffset, target);
  }

  /** The glue's `esp_partition_t.encrypted`. */
  encrypted(name: string): boolean {
    return this.resolve(name).partition.encrypted;
  }
}

class EmuFlashStorage implements FlashStorage {
  private closed = false;

  constructor(private readonly partition: EmuPartition, private readonly salt: number, private readonly readOnly: boolean) {}

  read(buffer: ModdableBuffer, byteOffset: number): number {
    this.check();
    const target = bytesOf(buffer);
    this.partition.flash.read(byteOffset, target);
    if (this.partition.encrypted) {
      for (let i = 0; i < target.length; i++) target[i] ^= keystreamByte(this.salt, byteOffset + i);
    }
    return target.length;
  }

  write(buffer: ModdableBuffer, byteOffset: number): void {
    this.check();
    if (this.readOnly) throw new Error('read-only');
    const data = bytesOf(buffer);
    if (!this.partition.encrypted) {
      this.partition.flash.write(byteOffset, data);
      return;
    }
    const stored = new Uint8Array(data.length);
    for (let i = 0; i < data.length; i++) stored[i] = data[i] ^ keystreamByte(this.salt, byteOffset + i);
    this.partition.flash.write(byteOffset, stored);
  }

  eraseBlock(start: number, end: number = start + 1): void {
    this.check();
    if (this.readOnly) throw new Error('read-only');
    for (let block = start; block < end; block++) this.partition.flash.eraseBlock(block);
  }

  status(): { readonly size: number; readonly blockLength: number; readonly blocks: number } {
    this.check();
    const { size, blockLength, blocks } = this.partition.flash.status();
    return { size, blockLength, blocks };
  }

  close(): void {
    this.closed = true;
  }

  private check(): void {
    if (this.closed) throw new Error('closed');
  }
}

function saltOf(label: string): number {
  let salt = 0x811c9dc5;
  for (let i = 0; i < label.length; i++) salt = Math.imul(salt ^ label.charCodeAt(i), 0x01000193) >>> 0;
  return salt;
}
