/**
 * The health record (docs/spec/health-record.md): a compact periodic status
 * the runtime appends to the telemetry outbox like any record, sealed by the
 * envelope (which treats the payload as opaque). The payload's first byte is
 * a record type (`RECORD_TYPES`): readings, health records and audit entries
 * share the telemetry topic and are told apart by it.
 *
 * 64 bytes, little-endian, format version in byte 1. The decoder is total:
 * any bytes give a record or a HealthRecordError with a stable code.
 */
import { setErrorName } from '../base/error-name.ts';
import { FORMAT_VERSIONS } from '../base/format-versions.ts';
import type { OtaState } from '../hal/boot-control.ts';
import type { ResetReason } from '../hal/system.ts';

/** First byte of every payload the runtime appends. Permanent. */
export const RECORD_TYPES = Object.freeze({
  /** An application reading: the bytes given to `runtime.append` follow. */
  reading: 0x01,
  /** A health record (this module). */
  health: 0x02,
  /** One audit entry, its bytes unpadded (docs/spec/audit-log.md, "Entry"). */
  audit: 0x03,
  /** A device key rotation request, its bytes unpadded (docs/spec/key-rotation.md, "Request"). */
  keyRotationRequest: 0x06,
});

export const HEALTH_RECORD_FORMAT = FORMAT_VERSIONS.healthRecord;
export const HEALTH_RECORD_LENGTH = 64;
/** u32 and u8 value meaning "not known". */
export const UNKNOWN_U32 = 0xffffffff;
export const UNKNOWN_U8 = 0xff;

/** Flag bits (byte 2). */
export const HEALTH_FLAGS = Object.freeze({
  safeMode: 0x01,
  trialRunning: 0x02,
  linkConnected: 0x04,
  commandsUnavailable: 0x08,
  auditUnavailable: 0x10,
  clockJumpSeen: 0x20,
});

/** Reset reason codes (byte 4). */
export const RESET_REASON_CODES: Readonly<Record<ResetReason, number>> = Object.freeze({
  'power-on': 0,
  software: 1,
  watchdog: 2,
  panic: 3,
  brownout: 4,
  unknown: 5,
});

/** Slot state codes (bytes 6, 7); 0xFE: a state code otadata does not define; 0xFF: no copy names the slot, or not read. */
export const SLOT_STATE_CODES: Readonly<Record<OtaState | 'unrecognized', number>> = Object.freeze({
  new: 0,
  'pending-verify': 1,
  valid: 2,
  invalid: 3,
  aborted: 4,
  undefined: 5,
  unrecognized: 0xfe,
});

export type SlotStateReading = OtaState | 'unrecognized' | null;

export interface HealthRecord {
  readonly safeMode: boolean;
  readonly trialRunning: boolean;
  readonly linkConnected: boolean;
  readonly commandsUnavailable: boolean;
  readonly auditUnavailable: boolean;
  readonly clockJumpSeen: boolean;
  /** SAFE_MODE_CAUSE_CODES of the state's last transition (0 never entered, 0xFE unreadable). */
  readonly safeModeCause: number;
  readonly resetReason: ResetReason;
  readonly runningSlot: 0 | 1 | null;
  readonly slotStates: readonly [SlotStateReading, SlotStateReading];
  /** Running image version (esp_app_desc_t), null when unknown. */
  readonly imageVersion: number | null;
  /** Security floor in force, null when unreadable. */
  readonly securityFloor: number | null;
  /** Bit i set: boot failure with BOOT_FAILURE_BITS value i this boot (docs/spec/boot-sequence.md). */
  readonly bootFailures: number;
  /** The persistent counter's last value returned in this boot (0: none yet). */
  readonly counter: number;
  readonly outboxQueued: number;
  /** Records that left the outbox unacknowledged since it was formatted (persistent). */
  readonly outboxDropped: number;
  /** Records lost or corrupt this boot (outbox recovery and delivery). */
  readonly outboxLost: number;
  readonly replayRejections: number;
  readonly forgeryRejections: number;
  readonly clockJumps: number;
  /** Seconds since boot on the monotonic clock. */
  readonly uptimeSeconds: number;
  /** Counter of the newest audit entry (0: none). */
  readonly auditLastCounter: number;
}

/**
 * The runtime's counts of this boot (docs/spec/health-record.md, "Counts of
 * this boot"): what each one counts is said here, once; the runtime calls
 * `count` where the event happens, and the health record and the status
 * read them. RAM only: a reboot starts every count at 0.
 */
export const HEALTH_COUNTS = Object.freeze({
  /** Commands refused as replayed or stale (health record bytes 40..43). */
  replayRejections: 'replayRejections',
  /** Commands and receipts refused as unauthenticated (bytes 44..47). */
  forgeryRejections: 'forgeryRejections',
  /** Signed times that disagreed with the monotonic clock beyond the jump bound (bytes 48..51; flag bit 5 when above 0). */
  clockJumps: 'clockJumps',
  /** Audit events not appended: no log, or the log refused (flag bit 4 when above 0). */
  auditLost: 'auditLost',
  /** Health records appended to the outbox. */
  healthRecords: 'healthRecords',
  /** Audit entries appended to the outbox (and then acknowledged in the log). */
  auditPublished: 'auditPublished',
  /** Command-reply records appended (commands answered over MQTT). */
  commandReplies: 'commandReplies',
  /** Records the receipt gate released without a receipt (its drop policy): the `total` of their records-dropped audit events. */
  unreceiptedDrops: 'unreceiptedDrops',
} as const);

export type HealthCount = keyof typeof HEALTH_COUNTS;

const COUNT_NAMES: readonly HealthCount[] = Object.freeze(Object.keys(HEALTH_COUNTS) as HealthCount[]);

export class HealthCounters {
  private readonly counts: Record<HealthCount, number>;
  private uptime = 0;

  constructor() {
    const counts = {} as Record<HealthCount, number>;
    for (const name of COUNT_NAMES) counts[name] = 0;
    this.counts = counts;
  }

  /** One more `name`; returns the new count (saturating at 2^53 - 1; the record's u32 fields saturate on their own). */
  count(name: HealthCount): number {
    const next = Math.min(this.counts[name] + 1, Number.MAX_SAFE_INTEGER);
    this.counts[name] = next;
    return next;
  }

  value(name: HealthCount): number {
    return this.counts[name];
  }

  /** Milliseconds of monotonic clock since boot, as the runtime has polled it. */
  get uptimeMs(): number {
    return this.uptime;
  }

  addUptime(ms: number): void {
    this.uptime += ms;
  }

  /** Every count, by name. */
  snapshot(): Readonly<Record<HealthCount, number>> {
    return Object.freeze({ ...this.counts });
  }
}

export type HealthRecordErrorCode = 'truncated' | 'trailing-bytes' | 'not-health' | 'format-too-new' | 'not-formatted' | 'bad-value';

export class HealthRecordError extends Error {
  constructor(readonly code: HealthRecordErrorCode, message: string) {
    super(message);
    setErrorName(this, 'HealthRecordError');
  }
}

const TWO_TO_32 = 0x1_0000_0000;

function u32(bytes: Uint8Array, at: number, value: number): void {
  const v = Math.min(Math.max(0, Math.floor(value)), UNKNOWN_U32);
  bytes[at] = v & 0xff;
  bytes[at + 1] = (v >>> 8) & 0xff;
  bytes[at + 2] = (v >>> 16) & 0xff;
  bytes[at + 3] = (v >>> 24) & 0xff;
}

function u53(bytes: Uint8Array, at: number, value: number): void {
  const v = Math.min(Math.max(0, Math.floor(value)), Number.MAX_SAFE_INTEGER);
  u32(bytes, at, v % TWO_TO_32);
  u32(bytes, at + 4, Math.floor(v / TWO_TO_32));
}

function readU32(bytes: Uint8Array, at: number): number {
  return (bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16)) + bytes[at + 3] * 0x100_0000;
}

function codeOf<K extends string>(table: Readonly<Record<K, number>>, value: number): K | undefined {
  for (const k of Object.keys(table) as K[]) if (table[k] === value) return k;
  return undefined;
}

/** The 64-byte payload of `record` (type byte first). */
export function encodeHealthRecord(record: HealthRecord): Uint8Array {
  const b = new Uint8Array(HEALTH_RECORD_LENGTH);
  b[0] = RECORD_TYPES.health;
  b[1] = HEALTH_RECORD_FORMAT;
  let flags = 0;
  if (record.safeMode) flags |= HEALTH_FLAGS.safeMode;
  if (record.trialRunning) flags |= HEALTH_FLAGS.trialRunning;
  if (record.linkConnected) flags |= HEALTH_FLAGS.linkConnected;
  if (record.commandsUnavailable) flags |= HEALTH_FLAGS.commandsUnavailable;
  if (record.auditUnavailable) flags |= HEALTH_FLAGS.auditUnavailable;
  if (record.clockJumpSeen) flags |= HEALTH_FLAGS.clockJumpSeen;
  b[2] = flags;
  b[3] = record.safeModeCause & 0xff;
  b[4] = RESET_REASON_CODES[record.resetReason] ?? RESET_REASON_CODES.unknown;
  b[5] = record.runningSlot === null ? UNKNOWN_U8 : record.runningSlot;
  for (let i = 0; i < 2; i++) {
    const s = record.slotStates[i];
    b[6 + i] = s === null ? UNKNOWN_U8 : SLOT_STATE_CODES[s];
  }
  u32(b, 8, record.imageVersion ?? UNKNOWN_U32);
  u32(b, 12, record.securityFloor ?? UNKNOWN_U32);
  u32(b, 16, record.bootFailures >>> 0);
  u53(b, 20, record.counter);
  u32(b, 28, record.outboxQueued);
  u32(b, 32, record.outboxDropped);
  u32(b, 36, record.outboxLost);
  u32(b, 40, record.replayRejections);
  u32(b, 44, record.forgeryRejections);
  u32(b, 48, record.clockJumps);
  u32(b, 52, record.uptimeSeconds);
  u53(b, 56, record.auditLastCounter);
  return b;
}

/** Decode a payload; throws HealthRecordError (never anything else) for any bytes that are not a version-1 health record. */
export function decodeHealthRecord(bytes: Uint8Array): HealthRecord {
  if (!(bytes instanceof Uint8Array)) throw new HealthRecordError('bad-value', 'a health record is bytes');
  if (bytes.length < 2) throw new HealthRecordError('truncated', `${bytes.length} bytes: no type and version`);
  if (bytes[0] !== RECORD_TYPES.health) throw new HealthRecordError('not-health', `record type 0x${bytes[0].toString(16)} is not a health record`);
  if (bytes[1] > HEALTH_RECORD_FORMAT) throw new HealthRecordError('format-too-new', `health record format ${bytes[1]}; this reader knows ${HEALTH_RECORD_FORMAT}`);
  if (bytes[1] !== HEALTH_RECORD_FORMAT) throw new HealthRecordError('not-formatted', `health record format ${bytes[1]} is not one this reader knows`);
  if (bytes.length < HEALTH_RECORD_LENGTH) throw new HealthRecordError('truncated', `${bytes.length} bytes, a health record has ${HEALTH_RECORD_LENGTH}`);
  if (bytes.length > HEALTH_RECORD_LENGTH) throw new HealthRecordError('trailing-bytes', `${bytes.length} bytes, a health record has ${HEALTH_RECORD_LENGTH}`);
  const flags = bytes[2];
  if ((flags & 0xc0) !== 0) throw new HealthRecordError('bad-value', `reserved flag bits set (0x${flags.toString(16)})`);
  const resetReason = codeOf(RESET_REASON_CODES, bytes[4]);
  if (resetReason === undefined) throw new HealthRecordError('bad-value', `reset reason code ${bytes[4]}`);
  if (bytes[5] !== 0 && bytes[5] !== 1 && bytes[5] !== UNKNOWN_U8) throw new HealthRecordError('bad-value', `running slot ${bytes[5]}`);
  const slot = (code: number): SlotStateReading => {
    if (code === UNKNOWN_U8) return null;
    const s = codeOf(SLOT_STATE_CODES, code);
    if (s === undefined) throw new HealthRecordError('bad-value', `slot state code ${code}`);
    return s;
  };
  const high = (at: number): number => {
    const h = readU32(bytes, at + 4);
    if (h > 0x1f_ffff) throw new HealthRecordError('bad-value', `u53 field at ${at} above 2^53 - 1`);
    return h * TWO_TO_32 + readU32(bytes, at);
  };
  const optional = (v: number): number | null => (v === UNKNOWN_U32 ? null : v);
  return Object.freeze({
    safeMode: (flags & HEALTH_FLAGS.safeMode) !== 0,
    trialRunning: (flags & HEALTH_FLAGS.trialRunning) !== 0,
    linkConnected: (flags & HEALTH_FLAGS.linkConnected) !== 0,
    commandsUnavailable: (flags & HEALTH_FLAGS.commandsUnavailable) !== 0,
    auditUnavailable: (flags & HEALTH_FLAGS.auditUnavailable) !== 0,
    clockJumpSeen: (flags & HEALTH_FLAGS.clockJumpSeen) !== 0,
    safeModeCause: bytes[3],
    resetReason,
    runningSlot: bytes[5] === UNKNOWN_U8 ? null : (bytes[5] as 0 | 1),
    slotStates: Object.freeze([slot(bytes[6]), slot(bytes[7])] as [SlotStateReading, SlotStateReading]),
    imageVersion: optional(readU32(bytes, 8)),
    securityFloor: optional(readU32(bytes, 12)),
    bootFailures: readU32(bytes, 16),
    counter: high(20),
    outboxQueued: readU32(bytes, 28),
    outboxDropped: readU32(bytes, 32),
    outboxLost: readU32(bytes, 36),
    replayRejections: readU32(bytes, 40),
    forgeryRejections: readU32(bytes, 44),
    clockJumps: readU32(bytes, 48),
    uptimeSeconds: readU32(bytes, 52),
    auditLastCounter: high(56),
  });
}
