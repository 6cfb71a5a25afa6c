/**
 * A/B boot control, modelled on ESP-IDF app rollback (otadata). The update
 * issue fills in the format (docs/spec/otadata.md); the application's whole
 * power is to request a trial of the other slot and to confirm or reject the
 * running one: the bootloader decides everything else.
 */
export type SlotIndex = 0 | 1;

/**
 * A state an otadata copy can store (ESP-IDF `esp_ota_img_states_t`; values
 * in `firmware/update/otadata.ts`, `OTA_STATE_CODES`). The one type for a
 * slot's boot-control state, here and in the update area.
 */
export type OtaState =
  | 'new'
  | 'pending-verify'
  | 'valid'
  | 'invalid'
  | 'aborted'
  | 'undefined';

export interface BootControl {
  /** Slot the running image was booted from. */
  runningSlot(): SlotIndex;
  /** State of the running slot's boot-control entry. */
  runningState(): OtaState;
  /** Select `slot` (already written and verified) for one trial boot. */
  requestTrial(slot: SlotIndex): void;
  /** Mark the running image valid: the trial becomes permanent. */
  confirmRunning(): void;
  /** Mark the running image invalid so the next boot falls back. */
  rejectRunning(): void;
}
