/**
 * `holdfast fleet revoke`: record a revocation in the inventory and issue
 * the next signed revocation list (docs/spec/revocation.md).
 *
 * Targets: a device (every key, for good), one key of a device
 * (`<device>/<keyId>`), or a fleet command key (`command/<keyId>`).
 * Order: the inventory (with the new list number) is saved first, then the
 * list is written; a crash between leaves a number never used, never two
 * different lists of one number.
 *
 * Host tool (Node).
 */
import * as ed from '@noble/ed25519';
import { configureEd25519 } from '../../firmware/security/noble-crypto.ts';
import { encodeRevocationBody, MAX_REVOCATION_ENTRIES, sealRevocationList, type RevocationEntry } from '../../firmware/security/revocation.ts';
import { CliError, UsageError } from '../cli/errors.ts';
import { readTextInput, writeFilesAtomically } from '../cli/files.ts';
import { hostCrypto, keyFromSeed } from '../keys/signer.ts';
import { findDevice, nowIso, type Fleet } from './inventory.ts';
import type { FleetStore } from './store.ts';

export type RevokeTarget = { kind: 'device'; deviceId: string } | { kind: 'device-key'; deviceId: string; keyId: number } | { kind: 'command-key'; keyId: number };

/** `<device>`, `<device>/<keyId>` or `command/<keyId>`; undefined when it is none of them. */
export function parseRevokeTarget(value: string): RevokeTarget | undefined {
  const keyId = (text: string): number | undefined => (/^\d{1,10}$/.test(text) && Number(text) <= 0xffff_ffff ? Number(text) : undefined);
  if (/^[0-9a-f]{16}$/.test(value)) return { kind: 'device', deviceId: value };
  const deviceKey = /^([0-9a-f]{16})\/(\d+)$/.exec(value);
  if (deviceKey !== null) {
    const k = keyId(deviceKey[2]);
    return k === undefined ? undefined : { kind: 'device-key', deviceId: deviceKey[1], keyId: k };
  }
  const command = /^command\/(\d+)$/.exec(value);
  if (command !== null) {
    const k = keyId(command[1]);
    return k === undefined ? undefined : { kind: 'command-key', keyId: k };
  }
  return undefined;
}

/** The list's entries from the inventory: revoked devices, revoked keys of the others, revoked command keys. */
export function revocationEntries(fleet: Fleet): RevocationEntry[] {
  const entries: RevocationEntry[] = [];
  for (const d of fleet.devices) {
    const deviceId = new Uint8Array(Buffer.from(d.deviceId, 'hex'));
    if (d.state === 'revoked') entries.push({ kind: 'device', deviceId });
    else for (const k of d.keys) if (k.status === 'revoked') entries.push({ kind: 'device-key', deviceId, keyId: k.keyId });
  }
  for (const c of fleet.revocation?.commandKeys ?? []) entries.push({ kind: 'command-key', keyId: c.keyId });
  return entries;
}

/** The revocation key's seed file: 64 hex digits (as `holdfast keys` writes private keys). */
export function readSeedFile(path: string): Uint8Array {
  const text = readTextInput(path, 'the revocation key (an Ed25519 seed, 64 hex digits)', 256).trim();
  if (!/^[0-9a-fA-F]{64}$/.test(text)) throw new CliError('expected the revocation key: 64 hex digits (an Ed25519 seed)', { file: path, code: 'invalid-file' });
  return new Uint8Array(Buffer.from(text, 'hex'));
}

export interface RevokeResult {
  target: RevokeTarget;
  /** false when the target was already revoked (a new list is issued all the same). */
  changed: boolean;
  number: number;
  entries: number;
  list: string;
  signerPublicKey: string;
}

/** Record the revocation of `t` in `fleet` (in place); false when it was already revoked. */
export function markRevoked(fleet: Fleet, t: RevokeTarget, at: string, reason?: string): boolean {
  const detail = reason !== undefined ? { detail: reason } : {};
  if (t.kind === 'device') {
    const d = findDevice(fleet, t.deviceId);
    if (d.state === 'revoked') return false;
    d.state = 'revoked';
    for (const k of d.keys) if (k.status !== 'revoked') Object.assign(k, { status: 'revoked', changedAt: at });
    d.history.push({ at, event: 'revoked', ...detail });
    return true;
  }
  if (t.kind === 'device-key') {
    const d = findDevice(fleet, t.deviceId);
    const k = d.keys.find((key) => key.keyId === t.keyId);
    if (k === undefined) throw new CliError(`device ${t.deviceId} has no key ${t.keyId}: expected one of ${d.keys.map((key) => key.keyId).join(', ')}`, { field: '<target>', code: 'not-found' });
    if (k.status === 'current' && d.state !== 'revoked') throw new CliError(`key ${t.keyId} is device ${t.deviceId}'s current key: revoke the device, or rotate its key first`, { field: '<target>' });
    if (k.status === 'revoked') return false;
    Object.assign(k, { status: 'revoked', changedAt: at });
    d.history.push({ at, event: 'revoked', detail: `key ${t.keyId}${reason !== undefined ? `: ${reason}` : ''}` });
    return true;
  }
  fleet.revocation ??= { number: 0, commandKeys: [] };
  if (fleet.revocation.commandKeys.some((c) => c.keyId === t.keyId)) return false;
  fleet.revocation.commandKeys.push({ keyId: t.keyId, at, ...detail });
  return true;
}

/** Take the next list number in `fleet` (in place) and its entries; the caller saves the fleet before writing the list. */
export function takeListNumber(fleet: Fleet): { number: number; entries: RevocationEntry[] } {
  const entries = revocationEntries(fleet);
  if (entries.length > MAX_REVOCATION_ENTRIES) throw new CliError(`the list would hold ${entries.length} entries: at most ${MAX_REVOCATION_ENTRIES} (docs/spec/revocation.md)`, { field: '<target>' });
  fleet.revocation ??= { number: 0, commandKeys: [] };
  if (fleet.revocation.number >= 0xffff_ffff) throw new CliError('the list number is at its largest (4294967295)', { field: '<target>' });
  fleet.revocation.number += 1;
  return { number: fleet.revocation.number, entries };
}

/** Sign list `number` of `entries` with `seed` and write it atomically to `path`; resolves to the signer's public key (hex). */
export function writeRevocationList(path: string, seed: Uint8Array, number: number, entries: RevocationEntry[], now: Date = new Date()): string {
  const signer = keyFromSeed(seed);
  configureEd25519();
  const body = encodeRevocationBody(hostCrypto(), { number, issuedAt: Math.floor(now.getTime() / 1000), entries }, signer.publicKey);
  const list = sealRevocationList(body, ed.sign(body, signer.seed));
  writeFilesAtomically([{ path, data: list, mode: 0o644, what: 'the revocation list' }]);
  return Buffer.from(signer.publicKey).toString('hex');
}

export async function revoke(options: { store: FleetStore; target: RevokeTarget; seed: Uint8Array; listPath: string; reason?: string; now?: Date }): Promise<RevokeResult> {
  keyFromSeed(options.seed);
  const at = nowIso(options.now);
  return options.store.withLock(async (lock) => {
    const fleet = await lock.load(false);
    const changed = markRevoked(fleet, options.target, at, options.reason);
    const { number, entries } = takeListNumber(fleet);
    // 1. The number is taken (saved) before any list of that number exists.
    await lock.save(fleet);
    // 2. The list.
    const signerPublicKey = writeRevocationList(options.listPath, options.seed, number, entries, options.now);
    return { target: options.target, changed, number, entries: entries.length, list: options.listPath, signerPublicKey };
  });
}

export function targetUsage(value: string): never {
  throw new UsageError(`${JSON.stringify(value)}: expected a device id (16 hex digits), <device>/<keyId> or command/<keyId>`, { field: '<target>' });
}
