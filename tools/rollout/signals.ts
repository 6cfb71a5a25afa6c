/**
 * Rollout signals from what the ingest accepted (docs/spec/rollout.md,
 * "Signals"): every accepted record says the device is alive (`seen`); an
 * audit entry record (type 0x03, docs/spec/health-record.md "Record
 * types") of kind `update-committed`, `update-rolled-back` or
 * `update-refused` (docs/spec/audit-log.md) is the device's own word on
 * the update, once its HMAC tag checks with the device's audit key
 * (firmware/runtime/boot.ts `deriveAuditKey`, from the device secret in the
 * inventory). An entry whose tag does not check is no signal at all, and
 * is counted.
 *
 * Time is the record's arrival at the ingest (seconds); a device's own
 * records are taken in counter order.
 *
 * Host tool (Node).
 */
import type { Crypto } from '../../firmware/hal/crypto.ts';
import { AuditDecodeError, decodeAuditEvent } from '../../firmware/storage/_audit-events.ts';
import { readEntry, tagChecks } from '../../firmware/storage/_audit-format.ts';
import { deriveAuditKey } from '../../firmware/runtime/boot.ts';
import type { RolloutSignal } from './engine.ts';

/** Record type byte of an audit entry record. */
export const AUDIT_RECORD_TYPE = 0x03;

/** A record the ingest accepted (its payload in plaintext). */
export interface AcceptedRecord {
  readonly device: string;
  readonly keyId: number;
  readonly counter: number;
  readonly payload: Uint8Array;
  /** Arrival at the ingest, milliseconds since the epoch. */
  readonly arrivedAt: number;
}

export interface SignalCounts {
  /** Audit entries whose tag did not check with the device's audit key. */
  badTags: number;
  /** Audit entry records that did not decode (damaged, newer format, unknown kind). */
  undecodable: number;
  /** Records of devices the caller has no secret for. */
  unknownDevice: number;
}

export interface SignalBatch {
  readonly signals: RolloutSignal[];
  readonly counts: SignalCounts;
  /** Per device, the highest counter among the records read. */
  readonly highest: Map<string, number>;
}

/** The device's audit keys by key id, from its secret (hex); cached per (device, key id) by the caller's map. */
export function auditKeys(crypto: Crypto, secretFor: (device: string) => string | undefined): (device: string, keyId: number) => Uint8Array | undefined {
  const cache = new Map<string, Uint8Array>();
  return (device, keyId) => {
    const k = `${device}/${keyId}`;
    let key = cache.get(k);
    if (key === undefined) {
      const secret = secretFor(device);
      if (secret === undefined) return undefined;
      key = deriveAuditKey(crypto, hexBytes(secret), hexBytes(device), keyId);
      cache.set(k, key);
    }
    return key;
  };
}

/**
 * The signals in `records` (any order): sorted by device, then counter.
 * `keyFor` gives the device's audit key for a key id (undefined: the device
 * is not known, its records are no signals).
 */
export function signalsFrom(crypto: Crypto, records: readonly AcceptedRecord[], keyFor: (device: string, keyId: number) => Uint8Array | undefined): SignalBatch {
  const counts: SignalCounts = { badTags: 0, undecodable: 0, unknownDevice: 0 };
  const signals: RolloutSignal[] = [];
  const highest = new Map<string, number>();
  const sorted = [...records].sort((a, b) => (a.device < b.device ? -1 : a.device > b.device ? 1 : a.counter - b.counter));
  for (const r of sorted) {
    highest.set(r.device, Math.max(highest.get(r.device) ?? 0, r.counter));
    const at = Math.floor(r.arrivedAt / 1000);
    const key = keyFor(r.device, r.keyId);
    if (key === undefined) {
      counts.unknownDevice++;
      continue;
    }
    if (r.payload[0] !== AUDIT_RECORD_TYPE) {
      signals.push({ kind: 'seen', device: r.device, at });
      continue;
    }
    const read = readEntry(r.payload.subarray(1), 0);
    if (read.state !== 'entry' || read.entry.bytes.length !== r.payload.length - 1) {
      counts.undecodable++;
      continue;
    }
    if (!tagChecks(crypto, key, read.entry)) {
      counts.badTags++;
      continue;
    }
    let event;
    try {
      event = decodeAuditEvent(read.entry.kind, read.entry.body);
    } catch (error) {
      if (!(error instanceof AuditDecodeError)) throw error;
      counts.undecodable++;
      continue;
    }
    if (event.kind === 'update-committed') signals.push({ kind: 'committed', device: r.device, at, imageVersion: event.imageVersion });
    else if (event.kind === 'update-rolled-back') signals.push({ kind: 'rolled-back', device: r.device, at, imageVersion: event.imageVersion, reason: event.reason });
    else if (event.kind === 'update-refused' && event.imageVersion !== null) signals.push({ kind: 'refused', device: r.device, at, imageVersion: event.imageVersion, reason: event.reason });
    else signals.push({ kind: 'seen', device: r.device, at });
  }
  return { signals, counts, highest };
}

function hexBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}
