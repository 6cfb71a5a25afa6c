/**
 * `BootControl` over ESP-IDF's otadata partition, written byte for byte by
 * holdfast's own codec (firmware/update/otadata.ts, docs/spec/otadata.md),
 * the same bytes the ESP-IDF bootloader reads. The otadata partition is a
 * `FlashPartition` (normally `ModdableFlash` over the "otadata" label: with
 * flash encryption ESP-IDF encrypts it, and the adapter's erased-unit
 * detection makes an erased copy read 0xFF, as the codec requires).
 *
 * - `runningSlot()`: from the running partition's label (glue
 *   `esp_ota_get_running_partition()`), "ota_0" → 0, "ota_1" → 1; any other
 *   label is refused when the adapter is built (`unknown-running-partition`).
 * - `runningState()`: the state otadata holds for the running slot; no copy
 *   for it, or a state code this firmware does not know, is refused
 *   (`boot-state-unknown`), never read as a state.
 * - `requestTrial(slot)`: `setBootSlot` (`esp_ota_set_boot_partition`).
 * - `confirmRunning()`: `markValid` (`esp_ota_mark_app_valid_cancel_rollback`),
 *   only when the active copy names the running slot (`not-active` otherwise:
 *   after a fallback ESP-IDF would mark the other slot's copy).
 * - `rejectRunning()`: `markInvalid` (`esp_ota_mark_app_invalid_rollback`,
 *   without its reboot), which refuses (OtadataError 'rollback-impossible')
 *   unless the other copy is valid and `canBootSlot` accepts its slot.
 *
 * `esp_ota_mark_app_valid_cancel_rollback` itself is not called: it would
 * write otadata a second time (another erase and program, a cut window the
 * codec's proven state table does not have), and its eFuse step is the
 * update agent's `SecurityFloor.raise`, done after the commit.
 */
import type { BootControl, OtaState, SlotIndex } from '../../hal/boot-control.ts';
import { activeCopy, markInvalid, markValid, readOtadata, setBootSlot, slotForSeq, stateOfSlot } from '../../update/otadata.ts';
import type { FlashPartition } from '../../hal/flash.ts';
import { TargetError } from './errors.ts';

/** ESP-IDF's labels of the two app slots (board.json partitions). */
export const SLOT_LABELS: readonly [string, string] = Object.freeze(['ota_0', 'ota_1']) as readonly [string, string];

export function slotOfPartition(label: string): SlotIndex {
  const slot = SLOT_LABELS.indexOf(label);
  if (slot !== 0 && slot !== 1) throw new TargetError('unknown-running-partition', `running partition ${JSON.stringify(label)} is not ota_0 or ota_1`);
  return slot;
}

/**
 * The `embedded:storage/flash` name of an app slot: ESP32's flash module
 * opens app partitions only as "running" and "nextota" (with two slots, the
 * other one).
 */
export function slotFlashName(slot: SlotIndex, runningSlot: SlotIndex): 'running' | 'nextota' {
  if (slot !== 0 && slot !== 1) throw new RangeError(`slot must be 0 or 1, got ${String(slot)}`);
  return slot === runningSlot ? 'running' : 'nextota';
}

export class ModdableBootControl implements BootControl {
  constructor(
    private readonly otadata: FlashPartition,
    private readonly slot: SlotIndex,
    private readonly canBootSlot: (slot: SlotIndex) => boolean,
  ) {
    if (slot !== 0 && slot !== 1) throw new RangeError(`running slot must be 0 or 1, got ${String(slot)}`);
  }

  runningSlot(): SlotIndex {
    return this.slot;
  }

  runningState(): OtaState {
    const state = stateOfSlot(readOtadata(this.otadata), this.slot);
    if (state === undefined || state === 'unrecognized') {
      throw new TargetError('boot-state-unknown', state === undefined ? `otadata holds no copy for slot ${this.slot}` : `otadata holds an unknown state for slot ${this.slot}`);
    }
    return state;
  }

  requestTrial(slot: SlotIndex): void {
    setBootSlot(this.otadata, slot);
  }

  confirmRunning(): void {
    this.requireActiveRunning('confirm');
    markValid(this.otadata);
  }

  rejectRunning(): void {
    this.requireActiveRunning('reject');
    markInvalid(this.otadata, (slot) => (slot === 0 || slot === 1) && this.canBootSlot(slot));
  }

  private requireActiveRunning(what: string): void {
    const readings = readOtadata(this.otadata);
    const active = activeCopy(readings);
    if (active === undefined || slotForSeq(readings[active].seq) !== this.slot) {
      throw new TargetError('not-active', `cannot ${what} slot ${this.slot}: the active otadata copy names ${active === undefined ? 'no slot' : `slot ${slotForSeq(readings[active].seq)}`}`);
    }
  }
}
