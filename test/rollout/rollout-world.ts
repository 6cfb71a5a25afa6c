/**
 * A small world for the rollout store, signals and CLI tests: an inventory
 * of `n` devices (deterministic secrets, firmware 0x00010300, cohorts
 * line-a/line-b, gateways gw-0..gw-3), the example plan, a signed manifest
 * of the target version, and an ingest database (PGlite, the ingest's own
 * store) with records the tests choose: health records and audit entry
 * records tagged with each device's audit key.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { saveFleet, FLEET_FORMAT, type Fleet } from '../../tools/fleet/inventory.ts';
import { PgliteStore } from '../../tools/ingest/store-pglite.ts';
import type { StoredRecord } from '../../tools/ingest/store.ts';
import { hostCrypto } from '../../tools/keys/signer.ts';
import { deriveAuditKey } from '../../firmware/runtime/boot.ts';
import { encodeAuditEvent, type AuditEvent } from '../../firmware/storage/_audit-events.ts';
import { encodeEntry } from '../../firmware/storage/_audit-format.ts';
import { manifestFields, signedManifest, testImage, testKey } from '../update/manifest-fixtures.ts';
import type { RolloutPlan } from '../../tools/rollout/plan.ts';
import { examplePlan, TARGET } from './rollout-fixtures.ts';

export { TARGET };

export function deviceId(i: number): string {
  return (0x1000 + i).toString(16).padStart(16, '0');
}

export function secretOf(device: string): string {
  return hostCryptoHex(`secret/${device}`);
}

function hostCryptoHex(text: string): string {
  const sha = hostCrypto().createSha256();
  sha.update(new TextEncoder().encode(text));
  return [...sha.digest()].map((b) => b.toString(16).padStart(2, '0')).join('');
}

export function fleetOf(n: number): Fleet {
  const at = '2026-01-01T00:00:00.000Z';
  return {
    format: FLEET_FORMAT,
    devices: Array.from({ length: n }, (_, i) => {
      const device = deviceId(i);
      return {
        deviceId: device,
        board: 'esp32-wroom-32e-4mb',
        suite: 'hmac-sha256' as const,
        secret: secretOf(device),
        state: 'active' as const,
        cohort: i % 2 === 0 ? 'line-a' : 'line-b',
        gateway: `gw-${i % 4}`,
        firmware: { version: 0x0001_0300, securityFloor: 1 },
        keys: [{ keyId: 1, publicKey: '11'.repeat(32), status: 'current' as const, sinceCounter: 0, untilCounter: null, changedAt: at }],
        provisionedAt: at,
        history: [],
      };
    }),
  };
}

export interface World {
  readonly dir: string;
  readonly inventory: string;
  readonly plan: string;
  readonly manifest: string;
  readonly db: string;
}

/** Files for a rollout over `n` devices (the ingest database created empty). */
export async function makeWorld(n: number, plan: RolloutPlan = examplePlan(), records: StoredRecord[] = []): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-rollout-'));
  const inventory = join(dir, 'fleet.json');
  saveFleet(inventory, fleetOf(n));
  writeFileSync(join(dir, 'plan.json'), JSON.stringify(plan, null, 2));
  const crypto = hostCrypto();
  writeFileSync(join(dir, 'manifest.bin'), signedManifest(manifestFields(crypto, testImage(512), { imageVersion: plan.target.imageVersion, securityVersion: plan.target.securityVersion }), [testKey(crypto, 11)]));
  const db = join(dir, 'ingest');
  mkdirSync(db);
  await addRecords(db, records);
  return { dir, inventory, plan: join(dir, 'plan.json'), manifest: join(dir, 'manifest.bin'), db };
}

/** Add accepted records to the ingest database, as the ingest would have committed them. */
export async function addRecords(db: string, records: StoredRecord[]): Promise<void> {
  const store = await PgliteStore.open(db);
  try {
    if (records.length > 0) await store.commit({ records, senders: [], refusals: [] });
  } finally {
    await store.close();
  }
}

/** An audit entry record (type 0x03) of `event`, tagged with the device's audit key (or `key` to forge). */
export function auditRecord(device: string, counter: number, event: AuditEvent, atSeconds: number, key?: Uint8Array): StoredRecord {
  const crypto = hostCrypto();
  const k = key ?? deriveAuditKey(crypto, hex(secretOf(device)), hex(device), 1);
  const { code, body } = encodeAuditEvent(event);
  const entry = encodeEntry(crypto, k, { kind: code, counter, prevHash: new Uint8Array(32), body });
  const payload = new Uint8Array(1 + entry.length);
  payload[0] = 0x03;
  payload.set(entry, 1);
  return { device, keyId: 1, counter, payload, arrivedAt: atSeconds * 1000 };
}

/** A record that is not an audit entry (a health record's type byte and padding): only says the device is alive. */
export function healthRecord(device: string, counter: number, atSeconds: number): StoredRecord {
  const payload = new Uint8Array(64);
  payload[0] = 0x02;
  payload[1] = 1;
  return { device, keyId: 1, counter, payload, arrivedAt: atSeconds * 1000 };
}

export function committed(device: string, counter: number, atSeconds: number, imageVersion = TARGET): StoredRecord {
  return auditRecord(device, counter, { kind: 'update-committed', imageVersion, securityVersion: 3, slot: 1 }, atSeconds);
}

export function rolledBack(device: string, counter: number, atSeconds: number, reason = 'health-check'): StoredRecord {
  return auditRecord(device, counter, { kind: 'update-rolled-back', imageVersion: TARGET, reason }, atSeconds);
}

export function hex(text: string): Uint8Array {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** The kill tests' choices: a seed (HOLDFAST_SEED, else from the clock; printed in the test names) and `next(n)`, 1..n from it. */
export function killPicker(): { seed: number; next: (n: number) => number } {
  const seed = Number(process.env.HOLDFAST_SEED ?? Date.now() % 100_000);
  let rand = seed;
  return {
    seed,
    next: (n: number): number => {
      rand = (rand * 1103515245 + 12345) % 2 ** 31;
      return 1 + (rand % n);
    },
  };
}
