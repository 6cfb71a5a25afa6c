/**
 * ESP-IDF app images (firmware/update/esp-app-image.ts, docs/spec/esp-app-image.md),
 * in Node and XS: a minimal image written out byte by byte (checksum worked
 * by hand, the SHA-256 cross-checked with node:crypto in
 * esp-app-image.property.test.ts), the esp_app_desc_t field offsets, and the
 * simulated bootloader refusing each image ESP-IDF v6.0's esp_image_verify
 * refuses (truncated, corrupt, wrong chip, …) by falling back to the other slot.
 */
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import type { FlashPartition, FlashStatus } from '../../firmware/hal/flash.ts';
import {
  decodeEspAppDesc,
  encodeEspAppImage,
  ESP_APP_DESC_OFFSET,
  ESP_CHIPS,
  holdfastRules,
  imageVersionOf,
  readEspAppDesc,
  verifyEspAppImage,
  type EspChip,
  type EspImageCheck,
  type EspImageSpec,
} from '../../firmware/update/esp-app-image.ts';
import { setBootSlot } from '../../firmware/update/otadata.ts';
import { buildAppImage, provisionDevice, SimBootloader, SimEfuse, testImageBody, writeAppImage } from '../../tools/sim/bootloader.ts';
import { equal, ok } from '../support/check.ts';
import type { CaseEnv, CaseSuite } from '../support/cases.ts';

const crypto = createNobleCrypto();
const createSha256 = () => crypto.createSha256();
const ESP32 = ESP_CHIPS.esp32;
const SLOT_BLOCKS = 4;

function hex(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += (b < 16 ? '0' : '') + b.toString(16);
  return out;
}

function fromHex(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, '');
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function slotWith(env: CaseEnv, image: Uint8Array, blocks = SLOT_BLOCKS): FlashPartition {
  const slot = env.createFlash({ blocks });
  writeAppImage(slot, image);
  return slot;
}

function refusal(check: EspImageCheck): string {
  return check.ok ? 'ok' : check.reason;
}

/**
 * The minimal image, by hand (ESP32, one DRAM segment of 4 bytes, hash appended):
 * header 24 bytes, segment header 8, data 4 → 36 bytes; the checksum byte ends
 * the 16-byte block, so 11 zero bytes of padding then the checksum at 47:
 * 0xEF ^ 0x01 ^ 0x02 ^ 0x03 ^ 0x04 = 0xEF ^ 0x04 = 0xEB; then SHA-256 of bytes 0..47.
 */
export const MINIMAL_SPEC: EspImageSpec = { chipId: 0, segments: [{ loadAddr: 0x3ffb0000, data: Uint8Array.of(1, 2, 3, 4) }] };
export const MINIMAL_HEX =
  'e9 01 02 20' + // magic, 1 segment, SPI mode DIO (2), size 4 MB (2 << 4) | speed 40 MHz (0)
  ' 00000000' + // entry_addr
  ' ee 000000' + // wp_pin 0xEE (disabled), spi_pin_drv
  ' 0000 00 0000 0000' + // chip_id ESP32, min_chip_rev, min_chip_rev_full, max_chip_rev_full (unset)
  ' 00000000 01' + // reserved, hash_appended
  ' 0000fb3f 04000000' + // segment 0: load_addr 0x3FFB0000, data_len 4
  ' 01020304' + // data
  ' 0000000000000000000000 eb' + // padding to 47, checksum
  ' 8338036323ea0fe77fa664d2722cf9299324ec7dda201b252a9d0abbcec48c06'; // SHA-256 of bytes 0..47

/** Counts reads and remembers the largest: the validator must stream. */
class ReadCounter implements FlashPartition {
  largest = 0;
  reads = 0;
  constructor(private readonly inner: FlashPartition) {}
  status(): FlashStatus {
    return this.inner.status();
  }
  read(offset: number, into: Uint8Array): void {
    this.reads++;
    this.largest = Math.max(this.largest, into.length);
    this.inner.read(offset, into);
  }
  write(offset: number, data: Uint8Array): void {
    this.inner.write(offset, data);
  }
  eraseBlock(block: number): void {
    this.inner.eraseBlock(block);
  }
}

interface Damaged {
  name: string;
  expected: string;
  image: () => Uint8Array;
  /** What the bootloader runs on; default: ESP32 revision 0. */
  chip?: EspChip;
  chipRevision?: number;
}

const GOOD = (imageVersion: number, chipId = 0): Uint8Array => buildAppImage({ imageVersion, secureVersion: 1, chipId }, 3000, createSha256);
const flip = (image: Uint8Array, at: number): Uint8Array => {
  const copy = image.slice();
  copy[at] ^= 0x01;
  return copy;
};
const DESC = { secureVersion: 1, version: '2' };

/** Images ESP-IDF's esp_image_verify (with anti-rollback) refuses, and why. */
const DAMAGED: readonly Damaged[] = [
  { name: 'written only half way (the rest of the slot erased)', expected: 'bad-checksum', image: () => GOOD(2).subarray(0, 1600) },
  { name: 'a segment running past the end of the slot', expected: 'truncated', image: () => {
    const image = GOOD(2);
    new DataView(image.buffer).setUint32(ESP_APP_DESC_OFFSET + 256 + 4, 0x10000, true); // segment 1 data_len: 64 KiB in a 16 KiB slot
    return image;
  } },
  { name: 'last byte of the appended hash missing', expected: 'bad-hash', image: () => {
    const image = GOOD(2);
    ok(image[image.length - 1] !== 0xff, 'the test needs a last hash byte that an erased cell cannot imitate');
    return image.subarray(0, image.length - 1);
  } },
  { name: 'one bit flipped in segment data', expected: 'bad-checksum', image: () => flip(GOOD(2), 1000) },
  { name: 'checksum byte flipped', expected: 'bad-checksum', image: () => {
    const image = GOOD(2);
    return flip(image, image.length - 33);
  } },
  { name: 'appended hash flipped', expected: 'bad-hash', image: () => flip(GOOD(2), GOOD(2).length - 1) },
  { name: 'padding byte before the checksum flipped (hashed, not checksummed)', expected: 'bad-hash', image: () => {
    const image = GOOD(2);
    const end = image.length - 32; // padding then checksum end here
    ok(image[end - 2] === 0, 'a padding byte (the body length leaves padding)');
    return flip(image, end - 2);
  } },
  { name: 'image for the ESP32-S3 on an ESP32', expected: 'wrong-chip', image: () => GOOD(2, ESP_CHIPS.esp32s3.chipId) },
  { name: 'image for the ESP32 on an ESP32-C3', expected: 'wrong-chip', image: () => GOOD(2), chip: ESP_CHIPS.esp32c3 },
  { name: '17 segments', expected: 'too-many-segments', image: () => {
    const image = GOOD(2);
    image[1] = 17;
    return image;
  } },
  { name: 'segment length not a multiple of 4', expected: 'bad-segment-length', image: () => {
    const image = GOOD(2);
    image[ESP_APP_DESC_OFFSET - 4] += 2; // segment 0 data_len
    return image;
  } },
  { name: 'DROM segment whose address and flash offset differ modulo 64 KiB', expected: 'segment-misaligned', image: () =>
    encodeEspAppImage({ chipId: 0, segments: [{ loadAddr: 0x3f400000, data: new Uint8Array(64) }], appDesc: DESC }, createSha256) },
  { name: 'minimum chip revision v3.0 on a v1.0 chip', expected: 'chip-revision', chipRevision: 100, image: () =>
    encodeEspAppImage({ chipId: 0, minChipRevFull: 300, segments: [{ loadAddr: 0x3f400020, data: new Uint8Array(64) }], appDesc: DESC }, createSha256) },
  { name: 'maximum chip revision v0.99 on a v1.0 chip', expected: 'chip-revision', chipRevision: 100, image: () =>
    encodeEspAppImage({ chipId: 0, maxChipRevFull: 99, segments: [{ loadAddr: 0x3f400020, data: new Uint8Array(64) }], appDesc: DESC }, createSha256) },
  { name: 'minimum eFuse block revision v0.2 on a C3 at v0.0', expected: 'efuse-block-revision', chip: ESP_CHIPS.esp32c3, image: () =>
    encodeEspAppImage({ chipId: 5, segments: [{ loadAddr: 0x3c000020, data: new Uint8Array(64) }], appDesc: { ...DESC, minEfuseBlkRevFull: 2 } }, createSha256) },
  { name: 'segment 0 without esp_app_desc_t (anti-rollback needs it)', expected: 'no-app-desc', image: () =>
    encodeEspAppImage({ chipId: 0, segments: [{ loadAddr: 0x3f400020, data: testImageBody(512, 3) }] }, createSha256) },
  { name: 'blank slot', expected: 'blank', image: () => new Uint8Array(0) },
];

export const suite: CaseSuite = {
  name: 'esp-app-image',
  cases: [
    {
      name: 'a minimal image, byte by byte: header, segment, padding, checksum 0xEB, appended SHA-256',
      run(env) {
        const image = encodeEspAppImage(MINIMAL_SPEC, createSha256);
        equal(hex(image), MINIMAL_HEX.replace(/\s+/g, ''), 'encoded bytes');
        const slot = slotWith(env, fromHex(MINIMAL_HEX), 1);
        const check = verifyEspAppImage(slot, { chip: ESP32, requireAppDesc: false, requireHash: true }, createSha256);
        ok(check.ok, `the minimal image verifies: ${check.ok ? '' : check.message}`);
        equal(check.image.checksum, 0xeb, 'checksum');
        equal(check.image.length, 80, 'image_len: 48 + 32');
        equal(hex(check.image.sha256 ?? new Uint8Array(0)), MINIMAL_HEX.replace(/\s+/g, '').slice(96), 'appended hash');
        equal(JSON.stringify(check.image.segments), JSON.stringify([{ loadAddr: 0x3ffb0000, dataOffset: 32, length: 4 }]), 'segments');
        equal(check.image.header.hashAppended, 1, 'hash_appended');
        equal(refusal(verifyEspAppImage(slot, holdfastRules(ESP32), createSha256)), 'no-app-desc', 'holdfast also needs esp_app_desc_t');
        // Without the hash, the checksum alone: ESP-IDF accepts it, holdfast does not.
        const bare = encodeEspAppImage({ ...MINIMAL_SPEC, hashAppended: false }, createSha256);
        equal(hex(bare), MINIMAL_HEX.replace(/\s+/g, '').slice(0, 96).replace(/^(.{46})01/, '$100'), 'hash_appended 0, no hash');
        const bareSlot = slotWith(env, bare, 1);
        equal(refusal(verifyEspAppImage(bareSlot, { chip: ESP32, requireAppDesc: false, requireHash: false }, createSha256)), 'ok', 'ESP-IDF rules: checksum only');
        equal(refusal(verifyEspAppImage(bareSlot, { chip: ESP32, requireAppDesc: false, requireHash: true }, createSha256)), 'no-hash', 'holdfast rules');
      },
    },
    {
      name: 'esp_app_desc_t sits at image offset 32 with its fields at their offsets',
      run() {
        const elf = new Uint8Array(32).map((_, i) => i + 1);
        const image = encodeEspAppImage(
          {
            chipId: 9,
            segments: [{ loadAddr: 0x3c000020, data: new Uint8Array(0) }],
            appDesc: { secureVersion: 0x01020304, version: '4294967295', projectName: 'plant-monitor', time: '12:00:00', date: 'Dec  6 2026', idfVersion: 'v6.0', elfSha256: elf, minEfuseBlkRevFull: 1, maxEfuseBlkRevFull: 99 },
          },
          createSha256,
        );
        equal(hex(image.subarray(12, 14)), '0900', 'chip_id ESP32-S3, little-endian at 12');
        equal(hex(image.subarray(24, 32)), '2000003c' + '00010000', 'segment 0 header: DROM 0x3C000020, 256 bytes');
        const desc = image.subarray(ESP_APP_DESC_OFFSET, ESP_APP_DESC_OFFSET + 256);
        equal(hex(desc.subarray(0, 8)), '3254cdab' + '04030201', 'magic 0xABCD5432, secure_version');
        equal(hex(desc.subarray(8, 16)), '0000000000000000', 'reserv1');
        equal(hex(desc.subarray(16, 27)), hex(new TextEncoder().encode('4294967295')) + '00', 'version at 16, NUL-terminated');
        equal(hex(desc.subarray(48, 61)), hex(new TextEncoder().encode('plant-monitor')), 'project_name at 48');
        equal(hex(desc.subarray(112, 116)), hex(new TextEncoder().encode('v6.0')), 'idf_ver at 112');
        equal(hex(desc.subarray(144, 176)), hex(elf), 'app_elf_sha256 at 144');
        equal(hex(desc.subarray(176, 181)), '0100' + '6300' + '10', 'min/max eFuse block revision, mmu_page_size log2 = 16');
        const decoded = decodeEspAppDesc(desc);
        ok(decoded !== undefined, 'decodes');
        equal(JSON.stringify([decoded.secureVersion, decoded.version, decoded.projectName, decoded.time, decoded.date, decoded.idfVersion]), JSON.stringify([0x01020304, '4294967295', 'plant-monitor', '12:00:00', 'Dec  6 2026', 'v6.0']), 'fields');
        equal(imageVersionOf(decoded), 0xffffffff, 'the largest holdfast version');
      },
    },
    {
      name: 'holdfast image versions: the decimal digits of a u32 and nothing else',
      run() {
        const versionOf = (version: string) => {
          const desc = decodeEspAppDesc(encodeEspAppImage({ chipId: 0, segments: [{ loadAddr: 0x3f400020, data: new Uint8Array(0) }], appDesc: { secureVersion: 0, version } }, createSha256).subarray(32, 288));
          return desc === undefined ? 'no desc' : imageVersionOf(desc);
        };
        equal(versionOf('0'), 0, '"0"');
        equal(versionOf('7'), 7, '"7"');
        for (const bad of ['', 'v7', '07', '7.0', '1.2.3', '4294967296', ' 7', '-1', '1e3']) equal(versionOf(bad), undefined, JSON.stringify(bad));
      },
    },
    {
      name: 'reads are bounded: a 40 KiB image in a 64 KiB slot is verified in reads of at most 1 KiB',
      run(env) {
        const image = buildAppImage({ imageVersion: 3, secureVersion: 1 }, 40 * 1024, createSha256);
        const slot = new ReadCounter(slotWith(env, image, 16));
        const check = verifyEspAppImage(slot, holdfastRules(ESP32), createSha256);
        ok(check.ok, 'verifies');
        ok(slot.largest <= 1024, `largest read ${slot.largest} bytes`);
        ok(readEspAppDesc(slot).kind === 'desc', 'app description reads');
        return { reads: slot.reads, largestRead: slot.largest };
      },
    },
    ...DAMAGED.map((damaged) => ({
      name: `the simulated bootloader refuses ${damaged.name} (${damaged.expected}) and boots the other slot`,
      run(env: CaseEnv) {
        const chip = damaged.chip ?? ESP32;
        const otadata = env.createFlash({ blocks: 2 });
        const slots = [env.createFlash({ blocks: SLOT_BLOCKS }), env.createFlash({ blocks: SLOT_BLOCKS })] as const;
        const bootloader = new SimBootloader({ otadata, slots, createSha256, efuse: new SimEfuse(1), chip, chipRevision: damaged.chipRevision });
        provisionDevice(bootloader, GOOD(1, chip.chipId));
        equal(bootloader.boot().slot, 0, 'the factory image boots');
        const image = damaged.image();
        for (let block = 0; block < SLOT_BLOCKS; block++) slots[1].eraseBlock(block);
        if (image.length > 0) writeAppImage(slots[1], image);
        equal(refusal(verifyEspAppImage(slots[1], bootloader.rules, createSha256)), damaged.expected, 'esp_image_verify');
        equal(bootloader.checkSlot(1).verifies, false, 'checkSlot');
        setBootSlot(otadata, 1);
        const decision = bootloader.boot();
        equal(decision.slot, 0, `falls back to ota_0 (row ${decision.row})`);
      },
    })),
    {
      name: 'the simulated bootloader boots what ESP-IDF boots: no appended hash, a valid checksum (holdfast itself would refuse it)',
      run(env) {
        const otadata = env.createFlash({ blocks: 2 });
        const slots = [env.createFlash({ blocks: SLOT_BLOCKS }), env.createFlash({ blocks: SLOT_BLOCKS })] as const;
        const bootloader = new SimBootloader({ otadata, slots, createSha256, efuse: new SimEfuse(1) });
        provisionDevice(bootloader, GOOD(1));
        bootloader.boot();
        const bare = encodeEspAppImage({ chipId: 0, hashAppended: false, segments: [{ loadAddr: 0x3f400020, data: new Uint8Array(64) }], appDesc: DESC }, createSha256);
        writeAppImage(slots[1], bare);
        setBootSlot(otadata, 1);
        const decision = bootloader.boot();
        equal([decision.slot, decision.header.imageVersion].join(), '1,2', 'boots the checksum-only image');
        equal(refusal(verifyEspAppImage(slots[1], holdfastRules(ESP32), createSha256)), 'no-hash', 'holdfast refuses it');
      },
    },
  ],
};
