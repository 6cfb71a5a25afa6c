/**
 * The fleet's signed, numbered revocation list (docs/spec/revocation.md):
 * revoked device identities, revoked device keys and revoked fleet command
 * keys, signed by the fleet's revocation key (provisioned in the device's
 * record, provisioning.ts). `holdfast fleet revoke` writes it; devices fetch
 * it, persist it, and refuse what it names even when offline.
 *
 * `openRevocationList` fails closed with a typed RevocationError: a list
 * not signed by the trusted key, damaged, of a newer format, not in
 * canonical order, or numbered at or below the one the device holds is
 * refused. Runs in XS and Node: no Node imports, no module state.
 */
import type { Crypto } from '../hal/crypto.ts';
import { FORMAT_VERSIONS } from '../base/format-versions.ts';
import { setErrorName } from '../base/error-name.ts';
import { DEVICE_ID_LENGTH } from './envelope-format.ts';
import { KEY_ID_LENGTH, keyIdOf, PUBLIC_KEY_LENGTH, SIGNATURE_LENGTH } from './verify.ts';

/** "HFRL". */
export const REVOCATION_MAGIC: readonly number[] = Object.freeze([0x48, 0x46, 0x52, 0x4c]);
export const REVOCATION_FORMAT_VERSION = FORMAT_VERSIONS.revocationList;
/** magic (4) | version | flags | entry count (u16) | number (u32) | issued at (u32 s). */
export const REVOCATION_HEADER_LENGTH = 16;
/** kind (1) | device id (8) | key id (u32). */
export const REVOCATION_ENTRY_LENGTH = 13;
/** Most entries: 512 (6,744 bytes of list): what a device can hold in RAM while it checks one. */
export const MAX_REVOCATION_ENTRIES = 512;
export const REVOCATION_TRAILER_LENGTH = KEY_ID_LENGTH + SIGNATURE_LENGTH;
export const MAX_REVOCATION_LIST_LENGTH = REVOCATION_HEADER_LENGTH + MAX_REVOCATION_ENTRIES * REVOCATION_ENTRY_LENGTH + REVOCATION_TRAILER_LENGTH;

export const REVOCATION_KIND = Object.freeze({ device: 1, deviceKey: 2, commandKey: 3 });

export type RevocationEntry =
  /** Every key of the device: its records, broker account and commands are refused. */
  | { readonly kind: 'device'; readonly deviceId: Uint8Array }
  /** One envelope key id of a device (a rotated-out key). */
  | { readonly kind: 'device-key'; readonly deviceId: Uint8Array; readonly keyId: number }
  /** A fleet command key: devices refuse commands signed by it. */
  | { readonly kind: 'command-key'; readonly keyId: number };

export interface RevocationList {
  /** 1..2^32-1, grows with every list the fleet issues. */
  readonly number: number;
  /** Unix seconds at issue (informational; 0 when unknown). */
  readonly issuedAt: number;
  readonly entries: readonly RevocationEntry[];
}

export type RevocationErrorCode =
  | 'too-short'
  | 'foreign'
  | 'unknown-format'
  | 'newer-format'
  /** Lengths that do not add up, flags set, an unknown kind, entries out of canonical order. */
  | 'malformed'
  /** Signed by another key than the trusted revocation key. */
  | 'wrong-signer'
  | 'bad-signature'
  /** Numbered at or below the list the device already holds. */
  | 'not-newer';

export class RevocationError extends Error {
  readonly code: RevocationErrorCode;
  constructor(code: RevocationErrorCode, message: string) {
    super(`revocation list ${code}: ${message}`);
    setErrorName(this, 'RevocationError');
    this.code = code;
  }
}

/**
 * Check and decode a revocation list. `trustedKey`: the revocation key's
 * Ed25519 public key (from the provisioning record). `lastNumber`: the
 * number of the list the device holds (0 for none); a list numbered at or
 * below it is `not-newer`. Throws only RevocationError on any bytes.
 */
export function openRevocationList(crypto: Crypto, bytes: Uint8Array, trustedKey: Uint8Array, lastNumber = 0): RevocationList {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('bytes must be a Uint8Array');
  if (!(trustedKey instanceof Uint8Array) || trustedKey.length !== PUBLIC_KEY_LENGTH) throw new TypeError(`trustedKey must be ${PUBLIC_KEY_LENGTH} bytes`);
  if (!Number.isInteger(lastNumber) || lastNumber < 0 || lastNumber > 0xffff_ffff) throw new RangeError('lastNumber must be 0..4294967295');
  if (bytes.length < REVOCATION_HEADER_LENGTH + REVOCATION_TRAILER_LENGTH) throw new RevocationError('too-short', `${bytes.length} bytes`);
  for (let i = 0; i < 4; i++) if (bytes[i] !== REVOCATION_MAGIC[i]) throw new RevocationError('foreign', 'no HFRL magic');
  const version = bytes[4];
  if (version > REVOCATION_FORMAT_VERSION) throw new RevocationError('newer-format', `format version ${version}: this firmware reads ${REVOCATION_FORMAT_VERSION}`);
  if (version !== REVOCATION_FORMAT_VERSION) throw new RevocationError('unknown-format', `format version ${version}`);
  const count = bytes[6] | (bytes[7] << 8);
  if (count > MAX_REVOCATION_ENTRIES) throw new RevocationError('malformed', `${count} entries: at most ${MAX_REVOCATION_ENTRIES}`);
  const signed = REVOCATION_HEADER_LENGTH + count * REVOCATION_ENTRY_LENGTH;
  if (bytes.length !== signed + REVOCATION_TRAILER_LENGTH) throw new RevocationError('malformed', `${bytes.length} bytes: ${count} entries make ${signed + REVOCATION_TRAILER_LENGTH}`);
  const expectedId = keyIdOf(crypto, trustedKey);
  for (let i = 0; i < KEY_ID_LENGTH; i++) if (bytes[signed + i] !== expectedId[i]) throw new RevocationError('wrong-signer', 'signed by another key than the trusted revocation key');
  const signature = bytes.subarray(signed + KEY_ID_LENGTH, signed + KEY_ID_LENGTH + SIGNATURE_LENGTH);
  if (!crypto.ed25519Verify(signature, bytes.subarray(0, signed + KEY_ID_LENGTH), trustedKey)) throw new RevocationError('bad-signature', 'the signature does not verify');
  if (bytes[5] !== 0) throw new RevocationError('malformed', 'flags set');
  const number = u32(bytes, 8);
  if (number === 0) throw new RevocationError('malformed', 'list number 0');
  if (number <= lastNumber) throw new RevocationError('not-newer', `list ${number}: the device holds ${lastNumber}`);
  const entries: RevocationEntry[] = [];
  for (let i = 0; i < count; i++) {
    const at = REVOCATION_HEADER_LENGTH + i * REVOCATION_ENTRY_LENGTH;
    if (i > 0 && compare(bytes, at - REVOCATION_ENTRY_LENGTH, at) >= 0) throw new RevocationError('malformed', `entry ${i} is not after entry ${i - 1} (entries are sorted, each once)`);
    entries.push(decodeEntry(bytes, at, i));
  }
  return Object.freeze({ number, issuedAt: u32(bytes, 12), entries: Object.freeze(entries) });
}

/**
 * The signed bytes of a list (header, sorted entries, the signer's key id),
 * for the host to sign; `sealRevocationList` appends the signature.
 * Entries are sorted and checked here; duplicates are refused.
 */
export function encodeRevocationBody(crypto: Crypto, list: RevocationList, signerPublicKey: Uint8Array): Uint8Array {
  if (!Number.isInteger(list.number) || list.number < 1 || list.number > 0xffff_ffff) throw new RangeError('number must be 1..4294967295');
  if (!Number.isInteger(list.issuedAt) || list.issuedAt < 0 || list.issuedAt > 0xffff_ffff) throw new RangeError('issuedAt must be 0..4294967295');
  if (list.entries.length > MAX_REVOCATION_ENTRIES) throw new RangeError(`at most ${MAX_REVOCATION_ENTRIES} entries, got ${list.entries.length}`);
  const encoded = list.entries.map(encodeEntry).sort((a, b) => compare2(a, b));
  for (let i = 1; i < encoded.length; i++) if (compare2(encoded[i - 1], encoded[i]) === 0) throw new RangeError(`entry listed twice`);
  const out = new Uint8Array(REVOCATION_HEADER_LENGTH + encoded.length * REVOCATION_ENTRY_LENGTH + KEY_ID_LENGTH);
  out.set(REVOCATION_MAGIC, 0);
  out[4] = REVOCATION_FORMAT_VERSION;
  out[5] = 0;
  out[6] = encoded.length & 0xff;
  out[7] = encoded.length >>> 8;
  putU32(out, 8, list.number);
  putU32(out, 12, list.issuedAt);
  encoded.forEach((e, i) => out.set(e, REVOCATION_HEADER_LENGTH + i * REVOCATION_ENTRY_LENGTH));
  out.set(keyIdOf(crypto, signerPublicKey), out.length - KEY_ID_LENGTH);
  return out;
}

/** The list: the signed bytes followed by the 64-byte Ed25519 signature over them. */
export function sealRevocationList(body: Uint8Array, signature: Uint8Array): Uint8Array {
  if (signature.length !== SIGNATURE_LENGTH) throw new RangeError(`signature must be ${SIGNATURE_LENGTH} bytes`);
  const out = new Uint8Array(body.length + SIGNATURE_LENGTH);
  out.set(body, 0);
  out.set(signature, body.length);
  return out;
}

/** Whether the list revokes this device's identity, or (with `keyId`) this key of it. */
export function isDeviceRevoked(list: RevocationList, deviceId: Uint8Array, keyId?: number): boolean {
  for (const e of list.entries) {
    if (e.kind === 'command-key' || !sameBytes(e.deviceId, deviceId)) continue;
    if (e.kind === 'device') return true;
    if (keyId !== undefined && e.keyId === keyId) return true;
  }
  return false;
}

/** Whether commands signed by the command key `keyId` must be refused. */
export function isCommandKeyRevoked(list: RevocationList, keyId: number): boolean {
  for (const e of list.entries) if (e.kind === 'command-key' && e.keyId === keyId) return true;
  return false;
}

function decodeEntry(bytes: Uint8Array, at: number, index: number): RevocationEntry {
  const kind = bytes[at];
  const deviceId = bytes.slice(at + 1, at + 1 + DEVICE_ID_LENGTH);
  const keyId = u32(bytes, at + 1 + DEVICE_ID_LENGTH);
  if (kind === REVOCATION_KIND.device) {
    if (keyId !== 0) throw new RevocationError('malformed', `entry ${index}: a device entry with key id ${keyId}: expected 0`);
    return Object.freeze({ kind: 'device' as const, deviceId });
  }
  if (kind === REVOCATION_KIND.deviceKey) return Object.freeze({ kind: 'device-key' as const, deviceId, keyId });
  if (kind === REVOCATION_KIND.commandKey) {
    for (let i = 0; i < DEVICE_ID_LENGTH; i++) if (deviceId[i] !== 0) throw new RevocationError('malformed', `entry ${index}: a command-key entry with a device id: expected zeros`);
    return Object.freeze({ kind: 'command-key' as const, keyId });
  }
  throw new RevocationError('malformed', `entry ${index}: unknown kind ${kind}`);
}

function encodeEntry(e: RevocationEntry): Uint8Array {
  const out = new Uint8Array(REVOCATION_ENTRY_LENGTH);
  const keyId = e.kind === 'device' ? 0 : e.keyId;
  if (!Number.isInteger(keyId) || keyId < 0 || keyId > 0xffff_ffff) throw new RangeError('keyId must be 0..4294967295');
  out[0] = e.kind === 'device' ? REVOCATION_KIND.device : e.kind === 'device-key' ? REVOCATION_KIND.deviceKey : REVOCATION_KIND.commandKey;
  if (e.kind !== 'command-key') {
    if (!(e.deviceId instanceof Uint8Array) || e.deviceId.length !== DEVICE_ID_LENGTH) throw new RangeError(`deviceId must be ${DEVICE_ID_LENGTH} bytes`);
    out.set(e.deviceId, 1);
  }
  putU32(out, 1 + DEVICE_ID_LENGTH, keyId);
  return out;
}

function compare(bytes: Uint8Array, a: number, b: number): number {
  for (let i = 0; i < REVOCATION_ENTRY_LENGTH; i++) if (bytes[a + i] !== bytes[b + i]) return bytes[a + i] - bytes[b + i];
  return 0;
}

function compare2(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < REVOCATION_ENTRY_LENGTH; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function u32(bytes: Uint8Array, at: number): number {
  return (bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24)) >>> 0;
}

function putU32(out: Uint8Array, at: number, value: number): void {
  out[at] = value & 0xff;
  out[at + 1] = (value >>> 8) & 0xff;
  out[at + 2] = (value >>> 16) & 0xff;
  out[at + 3] = (value >>> 24) & 0xff;
}
