/**
 * IngestStore on PGlite (PostgreSQL 17 compiled to WASM, no server, no
 * native build): the default store of `holdfast ingest`. Every statement
 * is plain PostgreSQL (unnest arrays for batches, ON CONFLICT upserts,
 * version-checked UPDATEs), so a PostgreSQL server store runs the same SQL.
 *
 * Layout of `--db <dir>`: `<dir>/pg` (the PGlite data directory) and
 * `<dir>/lock` (the pid of the process that holds it; ./lock.ts).
 *
 * Durability (docs/spec/ingest.md, "What each failure does"): PGlite
 * writes through Emscripten's NODEFS, which has no fsync: a COMMIT has
 * reached the operating system when `commit` resolves, so it survives
 * SIGKILL of the ingest (tested), but not necessarily a power loss or an
 * OS crash. A PostgreSQL server with fsync on closes that gap.
 *
 * Host tool (Node).
 */
import { PGlite } from '@electric-sql/pglite';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { INGEST_STORE_FORMAT, recordColumns, StoreConflictError, type Batch, type ColumnBatch, type IngestStore, type LoadedState, type RefusalCount } from './store.ts';
import {
  byteaArrayLiteral, formatRowMissing, INSERT_FORMAT, INSERT_RECORDS, INSERT_SENDERS, loadedState, num, recordColumnParams, SCHEMA, SELECT_FORMAT, SELECT_RECORD_KEYS,
  SELECT_RECORDS, SELECT_REFUSALS, SELECT_SENDERS, senderColumns, senderUpdateColumns, UPDATE_SENDERS, UPSERT_REFUSALS, type PayloadList,
} from './sql.ts';

export { SCHEMA };

export class PgliteStore implements IngestStore {
  private constructor(private readonly db: PGlite) {}

  /** Open (creating if needed) the store in `<dir>/pg`. */
  static async open(dir: string): Promise<PgliteStore> {
    mkdirSync(join(dir, 'pg'), { recursive: true });
    const db = await PGlite.create(join(dir, 'pg'));
    try {
      await db.transaction(async (tx) => {
        for (const statement of SCHEMA) await tx.exec(statement);
        if (formatRowMissing((await tx.query<{ value: string }>(SELECT_FORMAT)).rows)) await tx.query(INSERT_FORMAT, [String(INGEST_STORE_FORMAT)]);
      });
    } catch (error) {
      await db.close().catch(() => undefined);
      throw error;
    }
    return new PgliteStore(db);
  }

  async load(): Promise<LoadedState> {
    const senders = await this.db.query<Record<string, unknown>>(SELECT_SENDERS);
    const refusals = await this.db.query<Record<string, unknown>>(SELECT_REFUSALS);
    return loadedState(senders.rows, refusals.rows);
  }

  async commit(batch: Batch): Promise<void> {
    await this.commitColumns({ records: recordColumns(batch.records), senders: batch.senders, refusals: batch.refusals });
  }

  /** `commit` with the records as columns (the worker's form, ./store-worker.ts). */
  async commitColumns(batch: ColumnBatch): Promise<void> {
    await this.db.transaction(async (tx) => {
      // PGlite's own bytea serializer spells each byte as its own string; one hex pass over the batch instead (BYTEA_ARRAYS).
      if (batch.records.count > 0) await tx.query(INSERT_RECORDS, recordColumnParams(batch.records), BYTEA_ARRAYS);
      const fresh = batch.senders.filter((s) => s.version === 0);
      const known = batch.senders.filter((s) => s.version !== 0);
      if (fresh.length > 0) await tx.query(INSERT_SENDERS, senderColumns(fresh), BYTEA_ARRAYS);
      if (known.length > 0) {
        const updated = await tx.query(UPDATE_SENDERS, senderUpdateColumns(known), BYTEA_ARRAYS);
        if (updated.affectedRows !== known.length) {
          throw new StoreConflictError(`${known.length - (updated.affectedRows ?? 0)} sender window(s) changed since they were read (another writer?)`);
        }
      }
      const f = batch.refusals;
      if (f.length > 0) await tx.query(UPSERT_REFUSALS, [f.map((x) => x.device), f.map((x) => x.reason), f.map((x) => x.count)]);
    });
  }

  async recordKeys(): Promise<{ device: string; keyId: number; counter: number }[]> {
    const rows = await this.db.query<Record<string, unknown>>(SELECT_RECORD_KEYS);
    return rows.rows.map((r) => ({ device: String(r.device), keyId: num(r.key_id), counter: num(r.counter) }));
  }

  /** Payloads of records, for tests. */
  async records(): Promise<{ device: string; keyId: number; counter: number; payload: Uint8Array; arrivedAt: Date }[]> {
    const rows = await this.db.query<Record<string, unknown>>(SELECT_RECORDS);
    return rows.rows.map((r) => ({ device: String(r.device), keyId: num(r.key_id), counter: num(r.counter), payload: new Uint8Array(r.payload as Uint8Array), arrivedAt: new Date(r.arrived_at as string) }));
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}

/** PostgreSQL's type OID of bytea[] (pg_type.h: _bytea). */
const BYTEA_ARRAY_OID = 1001;

/** Query options: bytea[] parameters through byteaArrayLiteral (./sql.ts). */
const BYTEA_ARRAYS = { serializers: { [BYTEA_ARRAY_OID]: (value: unknown) => byteaArrayLiteral(value as PayloadList | readonly Uint8Array[]) } };

export type { RefusalCount };
