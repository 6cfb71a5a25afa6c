/**
 * An append-only log of frames over a flash partition, without wrap: the
 * smallest flash-writing module, used to prove the power-cut runner and as
 * the demo of `npm start`. The outbox (docs/spec/outbox.md) is the real log.
 *
 * Frames never span blocks. Recovery scans frames from the start; a corrupt
 * frame (torn by a power cut, or damaged) ends its block: the rest of that
 * block is skipped, so damage in one block loses nothing in the others.
 * Free space must read erased (0xFF) to its block's end before anything is
 * programmed there: an erased frame header says nothing about the bytes
 * behind it (foreign bytes, or a write torn as a bit subset whose header
 * never landed), and programming over them would corrupt the new frame or,
 * on an encrypted partition, be refused. Dirty free space is damage: it
 * ends its block, like a corrupt frame (docs/spec/frame.md).
 */
import type { FlashPartition, FlashStatus } from '../hal/flash.ts';
import { decodeFrame, encodeFrame, frameLength, FRAME_HEADER_LENGTH, type FrameRead } from './frame.ts';

export interface FrameCodec {
  encode(payload: Uint8Array, writeAlign: number): Uint8Array;
  decode(bytes: Uint8Array, writeAlign: number): FrameRead;
}

export const FRAME_CODEC: FrameCodec = Object.freeze({ encode: encodeFrame, decode: decodeFrame });

export interface FrameLogMount {
  frames: number;
  /**
   * Blocks whose tail was skipped: a frame in them did not check, or their
   * free space did not read erased (foreign bytes, a torn write).
   */
  damagedBlocks: number[];
}

export class FrameLog {
  private readonly geometry: FlashStatus;
  private readonly codec: FrameCodec;
  private writeOffset = 0;
  private readonly blockBuffer: Uint8Array;
  private readonly damaged: number[] = [];

  constructor(private readonly flash: FlashPartition, codec: FrameCodec = FRAME_CODEC) {
    this.geometry = flash.status();
    this.codec = codec;
    this.blockBuffer = new Uint8Array(this.geometry.blockLength);
  }

  /** Erase every block: an empty log. */
  format(): void {
    for (let block = 0; block < this.geometry.blocks; block++) this.flash.eraseBlock(block);
    this.writeOffset = 0;
    this.damaged.length = 0;
  }

  /** Blocks found damaged since the last mount or format (by mount, or by an append that found its free space dirty). */
  get damagedBlocks(): readonly number[] {
    return this.damaged;
  }

  /** Find the end of the log; calls `visit` with each intact frame in order. */
  mount(visit: (payload: Uint8Array) => void = () => {}): FrameLogMount {
    const result: FrameLogMount = { frames: 0, damagedBlocks: [] };
    const { blockLength, blocks } = this.geometry;
    // Appends go to the first clean free space after the last block that holds anything.
    let free: number | undefined;
    // Blocks fill in order and are never erased one by one: a blank block before a used one lost its frames.
    const blank: number[] = [];
    for (let block = 0; block < blocks; block++) {
      this.flash.read(block * blockLength, this.blockBuffer);
      let at = 0;
      let clean = true;
      while (at + FRAME_HEADER_LENGTH <= blockLength) {
        const frame = this.codec.decode(this.blockBuffer.subarray(at), this.geometry.writeAlign);
        if (frame.kind === 'erased') break;
        if (frame.kind === 'corrupt') {
          clean = false;
          break;
        }
        visit(frame.payload);
        result.frames++;
        at += frame.byteLength;
      }
      if (clean && !isErased(this.blockBuffer, at)) clean = false;
      const used = at > 0 || !clean;
      if (used) result.damagedBlocks.push(...blank.splice(0));
      else blank.push(block);
      if (!clean) result.damagedBlocks.push(block);
      if (used) free = undefined;
      if (clean && at < blockLength && free === undefined) free = block * blockLength + at;
    }
    this.writeOffset = free ?? blocks * blockLength;
    result.damagedBlocks.sort((a, b) => a - b);
    this.damaged.length = 0;
    this.damaged.push(...result.damagedBlocks);
    return result;
  }

  /** Append one frame; returns once it is durable. */
  append(payload: Uint8Array): void {
    const { blockLength } = this.geometry;
    const length = frameLength(payload.length, this.geometry.writeAlign);
    if (length > blockLength) throw new RangeError(`frame of ${length} bytes does not fit a ${blockLength}-byte block`);
    const frame = this.codec.encode(payload, this.geometry.writeAlign);
    let offset = this.writeOffset;
    for (;;) {
      if (Math.floor(offset / blockLength) !== Math.floor((offset + length - 1) / blockLength)) {
        offset = Math.ceil(offset / blockLength) * blockLength;
      }
      if (offset + length > this.geometry.size) {
        this.writeOffset = offset;
        throw new RangeError('frame log is full');
      }
      if (this.rangeIsErased(offset, length)) break;
      // Damage in free space since mount: it ends its block, as mount would have found.
      const block = Math.floor(offset / blockLength);
      if (!this.damaged.includes(block)) this.damaged.push(block);
      offset = (block + 1) * blockLength;
    }
    this.flash.write(offset, frame);
    this.writeOffset = offset + length;
  }

  private rangeIsErased(byteOffset: number, byteLength: number): boolean {
    const bytes = this.blockBuffer.subarray(0, byteLength);
    this.flash.read(byteOffset, bytes);
    return isErased(bytes, 0);
  }
}

function isErased(bytes: Uint8Array, from: number): boolean {
  for (let i = from; i < bytes.length; i++) if (bytes[i] !== 0xff) return false;
  return true;
}
