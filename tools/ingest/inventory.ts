/**
 * The device inventory the ingest verifies with (docs/spec/ingest.md,
 * "Inventory"): which devices exist, their key ids, their device secrets
 * and the suite each must use. Read bounded (at most INVENTORY_MAX_BYTES),
 * validated with a zod schema; errors name the entry and field, never a
 * secret's value. Keys are derived once per (device, key id) at load
 * (deriveDeviceKeys, HKDF-SHA-256) and the secrets are dropped.
 *
 * Host tool (Node).
 */
import { z } from 'zod';
import { deriveDeviceKeys, type DeviceKeys } from '../../firmware/security/envelope-keys.ts';
import { EnvelopeSuite, type TelemetrySuite } from '../../firmware/security/envelope-format.ts';
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';

/** Format version of the inventory file. */
export const INVENTORY_FORMAT = 1;
/** Largest inventory file read: 32 MiB (about 150,000 entries). */
export const INVENTORY_MAX_BYTES = 32 * 1024 * 1024;
/** Most entries accepted. */
export const INVENTORY_MAX_ENTRIES = 100_000;

export const SUITE_NAMES = Object.freeze({
  'hmac-sha256': EnvelopeSuite.hmacSha256,
  'chacha20-poly1305': EnvelopeSuite.chacha20Poly1305,
  'aes-256-gcm': EnvelopeSuite.aes256Gcm,
} as const);
export type SuiteName = keyof typeof SUITE_NAMES;

const entrySchema = z.strictObject({
  /** The envelope's 8-byte device id as 16 lowercase hex digits; also the device's topic level and broker user name. */
  deviceId: z.string().regex(/^[0-9a-f]{16}$/, 'expected 16 lowercase hex digits (the 8-byte device id the envelope tags cover)'),
  keyId: z.number().int('expected an integer 0..4294967295').min(0, 'expected an integer 0..4294967295').max(0xffff_ffff, 'expected an integer 0..4294967295'),
  secret: z.string().regex(/^(?:[0-9a-f]{2}){32,64}$/, 'expected 64..128 lowercase hex digits (a 32..64-byte device secret)'),
  suite: z.enum(Object.keys(SUITE_NAMES) as [SuiteName, ...SuiteName[]], 'expected one of hmac-sha256, chacha20-poly1305, aes-256-gcm'),
  /**
   * A retired key (docs/spec/key-rotation.md): records under it are accepted only below this counter (the first
   * counter of the next key). Optional: absent, the ingest bounds it by the first counter it has seen under a
   * newer key id of the device.
   */
  untilCounter: z.number().int('expected an integer 1..2^53-1').min(1, 'expected an integer 1..2^53-1').max(Number.MAX_SAFE_INTEGER, 'expected an integer 1..2^53-1').optional(),
});

const inventorySchema = z.strictObject({
  format: z.literal(INVENTORY_FORMAT, `expected ${INVENTORY_FORMAT}`),
  devices: z.array(entrySchema, 'expected an array of devices').max(INVENTORY_MAX_ENTRIES, `expected at most ${INVENTORY_MAX_ENTRIES} devices`),
});

export type InventoryEntry = z.infer<typeof entrySchema>;

export class InventoryError extends Error {
  constructor(readonly field: string, message: string) {
    super(`${field}: ${message}`);
    this.name = 'InventoryError';
  }
}

/** One (device, key id) the ingest can verify. */
export interface KnownKey {
  readonly device: string;
  readonly keyId: number;
  readonly suite: TelemetrySuite;
  readonly keys: DeviceKeys;
  /** Records under this key are accepted only below this counter (a retired key whose successor's first counter is known). */
  readonly untilCounter: number | undefined;
}

export interface Inventory {
  /** Keys by `${device}/${keyId}`. */
  readonly keys: ReadonlyMap<string, KnownKey>;
  /** Device ids (hex) known to the inventory. */
  readonly devices: ReadonlySet<string>;
  /** Devices listed with more than one key id (rotated), and their key ids ascending: the ones whose old keys are bounded. */
  readonly rotated: ReadonlyMap<string, readonly number[]>;
}

/** Parse and check inventory text; the secrets are turned into derived keys and not kept. */
export function parseInventory(text: string): Inventory {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    // JSON.parse's message quotes the text near the error, which may be a secret: only the position is kept.
    const at = /position (\d+)/.exec(String((error as Error).message))?.[1];
    throw new InventoryError('(file)', `not JSON${at !== undefined ? ` (at byte ${at})` : ''}`);
  }
  const parsed = inventorySchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue.path.length === 0 ? '(file)' : issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '');
    // zod's own messages here are ours (above) or name types and keys, never input values.
    throw new InventoryError(field, issue.code === 'unrecognized_keys' ? `unknown field(s) ${issue.keys.join(', ')}` : issue.message);
  }
  const crypto = createNobleCrypto();
  const keys = new Map<string, KnownKey>();
  const devices = new Set<string>();
  const rotated = new Map<string, number[]>();
  parsed.data.devices.forEach((entry, i) => {
    const id = `${entry.deviceId}/${entry.keyId}`;
    if (keys.has(id)) throw new InventoryError(`devices[${i}]`, `device ${entry.deviceId} key ${entry.keyId} is listed twice`);
    const secret = Buffer.from(entry.secret, 'hex');
    const derived = deriveDeviceKeys(crypto, new Uint8Array(secret), new Uint8Array(Buffer.from(entry.deviceId, 'hex')), entry.keyId);
    secret.fill(0);
    keys.set(id, { device: entry.deviceId, keyId: entry.keyId, suite: SUITE_NAMES[entry.suite], keys: derived, untilCounter: entry.untilCounter });
    if (devices.has(entry.deviceId)) {
      const list = rotated.get(entry.deviceId) ?? [...keys.values()].filter((k) => k.device === entry.deviceId && k.keyId !== entry.keyId).map((k) => k.keyId);
      list.push(entry.keyId);
      list.sort((a, b) => a - b);
      rotated.set(entry.deviceId, list);
    }
    devices.add(entry.deviceId);
  });
  return { keys, devices, rotated };
}

export function deviceHex(deviceId: Uint8Array): string {
  return Buffer.from(deviceId.buffer, deviceId.byteOffset, deviceId.length).toString('hex');
}
