/**
 * The host-service protocol carried by XS's synchronous `issueCommand`
 * (docs/design/xs-harness.md). Shared by the guest (inside XS) and the host
 * (Node); engine-neutral. All integers little-endian.
 *
 * request:  u8 service, then service-specific bytes
 * FLASH:    u8 op, u32 handle, operands
 * reply:    u8 status (OK, POWER_CUT + u32 operation, MISUSE + UTF-8 text,
 *           ERROR + UTF-8 "name\n message"), then the result bytes
 */
export const Service = Object.freeze({ FLASH: 1, SAVE_IMAGE: 2, LOG: 3 });

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
