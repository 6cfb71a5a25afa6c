/**
 * The fleet inventory (docs/design/fleet-identity.md): one format-versioned
 * JSON file, `holdfast-fleet/1`, holding every device holdfast provisioned:
 * device -> keys (current, retired, revoked; the counter at each change) ->
 * firmware version and security floor -> cohort, gateway -> state (active,
 * quarantined, revoked), with a history of state changes.
 *
 * It holds device secrets (the ingest derives the envelope keys from them),
 * so it is written with mode 0600, atomically (temporary file, fsync,
 * rename), under an exclusive lock file (`<file>.lock`) for the whole
 * read-modify-write, so two provisioning runs never lose each other's
 * devices. Read bounded (FLEET_MAX_BYTES) and validated with zod; errors name
 * the device and field, never a secret's value.
 *
 * `toIngestInventory` writes the ingest's own format (tools/ingest/inventory.ts,
 * docs/spec/ingest.md "Inventory"), so the ingest loads what it verifies with
 * unchanged.
 *
 * Host tool (Node).
 */
import { closeSync, openSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { z } from 'zod';
import { CliError } from '../cli/errors.ts';
import { readTextInput, writeFilesAtomically } from '../cli/files.ts';
import { removeOnExit, forgetOnExit } from '../cli/cleanup.ts';
import { INVENTORY_FORMAT, SUITE_NAMES, type SuiteName } from '../ingest/inventory.ts';

export const FLEET_FORMAT = 'holdfast-fleet/1';
/** Largest inventory read: 256 MiB (about 250,000 devices). */
export const FLEET_MAX_BYTES = 256 * 1024 * 1024;
export const DEVICE_STATES = ['active', 'quarantined', 'revoked'] as const;
export type DeviceState = (typeof DEVICE_STATES)[number];
export const KEY_STATUSES = ['current', 'retired', 'revoked'] as const;
export type KeyStatus = (typeof KEY_STATUSES)[number];

const hex16 = z.string().regex(/^[0-9a-f]{16}$/, 'expected 16 lowercase hex digits');
const u32 = z.number().int('expected an integer 0..4294967295').min(0, 'expected an integer 0..4294967295').max(0xffff_ffff, 'expected an integer 0..4294967295');
const counter = z.number().int('expected a counter 0..2^53-1').min(0, 'expected a counter 0..2^53-1').max(Number.MAX_SAFE_INTEGER, 'expected a counter 0..2^53-1');
const label = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/, 'expected 1..64 of A-Z a-z 0-9 . _ : - (starting with a letter or digit)');
const isoTime = z.string().regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/, 'expected an ISO 8601 UTC time');

const keySchema = z.strictObject({
  /** The envelope key id (docs/spec/envelope.md). */
  keyId: u32,
  /** The device's Ed25519 public key of this key generation (64 hex digits). */
  publicKey: z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits (an Ed25519 public key)'),
  status: z.enum(KEY_STATUSES, 'expected current, retired or revoked'),
  /** The device counter from which the key is used (0 for the key made at manufacture). */
  sinceCounter: counter,
  /** The counter at which the next key took effect (records of this key above it are refused); null while current. */
  untilCounter: counter.nullable(),
  changedAt: isoTime,
  /**
   * A rotated key's envelope secret (64 hex digits), derived by `fleet rotate` from the device's new key and the
   * command key (docs/spec/key-rotation.md); absent: the device's provisioned `secret`.
   */
  secret: z.string().regex(/^(?:[0-9a-f]{2}){32,64}$/, 'expected 64..128 lowercase hex digits (a 32..64-byte device secret)').optional(),
});

const eventSchema = z.strictObject({
  at: isoTime,
  event: z.enum(['provisioned', 'quarantined', 'released', 'revoked', 'key-rotated', 'changed']),
  detail: z.string().max(200).optional(),
});

const deviceSchema = z.strictObject({
  deviceId: hex16,
  board: z.string().regex(/^[a-z0-9][a-z0-9.-]{0,62}$/, 'expected a board id'),
  suite: z.enum(Object.keys(SUITE_NAMES) as [SuiteName, ...SuiteName[]], 'expected one of hmac-sha256, chacha20-poly1305, aes-256-gcm'),
  /** The device secret, 64..128 hex digits: the envelope, receipt and broker-password keys derive from it. */
  secret: z.string().regex(/^(?:[0-9a-f]{2}){32,64}$/, 'expected 64..128 lowercase hex digits (a 32..64-byte device secret)'),
  state: z.enum(DEVICE_STATES, 'expected active, quarantined or revoked'),
  cohort: label.nullable(),
  gateway: label.nullable(),
  firmware: z.strictObject({ version: u32.nullable(), securityFloor: u32.nullable() }),
  keys: z.array(keySchema).min(1, 'expected at least one key'),
  provisionedAt: isoTime,
  history: z.array(eventSchema),
  /** Re-enrollment (`fleet re-enroll`): the identity this one replaced on the same hardware. */
  replaces: hex16.optional(),
  /** Re-enrollment: the identity that replaced this one (which is then revoked). */
  replacedBy: hex16.optional(),
});

/** The fleet-level revocation state: the last list number issued and the revoked command keys (docs/spec/revocation.md). */
const revocationSchema = z.strictObject({
  number: u32,
  commandKeys: z.array(z.strictObject({ keyId: u32, at: isoTime, detail: z.string().max(200).optional() })),
});

const fleetSchema = z.strictObject({
  format: z.literal(FLEET_FORMAT, `expected "${FLEET_FORMAT}"`),
  revocation: revocationSchema.optional(),
  devices: z.array(deviceSchema, 'expected an array of devices'),
});

export type FleetKey = z.infer<typeof keySchema>;
export type FleetEvent = z.infer<typeof eventSchema>;
export type FleetDevice = z.infer<typeof deviceSchema>;
export type FleetRevocation = z.infer<typeof revocationSchema>;
export interface Fleet {
  format: typeof FLEET_FORMAT;
  /** Absent until the first `fleet revoke`. */
  revocation?: FleetRevocation;
  devices: FleetDevice[];
}

/** A fleet with no devices (the file does not exist yet). */
export function emptyFleet(): Fleet {
  return { format: FLEET_FORMAT, devices: [] };
}

/** Parse and check inventory text. `file` names it in errors. */
export function parseFleet(text: string, file: string): Fleet {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    // JSON.parse's message quotes the text near the error, which may be a secret: only the position is kept.
    const at = /position (\d+)/.exec(String((error as Error).message))?.[1];
    throw new CliError(`not JSON${at !== undefined ? ` (at byte ${at})` : ''}: expected a ${FLEET_FORMAT} inventory`, { file, code: 'invalid-file' });
  }
  const parsed = fleetSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue.path.length === 0 ? '(file)' : issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '');
    throw new CliError(issue.code === 'unrecognized_keys' ? `unknown field(s) ${issue.keys.join(', ')}` : issue.message, { file, field, code: 'invalid-file' });
  }
  const fleet = parsed.data as Fleet;
  const seen = new Set<string>();
  fleet.devices.forEach((d, i) => {
    if (seen.has(d.deviceId)) throw new CliError(`device ${d.deviceId} is listed twice: expected unique device ids`, { file, field: `devices[${i}].deviceId`, code: 'invalid-file' });
    seen.add(d.deviceId);
    const current = d.keys.filter((k) => k.status === 'current');
    if (d.state !== 'revoked' && current.length !== 1) throw new CliError(`${current.length} current keys: expected exactly one for a device that is not revoked`, { file, field: `devices[${i}].keys`, code: 'invalid-file' });
    const ids = new Set(d.keys.map((k) => k.keyId));
    if (ids.size !== d.keys.length) throw new CliError('a key id is listed twice: expected unique key ids per device', { file, field: `devices[${i}].keys`, code: 'invalid-file' });
  });
  return fleet;
}

/** Read the inventory at `path`; a missing file is an empty fleet only when `allowMissing`. */
export function loadFleet(path: string, options: { allowMissing?: boolean } = {}): Fleet {
  if (options.allowMissing === true && statSync(path, { throwIfNoEntry: false }) === undefined) return emptyFleet();
  return parseFleet(readTextInput(path, `a ${FLEET_FORMAT} inventory`, FLEET_MAX_BYTES), path);
}

/** The inventory's text: one device per line (diffs stay readable at thousands of devices). */
export function fleetText(fleet: Fleet): string {
  const sorted = [...fleet.devices].sort((a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0));
  return `{"format":${JSON.stringify(fleet.format)},${fleet.revocation !== undefined ? `"revocation":${JSON.stringify(fleet.revocation)},` : ''}"devices":[\n${sorted.map((d) => JSON.stringify(d)).join(',\n')}\n]}\n`;
}

/** Write the inventory atomically with mode 0600; what is written is checked first, so an invalid inventory is never saved. */
export function saveFleet(path: string, fleet: Fleet): void {
  const text = fleetText(fleet);
  parseFleet(text, path);
  writeFilesAtomically([{ path, data: text, mode: 0o600, what: 'the fleet inventory' }]);
}

/**
 * Run `change` on the inventory under its lock file and save the result
 * (if `change` returns true). The lock is `<path>.lock`, created with
 * O_EXCL; a lock left by a crashed run is reported, never broken silently.
 */
export function withFleetLock<T>(path: string, run: (lock: FleetLock) => T): T {
  const release = acquireFleetLock(path);
  try {
    return run({ load: (allowMissing = true) => loadFleet(path, { allowMissing }), save: (fleet) => saveFleet(path, fleet) });
  } finally {
    release();
  }
}

/** Take the inventory's lock file (`<path>.lock`, O_EXCL); returns its release. */
export function acquireFleetLock(path: string): () => void {
  const lockPath = `${path}.lock`;
  let fd: number;
  try {
    fd = openSync(lockPath, 'wx', 0o600);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new CliError(`is held by another holdfast run (pid in the file); if none is running, remove it`, { file: lockPath, code: 'exists' });
    if (code === 'ENOENT') throw new CliError('does not exist: expected the folder of the inventory', { file: lockPath, code: 'not-found' });
    throw new CliError(`cannot create the lock file (${code ?? String(error)})`, { file: lockPath, code: 'io' });
  }
  removeOnExit(lockPath);
  try {
    writeSync(fd, `${process.pid}\n`);
  } finally {
    closeSync(fd);
  }
  return () => {
    try {
      unlinkSync(lockPath);
    } catch {
      // already gone
    }
    forgetOnExit(lockPath);
  };
}

export interface FleetLock {
  load(allowMissing?: boolean): Fleet;
  save(fleet: Fleet): void;
}

export function findDevice(fleet: Fleet, deviceId: string): FleetDevice {
  const device = fleet.devices.find((d) => d.deviceId === deviceId);
  if (device === undefined) throw new CliError(`no device ${deviceId} in the inventory: expected a device id from holdfast fleet ls`, { field: '<device>', code: 'not-found' });
  return device;
}

export function currentKey(device: FleetDevice): FleetKey | undefined {
  return device.keys.find((k) => k.status === 'current');
}

/** A device as shown by `fleet ls/show` and written to manifests: everything but the secret. */
export function publicView(device: FleetDevice): Omit<FleetDevice, 'secret'> {
  const { secret: _secret, ...rest } = device;
  // A rotated key's secret is a secret too (key-rotation.md).
  return { ...rest, keys: rest.keys.map(({ secret: _keySecret, ...k }) => k) };
}

/**
 * The ingest's inventory (docs/spec/ingest.md, "Inventory"): one entry per
 * (device, key) the ingest may accept: current and retired keys of devices
 * that are not revoked. Revoked devices and revoked keys are left out, so
 * the ingest refuses their records as `unknown-key`.
 */
export function toIngestInventory(fleet: Fleet): { format: number; devices: { deviceId: string; keyId: number; secret: string; suite: SuiteName; untilCounter?: number }[] } {
  const devices = [];
  for (const d of [...fleet.devices].sort((a, b) => (a.deviceId < b.deviceId ? -1 : 1))) {
    if (d.state === 'revoked') continue;
    // A rotated key has its own secret; a retired key whose successor's first counter is known is bounded by it (key-rotation.md).
    for (const k of d.keys) if (k.status !== 'revoked') devices.push({ deviceId: d.deviceId, keyId: k.keyId, secret: k.secret ?? d.secret, suite: d.suite, ...(k.untilCounter === null ? {} : { untilCounter: k.untilCounter }) });
  }
  return { format: INVENTORY_FORMAT, devices };
}

export function nowIso(now: Date = new Date()): string {
  return now.toISOString();
}
