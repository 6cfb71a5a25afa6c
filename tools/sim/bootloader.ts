/**
 * The simulated ESP-IDF second-stage bootloader (docs/spec/update-states.md):
 * reads otadata from flash, runs the abort pass and the decision table
 * (firmware/update/decide.ts), performs the otadata writes the real
 * bootloader performs *through the flash* (so a power cut can hit each
 * erase and program), checks the chosen image, and says which slot boots,
 * or throws BrickedError when none can.
 *
 * Engine-neutral (no Node APIs): power-cut cases run it in Node and in XS.
 */
import { PartitionView } from './flash/partition-view.ts';
import type { FlashPartition, FlashStatus } from '../../firmware/hal/flash.ts';
import type { Sha256 } from '../../firmware/hal/crypto.ts';
import type { SlotIndex } from '../../firmware/hal/boot-control.ts';
import { readOtadata, stateOfSlot, writeOtadataCopy, type OtaStateReading } from '../../firmware/update/otadata.ts';
import { planBoot, type BootPlan, type SlotCheck } from '../../firmware/update/decide.ts';
import {
  ESP_APP_DESC_LENGTH,
  ESP_APP_DESC_OFFSET,
  ESP_CHIPS,
  ESP_IMAGE_HASH_LENGTH,
  encodeEspAppImage,
  espChipById,
  imageVersionOf,
  readPartitionDescription,
  verifyEspAppImage,
  type EspAppDesc,
  type EspChip,
  type EspImageRules,
} from '../../firmware/update/esp-app-image.ts';
import { setErrorName } from '../../firmware/base/error-name.ts';

/**
 * The eFuse anti-rollback floor (ESP-IDF `esp_efuse_read_secure_version`).
 * It outlives reboots and power cuts (it is not flash) and only goes up. On
 * the ESP32 it is a 32-bit field counted in set bits, so versions above 32
 * cannot be burnt; the simulator does not model that limit.
 */
export class SimEfuse {
  constructor(private floor = 0) {}

  get secureVersion(): number {
    return this.floor;
  }

  raise(version: number): void {
    if (version > this.floor) this.floor = version;
  }
}

export interface SimBootloaderOptions {
  readonly otadata: FlashPartition;
  readonly slots: readonly [FlashPartition, FlashPartition];
  readonly createSha256: () => Sha256;
  /** Anti-rollback (CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK, holdfast's setting); absent: disabled. */
  readonly efuse?: SimEfuse;
  /** The chip the bootloader runs on (CONFIG_IDF_FIRMWARE_CHIP_ID); default ESP32. */
  readonly chip?: EspChip;
  /** Chip revision (major * 100 + minor) and eFuse block revision the image's ranges are checked against; default 0. */
  readonly chipRevision?: number;
  readonly efuseBlockRevision?: number;
}

/** What the booted slot's esp_app_desc_t says (the facts the update agent reads). */
export interface BootedImage {
  readonly secureVersion: number;
  /** holdfast's image version (esp_app_desc_t.version as a decimal u32), undefined if it is not one. */
  readonly imageVersion: number | undefined;
  readonly desc: EspAppDesc;
}

export interface BootDecision {
  readonly slot: SlotIndex;
  /** The booted image's app description. */
  readonly header: BootedImage;
  /** Decision row id (BOOT_ROWS) and its reason. */
  readonly row: string;
  readonly reason: string;
  /** State of the booted slot's otadata entry after this boot's writes (ESP-IDF `esp_ota_get_state_partition`). */
  readonly state: OtaStateReading | undefined;
  /** What this boot wrote, in order (for logs and tests). */
  readonly writes: readonly string[];
  readonly plan: BootPlan;
}

/** No slot holds a bootable image: the real bootloader resets and tries again, forever. */
export class BrickedError extends Error {
  constructor(readonly plan: BootPlan) {
    super(`no bootable app slot (row ${plan.row.id}: ${plan.row.reason}; slots ${plan.facts.start}/${plan.facts.other}): the device is bricked`);
    setErrorName(this, 'BrickedError');
  }
}

export class SimBootloader {
  readonly otadata: FlashPartition;
  readonly slots: readonly [FlashPartition, FlashPartition];
  private readonly createSha256: () => Sha256;
  readonly efuse: SimEfuse | undefined;
  /** The esp_image_verify rules this bootloader applies (ESP-IDF's; the app description is required with anti-rollback). */
  readonly rules: EspImageRules;

  constructor(options: SimBootloaderOptions) {
    this.otadata = options.otadata;
    this.slots = options.slots;
    this.createSha256 = options.createSha256;
    this.efuse = options.efuse;
    this.rules = {
      chip: options.chip ?? ESP_CHIPS.esp32,
      chipRevision: options.chipRevision ?? 0,
      efuseBlockRevision: options.efuseBlockRevision ?? 0,
      requireAppDesc: options.efuse !== undefined,
      requireHash: false,
    };
  }

  /** A device's named partitions (SimDevice.partition or anything with the same shape). */
  static forDevice(
    device: { partition(name: string): FlashPartition },
    options: { createSha256: () => Sha256; efuse?: SimEfuse; chip?: EspChip; names?: { otadata: string; slots: readonly [string, string] } },
  ): SimBootloader {
    const names = options.names ?? { otadata: 'otadata', slots: ['ota_0', 'ota_1'] as const };
    return new SimBootloader({
      otadata: device.partition(names.otadata),
      slots: [device.partition(names.slots[0]), device.partition(names.slots[1])],
      createSha256: options.createSha256,
      efuse: options.efuse,
      chip: options.chip,
    });
  }

  /** What the next boot would do, without writing anything. */
  plan(): BootPlan {
    return planBoot({ copies: readOtadata(this.otadata), slots: [this.checkSlot(0), this.checkSlot(1)], floor: this.efuse?.secureVersion });
  }

  /**
   * One boot: perform the plan's writes through the flash, then hand over to
   * the chosen slot. `onPlan` sees the plan before the first write (a power
   * cut may end the boot after that).
   */
  boot(onPlan?: (plan: BootPlan) => void): BootDecision {
    const plan = this.plan();
    onPlan?.(plan);
    const writes: string[] = [];
    for (const effect of plan.effects) {
      if (effect.kind === 'write-otadata') {
        writeOtadataCopy(this.otadata, effect.copy, effect.bytes);
        writes.push(`copy ${effect.copy} ${effect.what}`);
      } else {
        this.efuse?.raise(effect.secureVersion);
        writes.push(`floor ${effect.secureVersion}`);
      }
    }
    if (plan.bootSlot === undefined) throw new BrickedError(plan);
    // The plan only boots a slot that verified; its app description is read again for the caller.
    const desc = readPartitionDescription(this.slots[plan.bootSlot]);
    if (desc === undefined) throw new Error(`decision ${plan.row.id} boots slot ${plan.bootSlot}, whose app description does not read`);
    return {
      slot: plan.bootSlot,
      header: { secureVersion: desc.secureVersion, imageVersion: imageVersionOf(desc), desc },
      row: plan.row.id,
      reason: plan.row.reason,
      state: stateOfSlot(readOtadata(this.otadata), plan.bootSlot),
      writes,
      plan,
    };
  }

  /**
   * One slot as the bootloader sees it: the secure version from its
   * esp_app_desc_t (`bootloader_common_get_partition_description`, what
   * `check_anti_rollback` reads), and whether `esp_image_verify` passes.
   */
  checkSlot(slot: SlotIndex): SlotCheck {
    const desc = readPartitionDescription(this.slots[slot]);
    if (desc === undefined) return { secureVersion: undefined, verifies: false };
    return { secureVersion: desc.secureVersion, verifies: verifyEspAppImage(this.slots[slot], this.rules, this.createSha256).ok };
  }
}

// ------------------------------------------------------------ helpers --

/**
 * Write `image` (header + body) at offset 0 of `slot`: erase the blocks it
 * needs, then program it in one write padded with 0xFF to the program unit
 * (strict mode: 16-byte write-once units). An interrupted call leaves a
 * corrupt or blank image, never a valid one (the appended SHA-256, written
 * last, covers every byte before it).
 */
export function writeAppImage(slot: FlashPartition, image: Uint8Array): void {
  const status = slot.status();
  if (image.length > status.size) throw new RangeError(`image of ${image.length} bytes does not fit a ${status.size}-byte slot`);
  const blocks = Math.ceil(image.length / status.blockLength);
  for (let block = 0; block < blocks; block++) slot.eraseBlock(block);
  const padded = new Uint8Array(Math.ceil(image.length / status.writeAlign) * status.writeAlign).fill(0xff);
  padded.set(image);
  slot.write(0, padded);
}

/** A deterministic body of `length` bytes for test images. */
export function testImageBody(length: number, seed: number): Uint8Array {
  const body = new Uint8Array(length);
  let x = (seed * 0x9e3779b1 + 1) >>> 0;
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    body[i] = x >>> 24;
  }
  return body;
}

export interface TestImageMeta {
  readonly imageVersion: number;
  readonly secureVersion: number;
  /** esp_chip_id_t; default ESP32 (0x0000). */
  readonly chipId?: number;
  /** Default true; false builds an image with the checksum byte only (ESP-IDF boots it, holdfast refuses it). */
  readonly hashAppended?: boolean;
}

/**
 * A valid ESP-IDF app image for tests: segment 0 in DROM holding
 * esp_app_desc_t (version = the decimal image version), segment 1 in DRAM
 * holding `bodyLength` deterministic bytes (padded to 4), checksum and
 * appended SHA-256.
 */
export function buildAppImage(meta: TestImageMeta, bodyLength: number, createSha256: () => Sha256): Uint8Array {
  const chipId = meta.chipId ?? ESP_CHIPS.esp32.chipId;
  const chip = espChipById(chipId) ?? ESP_CHIPS.esp32;
  return encodeEspAppImage(
    {
      chipId,
      hashAppended: meta.hashAppended ?? true,
      segments: [
        { loadAddr: chip.drom + ESP_APP_DESC_OFFSET, data: new Uint8Array(0) },
        { loadAddr: chip.dram, data: testImageBody(bodyLength, meta.imageVersion) },
      ],
      appDesc: { secureVersion: meta.secureVersion, version: String(meta.imageVersion), projectName: 'holdfast-test' },
    },
    createSha256,
  );
}

/**
 * A fresh device as the factory leaves it: `image` in ota_0, ota_1 and the
 * otadata erased. With no factory partition ESP-IDF boots ota_0 and, on that
 * first boot, writes otadata copy 0 = {seq 1, VALID} (row R9).
 */
export function provisionDevice(bootloader: Pick<SimBootloader, 'otadata' | 'slots'>, image: Uint8Array): void {
  bootloader.otadata.eraseBlock(0);
  bootloader.otadata.eraseBlock(1);
  for (let block = 0; block < bootloader.slots[1].status().blocks; block++) bootloader.slots[1].eraseBlock(block);
  writeAppImage(bootloader.slots[0], image);
}

export interface OtaLayout {
  readonly otadata: FlashPartition;
  readonly slots: readonly [FlashPartition, FlashPartition];
}

/** Blocks one flash needs for otadata (2 blocks) and two slots of `slotBlocks` each. */
export function otaLayoutBlocks(slotBlocks: number): number {
  return 2 + 2 * slotBlocks;
}

/** Otadata at blocks 0..1, ota_0 and ota_1 after it, all views of one flash (for the power-cut runner). */
export function otaLayout(flash: FlashPartition, slotBlocks: number): OtaLayout {
  return {
    otadata: new PartitionView(flash, 0, 2),
    slots: [new PartitionView(flash, 2, slotBlocks), new PartitionView(flash, 2 + slotBlocks, slotBlocks)],
  };
}

/** Bytes of body (buildAppImage's `bodyLength`) that fit a slot of `slotBytes`. */
export function maxBodyLength(slotBytes: number): number {
  // header, two segment headers, the app description, at most 16 bytes of padding and checksum, the hash.
  return (slotBytes - ESP_APP_DESC_OFFSET - ESP_APP_DESC_LENGTH - 8 - 16 - ESP_IMAGE_HASH_LENGTH) & ~15;
}

export { PartitionView };
