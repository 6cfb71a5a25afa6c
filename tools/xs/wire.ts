/**
 * The host-service protocol carried by XS's synchronous `issueCommand`
 * (docs/design/xs-harness.md). Shared by the guest (inside XS) and the host
 * (Node); engine-neutral. All integers little-endian.
 *
 * request:  u8 service, then service-specific bytes
 * FLASH:    u8 op, u32 handle, operands (ARM_CUT: operation, seed, tear mode
 *           code from encodeTearMode; a request without the third operand
 *           tears in 'prefix' mode)
 * STREAM:   u8 op, u32 handle, operands (CONNECT: u16 port + UTF-8 host, handle 0;
 *           WRITE: the bytes; CLOSE: none); replies CONNECT: u32 handle,
 *           WRITE: u32 room left (docs/design/mqtt-client.md, "XS bridge")
 * ENTROPY:  u32 length; reply: that many random bytes from the host's CSPRNG
 * reply:    u8 status (OK, POWER_CUT + u32 operation, MISUSE + UTF-8 text,
 *           ERROR + UTF-8 "name\n message"), then the result bytes
 *
 * The other direction (host → guest, `handleCommand`), for the stream
 * bridge only: u8 GuestCommand, then STREAM_EVENT: u8 StreamEvent, u32
 * handle, u32 now (host ticks), body (READABLE: the bytes; WRITABLE: u32
 * room; ERROR: UTF-8 reason); TICK: u32 now. The guest answers both with
 * i32 nextDueMs (-1: nothing timed) and any bytes of its own after it.
 */
export const Service = Object.freeze({ FLASH: 1, SAVE_IMAGE: 2, LOG: 3, STREAM: 4, ENTROPY: 5 });

export const StreamOp = Object.freeze({ CONNECT: 1, WRITE: 2, CLOSE: 3 });

/** First byte of a host → guest command of the stream bridge (far from JSON's '{' and from small app codes). */
export const GuestCommand = Object.freeze({ STREAM_EVENT: 0xf0, TICK: 0xf1 });

export const StreamEvent = Object.freeze({ READABLE: 1, WRITABLE: 2, ERROR: 3 });

/** STREAM request header: service, op, handle. */
export const STREAM_HEADER_LENGTH = 6;

export function encodeStreamRequest(op: number, handle: number, body?: Uint8Array): Uint8Array {
  const out = new Uint8Array(STREAM_HEADER_LENGTH + (body ? body.length : 0));
  out[0] = Service.STREAM;
  out[1] = op;
  new DataView(out.buffer).setUint32(2, handle, true);
  if (body) out.set(body, STREAM_HEADER_LENGTH);
  return out;
}

/** STREAM_EVENT header: command, event, handle, now. */
export const STREAM_EVENT_HEADER_LENGTH = 10;

export function encodeStreamEvent(event: number, handle: number, now: number, body?: Uint8Array): Uint8Array {
  const out = new Uint8Array(STREAM_EVENT_HEADER_LENGTH + (body ? body.length : 0));
  const view = new DataView(out.buffer);
  out[0] = GuestCommand.STREAM_EVENT;
  out[1] = event;
  view.setUint32(2, handle, true);
  view.setUint32(6, now >>> 0, true);
  if (body) out.set(body, STREAM_EVENT_HEADER_LENGTH);
  return out;
}

export function encodeTick(now: number): Uint8Array {
  const out = new Uint8Array(5);
  out[0] = GuestCommand.TICK;
  new DataView(out.buffer).setUint32(1, now >>> 0, true);
  return out;
}

export function u32le(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value >>> 0, true);
  return out;
}

export const FlashOp = Object.freeze({
  CREATE: 1,
  READ: 2,
  WRITE: 3,
  ERASE: 4,
  STATUS: 5,
  ARM_CUT: 6,
  DISARM_CUT: 7,
  POWER_ON: 8,
  COUNTERS: 9,
  SNAPSHOT: 10,
});

export const ReplyStatus = Object.freeze({ OK: 0, POWER_CUT: 1, MISUSE: 2, ERROR: 3 });

/** ARM_CUT's tear-mode operand: 0 = absent (prefix), 1 = 'prefix', 2 = 'bit-subset'. */
export function encodeTearMode(tear: 'prefix' | 'bit-subset' | undefined): number {
  if (tear === undefined) return 0;
  if (tear === 'prefix') return 1;
  if (tear === 'bit-subset') return 2;
  throw new RangeError(`bad tear mode ${String(tear)}`);
}

/** Inverse of encodeTearMode. */
export function decodeTearMode(code: number | undefined): 'prefix' | 'bit-subset' | undefined {
  if (code === undefined || code === 0) return undefined;
  if (code === 1) return 'prefix';
  if (code === 2) return 'bit-subset';
  throw new RangeError(`unknown tear mode code ${code}`);
}

/** FLASH request header: service, op, handle, and room for two u32 operands. */
export const FLASH_HEADER_LENGTH = 6;

export function encodeFlashRequest(op: number, handle: number, operands: readonly number[], body?: Uint8Array): Uint8Array {
  const out = new Uint8Array(FLASH_HEADER_LENGTH + operands.length * 4 + (body ? body.length : 0));
  const view = new DataView(out.buffer);
  out[0] = Service.FLASH;
  out[1] = op;
  view.setUint32(2, handle, true);
  operands.forEach((value, i) => view.setUint32(FLASH_HEADER_LENGTH + i * 4, value, true));
  if (body) out.set(body, FLASH_HEADER_LENGTH + operands.length * 4);
  return out;
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

export function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

export function fromUtf8(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}
