/**
 * Rollouts in PostgreSQL (`--db postgres://…`), in the inventory's
 * database (tools/fleet/store-postgres.ts opens it and holds the lock):
 * `rollout` (id -> plan bytes, manifest bytes, state text) and
 * `rollout_trail` (id, seq -> one decision's JSON line, hash-chained; a
 * trigger refuses UPDATE and DELETE, so the trail is only appended to).
 *
 * The state is the file backend's `holdfast-rollout/1` text with its
 * sha256 (tools/rollout/store.ts, stateText), and `trailBytes` counts the
 * committed lines' bytes as in trail.jsonl, so both backends check the
 * same things on load: the state's hash, plan and manifest hashes, the
 * trail's chain and its head against the state's. A step (`commit`) is one
 * transaction: the trail rows and the new state commit together or not at
 * all, so a killed step leaves the state before it (never uncommitted
 * lines: `uncommitted` is always 0 here).
 *
 * Host tool (Node).
 */
import type pg from 'pg';
import { CliError } from '../cli/errors.ts';
import { num } from '../ingest/sql.ts';
import type { Decision } from './engine.ts';
import {
  checkedManifest, checkedPlan, checkedTrail, initialState, parseStateText, restoredRollout, stateText, trailText,
  type LoadedRollout, type NewRollout, type RolloutStore, type StateChange, type StoreState,
} from './store.ts';

export const ROLLOUT_SCHEMA = [
  `CREATE TABLE IF NOT EXISTS rollout (id text PRIMARY KEY, plan bytea NOT NULL, manifest bytea NOT NULL, state text NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS rollout_trail (id text NOT NULL REFERENCES rollout (id), seq bigint NOT NULL, line text NOT NULL, PRIMARY KEY (id, seq))`,
  `CREATE OR REPLACE FUNCTION holdfast_trail_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN RAISE EXCEPTION 'rollout_trail is append-only'; END $$`,
  `DO $$ BEGIN
     IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'rollout_trail_append_only') THEN
       CREATE TRIGGER rollout_trail_append_only BEFORE UPDATE OR DELETE ON rollout_trail FOR EACH ROW EXECUTE FUNCTION holdfast_trail_append_only();
     END IF;
   END $$`,
];

const ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;

function checkId(id: string): void {
  if (!ID.test(id)) throw new CliError('expected a rollout id: 1..64 of a-z 0-9 . _ -', { field: '--id', code: 'usage', exitCode: 2 });
}

export class PostgresRolloutStore implements RolloutStore {
  constructor(
    private readonly client: pg.Client,
    private readonly where: string,
    private readonly fail: (what: string, error: unknown) => CliError,
  ) {}

  private place(id: string): string {
    return `${this.where}#rollout/${id}`;
  }

  async list(): Promise<string[]> {
    try {
      return (await this.client.query<{ id: string }>('SELECT id FROM rollout ORDER BY id')).rows.map((r) => r.id);
    } catch (error) {
      throw this.fail('cannot list the rollouts', error);
    }
  }

  async load(id: string): Promise<LoadedRollout> {
    checkId(id);
    let row: { plan: Buffer; manifest: Buffer; state: string } | undefined;
    let lines: { seq: unknown; line: string }[];
    try {
      await this.client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      row = (await this.client.query<{ plan: Buffer; manifest: Buffer; state: string }>('SELECT plan, manifest, state FROM rollout WHERE id = $1', [id])).rows[0];
      lines = (await this.client.query<{ seq: unknown; line: string }>('SELECT seq, line FROM rollout_trail WHERE id = $1 ORDER BY seq', [id])).rows;
      await this.client.query('COMMIT');
    } catch (error) {
      await this.client.query('ROLLBACK').catch(() => undefined);
      throw this.fail(`cannot read rollout ${id}`, error);
    }
    const where = this.place(id);
    if (row === undefined) throw new CliError(`no rollout ${id} in this inventory: expected an id from holdfast rollout start`, { file: where, code: 'not-found' });
    const state = parseStateText(Buffer.from(row.state, 'utf8'), id, `${where}/state`);
    const planBytes = new Uint8Array(row.plan);
    const plan = checkedPlan(planBytes, state, `${where}/plan`);
    const manifest = checkedManifest(new Uint8Array(row.manifest), state, `${where}/manifest`);
    const rollout = restoredRollout(plan, state, `${where}/state`);
    lines.forEach((l, i) => {
      if (num(l.seq) !== i + 1) throw new CliError(`row ${i + 1} has seq ${String(l.seq)}: expected the trail's rows numbered 1, 2, … (damaged)`, { file: `${where}/trail`, code: 'invalid-file' });
    });
    const bytes = lines.reduce((n, l) => n + Buffer.byteLength(l.line) + 1, 0);
    if (bytes !== state.trailBytes) throw new CliError(`holds ${bytes} bytes of decisions, the state says ${state.trailBytes} were committed: expected the trail the state was committed with`, { file: `${where}/trail`, code: 'invalid-file' });
    const trail = checkedTrail(lines.map((l) => l.line), rollout.snapshot().trail, `${where}/trail`);
    return { dir: where, plan, planBytes, manifest, state, rollout, trail, uncommitted: 0 };
  }

  async create(input: NewRollout): Promise<string> {
    checkId(input.plan.id);
    const state = initialState(input);
    try {
      await this.client.query('BEGIN');
      const inserted = await this.client.query('INSERT INTO rollout (id, plan, manifest, state) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING', [input.plan.id, Buffer.from(input.planBytes), Buffer.from(input.manifest), stateText(state)]);
      if (inserted.rowCount !== 1) throw new CliError(`rollout ${input.plan.id} already exists: expected a new rollout id (see holdfast rollout status)`, { file: this.place(input.plan.id), code: 'exists' });
      await this.appendTrail(input.plan.id, 0, input.decisions);
      await this.client.query('COMMIT');
    } catch (error) {
      await this.client.query('ROLLBACK').catch(() => undefined);
      throw this.fail(`cannot create rollout ${input.plan.id}`, error);
    }
    return this.place(input.plan.id);
  }

  async commit(loaded: LoadedRollout, next: StateChange, decisions: readonly Decision[]): Promise<StoreState> {
    const id = loaded.state.id;
    const state: StoreState = { ...loaded.state, ...next, trailBytes: loaded.state.trailBytes + Buffer.byteLength(trailText(decisions)), engine: loaded.rollout.snapshot() };
    try {
      await this.client.query('BEGIN');
      await this.appendTrail(id, loaded.trail.length, decisions);
      // Only over the state this step was decided from (the lock makes it so; this checks it).
      const updated = await this.client.query('UPDATE rollout SET state = $2 WHERE id = $1 AND state = $3', [id, stateText(state), stateText(loaded.state)]);
      if (updated.rowCount !== 1) throw new CliError(`rollout ${id} changed since it was read: expected one writer (the inventory's lock)`, { file: this.place(id), code: 'failed' });
      await this.client.query('COMMIT');
    } catch (error) {
      await this.client.query('ROLLBACK').catch(() => undefined);
      throw this.fail(`cannot commit rollout ${id}`, error);
    }
    return state;
  }

  /** A rollout read from the file backend, as it is (inside the caller's transaction: `fleet import`); its uncommitted lines are left behind. */
  async insertLoaded(loaded: LoadedRollout): Promise<void> {
    const id = loaded.state.id;
    const bytes = loaded.trail.reduce((n, d) => n + Buffer.byteLength(JSON.stringify(d)) + 1, 0);
    if (bytes !== loaded.state.trailBytes) throw new CliError(`rollout ${id}'s trail is ${bytes} bytes once re-encoded, its state says ${loaded.state.trailBytes}: not imported`, { file: loaded.dir, code: 'invalid-file' });
    await this.client.query('INSERT INTO rollout (id, plan, manifest, state) VALUES ($1, $2, $3, $4)', [id, Buffer.from(loaded.planBytes), Buffer.from(loaded.manifest), stateText(loaded.state)]);
    await this.appendTrail(id, 0, loaded.trail);
  }

  private async appendTrail(id: string, after: number, decisions: readonly Decision[]): Promise<void> {
    if (decisions.length === 0) return;
    const lines = decisions.map((d) => JSON.stringify(d));
    await this.client.query('INSERT INTO rollout_trail (id, seq, line) SELECT $1, s, l FROM unnest($2::bigint[], $3::text[]) AS u(s, l)', [id, lines.map((_, i) => after + i + 1), lines]);
  }
}
