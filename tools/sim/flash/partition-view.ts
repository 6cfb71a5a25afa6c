/**
 * A partition carved out of a larger simulated flash: blocks
 * [firstBlock, firstBlock + blocks). Lets one cuttable flash hold several
 * partitions (slot, progress log, otadata), so a power-cut run counts and
 * cuts the operations of all of them in one sequence, as on a real chip.
 */
import type { FlashPartition, FlashStatus } from '../../../firmware/hal/flash.ts';

export class PartitionView implements FlashPartition {
  private readonly base: number;
  private readonly geometry: FlashStatus;

  constructor(private readonly flash: FlashPartition, private readonly firstBlock: number, blocks: number) {
    const whole = flash.status();
    if (!Number.isInteger(firstBlock) || !Number.isInteger(blocks) || firstBlock < 0 || blocks < 1 || firstBlock + blocks > whole.blocks) {
      throw new RangeError(`partition of blocks ${firstBlock}..${firstBlock + blocks - 1} outside the flash's ${whole.blocks} blocks`);
    }
    this.base = firstBlock * whole.blockLength;
    this.geometry = Object.freeze({ ...whole, size: blocks * whole.blockLength, blocks });
  }

  status(): FlashStatus {
    return this.geometry;
  }

  read(byteOffset: number, target: Uint8Array): void {
    this.check(byteOffset, target.length);
    this.flash.read(this.base + byteOffset, target);
  }

  write(byteOffset: number, data: Uint8Array): void {
    this.check(byteOffset, data.length);
    this.flash.write(this.base + byteOffset, data);
  }

  eraseBlock(block: number): void {
    if (!Number.isInteger(block) || block < 0 || block >= this.geometry.blocks) throw new RangeError(`block ${block} outside the partition's ${this.geometry.blocks}`);
    this.flash.eraseBlock(this.firstBlock + block);
  }

  private check(byteOffset: number, length: number): void {
    if (!Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset + length > this.geometry.size) {
      throw new RangeError(`${length} bytes at ${byteOffset} outside the ${this.geometry.size}-byte partition`);
    }
  }
}
