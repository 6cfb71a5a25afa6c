/**
 * Where a rollout lives (docs/spec/rollout.md, "Where a rollout is kept"):
 * beside the fleet inventory, in `<inventory>.rollouts/<id>/`, changed
 * only under the inventory's lock (`withFleetLock`, tools/fleet/inventory.ts):
 *
 * - `plan.json`: the plan file's bytes as given to `start` (never changed);
 * - `manifest.bin`: the signed manifest of the image (never changed);
 * - `trail.jsonl`: the decisions, one JSON object a line, hash-chained,
 *   only ever appended to;
 * - `state.json`: `holdfast-rollout/1`: the engine's snapshot, the ingest
 *   cursor, the rollout's clock and how many bytes of the trail it covers.
 *
 * A step appends its decisions to the trail (fsync) and then replaces the
 * state atomically (temporary file, fsync, rename): the state's rename is
 * the commit. A process killed before it leaves trail lines past the
 * state's `trailBytes`: decisions never committed, ignored by readers and
 * cut off by the next step. A start builds the whole folder under a
 * temporary name and renames it into place. Anything else is refused with
 * one line (damaged, edited, newer format), never read as empty.
 *
 * Host tool (Node).
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, statSync, ftruncateSync, writeSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { z } from 'zod';
import { CliError } from '../cli/errors.ts';
import { readInput, writeFilesAtomically } from '../cli/files.ts';
import { forgetOnExit, removeOnExit } from '../cli/cleanup.ts';
import type { Fleet } from '../fleet/inventory.ts';
import { decisionHash, firstTrailBreak, Rollout, RolloutStateError, TRAIL_ORIGIN, type Decision } from './engine.ts';
import { parsePlan, ROLLOUT_PLAN_MAX_BYTES, RolloutPlanError, type RolloutPlan } from './plan.ts';
import type { FleetMember } from './cohort.ts';

export const ROLLOUT_STORE_FORMAT = 'holdfast-rollout/1';
/** Largest state file read (about 150 bytes a device: 1,000,000 devices). */
export const ROLLOUT_STATE_MAX_BYTES = 256 * 1024 * 1024;
/** Largest trail read. */
export const ROLLOUT_TRAIL_MAX_BYTES = 1024 * 1024 * 1024;
/** Largest manifest kept (one signed envelope). */
export const ROLLOUT_MANIFEST_MAX_BYTES = 64 * 1024;

export const sha256Hex = (bytes: Uint8Array | string): string => createHash('sha256').update(bytes).digest('hex');

const storeStateSchema = z.strictObject({
  format: z.literal(ROLLOUT_STORE_FORMAT, `expected "${ROLLOUT_STORE_FORMAT}" (a newer format needs a newer holdfast)`),
  id: z.string(),
  planSha256: z.string().regex(/^[0-9a-f]{64}$/),
  manifestSha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** The rollout's clock: the time of its last start/step/halt, seconds. */
  clock: z.number().finite(),
  /** Bytes of trail.jsonl this state covers (the committed trail). */
  trailBytes: z.number().int().min(0),
  /** Per device: the highest record counter already observed from the ingest. */
  cursor: z.record(z.string().regex(/^[0-9a-f]{16}$/), z.number().int().min(0)),
  /** Audit entries whose tag did not check with the device's audit key (not signals). */
  badTags: z.number().int().min(0),
  /** The engine's snapshot (engine.ts, format checked by Rollout.restore). */
  engine: z.unknown(),
});
export type StoreState = z.infer<typeof storeStateSchema>;

export interface LoadedRollout {
  readonly dir: string;
  readonly plan: RolloutPlan;
  /** The plan's bytes as given to `start`. */
  readonly planBytes: Uint8Array;
  readonly manifest: Uint8Array;
  readonly state: StoreState;
  readonly rollout: Rollout;
  /** The committed trail. */
  readonly trail: Decision[];
  /** Lines past the committed trail (a step killed after appending, before committing). */
  readonly uncommitted: number;
}

export function rolloutsDir(inventory: string): string {
  return `${inventory}.rollouts`;
}

export function rolloutDir(inventory: string, id: string): string {
  if (!/^[a-z0-9][a-z0-9._-]{0,63}$/.test(id)) throw new CliError('expected a rollout id: 1..64 of a-z 0-9 . _ -', { field: '--id', code: 'usage', exitCode: 2 });
  return join(rolloutsDir(inventory), id);
}

/** What a rollout needs of the inventory: active/quarantined/revoked, cohort, gateway, and the version the device proved (none: not eligible). */
export function fleetMembers(fleet: Fleet): FleetMember[] {
  const out: FleetMember[] = [];
  for (const d of fleet.devices) {
    if (d.firmware.version === null) continue;
    out.push({ device: d.deviceId, cohort: d.cohort ?? '', gateway: d.gateway ?? '', standing: d.state, imageVersion: d.firmware.version });
  }
  return out;
}

export function trailText(decisions: readonly Decision[]): string {
  return decisions.map((d) => `${JSON.stringify(d)}\n`).join('');
}

function fsyncDir(path: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    fsyncSync(fd);
  } catch {
    // some file systems cannot fsync a folder
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function writeNew(path: string, data: Uint8Array | string, mode: number): void {
  const fd = openSync(path, 'wx', mode);
  try {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at, bytes.length - at);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Create the rollout's folder (call under the inventory's lock): built
 * under a temporary name, renamed into place, so a killed start leaves
 * either no rollout or a whole one. An existing rollout of this id: exit 1.
 */
export function createRollout(inventory: string, input: NewRollout): string {
  const dir = rolloutDir(inventory, input.plan.id);
  if (statSync(dir, { throwIfNoEntry: false }) !== undefined) throw new CliError(`rollout ${input.plan.id} already exists: expected a new rollout id (see holdfast rollout status)`, { file: dir, code: 'exists' });
  const parent = rolloutsDir(inventory);
  mkdirSync(parent, { recursive: true, mode: 0o700 });
  const temp = join(parent, `.${input.plan.id}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  mkdirSync(temp, { mode: 0o700 });
  removeOnExit(temp);
  try {
    const trail = trailText(input.decisions);
    const state = initialState(input);
    writeNew(join(temp, 'plan.json'), input.planBytes, 0o600);
    writeNew(join(temp, 'manifest.bin'), input.manifest, 0o600);
    writeNew(join(temp, 'trail.jsonl'), trail, 0o600);
    writeNew(join(temp, 'state.json'), stateText(state), 0o600);
    fsyncDir(temp);
    renameSync(temp, dir);
    forgetOnExit(temp);
    fsyncDir(parent);
  } catch (error) {
    rmSync(temp, { recursive: true, force: true });
    forgetOnExit(temp);
    if (error instanceof CliError) throw error;
    throw new CliError(`cannot create the rollout (${(error as NodeJS.ErrnoException).code ?? String(error)})`, { file: dir, code: 'io' });
  }
  return dir;
}

/** What `rollout start` keeps: the plan's bytes, the manifest, the started engine and its first decisions. */
export interface NewRollout {
  planBytes: Uint8Array;
  plan: RolloutPlan;
  manifest: Uint8Array;
  rollout: Rollout;
  decisions: readonly Decision[];
  now: number;
}

/** A new rollout's state (both backends). */
export function initialState(input: NewRollout): StoreState {
  return { format: ROLLOUT_STORE_FORMAT, id: input.plan.id, planSha256: sha256Hex(input.planBytes), manifestSha256: sha256Hex(input.manifest), clock: input.now, trailBytes: Buffer.byteLength(trailText(input.decisions)), cursor: {}, badTags: 0, engine: input.rollout.snapshot() };
}

/** What a step changes besides the engine and the trail. */
export type StateChange = Omit<StoreState, 'format' | 'id' | 'planSha256' | 'manifestSha256' | 'trailBytes' | 'engine'>;

/**
 * Where rollouts are kept: files beside the inventory (fileRolloutStore) or
 * PostgreSQL tables in the inventory's database (tools/rollout/store-postgres.ts).
 * `create` and `commit` are called under the inventory's lock (FleetStore.withLock);
 * each is all or nothing.
 */
export interface RolloutStore {
  list(): Promise<string[]>;
  load(id: string): Promise<LoadedRollout>;
  /** A new rollout (an existing id: exit 1); resolves to where it is kept. */
  create(input: NewRollout): Promise<string>;
  /** Append `decisions` to the trail and replace the state, as one commit. */
  commit(loaded: LoadedRollout, next: StateChange, decisions: readonly Decision[]): Promise<StoreState>;
}

/** The file backend: `<inventory>.rollouts/<id>/`. */
export function fileRolloutStore(inventory: string): RolloutStore {
  return {
    list: async () => listRollouts(inventory),
    load: async (id) => loadRollout(inventory, id),
    create: async (input) => createRollout(inventory, input),
    commit: async (loaded, next, decisions) => commitRollout(loaded, next, decisions),
  };
}

/** The state's JSON with `sha256` (of the JSON before it) as its last field: a torn or edited state does not check. */
export function stateText(state: StoreState): string {
  const body = JSON.stringify(state);
  return `${body.slice(0, -1)},"sha256":"${sha256Hex(body)}"}\n`;
}

/** The ids of the rollouts kept beside `inventory` (temporary folders of killed starts left out). */
export function listRollouts(inventory: string): string[] {
  const parent = rolloutsDir(inventory);
  if (statSync(parent, { throwIfNoEntry: false }) === undefined) return [];
  return readdirSync(parent).filter((n) => !n.startsWith('.')).sort();
}

/**
 * Read a rollout: plan, manifest, state and committed trail, each checked
 * (hashes, format, the trail's chain and its last hash against the
 * state's). Any damage is a CliError naming the file; never an empty rollout.
 */
export function loadRollout(inventory: string, id: string): LoadedRollout {
  const dir = rolloutDir(inventory, id);
  if (statSync(dir, { throwIfNoEntry: false }) === undefined) throw new CliError(`no rollout ${id} beside this inventory: expected an id from holdfast rollout start`, { file: dir, code: 'not-found' });
  const statePath = join(dir, 'state.json');
  const state = parseStateText(readInput(statePath, 'a rollout state (holdfast rollout start)', ROLLOUT_STATE_MAX_BYTES), id, statePath);
  const planPath = join(dir, 'plan.json');
  const planBytes = readInput(planPath, 'a rollout plan', ROLLOUT_PLAN_MAX_BYTES);
  const plan = checkedPlan(planBytes, state, planPath);
  const manifestPath = join(dir, 'manifest.bin');
  const manifest = checkedManifest(readInput(manifestPath, 'a signed manifest', ROLLOUT_MANIFEST_MAX_BYTES), state, manifestPath);
  const rollout = restoredRollout(plan, state, statePath);
  const { trail, uncommitted } = readTrail(join(dir, 'trail.jsonl'), state, rollout.snapshot().trail);
  return { dir, plan, planBytes, manifest, state, rollout, trail, uncommitted };
}

/** A state's bytes (stateText) checked: JSON, its sha256, the schema, the rollout id. `where` names it in errors. */
export function parseStateText(stateBytes: Uint8Array, id: string, where: string): StoreState {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(stateBytes).toString('utf8'));
  } catch {
    throw new CliError(`not JSON: expected a ${ROLLOUT_STORE_FORMAT} state (damaged? it is never written in place)`, { file: where, code: 'invalid-file' });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || typeof (raw as { sha256?: unknown }).sha256 !== 'string') throw new CliError(`has no sha256: expected a ${ROLLOUT_STORE_FORMAT} state`, { file: where, code: 'invalid-file' });
  const { sha256, ...rest } = raw as Record<string, unknown>;
  if (sha256Hex(JSON.stringify(rest)) !== sha256) throw new CliError('does not match its sha256: damaged or edited (it is never written in place)', { file: where, code: 'invalid-file' });
  const parsed = storeStateSchema.safeParse(rest);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new CliError(issue.message, { file: where, field: issue.path.join('.') || '(file)', code: 'invalid-file' });
  }
  const state = parsed.data;
  if (state.id !== id) throw new CliError(`belongs to rollout ${state.id}: expected ${id}`, { file: where, code: 'invalid-file' });
  return state;
}

/** The plan's bytes checked against the state's hash, then parsed. */
export function checkedPlan(planBytes: Uint8Array, state: StoreState, where: string): RolloutPlan {
  if (sha256Hex(planBytes) !== state.planSha256) throw new CliError('changed since the rollout started: expected the plan the state was made with', { file: where, code: 'invalid-file' });
  try {
    return parsePlan(planBytes);
  } catch (error) {
    if (error instanceof RolloutPlanError) throw new CliError(error.message, { file: where, code: 'invalid-file' });
    throw error;
  }
}

/** The manifest's bytes checked against the state's hash. */
export function checkedManifest(manifest: Uint8Array, state: StoreState, where: string): Uint8Array {
  if (sha256Hex(manifest) !== state.manifestSha256) throw new CliError('changed since the rollout started: expected the manifest the rollout was started with', { file: where, code: 'invalid-file' });
  return manifest;
}

/** The engine restored from the state's snapshot. */
export function restoredRollout(plan: RolloutPlan, state: StoreState, where: string): Rollout {
  try {
    return Rollout.restore(plan, state.engine);
  } catch (error) {
    if (error instanceof RolloutStateError) throw new CliError(error.message, { file: where, code: 'invalid-file' });
    throw error;
  }
}

function readTrail(path: string, state: StoreState, head: { seq: number; hash: string }): { trail: Decision[]; uncommitted: number } {
  const bytes = readInput(path, 'a rollout trail', ROLLOUT_TRAIL_MAX_BYTES);
  if (bytes.length < state.trailBytes) throw new CliError(`is ${bytes.length} bytes, shorter than the ${state.trailBytes} the state says were committed: expected the whole trail (truncated?)`, { file: path, code: 'invalid-file' });
  const committed = Buffer.from(bytes.subarray(0, state.trailBytes)).toString('utf8');
  if (committed.length > 0 && !committed.endsWith('\n')) throw new CliError(`the committed trail does not end a line at byte ${state.trailBytes}: expected whole lines (edited?)`, { file: path, code: 'invalid-file' });
  const trail = checkedTrail(committed === '' ? [] : committed.slice(0, -1).split('\n'), head, path);
  const tail = Buffer.from(bytes.subarray(state.trailBytes)).toString('utf8');
  const uncommitted = tail === '' ? 0 : tail.split('\n').filter((l) => l !== '').length;
  return { trail, uncommitted };
}

/** The committed trail's lines (one decision each) parsed and checked: each chains to the one before, and the last is the state's head. */
export function checkedTrail(lines: readonly string[], head: { seq: number; hash: string }, where: string): Decision[] {
  const trail: Decision[] = [];
  lines.forEach((line, i) => {
    try {
      trail.push(JSON.parse(line) as Decision);
    } catch {
      throw new CliError(`line ${i + 1} is not JSON: expected one decision a line (damaged or edited)`, { file: where, code: 'invalid-file' });
    }
  });
  const broken = firstTrailBreak(trail);
  if (broken >= 0) throw new CliError(`entry ${broken + 1} does not chain to the one before (edited, removed or moved): the trail is refused`, { file: where, code: 'invalid-file' });
  const last = trail.at(-1);
  if (trail.length !== head.seq || (last?.hash ?? TRAIL_ORIGIN) !== head.hash) throw new CliError(`ends at entry ${trail.length}, the state at ${head.seq}: expected the trail the state was committed with`, { file: where, code: 'invalid-file' });
  return trail;
}

/**
 * Commit a step (call under the inventory's lock): cut off lines a killed
 * step left past the committed trail, append `decisions` (fsync), then
 * replace the state (the commit point).
 */
export function commitRollout(loaded: LoadedRollout, next: StateChange, decisions: readonly Decision[]): StoreState {
  const trailPath = join(loaded.dir, 'trail.jsonl');
  const text = trailText(decisions);
  const trailBytes = loaded.state.trailBytes + Buffer.byteLength(text);
  let fd: number | undefined;
  try {
    fd = openSync(trailPath, 'r+');
    ftruncateSync(fd, loaded.state.trailBytes);
    const bytes = Buffer.from(text, 'utf8');
    for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at, bytes.length - at, loaded.state.trailBytes + at);
    fsyncSync(fd);
  } catch (error) {
    throw new CliError(`cannot append to the trail (${(error as NodeJS.ErrnoException).code ?? String(error)})`, { file: trailPath, code: 'io' });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  const state: StoreState = { ...loaded.state, ...next, trailBytes, engine: loaded.rollout.snapshot() };
  writeFilesAtomically([{ path: join(loaded.dir, 'state.json'), data: stateText(state), mode: 0o600, what: 'the rollout state' }]);
  return state;
}

/** Check that a decision list chains from `head` (used by tests and `trail --verify`). */
export function chainsFrom(head: { seq: number; hash: string }, decisions: readonly Decision[]): boolean {
  let prev = head.hash;
  let seq = head.seq;
  for (const d of decisions) {
    if (d.seq !== ++seq || d.prevHash !== prev || decisionHash(d) !== d.hash) return false;
    prev = d.hash;
  }
  return true;
}
