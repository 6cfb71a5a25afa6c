/**
 * CRC-16/CCITT-FALSE (polynomial 0x1021, init 0xFFFF, no reflection, no
 * final XOR): check value 0x29B1 for "123456789". Two bytes per record is
 * what the outbox can afford on 16-byte records (docs/spec/outbox.md).
 */
const TABLE: Readonly<Uint16Array> = buildTable();

function buildTable(): Uint16Array {
  const table = new Uint16Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n << 8;
    for (let k = 0; k < 8; k++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
    table[n] = c;
  }
  return table;
}

export const CRC16_INIT = 0xffff;

/** Continue a CRC over `bytes[start, end)`. */
export function crc16Update(crc: number, bytes: Uint8Array, start = 0, end = bytes.length): number {
  let c = crc;
  for (let i = start; i < end; i++) c = ((c << 8) & 0xffff) ^ TABLE[((c >>> 8) ^ bytes[i]) & 0xff];
  return c;
}

export function crc16(bytes: Uint8Array, start = 0, end = bytes.length): number {
  return crc16Update(CRC16_INIT, bytes, start, end);
}
