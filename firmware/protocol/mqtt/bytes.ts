/**
 * The wire layer every packet codec shares: a bounds-checked reader over one
 * packet body and a growing writer (MQTT 5 §1.5 data representation, the
 * same in 3.1.1 §1.5). All integers are big-endian. Every read checks its
 * bounds first and fails with 0x81 Malformed Packet, so no field is used,
 * and nothing allocated, from a length that runs past the packet.
 */
import { malformed } from './errors.ts';
import { decodeUtf8, utf8Length, writeUtf8 } from './utf8.ts';
import { vbiLength, writeVbi } from './vbi.ts';

/** Two-byte length prefix bound of strings and binary data (§1.5.4, §1.5.6). */
export const MAX_STRING_BYTES = 65_535;

export class ByteReader {
  private at: number;

  /** Reads `bytes[start, end)`. */
  constructor(private readonly bytes: Uint8Array, start: number, private end: number) {
    this.at = start;
  }

  get offset(): number {
    return this.at;
  }

  remaining(): number {
    return this.end - this.at;
  }

  private need(count: number, what: string): void {
    if (this.end - this.at < count) throw malformed(`${what}: needs ${count} bytes, ${this.end - this.at} left in the packet`);
  }

  u8(what: string): number {
    this.need(1, what);
    return this.bytes[this.at++];
  }

  u16(what: string): number {
    this.need(2, what);
    const value = (this.bytes[this.at] << 8) | this.bytes[this.at + 1];
    this.at += 2;
    return value;
  }

  u32(what: string): number {
    this.need(4, what);
    const b = this.bytes;
    const value = b[this.at] * 0x100_0000 + ((b[this.at + 1] << 16) | (b[this.at + 2] << 8) | b[this.at + 3]);
    this.at += 4;
    return value;
  }

  /** Variable Byte Integer (§1.5.5): at most 4 bytes, in its shortest form [MQTT-1.5.5-1]. */
  vbi(what: string): number {
    let value = 0;
    let scale = 1;
    for (let count = 0; count < 4; count++) {
      const byte = this.u8(what);
      value += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) {
        if (byte === 0 && count > 0) throw malformed(`${what}: variable byte integer not in its shortest form (§1.5.5)`);
        return value;
      }
      scale *= 128;
    }
    throw malformed(`${what}: variable byte integer longer than 4 bytes`);
  }

  /** UTF-8 Encoded String (§1.5.4). */
  utf8(what: string): string {
    const length = this.u16(what);
    this.need(length, what);
    const result = decodeUtf8(this.bytes, this.at, this.at + length);
    if (!result.ok) throw malformed(`${what}: ${result.cause}`);
    this.at += length;
    return result.value;
  }

  /** Binary Data (§1.5.6): a copy, so the caller may reuse its receive buffer. */
  binary(what: string): Uint8Array {
    const length = this.u16(what);
    return this.raw(length, what);
  }

  /** `length` bytes as a copy (length already bounded by the packet). */
  raw(length: number, what: string): Uint8Array {
    this.need(length, what);
    const copy = this.bytes.slice(this.at, this.at + length);
    this.at += length;
    return copy;
  }

  /** Everything left, as a copy. */
  rest(): Uint8Array {
    return this.raw(this.end - this.at, 'payload');
  }

  /** A reader over the next `length` bytes; this reader skips past them. */
  sub(length: number, what: string): ByteReader {
    this.need(length, what);
    const reader = new ByteReader(this.bytes, this.at, this.at + length);
    this.at += length;
    return reader;
  }

  /** Fails unless every byte was consumed. */
  expectEnd(what: string): void {
    if (this.at !== this.end) throw malformed(`${what}: ${this.end - this.at} unexpected bytes at the end`);
  }
}

export class ByteWriter {
  private buffer = new Uint8Array(64);
  private at = 0;

  get length(): number {
    return this.at;
  }

  private room(count: number): void {
    if (this.at + count <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < this.at + count) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.buffer.subarray(0, this.at));
    this.buffer = grown;
  }

  u8(value: number, what: string): void {
    checkUint(value, 0xff, what);
    this.room(1);
    this.buffer[this.at++] = value;
  }

  u16(value: number, what: string): void {
    checkUint(value, 0xffff, what);
    this.room(2);
    this.buffer[this.at++] = value >>> 8;
    this.buffer[this.at++] = value & 0xff;
  }

  u32(value: number, what: string): void {
    checkUint(value, 0xffff_ffff, what);
    this.room(4);
    this.buffer[this.at++] = value >>> 24;
    this.buffer[this.at++] = (value >>> 16) & 0xff;
    this.buffer[this.at++] = (value >>> 8) & 0xff;
    this.buffer[this.at++] = value & 0xff;
  }

  vbi(value: number, what: string): void {
    if (typeof value !== 'number') throw new TypeError(`${what}: expected a number`);
    this.room(vbiLength(value));
    this.at = writeVbi(this.buffer, this.at, value);
  }

  utf8(text: string, what: string): void {
    if (typeof text !== 'string') throw new TypeError(`${what}: expected a string`);
    const length = utf8Length(text, what);
    if (length > MAX_STRING_BYTES) throw new RangeError(`${what}: ${length} UTF-8 bytes, above ${MAX_STRING_BYTES}`);
    this.u16(length, what);
    this.room(length);
    this.at = writeUtf8(this.buffer, this.at, text);
  }

  binary(data: Uint8Array, what: string): void {
    if (!(data instanceof Uint8Array)) throw new TypeError(`${what}: expected a Uint8Array`);
    if (data.length > MAX_STRING_BYTES) throw new RangeError(`${what}: ${data.length} bytes, above ${MAX_STRING_BYTES}`);
    this.u16(data.length, what);
    this.raw(data, what);
  }

  raw(data: Uint8Array, what: string): void {
    if (!(data instanceof Uint8Array)) throw new TypeError(`${what}: expected a Uint8Array`);
    this.room(data.length);
    this.buffer.set(data, this.at);
    this.at += data.length;
  }

  /** The bytes written so far (a view; the writer must not be used afterwards). */
  bytes(): Uint8Array {
    return this.buffer.subarray(0, this.at);
  }
}

function checkUint(value: number, max: number, what: string): void {
  if (typeof value !== 'number') throw new TypeError(`${what}: expected a number`);
  if (!Number.isInteger(value) || value < 0 || value > max) throw new RangeError(`${what}: ${value} outside 0..${max}`);
}
