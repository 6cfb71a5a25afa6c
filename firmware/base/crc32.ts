/**
 * CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, init and final XOR
 * 0xFFFFFFFF): zlib's checksum, so the host tools can check it with any
 * library. (ESP-IDF's otadata CRC uses the same table with another start
 * value: see firmware/update/otadata.ts.) The table is computed once when
 * the module loads (at preload on the device) and frozen.
 */
const TABLE: Readonly<Uint32Array> = buildTable();

function buildTable(): Uint32Array {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
}

/** Continue a CRC over `bytes[start, end)`; start from `crc32Init()`. */
export function crc32Update(crc: number, bytes: Uint8Array, start = 0, end = bytes.length): number {
  let c = crc;
  for (let i = start; i < end; i++) c = TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return c >>> 0;
}

export function crc32Init(): number {
  return 0xffffffff;
}

export function crc32Final(crc: number): number {
  return (crc ^ 0xffffffff) >>> 0;
}

export function crc32(bytes: Uint8Array, start = 0, end = bytes.length): number {
  return crc32Final(crc32Update(crc32Init(), bytes, start, end));
}
