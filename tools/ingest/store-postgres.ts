/**
 * IngestStore on a PostgreSQL server (`holdfast ingest run --db
 * postgres://…`), through node-postgres: the same schema and statements as
 * the embedded store (./sql.ts), and what a single process cannot need:
 * several ingest workers writing one database (docs/spec/ingest.md,
 * "Several workers"; docs/design/scale-out.md).
 *
 * `decide(batch)` is the workers' path: the worker keeps no window in
 * memory. One transaction per batch:
 *   1. make sure a row exists for every sender of the batch (ENSURE_SENDERS:
 *      an empty window at version 0; skipped for senders this process has
 *      seen committed, since rows are never deleted);
 *   2. read their windows as committed, without a lock (READ_SENDERS), and
 *      judge the deliveries against them (./decide.ts, the same code as the
 *      embedded ingest): the records found fresh are inserted now, outside
 *      the window locks (plain INSERT: a record another writer inserted,
 *      committed or not, makes this one wait for it and then fail with a
 *      unique violation, 23505: the transaction runs again and finds it a
 *      duplicate);
 *   3. read and row-lock the windows, in (device, key id) order
 *      (LOCK_SENDERS: SELECT … FOR UPDATE): a worker whose batch shares a
 *      sender waits here until the holder commits, then reads the committed
 *      window;
 *   4. judge the deliveries again, against the locked windows: this is the
 *      decision. Windows only gain counters, so what is fresh now was fresh
 *      in step 2 and is inserted; what step 2 inserted and is no longer
 *      fresh (another writer moved H by W or more meanwhile: stale) is
 *      deleted (DELETE_RECORDS);
 *   5. write the windows (version-checked UPDATE, version + 1), add
 *      refusals, COMMIT; only then return the windows as committed
 *      (receipts).
 * Why insert before the lock: the record INSERT is most of a batch's
 * database time, and under round-robin dispatch every batch locks nearly
 * every window, so what happens under the locks is serial across workers
 * (docs/design/scale-out.md).
 * A deadlock (40P01), serialization failure (40001) or unique violation
 * (23505, step 2) rolls back and runs the transaction again from step 1;
 * any other error rolls back and rejects (the worker then stops without
 * acknowledging: the broker redelivers, and the database decides again).
 *
 * Durability: a COMMIT returns once the server wrote its WAL (fsync on,
 * synchronous_commit on: PostgreSQL's defaults), so an accepted record
 * survives a crash of the ingest, of the server and of its host.
 *
 * Host tool (Node).
 */
import pg from 'pg';
import { judge, type JudgedSender, type KeyBounds } from './decide.ts';
import {
  DEVICE_LOCK, byteaArrayLiteral, DELETE_RECORDS, ENSURE_SENDERS, formatRowMissing, READ_SENDERS, INSERT_FORMAT, INSERT_RECORDS, INSERT_SENDERS, loadedState, LOCK_SENDERS, num, recordColumnParams, SCHEMA, SCHEMA_LOCK,
  SELECT_FORMAT, SELECT_RECORD_KEYS, SELECT_RECORDS, SELECT_REFUSALS, SELECT_SENDERS, senderColumns, senderFromRow, senderUpdateColumns,
  UPDATE_SENDERS, UPSERT_REFUSALS,
} from './sql.ts';
import {
  INGEST_STORE_FORMAT, recordColumns, StoreConflictError, type Batch, type Decision, type DeliveryBatch, type LoadedState, type RecordColumns,
  type RefusalCount, type SenderState, type SharedIngestStore,
} from './store.ts';
import { IngestWindow, WINDOW_BITMAP_BYTES } from './window.ts';

/** Whether `db` names a PostgreSQL server (postgres:// or postgresql://) rather than a folder. */
export function isPostgresUrl(db: string): boolean {
  return /^postgres(ql)?:\/\//i.test(db);
}

/** `url` without its password, for logs and errors. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://(unparsable)';
  }
}

/** SQLSTATEs after which the whole transaction is simply run again: deadlock_detected, serialization_failure, unique_violation (only the record INSERT of `decide` can raise it: another writer has the record). */
const RETRY_CODES = new Set(['40P01', '40001', '23505']);
const MAX_ATTEMPTS = 20;
const EMPTY_BITMAP = Buffer.alloc(WINDOW_BITMAP_BYTES);

interface LockedSender extends JudgedSender {
  readonly version: number;
}

export class PostgresStore implements SharedIngestStore {
  readonly shared = true as const;
  /** Senders known to have a committed row (rows are never deleted): step 1 is skipped for them. */
  private readonly known = new Set<string>();
  private closed = false;

  private constructor(private readonly client: pg.Client) {}

  /** Connect to `url` (postgres://user[:password]@host:port/database) and create the tables if needed. */
  static async open(url: string, options: { applicationName?: string } = {}): Promise<PostgresStore> {
    const client = new pg.Client({ connectionString: url, application_name: options.applicationName ?? 'holdfast-ingest' });
    // A server that goes away mid-transaction surfaces as the pending query's rejection; this keeps the idle case from throwing unhandled.
    client.on('error', () => undefined);
    await client.connect();
    try {
      await client.query('BEGIN');
      await client.query(SCHEMA_LOCK);
      for (const statement of SCHEMA) await client.query(statement);
      if (formatRowMissing((await client.query<{ value: string }>(SELECT_FORMAT)).rows)) await client.query(INSERT_FORMAT, [String(INGEST_STORE_FORMAT)]);
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      await client.end().catch(() => undefined);
      throw error;
    }
    return new PostgresStore(client);
  }

  async load(): Promise<LoadedState> {
    const senders = await this.client.query<Record<string, unknown>>(SELECT_SENDERS);
    const refusals = await this.client.query<Record<string, unknown>>(SELECT_REFUSALS);
    // Version 0 rows exist only inside a transaction that has not committed; they are never read here.
    return loadedState(senders.rows, refusals.rows);
  }

  /** The single-writer path (version-checked, as PgliteStore): for a caller that keeps the windows itself. */
  async commit(batch: Batch): Promise<void> {
    await this.transaction(async () => {
      await this.writeRecords(recordColumns(batch.records));
      const fresh = batch.senders.filter((s) => s.version === 0);
      const known = batch.senders.filter((s) => s.version !== 0);
      if (fresh.length > 0) await this.client.query(INSERT_SENDERS, byteaSenders(senderColumns(fresh)));
      if (known.length > 0) await this.updateSenders(known);
      await this.addRefusals(batch.refusals);
    });
  }

  async decide(batch: DeliveryBatch): Promise<Decision> {
    for (let attempt = 1; ; attempt++) {
      try {
        return { ...(await this.transaction(() => this.decideOnce(batch))), attempts: attempt };
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        if (typeof code === 'string' && RETRY_CODES.has(code) && attempt < MAX_ATTEMPTS) continue;
        throw error;
      }
    }
  }

  private async decideOnce(batch: DeliveryBatch): Promise<Omit<Decision, 'attempts'>> {
    const keys = new Map<string, { device: string; keyId: number }>();
    for (const d of batch.deliveries) {
      const key = `${d.device}/${d.keyId}`;
      if (!keys.has(key)) keys.set(key, { device: d.device, keyId: d.keyId });
    }
    const all = [...keys.values()];
    const keyColumns = [all.map((k) => k.device), all.map((k) => k.keyId)];
    const windows = async (statement: string): Promise<Map<string, LockedSender>> => {
      const out = new Map<string, LockedSender>();
      if (all.length === 0) return out;
      for (const row of (await this.client.query<Record<string, unknown>>(statement, keyColumns)).rows) {
        const s = senderFromRow(row);
        // Version 0: the empty window ENSURE_SENDERS just made in this transaction (a writer that makes one updates it before committing).
        out.set(`${s.device}/${s.keyId}`, { device: s.device, keyId: s.keyId, window: s.version === 0 ? new IngestWindow() : new IngestWindow(s.window), duplicates: s.duplicates, replays: s.replays, version: s.version });
      }
      if (out.size !== keys.size) throw new Error(`internal: ${keys.size - out.size} sender row(s) missing after ENSURE_SENDERS`);
      return out;
    };
    const unknown = all.filter((k) => !this.known.has(`${k.device}/${k.keyId}`));
    if (unknown.length > 0) await this.client.query(ENSURE_SENDERS, [unknown.map((k) => k.device), unknown.map((k) => k.keyId), EMPTY_BITMAP]);
    // The key bound of rotated devices (docs/spec/key-rotation.md): one lock per such device, in device order, before
    // any window is read, so the first counter of a newer key another worker is committing is seen before an old-key record is judged.
    const rotated = [...(batch.rotated ?? [])].sort((a, b) => (a.device < b.device ? -1 : a.device > b.device ? 1 : 0));
    for (const r of rotated) await this.client.query(DEVICE_LOCK, [r.device]);
    const rotatedKeys = rotated.flatMap((r) => r.keyIds.map((keyId) => ({ device: r.device, keyId })));
    const firsts = new Map<string, number>();
    if (rotatedKeys.length > 0) {
      for (const row of (await this.client.query<Record<string, unknown>>(READ_SENDERS, [rotatedKeys.map((k) => k.device), rotatedKeys.map((k) => k.keyId)])).rows) {
        const s = senderFromRow(row);
        if (s.version > 0) firsts.set(`${s.device}/${s.keyId}`, s.window.first);
      }
    }
    const byDevice = new Map(rotated.map((r) => [r.device, r]));
    const boundsOver = (live: Map<string, LockedSender>): KeyBounds => ({
      keyIdsOf: (device) => byDevice.get(device)?.keyIds,
      untilCounterOf: (device, keyId) => {
        const r = byDevice.get(device);
        return r === undefined ? undefined : r.untilCounters[r.keyIds.indexOf(keyId)];
      },
      firstOf: (device, keyId) => {
        const w = live.get(`${device}/${keyId}`)?.window.first;
        return w !== undefined && w > 0 ? w : firsts.get(`${device}/${keyId}`);
      },
    });
    // Step 2: judged against the committed windows, the fresh records go in before any window is locked.
    const unlocked = await windows(READ_SENDERS);
    const early = judge(batch.deliveries, (device, keyId) => unlocked.get(`${device}/${keyId}`) as LockedSender, boundsOver(unlocked)).records;
    await this.writeRecords(recordColumns(early));
    // Steps 3 and 4: the decision, under the locks.
    const locked = await windows(LOCK_SENDERS);
    const judged = judge(batch.deliveries, (device, keyId) => locked.get(`${device}/${keyId}`) as LockedSender, boundsOver(locked));
    const recordKey = (r: { device: string; keyId: number; counter: number }) => `${r.device}/${r.keyId}/${r.counter}`;
    const inserted = new Set(early.map(recordKey));
    const kept = new Set(judged.records.map(recordKey));
    for (const key of kept) if (!inserted.has(key)) throw new Error(`internal: ${key} is fresh under the lock but was not fresh before it (a window went back?)`);
    const stale = early.filter((r) => !kept.has(recordKey(r)));
    if (stale.length > 0) await this.client.query(DELETE_RECORDS, [stale.map((r) => r.device), stale.map((r) => r.keyId), stale.map((r) => r.counter)]);
    const senders: SenderState[] = judged.touched.map((s) => ({ device: s.device, keyId: s.keyId, window: s.window.state(), duplicates: s.duplicates, replays: s.replays, version: s.version }));
    if (senders.length > 0) await this.updateSenders(senders);
    const retiredRows = [...judged.retired.entries()].map(([device, count]) => ({ device, reason: 'retired-key', count }));
    await this.addRefusals([...batch.refusals, ...retiredRows]);
    return {
      accepted: judged.records.length,
      retired: retiredRows.reduce((n, r) => n + r.count, 0),
      duplicates: judged.duplicates,
      replays: judged.replays,
      senders: senders.map((s) => ({ ...s, version: s.version + 1 })),
    };
  }

  /** BEGIN, `body`, COMMIT; ROLLBACK when anything fails. Resolves only after COMMIT returned. */
  private async transaction<T>(body: () => Promise<T>): Promise<T> {
    if (this.closed) throw new Error('the PostgreSQL store is closed');
    await this.client.query('BEGIN');
    let result: T;
    try {
      result = await body();
      await this.client.query('COMMIT');
    } catch (error) {
      await this.client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
    this.noteKnown(result);
    return result;
  }

  private noteKnown(result: unknown): void {
    const senders = (result as { senders?: readonly SenderState[] } | undefined)?.senders;
    if (senders) for (const s of senders) this.known.add(`${s.device}/${s.keyId}`);
  }

  private async writeRecords(r: RecordColumns): Promise<void> {
    if (r.count === 0) return;
    const [device, keyId, counter, payloads, arrivedAt] = recordColumnParams(r);
    // The payloads as one bytea[] literal, hex-encoded in one pass (node-postgres would escape element by element).
    await this.client.query(INSERT_RECORDS, [device, keyId, counter, byteaArrayLiteral(payloads), arrivedAt]);
  }

  private async updateSenders(senders: readonly SenderState[]): Promise<void> {
    const updated = await this.client.query(UPDATE_SENDERS, byteaSenders(senderUpdateColumns(senders)));
    if (updated.rowCount !== senders.length) throw new StoreConflictError(`${senders.length - (updated.rowCount ?? 0)} sender window(s) changed since they were read (another writer?)`);
  }

  private async addRefusals(f: readonly RefusalCount[]): Promise<void> {
    if (f.length === 0) return;
    await this.client.query(UPSERT_REFUSALS, [f.map((x) => x.device), f.map((x) => x.reason), f.map((x) => x.count)]);
  }

  async recordKeys(): Promise<{ device: string; keyId: number; counter: number }[]> {
    const rows = await this.client.query<Record<string, unknown>>(SELECT_RECORD_KEYS);
    return rows.rows.map((r) => ({ device: String(r.device), keyId: num(r.key_id), counter: num(r.counter) }));
  }

  /** Payloads of records, for tests. */
  async records(): Promise<{ device: string; keyId: number; counter: number; payload: Uint8Array; arrivedAt: Date }[]> {
    const rows = await this.client.query<Record<string, unknown>>(SELECT_RECORDS);
    return rows.rows.map((r) => ({ device: String(r.device), keyId: num(r.key_id), counter: num(r.counter), payload: new Uint8Array(r.payload as Uint8Array), arrivedAt: new Date(r.arrived_at as string) }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.client.end();
  }
}

/** Sender parameters with the bitmap column (index 4) as one bytea[] literal. */
function byteaSenders(columns: unknown[]): unknown[] {
  const out = [...columns];
  out[4] = byteaArrayLiteral(columns[4] as Uint8Array[]);
  return out;
}
