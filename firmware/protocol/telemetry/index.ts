/** Sealed telemetry on the device (docs/spec/telemetry.md) and its release on the ingest's receipts (docs/spec/receipt.md). */
export { SealedOutbox, type SealedOutboxOptions, type SealedRecord } from './sealed-outbox.ts';
export { DEFAULT_MAX_RESENDS, DEFAULT_RECEIPT_TIMEOUT_MS, ReceiptGate, recordCounter, type ReceiptGateEvent, type ReceiptGateOptions, type ReceiptGateStats, type UnreceiptedPolicy } from './receipt-gate.ts';
export { deviceTopic, TelemetryLink, type TelemetryLinkDeps, type TelemetryLinkEvent, type TelemetryLinkOptions, type TelemetryLinkStats } from './telemetry-link.ts';
