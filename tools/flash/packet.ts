/**
 * Espressif serial loader packets (esptool docs, "Serial Protocol":
 * "Command Packet", "Response Packet", "Checksum"), inside SLIP frames
 * (slip.ts). All multi-byte fields are little-endian.
 *
 *   command:  0x00 | op | size u16 | checksum u32 | data[size]
 *   response: 0x01 | op | size u16 | value u32    | data[size]
 *
 * A ROM loader's response data ends with 4 status bytes (status, error,
 * 0, 0); the stub loader's with 2. Host tool, no Node APIs.
 */

export const Direction = Object.freeze({ COMMAND: 0x00, RESPONSE: 0x01 } as const);

/** Command identifiers ("Commands"; ERASE_* are stub-only). */
export const Op = Object.freeze({
  FLASH_BEGIN: 0x02,
  FLASH_DATA: 0x03,
  FLASH_END: 0x04,
  MEM_BEGIN: 0x05,
  MEM_END: 0x06,
  MEM_DATA: 0x07,
  SYNC: 0x08,
  WRITE_REG: 0x09,
  READ_REG: 0x0a,
  SPI_SET_PARAMS: 0x0b,
  SPI_ATTACH: 0x0d,
  CHANGE_BAUDRATE: 0x0f,
  FLASH_DEFL_BEGIN: 0x10,
  FLASH_DEFL_DATA: 0x11,
  FLASH_DEFL_END: 0x12,
  SPI_FLASH_MD5: 0x13,
  GET_SECURITY_INFO: 0x14,
  ERASE_FLASH: 0xd0,
  ERASE_REGION: 0xd1,
} as const);

/** ROM loader error codes ("ROM Loader Errors"). */
export const RomError = Object.freeze({
  INVALID_MESSAGE: 0x05,
  FAILED_TO_ACT: 0x06,
  INVALID_CRC: 0x07,
  FLASH_WRITE_ERROR: 0x08,
  FLASH_READ_ERROR: 0x09,
  FLASH_READ_LENGTH_ERROR: 0x0a,
  DEFLATE_ERROR: 0x0b,
} as const);

export const HEADER_LENGTH = 8;
/** Seed of the XOR checksum over the "data to write" of *_DATA commands. */
export const CHECKSUM_SEED = 0xef;
/** The 36-byte SYNC payload: 07 07 12 20 then 32 × 0x55 (a typed array cannot be frozen: do not write to it). */
export const SYNC_PAYLOAD: Uint8Array = Uint8Array.from([0x07, 0x07, 0x12, 0x20, ...new Array<number>(32).fill(0x55)]);

export function checksum(data: Uint8Array, seed = CHECKSUM_SEED): number {
  let state = seed;
  for (const byte of data) state ^= byte;
  return state;
}

export interface CommandPacket {
  readonly op: number;
  readonly checksum: number;
  readonly data: Uint8Array;
}

export interface ResponsePacket {
  readonly op: number;
  readonly value: number;
  readonly data: Uint8Array;
}

export type Decoded<T> = { kind: 'packet'; packet: T } | { kind: 'malformed'; reason: string };

function encode(direction: number, op: number, word: number, data: Uint8Array): Uint8Array {
  if (!Number.isInteger(op) || op < 0 || op > 0xff) throw new RangeError(`op must be a byte, got ${op}`);
  if (data.length > 0xffff) throw new RangeError(`data of ${data.length} bytes exceeds the 16-bit size field`);
  const out = new Uint8Array(HEADER_LENGTH + data.length);
  const view = new DataView(out.buffer);
  out[0] = direction;
  out[1] = op;
  view.setUint16(2, data.length, true);
  view.setUint32(4, word >>> 0, true);
  out.set(data, HEADER_LENGTH);
  return out;
}

export function encodeCommand(op: number, data: Uint8Array = new Uint8Array(0), sum = 0): Uint8Array {
  return encode(Direction.COMMAND, op, sum, data);
}

export function encodeResponse(op: number, value: number, data: Uint8Array): Uint8Array {
  return encode(Direction.RESPONSE, op, value, data);
}

function decode(frame: Uint8Array, direction: number): Decoded<{ op: number; word: number; data: Uint8Array }> {
  if (frame.length < HEADER_LENGTH) return { kind: 'malformed', reason: `${frame.length}-byte frame is shorter than the 8-byte header` };
  if (frame[0] !== direction) return { kind: 'malformed', reason: `direction byte 0x${frame[0].toString(16)}, expected 0x0${direction}` };
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const size = view.getUint16(2, true);
  if (size !== frame.length - HEADER_LENGTH) return { kind: 'malformed', reason: `size field ${size} but ${frame.length - HEADER_LENGTH} bytes of data` };
  return { kind: 'packet', packet: { op: frame[1], word: view.getUint32(4, true), data: frame.subarray(HEADER_LENGTH) } };
}

export function decodeCommand(frame: Uint8Array): Decoded<CommandPacket> {
  const d = decode(frame, Direction.COMMAND);
  return d.kind === 'packet' ? { kind: 'packet', packet: { op: d.packet.op, checksum: d.packet.word, data: d.packet.data } } : d;
}

export function decodeResponse(frame: Uint8Array): Decoded<ResponsePacket> {
  const d = decode(frame, Direction.RESPONSE);
  return d.kind === 'packet' ? { kind: 'packet', packet: { op: d.packet.op, value: d.packet.word, data: d.packet.data } } : d;
}

/** Little-endian u32 words of a command's data (as many as it holds). */
export function words(data: Uint8Array): number[] {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out: number[] = [];
  for (let at = 0; at + 4 <= data.length; at += 4) out.push(view.getUint32(at, true));
  return out;
}

export function u32le(...values: number[]): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => view.setUint32(i * 4, v >>> 0, true));
  return out;
}
