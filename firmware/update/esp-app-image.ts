/**
 * ESP-IDF app images (docs/spec/esp-app-image.md), as the ESP-IDF
 * bootloader reads them. Checked against ESP-IDF v6.0 (662a3be3):
 * components/bootloader_support/include/esp_app_format.h,
 * components/esp_app_format/include/esp_app_desc.h,
 * components/bootloader_support/src/esp_image_format.c (`image_load`,
 * `esp_image_verify`), bootloader_common_loader.c (chip and revision checks).
 *
 *   0        24                32                    32+len0
 *   +--------+-----------------+---------------------+----------------+-- ... --+---------+----------+---------+
 *   | header | seg 0 header    | seg 0 data (starts  | seg 1 header   |         | padding | checksum | SHA-256 |
 *   | 24 B   | load_addr, len  | with esp_app_desc_t)| ...            |         | to 16-1 | 1 byte   | 32 B    |
 *   +--------+-----------------+---------------------+----------------+-- ... --+---------+----------+---------+
 *
 * Little-endian. The validator streams a slot in bounded reads (a 1 KiB
 * buffer; ESP32 app slots are 1.5 MiB and more), never the whole image.
 */
import type { FlashPartition } from '../hal/flash.ts';
import type { Sha256 } from '../hal/crypto.ts';
import { FORMAT_VERSIONS } from '../base/format-versions.ts';

/** 2: ESP-IDF's image format; 1 was holdfast's HFAP stand-in header, which nothing reads any more. */
export const APP_IMAGE_FORMAT_VERSION = FORMAT_VERSIONS.appImage;

export const ESP_IMAGE_MAGIC = 0xe9;
/** sizeof(esp_image_header_t). */
export const ESP_IMAGE_HEADER_LENGTH = 24;
/** sizeof(esp_image_segment_header_t). */
export const ESP_SEGMENT_HEADER_LENGTH = 8;
export const ESP_IMAGE_MAX_SEGMENTS = 16;
/** ESP_ROM_CHECKSUM_INITIAL. */
export const ESP_CHECKSUM_SEED = 0xef;
export const ESP_IMAGE_HASH_LENGTH = 32;
export const ESP_APP_DESC_MAGIC = 0xabcd5432;
/** sizeof(esp_app_desc_t). */
export const ESP_APP_DESC_LENGTH = 256;
/** Image offset of esp_app_desc_t: after the image header and the first segment header. */
export const ESP_APP_DESC_OFFSET = ESP_IMAGE_HEADER_LENGTH + ESP_SEGMENT_HEADER_LENGTH;
/** MMU page (SPI_FLASH_MMU_PAGE_SIZE) on ESP32, S3, C3: a mapped segment's flash offset and address agree modulo it. */
export const ESP_MMU_PAGE = 0x10000;
/** Bytes read per step while checksumming and hashing. */
const CHUNK = 1024;

/** What the validator needs to know about a chip (ESP-IDF v6.0 soc.h and soc_caps.h). */
export interface EspChip {
  readonly name: 'esp32' | 'esp32s3' | 'esp32c3';
  /** esp_chip_id_t (CONFIG_IDF_FIRMWARE_CHIP_ID). */
  readonly chipId: number;
  /** Address ranges [low, high) of flash-mapped segments (SOC_DROM_*, SOC_IROM_*): `should_map`. */
  readonly mapped: readonly (readonly [number, number])[];
  /** ESP_IMAGE_MAX_FLASH_ADDR_SIZE: 16 MiB, or 2^32 - 1 with SOC_SPI_MEM_SUPPORT_CACHE_32BIT_ADDR_MAP (S3). */
  readonly maxFlashAddrSize: number;
  /** `bootloader_common_check_efuse_blk_validity` runs on every chip but the ESP32. */
  readonly checksEfuseBlockRevision: boolean;
  /** Load addresses the builder uses by default: DROM (segment 0) and DRAM. */
  readonly drom: number;
  readonly dram: number;
}

function ranges(...list: [number, number][]): readonly (readonly [number, number])[] {
  return Object.freeze(list.map((range) => Object.freeze(range)));
}

export const ESP_CHIPS: Readonly<Record<EspChip['name'], EspChip>> = Object.freeze({
  esp32: Object.freeze<EspChip>({ name: 'esp32', chipId: 0x0000, mapped: ranges([0x3f400000, 0x3f800000], [0x400d0000, 0x40400000]), maxFlashAddrSize: 0x1000000, checksEfuseBlockRevision: false, drom: 0x3f400000, dram: 0x3ffb0000 }),
  esp32s3: Object.freeze<EspChip>({ name: 'esp32s3', chipId: 0x0009, mapped: ranges([0x3c000000, 0x3e000000], [0x42000000, 0x44000000]), maxFlashAddrSize: 0xffffffff, checksEfuseBlockRevision: true, drom: 0x3c000000, dram: 0x3fc88000 }),
  esp32c3: Object.freeze<EspChip>({ name: 'esp32c3', chipId: 0x0005, mapped: ranges([0x3c000000, 0x3c800000], [0x42000000, 0x42800000]), maxFlashAddrSize: 0x1000000, checksEfuseBlockRevision: true, drom: 0x3c000000, dram: 0x3fc80000 }),
});

/** The chip with this esp_chip_id_t, if holdfast knows it. */
export function espChipById(chipId: number): EspChip | undefined {
  for (const chip of [ESP_CHIPS.esp32, ESP_CHIPS.esp32s3, ESP_CHIPS.esp32c3]) if (chip.chipId === chipId) return chip;
  return undefined;
}

/** esp_image_header_t. */
export interface EspImageHeader {
  readonly segmentCount: number;
  readonly spiMode: number;
  /** Low nibble of byte 3. */
  readonly spiSpeed: number;
  /** High nibble of byte 3. */
  readonly spiSize: number;
  readonly entryAddr: number;
  readonly wpPin: number;
  readonly spiPinDrv: readonly [number, number, number];
  readonly chipId: number;
  /** Legacy byte, kept by ESP-IDF but no longer checked. */
  readonly minChipRev: number;
  /** major * 100 + minor. */
  readonly minChipRevFull: number;
  /** major * 100 + minor; 0 and 0xFFFF mean "no maximum". */
  readonly maxChipRevFull: number;
  /** Nonzero: a SHA-256 of everything before it follows the checksum byte. */
  readonly hashAppended: number;
}

/** esp_app_desc_t (strings up to their first NUL, at most the field's width). */
export interface EspAppDesc {
  readonly secureVersion: number;
  readonly version: string;
  readonly projectName: string;
  readonly time: string;
  readonly date: string;
  readonly idfVersion: string;
  readonly elfSha256: Uint8Array;
  readonly minEfuseBlkRevFull: number;
  readonly maxEfuseBlkRevFull: number;
  /** log2 of the MMU page size (0 in images older than the field). */
  readonly mmuPageSize: number;
}

export interface EspSegment {
  readonly loadAddr: number;
  /** Offset of its data in the image. */
  readonly dataOffset: number;
  readonly length: number;
}

/** A slot that passed every check. */
export interface EspAppImage {
  readonly header: EspImageHeader;
  readonly segments: readonly EspSegment[];
  /** Undefined only when the rules did not require it and segment 0 does not start with one. */
  readonly appDesc: EspAppDesc | undefined;
  readonly checksum: number;
  /** The appended SHA-256 (a copy), when hash_appended. */
  readonly sha256: Uint8Array | undefined;
  /** Bytes from the header to the end of the hash (ESP-IDF `image_len`). */
  readonly length: number;
}

export type EspImageRefusal =
  /** The header is all 0xFF: nothing was written here. */
  | 'blank'
  | 'bad-magic'
  | 'wrong-chip'
  | 'chip-revision'
  | 'too-many-segments'
  /** A segment length that is not a multiple of 4, or ≥ the chip's maximum flash address size. */
  | 'bad-segment-length'
  /** A flash-mapped segment whose data offset and load address differ modulo the 64 KiB MMU page. */
  | 'segment-misaligned'
  | 'no-app-desc'
  | 'efuse-block-revision'
  /** The image (a segment, the checksum block or the hash) runs past the end of the slot. */
  | 'truncated'
  | 'bad-checksum'
  | 'bad-hash'
  /** hash_appended is 0: ESP-IDF accepts that, holdfast does not (the checksum byte misses 1 corruption in 256). */
  | 'no-hash'
  /** The slot is larger than the chip can address (ESP-IDF refuses the partition). */
  | 'slot-too-large';

export type EspImageCheck =
  | { readonly ok: true; readonly image: EspAppImage }
  | { readonly ok: false; readonly reason: EspImageRefusal; readonly message: string };

export interface EspImageRules {
  /** The chip the bootloader was built for (CONFIG_IDF_FIRMWARE_CHIP_ID). */
  readonly chip: EspChip;
  /** The chip's revision, major * 100 + minor (efuse_hal_chip_revision); default 0. */
  readonly chipRevision?: number;
  /** The eFuse block revision (efuse_hal_blk_version), checked on S3 and C3; default 0. */
  readonly efuseBlockRevision?: number;
  /**
   * Segment 0 must start with esp_app_desc_t (magic 0xABCD5432): ESP-IDF
   * requires it with CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK; holdfast always.
   */
  readonly requireAppDesc: boolean;
  /** hash_appended must be set (holdfast's rule; ESP-IDF without Secure Boot accepts a checksum alone). */
  readonly requireHash: boolean;
}

/** The rules holdfast's update agent and CLI apply: ESP-IDF's, plus app description and appended hash required. */
export function holdfastRules(chip: EspChip): EspImageRules {
  return { chip, requireAppDesc: true, requireHash: true };
}

// --------------------------------------------------------------- decoding --

export function decodeEspImageHeader(bytes: Uint8Array): EspImageHeader {
  if (!(bytes instanceof Uint8Array) || bytes.length < ESP_IMAGE_HEADER_LENGTH) throw new RangeError(`an ESP image header is ${ESP_IMAGE_HEADER_LENGTH} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, ESP_IMAGE_HEADER_LENGTH);
  return {
    segmentCount: bytes[1],
    spiMode: bytes[2],
    spiSpeed: bytes[3] & 0x0f,
    spiSize: bytes[3] >>> 4,
    entryAddr: view.getUint32(4, true),
    wpPin: bytes[8],
    spiPinDrv: [bytes[9], bytes[10], bytes[11]],
    chipId: view.getUint16(12, true),
    minChipRev: bytes[14],
    minChipRevFull: view.getUint16(15, true),
    maxChipRevFull: view.getUint16(17, true),
    hashAppended: bytes[23],
  };
}

/** Decode esp_app_desc_t from 256 bytes; undefined when the magic word is not 0xABCD5432. */
export function decodeEspAppDesc(bytes: Uint8Array): EspAppDesc | undefined {
  if (!(bytes instanceof Uint8Array) || bytes.length < ESP_APP_DESC_LENGTH) throw new RangeError(`esp_app_desc_t is ${ESP_APP_DESC_LENGTH} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, ESP_APP_DESC_LENGTH);
  if (view.getUint32(0, true) !== ESP_APP_DESC_MAGIC) return undefined;
  return {
    secureVersion: view.getUint32(4, true),
    version: cString(bytes, 16, 32),
    projectName: cString(bytes, 48, 32),
    time: cString(bytes, 80, 16),
    date: cString(bytes, 96, 16),
    idfVersion: cString(bytes, 112, 32),
    elfSha256: bytes.slice(144, 176),
    minEfuseBlkRevFull: view.getUint16(176, true),
    maxEfuseBlkRevFull: view.getUint16(178, true),
    mmuPageSize: bytes[180],
  };
}

/**
 * holdfast's image version from esp_app_desc_t.version (PROJECT_VER): the
 * decimal digits of a u32 and nothing else ("7", not "v7" nor "07"), so the
 * device compares numbers, never strings. Undefined for anything else.
 */
export function imageVersionOf(desc: EspAppDesc): number | undefined {
  const text = desc.version;
  if (!/^(0|[1-9][0-9]{0,9})$/.test(text)) return undefined;
  const value = Number(text);
  return value <= 0xffffffff ? value : undefined;
}

export type EspAppDescReading =
  | { readonly kind: 'desc'; readonly header: EspImageHeader; readonly desc: EspAppDesc }
  | { readonly kind: 'blank' }
  | { readonly kind: 'malformed'; readonly detail: string };

/**
 * The image header and esp_app_desc_t of a slot, from its first 288 bytes
 * only (as ESP-IDF's `bootloader_common_get_partition_description`, which
 * the anti-rollback check uses): no checksum, no hash.
 */
export function readEspAppDesc(slot: FlashPartition): EspAppDescReading {
  const need = ESP_APP_DESC_OFFSET + ESP_APP_DESC_LENGTH;
  if (slot.status().size < need) return { kind: 'malformed', detail: 'slot smaller than an image header and app description' };
  const bytes = new Uint8Array(need);
  slot.read(0, bytes);
  if (isErased(bytes, 0, ESP_IMAGE_HEADER_LENGTH)) return { kind: 'blank' };
  if (bytes[0] !== ESP_IMAGE_MAGIC) return { kind: 'malformed', detail: `magic 0x${hex(bytes[0], 2)}, expected 0xe9` };
  const header = decodeEspImageHeader(bytes);
  if (header.segmentCount === 0) return { kind: 'malformed', detail: 'no segments' };
  const segmentLength = u32(bytes, ESP_IMAGE_HEADER_LENGTH + 4);
  if (segmentLength < ESP_APP_DESC_LENGTH) return { kind: 'malformed', detail: `segment 0 is ${segmentLength} bytes, shorter than esp_app_desc_t (256)` };
  const desc = decodeEspAppDesc(bytes.subarray(ESP_APP_DESC_OFFSET));
  if (desc === undefined) return { kind: 'malformed', detail: `app description magic 0x${hex(u32(bytes, ESP_APP_DESC_OFFSET), 8)}, expected 0xabcd5432` };
  return { kind: 'desc', header, desc };
}

/**
 * Exactly ESP-IDF's `bootloader_common_get_partition_description`, what the
 * bootloader's anti-rollback check reads: the 256 bytes at offset 32, with
 * the description's magic as the only check (not the image magic, not the
 * segment). The simulated bootloader classifies slots with it, so a slot is
 * `refused` exactly when ESP-IDF refuses it.
 */
export function readPartitionDescription(slot: FlashPartition): EspAppDesc | undefined {
  if (slot.status().size < ESP_APP_DESC_OFFSET + ESP_APP_DESC_LENGTH) return undefined;
  const bytes = new Uint8Array(ESP_APP_DESC_LENGTH);
  slot.read(ESP_APP_DESC_OFFSET, bytes);
  return decodeEspAppDesc(bytes);
}

// ------------------------------------------------------------- validating --

/**
 * ESP-IDF's `esp_image_verify` over `slot` (offset 0 = the partition's
 * first byte, on a 64 KiB boundary as ESP-IDF places app partitions), in
 * its order: header (magic, chip id and revision, segment count), each
 * segment header (length, alignment of mapped segments) and its data
 * (XOR checksum, SHA-256), the checksum byte, the image fitting the slot,
 * the appended SHA-256; plus `rules`' app description and hash
 * requirements. Never throws for content; reads at most 1 KiB at a time.
 */
export function verifyEspAppImage(slot: FlashPartition, rules: EspImageRules, createSha256: () => Sha256): EspImageCheck {
  const size = slot.status().size;
  const chip = rules.chip;
  if (size > chip.maxFlashAddrSize) return refuse('slot-too-large', `slot of ${size} bytes: ${chip.name} addresses at most ${chip.maxFlashAddrSize}`);
  if (size < ESP_IMAGE_HEADER_LENGTH) return refuse('truncated', `slot of ${size} bytes cannot hold the 24-byte image header`);
  const headerBytes = new Uint8Array(ESP_IMAGE_HEADER_LENGTH);
  slot.read(0, headerBytes);
  const header = decodeEspImageHeader(headerBytes);
  // process_image_header: the hash starts before the header is judged.
  const hash = header.hashAppended !== 0 ? createSha256() : undefined;
  hash?.update(headerBytes);
  // verify_image_header
  if (headerBytes[0] !== ESP_IMAGE_MAGIC) {
    if (isErased(headerBytes, 0, ESP_IMAGE_HEADER_LENGTH)) return refuse('blank', 'the slot is erased (header all 0xFF)');
    return refuse('bad-magic', `magic 0x${hex(headerBytes[0], 2)}, expected 0xe9`);
  }
  if (header.chipId !== chip.chipId) return refuse('wrong-chip', `image for chip id 0x${hex(header.chipId, 4)}${chipName(header.chipId)}, this is ${chip.name} (0x${hex(chip.chipId, 4)})`);
  const revision = rules.chipRevision ?? 0;
  if (revision < header.minChipRevFull) return refuse('chip-revision', `image needs chip revision >= v${revisionText(header.minChipRevFull)}, chip is v${revisionText(revision)}`);
  if (isFieldSet(header.maxChipRevFull) && revision > header.maxChipRevFull) return refuse('chip-revision', `image needs chip revision <= v${revisionText(header.maxChipRevFull)}, chip is v${revisionText(revision)}`);
  if (header.segmentCount > ESP_IMAGE_MAX_SEGMENTS) return refuse('too-many-segments', `${header.segmentCount} segments, at most ${ESP_IMAGE_MAX_SEGMENTS}`);
  if (rules.requireHash && header.hashAppended === 0) return refuse('no-hash', 'hash_appended is 0: holdfast requires the appended SHA-256');
  if (rules.requireAppDesc && header.segmentCount === 0) return refuse('no-app-desc', 'no segments, so no esp_app_desc_t');

  // process_segments
  const segments: EspSegment[] = [];
  const buffer = new Uint8Array(CHUNK);
  let checksum = ESP_CHECKSUM_SEED;
  let appDesc: EspAppDesc | undefined;
  let offset = ESP_IMAGE_HEADER_LENGTH;
  for (let index = 0; index < header.segmentCount; index++) {
    if (offset + ESP_SEGMENT_HEADER_LENGTH > size) return refuse('truncated', `segment ${index} header at ${offset} runs past the ${size}-byte slot`);
    const segmentHeader = buffer.subarray(0, ESP_SEGMENT_HEADER_LENGTH);
    slot.read(offset, segmentHeader);
    hash?.update(segmentHeader);
    const loadAddr = u32(segmentHeader, 0);
    const length = u32(segmentHeader, 4);
    const dataOffset = offset + ESP_SEGMENT_HEADER_LENGTH;
    // verify_segment_header
    if ((length & 3) !== 0 || length >= chip.maxFlashAddrSize) return refuse('bad-segment-length', `segment ${index} length 0x${hex(length, 1)}: expected a multiple of 4 below 0x${hex(chip.maxFlashAddrSize, 1)}`);
    if (isMapped(chip, loadAddr) && dataOffset % ESP_MMU_PAGE !== loadAddr % ESP_MMU_PAGE) {
      return refuse('segment-misaligned', `segment ${index} maps 0x${hex(loadAddr, 8)} from offset 0x${hex(dataOffset, 1)}: they must agree modulo 64 KiB`);
    }
    if (length > size - dataOffset) return refuse('truncated', `segment ${index} (${length} bytes at ${dataOffset}) runs past the ${size}-byte slot`);
    if (index === 0 && length > 0) {
      // process_segment_data, segment 0 of an app: esp_app_desc_t sits at its start.
      const descBytes = new Uint8Array(ESP_APP_DESC_LENGTH);
      const inSlot = Math.min(ESP_APP_DESC_LENGTH, size - dataOffset);
      descBytes.fill(0xff);
      slot.read(dataOffset, descBytes.subarray(0, inSlot));
      if (chip.checksEfuseBlockRevision) {
        const view = new DataView(descBytes.buffer);
        const blk = rules.efuseBlockRevision ?? 0;
        const min = view.getUint16(176, true);
        const max = view.getUint16(178, true);
        if (isFieldSet(min) && blk < min) return refuse('efuse-block-revision', `image needs eFuse block revision >= v${revisionText(min)}, chip is v${revisionText(blk)}`);
        if (isFieldSet(max) && blk > max) return refuse('efuse-block-revision', `image needs eFuse block revision <= v${revisionText(max)}, chip is v${revisionText(blk)}`);
      }
      appDesc = length >= ESP_APP_DESC_LENGTH ? decodeEspAppDesc(descBytes) : undefined;
    }
    if (index === 0 && rules.requireAppDesc && appDesc === undefined) {
      return refuse('no-app-desc', length < ESP_APP_DESC_LENGTH ? `segment 0 is ${length} bytes, shorter than esp_app_desc_t (256)` : `segment 0 does not start with esp_app_desc_t (magic 0x${hex(u32Of(slot, dataOffset), 8)}, expected 0xabcd5432)`);
    }
    for (let done = 0; done < length; ) {
      const part = buffer.subarray(0, Math.min(CHUNK, length - done));
      slot.read(dataOffset + done, part);
      for (let i = 0; i < part.length; i++) checksum ^= part[i];
      hash?.update(part);
      done += part.length;
    }
    segments.push({ loadAddr, dataOffset, length });
    offset = dataOffset + length;
  }

  // process_checksum: the checksum byte ends the 16-byte block after the last segment.
  const padded = ((offset + 1 + 15) & ~15) - offset;
  if (padded > size - offset) return refuse('truncated', `the checksum block (${padded} bytes at ${offset}) runs past the ${size}-byte slot`);
  const tail = buffer.subarray(0, padded);
  slot.read(offset, tail);
  const stored = tail[padded - 1];
  if (stored !== checksum) return refuse('bad-checksum', `checksum byte 0x${hex(stored, 2)} at ${offset + padded - 1}, computed 0x${hex(checksum, 2)}`);
  hash?.update(tail);
  offset += padded;

  // process_appended_hash_and_sig, verify_simple_hash
  let sha256: Uint8Array | undefined;
  if (hash !== undefined) {
    if (ESP_IMAGE_HASH_LENGTH > size - offset) return refuse('truncated', `the appended SHA-256 at ${offset} runs past the ${size}-byte slot`);
    sha256 = new Uint8Array(ESP_IMAGE_HASH_LENGTH);
    slot.read(offset, sha256);
    const computed = hash.digest();
    if (!sameBytes(computed, sha256)) return refuse('bad-hash', `the SHA-256 of bytes 0..${offset - 1} differs from the one appended at ${offset}`);
    offset += ESP_IMAGE_HASH_LENGTH;
  }
  return { ok: true, image: { header, segments, appDesc, checksum, sha256, length: offset } };
}

// ------------------------------------------------ against a signed version --

export type AppImageVerdict =
  | { readonly ok: true; readonly image: EspAppImage; readonly desc: EspAppDesc; readonly imageVersion: number }
  | {
      readonly ok: false;
      /** 'image': not a valid ESP-IDF app image for the chip (holdfastRules); else which esp_app_desc_t field disagrees. */
      readonly what: 'image' | 'version' | 'secure-version';
      readonly reason: EspImageRefusal | undefined;
      readonly desc: EspAppDesc | undefined;
      readonly message: string;
    };

/**
 * What the update agent requires of a staged slot before it selects it, and
 * what `holdfast sign` and `holdfast verify` require of an image file: a
 * valid ESP-IDF app image for `chip` (holdfastRules), whose esp_app_desc_t
 * carries `expected.imageVersion` (as its decimal version string) and
 * `expected.securityVersion` (as secure_version).
 */
export function checkAppImage(slot: FlashPartition, chip: EspChip, expected: { readonly imageVersion: number; readonly securityVersion: number }, createSha256: () => Sha256): AppImageVerdict {
  const check = verifyEspAppImage(slot, holdfastRules(chip), createSha256);
  if (!check.ok) return { ok: false, what: 'image', reason: check.reason, desc: undefined, message: `not a valid ESP-IDF app image for ${chip.name}: ${check.reason}: ${check.message}` };
  const desc = check.image.appDesc as EspAppDesc;
  const imageVersion = imageVersionOf(desc);
  if (imageVersion !== expected.imageVersion) {
    return { ok: false, what: 'version', reason: undefined, desc, message: `esp_app_desc_t.version is ${JSON.stringify(desc.version)}, expected "${expected.imageVersion}" (a holdfast version: decimal digits only)` };
  }
  if (desc.secureVersion !== expected.securityVersion) {
    return { ok: false, what: 'secure-version', reason: undefined, desc, message: `esp_app_desc_t.secure_version is ${desc.secureVersion}, expected ${expected.securityVersion}` };
  }
  return { ok: true, image: check.image, desc, imageVersion };
}

// --------------------------------------------------------------- building --

export interface EspAppDescFields {
  readonly secureVersion: number;
  /** PROJECT_VER, at most 31 bytes (holdfast: the decimal image version). */
  readonly version: string;
  readonly projectName?: string;
  readonly time?: string;
  readonly date?: string;
  readonly idfVersion?: string;
  readonly elfSha256?: Uint8Array;
  readonly minEfuseBlkRevFull?: number;
  readonly maxEfuseBlkRevFull?: number;
  /** log2 of the MMU page size; default 16 (64 KiB). */
  readonly mmuPageSize?: number;
}

export interface EspImageSpec {
  readonly chipId: number;
  /** Segments in image order; data shorter than a multiple of 4 is padded with zeros (as esptool does). */
  readonly segments: readonly { readonly loadAddr: number; readonly data: Uint8Array }[];
  /** Placed at the start of segment 0's data. */
  readonly appDesc?: EspAppDescFields;
  readonly spiMode?: number;
  readonly spiSpeed?: number;
  readonly spiSize?: number;
  readonly entryAddr?: number;
  readonly minChipRevFull?: number;
  readonly maxChipRevFull?: number;
  /** Default true: a SHA-256 of everything before it follows the checksum. */
  readonly hashAppended?: boolean;
}

/** esp_app_desc_t bytes. */
export function encodeEspAppDesc(fields: EspAppDescFields): Uint8Array {
  const bytes = new Uint8Array(ESP_APP_DESC_LENGTH);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, ESP_APP_DESC_MAGIC, true);
  view.setUint32(4, requireUint(fields.secureVersion, 0xffffffff, 'secureVersion'), true);
  putCString(bytes, 16, 32, fields.version, 'version');
  putCString(bytes, 48, 32, fields.projectName ?? 'holdfast', 'projectName');
  putCString(bytes, 80, 16, fields.time ?? '', 'time');
  putCString(bytes, 96, 16, fields.date ?? '', 'date');
  putCString(bytes, 112, 32, fields.idfVersion ?? 'v6.0', 'idfVersion');
  const elf = fields.elfSha256 ?? new Uint8Array(32);
  if (!(elf instanceof Uint8Array) || elf.length !== 32) throw new RangeError('elfSha256 must be 32 bytes');
  bytes.set(elf, 144);
  view.setUint16(176, requireUint(fields.minEfuseBlkRevFull ?? 0, 0xffff, 'minEfuseBlkRevFull'), true);
  view.setUint16(178, requireUint(fields.maxEfuseBlkRevFull ?? 0, 0xffff, 'maxEfuseBlkRevFull'), true);
  bytes[180] = requireUint(fields.mmuPageSize ?? 16, 0xff, 'mmuPageSize');
  return bytes;
}

/** A whole image: header, segments, padding, checksum byte and (by default) the appended SHA-256. */
export function encodeEspAppImage(spec: EspImageSpec, createSha256: () => Sha256): Uint8Array {
  if (spec.segments.length > ESP_IMAGE_MAX_SEGMENTS) throw new RangeError(`at most ${ESP_IMAGE_MAX_SEGMENTS} segments`);
  if (spec.appDesc !== undefined && spec.segments.length === 0) throw new RangeError('an app description needs segment 0');
  const datas = spec.segments.map((segment, index) => {
    const raw = index === 0 && spec.appDesc !== undefined ? concat(encodeEspAppDesc(spec.appDesc), segment.data) : segment.data;
    const data = new Uint8Array((raw.length + 3) & ~3);
    data.set(raw);
    return data;
  });
  const body = datas.reduce((n, d) => n + ESP_SEGMENT_HEADER_LENGTH + d.length, ESP_IMAGE_HEADER_LENGTH);
  const withChecksum = (body + 1 + 15) & ~15;
  const hashAppended = spec.hashAppended ?? true;
  const image = new Uint8Array(withChecksum + (hashAppended ? ESP_IMAGE_HASH_LENGTH : 0));
  const view = new DataView(image.buffer);
  image[0] = ESP_IMAGE_MAGIC;
  image[1] = spec.segments.length;
  image[2] = requireUint(spec.spiMode ?? 2, 0xff, 'spiMode');
  image[3] = (requireUint(spec.spiSize ?? 2, 0x0f, 'spiSize') << 4) | requireUint(spec.spiSpeed ?? 0, 0x0f, 'spiSpeed');
  view.setUint32(4, requireUint(spec.entryAddr ?? 0, 0xffffffff, 'entryAddr'), true);
  image[8] = 0xee;
  view.setUint16(12, requireUint(spec.chipId, 0xffff, 'chipId'), true);
  view.setUint16(15, requireUint(spec.minChipRevFull ?? 0, 0xffff, 'minChipRevFull'), true);
  view.setUint16(17, requireUint(spec.maxChipRevFull ?? 0, 0xffff, 'maxChipRevFull'), true);
  image[23] = hashAppended ? 1 : 0;
  let offset = ESP_IMAGE_HEADER_LENGTH;
  let checksum = ESP_CHECKSUM_SEED;
  spec.segments.forEach((segment, index) => {
    view.setUint32(offset, requireUint(segment.loadAddr, 0xffffffff, 'loadAddr'), true);
    view.setUint32(offset + 4, datas[index].length, true);
    image.set(datas[index], offset + ESP_SEGMENT_HEADER_LENGTH);
    for (const byte of datas[index]) checksum ^= byte;
    offset += ESP_SEGMENT_HEADER_LENGTH + datas[index].length;
  });
  image[withChecksum - 1] = checksum;
  if (hashAppended) {
    const hash = createSha256();
    hash.update(image.subarray(0, withChecksum));
    image.set(hash.digest(), withChecksum);
  }
  return image;
}

// ---------------------------------------------------------------- helpers --

function refuse(reason: EspImageRefusal, message: string): EspImageCheck {
  return { ok: false, reason, message };
}

function isMapped(chip: EspChip, address: number): boolean {
  for (const [low, high] of chip.mapped) if (address >= low && address < high) return true;
  return false;
}

/** IS_FIELD_SET: a revision field of 0 or 0xFFFF means "not set". */
function isFieldSet(value: number): boolean {
  return value !== 0 && value !== 0xffff;
}

function revisionText(full: number): string {
  return `${Math.floor(full / 100)}.${full % 100}`;
}

function chipName(chipId: number): string {
  const chip = espChipById(chipId);
  return chip === undefined ? '' : ` (${chip.name})`;
}

function u32(bytes: Uint8Array, at: number): number {
  return (bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24)) >>> 0;
}

function u32Of(slot: FlashPartition, at: number): number {
  const bytes = new Uint8Array(4);
  slot.read(at, bytes);
  return u32(bytes, 0);
}

function hex(value: number, width: number): string {
  return value.toString(16).padStart(width, '0');
}

function isErased(bytes: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (bytes[i] !== 0xff) return false;
  return true;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** Bytes up to the first NUL within `width`, as Latin-1 (ESP-IDF writes ASCII). */
function cString(bytes: Uint8Array, at: number, width: number): string {
  let text = '';
  for (let i = at; i < at + width && bytes[i] !== 0; i++) text += String.fromCharCode(bytes[i]);
  return text;
}

function putCString(bytes: Uint8Array, at: number, width: number, text: string, name: string): void {
  if (typeof text !== 'string' || text.length > width - 1) throw new RangeError(`${name} must be at most ${width - 1} characters`);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code > 0x7e) throw new RangeError(`${name} must be printable ASCII`);
    bytes[at + i] = code;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function requireUint(value: number, max: number, name: string): number {
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number`);
  if (!Number.isInteger(value) || value < 0 || value > max) throw new RangeError(`${name} must be an integer 0..${max}, got ${value}`);
  return value;
}
