/**
 * Holdfast app image header (docs/spec/otadata.md, "App image header",
 * format 1): what the simulated bootloader checks before it boots a slot.
 * On the device the real ESP-IDF bootloader checks the real image
 * (esp_image_header_t + esp_app_desc_t, appended SHA-256); this header
 * carries the same facts in a form the host can build and check.
 *
 *   0      4      6      8          12         16         20     24              56     60     64
 *   +------+------+------+----------+----------+----------+------+---------------+------+------+------ ...
 *   |"HFAP"| fmt  | hlen | body len | secure v | image v  | rsvd | SHA-256(body) | rsvd | CRC  | body
 *   +------+------+------+----------+----------+----------+------+---------------+------+------+------ ...
 *
 * Little-endian. CRC-32 is zlib's (firmware/base/crc32.ts) over bytes 0..59.
 */
import { FORMAT_VERSIONS } from '../base/format-versions.ts';
import type { FlashPartition } from '../hal/flash.ts';
import type { Sha256 } from '../hal/crypto.ts';
import { crc32 } from '../base/crc32.ts';

/** Format version of this header, separate from the package version. */
export const APP_IMAGE_FORMAT_VERSION = FORMAT_VERSIONS.appImage;
/** "HFAP": holdfast app. */
export const APP_IMAGE_MAGIC: readonly number[] = Object.freeze([0x48, 0x46, 0x41, 0x50]);
/** Header bytes: four 16-byte program units, so the body starts unit-aligned. */
export const APP_IMAGE_HEADER_LENGTH = 64;
export const APP_IMAGE_DIGEST_LENGTH = 32;
/** Bytes hashed per read while verifying. */
const VERIFY_CHUNK = 1024;

export interface AppImageMeta {
  /** Anti-rollback version (ESP-IDF `esp_app_desc_t.secure_version`), u32. */
  readonly secureVersion: number;
  /** Release version, u32 (ESP-IDF keeps a 32-char string here). */
  readonly imageVersion: number;
}

export interface AppImageHeader extends AppImageMeta {
  readonly formatVersion: number;
  /** Body bytes after the header. */
  readonly imageLength: number;
  /** SHA-256 of the body (a copy). */
  readonly sha256: Uint8Array;
}

export type AppImageHeaderReading =
  | { readonly kind: 'header'; readonly header: AppImageHeader }
  /** All 64 bytes 0xFF: nothing was ever written here. */
  | { readonly kind: 'blank' }
  | { readonly kind: 'malformed'; readonly detail: string };

export type AppImageCheck =
  | { readonly kind: 'ok'; readonly header: AppImageHeader }
  | { readonly kind: 'blank' }
  | { readonly kind: 'malformed'; readonly detail: string }
  /** The header declares more body than the slot holds. */
  | { readonly kind: 'too-large'; readonly header: AppImageHeader }
  /** The body's SHA-256 differs from the header's. */
  | { readonly kind: 'bad-hash'; readonly header: AppImageHeader };

/** Header bytes for `body` (hashed with `createSha256`). */
export function encodeAppImageHeader(meta: AppImageMeta, body: Uint8Array, createSha256: () => Sha256): Uint8Array {
  const hash = createSha256();
  hash.update(body);
  return encodeHeaderFields({ ...meta, formatVersion: APP_IMAGE_FORMAT_VERSION, imageLength: body.length, sha256: hash.digest() });
}

/** Header followed by body: the bytes to program at offset 0 of a slot. */
export function encodeAppImage(meta: AppImageMeta, body: Uint8Array, createSha256: () => Sha256): Uint8Array {
  const image = new Uint8Array(APP_IMAGE_HEADER_LENGTH + body.length);
  image.set(encodeAppImageHeader(meta, body, createSha256), 0);
  image.set(body, APP_IMAGE_HEADER_LENGTH);
  return image;
}

/** Any header fields, CRC computed: for tests that need odd values. */
export function encodeHeaderFields(header: AppImageHeader): Uint8Array {
  const bytes = new Uint8Array(APP_IMAGE_HEADER_LENGTH);
  const view = new DataView(bytes.buffer);
  bytes.set(APP_IMAGE_MAGIC, 0);
  view.setUint16(4, requireUint(header.formatVersion, 0xffff, 'formatVersion'), true);
  view.setUint16(6, APP_IMAGE_HEADER_LENGTH, true);
  view.setUint32(8, requireUint(header.imageLength, 0xffffffff, 'imageLength'), true);
  view.setUint32(12, requireUint(header.secureVersion, 0xffffffff, 'secureVersion'), true);
  view.setUint32(16, requireUint(header.imageVersion, 0xffffffff, 'imageVersion'), true);
  if (!(header.sha256 instanceof Uint8Array) || header.sha256.length !== APP_IMAGE_DIGEST_LENGTH) throw new RangeError('sha256 must be 32 bytes');
  bytes.set(header.sha256, 24);
  view.setUint32(60, crc32(bytes, 0, 60), true);
  return bytes;
}

/** Decode the 64 header bytes. Never throws for content. */
export function decodeAppImageHeader(bytes: Uint8Array): AppImageHeaderReading {
  if (!(bytes instanceof Uint8Array) || bytes.length < APP_IMAGE_HEADER_LENGTH) throw new RangeError(`an app image header is ${APP_IMAGE_HEADER_LENGTH} bytes`);
  let erased = true;
  for (let i = 0; i < APP_IMAGE_HEADER_LENGTH; i++) if (bytes[i] !== 0xff) erased = false;
  if (erased) return { kind: 'blank' };
  for (let i = 0; i < 4; i++) if (bytes[i] !== APP_IMAGE_MAGIC[i]) return { kind: 'malformed', detail: 'bad magic' };
  const view = new DataView(bytes.buffer, bytes.byteOffset, APP_IMAGE_HEADER_LENGTH);
  if (view.getUint32(60, true) !== crc32(bytes, 0, 60)) return { kind: 'malformed', detail: 'header CRC mismatch' };
  const formatVersion = view.getUint16(4, true);
  if (formatVersion !== APP_IMAGE_FORMAT_VERSION) return { kind: 'malformed', detail: `unknown header format ${formatVersion}` };
  if (view.getUint16(6, true) !== APP_IMAGE_HEADER_LENGTH) return { kind: 'malformed', detail: 'bad header length' };
  if (view.getUint32(20, true) !== 0 || view.getUint32(56, true) !== 0) return { kind: 'malformed', detail: 'reserved bytes not zero' };
  return {
    kind: 'header',
    header: {
      formatVersion,
      imageLength: view.getUint32(8, true),
      secureVersion: view.getUint32(12, true),
      imageVersion: view.getUint32(16, true),
      sha256: bytes.slice(24, 24 + APP_IMAGE_DIGEST_LENGTH),
    },
  };
}

/** Read and decode the header at offset 0 of `slot` (the anti-rollback check reads only this). */
export function readAppImageHeader(slot: FlashPartition): AppImageHeaderReading {
  if (slot.status().size < APP_IMAGE_HEADER_LENGTH) return { kind: 'malformed', detail: 'slot smaller than a header' };
  const bytes = new Uint8Array(APP_IMAGE_HEADER_LENGTH);
  slot.read(0, bytes);
  return decodeAppImageHeader(bytes);
}

/**
 * The simulated bootloader's image check: header, length within the slot,
 * SHA-256 of the body streamed through `createSha256()` (the crypto HAL's
 * shape, so the device can use its native engine).
 */
export function verifyAppImage(slot: FlashPartition, createSha256: () => Sha256): AppImageCheck {
  const reading = readAppImageHeader(slot);
  if (reading.kind !== 'header') return reading;
  const header = reading.header;
  if (header.imageLength > slot.status().size - APP_IMAGE_HEADER_LENGTH) return { kind: 'too-large', header };
  const hash = createSha256();
  const chunk = new Uint8Array(VERIFY_CHUNK);
  for (let done = 0; done < header.imageLength; ) {
    const length = Math.min(VERIFY_CHUNK, header.imageLength - done);
    const view = length === VERIFY_CHUNK ? chunk : chunk.subarray(0, length);
    slot.read(APP_IMAGE_HEADER_LENGTH + done, view);
    hash.update(view);
    done += length;
  }
  const digest = hash.digest();
  let same = digest.length === APP_IMAGE_DIGEST_LENGTH;
  for (let i = 0; i < APP_IMAGE_DIGEST_LENGTH && same; i++) if (digest[i] !== header.sha256[i]) same = false;
  return same ? { kind: 'ok', header } : { kind: 'bad-hash', header };
}

function requireUint(value: number, max: number, name: string): number {
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number`);
  if (!Number.isInteger(value) || value < 0 || value > max) throw new RangeError(`${name} must be an integer 0..${max}, got ${value}`);
  return value;
}
