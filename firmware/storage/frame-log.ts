/**
 * An append-only log of frames over a flash partition, without wrap: the
 * smallest flash-writing module, used to prove the power-cut runner and as
 * the demo of `npm start`. The outbox (docs/spec/outbox.md) is the real log.
 *
 * Frames never span blocks. Recovery scans frames from the start; a corrupt
 * frame (torn by a power cut, or damaged) ends its block: the rest of that
 * block is skipped, so damage in one block loses nothing in the others.
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
  /** Blocks whose tail was skipped because a frame in them did not check. */
  damagedBlocks: number[];
}

export class FrameLog {
  private readonly geometry: FlashStatus;
  private readonly codec: FrameCodec;
  private writeOffset = 0;
  private readonly blockBuffer: Uint8Array;

  constructor(private readonly flash: FlashPartition, codec: FrameCodec = FRAME_CODEC) {
    this.geometry = flash.status();
    this.codec = codec;
    this.blockBuffer = new Uint8Array(this.geometry.blockLength);
  }

  /** Erase every block: an empty log. */
  format(): void {
    for (let block = 0; block < this.geometry.blocks; block++) this.flash.eraseBlock(block);
    this.writeOffset = 0;
  }

  /** Find the end of the log; calls `visit` with each intact frame in order. */
  mount(visit: (payload: Uint8Array) => void = () => {}): FrameLogMount {
    const result: FrameLogMount = { frames: 0, damagedBlocks: [] };
    const { blockLength, blocks } = this.geometry;
    this.writeOffset = blocks * blockLength;
    for (let block = 0; block < blocks; block++) {
      this.flash.read(block * blockLength, this.blockBuffer);
      let at = 0;
      while (at + FRAME_HEADER_LENGTH <= blockLength) {
        const frame = this.codec.decode(this.blockBuffer.subarray(at), this.geometry.writeAlign);
        if (frame.kind === 'erased') {
          this.writeOffset = Math.min(this.writeOffset, block * blockLength + at);
          break;
        }
        if (frame.kind === 'corrupt') {
          result.damagedBlocks.push(block);
          break;
        }
        visit(frame.payload);
        result.frames++;
        at += frame.byteLength;
      }
      // A later block holding frames means the earlier free space was skipped; appends go after the last frame.
      if (at > 0 && this.writeOffset < block * blockLength) this.writeOffset = block * blockLength + at;
    }
    return result;
  }

  /** Append one frame; returns once it is durable. */
  append(payload: Uint8Array): void {
    const { blockLength } = this.geometry;
    const length = frameLength(payload.length, this.geometry.writeAlign);
    if (length > blockLength) throw new RangeError(`frame of ${length} bytes does not fit a ${blockLength}-byte block`);
    let offset = this.writeOffset;
    if (Math.floor(offset / blockLength) !== Math.floor((offset + length - 1) / blockLength)) {
      offset = Math.ceil(offset / blockLength) * blockLength;
    }
    if (offset + length > this.geometry.size) throw new RangeError('frame log is full');
    this.flash.write(offset, this.codec.encode(payload, this.geometry.writeAlign));
    this.writeOffset = offset + length;
  }
}
