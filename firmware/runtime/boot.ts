/**
 * The boot sequence's vocabulary (docs/spec/boot-sequence.md): the stages
 * in order, the partitions by label, every stage failure as a typed code
 * with its bit in the health record and whether it sends the device to
 * safe mode, the audit key, and the mapping of component events (update
 * agent, command processor) onto audit events. main.ts runs the stages.
 */
import { setErrorName } from '../base/error-name.ts';
import type { StorageErrorCode } from '../base/storage-error.ts';
import type { Crypto } from '../hal/crypto.ts';
import { hkdfExpand, hkdfExtract, keyInfo, ENVELOPE_HKDF_SALT } from '../security/envelope-keys.ts';
import type { AuditEvent } from '../storage/audit-log.ts';
import type { UpdateAuditEvent } from '../update/audit.ts';
import type { SafeModeEntryCause } from './safe-mode.ts';

/** The stages, in the order they run (docs/spec/boot-sequence.md, "Stages"). */
export const BOOT_STAGES = Object.freeze(['reset-reason', 'storage', 'boot-slot', 'policy', 'connect', 'drain', 'commands'] as const);
export type BootStage = (typeof BOOT_STAGES)[number];

/** Partition labels the runtime asks the HAL for. */
export const PARTITION_LABELS = Object.freeze({
  counter: 'hf_counter',
  outbox: 'hf_outbox',
  audit: 'hf_audit',
  replay: 'hf_replay',
  journal: 'hf_journal',
  trust: 'hf_trust',
  floor: 'hf_floor',
  safeMode: 'hf_safemode',
  otadata: 'otadata',
  ota0: 'ota_0',
  ota1: 'ota_1',
  progress: 'hf_progress',
  revocation: 'hf_revoke',
  keys: 'hf_keys',
});
export type PartitionKey = keyof typeof PARTITION_LABELS;

/**
 * A stage failure: its code (stable; the bit in the health record is its
 * index in BOOT_FAILURES), the stage, and what it does to the mode.
 */
export interface BootFailureRow {
  readonly code: BootFailureCode;
  readonly stage: BootStage;
  /** The safe-mode cause it enters, or undefined when it does not. */
  readonly safeMode: SafeModeEntryCause | undefined;
  /** The store token of its `store-unreadable` audit event. */
  readonly store: string;
}

export type BootFailureCode =
  | 'counter-unreadable'
  | 'outbox-unreadable'
  | 'outbox-damaged'
  | 'audit-unreadable'
  | 'audit-damaged'
  | 'trust-unavailable'
  | 'floor-unreadable'
  | 'replay-unreadable'
  | 'journal-unreadable'
  | 'safe-mode-unreadable'
  | 'partition-missing'
  | 'update-blocked'
  | 'rollback-impossible'
  | 'link-unavailable'
  | 'provisioning-unreadable'
  | 'revocation-unreadable'
  | 'keys-unreadable';

function row(code: BootFailureCode, stage: BootStage, safeMode: SafeModeEntryCause | undefined, store: string): BootFailureRow {
  return Object.freeze({ code, stage, safeMode, store });
}

/** The failure table; the order is permanent (index = health-record bit). */
export const BOOT_FAILURES: readonly BootFailureRow[] = Object.freeze([
  row('counter-unreadable', 'storage', 'storage', 'counter'),
  row('outbox-unreadable', 'storage', 'storage', 'outbox'),
  row('outbox-damaged', 'storage', 'storage', 'outbox'),
  row('audit-unreadable', 'storage', 'storage', 'audit'),
  row('audit-damaged', 'storage', 'storage', 'audit'),
  row('trust-unavailable', 'policy', 'policy', 'trust'),
  row('floor-unreadable', 'policy', 'policy', 'floor'),
  row('replay-unreadable', 'storage', 'storage', 'replay'),
  row('journal-unreadable', 'storage', 'storage', 'journal'),
  row('safe-mode-unreadable', 'storage', undefined, 'safe-mode'),
  row('partition-missing', 'storage', 'storage', 'partition'),
  row('update-blocked', 'boot-slot', undefined, 'update'),
  row('rollback-impossible', 'boot-slot', 'no-rollback', 'update'),
  row('link-unavailable', 'connect', undefined, 'link'),
  row('provisioning-unreadable', 'storage', 'storage', 'provisioning'),
  row('revocation-unreadable', 'storage', 'storage', 'revocation'),
  row('keys-unreadable', 'storage', 'storage', 'keys'),
]);

export function failureRow(code: BootFailureCode): BootFailureRow {
  for (const r of BOOT_FAILURES) if (r.code === code) return r;
  throw new RangeError(`unknown boot failure ${String(code)}`);
}

/** Bit of `code` in the health record's bootFailures field. */
export function failureBit(code: BootFailureCode): number {
  return 1 << BOOT_FAILURES.indexOf(failureRow(code));
}

/** One failure as observed this boot. */
export interface BootFailure {
  readonly code: BootFailureCode;
  readonly stage: BootStage;
  /** The store's StorageError code, or another short reason ('not-provisioned', 'damage-threshold', ...). */
  readonly cause: string;
  readonly message: string;
}

/** A typed boot error: what `Runtime.status().failures` lists, thrown only by `requireStage`-style callers. */
export class BootStageError extends Error {
  constructor(readonly code: BootFailureCode, readonly stage: BootStage, readonly reason: string, message: string) {
    super(message);
    setErrorName(this, 'BootStageError');
  }
}

export type { StorageErrorCode };

/** HKDF label of the device's audit key (docs/spec/audit-log.md, "Key"). */
export const AUDIT_KEY_LABEL = 'holdfast/v1/audit/hmac-sha256';

/**
 * The audit key: HKDF-SHA-256 from the device secret with the envelope's
 * salt, info = AUDIT_KEY_LABEL || 0x00 || device id || key id (as every
 * envelope key, envelope-keys.ts), 32 bytes.
 */
export function deriveAuditKey(crypto: Crypto, deviceSecret: Uint8Array, deviceId: Uint8Array, keyId: number): Uint8Array {
  const salt = new Uint8Array(ENVELOPE_HKDF_SALT.length);
  for (let i = 0; i < salt.length; i++) salt[i] = ENVELOPE_HKDF_SALT.charCodeAt(i) & 0x7f;
  const prk = hkdfExtract(crypto, salt, deviceSecret);
  const key = hkdfExpand(crypto, prk, keyInfo(AUDIT_KEY_LABEL, deviceId, keyId), 32);
  prk.fill(0);
  return key;
}

/** A reason as an audit token: lower case [a-z0-9._-], 1..24 bytes ('unknown' when nothing is left). */
export function auditToken(text: string): string {
  let out = '';
  for (let i = 0; i < text.length && out.length < 24; i++) {
    const c = text.charAt(i).toLowerCase();
    const ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c === '.' || c === '_' || c === '-';
    if (ok) out += c;
    else if (out.length > 0 && out.charAt(out.length - 1) !== '-') out += '-';
  }
  while (out.endsWith('-')) out = out.slice(0, -1);
  return out.length === 0 ? 'unknown' : out;
}

/** The update agent's events as audit events (docs/spec/audit-log.md, "From the update agent"); messages are not stored. */
export function auditOfUpdate(event: UpdateAuditEvent): AuditEvent {
  switch (event.kind) {
    case 'update-staged':
      return { kind: 'update-staged', imageVersion: event.imageVersion, securityVersion: event.securityVersion, slot: event.slot, resumedAtChunk: event.resumedAtChunk };
    case 'update-committed':
      return { kind: 'update-committed', imageVersion: event.imageVersion, securityVersion: event.securityVersion, slot: event.slot };
    case 'update-rolled-back':
      return { kind: 'update-rolled-back', imageVersion: event.imageVersion, reason: auditToken(event.reason) };
    case 'update-rejected':
    case 'root-rejected':
      return { kind: 'update-refused', imageVersion: null, reason: auditToken(event.reason) };
    case 'trial-started':
      return { kind: 'trial-started', imageVersion: event.imageVersion ?? null, slot: event.slot };
    case 'rollback-impossible':
      return { kind: 'rollback-impossible', imageVersion: event.imageVersion ?? null, reason: auditToken(event.reason) };
    case 'unconfirmed-valid':
      return { kind: 'unconfirmed-valid', imageVersion: event.imageVersion, slot: event.slot };
    case 'store-unreadable':
      return { kind: 'store-unreadable', store: auditToken(event.store), code: auditToken(event.code) };
    case 'root-rotated':
      return { kind: 'key-rotated', role: 'root', fromVersion: event.fromVersion, toVersion: event.toVersion };
    default:
      throw new RangeError(`unknown update event ${String((event as { kind: unknown }).kind)}`);
  }
}
