/**
 * The fleet inventory and its rollouts in PostgreSQL (`--db postgres://…`;
 * docs/design/scale-out.md, "What lives where"), through node-postgres.
 *
 * Tables (schema version 1, in `fleet_meta`; another version is refused,
 * as tools/ingest/sql.ts refuses another store format):
 *   fleet_device       one row a device (its secret too: the database's
 *                      access control is what the file's mode 0600 was);
 *   fleet_key          (device, key id) -> public key, status, counters, and
 *                      a rotated key's own secret (null: the device's);
 *   fleet_event        (device, seq) -> the device's history, appended to only;
 *   fleet_revocation   the last revocation list number (one row);
 *   fleet_command_key  revoked fleet command keys;
 *   rollout            id -> plan bytes, manifest bytes, state (the same
 *                      `holdfast-rollout/1` text with its sha256 as the file);
 *   rollout_trail      (id, seq) -> one decision, hash-chained as the file's
 *                      lines; a trigger refuses UPDATE and DELETE.
 *
 * The promises:
 * - one writer at a time: `withLock` holds a session-level advisory lock
 *   for the whole read-modify-write (a second writer waits for it, up to
 *   LOCK_WAIT; a killed writer's lock goes with its connection);
 * - a change is atomic: each `save` and each rollout create/commit is one
 *   transaction (a kill before COMMIT leaves nothing of it);
 * - reads see one committed snapshot (REPEATABLE READ, READ ONLY), are
 *   checked as the file is (parseFleet), and damaged rows are refused.
 *
 * Errors name the server as `postgres://host:port/database`: never a
 * user's password.
 *
 * Host tool (Node).
 */
import pg from 'pg';
import { CliError } from '../cli/errors.ts';
import { num } from '../ingest/sql.ts';
import { PostgresRolloutStore, ROLLOUT_SCHEMA } from '../rollout/store-postgres.ts';
import type { LoadedRollout, RolloutStore } from '../rollout/store.ts';
import { emptyFleet, fleetText, parseFleet, type Fleet, type FleetDevice } from './inventory.ts';
import type { FleetStore, FleetTx } from './store.ts';

/** The schema this holdfast reads and writes. */
export const FLEET_SCHEMA_VERSION = '1';
/** How long a writer waits for another's lock. */
export const LOCK_WAIT = '60s';
/** The advisory lock of the inventory ("hfiv"); the ingest's schema lock is another number. */
const INVENTORY_LOCK = 1751542134;
/** Serializes schema creation (CREATE TABLE IF NOT EXISTS races otherwise). */
const SCHEMA_LOCK = 1751542135;

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS fleet_meta (key text PRIMARY KEY, value text NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS fleet_device (
     device_id text PRIMARY KEY, board text NOT NULL, suite text NOT NULL, secret text NOT NULL, state text NOT NULL,
     cohort text, gateway text, firmware_version bigint, security_floor bigint, provisioned_at text NOT NULL,
     replaces text, replaced_by text)`,
  `CREATE TABLE IF NOT EXISTS fleet_key (
     device_id text NOT NULL REFERENCES fleet_device (device_id), key_id bigint NOT NULL, public_key text NOT NULL, status text NOT NULL,
     since_counter bigint NOT NULL, until_counter bigint, changed_at text NOT NULL, secret text, PRIMARY KEY (device_id, key_id))`,
  `CREATE TABLE IF NOT EXISTS fleet_event (
     device_id text NOT NULL REFERENCES fleet_device (device_id), seq integer NOT NULL, at text NOT NULL, event text NOT NULL, detail text,
     PRIMARY KEY (device_id, seq))`,
  `CREATE TABLE IF NOT EXISTS fleet_revocation (one boolean PRIMARY KEY DEFAULT true CHECK (one), number bigint NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS fleet_command_key (key_id bigint PRIMARY KEY, at text NOT NULL, detail text)`,
  ...ROLLOUT_SCHEMA,
];

/** The fields the tables hold: a field added to the file format and not here is refused on save (never dropped silently). */
const DEVICE_FIELDS = new Set(['deviceId', 'board', 'suite', 'secret', 'state', 'cohort', 'gateway', 'firmware', 'keys', 'provisionedAt', 'history', 'replaces', 'replacedBy']);
const KEY_FIELDS = new Set(['keyId', 'publicKey', 'status', 'sinceCounter', 'untilCounter', 'changedAt', 'secret']);
const EVENT_FIELDS = new Set(['at', 'event', 'detail']);

function unstoredField(d: FleetDevice): string | undefined {
  const extra = (fields: Set<string>, o: object): string | undefined => Object.keys(o).find((k) => !fields.has(k));
  return extra(DEVICE_FIELDS, d) ?? d.keys.map((k) => extra(KEY_FIELDS, k)).find((x) => x !== undefined) ?? d.history.map((e) => extra(EVENT_FIELDS, e)).find((x) => x !== undefined);
}

/** `postgres://host:port/database` of `url`: what errors and output name (no user, no password). */
export function databaseName(url: string): string {
  try {
    const u = new URL(url);
    return `postgres://${u.hostname}${u.port !== '' ? `:${u.port}` : ''}${u.pathname}`;
  } catch {
    return 'postgres://(unparsable URL)';
  }
}

/** A driver error as one line without anything of the URL but host and database. */
function reason(error: unknown, url: string): string {
  let text = error instanceof Error ? error.message : String(error);
  try {
    const u = new URL(url);
    if (u.password !== '') text = text.split(decodeURIComponent(u.password)).join('***').split(u.password).join('***');
  } catch {
    // nothing to hide
  }
  const code = (error as { code?: unknown }).code;
  return `${text.split('\n')[0]}${typeof code === 'string' ? ` (${code})` : ''}`;
}

export class PostgresFleetStore implements FleetStore {
  readonly kind = 'postgres' as const;
  readonly rollouts: RolloutStore;
  private closed = false;

  private constructor(
    private readonly client: pg.Client,
    private readonly url: string,
    readonly where: string,
  ) {
    this.rollouts = new PostgresRolloutStore(client, where, (what, error) => this.fail(what, error));
  }

  /** Connect, create the tables if needed, check the schema version (another one: refused). */
  static async open(url: string): Promise<PostgresFleetStore> {
    const where = databaseName(url);
    const client = new pg.Client({ connectionString: url, application_name: 'holdfast-fleet' });
    client.on('error', () => undefined);
    try {
      await client.connect();
    } catch (error) {
      await client.end().catch(() => undefined);
      throw new CliError(`cannot connect to the inventory database ${where}: ${reason(error, url)}`, { code: 'io' });
    }
    const store = new PostgresFleetStore(client, url, where);
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK]);
      await client.query(SCHEMA[0]!);
      const existing = await client.query<{ value: string }>(`SELECT value FROM fleet_meta WHERE key = 'schema'`);
      const version = existing.rows[0]?.value;
      if (version !== undefined && version !== FLEET_SCHEMA_VERSION) {
        throw new CliError(`the inventory schema is version ${JSON.stringify(version.slice(0, 20))}, this holdfast reads ${FLEET_SCHEMA_VERSION} (made by a newer holdfast? damaged?): refused`, { file: where, code: 'invalid-file' });
      }
      for (const statement of SCHEMA.slice(1)) await client.query(statement);
      if (version === undefined) await client.query(`INSERT INTO fleet_meta (key, value) VALUES ('schema', $1)`, [FLEET_SCHEMA_VERSION]);
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      await store.close();
      if (error instanceof CliError) throw error;
      throw store.fail('cannot prepare the inventory tables', error);
    }
    return store;
  }

  /** A driver error as a CliError naming the database only. */
  fail(what: string, error: unknown): CliError {
    if (error instanceof CliError) return error;
    return new CliError(`${what}: ${reason(error, this.url)}`, { file: this.where, code: 'io' });
  }

  async read(options: { allowMissing?: boolean } = {}): Promise<Fleet> {
    return this.present((await this.readRows()).fleet, options.allowMissing === true);
  }

  /** As a missing file: a database that holds no inventory yet (no device, no revocation) is refused unless `allowMissing`. */
  private present(fleet: Fleet, allowMissing: boolean): Fleet {
    if (!allowMissing && fleet.devices.length === 0 && fleet.revocation === undefined) throw new CliError('holds no inventory yet: expected holdfast fleet import --from <file> --db <url> first', { file: this.where, code: 'not-found' });
    return fleet;
  }

  private async readRows(): Promise<{ fleet: Fleet; base: Map<string, string> }> {
    let rows: { devices: pg.QueryResult; keys: pg.QueryResult; events: pg.QueryResult; revocation: pg.QueryResult; commandKeys: pg.QueryResult };
    try {
      await this.client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      rows = {
        devices: await this.client.query('SELECT * FROM fleet_device ORDER BY device_id'),
        keys: await this.client.query('SELECT * FROM fleet_key ORDER BY device_id, key_id'),
        events: await this.client.query('SELECT * FROM fleet_event ORDER BY device_id, seq'),
        revocation: await this.client.query('SELECT number FROM fleet_revocation'),
        commandKeys: await this.client.query('SELECT * FROM fleet_command_key ORDER BY key_id'),
      };
      await this.client.query('COMMIT');
    } catch (error) {
      await this.client.query('ROLLBACK').catch(() => undefined);
      throw this.fail('cannot read the inventory', error);
    }
    const byId = new Map<string, FleetDevice>();
    const devices: FleetDevice[] = [];
    for (const r of rows.devices.rows) {
      const d = {
        deviceId: r.device_id,
        board: r.board,
        suite: r.suite,
        secret: r.secret,
        state: r.state,
        cohort: r.cohort,
        gateway: r.gateway,
        firmware: { version: nullableNum(r.firmware_version), securityFloor: nullableNum(r.security_floor) },
        keys: [],
        provisionedAt: r.provisioned_at,
        history: [],
        ...(r.replaces !== null ? { replaces: r.replaces } : {}),
        ...(r.replaced_by !== null ? { replacedBy: r.replaced_by } : {}),
      } as FleetDevice;
      byId.set(d.deviceId, d);
      devices.push(d);
    }
    const owner = (id: string, table: string): FleetDevice => {
      const d = byId.get(id);
      if (d === undefined) throw new CliError(`a row of ${table} names device ${String(id).slice(0, 16)}, which has no row in fleet_device: damaged`, { file: this.where, field: table, code: 'invalid-file' });
      return d;
    };
    for (const r of rows.keys.rows) owner(r.device_id, 'fleet_key').keys.push({ keyId: num(r.key_id), publicKey: r.public_key, status: r.status, sinceCounter: num(r.since_counter), untilCounter: nullableNum(r.until_counter), changedAt: r.changed_at, ...(r.secret !== null ? { secret: r.secret } : {}) });
    for (const r of rows.events.rows) {
      const d = owner(r.device_id, 'fleet_event');
      if (r.seq !== d.history.length) throw new CliError(`device ${d.deviceId}'s history has event ${r.seq} after ${d.history.length} others: damaged (events are only appended)`, { file: this.where, field: 'fleet_event', code: 'invalid-file' });
      d.history.push({ at: r.at, event: r.event, ...(r.detail !== null ? { detail: r.detail } : {}) });
    }
    const fleet: Fleet = emptyFleet();
    fleet.devices = devices;
    if (rows.revocation.rows.length > 0) fleet.revocation = { number: num(rows.revocation.rows[0].number), commandKeys: rows.commandKeys.rows.map((r) => ({ keyId: num(r.key_id), at: r.at, ...(r.detail !== null ? { detail: r.detail } : {}) })) };
    else if (rows.commandKeys.rows.length > 0) throw new CliError('revoked command keys but no revocation list number: damaged', { file: this.where, field: 'fleet_revocation', code: 'invalid-file' });
    // The file's checks, on the same text: a row the file format would refuse is refused here too.
    const checked = parseFleet(fleetText(fleet), this.where);
    return { fleet: checked, base: new Map(checked.devices.map((d) => [d.deviceId, JSON.stringify(d)])) };
  }

  async withLock<T>(run: (tx: FleetTx) => Promise<T> | T): Promise<T> {
    try {
      await this.client.query(`SET lock_timeout = '${LOCK_WAIT}'`);
      await this.client.query('SELECT pg_advisory_lock($1)', [INVENTORY_LOCK]);
    } catch (error) {
      if ((error as { code?: string }).code === '55P03') throw new CliError(`the inventory is held by another holdfast run for over ${LOCK_WAIT}: expected it to finish (see pg_locks)`, { file: this.where, code: 'exists' });
      throw this.fail('cannot take the inventory lock', error);
    }
    let base: { fleet: Fleet; base: Map<string, string>; revocation: string } | undefined;
    const tx: FleetTx = {
      load: async (allowMissing = true) => {
        const read = await this.readRows();
        base = { ...read, revocation: JSON.stringify(read.fleet.revocation ?? null) };
        return this.present(read.fleet, allowMissing);
      },
      save: async (fleet) => {
        if (base === undefined) base = { fleet: emptyFleet(), base: new Map(), revocation: 'null' };
        const checked = parseFleet(fleetText(fleet), this.where);
        await this.saveChanges(base.base, base.revocation, checked);
        base = { fleet: checked, base: new Map(checked.devices.map((d) => [d.deviceId, JSON.stringify(d)])), revocation: JSON.stringify(checked.revocation ?? null) };
      },
    };
    try {
      return await run(tx);
    } finally {
      await this.client.query('SELECT pg_advisory_unlock($1)', [INVENTORY_LOCK]).catch(() => undefined);
    }
  }

  /** One transaction: the devices that changed since `base` (rows upserted, history appended), the revocation state. */
  private async saveChanges(base: Map<string, string>, baseRevocation: string, fleet: Fleet): Promise<void> {
    const ids = new Set(fleet.devices.map((d) => d.deviceId));
    const gone = [...base.keys()].filter((id) => !ids.has(id));
    if (gone.length > 0) throw new CliError(`device ${gone[0]} would be removed: devices are never removed from the inventory (revoke them)`, { file: this.where, code: 'failed' });
    const changed: FleetDevice[] = [];
    const newEvents: { deviceId: string; seq: number; at: string; event: string; detail: string | null }[] = [];
    for (const d of fleet.devices) {
      const before = base.get(d.deviceId);
      if (before === JSON.stringify(d)) continue;
      const had = before === undefined ? [] : (JSON.parse(before) as FleetDevice).history;
      if (had.some((e, i) => JSON.stringify(e) !== JSON.stringify(d.history[i]))) throw new CliError(`device ${d.deviceId}'s history would be rewritten: events are only appended`, { file: this.where, code: 'failed' });
      const field = unstoredField(d);
      if (field !== undefined) throw new CliError(`device ${d.deviceId} has a field ${field} the PostgreSQL inventory does not store: internal (tools/fleet/store-postgres.ts lags the file format)`, { file: this.where, code: 'internal' });
      changed.push(d);
      d.history.slice(had.length).forEach((e, i) => newEvents.push({ deviceId: d.deviceId, seq: had.length + i, at: e.at, event: e.event, detail: e.detail ?? null }));
    }
    const revocation = JSON.stringify(fleet.revocation ?? null);
    if (changed.length === 0 && revocation === baseRevocation) return;
    try {
      await this.client.query('BEGIN');
      await this.writeChanges(changed, newEvents, revocation !== baseRevocation ? fleet.revocation : undefined);
      await this.client.query('COMMIT');
    } catch (error) {
      await this.client.query('ROLLBACK').catch(() => undefined);
      throw this.fail('cannot save the inventory', error);
    }
  }

  /**
   * `holdfast fleet import`: a whole file inventory and its rollouts into
   * this database, as one transaction, under the lock; refused unless the
   * database holds no device and no rollout yet.
   */
  async importInventory(fleet: Fleet, rollouts: readonly LoadedRollout[]): Promise<void> {
    const checked = parseFleet(fleetText(fleet), this.where);
    await this.withLock(async (tx) => {
      const now = await tx.load();
      const existing = await this.rollouts.list();
      if (now.devices.length > 0 || now.revocation !== undefined || existing.length > 0) {
        throw new CliError(`already holds an inventory (${now.devices.length} device(s), ${existing.length} rollout(s)): expected an empty database to import into`, { file: this.where, code: 'exists' });
      }
      for (const d of checked.devices) {
        const field = unstoredField(d);
        if (field !== undefined) throw new CliError(`device ${d.deviceId} has a field ${field} the PostgreSQL inventory does not store: internal (tools/fleet/store-postgres.ts lags the file format)`, { file: this.where, code: 'internal' });
      }
      const events = checked.devices.flatMap((d) => d.history.map((e, seq) => ({ deviceId: d.deviceId, seq, at: e.at, event: e.event, detail: e.detail ?? null })));
      try {
        await this.client.query('BEGIN');
        await this.writeChanges(checked.devices, events, checked.revocation);
        for (const r of rollouts) await (this.rollouts as PostgresRolloutStore).insertLoaded(r);
        await this.client.query('COMMIT');
      } catch (error) {
        await this.client.query('ROLLBACK').catch(() => undefined);
        throw this.fail('cannot import the inventory', error);
      }
    });
  }

  /** The statements of a save (inside the caller's transaction). */
  private async writeChanges(changed: readonly FleetDevice[], newEvents: readonly { deviceId: string; seq: number; at: string; event: string; detail: string | null }[], revocation: Fleet['revocation']): Promise<void> {
    const keys = changed.flatMap((d) => d.keys.map((k) => ({ deviceId: d.deviceId, ...k })));
    {
      if (changed.length > 0) {
        await this.client.query(
          `INSERT INTO fleet_device (device_id, board, suite, secret, state, cohort, gateway, firmware_version, security_floor, provisioned_at, replaces, replaced_by)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::bigint[], $10::text[], $11::text[], $12::text[])
           ON CONFLICT (device_id) DO UPDATE SET board = EXCLUDED.board, suite = EXCLUDED.suite, secret = EXCLUDED.secret, state = EXCLUDED.state, cohort = EXCLUDED.cohort,
             gateway = EXCLUDED.gateway, firmware_version = EXCLUDED.firmware_version, security_floor = EXCLUDED.security_floor, provisioned_at = EXCLUDED.provisioned_at,
             replaces = EXCLUDED.replaces, replaced_by = EXCLUDED.replaced_by`,
          [
            changed.map((d) => d.deviceId), changed.map((d) => d.board), changed.map((d) => d.suite), changed.map((d) => d.secret), changed.map((d) => d.state),
            changed.map((d) => d.cohort), changed.map((d) => d.gateway), changed.map((d) => d.firmware.version), changed.map((d) => d.firmware.securityFloor),
            changed.map((d) => d.provisionedAt), changed.map((d) => d.replaces ?? null), changed.map((d) => d.replacedBy ?? null),
          ],
        );
        await this.client.query(
          `INSERT INTO fleet_key (device_id, key_id, public_key, status, since_counter, until_counter, changed_at, secret)
           SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::text[], $8::text[])
           ON CONFLICT (device_id, key_id) DO UPDATE SET public_key = EXCLUDED.public_key, status = EXCLUDED.status, since_counter = EXCLUDED.since_counter,
             until_counter = EXCLUDED.until_counter, changed_at = EXCLUDED.changed_at, secret = EXCLUDED.secret`,
          [keys.map((k) => k.deviceId), keys.map((k) => k.keyId), keys.map((k) => k.publicKey), keys.map((k) => k.status), keys.map((k) => k.sinceCounter), keys.map((k) => k.untilCounter), keys.map((k) => k.changedAt), keys.map((k) => k.secret ?? null)],
        );
        // Keys are never removed from a device; a key gone from the new inventory is refused by the primary key check below.
        const counted = await this.client.query<{ n: string }>('SELECT count(*) AS n FROM fleet_key WHERE device_id = ANY($1::text[])', [changed.map((d) => d.deviceId)]);
        if (num(counted.rows[0]!.n) !== keys.length) throw new CliError('a key would be removed from a device: keys are never removed (revoke them)', { file: this.where, code: 'failed' });
        if (newEvents.length > 0) {
          await this.client.query(`INSERT INTO fleet_event (device_id, seq, at, event, detail) SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[])`, [
            newEvents.map((e) => e.deviceId), newEvents.map((e) => e.seq), newEvents.map((e) => e.at), newEvents.map((e) => e.event), newEvents.map((e) => e.detail),
          ]);
        }
      }
      if (revocation !== undefined) {
        await this.client.query(`INSERT INTO fleet_revocation (one, number) VALUES (true, $1) ON CONFLICT (one) DO UPDATE SET number = EXCLUDED.number`, [revocation.number]);
        const c = revocation.commandKeys;
        await this.client.query(`INSERT INTO fleet_command_key (key_id, at, detail) SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[]) ON CONFLICT (key_id) DO NOTHING`, [c.map((k) => k.keyId), c.map((k) => k.at), c.map((k) => k.detail ?? null)]);
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.client.end().catch(() => undefined);
  }
}

function nullableNum(v: unknown): number | null {
  return v === null || v === undefined ? null : num(v);
}
