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
import { INGEST_STORE_FORMAT, recordColumns, StoreConflictError, type Batch, type ColumnBatch, type IngestStore, type LoadedState, type RecordColumns, type RefusalCount, type SenderState } from './store.ts';

export const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS ingest_meta (key text PRIMARY KEY, value text NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS ingest_record (
     device text NOT NULL, key_id bigint NOT NULL, counter bigint NOT NULL,
     payload bytea NOT NULL, arrived_at timestamptz NOT NULL,
     PRIMARY KEY (device, key_id, counter))`,
  `CREATE TABLE IF NOT EXISTS ingest_sender (
     device text NOT NULL, key_id bigint NOT NULL,
     first_counter bigint NOT NULL, highest bigint NOT NULL, bitmap bytea NOT NULL, accepted bigint NOT NULL,
     duplicates bigint NOT NULL, replays bigint NOT NULL, version bigint NOT NULL,
     PRIMARY KEY (device, key_id))`,
  `CREATE TABLE IF NOT EXISTS ingest_refusal (
     device text NOT NULL, reason text NOT NULL, count bigint NOT NULL,
     PRIMARY KEY (device, reason))`,
];

const num = (v: unknown): number => (typeof v === 'bigint' ? Number(v) : Number(v as number));

export class PgliteStore implements IngestStore {
  private constructor(private readonly db: PGlite) {}

  /** Open (creating if needed) the store in `<dir>/pg`. */
  static async open(dir: string): Promise<PgliteStore> {
    mkdirSync(join(dir, 'pg'), { recursive: true });
    const db = await PGlite.create(join(dir, 'pg'));
    try {
      await db.transaction(async (tx) => {
        for (const statement of SCHEMA) await tx.exec(statement);
        const found = await tx.query<{ value: string }>(`SELECT value FROM ingest_meta WHERE key = 'format'`);
        if (found.rows.length === 0) await tx.query(`INSERT INTO ingest_meta (key, value) VALUES ('format', $1)`, [String(INGEST_STORE_FORMAT)]);
        else if (found.rows[0].value !== String(INGEST_STORE_FORMAT)) throw new Error(`store format ${found.rows[0].value}, this holdfast reads ${INGEST_STORE_FORMAT}`);
      });
    } catch (error) {
      await db.close().catch(() => undefined);
      throw error;
    }
    return new PgliteStore(db);
  }

  async load(): Promise<LoadedState> {
    const senders = await this.db.query<Record<string, unknown>>(`SELECT device, key_id, first_counter, highest, bitmap, accepted, duplicates, replays, version FROM ingest_sender`);
    const refusals = await this.db.query<Record<string, unknown>>(`SELECT device, reason, count FROM ingest_refusal`);
    return {
      senders: senders.rows.map((r) => ({
        device: String(r.device),
        keyId: num(r.key_id),
        window: { first: num(r.first_counter), highest: num(r.highest), bitmap: new Uint8Array(r.bitmap as Uint8Array), accepted: num(r.accepted) },
        duplicates: num(r.duplicates),
        replays: num(r.replays),
        version: num(r.version),
      })),
      refusals: refusals.rows.map((r) => ({ device: String(r.device), reason: String(r.reason), count: num(r.count) })),
      rowsRead: senders.rows.length + refusals.rows.length,
    };
  }

  async commit(batch: Batch): Promise<void> {
    await this.commitColumns({ records: recordColumns(batch.records), senders: batch.senders, refusals: batch.refusals });
  }

  /** `commit` with the records as columns (the worker's form, ./store-worker.ts). */
  async commitColumns(batch: ColumnBatch): Promise<void> {
    await this.db.transaction(async (tx) => {
      const r = batch.records;
      if (r.count > 0) {
        // One statement per batch; arrival times cross as epoch milliseconds (to_timestamp takes seconds).
        await tx.query(
          `INSERT INTO ingest_record (device, key_id, counter, payload, arrived_at)
           SELECT u.d, u.k, u.c, u.p, to_timestamp(u.t / 1000)
           FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bytea[], $5::float8[]) AS u(d, k, c, p, t)`,
          recordParams(r),
          // PGlite's own bytea serializer spells each byte as its own string; one hex pass over the batch instead.
          BYTEA_ARRAYS,
        );
      }
      const fresh = batch.senders.filter((s) => s.version === 0);
      const known = batch.senders.filter((s) => s.version !== 0);
      if (fresh.length > 0) {
        // A new sender: a plain INSERT, so a sender another writer created meanwhile is a conflict (primary key), not an overwrite.
        await tx.query(
          `INSERT INTO ingest_sender (device, key_id, first_counter, highest, bitmap, accepted, duplicates, replays, version)
           SELECT d, k, f, h, b, a, du, re, 1 FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bytea[], $6::bigint[], $7::bigint[], $8::bigint[]) AS u(d, k, f, h, b, a, du, re)`,
          senderColumns(fresh),
          BYTEA_ARRAYS,
        );
      }
      if (known.length > 0) {
        const updated = await tx.query(
          `UPDATE ingest_sender s SET first_counter = u.f, highest = u.h, bitmap = u.b, accepted = u.a, duplicates = u.du, replays = u.re, version = s.version + 1
           FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bytea[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[]) AS u(d, k, f, h, b, a, du, re, v)
           WHERE s.device = u.d AND s.key_id = u.k AND s.version = u.v`,
          [...senderColumns(known), known.map((s) => s.version)],
          BYTEA_ARRAYS,
        );
        if (updated.affectedRows !== known.length) {
          throw new StoreConflictError(`${known.length - (updated.affectedRows ?? 0)} sender window(s) changed since they were read (another writer?)`);
        }
      }
      const f = batch.refusals;
      if (f.length > 0) {
        await tx.query(
          `INSERT INTO ingest_refusal (device, reason, count)
           SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
           ON CONFLICT (device, reason) DO UPDATE SET count = ingest_refusal.count + EXCLUDED.count`,
          [f.map((x) => x.device), f.map((x) => x.reason), f.map((x) => x.count)],
        );
      }
    });
  }

  async recordKeys(): Promise<{ device: string; keyId: number; counter: number }[]> {
    const rows = await this.db.query<Record<string, unknown>>(`SELECT device, key_id, counter FROM ingest_record ORDER BY device, key_id, counter`);
    return rows.rows.map((r) => ({ device: String(r.device), keyId: num(r.key_id), counter: num(r.counter) }));
  }

  /** Payloads of records, for tests. */
  async records(): Promise<{ device: string; keyId: number; counter: number; payload: Uint8Array; arrivedAt: Date }[]> {
    const rows = await this.db.query<Record<string, unknown>>(`SELECT device, key_id, counter, payload, arrived_at FROM ingest_record ORDER BY device, key_id, counter`);
    return rows.rows.map((r) => ({ device: String(r.device), keyId: num(r.key_id), counter: num(r.counter), payload: new Uint8Array(r.payload as Uint8Array), arrivedAt: new Date(r.arrived_at as string) }));
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}

/** PostgreSQL's type OID of bytea[] (pg_type.h: _bytea). */
const BYTEA_ARRAY_OID = 1001;

/** The payloads of a batch: one buffer and where each ends (RecordColumns). */
interface PayloadList {
  readonly payloads: Uint8Array;
  readonly payloadEnd: Uint32Array;
}

function recordParams(r: RecordColumns): unknown[] {
  const device = new Array<string>(r.count);
  for (let i = 0; i < r.count; i++) device[i] = r.devices[r.device[i]];
  const payloads: PayloadList = { payloads: r.payloads, payloadEnd: r.payloadEnd };
  return [device, Array.from(r.keyId), Array.from(r.counter), payloads, Array.from(r.arrivedAt)];
}

/**
 * A bytea[] array literal (elements quoted, hex format: {"\\x0102",...}), from a list of byte arrays or from a
 * batch's payloads (each buffer hex-encoded in one pass). PGlite's own bytea serializer spells each byte as a
 * separate string: for 5,000 payloads, or 8 windows of 128 bytes, that was most of a small commit's JavaScript.
 */
function byteaArrayLiteral(value: PayloadList | readonly Uint8Array[]): string {
  const hexOf = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');
  if (Array.isArray(value)) return `{${value.map((b: Uint8Array) => `"\\\\x${hexOf(b)}"`).join(',')}}`;
  const list = value as PayloadList;
  const hex = hexOf(list.payloads);
  const parts = new Array<string>(list.payloadEnd.length);
  for (let i = 0, start = 0; i < list.payloadEnd.length; i++) {
    const end = list.payloadEnd[i];
    parts[i] = `"\\\\x${hex.slice(start * 2, end * 2)}"`;
    start = end;
  }
  return `{${parts.join(',')}}`;
}

/** Query options: bytea[] parameters through byteaArrayLiteral. */
const BYTEA_ARRAYS = { serializers: { [BYTEA_ARRAY_OID]: (value: unknown) => byteaArrayLiteral(value as PayloadList | readonly Uint8Array[]) } };

function senderColumns(senders: readonly SenderState[]): unknown[] {
  return [
    senders.map((s) => s.device),
    senders.map((s) => s.keyId),
    senders.map((s) => s.window.first),
    senders.map((s) => s.window.highest),
    senders.map((s) => s.window.bitmap),
    senders.map((s) => s.window.accepted),
    senders.map((s) => s.duplicates),
    senders.map((s) => s.replays),
  ];
}

export type { RefusalCount };
