/** Why the device last started, as the platform reports it. */
export type ResetReason =
  | 'power-on'
  | 'software'
  | 'watchdog'
  | 'panic'
  | 'brownout'
  | 'unknown';

export interface System {
  /** Reset reason of the current boot. */
  lastResetReason(): ResetReason;
  /**
   * Restart the device. `reason` is recorded for the next boot's
   * `lastResetReason` ("software") and log. Does not return on a device; a
   * simulator throws to unwind the firmware.
   */
  restart(reason: string): never;
}
