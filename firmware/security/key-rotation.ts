/**
 * Device key rotation, the wire part (docs/spec/key-rotation.md): the
 * rotation request the device publishes, signed by its old Ed25519 key and
 * by the new one (proof of possession), and the new generation's envelope
 * secret, which both the device and the fleet authority compute and which
 * is never sent:
 *
 *   shared = X25519(new device key, authority key)     (crypto.x25519: the
 *            authority's Ed25519 public key in Montgomery form)
 *   secret = HKDF-SHA-256(salt = "holdfast key rotation v1", IKM = shared,
 *            info = "holdfast/v1/rotation/device-secret" || 0x00 ||
 *            device id (8) || new key id (u32 LE), 32 bytes)
 *
 * The authority's side computes the same with its own seed and the new
 * public key from the request (x25519 is symmetric). The authority is the
 * fleet's command key: its public key is already in every provisioning
 * record, and its countersignature is a signed `confirm-key-rotation`
 * command (numbered and replay-checked like every command).
 *
 * Request (ROTATION_REQUEST_LENGTH = 192 bytes, little-endian):
 *   0 "HFKR" | 4 format u8 (1) | 5 flags 0 | 6 zero u16 | 8 device id (8) |
 *   16 old key id u32 | 20 new key id u32 | 24 request counter u64 |
 *   32 new Ed25519 public key (32) | 64 signature by the old key (64) |
 *   128 signature by the new key (64).
 * Both signatures cover SIGNING_CONTEXT || bytes 0..64.
 *
 * No module state; runs in XS and Node.
 */
import type { Crypto } from '../hal/crypto.ts';
import { setErrorName } from '../base/error-name.ts';
import { FORMAT_VERSIONS } from '../base/format-versions.ts';
import { DEVICE_ID_LENGTH } from './envelope-format.ts';
import { hkdfExpand, hkdfExtract, keyInfo } from './envelope-keys.ts';

export const ROTATION_REQUEST_MAGIC: readonly number[] = Object.freeze([0x48, 0x46, 0x4b, 0x52]);
export const ROTATION_REQUEST_FORMAT = FORMAT_VERSIONS.keyRotationRequest;
export const ROTATION_REQUEST_LENGTH = 192;
const SIGNED_LENGTH = 64;
export const ROTATION_HKDF_SALT = 'holdfast key rotation v1';
export const ROTATION_SECRET_LABEL = 'holdfast/v1/rotation/device-secret';
/** Prefixed to the signed bytes: a rotation signature is never valid as anything else. */
export const ROTATION_SIGNING_CONTEXT = 'holdfast key rotation request v1\u0000';

export type KeyRotationErrorCode = 'unavailable' | 'malformed' | 'format-too-new' | 'wrong-device' | 'bad-signature' | 'bad-key';

export class KeyRotationError extends Error {
  constructor(readonly code: KeyRotationErrorCode, message: string) {
    super(message);
    setErrorName(this, 'KeyRotationError');
  }
}

export interface RotationRequest {
  readonly deviceId: Uint8Array;
  readonly oldKeyId: number;
  readonly newKeyId: number;
  readonly requestCounter: number;
  readonly newPublicKey: Uint8Array;
}

function ascii(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0x7f;
  return out;
}

function signedBytes(head: Uint8Array): Uint8Array {
  const context = ascii(ROTATION_SIGNING_CONTEXT);
  const out = new Uint8Array(context.length + SIGNED_LENGTH);
  out.set(context, 0);
  out.set(head.subarray(0, SIGNED_LENGTH), context.length);
  return out;
}

/** The 32 bytes both sides derive from the X25519 shared secret (see the file comment). */
export function rotationSecretFrom(crypto: Crypto, shared: Uint8Array, deviceId: Uint8Array, newKeyId: number): Uint8Array {
  const prk = hkdfExtract(crypto, ascii(ROTATION_HKDF_SALT), shared);
  const secret = hkdfExpand(crypto, prk, keyInfo(ROTATION_SECRET_LABEL, deviceId, newKeyId), 32);
  prk.fill(0);
  return secret;
}

/** The device's side: the new generation's envelope secret from its new seed and the authority's Ed25519 public key. */
export function deviceRotationSecret(crypto: Crypto, newSeed: Uint8Array, authorityPublicKey: Uint8Array, deviceId: Uint8Array, newKeyId: number): Uint8Array {
  if (crypto.x25519 === undefined) throw new KeyRotationError('unavailable', 'this Crypto has no X25519');
  const shared = crypto.x25519(newSeed, authorityPublicKey);
  const secret = rotationSecretFrom(crypto, shared, deviceId, newKeyId);
  shared.fill(0);
  return secret;
}

/** Encode and sign a request (device side): `oldSeed` signs, `newSeed` proves possession. */
export function signRotationRequest(crypto: Crypto, request: RotationRequest, oldSeed: Uint8Array, newSeed: Uint8Array): Uint8Array {
  if (crypto.ed25519Sign === undefined) throw new KeyRotationError('unavailable', 'this Crypto cannot sign');
  if (request.deviceId.length !== DEVICE_ID_LENGTH || request.newPublicKey.length !== 32) throw new KeyRotationError('malformed', 'device id is 8 bytes, the public key 32');
  const out = new Uint8Array(ROTATION_REQUEST_LENGTH);
  const view = new DataView(out.buffer);
  out.set(ROTATION_REQUEST_MAGIC, 0);
  out[4] = ROTATION_REQUEST_FORMAT;
  out.set(request.deviceId, 8);
  view.setUint32(16, request.oldKeyId, true);
  view.setUint32(20, request.newKeyId, true);
  view.setUint32(24, request.requestCounter % 0x100000000, true);
  view.setUint32(28, Math.floor(request.requestCounter / 0x100000000), true);
  out.set(request.newPublicKey, 32);
  const message = signedBytes(out);
  out.set(crypto.ed25519Sign(oldSeed, message), 64);
  out.set(crypto.ed25519Sign(newSeed, message), 128);
  return out;
}

/** Decode without verifying (to find the device and its current key): KeyRotationError 'malformed' or 'format-too-new'. */
export function decodeRotationRequest(bytes: Uint8Array): RotationRequest {
  if (!(bytes instanceof Uint8Array) || bytes.length !== ROTATION_REQUEST_LENGTH) throw new KeyRotationError('malformed', `a rotation request is ${ROTATION_REQUEST_LENGTH} bytes`);
  for (let i = 0; i < 4; i++) if (bytes[i] !== ROTATION_REQUEST_MAGIC[i]) throw new KeyRotationError('malformed', 'not a rotation request (magic)');
  if (bytes[4] > ROTATION_REQUEST_FORMAT) throw new KeyRotationError('format-too-new', `rotation request format ${bytes[4]}; this reads ${ROTATION_REQUEST_FORMAT}`);
  if (bytes[4] !== ROTATION_REQUEST_FORMAT || bytes[5] !== 0 || bytes[6] !== 0 || bytes[7] !== 0) throw new KeyRotationError('malformed', 'rotation request header');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const oldKeyId = view.getUint32(16, true);
  const newKeyId = view.getUint32(20, true);
  const requestCounter = view.getUint32(24, true) + view.getUint32(28, true) * 0x100000000;
  if (!Number.isSafeInteger(requestCounter)) throw new KeyRotationError('malformed', 'request counter above 2^53-1');
  if (newKeyId !== oldKeyId + 1) throw new KeyRotationError('malformed', `new key id ${newKeyId} does not follow ${oldKeyId}`);
  return Object.freeze({ deviceId: bytes.slice(8, 16), oldKeyId, newKeyId, requestCounter, newPublicKey: bytes.slice(32, 64) });
}

/**
 * Verify a request (authority side) against the device's current public
 * key: both signatures must hold. Returns the decoded request.
 */
export function verifyRotationRequest(crypto: Crypto, bytes: Uint8Array, currentPublicKey: Uint8Array): RotationRequest {
  const request = decodeRotationRequest(bytes);
  const message = signedBytes(bytes);
  if (!crypto.ed25519Verify(bytes.subarray(64, 128), message, currentPublicKey)) throw new KeyRotationError('bad-signature', 'the old key did not sign this request');
  if (!crypto.ed25519Verify(bytes.subarray(128, 192), message, request.newPublicKey)) throw new KeyRotationError('bad-signature', 'the new key did not sign this request (no proof of possession)');
  return request;
}

/** The u32 the confirm command carries to bind the new key: its public key's first 4 bytes, little-endian. */
export function keyPrefixOf(publicKey: Uint8Array): number {
  return (publicKey[0] | (publicKey[1] << 8) | (publicKey[2] << 16) | (publicKey[3] << 24)) >>> 0;
}
