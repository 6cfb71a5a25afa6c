/**
 * The ingest's store, behind one small interface (docs/spec/ingest.md,
 * "Store"): the records accepted, each sender's exact window and report
 * counters, and the refusals per claimed device. One `commit` is one
 * transaction: records + windows + counters together, or nothing. The
 * default implementation is PGlite (store-pglite.ts); its SQL is
 * PostgreSQL's, so a PostgreSQL server implementation runs the same
 * statements.
 *
 * Host tool (Node).
 */
import type { Delivery } from './decide.ts';
import type { WindowState } from './window.ts';

/** Format of the store's tables (ingest_meta 'format'); separate from the package version. */
export const INGEST_STORE_FORMAT = 1;

/** One accepted record. */
export interface StoredRecord {
  /** Device id, 16 lowercase hex digits. */
  readonly device: string;
  readonly keyId: number;
  readonly counter: number;
  /** Plaintext payload (decrypted for AEAD suites). */
  readonly payload: Uint8Array;
  /** Wall-clock arrival time at the ingest, milliseconds since the epoch: metadata only, never used to decide. */
  readonly arrivedAt: number;
}

/**
 * A batch's records column by column: the form that crosses to the store
 * worker (./store-worker.ts) as transferred buffers instead of one cloned
 * object per record, and the form the SQL takes its arrays from.
 */
export interface RecordColumns {
  readonly count: number;
  /** Distinct device ids of the batch; `device[i]` indexes it. */
  readonly devices: readonly string[];
  readonly device: Uint32Array;
  readonly keyId: Float64Array;
  readonly counter: Float64Array;
  /** Milliseconds since the epoch. */
  readonly arrivedAt: Float64Array;
  /** Record i's payload is `payloads[payloadEnd[i - 1] (0 for i = 0) .. payloadEnd[i])`. */
  readonly payloadEnd: Uint32Array;
  readonly payloads: Uint8Array;
}

export function recordColumns(records: readonly StoredRecord[]): RecordColumns {
  const count = records.length;
  const devices: string[] = [];
  const index = new Map<string, number>();
  const device = new Uint32Array(count);
  const keyId = new Float64Array(count);
  const counter = new Float64Array(count);
  const arrivedAt = new Float64Array(count);
  const payloadEnd = new Uint32Array(count);
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    const r = records[i];
    let d = index.get(r.device);
    if (d === undefined) {
      d = devices.length;
      devices.push(r.device);
      index.set(r.device, d);
    }
    device[i] = d;
    keyId[i] = r.keyId;
    counter[i] = r.counter;
    arrivedAt[i] = r.arrivedAt;
    bytes += r.payload.length;
    payloadEnd[i] = bytes;
  }
  const payloads = new Uint8Array(bytes);
  for (let i = 0, at = 0; i < count; i++) {
    payloads.set(records[i].payload, at);
    at = payloadEnd[i];
  }
  return { count, devices, device, keyId, counter, arrivedAt, payloadEnd, payloads };
}

/** The buffers of `columns`, to transfer (not copy) with postMessage. */
export function columnBuffers(columns: RecordColumns): ArrayBuffer[] {
  return [columns.device, columns.keyId, columns.counter, columns.arrivedAt, columns.payloadEnd, columns.payloads].map((a) => a.buffer as ArrayBuffer);
}

/** One sender's (device, key id) persisted state. */
export interface SenderState {
  readonly device: string;
  readonly keyId: number;
  readonly window: WindowState;
  /** Authentic deliveries of a counter already accepted (QoS 1 redeliveries, recent replays). */
  readonly duplicates: number;
  /** Authentic deliveries at or below the window (stale: old replays, or records delayed W or more values). */
  readonly replays: number;
  /** Bumped by every commit that changes the sender; a commit names the version it read (0: a new sender). */
  readonly version: number;
}

/** Refusals before authentication, per claimed device (the topic's device level; '' when the topic names none). */
export interface RefusalCount {
  readonly device: string;
  /** EnvelopeError code (bad-tag, wrong-device, unknown-key, ...) or 'bad-topic'. */
  readonly reason: string;
  readonly count: number;
}

export interface Batch {
  readonly records: readonly StoredRecord[];
  /** Senders this batch changed, with their new state and the version they were read at. */
  readonly senders: readonly SenderState[];
  /** Refusal counts to add. */
  readonly refusals: readonly RefusalCount[];
}

/** A Batch with its records as columns (what the worker receives). */
export interface ColumnBatch {
  readonly records: RecordColumns;
  /** Senders this batch changed, with their new state and the version they were read at. */
  readonly senders: readonly SenderState[];
  /** Refusal counts to add. */
  readonly refusals: readonly RefusalCount[];
}

export interface LoadedState {
  readonly senders: readonly SenderState[];
  readonly refusals: readonly RefusalCount[];
  /** Rows read to load it: the cost of a restart (records are never read). */
  readonly rowsRead: number;
}

export class StoreConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreConflictError';
  }
}

export interface IngestStore {
  /** Every sender's window and counters, and the refusal counts. */
  load(): Promise<LoadedState>;
  /**
   * One transaction: insert the records (primary key device, key id,
   * counter: a second insert of one fails the whole batch), write each
   * sender's new state if its version is still the one given (else
   * StoreConflictError, nothing written), add the refusal counts.
   * Resolves only once committed.
   */
  commit(batch: Batch): Promise<void>;
  /** (device, key id, counter) of every record, for checks and tests (reads every record). */
  recordKeys(): Promise<{ device: string; keyId: number; counter: number }[]>;
  close(): Promise<void>;
}

/** A batch for a store that decides itself (SharedIngestStore): authentic deliveries, not yet judged, and refusals. */
export interface DeliveryBatch {
  readonly deliveries: readonly Delivery[];
  readonly refusals: readonly RefusalCount[];
  /**
   * Rotated devices of the batch (the inventory lists several key ids): their key ids ascending and the
   * inventory's untilCounter per key id. The store locks each such device and refuses a delivery under a retired
   * key at or above its bound (`retired-key`, docs/spec/key-rotation.md).
   */
  readonly rotated?: readonly RotatedDevice[];
}

export interface RotatedDevice {
  readonly device: string;
  readonly keyIds: readonly number[];
  readonly untilCounters: readonly (number | undefined)[];
}

/** What a SharedIngestStore committed for one batch. */
export interface Decision {
  readonly accepted: number;
  /** Deliveries refused under a retired key at or above its bound (counted as refusals `retired-key`). */
  readonly retired?: number;
  readonly duplicates: number;
  readonly replays: number;
  /** The state of every sender the batch touched, as this transaction committed it (the receipts are built from it). */
  readonly senders: readonly SenderState[];
  /** Attempts the transaction took (1 unless a deadlock or serialization failure made it run again). */
  readonly attempts: number;
}

/**
 * A store that several ingest workers share (store-postgres.ts): the
 * worker keeps no window; `decide` reads and locks the batch's senders
 * inside one transaction, judges the deliveries against what the database
 * holds (./decide.ts), writes records, windows and refusal counts, and
 * commits. Resolves only once committed; rejects with nothing committed.
 */
export interface SharedIngestStore extends IngestStore {
  readonly shared: true;
  decide(batch: DeliveryBatch): Promise<Decision>;
}

export function isShared(store: IngestStore): store is SharedIngestStore {
  return (store as Partial<SharedIngestStore>).shared === true;
}
