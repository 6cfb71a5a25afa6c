/**
 * `holdfast fleet re-enroll`: a repaired device comes back with a new
 * identity, and its old identity stays refused (docs/design/fleet-identity.md,
 * "Re-enrollment").
 *
 * The new identity is made as `holdfast provision` makes one (device id,
 * 32-byte secret, Ed25519 key pair from node:crypto; the provisioning
 * record of tools/provision/provision.ts's board partition), for the old
 * device's board, suite, cohort and gateway. Order:
 *
 * 1. one inventory change (atomic, under the lock): the new device is
 *    registered with `replaces: <old>`, the old one is revoked (every key;
 *    `replacedBy: <new>`, history `revoked: re-enrolled …`), and the next
 *    revocation list number is taken;
 * 2. the signed revocation list naming the old device is written;
 * 3. the new device's provisioning image (0600, in a 0700 folder), then
 *    `re-enroll.json` (no secret).
 *
 * A crash after 1 leaves a registered device without an image (never an
 * image of an unregistered device) and possibly a list number never used:
 * `fleet revoke <old>` writes the next list again, and `fleet re-enroll
 * <new>` gives the hardware yet another identity (revoking the one that was
 * never flashed). The old identity is refused from step 1 on by whatever
 * reads the inventory again: `fleet export --format ingest` leaves it out,
 * `fleet broker-config` gives it no account.
 *
 * Host tool (Node).
 */
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { statSync } from 'node:fs';
import { loadBoard } from '../boards/board.ts';
import { provisioningImage } from '../../firmware/security/provisioning.ts';
import { ed25519PublicKeyProblem } from '../../firmware/security/ed25519-key.ts';
import { trustProvisionedRoot } from '../../firmware/update/root.ts';
import { hostCrypto, keyFromSeed } from '../keys/signer.ts';
import { CliError } from '../cli/errors.ts';
import { writeFilesAtomically } from '../cli/files.ts';
import { hex, provisioningIdentity, provisioningPartition, secretFolder } from '../provision/provision.ts';
import { findDevice, nowIso, type FleetDevice } from './inventory.ts';
import { markRevoked, takeListNumber, writeRevocationList } from './revoke.ts';
import type { FleetStore } from './store.ts';

export const REENROLL_MANIFEST = 're-enroll.json';
export const REENROLL_FORMAT = 'holdfast-re-enroll/1';

export interface ReenrollOptions {
  store: FleetStore;
  oldDeviceId: string;
  outDir: string;
  /** The fleet revocation key's seed (signs the list). */
  seed: Uint8Array;
  listPath: string;
  keyId: number;
  commandKey: { keyId: number; publicKey: Uint8Array };
  consoleKey?: Uint8Array;
  revocationKey?: Uint8Array;
  rootDocument?: Uint8Array;
  broker?: { host: string; port: number };
  reason?: string;
  random?: (length: number) => Uint8Array;
  now?: Date;
}

export interface ReenrollResult {
  old: string;
  device: string;
  keyId: number;
  publicKey: string;
  board: string;
  file: string;
  sha256: string;
  partition: { label: string; offset: number; size: number };
  list: string;
  number: number;
  entries: number;
  signerPublicKey: string;
}

export async function reenroll(options: ReenrollOptions): Promise<ReenrollResult> {
  keyFromSeed(options.seed);
  for (const [what, key] of [['--command-key', options.commandKey.publicKey], ['--console-key', options.consoleKey], ['--revocation-key', options.revocationKey]] as const) {
    if (key === undefined) continue;
    const problem = ed25519PublicKeyProblem(key);
    if (problem !== undefined) throw new CliError(`not a usable Ed25519 public key: ${problem}`, { field: what, code: 'invalid-file' });
  }
  const crypto = hostCrypto();
  if (options.rootDocument !== undefined) {
    const verdict = trustProvisionedRoot(crypto, options.rootDocument);
    if (!verdict.ok) throw new CliError(`${verdict.reason}: ${verdict.message}: expected a signed root document a device accepts`, { field: '--root', code: 'invalid-file' });
  }
  secretFolder(options.outDir);
  const manifestPath = join(options.outDir, REENROLL_MANIFEST);
  if (statSync(manifestPath, { throwIfNoEntry: false }) !== undefined) throw new CliError('already exists: expected a new --out folder for each re-enrollment', { file: manifestPath, code: 'exists' });
  const random = options.random ?? ((n: number) => new Uint8Array(randomBytes(n)));
  const at = nowIso(options.now);

  return options.store.withLock(async (lock) => {
    const fleet = await lock.load(false);
    const old = findDevice(fleet, options.oldDeviceId);
    if (old.state === 'revoked') throw new CliError(`device ${old.deviceId} is revoked${old.replacedBy !== undefined ? ` (re-enrolled as ${old.replacedBy})` : ''}: expected a device that is not revoked (re-enroll its current identity)`, { field: '<device>' });
    const board = loadBoard(old.board);
    const partition = provisioningPartition(board);
    const known = new Set(fleet.devices.map((d) => d.deviceId));
    let deviceId: Uint8Array;
    do deviceId = random(8);
    while (known.has(hex(deviceId)));
    const deviceSecret = random(32);
    const key = keyFromSeed(random(32));
    const id = hex(deviceId);
    const entry: FleetDevice = {
      deviceId: id,
      board: old.board,
      suite: old.suite,
      secret: hex(deviceSecret),
      state: 'active',
      cohort: old.cohort,
      gateway: old.gateway,
      firmware: { version: null, securityFloor: null },
      keys: [{ keyId: options.keyId, publicKey: hex(key.publicKey), status: 'current', sinceCounter: 0, untilCounter: null, changedAt: at }],
      provisionedAt: at,
      history: [{ at, event: 'provisioned', detail: `re-enrolled: replaces ${old.deviceId}` }],
      replaces: old.deviceId,
    };
    // 1. One change: the new identity registered, the old one revoked for good, the list number taken.
    fleet.devices.push(entry);
    markRevoked(fleet, { kind: 'device', deviceId: old.deviceId }, at, `re-enrolled: replaced by ${id}${options.reason !== undefined ? `: ${options.reason}` : ''}`.slice(0, 200));
    old.replacedBy = id;
    const { number, entries } = takeListNumber(fleet);
    await lock.save(fleet);
    // 2. The list naming the old device.
    const signerPublicKey = writeRevocationList(options.listPath, options.seed, number, entries, options.now);
    // 3. The image, then the manifest.
    const identity = provisioningIdentity(options, board.id, { deviceId, deviceSecret, key });
    const image = provisioningImage(crypto, identity, partition.size);
    const file = `${id}.${partition.label}.bin`;
    writeFilesAtomically([{ path: join(options.outDir, file), data: image, mode: 0o600, exclusive: true, what: 'a provisioning image' }]);
    const sha256 = createHash('sha256').update(image).digest('hex');
    image.fill(0);
    deviceSecret.fill(0);
    key.seed.fill(0);
    const result: ReenrollResult = { old: old.deviceId, device: id, keyId: options.keyId, publicKey: entry.keys[0]!.publicKey, board: board.id, file, sha256, partition, list: options.listPath, number, entries: entries.length, signerPublicKey };
    writeFilesAtomically([{ path: manifestPath, data: `${JSON.stringify({ format: REENROLL_FORMAT, createdAt: at, inventory: options.store.where, ...result }, null, 2)}\n`, mode: 0o600, exclusive: true, what: 'the re-enrollment manifest' }]);
    return result;
  });
}
