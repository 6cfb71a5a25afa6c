/**
 * Flash partition: the one storage edge of the firmware.
 *
 * Words follow Moddable's `embedded:storage/flash` typings (blockLength,
 * writeAlign, eraseValue, byteOffset) so the device adapter is close to an
 * identity mapping. Calls are synchronous, as they are on the device.
 *
 * NOR rules every caller must respect (docs/spec/flash.md):
 * - `eraseBlock` sets every byte of one block (4096 bytes on ESP32) to
 *   `eraseValue` (0xFF).
 * - `write` can only clear bits (1 -> 0): the stored byte becomes
 *   `old & new`. Setting a bit back to 1 needs an erase of the whole block.
 * - With ESP-IDF flash encryption (strict mode) a write must cover whole
 *   `writeAlign`-byte units at aligned offsets, and a unit may be written
 *   only once after its block was erased.
 * - A power cut may stop a `write` or `eraseBlock` part way: the bytes in
 *   flight then hold any mix of old and new bits. Formats must detect that.
 */
export interface FlashStatus {
  /** Partition size in bytes; a whole number of blocks. */
  readonly size: number;
  /** Erase unit in bytes (4096 on ESP32). */
  readonly blockLength: number;
  /** Number of blocks: size / blockLength. */
  readonly blocks: number;
  /**
   * Program unit in bytes: 1 for plain NOR, 16 with flash encryption, where
   * a unit is also write-once between erases.
   */
  readonly writeAlign: number;
  /** Value of every byte after an erase (0xFF on NOR). */
  readonly eraseValue: number;
}

export interface FlashPartition {
  status(): FlashStatus;
  /** Copy `target.length` bytes starting at `byteOffset` into `target`. */
  read(byteOffset: number, target: Uint8Array): void;
  /**
   * Program `data` at `byteOffset`. Offset and length must be multiples of
   * `writeAlign`. Returns once the bytes are durable.
   */
  write(byteOffset: number, data: Uint8Array): void;
  /** Erase one block (`block` is an index, not a byte offset). */
  eraseBlock(block: number): void;
}
