/** Sealed telemetry on the device (docs/spec/telemetry.md). */
export { SealedOutbox, type SealedOutboxOptions, type SealedRecord } from './sealed-outbox.ts';
