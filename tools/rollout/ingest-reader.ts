/**
 * The records the ingest accepted, read for a rollout step
 * (docs/spec/rollout.md, "Signals"). The ingest store's interface
 * (tools/ingest/store.ts) reads no records by cursor, so the query is here:
 * PGlite on `<db>/pg`, in a read-only transaction, holding the ingest's own
 * lock (`<db>/lock`, tools/ingest/lock.ts) for as long as it is open,
 * because PGlite is single-process: while an ingest runs on the folder the
 * step is refused with one line, never run beside it.
 *
 * A `postgres://` URL (the ingest's `--db` on a PostgreSQL server, where
 * several ingest workers write at once) is read with node-postgres in a
 * READ ONLY transaction, beside the running ingest.
 *
 * Only records of the devices asked for, with a counter above the device's
 * cursor and an arrival at or before `until`, are read.
 *
 * Host tool (Node).
 */
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { CliError } from '../cli/errors.ts';
import { acquireLock, LockedError } from '../ingest/lock.ts';
import { INGEST_STORE_FORMAT } from '../ingest/store.ts';
import { redactUrl } from '../ingest/store-postgres.ts';
import type { AcceptedRecord } from './signals.ts';

const SELECT_AFTER = `SELECT r.device, r.key_id, r.counter, r.payload, (extract(epoch from r.arrived_at) * 1000)::float8 AS arrived_ms
  FROM ingest_record r JOIN unnest($1::text[], $2::bigint[]) AS c(d, h) ON r.device = c.d
  WHERE r.counter > c.h AND r.arrived_at <= to_timestamp($3::float8 / 1000)
  ORDER BY r.device, r.counter`;

function num(v: unknown): number {
  return typeof v === 'bigint' ? Number(v) : Number(v);
}

/**
 * Accepted records of `devices` past `cursor` (device → highest counter
 * already observed) that arrived at or before `untilMs`.
 */
export async function readAccepted(db: string, devices: readonly string[], cursor: Readonly<Record<string, number>>, untilMs: number): Promise<AcceptedRecord[]> {
  if (/^postgres(ql)?:\/\//.test(db)) return readFromServer(db, devices, cursor, untilMs);
  if (statSync(join(db, 'pg'), { throwIfNoEntry: false })?.isDirectory() !== true) throw new CliError('is not an ingest database: expected the folder given to holdfast ingest run --db (with pg/ inside)', { file: db, field: '--ingest-db', code: 'not-found' });
  let release: () => void;
  try {
    release = acquireLock(db);
  } catch (error) {
    if (error instanceof LockedError) throw new CliError(`the ingest database is in use by process ${error.pid}: expected a database no running ingest holds (PGlite is single-process; step when the ingest is stopped)`, { file: db, field: '--ingest-db', code: 'exists' });
    throw new CliError(`cannot take the ingest database's lock (${String((error as Error).message)})`, { file: db, field: '--ingest-db', code: 'io' });
  }
  let pg: PGlite | undefined;
  try {
    try {
      pg = await PGlite.create(join(db, 'pg'));
    } catch (error) {
      throw new CliError(`cannot open the ingest database (${(error as Error).message})`, { file: db, field: '--ingest-db', code: 'invalid-file' });
    }
    const open = pg;
    return await open.transaction(async (tx) => {
      await tx.exec('SET TRANSACTION READ ONLY');
      return query(db, (sql, params) => tx.query<Record<string, unknown>>(sql, params), devices, cursor, untilMs);
    });
  } finally {
    await pg?.close().catch(() => undefined);
    release();
  }
}

type Query = (sql: string, params?: unknown[]) => Promise<{ rows: Record<string, unknown>[] }>;

/** The format check and the records query, on either database. */
async function query(where: string, run: Query, devices: readonly string[], cursor: Readonly<Record<string, number>>, untilMs: number): Promise<AcceptedRecord[]> {
  const meta = await run(`SELECT value FROM ingest_meta WHERE key = 'format'`).catch(() => undefined);
  if (meta === undefined || meta.rows.length === 0) throw new CliError('holds no ingest store: expected a database written by holdfast ingest run', { file: where, field: '--ingest-db', code: 'invalid-file' });
  if (String(meta.rows[0]!.value) !== String(INGEST_STORE_FORMAT)) throw new CliError(`ingest store format ${String(meta.rows[0]!.value)}: this holdfast reads ${INGEST_STORE_FORMAT}`, { file: where, field: '--ingest-db', code: 'invalid-file' });
  if (devices.length === 0) return [];
  const rows = await run(SELECT_AFTER, [devices, devices.map((d) => cursor[d] ?? 0), untilMs]);
  return rows.rows.map((r) => ({ device: String(r.device), keyId: num(r.key_id), counter: num(r.counter), payload: new Uint8Array(r.payload as Uint8Array), arrivedAt: num(r.arrived_ms) }));
}

/** The same read on a PostgreSQL server, in a READ ONLY transaction (the ingest may be running). */
async function readFromServer(url: string, devices: readonly string[], cursor: Readonly<Record<string, number>>, untilMs: number): Promise<AcceptedRecord[]> {
  const where = redactUrl(url);
  const client = new pg.Client({ connectionString: url, application_name: 'holdfast-rollout' });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (error) {
    throw new CliError(`cannot connect to the ingest database (${(error as Error).message.split('\n')[0]})`, { file: where, field: '--ingest-db', code: 'io' });
  }
  try {
    await client.query('BEGIN READ ONLY');
    const records = await query(where, (sql, params) => client.query<Record<string, unknown>>(sql, params), devices, cursor, untilMs);
    await client.query('COMMIT');
    return records;
  } finally {
    await client.end().catch(() => undefined);
  }
}
