/**
 * Hardware watchdog. Once armed it resets the device unless fed within
 * `timeoutMs`; a reset it causes is reported as reset reason "watchdog".
 * It must reset, never only warn (a warning-only task watchdog is one of the
 * failures docs/design/update.md lists).
 */
export interface Watchdog {
  arm(timeoutMs: number): void;
  feed(): void;
  disarm(): void;
}
