/**
 * On-flash and on-wire format versions, each separate from the package
 * version (docs/spec/). Bump a format's version when old readers would
 * misread new data; a reader refuses a version newer than it knows.
 */
export const FORMAT_VERSIONS = Object.freeze({
  frame: 1,
  outbox: 2,
  stagingProgress: 1,
  floorStore: 2,
  replayStore: 2,
  trustStore: 2,
  signedDocument: 1,
  /** 2: ESP-IDF's own app image (esp-app-image.ts; ESP-IDF owns the layout), replacing holdfast's HFAP header (1). */
  appImage: 2,
  counter: 2,
  /** 2: compact wire header (key id and counter as canonical LEB128 varints), device id implicit and authenticated; 1 (fixed 21-byte header with the device id) never shipped and is refused. */
  envelope: 2,
  auditLog: 1,
  receipt: 1,
  commandJournal: 1,
  /** The safe-mode state's two-block log records (firmware/runtime/safe-mode.ts, docs/spec/safe-mode.md). */
  safeMode: 1,
  /** The command-reply telemetry record, type 0x04 (docs/spec/device-topics.md). */
  commandReply: 1,
  /** Update messages on the device's update topic and the update-request record, type 0x05 (docs/spec/device-topics.md). */
  updateMessage: 1,
  /** The periodic health record, type 0x02 (firmware/runtime/health-record.ts, docs/spec/health-record.md). */
  healthRecord: 1,
  /** The serial console's line framing, the `1` of `HF1` (firmware/protocol/console/frame.ts, docs/spec/console.md). */
  console: 1,
  /** The console unlock challenge, `HFCU | version | ...` (firmware/security/console-unlock.ts, docs/spec/console.md). */
  consoleChallenge: 1,
  /** The provisioning record in the hf_prov partition, `HFPV | version | ...` (firmware/security/provisioning.ts, docs/spec/provisioning.md). */
  provisioning: 1,
  /** The fleet's signed revocation list, `HFRL | version | ...` (firmware/security/revocation.ts, docs/spec/revocation.md). */
  revocationList: 1,
  /** The device's store of the newest accepted revocation list, `HFRS | version | ...` slot headers (firmware/security/revocation-store.ts, docs/spec/revocation.md). */
  revocationStore: 1,
  /** The device key store `hf_keys`, `HFKS | version | ...` slot headers (firmware/security/key-store.ts, docs/spec/key-rotation.md). */
  keyStore: 1,
  /** The device's key rotation request, `HFKR | version | ...` (firmware/security/key-rotation.ts, docs/spec/key-rotation.md). */
  keyRotationRequest: 1,
});
