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
  /** Authentic deliveries under a retired key at or above its bound (docs/spec/key-rotation.md), per device: refused `retired-key`. */
  readonly retired: ReadonlyMap<string, number>;
  /** Every sender a delivery touched, in first-touch order (their windows and counters are moved in place). */
  readonly touched: S[];
  readonly duplicates: number;
  readonly replays: number;
}

/**
 * The key bound of a rotated device (docs/spec/key-rotation.md, "Ingest"): a
 * record under key id k is accepted only below min(the inventory's
 * untilCounter of k, the first counter accepted under any newer key id of
 * the device). `keyIds` are the device's key ids in the inventory,
 * ascending; `windowOf` gives a newer key's window as the judge holds it
 * now (moved by this batch's deliveries already judged), or undefined.
 */
export interface KeyBounds {
  keyIdsOf(device: string): readonly number[] | undefined;
  untilCounterOf(device: string, keyId: number): number | undefined;
  firstOf(device: string, keyId: number): number | undefined;
}

/** The bound of (device, keyId): undefined when the key is not retired (or not known to be). */
export function keyBound(bounds: KeyBounds, device: string, keyId: number): number | undefined {
  const ids = bounds.keyIdsOf(device);
  if (ids === undefined) return undefined;
  let bound = bounds.untilCounterOf(device, keyId);
  for (const newer of ids) {
    if (newer <= keyId) continue;
    const first = bounds.firstOf(device, newer);
    if (first !== undefined && first > 0 && (bound === undefined || first < bound)) bound = first;
  }
  return bound;
}

/**
 * `senderOf` gives (or creates) the sender of a delivery; windows and counters are moved in place. With `bounds`,
 * a delivery under a retired key at or above its bound is refused (`retired`), its window untouched.
 */
export function judge<S extends JudgedSender>(deliveries: readonly Delivery[], senderOf: (device: string, keyId: number) => S, bounds?: KeyBounds): Judgement<S> {
  const records: StoredRecord[] = [];
  const touched = new Set<S>();
  const retired = new Map<string, number>();
  let duplicates = 0;
  let replays = 0;
  for (const d of deliveries) {
    if (bounds !== undefined) {
      const bound = keyBound(bounds, d.device, d.keyId);
      if (bound !== undefined && d.counter >= bound) {
        retired.set(d.device, (retired.get(d.device) ?? 0) + 1);
        continue;
      }
    }
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
  return { records, retired, touched: [...touched], duplicates, replays };
}
