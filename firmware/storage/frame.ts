/**
 * Self-checking frames: the smallest durable record (docs/spec/frame.md).
 *
 *   0      2      4            8                 8+len      padded end
 *   +------+------+------------+-----------------+----------+
 *   | len  | ~len | CRC-32     | payload         | 0xFF pad |
 *   +------+------+------------+-----------------+----------+
 *
 * Little-endian. `len` is the payload length (0..MAX_FRAME_PAYLOAD); `~len`
 * its complement, so an erased header (0xFFFF, 0xFFFF) never reads as a
 * frame and a torn header is caught before the CRC is even computed. The CRC
 * covers len, ~len and the payload. A frame is padded with 0xFF to the
 * flash's program unit so it is written with one aligned program.
 *
 * Erased value: a header of all 0xFF means "no frame here, free space
 * follows". Anything else that fails a check is a torn or corrupt frame.
 */
import { crc32Final, crc32Update, crc32Init } from '../base/crc32.ts';

export const FRAME_HEADER_LENGTH = 8;
export const MAX_FRAME_PAYLOAD = 0xfffe;

export type FrameRead =
  | { kind: 'frame'; payload: Uint8Array; byteLength: number }
  | { kind: 'erased' }
  | { kind: 'corrupt'; reason: string };

/** Bytes a frame of `payloadLength` occupies once padded to `writeAlign`. */
export function frameLength(payloadLength: number, writeAlign: number): number {
  const raw = FRAME_HEADER_LENGTH + payloadLength;
  return Math.ceil(raw / writeAlign) * writeAlign;
}

export function encodeFrame(payload: Uint8Array, writeAlign: number): Uint8Array {
  if (payload.length > MAX_FRAME_PAYLOAD) throw new RangeError(`frame payload of ${payload.length} bytes exceeds ${MAX_FRAME_PAYLOAD}`);
  const out = new Uint8Array(frameLength(payload.length, writeAlign)).fill(0xff);
  const view = new DataView(out.buffer);
  view.setUint16(0, payload.length, true);
  view.setUint16(2, ~payload.length & 0xffff, true);
  out.set(payload, FRAME_HEADER_LENGTH);
  view.setUint32(4, frameCrc(out, payload.length), true);
  return out;
}

/** Decode the frame at the start of `bytes` (which may extend past it). */
export function decodeFrame(bytes: Uint8Array, writeAlign: number): FrameRead {
  if (bytes.length < FRAME_HEADER_LENGTH) return { kind: 'corrupt', reason: 'truncated header' };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = view.getUint16(0, true);
  const check = view.getUint16(2, true);
  if (length === 0xffff && check === 0xffff && view.getUint32(4, true) === 0xffffffff) return { kind: 'erased' };
  if ((length ^ check) !== 0xffff) return { kind: 'corrupt', reason: 'length check mismatch' };
  const byteLength = frameLength(length, writeAlign);
  if (byteLength > bytes.length) return { kind: 'corrupt', reason: `frame of ${byteLength} bytes overruns its space` };
  if (view.getUint32(4, true) !== frameCrc(bytes, length)) return { kind: 'corrupt', reason: 'CRC mismatch' };
  return { kind: 'frame', payload: bytes.slice(FRAME_HEADER_LENGTH, FRAME_HEADER_LENGTH + length), byteLength };
}

function frameCrc(frame: Uint8Array, payloadLength: number): number {
  const crc = crc32Update(crc32Init(), frame, 0, 4);
  return crc32Final(crc32Update(crc, frame, FRAME_HEADER_LENGTH, FRAME_HEADER_LENGTH + payloadLength));
}
