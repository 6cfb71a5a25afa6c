/**
 * The ingest store's SQL (docs/spec/ingest.md, "Store"), shared by the
 * embedded store (store-pglite.ts, PGlite: PostgreSQL 17 as WASM) and the
 * server store (store-postgres.ts, node-postgres): one schema, one set of
 * statements. Every statement is plain PostgreSQL: arrays through
 * `unnest`, upserts with `ON CONFLICT`, version-checked `UPDATE`s, and,
 * for several writers (the server store), `SELECT … FOR UPDATE` in a fixed
 * order.
 *
 * Parameters are arrays, one per column, so a batch is one statement
 * whatever its size (senderColumns, recordColumnParams below build them).
 *
 * Host tool (Node).
 */
import { INGEST_STORE_FORMAT, type LoadedState, type RecordColumns, type SenderState } from './store.ts';

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

export const SELECT_FORMAT = `SELECT value FROM ingest_meta WHERE key = 'format'`;
export const INSERT_FORMAT = `INSERT INTO ingest_meta (key, value) VALUES ('format', $1)`;

const SENDER_COLUMNS = `device, key_id, first_counter, highest, bitmap, accepted, duplicates, replays, version`;
export const SELECT_SENDERS = `SELECT ${SENDER_COLUMNS} FROM ingest_sender`;
export const SELECT_REFUSALS = `SELECT device, reason, count FROM ingest_refusal`;
export const SELECT_RECORD_KEYS = `SELECT device, key_id, counter FROM ingest_record ORDER BY device, key_id, counter`;
export const SELECT_RECORDS = `SELECT device, key_id, counter, payload, arrived_at FROM ingest_record ORDER BY device, key_id, counter`;

/** A batch's records, one statement ($1 device text[], $2 key id, $3 counter, $4 payload bytea[], $5 arrival ms float8[]); arrival times cross as epoch milliseconds (to_timestamp takes seconds). A second row for one (device, key id, counter) fails the transaction. */
export const INSERT_RECORDS = `INSERT INTO ingest_record (device, key_id, counter, payload, arrived_at)
  SELECT u.d, u.k, u.c, u.p, to_timestamp(u.t / 1000)
  FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bytea[], $5::float8[]) AS u(d, k, c, p, t)`;

/** New senders (version 1): a plain INSERT, so a sender another writer created meanwhile is a conflict (primary key), not an overwrite. */
export const INSERT_SENDERS = `INSERT INTO ingest_sender (${SENDER_COLUMNS})
  SELECT d, k, f, h, b, a, du, re, 1 FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bytea[], $6::bigint[], $7::bigint[], $8::bigint[]) AS u(d, k, f, h, b, a, du, re)`;

/** Known senders, each only if its version is still the one read ($9); the caller compares the row count. */
export const UPDATE_SENDERS = `UPDATE ingest_sender s SET first_counter = u.f, highest = u.h, bitmap = u.b, accepted = u.a, duplicates = u.du, replays = u.re, version = s.version + 1
  FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bytea[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[]) AS u(d, k, f, h, b, a, du, re, v)
  WHERE s.device = u.d AND s.key_id = u.k AND s.version = u.v`;

/** Refusal counts to add; rows taken in (device, reason) order, so two writers adding to the same rows lock them in one order. */
export const UPSERT_REFUSALS = `INSERT INTO ingest_refusal (device, reason, count)
  SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(d, r, c) ORDER BY u.d, u.r
  ON CONFLICT (device, reason) DO UPDATE SET count = ingest_refusal.count + EXCLUDED.count`;

/**
 * Several writers (store-postgres.ts, `decide`): make sure a row exists for
 * every sender of the batch ($1 device text[], $2 key id bigint[], sorted;
 * $3 an empty bitmap): an empty window at version 0, which the same
 * transaction then updates to version 1. A row another writer inserted and
 * has not committed yet makes this wait for it (then do nothing).
 */
export const ENSURE_SENDERS = `INSERT INTO ingest_sender (${SENDER_COLUMNS})
  SELECT u.d, u.k, 0, 0, $3::bytea, 0, 0, 0, 0 FROM unnest($1::text[], $2::bigint[]) AS u(d, k) ORDER BY u.d, u.k
  ON CONFLICT (device, key_id) DO NOTHING`;

/**
 * Several writers: read and row-lock the batch's senders, always in
 * (device, key id) order, so two writers whose batches share senders take
 * the locks in one order (no deadlock) and the second waits until the
 * first committed, then reads its window.
 */
export const LOCK_SENDERS = `SELECT s.device, s.key_id, s.first_counter, s.highest, s.bitmap, s.accepted, s.duplicates, s.replays, s.version
  FROM ingest_sender s JOIN unnest($1::text[], $2::bigint[]) AS u(d, k) ON s.device = u.d AND s.key_id = u.k
  ORDER BY s.device, s.key_id FOR UPDATE OF s`;

/** Several writers: the batch's senders as committed now, without a lock (the first read of `decide`: judged again under LOCK_SENDERS). */
export const READ_SENDERS = `SELECT s.device, s.key_id, s.first_counter, s.highest, s.bitmap, s.accepted, s.duplicates, s.replays, s.version
  FROM ingest_sender s JOIN unnest($1::text[], $2::bigint[]) AS u(d, k) ON s.device = u.d AND s.key_id = u.k`;

/** Several writers: records inserted before the lock that the locked windows judge stale after all (another writer moved H by W or more meanwhile). */
export const DELETE_RECORDS = `DELETE FROM ingest_record r USING unnest($1::text[], $2::bigint[], $3::bigint[]) AS u(d, k, c)
  WHERE r.device = u.d AND r.key_id = u.k AND r.counter = u.c`;

/** Several writers: one transaction-scoped lock per rotated device ($1 its id), taken in device order before any window is read (the key bound, docs/spec/key-rotation.md). */
export const DEVICE_LOCK = `SELECT pg_advisory_xact_lock(hashtextextended('holdfast-device:' || $1::text, 0))`;

/** Serializes schema creation among workers starting at once (CREATE TABLE IF NOT EXISTS races otherwise); any constant works, this one spells "hfst". */
export const SCHEMA_LOCK = `SELECT pg_advisory_xact_lock(1751544692)`;

/** Parameters of INSERT_SENDERS (and the first 8 of UPDATE_SENDERS). */
export function senderColumns(senders: readonly SenderState[]): unknown[] {
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

/** Parameters of UPDATE_SENDERS. */
export function senderUpdateColumns(senders: readonly SenderState[]): unknown[] {
  return [...senderColumns(senders), senders.map((s) => s.version)];
}

/** A batch's payloads: one buffer and where each ends (RecordColumns). */
export interface PayloadList {
  readonly payloads: Uint8Array;
  readonly payloadEnd: Uint32Array;
}

/** Parameters of INSERT_RECORDS; the payloads stay one buffer (`payloads`) for the driver's bytea[] serializer. */
export function recordColumnParams(r: RecordColumns): [string[], number[], number[], PayloadList, number[]] {
  const device = new Array<string>(r.count);
  for (let i = 0; i < r.count; i++) device[i] = r.devices[r.device[i]];
  return [device, Array.from(r.keyId), Array.from(r.counter), { payloads: r.payloads, payloadEnd: r.payloadEnd }, Array.from(r.arrivedAt)];
}

/**
 * A bytea[] array literal (elements quoted, hex format: {"\\x0102",...}), from a list of byte arrays or from a
 * batch's payloads (each buffer hex-encoded in one pass). Drivers' own bytea serializers spell each byte or each
 * element separately: for 5,000 payloads, or 8 windows of 128 bytes, that was most of a small commit's JavaScript.
 */
export function byteaArrayLiteral(value: PayloadList | readonly Uint8Array[]): string {
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

/** A row of SELECT_SENDERS / LOCK_SENDERS as a SenderState. */
export function senderFromRow(r: Record<string, unknown>): SenderState {
  return {
    device: String(r.device),
    keyId: num(r.key_id),
    window: { first: num(r.first_counter), highest: num(r.highest), bitmap: new Uint8Array(r.bitmap as Uint8Array), accepted: num(r.accepted) },
    duplicates: num(r.duplicates),
    replays: num(r.replays),
    version: num(r.version),
  };
}

/** bigint columns: PGlite gives numbers or bigints, node-postgres strings (int8 is parsed as text by default). */
export function num(v: unknown): number {
  if (typeof v === 'number') return v;
  const n = Number(v as bigint | string);
  if (!Number.isSafeInteger(n)) throw new RangeError(`internal: ${String(v)} is not a safe integer`);
  return n;
}

/** Whether the format row must be written (a new store); throws for a store of another format (fail closed). */
export function formatRowMissing(found: readonly { value: string }[]): boolean {
  if (found.length === 0) return true;
  if (found[0].value !== String(INGEST_STORE_FORMAT)) throw new Error(`store format ${found[0].value}, this holdfast reads ${INGEST_STORE_FORMAT}`);
  return false;
}

/** `load()`'s result from the rows of SELECT_SENDERS and SELECT_REFUSALS. */
export function loadedState(senders: readonly Record<string, unknown>[], refusals: readonly Record<string, unknown>[]): LoadedState {
  return {
    senders: senders.map(senderFromRow),
    refusals: refusals.map((r) => ({ device: String(r.device), reason: String(r.reason), count: num(r.count) })),
    rowsRead: senders.length + refusals.length,
  };
}
