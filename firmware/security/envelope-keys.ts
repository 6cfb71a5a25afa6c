/**
 * Per-device envelope keys (docs/spec/envelope.md, "Key derivation"):
 * HKDF-SHA-256 (RFC 5869) over the device secret provisioned at the
 * factory, one 32-byte key per (direction, suite), bound to the device id
 * and the key id:
 *
 *   PRK   = HKDF-Extract(salt = "holdfast envelope v1", IKM = device secret)
 *   K_lbl = HKDF-Expand(PRK, info = label || 0x00 || device id (8) || key id (u32 LE), 32)
 *
 * HKDF is built on the Crypto HAL's HMAC-SHA-256, so a target with a native
 * HMAC uses it here too; test/security/envelope-keys checks it against
 * RFC 5869's vectors and @noble/hashes' hkdf.
 */
import type { Crypto } from '../hal/crypto.ts';
import { checkDeviceId, checkKeyId, DEVICE_ID_LENGTH } from './envelope-format.ts';

/** HKDF-Extract salt: names the scheme and its version (RFC 5869 §3.1: a salt adds strength; a fixed one is allowed). */
export const ENVELOPE_HKDF_SALT = 'holdfast envelope v1';
/** Shortest device secret: 32 bytes (256 bits of entropy from the provisioning station's RNG). */
export const MIN_DEVICE_SECRET_LENGTH = 32;
/** Longest device secret accepted: 64 bytes (one SHA-256 block; longer adds nothing). */
export const MAX_DEVICE_SECRET_LENGTH = 64;
/** Bytes of each derived key. */
export const ENVELOPE_KEY_LENGTH = 32;

/**
 * HKDF info labels, one per key (direction/suite). "up" is device to
 * receiver; "down" is receiver to device. A key is never used for two
 * algorithms or two directions.
 */
export const KEY_LABELS = Object.freeze({
  upHmacSha256: 'holdfast/v1/up/hmac-sha256',
  upChacha20Poly1305: 'holdfast/v1/up/chacha20-poly1305',
  upAes256Gcm: 'holdfast/v1/up/aes-256-gcm',
  downChacha20Poly1305: 'holdfast/v1/down/chacha20-poly1305',
  /** Ingest to device: the tag of an ingest receipt (docs/spec/receipt.md). */
  receipt: 'holdfast/v1/receipt/hmac-sha256',
});

/** The keys of one (device, key id). Frozen; zero them with `wipeDeviceKeys` when done. */
export interface DeviceKeys {
  readonly deviceId: Uint8Array;
  readonly keyId: number;
  /** Device to receiver, suite hmac-sha256. */
  readonly upHmacSha256: Uint8Array;
  /** Device to receiver, suite chacha20-poly1305. */
  readonly upChacha20Poly1305: Uint8Array;
  /** Device to receiver, suite aes-256-gcm. */
  readonly upAes256Gcm: Uint8Array;
  /** Receiver to device: confidentiality for command payloads (commands are authenticated by the fleet's signature). */
  readonly downChacha20Poly1305: Uint8Array;
  /** Ingest to device: HMAC-SHA-256 key of the ingest's receipts (docs/spec/receipt.md). */
  readonly receipt: Uint8Array;
}

/** RFC 5869 §2.2: PRK = HMAC-Hash(salt, IKM). */
export function hkdfExtract(crypto: Crypto, salt: Uint8Array, ikm: Uint8Array): Uint8Array {
  return crypto.hmacSha256(salt.length === 0 ? new Uint8Array(32) : salt, ikm);
}

/** RFC 5869 §2.3: T(i) = HMAC-Hash(PRK, T(i-1) || info || i), OKM = first `length` bytes; length ≤ 255 × 32. */
export function hkdfExpand(crypto: Crypto, prk: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  if (!Number.isInteger(length) || length < 1 || length > 255 * 32) throw new RangeError(`HKDF length must be an integer in 1..8160, got ${length}`);
  const okm = new Uint8Array(length);
  let previous: Uint8Array = new Uint8Array(0);
  const input = new Uint8Array(32 + info.length + 1);
  for (let i = 1, done = 0; done < length; i++) {
    input.set(previous, 0);
    input.set(info, previous.length);
    input[previous.length + info.length] = i;
    previous = crypto.hmacSha256(prk, input.subarray(0, previous.length + info.length + 1));
    okm.set(previous.subarray(0, Math.min(32, length - done)), done);
    done += 32;
  }
  input.fill(0);
  previous.fill(0);
  return okm;
}

/** The info string of a key: label (ASCII) || 0x00 || device id || key id (u32 LE). */
export function keyInfo(label: string, deviceId: Uint8Array, keyId: number): Uint8Array {
  const info = new Uint8Array(label.length + 1 + DEVICE_ID_LENGTH + 4);
  for (let i = 0; i < label.length; i++) info[i] = label.charCodeAt(i) & 0x7f;
  info[label.length] = 0;
  info.set(deviceId, label.length + 1);
  new DataView(info.buffer).setUint32(label.length + 1 + DEVICE_ID_LENGTH, keyId, true);
  return info;
}

/**
 * Derive the keys of (device id, key id) from the provisioned device secret
 * (32..64 bytes). The device and the receiver both call this; the secret
 * itself never leaves the keystore of either.
 */
export function deriveDeviceKeys(crypto: Crypto, deviceSecret: Uint8Array, deviceId: Uint8Array, keyId: number): DeviceKeys {
  if (!(deviceSecret instanceof Uint8Array)) throw new TypeError('deviceSecret must be a Uint8Array');
  if (deviceSecret.length < MIN_DEVICE_SECRET_LENGTH || deviceSecret.length > MAX_DEVICE_SECRET_LENGTH) {
    throw new RangeError(`deviceSecret must be ${MIN_DEVICE_SECRET_LENGTH}..${MAX_DEVICE_SECRET_LENGTH} bytes, got ${deviceSecret.length}`);
  }
  const id = checkDeviceId(deviceId).slice();
  checkKeyId(keyId);
  const prk = hkdfExtract(crypto, asciiBytes(ENVELOPE_HKDF_SALT), deviceSecret);
  const expand = (label: string): Uint8Array => hkdfExpand(crypto, prk, keyInfo(label, id, keyId), ENVELOPE_KEY_LENGTH);
  const keys: DeviceKeys = Object.freeze({
    deviceId: id,
    keyId,
    upHmacSha256: expand(KEY_LABELS.upHmacSha256),
    upChacha20Poly1305: expand(KEY_LABELS.upChacha20Poly1305),
    upAes256Gcm: expand(KEY_LABELS.upAes256Gcm),
    downChacha20Poly1305: expand(KEY_LABELS.downChacha20Poly1305),
    receipt: expand(KEY_LABELS.receipt),
  });
  prk.fill(0);
  return keys;
}

/** Zero the key bytes (after a key rotation, or when a receiver forgets a device). */
export function wipeDeviceKeys(keys: DeviceKeys): void {
  keys.upHmacSha256.fill(0);
  keys.upChacha20Poly1305.fill(0);
  keys.upAes256Gcm.fill(0);
  keys.downChacha20Poly1305.fill(0);
  keys.receipt.fill(0);
}

function asciiBytes(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i) & 0x7f;
  return bytes;
}
