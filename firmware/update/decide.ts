/**
 * The bootloader's boot decision as an ordered table (docs/spec/update-states.md),
 * modelled on ESP-IDF v6.0's `bootloader_utility_get_selected_boot_partition`
 * and `bootloader_utility_load_boot_image` with holdfast's configuration:
 * CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE, CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK
 * (optional here), two OTA slots, no factory and no test partition.
 *
 * A boot is three steps, each written down once:
 *
 * 0. the abort pass: every copy whose `ota_state` reads PENDING_VERIFY is
 *    rewritten ABORTED (an unconfirmed trial never boots twice);
 * 1. the facts: which copy is active (valid CRC, not INVALID/ABORTED, slot
 *    not refused by anti-rollback; larger seq wins), or whether the otadata
 *    is "initial" (both copies blank or failing their CRC) or has no active
 *    copy; and how the start slot and the other slot check;
 * 2. the first row of BOOT_ROWS matching the facts: which slot boots, the
 *    otadata write and the anti-rollback floor raise to perform.
 *
 * Pure: no flash access. tools/sim/bootloader.ts performs the writes through
 * the flash so power cuts can hit them; the device's real bootloader does
 * the same thing in C.
 */
import type { SlotIndex } from '../hal/boot-control.ts';
import {
  encodeOtaEntry,
  isEntryInitial,
  isEntryInvalid,
  isEntryValid,
  OTA_STATE_CODES,
  selectCopy,
  slotForSeq,
  withStateCode,
  decodeOtaEntry,
  type CopyIndex,
  type OtaEntryReading,
  type OtaStateReading,
} from './otadata.ts';

/** Table wildcard: "matches anything". Not an OtaState, so it can never be encoded. */
export const ANY = '*';
export type Any = typeof ANY;

/**
 * How a slot checks, against the anti-rollback floor in force when the
 * bootloader loads it:
 * - `bootable`: header readable, secure version not below the floor, image verifies;
 * - `corrupt`: header readable and secure version not below the floor, but the image does not verify;
 * - `refused`: no readable header (blank, bad magic/CRC) or secure version below the floor
 *   (ESP-IDF's `check_anti_rollback` fails: never selected, never loaded).
 */
export type SlotImage = 'bootable' | 'corrupt' | 'refused';

/**
 * - `active`: a copy is active (its slot is the start slot);
 * - `initial`: both copies blank or failing their CRC: the otadata was never written;
 * - `no-active`: neither of those (copies INVALID/ABORTED, or pointing at refused slots).
 */
export type OtadataSummary = 'active' | 'initial' | 'no-active';

export interface BootFacts {
  readonly otadata: OtadataSummary;
  /** State of the active copy after the abort pass; undefined unless `otadata` is `active`. */
  readonly state: OtaStateReading | undefined;
  /** The slot tried first: the active copy's slot, else ota_0. */
  readonly start: SlotImage;
  /** The slot tried next. */
  readonly other: SlotImage;
}

export interface RowCondition {
  readonly otadata: OtadataSummary | Any;
  readonly state: OtaStateReading | Any;
  readonly start: SlotImage | Any;
  readonly other: SlotImage | Any;
}

export type RowBoot = 'start' | 'other' | 'none';
/** `pending-verify`: rewrite the active copy NEW -> PENDING_VERIFY. `initial`: write copy 0 {seq booted + 1, VALID}. */
export type RowWrite = 'none' | 'pending-verify' | 'initial';
/** Raise the anti-rollback floor to the secure version of the start slot (before loading) or of the booted slot (after). */
export type RowRaise = 'none' | 'start' | 'booted';

export interface BootRow {
  readonly id: string;
  readonly when: RowCondition;
  readonly boot: RowBoot;
  readonly write: RowWrite;
  readonly raise: RowRaise;
  readonly reason: string;
}

function row(id: string, when: RowCondition, boot: RowBoot, write: RowWrite, raise: RowRaise, reason: string): BootRow {
  return Object.freeze({ id, when: Object.freeze(when), boot, write, raise, reason });
}

/**
 * Evaluated in order; the first row whose every cell matches wins. The last
 * row matches everything, so a decision always exists. Mirrored in
 * docs/spec/update-states.md (a test compares the two).
 */
export const BOOT_ROWS: readonly BootRow[] = Object.freeze([
  row('R1', { otadata: 'active', state: 'new', start: 'bootable', other: ANY }, 'start', 'pending-verify', 'none', 'trial boot of a new image'),
  row('R2', { otadata: 'active', state: 'new', start: ANY, other: 'bootable' }, 'other', 'pending-verify', 'none', 'new image does not load: fall back; the next boot aborts the trial'),
  row('R3', { otadata: 'active', state: 'new', start: ANY, other: ANY }, 'none', 'pending-verify', 'none', 'new image does not load and nothing else does'),
  row('R4', { otadata: 'active', state: 'valid', start: 'bootable', other: ANY }, 'start', 'none', 'start', 'confirmed image'),
  row('R5', { otadata: 'active', state: 'valid', start: ANY, other: 'bootable' }, 'other', 'none', 'start', 'confirmed image does not load: fall back'),
  row('R6', { otadata: 'active', state: 'valid', start: ANY, other: ANY }, 'none', 'none', 'start', 'confirmed image does not load and nothing else does'),
  row('R7', { otadata: 'active', state: ANY, start: 'bootable', other: ANY }, 'start', 'none', 'none', 'image in a state without rollback rules (UNDEFINED or unrecognized)'),
  row('R8', { otadata: 'active', state: ANY, start: ANY, other: 'bootable' }, 'other', 'none', 'none', 'selected image does not load: fall back'),
  row('R9', { otadata: 'initial', state: ANY, start: 'bootable', other: ANY }, 'start', 'initial', 'booted', 'blank otadata: first OTA slot, otadata initialised'),
  row('R10', { otadata: 'initial', state: ANY, start: ANY, other: 'bootable' }, 'other', 'initial', 'booted', 'blank otadata, first slot does not load: second slot, otadata initialised'),
  row('R11', { otadata: 'no-active', state: ANY, start: 'bootable', other: ANY }, 'start', 'none', 'none', 'no usable copy: try every slot, first one loads'),
  row('R12', { otadata: 'no-active', state: ANY, start: ANY, other: 'bootable' }, 'other', 'none', 'none', 'no usable copy: try every slot, second one loads'),
  row('R13', { otadata: ANY, state: ANY, start: ANY, other: ANY }, 'none', 'none', 'none', 'no bootable slot'),
]);

function cellMatches<T extends string>(cell: T | Any, value: T | undefined): boolean {
  return cell === ANY || cell === value;
}

/** The first row of BOOT_ROWS matching `facts`. */
export function matchBootRow(facts: BootFacts): BootRow {
  for (const candidate of BOOT_ROWS) {
    const when = candidate.when;
    if (
      cellMatches(when.otadata, facts.otadata) &&
      cellMatches(when.state, facts.state) &&
      cellMatches(when.start, facts.start) &&
      cellMatches(when.other, facts.other)
    ) {
      return candidate;
    }
  }
  throw new Error('BOOT_ROWS has no catch-all row');
}

// ------------------------------------------------------------- planning --

/** What the bootloader knows about a slot before deciding. */
export interface SlotCheck {
  /** Secure version from a readable header; undefined when the header does not read. */
  readonly secureVersion: number | undefined;
  /** The whole image verifies (header, length, SHA-256). */
  readonly verifies: boolean;
}

export interface BootInput {
  /** Both copies as read, before the abort pass. */
  readonly copies: readonly [OtaEntryReading, OtaEntryReading];
  readonly slots: readonly [SlotCheck, SlotCheck];
  /** Anti-rollback floor (eFuse secure version); undefined: anti-rollback disabled. */
  readonly floor: number | undefined;
}

export type BootEffect =
  | { readonly kind: 'write-otadata'; readonly copy: CopyIndex; readonly bytes: Uint8Array; readonly what: 'aborted' | 'pending-verify' | 'initial' }
  | { readonly kind: 'raise-floor'; readonly secureVersion: number };

export interface BootPlan {
  /** Copies rewritten ABORTED by the abort pass. */
  readonly aborted: readonly CopyIndex[];
  /** Active copy after the abort pass (anti-rollback aware), if any. */
  readonly active: CopyIndex | undefined;
  readonly startSlot: SlotIndex;
  readonly facts: BootFacts;
  readonly row: BootRow;
  /** Slot that boots; undefined: no bootable slot (the device is bricked). */
  readonly bootSlot: SlotIndex | undefined;
  /** Flash writes and eFuse raises in the order ESP-IDF performs them. */
  readonly effects: readonly BootEffect[];
  /** Floor after the effects (undefined with anti-rollback disabled). */
  readonly floorAfter: number | undefined;
}

/** Step 0 and 1: the abort pass and the facts. Exposed for tests. */
export function bootFacts(input: BootInput): { copies: [OtaEntryReading, OtaEntryReading]; aborted: CopyIndex[]; active: CopyIndex | undefined; startSlot: SlotIndex; loadFloor: number | undefined; facts: BootFacts } {
  const aborted: CopyIndex[] = [];
  const copies = input.copies.map((reading, index) => {
    if (reading.stateCode !== OTA_STATE_CODES['pending-verify']) return reading;
    aborted.push(index as CopyIndex);
    return decodeOtaEntry(withStateCode(reading, OTA_STATE_CODES.aborted));
  }) as [OtaEntryReading, OtaEntryReading];

  const floor = input.floor;
  const notRefused = (slot: number): boolean => {
    const version = input.slots[slot].secureVersion;
    return version !== undefined && (floor === undefined || version >= floor);
  };

  let otadata: OtadataSummary;
  let active: CopyIndex | undefined;
  // "Initial contents": with anti-rollback, both copies blank or failing their CRC; without it,
  // the bootloader takes that branch only when both copies are also invalid (blank seq, INVALID, ABORTED).
  const bothInitial = isEntryInitial(copies[0]) && isEntryInitial(copies[1]);
  if (bothInitial && (floor !== undefined || (isEntryInvalid(copies[0]) && isEntryInvalid(copies[1])))) {
    otadata = 'initial';
  } else {
    // get_active_otadata_with_check_anti_rollback: valid copies whose slot passes check_anti_rollback.
    active = selectCopy(copies, [
      isEntryValid(copies[0]) && (floor === undefined || notRefused(slotForSeq(copies[0].seq))),
      isEntryValid(copies[1]) && (floor === undefined || notRefused(slotForSeq(copies[1].seq))),
    ]);
    otadata = active === undefined ? 'no-active' : 'active';
  }
  const startSlot: SlotIndex = active === undefined ? 0 : (slotForSeq(copies[active].seq) as SlotIndex);
  const state = active === undefined ? undefined : copies[active].state;

  // update_anti_rollback for a VALID active copy happens before loading, so loading checks against the raised floor.
  let loadFloor = floor;
  const startVersion = input.slots[startSlot].secureVersion;
  if (floor !== undefined && state === 'valid' && startVersion !== undefined) loadFloor = Math.max(floor, startVersion);
  const classify = (slot: number): SlotImage => {
    const version = input.slots[slot].secureVersion;
    if (version === undefined || (loadFloor !== undefined && version < loadFloor)) return 'refused';
    return input.slots[slot].verifies ? 'bootable' : 'corrupt';
  };
  const facts: BootFacts = { otadata, state, start: classify(startSlot), other: classify(1 - startSlot) };
  return { copies, aborted, active, startSlot, loadFloor, facts };
}

/** Steps 0 to 2: everything the bootloader will do on this boot. */
export function planBoot(input: BootInput): BootPlan {
  const { copies, aborted, active, startSlot, facts } = bootFacts(input);
  const matched = matchBootRow(facts);
  const effects: BootEffect[] = [];
  for (const copy of aborted) effects.push({ kind: 'write-otadata', copy, bytes: withStateCode(input.copies[copy], OTA_STATE_CODES.aborted), what: 'aborted' });

  const bootSlot: SlotIndex | undefined = matched.boot === 'start' ? startSlot : matched.boot === 'other' ? ((1 - startSlot) as SlotIndex) : undefined;
  let floor = input.floor;
  const raiseTo = (slot: number): void => {
    const version = input.slots[slot].secureVersion;
    if (floor === undefined || version === undefined) return;
    effects.push({ kind: 'raise-floor', secureVersion: version });
    floor = Math.max(floor, version);
  };

  if (matched.write === 'pending-verify' && active !== undefined) {
    effects.push({ kind: 'write-otadata', copy: active, bytes: withStateCode(copies[active], OTA_STATE_CODES['pending-verify']), what: 'pending-verify' });
  }
  if (matched.raise === 'start') raiseTo(startSlot);
  if (matched.write === 'initial' && bootSlot !== undefined) {
    // set_actual_ota_seq: after the image loaded, copy 0 := {seq slot + 1, label 0xFF, VALID}.
    effects.push({ kind: 'write-otadata', copy: 0, bytes: encodeOtaEntry({ seq: bootSlot + 1, state: 'valid' }), what: 'initial' });
  }
  if (matched.raise === 'booted' && bootSlot !== undefined) raiseTo(bootSlot);
  return { aborted, active, startSlot, facts, row: matched, bootSlot, effects, floorAfter: floor };
}
