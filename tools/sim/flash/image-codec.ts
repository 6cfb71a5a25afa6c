/**
 * Flash image encoding (engine-neutral: XS sends failing images to the host
 * in this form). docs/spec/sim-flash.md, "Image file".
 *
 * Layout: 8-byte magic "HFIMAGE1", u32 LE header length, UTF-8 JSON header
 * (format, mode, geometry), then the partition bytes, the strict-mode unit
 * map (one byte per program unit) and the per-block erase counts (u32 LE).
 */
import { SimFlash, type FlashMode, type SimFlashSnapshot } from './sim-flash.ts';

const MAGIC = 'HFIMAGE1';
const IMAGE_FORMAT = 1;

interface ImageHeader {
  format: number;
  mode: FlashMode;
  blockLength: number;
  blocks: number;
  writeAlign: number;
}

export function encodeImage(source: SimFlash | SimFlashSnapshot): Uint8Array {
  const snap = source instanceof SimFlash ? source.snapshot() : source;
  const header: ImageHeader = {
    format: IMAGE_FORMAT,
    mode: snap.mode,
    blockLength: snap.blockLength,
    blocks: snap.blocks,
    writeAlign: snap.writeAlign,
  };
  const headerBytes = new TextEncoder().encode(JSON.stringify(header));
  const counts = new Uint8Array(snap.eraseCounts.length * 4);
  const view = new DataView(counts.buffer);
  snap.eraseCounts.forEach((count, i) => view.setUint32(i * 4, count, true));
  const parts = [new TextEncoder().encode(MAGIC), u32le(headerBytes.length), headerBytes, snap.data, snap.unitProgrammed, counts];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function decodeImage(bytes: Uint8Array): SimFlash {
  const magic = new TextDecoder().decode(bytes.subarray(0, 8));
  if (magic !== MAGIC) throw new Error(`not a holdfast flash image (magic ${JSON.stringify(magic)})`);
  if (bytes.length < 12) throw new Error(`flash image is truncated: ${bytes.length} bytes, shorter than its 12-byte prefix`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getUint32(8, true);
  if (bytes.length < 12 + headerLength) throw new Error(`flash image is truncated inside its ${headerLength}-byte header`);
  let header: ImageHeader;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + headerLength))) as ImageHeader;
  } catch (error) {
    throw new Error(`flash image header is not valid JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (header === null || typeof header !== 'object') throw new Error('flash image header is not a JSON object');
  if (header.mode !== 'plain' && header.mode !== 'strict') throw new Error(`flash image mode ${JSON.stringify(header.mode)} is neither plain nor strict`);
  if (header.format !== IMAGE_FORMAT) throw new Error(`flash image format ${header.format} is not supported (expected ${IMAGE_FORMAT})`);
  for (const field of ['blocks', 'blockLength', 'writeAlign'] as const) {
    const value: unknown = header[field];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
      throw new Error(`flash image header field ${field}: expected a whole number from 1, found ${value === undefined ? 'nothing' : JSON.stringify(value)}`);
    }
  }
  if (header.blockLength % header.writeAlign !== 0) throw new Error(`flash image header field writeAlign: expected a divisor of blockLength ${header.blockLength}, found ${header.writeAlign}`);
  const size = header.blocks * header.blockLength;
  const units = size / header.writeAlign;
  let at = 12 + headerLength;
  const expected = at + size + units + header.blocks * 4;
  if (bytes.length !== expected) throw new Error(`flash image is ${bytes.length} bytes, header implies ${expected}`);
  const data = bytes.slice(at, at + size);
  at += size;
  const unitProgrammed = bytes.slice(at, at + units);
  at += units;
  const eraseCounts = new Uint32Array(header.blocks).map((_, i) => view.getUint32(at + i * 4, true));
  return SimFlash.fromSnapshot({ ...header, data, unitProgrammed, eraseCounts });
}

function u32le(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value, true);
  return out;
}
