/**
 * Audit events and their compact bodies (docs/spec/audit-log.md, "Events").
 *
 * Each event kind has a one-byte code and a fixed body layout of at most
 * `AUDIT_MAX_BODY` bytes, little-endian. Reasons are short ASCII tokens
 * (1..`AUDIT_MAX_TOKEN` bytes of [a-z0-9._-]), never free text: the log
 * keeps evidence, not messages. The decoder is total: any bytes give an
 * event or an `AuditDecodeError` with a stable code (it runs on the host
 * over attacker-controlled exports, and on the device over flash contents).
 */
import { setErrorName } from '../base/error-name.ts';

/** Largest body of any event (bytes). */
export const AUDIT_MAX_BODY = 64;
/** Longest reason token (bytes). */
export const AUDIT_MAX_TOKEN = 24;
/** u32 value meaning "not known" in fields that allow it (an image version, a drop count). */
export const AUDIT_UNKNOWN_U32 = 0xffffffff;

/** Which channel a rejected message came on. */
export type AuditChannel = 'command' | 'telemetry';
/** Which key a rotation replaced. */
export type AuditKeyRole = 'root' | 'targets' | 'device' | 'audit';
/** Which store dropped records. */
export type AuditStore = 'outbox' | 'inbox';

export type AuditEvent =
  | { readonly kind: 'update-staged'; readonly imageVersion: number; readonly securityVersion: number; readonly slot: number; readonly resumedAtChunk: number }
  | { readonly kind: 'update-committed'; readonly imageVersion: number; readonly securityVersion: number; readonly slot: number }
  | { readonly kind: 'update-rolled-back'; readonly imageVersion: number; readonly reason: string }
  /** An update (manifest, image, root) the agent refused; `imageVersion` null when not known. */
  | { readonly kind: 'update-refused'; readonly imageVersion: number | null; readonly reason: string }
  | { readonly kind: 'trial-started'; readonly imageVersion: number | null; readonly slot: number }
  | { readonly kind: 'rollback-impossible'; readonly imageVersion: number | null; readonly reason: string }
  | { readonly kind: 'unconfirmed-valid'; readonly imageVersion: number; readonly slot: number }
  | { readonly kind: 'store-unreadable'; readonly store: string; readonly code: string }
  | { readonly kind: 'key-rotated'; readonly role: AuditKeyRole; readonly fromVersion: number; readonly toVersion: number }
  | { readonly kind: 'replay-rejected'; readonly channel: AuditChannel; readonly keyId: number; readonly counter: number }
  | { readonly kind: 'forgery-rejected'; readonly channel: AuditChannel; readonly keyId: number; readonly counter: number }
  /** An authentic command refused because the accepted revocation list revokes its command key. */
  | { readonly kind: 'command-revoked'; readonly keyId: number; readonly counter: number }
  /** A revocation list accepted and stored (its number and entry count). */
  | { readonly kind: 'revocation-accepted'; readonly number: number; readonly entries: number }
  /** A revocation list refused (its RevocationError code, `no-key`, `store-unavailable`, or `storage`). */
  | { readonly kind: 'revocation-refused'; readonly reason: string }
  | { readonly kind: 'safe-mode-entered'; readonly reason: string }
  | { readonly kind: 'safe-mode-left'; readonly reason: string }
  | { readonly kind: 'records-dropped'; readonly store: AuditStore; readonly count: number; readonly total: number }
  | { readonly kind: 'watchdog-reset'; readonly reason: string; readonly resets: number }
  /** The monotonic clock and the wall clock disagreed by `deltaMs` (signed, |deltaMs| ≤ 2^53 - 1). */
  | { readonly kind: 'clock-jump'; readonly deltaMs: number; readonly wallMs: number }
  | { readonly kind: 'console-unlocked'; readonly keyId: number; readonly counter: number }
  /**
   * Written by the log itself, never by callers: a reclaim dropped the
   * block `blockSeq` while entries in it were not acknowledged. `count`
   * null when a cut destroyed the block before it could be counted; then
   * `firstCounter` is a lower bound (the ack point + 1).
   */
  | { readonly kind: 'dropped-unacknowledged'; readonly blockSeq: number; readonly count: number | null; readonly firstCounter: number; readonly lastCounter: number }
  /** The serial console refused `op` (a token: `unlock`, `reboot`, …) for `reason` (`locked`, `bad-signature`, `stale-challenge`, …; docs/spec/console.md). */
  | { readonly kind: 'console-refused'; readonly op: string; readonly reason: string }
  /** The unlocked serial console accepted the state-changing command `op` (written before it runs). */
  | { readonly kind: 'console-command'; readonly op: string };

export type AuditEventKind = AuditEvent['kind'];

/** Kind codes (byte 1 of an entry). 0x00 and 0xFF are never kinds. */
export const AUDIT_KIND_CODES: Readonly<Record<AuditEventKind, number>> = Object.freeze({
  'update-staged': 0x01,
  'update-committed': 0x02,
  'update-rolled-back': 0x03,
  'update-refused': 0x04,
  'trial-started': 0x05,
  'rollback-impossible': 0x06,
  'unconfirmed-valid': 0x07,
  'store-unreadable': 0x08,
  'key-rotated': 0x10,
  'replay-rejected': 0x11,
  'forgery-rejected': 0x12,
  'command-revoked': 0x13,
  'safe-mode-entered': 0x20,
  'safe-mode-left': 0x21,
  'records-dropped': 0x22,
  'watchdog-reset': 0x23,
  'clock-jump': 0x24,
  'revocation-accepted': 0x25,
  'revocation-refused': 0x26,
  'console-unlocked': 0x30,
  'dropped-unacknowledged': 0x40,
  'console-refused': 0x31,
  'console-command': 0x32,
});

const KEY_ROLES: readonly AuditKeyRole[] = Object.freeze(['root', 'targets', 'device', 'audit'] as const);
const CHANNELS: readonly AuditChannel[] = Object.freeze(['command', 'telemetry'] as const);
const STORES: readonly AuditStore[] = Object.freeze(['outbox', 'inbox'] as const);
const TWO_TO_32 = 0x1_0000_0000;
const MAX_HIGH = 0x1f_ffff;

export type AuditDecodeErrorCode =
  /** Fewer bytes than the layout needs. */
  | 'truncated'
  /** Bytes left over after the layout. */
  | 'trailing-bytes'
  /** A kind code this reader does not know. */
  | 'unknown-kind'
  /** A field out of its range (an enum code, a token's characters or length, a 53-bit value). */
  | 'bad-value';

/** A body (or entry) that does not decode; `code` is stable. */
export class AuditDecodeError extends Error {
  constructor(readonly code: AuditDecodeErrorCode, message: string) {
    super(message);
    setErrorName(this, 'AuditDecodeError');
  }
}

/** The event kind of a code, or undefined. */
export function auditKindOf(code: number): AuditEventKind | undefined {
  for (const kind of Object.keys(AUDIT_KIND_CODES) as AuditEventKind[]) if (AUDIT_KIND_CODES[kind] === code) return kind;
  return undefined;
}

// ---------------------------------------------------------------- writer

class BodyWriter {
  readonly bytes = new Uint8Array(AUDIT_MAX_BODY);
  length = 0;

  u8(value: number, field: string): this {
    checkInt(value, 0, 0xff, field);
    this.room(1);
    this.bytes[this.length++] = value;
    return this;
  }

  u32(value: number, field: string): this {
    checkInt(value, 0, 0xffffffff, field);
    this.room(4);
    for (let i = 0; i < 4; i++) this.bytes[this.length++] = Math.floor(value / 2 ** (8 * i)) & 0xff;
    return this;
  }

  u53(value: number, field: string): this {
    checkInt(value, 0, Number.MAX_SAFE_INTEGER, field);
    this.u32(value % TWO_TO_32, field);
    return this.u32(Math.floor(value / TWO_TO_32), field);
  }

  /** A signed 53-bit value: u53 magnitude with the sign in bit 63 (bit 31 of the high word). */
  i53(value: number, field: string): this {
    checkInt(value, -Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, field);
    const magnitude = Math.abs(value);
    this.u32(magnitude % TWO_TO_32, field);
    return this.u32(Math.floor(magnitude / TWO_TO_32) + (value < 0 ? 0x8000_0000 : 0), field);
  }

  token(value: string, field: string): this {
    if (typeof value !== 'string') throw new TypeError(`${field} must be a string`);
    if (value.length < 1 || value.length > AUDIT_MAX_TOKEN) throw new RangeError(`${field} must be 1..${AUDIT_MAX_TOKEN} characters, got ${value.length}`);
    this.u8(value.length, field);
    this.room(value.length);
    for (let i = 0; i < value.length; i++) {
      const c = value.charCodeAt(i);
      if (!isTokenChar(c)) throw new RangeError(`${field} must be a token of [a-z0-9._-], got ${JSON.stringify(value)}`);
      this.bytes[this.length++] = c;
    }
    return this;
  }

  optionalU32(value: number | null, field: string): this {
    if (value === null) return this.u32(AUDIT_UNKNOWN_U32, field);
    checkInt(value, 0, AUDIT_UNKNOWN_U32 - 1, field);
    return this.u32(value, field);
  }

  private room(n: number): void {
    if (this.length + n > AUDIT_MAX_BODY) throw new RangeError(`event body exceeds ${AUDIT_MAX_BODY} bytes`);
  }
}

function checkInt(value: number, min: number, max: number, field: string): void {
  if (typeof value !== 'number') throw new TypeError(`${field} must be a number, got ${typeof value}`);
  if (!Number.isInteger(value) || value < min || value > max) throw new RangeError(`${field} must be an integer in ${min}..${max}, got ${value}`);
}

function isTokenChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x5f || c === 0x2d;
}

function indexOf<T>(list: readonly T[], value: T, field: string): number {
  const at = list.indexOf(value);
  if (at < 0) throw new RangeError(`${field} must be one of ${list.join(', ')}, got ${String(value)}`);
  return at;
}

/** The kind code and body of `event`; TypeError/RangeError for a malformed event. */
export function encodeAuditEvent(event: AuditEvent): { code: number; body: Uint8Array } {
  if (typeof event !== 'object' || event === null) throw new TypeError('an audit event must be an object');
  const code = AUDIT_KIND_CODES[event.kind];
  if (code === undefined || !Object.prototype.hasOwnProperty.call(AUDIT_KIND_CODES, event.kind)) throw new RangeError(`unknown audit event kind ${String((event as { kind: unknown }).kind)}`);
  const w = new BodyWriter();
  switch (event.kind) {
    case 'update-staged':
      w.u32(event.imageVersion, 'imageVersion').u32(event.securityVersion, 'securityVersion').u8(event.slot, 'slot').u32(event.resumedAtChunk, 'resumedAtChunk');
      break;
    case 'update-committed':
      w.u32(event.imageVersion, 'imageVersion').u32(event.securityVersion, 'securityVersion').u8(event.slot, 'slot');
      break;
    case 'update-rolled-back':
      w.u32(event.imageVersion, 'imageVersion').token(event.reason, 'reason');
      break;
    case 'update-refused':
    case 'rollback-impossible':
      w.optionalU32(event.imageVersion, 'imageVersion').token(event.reason, 'reason');
      break;
    case 'trial-started':
      w.optionalU32(event.imageVersion, 'imageVersion').u8(event.slot, 'slot');
      break;
    case 'unconfirmed-valid':
      w.u32(event.imageVersion, 'imageVersion').u8(event.slot, 'slot');
      break;
    case 'store-unreadable':
      w.token(event.store, 'store').token(event.code, 'code');
      break;
    case 'key-rotated':
      w.u8(indexOf(KEY_ROLES, event.role, 'role'), 'role').u32(event.fromVersion, 'fromVersion').u32(event.toVersion, 'toVersion');
      break;
    case 'replay-rejected':
    case 'forgery-rejected':
      w.u8(indexOf(CHANNELS, event.channel, 'channel'), 'channel').u32(event.keyId, 'keyId').u53(event.counter, 'counter');
      break;
    case 'safe-mode-entered':
    case 'safe-mode-left':
    case 'revocation-refused':
      w.token(event.reason, 'reason');
      break;
    case 'command-revoked':
      w.u32(event.keyId, 'keyId').u53(event.counter, 'counter');
      break;
    case 'revocation-accepted':
      w.u32(event.number, 'number').u32(event.entries, 'entries');
      break;
    case 'records-dropped':
      w.u8(indexOf(STORES, event.store, 'store'), 'store').u32(event.count, 'count').u32(event.total, 'total');
      break;
    case 'watchdog-reset':
      w.token(event.reason, 'reason').u32(event.resets, 'resets');
      break;
    case 'clock-jump':
      w.i53(event.deltaMs, 'deltaMs').u53(event.wallMs, 'wallMs');
      break;
    case 'console-unlocked':
      w.u32(event.keyId, 'keyId').u53(event.counter, 'counter');
      break;
    case 'dropped-unacknowledged':
      w.u32(event.blockSeq, 'blockSeq').optionalU32(event.count, 'count').u53(event.firstCounter, 'firstCounter').u53(event.lastCounter, 'lastCounter');
      if (event.firstCounter > event.lastCounter) throw new RangeError(`firstCounter ${event.firstCounter} is above lastCounter ${event.lastCounter}`);
      break;
    case 'console-refused':
      w.token(event.op, 'op').token(event.reason, 'reason');
      break;
    case 'console-command':
      w.token(event.op, 'op');
      break;
    default:
      throw new RangeError(`unknown audit event kind ${String((event as { kind: unknown }).kind)}`);
  }
  return { code, body: w.bytes.slice(0, w.length) };
}

// ---------------------------------------------------------------- reader

class BodyReader {
  at = 0;
  constructor(private readonly bytes: Uint8Array) {}

  u8(): number {
    this.need(1);
    return this.bytes[this.at++];
  }

  u32(): number {
    this.need(4);
    const b = this.bytes;
    const v = (b[this.at] | (b[this.at + 1] << 8) | (b[this.at + 2] << 16)) + b[this.at + 3] * 0x100_0000;
    this.at += 4;
    return v;
  }

  u53(field: string): number {
    const low = this.u32();
    const high = this.u32();
    if (high > MAX_HIGH) throw new AuditDecodeError('bad-value', `${field} exceeds 2^53 - 1`);
    return high * TWO_TO_32 + low;
  }

  i53(field: string): number {
    const low = this.u32();
    const high = this.u32();
    const negative = high >= 0x8000_0000;
    const magnitudeHigh = negative ? high - 0x8000_0000 : high;
    if (magnitudeHigh > MAX_HIGH) throw new AuditDecodeError('bad-value', `${field} exceeds 2^53 - 1 in magnitude`);
    const magnitude = magnitudeHigh * TWO_TO_32 + low;
    if (negative && magnitude === 0) throw new AuditDecodeError('bad-value', `${field} is a negative zero`);
    return negative ? -magnitude : magnitude;
  }

  optionalU32(): number | null {
    const v = this.u32();
    return v === AUDIT_UNKNOWN_U32 ? null : v;
  }

  token(field: string): string {
    const length = this.u8();
    if (length < 1 || length > AUDIT_MAX_TOKEN) throw new AuditDecodeError('bad-value', `${field} length ${length} is outside 1..${AUDIT_MAX_TOKEN}`);
    this.need(length);
    let text = '';
    for (let i = 0; i < length; i++) {
      const c = this.bytes[this.at++];
      if (!isTokenChar(c)) throw new AuditDecodeError('bad-value', `${field} holds byte 0x${c.toString(16)}, not a token character`);
      text += String.fromCharCode(c);
    }
    return text;
  }

  pick<T>(list: readonly T[], field: string): T {
    const code = this.u8();
    if (code >= list.length) throw new AuditDecodeError('bad-value', `${field} code ${code} is unknown`);
    return list[code];
  }

  end(): void {
    if (this.at !== this.bytes.length) throw new AuditDecodeError('trailing-bytes', `${this.bytes.length - this.at} bytes after the event body`);
  }

  private need(n: number): void {
    if (this.at + n > this.bytes.length) throw new AuditDecodeError('truncated', `event body ends at byte ${this.bytes.length}, needs ${this.at + n}`);
  }
}

/** Decode a body of kind `code`; throws AuditDecodeError for anything that is not exactly one valid event. */
export function decodeAuditEvent(code: number, body: Uint8Array): AuditEvent {
  const kind = auditKindOf(code);
  if (kind === undefined) throw new AuditDecodeError('unknown-kind', `kind code 0x${(code & 0xff).toString(16)} is not an audit event`);
  if (body.length > AUDIT_MAX_BODY) throw new AuditDecodeError('bad-value', `body of ${body.length} bytes exceeds ${AUDIT_MAX_BODY}`);
  const r = new BodyReader(body);
  let event: AuditEvent;
  switch (kind) {
    case 'update-staged':
      event = { kind, imageVersion: r.u32(), securityVersion: r.u32(), slot: r.u8(), resumedAtChunk: r.u32() };
      break;
    case 'update-committed':
      event = { kind, imageVersion: r.u32(), securityVersion: r.u32(), slot: r.u8() };
      break;
    case 'update-rolled-back':
      event = { kind, imageVersion: r.u32(), reason: r.token('reason') };
      break;
    case 'update-refused':
    case 'rollback-impossible':
      event = { kind, imageVersion: r.optionalU32(), reason: r.token('reason') };
      break;
    case 'trial-started':
      event = { kind, imageVersion: r.optionalU32(), slot: r.u8() };
      break;
    case 'unconfirmed-valid':
      event = { kind, imageVersion: r.u32(), slot: r.u8() };
      break;
    case 'store-unreadable':
      event = { kind, store: r.token('store'), code: r.token('code') };
      break;
    case 'key-rotated':
      event = { kind, role: r.pick(KEY_ROLES, 'role'), fromVersion: r.u32(), toVersion: r.u32() };
      break;
    case 'replay-rejected':
    case 'forgery-rejected':
      event = { kind, channel: r.pick(CHANNELS, 'channel'), keyId: r.u32(), counter: r.u53('counter') };
      break;
    case 'safe-mode-entered':
    case 'safe-mode-left':
    case 'revocation-refused':
      event = { kind, reason: r.token('reason') };
      break;
    case 'command-revoked':
      event = { kind, keyId: r.u32(), counter: r.u53('counter') };
      break;
    case 'revocation-accepted':
      event = { kind, number: r.u32(), entries: r.u32() };
      break;
    case 'records-dropped':
      event = { kind, store: r.pick(STORES, 'store'), count: r.u32(), total: r.u32() };
      break;
    case 'watchdog-reset':
      event = { kind, reason: r.token('reason'), resets: r.u32() };
      break;
    case 'clock-jump':
      event = { kind, deltaMs: r.i53('deltaMs'), wallMs: r.u53('wallMs') };
      break;
    case 'console-unlocked':
      event = { kind, keyId: r.u32(), counter: r.u53('counter') };
      break;
    case 'dropped-unacknowledged': {
      const blockSeq = r.u32();
      const count = r.optionalU32();
      const firstCounter = r.u53('firstCounter');
      const lastCounter = r.u53('lastCounter');
      if (firstCounter > lastCounter) throw new AuditDecodeError('bad-value', `firstCounter ${firstCounter} is above lastCounter ${lastCounter}`);
      event = { kind, blockSeq, count, firstCounter, lastCounter };
      break;
    }
    case 'console-refused':
      event = { kind, op: r.token('op'), reason: r.token('reason') };
      break;
    case 'console-command':
      event = { kind, op: r.token('op') };
      break;
  }
  r.end();
  return event;
}
