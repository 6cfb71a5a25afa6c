/**
 * ESP-IDF's boot-control record, otadata (docs/spec/otadata.md), byte for
 * byte and rule for rule, so the Moddable target can hand the real
 * bootloader the same bytes the simulator reads. Written from ESP-IDF v6.0
 * (commit 662a3be3, the version the Moddable SDK builds with):
 * `esp_flash_partitions.h`, `bootloader_common_loader.c`,
 * `bootloader_utility.c`, `esp_ota_ops.c`; the spec cites each rule.
 *
 * Layout: an otadata partition of two 4 KiB sectors; copy `i` is one 32-byte
 * entry at offset `i * 0x1000` (the rest of the sector stays erased). Any
 * other geometry is refused (`otadataSectorLength`).
 *
 *   0         4                      24          28          32
 *   +---------+----------------------+-----------+-----------+
 *   | ota_seq |  seq_label (20)      | ota_state |   crc     |
 *   +---------+----------------------+-----------+-----------+
 *
 * Little-endian u32 fields. `crc` covers `ota_seq` only (4 bytes) and is
 * ESP-IDF's `esp_rom_crc32_le(UINT32_MAX, &ota_seq, 4)`: the reflected
 * CRC-32 polynomial with register init 0 and final inversion, which is NOT
 * zlib's crc32 of those bytes (that would be `esp_rom_crc32_le(0, ...)`).
 */
import type { FlashPartition } from '../hal/flash.ts';
import type { OtaState, SlotIndex } from '../hal/boot-control.ts';
import { crc32Final, crc32Update } from '../base/crc32.ts';
import { setErrorName } from '../base/error-name.ts';

/** Bytes of one entry (`sizeof(esp_ota_select_entry_t)`). */
export const OTADATA_ENTRY_LENGTH = 32;
export const OTADATA_SEQ_LABEL_LENGTH = 20;
/** Sectors (copies) in the otadata partition. */
export const OTADATA_COPIES = 2;
/**
 * Bytes between copy 0 and copy 1, and the erase unit of one copy: ESP-IDF's
 * `SPI_FLASH_SEC_SIZE` (the bootloader's `read_otadata` reads copy 1 at
 * partition offset + 0x1000 on every chip).
 */
export const OTADATA_SECTOR_LENGTH = 0x1000;
/** `ota_seq` of an erased entry: never a sequence number (ESP-IDF `UINT32_MAX`). */
export const OTA_SEQ_BLANK = 0xffffffff;
/** OTA app slots holdfast uses (ota_0, ota_1; no factory, no test app). */
export const OTA_SLOT_COUNT = 2;

const SEQ_OFFSET = 0;
const LABEL_OFFSET = 4;
const STATE_OFFSET = 24;
const CRC_OFFSET = 28;

/**
 * A state that can be stored in an entry (`esp_ota_img_states_t`): the HAL's
 * one type for it, re-exported. Table wildcards live in decide.ts and are a
 * different type, so they can never be encoded.
 */
export type { OtaState };

/** `esp_ota_img_states_t` values (esp_flash_partitions.h). */
export const OTA_STATE_CODES: Readonly<Record<OtaState, number>> = Object.freeze({
  new: 0x0,
  'pending-verify': 0x1,
  valid: 0x2,
  invalid: 0x3,
  aborted: 0x4,
  undefined: 0xffffffff,
});

/** A state as read: one of the six, or a u32 that is none of them. */
export type OtaStateReading = OtaState | 'unrecognized';

export type CopyIndex = 0 | 1;

/** What the app or bootloader writes. `seqLabel` defaults to 20 bytes of 0xFF (ESP-IDF never sets it). */
export interface OtaEntry {
  readonly seq: number;
  readonly state: OtaState;
  readonly seqLabel?: Uint8Array;
}

/** One copy as read from flash: every field raw, plus ESP-IDF's derived checks. */
export interface OtaEntryReading {
  /** The 32 bytes as read (a copy). */
  readonly bytes: Uint8Array;
  readonly seq: number;
  readonly stateCode: number;
  readonly state: OtaStateReading;
  readonly crc: number;
  /** `crc == bootloader_common_ota_select_crc(entry)`. */
  readonly crcOk: boolean;
}

export type OtadataErrorCode =
  /** The otadata partition is not two 4096-byte erase blocks with 32-byte entries in whole program units. */
  | 'bad-geometry'
  /** No valid copy: the running app is not an OTA app in ESP-IDF's terms ("Running firmware is factory"). */
  | 'no-active-entry'
  /** Mark-invalid refused: no other valid copy whose slot holds a bootable image (ESP_ERR_OTA_ROLLBACK_FAILED). */
  | 'rollback-impossible';

export class OtadataError extends Error {
  constructor(readonly code: OtadataErrorCode, message: string) {
    super(message);
    setErrorName(this, 'OtadataError');
  }
}

// ---------------------------------------------------------------- CRC --

/**
 * `bootloader_common_ota_select_crc`: `esp_rom_crc32_le(UINT32_MAX, &seq, 4)`.
 * The ROM routine inverts its argument on entry and its result on exit, so
 * the register starts at ~UINT32_MAX = 0 (zlib's starts at 0xFFFFFFFF).
 * For seq 1 this is 0x4743989A; zlib's crc32 of 01 00 00 00 is 0x99F8B879.
 */
export function otaSeqCrc(seq: number): number {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, requireU32(seq, 'seq'), true);
  return crc32Final(crc32Update(0, bytes));
}

// ------------------------------------------------------- encode/decode --

export function otaStateCode(state: OtaState): number {
  const code = OTA_STATE_CODES[state];
  if (code === undefined) throw new TypeError(`not an OTA state: ${String(state)}`);
  return code;
}

export function otaStateFromCode(code: number): OtaStateReading {
  switch (code) {
    case 0x0:
      return 'new';
    case 0x1:
      return 'pending-verify';
    case 0x2:
      return 'valid';
    case 0x3:
      return 'invalid';
    case 0x4:
      return 'aborted';
    case 0xffffffff:
      return 'undefined';
    default:
      return 'unrecognized';
  }
}

/** The 32 bytes of an entry, CRC computed from `seq`. */
export function encodeOtaEntry(entry: OtaEntry): Uint8Array {
  const label = entry.seqLabel ?? new Uint8Array(OTADATA_SEQ_LABEL_LENGTH).fill(0xff);
  if (!(label instanceof Uint8Array) || label.length !== OTADATA_SEQ_LABEL_LENGTH) {
    throw new RangeError(`seqLabel must be ${OTADATA_SEQ_LABEL_LENGTH} bytes`);
  }
  return encodeRawEntry(requireU32(entry.seq, 'seq'), label, otaStateCode(entry.state), otaSeqCrc(entry.seq));
}

/** Any field values, CRC included as given: for tests and for rewrites that keep bytes as read. */
export function encodeRawEntry(seq: number, seqLabel: Uint8Array, stateCode: number, crc: number): Uint8Array {
  const bytes = new Uint8Array(OTADATA_ENTRY_LENGTH);
  const view = new DataView(bytes.buffer);
  view.setUint32(SEQ_OFFSET, requireU32(seq, 'seq'), true);
  bytes.set(seqLabel.subarray(0, OTADATA_SEQ_LABEL_LENGTH), LABEL_OFFSET);
  view.setUint32(STATE_OFFSET, requireU32(stateCode, 'stateCode'), true);
  view.setUint32(CRC_OFFSET, requireU32(crc, 'crc'), true);
  return bytes;
}

/** Decode 32 bytes. Never throws for content: every bit pattern is some reading. */
export function decodeOtaEntry(bytes: Uint8Array): OtaEntryReading {
  if (!(bytes instanceof Uint8Array) || bytes.length < OTADATA_ENTRY_LENGTH) {
    throw new RangeError(`an otadata entry is ${OTADATA_ENTRY_LENGTH} bytes`);
  }
  const copy = bytes.slice(0, OTADATA_ENTRY_LENGTH);
  const view = new DataView(copy.buffer);
  const seq = view.getUint32(SEQ_OFFSET, true);
  const stateCode = view.getUint32(STATE_OFFSET, true);
  const crc = view.getUint32(CRC_OFFSET, true);
  return { bytes: copy, seq, stateCode, state: otaStateFromCode(stateCode), crc, crcOk: crc === otaSeqCrc(seq) };
}

export function seqLabelOf(reading: OtaEntryReading): Uint8Array {
  return reading.bytes.slice(LABEL_OFFSET, LABEL_OFFSET + OTADATA_SEQ_LABEL_LENGTH);
}

/**
 * The bytes as read with only `ota_state` replaced, CRC untouched: what the
 * bootloader's `write_otadata` writes when it marks a copy ABORTED or
 * PENDING_VERIFY (it never recomputes the CRC).
 */
export function withStateCode(reading: OtaEntryReading, stateCode: number): Uint8Array {
  const bytes = reading.bytes.slice();
  new DataView(bytes.buffer).setUint32(STATE_OFFSET, requireU32(stateCode, 'stateCode'), true);
  return bytes;
}

/**
 * The bytes as read with `ota_seq`, `ota_state` and the CRC replaced, the
 * label kept: what the app side's `rewrite_ota_seq` writes.
 */
export function withSeqAndState(reading: OtaEntryReading, seq: number, state: OtaState): Uint8Array {
  return encodeRawEntry(seq, seqLabelOf(reading), otaStateCode(state), otaSeqCrc(seq));
}

// ----------------------------------------------------- validity rules --

/** `bootloader_common_ota_select_invalid`: blank seq, INVALID or ABORTED. The CRC is not looked at. */
export function isEntryInvalid(reading: OtaEntryReading): boolean {
  return reading.seq === OTA_SEQ_BLANK || reading.stateCode === OTA_STATE_CODES.invalid || reading.stateCode === OTA_STATE_CODES.aborted;
}

/** `bootloader_common_ota_select_valid`: not invalid and the CRC matches. */
export function isEntryValid(reading: OtaEntryReading): boolean {
  return !isEntryInvalid(reading) && reading.crcOk;
}

/**
 * The bootloader's "initial contents" test for one copy: blank seq or a CRC
 * mismatch (bootloader_utility.c). Both copies initial means the otadata
 * was never written (or reads as noise, as an erased encrypted sector does).
 */
export function isEntryInitial(reading: OtaEntryReading): boolean {
  return reading.seq === OTA_SEQ_BLANK || !reading.crcOk;
}

/**
 * `bootloader_common_select_otadata`: among the eligible copies, the one
 * with the larger `ota_seq` (`max`) or smaller (`!max`); a tie goes to copy
 * 0; with one eligible copy, that one; with none, undefined. Plain unsigned
 * comparison: there is no wrap-around arithmetic.
 */
export function selectCopy(readings: readonly [OtaEntryReading, OtaEntryReading], eligible: readonly [boolean, boolean], max = true): CopyIndex | undefined {
  if (eligible[0] && eligible[1]) {
    const pick = max ? Math.max(readings[0].seq, readings[1].seq) : Math.min(readings[0].seq, readings[1].seq);
    return pick === readings[0].seq ? 0 : 1;
  }
  if (eligible[0]) return 0;
  if (eligible[1]) return 1;
  return undefined;
}

/** `bootloader_common_get_active_otadata`: the valid copy with the larger seq. */
export function activeCopy(readings: readonly [OtaEntryReading, OtaEntryReading]): CopyIndex | undefined {
  return selectCopy(readings, [isEntryValid(readings[0]), isEntryValid(readings[1])], true);
}

/**
 * Slot a sequence number boots: `(ota_seq - 1) % app_count` in u32
 * arithmetic, so seq 0 wraps to 0xFFFFFFFF first (slot 1 of 2).
 */
export function slotForSeq(seq: number, slotCount = OTA_SLOT_COUNT): number {
  requireSlotCount(slotCount);
  return ((requireU32(seq, 'seq') - 1) >>> 0) % slotCount;
}

/**
 * `compute_ota_seq_for_target_slot` (esp_ota_ops.c, v6.0): the smallest
 * `base + i * n >= currentSeq` with `base = (slot + 1) % n`. At the top of
 * the u32 range the answer can be 0xFFFFFFFF, which is the blank seq: the
 * entry then reads as invalid, exactly as ESP-IDF would write it. Where
 * ESP-IDF's u32 loop would overflow (only possible with more than two
 * slots) this throws RangeError instead.
 */
export function seqForSlot(currentSeq: number, slot: number, slotCount = OTA_SLOT_COUNT): number {
  requireSlotCount(slotCount);
  requireSlot(slot, slotCount);
  const base = (slot + 1) % slotCount;
  const current = requireU32(currentSeq, 'currentSeq');
  const steps = current > base ? Math.ceil((current - base) / slotCount) : 0;
  const seq = base + steps * slotCount;
  if (seq > 0xffffffff) throw new RangeError(`no u32 sequence number above ${current} selects slot ${slot}`);
  return seq;
}

/**
 * `esp_ota_get_state_partition`: the state of the first copy (0, then 1)
 * whose seq maps to `slot` and whose CRC matches; undefined when none does.
 */
export function stateOfSlot(readings: readonly [OtaEntryReading, OtaEntryReading], slot: number, slotCount = OTA_SLOT_COUNT): OtaStateReading | undefined {
  for (const reading of readings) {
    if (slotForSeq(reading.seq, slotCount) === slot && reading.crcOk) return reading.state;
  }
  return undefined;
}

// ------------------------------------------------------- flash access --

/**
 * The otadata partition's geometry as the real bootloader reads it: copy 0
 * at offset 0 and copy 1 at offset 0x1000 (`SPI_FLASH_SEC_SIZE`), whatever
 * the partition reports; each copy is replaced by erasing its own 4 KiB
 * sector (`bootloader_flash_erase_sector`, `esp_partition_erase_range` over
 * one sector). So the partition must be exactly two 4096-byte erase blocks
 * (ESP-IDF's partition tool insists on an 0x2000-byte otadata partition): a
 * smaller block would need several erases per copy where ESP-IDF does one,
 * a larger one would erase both copies at once, and either would put copy 1
 * where the bootloader does not look. 32-byte entries must be whole program
 * units (16-byte units with flash encryption) and erased flash reads 0xFF.
 * Returns the offset of copy 1 (0x1000); throws `bad-geometry` otherwise.
 */
export function otadataSectorLength(flash: FlashPartition): number {
  const status = flash.status();
  if (
    status.blockLength !== OTADATA_SECTOR_LENGTH ||
    status.blocks !== OTADATA_COPIES ||
    status.size !== OTADATA_COPIES * OTADATA_SECTOR_LENGTH ||
    OTADATA_ENTRY_LENGTH % status.writeAlign !== 0 ||
    status.eraseValue !== 0xff
  ) {
    throw new OtadataError(
      'bad-geometry',
      `otadata must be two 4096-byte erase blocks (copy 1 at +0x1000, where the bootloader reads it), writeAlign dividing 32 and eraseValue 0xFF (got ${status.blocks} x ${status.blockLength}, writeAlign ${status.writeAlign}, eraseValue 0x${status.eraseValue.toString(16)})`,
    );
  }
  return OTADATA_SECTOR_LENGTH;
}

/** Both copies (`read_otadata`): 32 bytes at offset 0 and at offset 0x1000. */
export function readOtadata(flash: FlashPartition): [OtaEntryReading, OtaEntryReading] {
  const sector = otadataSectorLength(flash);
  const buffer = new Uint8Array(OTADATA_ENTRY_LENGTH);
  flash.read(0, buffer);
  const first = decodeOtaEntry(buffer);
  flash.read(sector, buffer);
  return [first, decodeOtaEntry(buffer)];
}

/**
 * Replace copy `copy` the way both ESP-IDF writers do (`write_otadata` in
 * the bootloader, `rewrite_ota_seq` in the app): erase its sector, then
 * program the 32 bytes in one write (two 16-byte units with flash
 * encryption). Two flash operations; a cut between them leaves the copy
 * erased.
 */
export function writeOtadataCopy(flash: FlashPartition, copy: CopyIndex, entryBytes: Uint8Array): void {
  const sector = otadataSectorLength(flash);
  if (copy !== 0 && copy !== 1) throw new RangeError(`copy must be 0 or 1, got ${String(copy)}`);
  if (!(entryBytes instanceof Uint8Array) || entryBytes.length !== OTADATA_ENTRY_LENGTH) throw new RangeError(`an otadata entry is ${OTADATA_ENTRY_LENGTH} bytes`);
  flash.eraseBlock(copy);
  flash.write(copy * sector, entryBytes);
}

// -------------------------------------------------- app-side operations --

export interface OtadataWrite {
  readonly copy: CopyIndex;
  readonly seq: number;
  readonly state: OtaState;
}

/**
 * `esp_ota_set_boot_partition` after its image checks, i.e.
 * `esp_rewrite_ota_data` (v6.0) with CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE:
 * - an active copy that already maps to `slot`: rewrite that copy in place,
 *   same seq, state NEW (v6.0; v5.x wrote the same seq into the other copy);
 * - an active copy mapping elsewhere: write the other copy with
 *   `seqForSlot(active seq, slot)`, state NEW;
 * - no active copy: write copy 0 with seq `slot + 1`, state NEW.
 * The label is kept as read. The caller must already have verified the
 * image and its security version (ESP-IDF does that first and erases a
 * slot whose secure_version is below the eFuse floor).
 */
export function setBootSlot(flash: FlashPartition, slot: SlotIndex, slotCount = OTA_SLOT_COUNT): OtadataWrite {
  const readings = readOtadata(flash);
  const write = planSetBootSlot(readings, slot, slotCount);
  writeOtadataCopy(flash, write.copy, withSeqAndState(readings[write.copy], write.seq, write.state));
  return write;
}

/** The copy and seq `setBootSlot` writes for these readings (pure). */
export function planSetBootSlot(readings: readonly [OtaEntryReading, OtaEntryReading], slot: number, slotCount = OTA_SLOT_COUNT): OtadataWrite {
  requireSlot(slot, slotCount);
  const active = activeCopy(readings);
  if (active === undefined) return { copy: 0, seq: slot + 1, state: 'new' };
  if (slotForSeq(readings[active].seq, slotCount) === slot) return { copy: active, seq: readings[active].seq, state: 'new' };
  return { copy: active === 0 ? 1 : 0, seq: seqForSlot(readings[active].seq, slot, slotCount), state: 'new' };
}

/**
 * `esp_ota_mark_app_valid_cancel_rollback`: the active copy becomes VALID,
 * rewritten in place (erase its sector, then program). No write when it
 * already is VALID. Note: ESP-IDF marks the *active* copy, which is not the
 * running slot after a fallback; the caller checks that first. With
 * anti-rollback ESP-IDF then raises the eFuse floor to the running app's
 * secure_version (not otadata's business).
 */
export function markValid(flash: FlashPartition): OtadataWrite | undefined {
  const readings = readOtadata(flash);
  const active = requireActive(readings);
  const reading = readings[active];
  if (reading.stateCode === OTA_STATE_CODES.valid) return undefined;
  writeOtadataCopy(flash, active, withSeqAndState(reading, reading.seq, 'valid'));
  return { copy: active, seq: reading.seq, state: 'valid' };
}

/**
 * `esp_ota_mark_app_invalid_rollback` (the reboot is the caller's): refuse
 * unless `esp_ota_check_rollback_is_possible` holds (the other copy is valid
 * and `canBootSlot` accepts its slot: image verifies and, with
 * anti-rollback, its secure_version is not below the floor); then the
 * active copy becomes INVALID, rewritten in place.
 */
export function markInvalid(flash: FlashPartition, canBootSlot: (slot: number) => boolean, slotCount = OTA_SLOT_COUNT): OtadataWrite {
  const readings = readOtadata(flash);
  const active = requireActive(readings);
  const other = active === 0 ? 1 : 0;
  if (!isEntryValid(readings[other]) || !canBootSlot(slotForSeq(readings[other].seq, slotCount))) {
    throw new OtadataError('rollback-impossible', 'no other valid otadata copy with a bootable image: rollback is not possible');
  }
  const reading = readings[active];
  writeOtadataCopy(flash, active, withSeqAndState(reading, reading.seq, 'invalid'));
  return { copy: active, seq: reading.seq, state: 'invalid' };
}

// ------------------------------------------------------------ checks --

function requireActive(readings: readonly [OtaEntryReading, OtaEntryReading]): CopyIndex {
  const active = activeCopy(readings);
  if (active === undefined) throw new OtadataError('no-active-entry', 'no valid otadata copy: the running firmware is not an OTA app');
  return active;
}

function requireU32(value: number, name: string): number {
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number`);
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RangeError(`${name} must be a u32, got ${value}`);
  return value;
}

function requireSlotCount(slotCount: number): void {
  if (!Number.isInteger(slotCount) || slotCount < 1 || slotCount > 16) throw new RangeError(`slotCount must be 1..16, got ${slotCount}`);
}

function requireSlot(slot: number, slotCount: number): void {
  if (!Number.isInteger(slot) || slot < 0 || slot >= slotCount) throw new RangeError(`slot must be 0..${slotCount - 1}, got ${slot}`);
}
