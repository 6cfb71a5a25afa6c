/**
 * The provisioning record (docs/spec/provisioning.md): a device's identity,
 * written once at manufacture into the `hf_prov` partition by
 * `holdfast provision`, read at every boot. It holds the device id, the
 * device secret (the envelope keys derive from it, envelope-keys.ts), the
 * device's own Ed25519 key pair, its key id, the fleet's public keys the
 * device trusts (command key, optional console key, optional revocation-list
 * key, optional first root document), the board id and the broker address.
 *
 * The reader fails closed: a blank partition is its own reading
 * (`{ state: 'blank' }`, "not provisioned"); anything else that is not a
 * whole, undamaged record of a known format is a ProvisioningError with a
 * stable code (foreign, unknown-format, newer-format, damaged, malformed),
 * never guessed to be blank. Damage is detected by a SHA-256 digest over
 * the header and body. Nothing here copies a secret into an error message.
 *
 * Runs in XS and Node: no Node imports, no state at module level.
 */
import type { Crypto } from '../hal/crypto.ts';
import { FORMAT_VERSIONS } from '../base/format-versions.ts';
import { setErrorName } from '../base/error-name.ts';
import { DEVICE_ID_LENGTH } from './envelope-format.ts';
import { hkdfExpand, hkdfExtract, keyInfo, MAX_DEVICE_SECRET_LENGTH, MIN_DEVICE_SECRET_LENGTH } from './envelope-keys.ts';
import { ed25519PublicKeyProblem } from './ed25519-key.ts';
import { PUBLIC_KEY_LENGTH } from './verify.ts';

/** The partition label the record lives in (every board in boards/ has it). */
export const PROVISIONING_PARTITION_LABEL = 'hf_prov';
/** "HFPV". */
export const PROVISIONING_MAGIC: readonly number[] = Object.freeze([0x48, 0x46, 0x50, 0x56]);
export const PROVISIONING_FORMAT_VERSION = FORMAT_VERSIONS.provisioning;
/** magic (4) | version (1) | flags (1) | body length (u16 LE). */
export const PROVISIONING_HEADER_LENGTH = 8;
export const PROVISIONING_DIGEST_LENGTH = 32;
/** The record fits one 4 KiB block; the partition is at least this. */
export const PROVISIONING_MAX_RECORD = 4096;
export const MAX_BODY_LENGTH = PROVISIONING_MAX_RECORD - PROVISIONING_HEADER_LENGTH - PROVISIONING_DIGEST_LENGTH;
/** Ed25519 seed (the private key as RFC 8032 stores it). */
export const DEVICE_SEED_LENGTH = 32;
export const MAX_BOARD_ID_LENGTH = 63;
export const MAX_BROKER_HOST_LENGTH = 253;
/** A root document (signed envelope) carried for the trust store's first root; larger is malformed. */
export const MAX_ROOT_DOCUMENT_LENGTH = 2048;
/** HKDF salt and label of the broker password (docs/spec/provisioning.md, "Broker password"). */
export const BROKER_HKDF_SALT = 'holdfast broker v1';
export const BROKER_PASSWORD_LABEL = 'holdfast/v1/broker-password';
/** Bytes of the derived password before hex encoding (64 hex digits on the wire). */
export const BROKER_PASSWORD_BYTES = 32;

export type ProvisioningErrorCode =
  /** Too few bytes to hold even the header and digest. */
  | 'too-short'
  /** The magic is not "HFPV" (other data, or plaintext read back through flash encryption as noise). */
  | 'foreign'
  /** Format version 0: never written by holdfast. */
  | 'unknown-format'
  /** A format version newer than this firmware knows. */
  | 'newer-format'
  /** Header length out of bounds or the digest does not match: the bytes were damaged. */
  | 'damaged'
  /** The digest matches but a field is out of its range (a broken writer): refused all the same. */
  | 'malformed';

export class ProvisioningError extends Error {
  readonly code: ProvisioningErrorCode;
  constructor(code: ProvisioningErrorCode, message: string) {
    super(`provisioning ${code}: ${message}`);
    setErrorName(this, 'ProvisioningError');
    this.code = code;
  }
}

/** A key the device trusts: its key id (as the signed documents name it) and Ed25519 public key. */
export interface TrustedKey {
  readonly keyId: number;
  readonly publicKey: Uint8Array;
}

/** What a provisioning record holds. */
export interface ProvisioningIdentity {
  /** 8 bytes: the envelope's device id, the topic level and broker user name (hex). */
  readonly deviceId: Uint8Array;
  /** The envelope key id in use at manufacture (u32). */
  readonly keyId: number;
  /** Board id (boards/<id>/board.json), ASCII 1..63. */
  readonly boardId: string;
  /** 32..64 bytes: envelope, receipt and broker-password keys derive from it. */
  readonly deviceSecret: Uint8Array;
  /** The device's own Ed25519 key pair: 32-byte seed and 32-byte public key (for key rotation). */
  readonly deviceSeed: Uint8Array;
  readonly devicePublicKey: Uint8Array;
  /** The fleet's command key: commands are signed by it. */
  readonly commandKey: TrustedKey;
  /** The console unlock key, or undefined (the console stays locked). */
  readonly consoleKey: Uint8Array | undefined;
  /** The fleet's revocation-list key (docs/spec/revocation.md), or undefined (the device accepts no revocation list). */
  readonly revocationKey: Uint8Array | undefined;
  /** The first root document (a signed ROOT envelope, docs/spec/root.md) for an empty trust store, or undefined. */
  readonly rootDocument: Uint8Array | undefined;
  /** Broker host (ASCII, 0..253; empty: none provisioned) and TCP port (0 with no host). */
  readonly brokerHost: string;
  readonly brokerPort: number;
}

export type ProvisioningReading =
  | { readonly state: 'blank' }
  | { readonly state: 'provisioned'; readonly identity: ProvisioningIdentity; readonly formatVersion: number; readonly recordLength: number };

/** Byte offsets of the header fields. */
export const PROVISIONING_OFFSETS = Object.freeze({ magic: 0, version: 4, flags: 5, bodyLength: 6, body: 8 });

/**
 * Read the provisioning partition (or at least its first `recordLength`
 * bytes). All 0xFF: `{ state: 'blank' }`. Otherwise a whole valid record or
 * a ProvisioningError; never throws anything else on any bytes.
 */
export function readProvisioning(crypto: Crypto, bytes: Uint8Array): ProvisioningReading {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('bytes must be a Uint8Array');
  let blank = bytes.length > 0;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] !== 0xff) {
      blank = false;
      break;
    }
  }
  if (blank) return Object.freeze({ state: 'blank' as const });
  if (bytes.length < PROVISIONING_HEADER_LENGTH + PROVISIONING_DIGEST_LENGTH) throw new ProvisioningError('too-short', `${bytes.length} bytes: expected at least ${PROVISIONING_HEADER_LENGTH + PROVISIONING_DIGEST_LENGTH}`);
  for (let i = 0; i < 4; i++) if (bytes[i] !== PROVISIONING_MAGIC[i]) throw new ProvisioningError('foreign', 'no HFPV magic: not a provisioning record');
  const version = bytes[PROVISIONING_OFFSETS.version];
  if (version === 0) throw new ProvisioningError('unknown-format', 'format version 0');
  if (version > PROVISIONING_FORMAT_VERSION) throw new ProvisioningError('newer-format', `format version ${version}: this firmware reads ${PROVISIONING_FORMAT_VERSION}`);
  if (version !== PROVISIONING_FORMAT_VERSION) throw new ProvisioningError('unknown-format', `format version ${version}`);
  const bodyLength = bytes[6] | (bytes[7] << 8);
  const recordLength = PROVISIONING_HEADER_LENGTH + bodyLength + PROVISIONING_DIGEST_LENGTH;
  if (bodyLength > MAX_BODY_LENGTH || recordLength > bytes.length) throw new ProvisioningError('damaged', `body length ${bodyLength} does not fit ${bytes.length} bytes`);
  const hash = crypto.createSha256();
  hash.update(bytes.subarray(0, PROVISIONING_HEADER_LENGTH + bodyLength));
  const digest = hash.digest();
  let diff = 0;
  for (let i = 0; i < PROVISIONING_DIGEST_LENGTH; i++) diff |= digest[i] ^ bytes[PROVISIONING_HEADER_LENGTH + bodyLength + i];
  if (diff !== 0) throw new ProvisioningError('damaged', 'digest mismatch');
  if (bytes[PROVISIONING_OFFSETS.flags] !== 0) throw new ProvisioningError('malformed', `flags 0x${bytes[5].toString(16)}: expected 0`);
  const identity = decodeBody(bytes.subarray(PROVISIONING_HEADER_LENGTH, PROVISIONING_HEADER_LENGTH + bodyLength));
  return Object.freeze({ state: 'provisioned' as const, identity, formatVersion: version, recordLength });
}

/** Encode a record (header, body, digest): the exact bytes; pad to the partition with 0xFF (`provisioningImage`). Throws RangeError on a value out of range. */
export function encodeProvisioning(crypto: Crypto, identity: ProvisioningIdentity): Uint8Array {
  checkIdentity(identity);
  const root = identity.rootDocument;
  const bodyLength =
    DEVICE_ID_LENGTH + 4 + 1 + identity.boardId.length + 1 + identity.deviceSecret.length + DEVICE_SEED_LENGTH + PUBLIC_KEY_LENGTH + 4 + PUBLIC_KEY_LENGTH + 1 + (identity.consoleKey === undefined ? 0 : PUBLIC_KEY_LENGTH) + 1 + (identity.revocationKey === undefined ? 0 : PUBLIC_KEY_LENGTH) + 2 + (root === undefined ? 0 : root.length) + 1 + identity.brokerHost.length + 2;
  if (bodyLength > MAX_BODY_LENGTH) throw new RangeError(`record body of ${bodyLength} bytes: at most ${MAX_BODY_LENGTH}`);
  const out = new Uint8Array(PROVISIONING_HEADER_LENGTH + bodyLength + PROVISIONING_DIGEST_LENGTH);
  out.set(PROVISIONING_MAGIC, 0);
  out[4] = PROVISIONING_FORMAT_VERSION;
  out[5] = 0;
  out[6] = bodyLength & 0xff;
  out[7] = bodyLength >>> 8;
  let at = PROVISIONING_HEADER_LENGTH;
  const put = (data: Uint8Array): void => {
    out.set(data, at);
    at += data.length;
  };
  const u8 = (value: number): void => {
    out[at++] = value;
  };
  const u16 = (value: number): void => {
    out[at++] = value & 0xff;
    out[at++] = value >>> 8;
  };
  const u32 = (value: number): void => {
    u16(value & 0xffff);
    u16(value >>> 16);
  };
  put(identity.deviceId);
  u32(identity.keyId);
  u8(identity.boardId.length);
  put(ascii(identity.boardId));
  u8(identity.deviceSecret.length);
  put(identity.deviceSecret);
  put(identity.deviceSeed);
  put(identity.devicePublicKey);
  u32(identity.commandKey.keyId);
  put(identity.commandKey.publicKey);
  for (const optional of [identity.consoleKey, identity.revocationKey]) {
    if (optional === undefined) u8(0);
    else {
      u8(1);
      put(optional);
    }
  }
  u16(root === undefined ? 0 : root.length);
  if (root !== undefined) put(root);
  u8(identity.brokerHost.length);
  put(ascii(identity.brokerHost));
  u16(identity.brokerPort);
  const hash = crypto.createSha256();
  hash.update(out.subarray(0, at));
  out.set(hash.digest(), at);
  return out;
}

/** The record padded with 0xFF to `partitionSize` bytes: the image flashed at the partition's offset. */
export function provisioningImage(crypto: Crypto, identity: ProvisioningIdentity, partitionSize: number): Uint8Array {
  const record = encodeProvisioning(crypto, identity);
  if (!Number.isInteger(partitionSize) || partitionSize < record.length) throw new RangeError(`partition of ${partitionSize} bytes: the record needs ${record.length}`);
  const image = new Uint8Array(partitionSize).fill(0xff);
  image.set(record, 0);
  return image;
}

/**
 * The device's MQTT password (docs/spec/provisioning.md, "Broker
 * password"): 64 lowercase hex digits of HKDF-SHA-256 over the device
 * secret, bound to the device id. The broker keeps only a PBKDF2 hash of it.
 */
export function deriveBrokerPassword(crypto: Crypto, deviceSecret: Uint8Array, deviceId: Uint8Array): string {
  if (!(deviceSecret instanceof Uint8Array) || deviceSecret.length < MIN_DEVICE_SECRET_LENGTH || deviceSecret.length > MAX_DEVICE_SECRET_LENGTH) {
    throw new RangeError(`deviceSecret must be ${MIN_DEVICE_SECRET_LENGTH}..${MAX_DEVICE_SECRET_LENGTH} bytes`);
  }
  if (!(deviceId instanceof Uint8Array) || deviceId.length !== DEVICE_ID_LENGTH) throw new RangeError(`deviceId must be ${DEVICE_ID_LENGTH} bytes`);
  const prk = hkdfExtract(crypto, ascii(BROKER_HKDF_SALT), deviceSecret);
  const okm = hkdfExpand(crypto, prk, keyInfo(BROKER_PASSWORD_LABEL, deviceId, 0), BROKER_PASSWORD_BYTES);
  prk.fill(0);
  const digits = '0123456789abcdef';
  let text = '';
  for (let i = 0; i < okm.length; i++) text += digits[okm[i] >>> 4] + digits[okm[i] & 15];
  okm.fill(0);
  return text;
}

/** Zero the secret bytes of an identity (after the runtime has derived its keys). */
export function wipeProvisioning(identity: ProvisioningIdentity): void {
  identity.deviceSecret.fill(0);
  identity.deviceSeed.fill(0);
}

function decodeBody(body: Uint8Array): ProvisioningIdentity {
  let at = 0;
  const take = (length: number, what: string): Uint8Array => {
    if (at + length > body.length) throw new ProvisioningError('malformed', `${what} runs past the body (${body.length} bytes)`);
    const slice = body.slice(at, at + length);
    at += length;
    return slice;
  };
  const u8 = (what: string): number => take(1, what)[0];
  const u16 = (what: string): number => {
    const b = take(2, what);
    return b[0] | (b[1] << 8);
  };
  const u32 = (what: string): number => {
    const b = take(4, what);
    return (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) >>> 0;
  };
  const deviceId = take(DEVICE_ID_LENGTH, 'device id');
  const keyId = u32('key id');
  const boardLength = u8('board id length');
  if (boardLength < 1 || boardLength > MAX_BOARD_ID_LENGTH) throw new ProvisioningError('malformed', `board id of ${boardLength} bytes: expected 1..${MAX_BOARD_ID_LENGTH}`);
  const boardId = text(take(boardLength, 'board id'), 'board id', /^[a-z0-9][a-z0-9.-]*$/);
  const secretLength = u8('device secret length');
  if (secretLength < MIN_DEVICE_SECRET_LENGTH || secretLength > MAX_DEVICE_SECRET_LENGTH) throw new ProvisioningError('malformed', `device secret of ${secretLength} bytes: expected ${MIN_DEVICE_SECRET_LENGTH}..${MAX_DEVICE_SECRET_LENGTH}`);
  const deviceSecret = take(secretLength, 'device secret');
  const deviceSeed = take(DEVICE_SEED_LENGTH, 'device key seed');
  const devicePublicKey = checkedKey(take(PUBLIC_KEY_LENGTH, 'device public key'), 'device public key');
  const commandKeyId = u32('command key id');
  const commandPublicKey = checkedKey(take(PUBLIC_KEY_LENGTH, 'command key'), 'command key');
  const consoleCount = u8('console key count');
  if (consoleCount > 1) throw new ProvisioningError('malformed', `${consoleCount} console keys: expected 0 or 1`);
  const consoleKey = consoleCount === 1 ? checkedKey(take(PUBLIC_KEY_LENGTH, 'console key'), 'console key') : undefined;
  const revocationCount = u8('revocation key count');
  if (revocationCount > 1) throw new ProvisioningError('malformed', `${revocationCount} revocation keys: expected 0 or 1`);
  const revocationKey = revocationCount === 1 ? checkedKey(take(PUBLIC_KEY_LENGTH, 'revocation key'), 'revocation key') : undefined;
  const rootLength = u16('root document length');
  if (rootLength > MAX_ROOT_DOCUMENT_LENGTH) throw new ProvisioningError('malformed', `root document of ${rootLength} bytes: expected at most ${MAX_ROOT_DOCUMENT_LENGTH}`);
  const rootDocument = rootLength === 0 ? undefined : take(rootLength, 'root document');
  const hostLength = u8('broker host length');
  const brokerHost = hostLength === 0 ? '' : text(take(hostLength, 'broker host'), 'broker host', /^[A-Za-z0-9.:-]+$/);
  const brokerPort = u16('broker port');
  if ((hostLength === 0) !== (brokerPort === 0)) throw new ProvisioningError('malformed', 'broker host and port: expected both or neither');
  if (at !== body.length) throw new ProvisioningError('malformed', `${body.length - at} bytes after the last field`);
  return Object.freeze({ deviceId, keyId, boardId, deviceSecret, deviceSeed, devicePublicKey, commandKey: Object.freeze({ keyId: commandKeyId, publicKey: commandPublicKey }), consoleKey, revocationKey, rootDocument, brokerHost, brokerPort });
}

function checkedKey(key: Uint8Array, what: string): Uint8Array {
  const problem = ed25519PublicKeyProblem(key);
  if (problem !== undefined) throw new ProvisioningError('malformed', `${what}: ${problem}`);
  return key;
}

function text(bytes: Uint8Array, what: string, pattern: RegExp): string {
  let value = '';
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] < 0x20 || bytes[i] > 0x7e) throw new ProvisioningError('malformed', `${what}: not printable ASCII`);
    value += String.fromCharCode(bytes[i]);
  }
  if (!pattern.test(value)) throw new ProvisioningError('malformed', `${what}: unexpected characters`);
  return value;
}

function checkIdentity(identity: ProvisioningIdentity): void {
  const bytes = (value: Uint8Array, length: number, what: string): void => {
    if (!(value instanceof Uint8Array) || value.length !== length) throw new RangeError(`${what} must be ${length} bytes`);
  };
  const u32 = (value: number, what: string): void => {
    if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) throw new RangeError(`${what} must be an integer 0..4294967295`);
  };
  bytes(identity.deviceId, DEVICE_ID_LENGTH, 'deviceId');
  u32(identity.keyId, 'keyId');
  if (typeof identity.boardId !== 'string' || identity.boardId.length < 1 || identity.boardId.length > MAX_BOARD_ID_LENGTH || !/^[a-z0-9][a-z0-9.-]*$/.test(identity.boardId)) throw new RangeError(`boardId must be 1..${MAX_BOARD_ID_LENGTH} of a-z 0-9 . -`);
  if (!(identity.deviceSecret instanceof Uint8Array) || identity.deviceSecret.length < MIN_DEVICE_SECRET_LENGTH || identity.deviceSecret.length > MAX_DEVICE_SECRET_LENGTH) throw new RangeError(`deviceSecret must be ${MIN_DEVICE_SECRET_LENGTH}..${MAX_DEVICE_SECRET_LENGTH} bytes`);
  bytes(identity.deviceSeed, DEVICE_SEED_LENGTH, 'deviceSeed');
  const key = (value: Uint8Array, what: string): void => {
    bytes(value, PUBLIC_KEY_LENGTH, what);
    const problem = ed25519PublicKeyProblem(value);
    if (problem !== undefined) throw new RangeError(`${what}: ${problem}`);
  };
  key(identity.devicePublicKey, 'devicePublicKey');
  u32(identity.commandKey.keyId, 'commandKey.keyId');
  key(identity.commandKey.publicKey, 'commandKey.publicKey');
  if (identity.consoleKey !== undefined) key(identity.consoleKey, 'consoleKey');
  if (identity.revocationKey !== undefined) key(identity.revocationKey, 'revocationKey');
  if (identity.rootDocument !== undefined && (!(identity.rootDocument instanceof Uint8Array) || identity.rootDocument.length < 1 || identity.rootDocument.length > MAX_ROOT_DOCUMENT_LENGTH)) throw new RangeError(`rootDocument must be 1..${MAX_ROOT_DOCUMENT_LENGTH} bytes`);
  if (typeof identity.brokerHost !== 'string' || identity.brokerHost.length > MAX_BROKER_HOST_LENGTH || (identity.brokerHost !== '' && !/^[A-Za-z0-9.:-]+$/.test(identity.brokerHost))) throw new RangeError(`brokerHost must be 0..${MAX_BROKER_HOST_LENGTH} of A-Z a-z 0-9 . : -`);
  if (!Number.isInteger(identity.brokerPort) || identity.brokerPort < 0 || identity.brokerPort > 0xffff) throw new RangeError('brokerPort must be 0..65535');
  if ((identity.brokerHost === '') !== (identity.brokerPort === 0)) throw new RangeError('brokerHost and brokerPort: both or neither');
}

function ascii(value: string): Uint8Array {
  const out = new Uint8Array(value.length);
  for (let i = 0; i < value.length; i++) out[i] = value.charCodeAt(i) & 0x7f;
  return out;
}
