/**
 * `holdfast provision`: make the identity of one device or of a production
 * batch (docs/design/fleet-identity.md, docs/spec/provisioning.md).
 *
 * For each device: an 8-byte device id, a 32-byte device secret and an
 * Ed25519 key pair, all from node:crypto's CSPRNG; the provisioning record
 * for the board's `hf_prov` partition, padded to the partition's size
 * (flashed at the partition's offset with the app); an inventory entry.
 * Once per run: the factory images of the runtime's stores
 * (factory-stores.ts), the same for every device of the run (the trust
 * store holds the fleet's root, the others their formatted empty state),
 * flashed beside hf_prov by `holdfast flash --factory`.
 *
 * Order, so that no made device is ever unregistered: each step of
 * identities is registered in the inventory first (saved atomically under
 * its lock), then its image files are written (0600, in a 0700 folder),
 * then the manifest is rewritten. A crash can leave registered devices
 * without an image (listed in the inventory, not in the manifest: never
 * flashed, harmless, `fleet revoke` them), never an image of an
 * unregistered device. Nothing here prints or returns a secret.
 *
 * Host tool (Node).
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadBoard, type Board, PROVISIONING_PARTITION } from '../boards/board.ts';
import { provisioningImage, type ProvisioningIdentity } from '../../firmware/security/provisioning.ts';
import { ed25519PublicKeyProblem } from '../../firmware/security/ed25519-key.ts';
import { hostCrypto, keyFromSeed } from '../keys/signer.ts';
import { trustProvisionedRoot } from '../../firmware/update/root.ts';
import { factoryStoreImages, type WriteUnit } from './factory-stores.ts';
import { CliError, UsageError } from '../cli/errors.ts';
import { writeFilesAtomically } from '../cli/files.ts';
import { nowIso, type FleetDevice } from '../fleet/inventory.ts';
import { fileFleetStore, type FleetStore } from '../fleet/store.ts';
import type { SuiteName } from '../ingest/inventory.ts';

/** 2: the factory store images (`factory`). */
export const MANIFEST_FORMAT = 'holdfast-provision-manifest/2';
/** Flash encryption the devices will run with: the store images' program unit (factory-stores.ts, WriteUnit). */
export type FlashEncryption = 'off' | 'on';
export const WRITE_UNITS: Readonly<Record<FlashEncryption, WriteUnit>> = Object.freeze({ off: 1, on: 16 });
export const MANIFEST_FILE = 'manifest.json';
/** Fewest devices registered per inventory save; a larger run saves at most MAX_CHECKPOINTS times (each save rewrites and rechecks the whole file). */
export const CHECKPOINT_DEVICES = 250;
export const MAX_CHECKPOINTS = 20;
export const MAX_COUNT = 100_000;

export interface ProvisionOptions {
  boardId: string;
  outDir: string;
  inventoryPath: string;
  count: number;
  keyId: number;
  suite: SuiteName;
  commandKey: { keyId: number; publicKey: Uint8Array };
  consoleKey?: Uint8Array;
  revocationKey?: Uint8Array;
  rootDocument?: Uint8Array;
  /** Program unit of the store images (default 'off': 1 byte). */
  flashEncryption?: FlashEncryption;
  broker?: { host: string; port: number };
  cohort?: string;
  gateway?: string;
  /** Called after each device's image is written: (done, total). */
  onProgress?: (done: number, total: number) => void;
  /** Random bytes (tests may pass a seeded source; default node:crypto). */
  random?: (length: number) => Uint8Array;
}

/** What every device of a fleet is given besides its own identity (the keys it trusts, its broker). */
export type FleetTrust = Pick<ProvisionOptions, 'keyId' | 'commandKey' | 'consoleKey' | 'revocationKey' | 'rootDocument' | 'broker'>;

/** The provisioning record's fields for one new device: its own id, secret and key pair, and the fleet's trust. */
export function provisioningIdentity(trust: FleetTrust, boardId: string, own: { deviceId: Uint8Array; deviceSecret: Uint8Array; key: { seed: Uint8Array; publicKey: Uint8Array } }): ProvisioningIdentity {
  return {
    deviceId: own.deviceId,
    keyId: trust.keyId,
    boardId,
    deviceSecret: own.deviceSecret,
    deviceSeed: own.key.seed,
    devicePublicKey: own.key.publicKey,
    commandKey: trust.commandKey,
    consoleKey: trust.consoleKey,
    revocationKey: trust.revocationKey,
    rootDocument: trust.rootDocument,
    brokerHost: trust.broker?.host ?? '',
    brokerPort: trust.broker?.port ?? 0,
  };
}

export interface ManifestDevice {
  deviceId: string;
  keyId: number;
  publicKey: string;
  file: string;
  /** SHA-256 of the image file, to check a copy before flashing. */
  sha256: string;
}

/** One store's factory image: the same file for every device of the run. */
export interface ManifestStore {
  label: string;
  offset: number;
  size: number;
  file: string;
  sha256: string;
}

export interface ManifestFactory {
  flashEncryption: FlashEncryption;
  /** Program unit the stores are formatted for (1, or 16 under flash encryption). */
  writeUnit: WriteUnit;
  /** Version of the root in hf_trust, or null: the trust store is left erased (no --root). */
  trustRoot: number | null;
  /** In address order. */
  stores: ManifestStore[];
}

export interface ProvisionManifest {
  format: typeof MANIFEST_FORMAT;
  createdAt: string;
  board: string;
  partition: { label: string; offset: number; size: number };
  inventory: string;
  commandKey: { keyId: number; publicKey: string };
  consoleKey: string | null;
  revocationKey: string | null;
  rootDocument: boolean;
  broker: string | null;
  cohort: string | null;
  gateway: string | null;
  factory: ManifestFactory;
  devices: ManifestDevice[];
}

/** Where the board's provisioning partition is. */
export function provisioningPartition(board: Board): { label: string; offset: number; size: number } {
  const p = board.partitions.find((q) => q.name === PROVISIONING_PARTITION);
  if (p === undefined) throw new CliError(`board ${board.id} has no ${PROVISIONING_PARTITION} partition: expected one (docs/spec/provisioning.md)`, { code: 'invalid-file' });
  return { label: p.name, offset: p.offset, size: p.size };
}

/** An output folder for secrets: created 0700, or an existing one that only its owner can read. */
export function secretFolder(dir: string): void {
  const stats = statSync(dir, { throwIfNoEntry: false });
  if (stats === undefined) {
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      chmodSync(dir, 0o700);
    } catch (error) {
      throw new CliError(`cannot create the folder (${(error as NodeJS.ErrnoException).code ?? String(error)})`, { file: dir, code: 'io' });
    }
    return;
  }
  if (!stats.isDirectory()) throw new CliError('is not a directory: expected an output folder', { file: dir, code: 'not-a-directory' });
  if ((stats.mode & 0o077) !== 0) throw new CliError(`has mode ${(stats.mode & 0o777).toString(8)}: expected a folder only its owner can open (0700), since it receives device secrets`, { file: dir, code: 'permission' });
}

/**
 * Make `options.count` devices. The inventory is `store` (a file or PostgreSQL, tools/fleet/store.ts) or, without
 * one, the file at `options.inventoryPath`; every batch is registered in one atomic change under its lock.
 */
export async function provision(options: ProvisionOptions, store: FleetStore = fileFleetStore(options.inventoryPath)): Promise<ProvisionManifest> {
  const board = loadBoard(options.boardId);
  const partition = provisioningPartition(board);
  if (!Number.isInteger(options.count) || options.count < 1 || options.count > MAX_COUNT) throw new UsageError(`count ${options.count}: expected 1..${MAX_COUNT}`, { field: '--count' });
  for (const [what, key] of [['--command-key', options.commandKey.publicKey], ['--console-key', options.consoleKey], ['--revocation-key', options.revocationKey]] as const) {
    if (key === undefined) continue;
    const problem = ed25519PublicKeyProblem(key);
    if (problem !== undefined) throw new CliError(`not a usable Ed25519 public key: ${problem}`, { field: what, code: 'invalid-file' });
  }
  secretFolder(options.outDir);
  if (statSync(join(options.outDir, MANIFEST_FILE), { throwIfNoEntry: false }) !== undefined) throw new CliError(`already exists: expected a new --out folder for each provisioning run`, { file: join(options.outDir, MANIFEST_FILE), code: 'exists' });
  const random = options.random ?? ((n: number) => new Uint8Array(randomBytes(n)));
  const crypto = hostCrypto();
  const createdAt = nowIso();
  let root;
  if (options.rootDocument !== undefined) {
    const verdict = trustProvisionedRoot(crypto, options.rootDocument);
    if (!verdict.ok) throw new CliError(`${verdict.reason}: ${verdict.message}: expected a signed root document a device accepts`, { field: '--root', code: 'invalid-file' });
    root = verdict.root;
  }
  const flashEncryption = options.flashEncryption ?? 'off';
  // The stores first (the same for every device of the run): a manifest never names a device without them.
  const factory: ManifestFactory = { flashEncryption, writeUnit: WRITE_UNITS[flashEncryption], trustRoot: root?.version ?? null, stores: [] };
  for (const store of factoryStoreImages(board, { crypto, root }, factory.writeUnit)) {
    const file = `factory.${store.label}.bin`;
    writeFilesAtomically([{ path: join(options.outDir, file), data: store.data, mode: 0o600, exclusive: true, what: 'a factory store image' }]);
    factory.stores.push({ label: store.label, offset: store.offset, size: store.size, file, sha256: createHash('sha256').update(store.data).digest('hex') });
  }
  const manifest: ProvisionManifest = {
    format: MANIFEST_FORMAT,
    createdAt,
    board: board.id,
    partition,
    inventory: store.where,
    commandKey: { keyId: options.commandKey.keyId, publicKey: hex(options.commandKey.publicKey) },
    consoleKey: options.consoleKey === undefined ? null : hex(options.consoleKey),
    revocationKey: options.revocationKey === undefined ? null : hex(options.revocationKey),
    rootDocument: options.rootDocument !== undefined,
    broker: options.broker === undefined ? null : `${options.broker.host}:${options.broker.port}`,
    cohort: options.cohort ?? null,
    gateway: options.gateway ?? null,
    factory,
    devices: [],
  };
  await store.withLock(async (tx) => {
    const fleet = await tx.load(true);
    const known = new Set(fleet.devices.map((d) => d.deviceId));
    const step = Math.max(CHECKPOINT_DEVICES, Math.ceil(options.count / MAX_CHECKPOINTS));
    for (let start = 0; start < options.count; start += step) {
      const n = Math.min(step, options.count - start);
      const batch: { identity: ProvisioningIdentity; entry: FleetDevice }[] = [];
      for (let i = 0; i < n; i++) {
        let deviceId: Uint8Array;
        do deviceId = random(8);
        while (known.has(hex(deviceId)));
        known.add(hex(deviceId));
        const deviceSecret = random(32);
        const key = keyFromSeed(random(32));
        const identity = provisioningIdentity(options, board.id, { deviceId, deviceSecret, key });
        batch.push({
          identity,
          entry: {
            deviceId: hex(deviceId),
            board: board.id,
            suite: options.suite,
            secret: hex(deviceSecret),
            state: 'active',
            cohort: options.cohort ?? null,
            gateway: options.gateway ?? null,
            firmware: { version: null, securityFloor: null },
            keys: [{ keyId: options.keyId, publicKey: hex(key.publicKey), status: 'current', sinceCounter: 0, untilCounter: null, changedAt: createdAt }],
            provisionedAt: createdAt,
            history: [{ at: createdAt, event: 'provisioned', detail: `board ${board.id}` }],
          },
        });
      }
      // 1. Register (the inventory holds the secret the ingest needs).
      fleet.devices.push(...batch.map((b) => b.entry));
      await tx.save(fleet);
      // 2. The images, each 0600.
      for (const { identity, entry } of batch) {
        const image = provisioningImage(crypto, identity, partition.size);
        const file = `${entry.deviceId}.${partition.label}.bin`;
        writeFilesAtomically([{ path: join(options.outDir, file), data: image, mode: 0o600, exclusive: true, what: 'a provisioning image' }]);
        manifest.devices.push({ deviceId: entry.deviceId, keyId: options.keyId, publicKey: entry.keys[0].publicKey, file, sha256: createHash('sha256').update(image).digest('hex') });
        image.fill(0);
        identity.deviceSecret.fill(0);
        identity.deviceSeed.fill(0);
        options.onProgress?.(manifest.devices.length, options.count);
      }
      // 3. The manifest of what exists so far.
      writeManifest(options.outDir, manifest);
    }
  });
  return manifest;
}

function writeManifest(outDir: string, manifest: ProvisionManifest): void {
  writeFilesAtomically([{ path: join(outDir, MANIFEST_FILE), data: `${JSON.stringify(manifest, null, 2)}\n`, mode: 0o600, what: 'the provisioning manifest' }]);
}

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('hex');
}
