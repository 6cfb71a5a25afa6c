/**
 * The window decision of a batch (docs/spec/ingest.md, "Window"), in one
 * place for both stores: the embedded ingest applies it to the windows it
 * keeps in memory (one writer: ingest.ts), the PostgreSQL store applies it
 * inside the transaction to the windows it has just read and row-locked
 * (several workers: store-postgres.ts, `decide`). Either way, each
 * authentic delivery is taken in arrival order and is fresh (accepted,
 * the window moves), a duplicate, or stale.
 *
 * Host tool (Node), engine-neutral.
 */
import type { StoredRecord } from './store.ts';
import type { IngestWindow } from './window.ts';

/** An authentic envelope (tag verified for the topic's device under the inventory's key), not yet judged by the window. */
export interface Delivery {
  readonly device: string;
  readonly keyId: number;
  readonly counter: number;
  /** Plaintext payload. */
  readonly payload: Uint8Array;
  /** Wall-clock arrival time at the ingest, ms since the epoch: metadata only. */
  readonly arrivedAt: number;
}

/** A sender's window and counters while a batch is judged. */
export interface JudgedSender {
  readonly device: string;
  readonly keyId: number;
  readonly window: IngestWindow;
  duplicates: number;
  replays: number;
}

export interface Judgement<S extends JudgedSender> {
  /** The fresh deliveries, in arrival order: the records to insert. */
  readonly records: StoredRecord[];
  /** Every sender a delivery touched, in first-touch order (their windows and counters are moved in place). */
  readonly touched: S[];
  readonly duplicates: number;
  readonly replays: number;
}

/** `senderOf` gives (or creates) the sender of a delivery; windows and counters are moved in place. */
export function judge<S extends JudgedSender>(deliveries: readonly Delivery[], senderOf: (device: string, keyId: number) => S): Judgement<S> {
  const records: StoredRecord[] = [];
  const touched = new Set<S>();
  let duplicates = 0;
  let replays = 0;
  for (const d of deliveries) {
    const sender = senderOf(d.device, d.keyId);
    touched.add(sender);
    const verdict = sender.window.check(d.counter);
    if (verdict === 'fresh') {
      sender.window.accept(d.counter);
      records.push({ device: d.device, keyId: d.keyId, counter: d.counter, payload: d.payload, arrivedAt: d.arrivedAt });
    } else if (verdict === 'duplicate') {
      sender.duplicates++;
      duplicates++;
    } else {
      sender.replays++;
      replays++;
    }
  }
  return { records, touched: [...touched], duplicates, replays };
}
