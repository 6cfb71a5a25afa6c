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
  /** Wall-clock arrival time at the ingest: metadata only, never used to decide. */
  readonly arrivedAt: Date;
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
