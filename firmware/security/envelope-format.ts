/**
 * The envelope's bytes (docs/spec/envelope.md): constants, the typed error,
 * the 21-byte header and the nonce. No cryptography here: envelope-keys.ts
 * derives the keys, envelope.ts seals and opens telemetry records,
 * envelope-command.ts control messages.
 *
 * Byte order: little-endian throughout (as every holdfast format).
 *
 *   offset  size  field
 *   0       1     format version (ENVELOPE_FORMAT_VERSION = 1)
 *   1       1     suite (EnvelopeSuite)
 *   2       4     key id, u32
 *   6       8     device id
 *   14      7     counter, u56, 1..2^53 - 1
 *   21      n     payload (ciphertext for AEAD suites)
 *   21 + n  16|64 tag (HMAC-SHA-256/128, Poly1305, GHASH) or Ed25519 signature
 *                 (an encrypted command has both: 16-byte AEAD tag, then 64-byte signature)
 *
 * The header is read and checked field by field, in that order, before any
 * key is looked up or any tag computed: a bad envelope costs O(1) work and
 * no allocation sized by its claims.
 */
import { FORMAT_VERSIONS } from '../base/format-versions.ts';
import { setErrorName } from '../base/error-name.ts';

/** Envelope format version, separate from the package version (docs/spec/envelope.md). */
export const ENVELOPE_FORMAT_VERSION = FORMAT_VERSIONS.envelope;
/** Bytes before the payload: version, suite, key id, device id, counter. */
export const ENVELOPE_HEADER_LENGTH = 21;
/** Bytes of the device id field. */
export const DEVICE_ID_LENGTH = 8;
/** Bytes of a MAC or AEAD tag: HMAC-SHA-256 truncated to 128 bits (RFC 2104 §5), Poly1305 and GCM tags. */
export const ENVELOPE_TAG_LENGTH = 16;
/** Bytes of an Ed25519 signature (RFC 8032 §5.1.6). */
export const COMMAND_SIGNATURE_LENGTH = 64;
/** Bytes an envelope adds to a telemetry payload: header + tag = 37. */
export const ENVELOPE_OVERHEAD = ENVELOPE_HEADER_LENGTH + ENVELOPE_TAG_LENGTH;
/** Bytes a command envelope adds to its payload: header + signature = 85 (suite 0x41). */
export const COMMAND_OVERHEAD = ENVELOPE_HEADER_LENGTH + COMMAND_SIGNATURE_LENGTH;
/** Bytes an encrypted command adds: header + AEAD tag + signature = 101 (suite 0x42). */
export const ENCRYPTED_COMMAND_OVERHEAD = COMMAND_OVERHEAD + ENVELOPE_TAG_LENGTH;
/** Bytes of an AEAD nonce (RFC 8439 §2.8, NIST SP 800-38D §5.2.1.1's 96-bit IV). */
export const ENVELOPE_NONCE_LENGTH = 12;
/** Largest counter: 2^53 - 1, the persistent counter's range (docs/spec/counter.md). */
export const ENVELOPE_COUNTER_MAX = Number.MAX_SAFE_INTEGER;
/** Default and largest accepted envelope length (bytes, whole envelope): 65,535. */
export const MAX_ENVELOPE_LENGTH = 0xffff;

/** Offsets of the header fields. */
export const HEADER_OFFSETS = Object.freeze({ version: 0, suite: 1, keyId: 2, deviceId: 6, counter: 14 });

/**
 * What protects the payload (byte 1). Values 0x00 and 0xFF are reserved
 * (never valid: an erased or zeroed buffer is refused at byte 1).
 */
export const EnvelopeSuite = Object.freeze({
  /** Telemetry, payload in clear, tag = HMAC-SHA-256(K_mac, header || payload)[0..16). */
  hmacSha256: 0x01,
  /** Telemetry, payload encrypted with ChaCha20-Poly1305 (RFC 8439), AAD = header. */
  chacha20Poly1305: 0x02,
  /** Telemetry, payload encrypted with AES-256-GCM (NIST SP 800-38D), AAD = header. */
  aes256Gcm: 0x03,
  /** Control message to the device, payload in clear, Ed25519 signature by the fleet's command key over header || payload. */
  commandEd25519: 0x41,
  /** Control message to the device, payload encrypted with ChaCha20-Poly1305 under the device's down key (AAD = header), then signed like 0x41 over header || ciphertext || tag. */
  commandEd25519Chacha20Poly1305: 0x42,
});
export type EnvelopeSuite = (typeof EnvelopeSuite)[keyof typeof EnvelopeSuite];
/** Suites of device-to-receiver records. */
export type TelemetrySuite = typeof EnvelopeSuite.hmacSha256 | typeof EnvelopeSuite.chacha20Poly1305 | typeof EnvelopeSuite.aes256Gcm;
/** Suites of control messages. */
export type CommandSuite = typeof EnvelopeSuite.commandEd25519 | typeof EnvelopeSuite.commandEd25519Chacha20Poly1305;

export const TELEMETRY_SUITES: readonly TelemetrySuite[] = Object.freeze([EnvelopeSuite.hmacSha256, EnvelopeSuite.chacha20Poly1305, EnvelopeSuite.aes256Gcm]);

export function isTelemetrySuite(value: number): value is TelemetrySuite {
  return value === EnvelopeSuite.hmacSha256 || value === EnvelopeSuite.chacha20Poly1305 || value === EnvelopeSuite.aes256Gcm;
}

export function isAeadSuite(suite: number): boolean {
  return suite === EnvelopeSuite.chacha20Poly1305 || suite === EnvelopeSuite.aes256Gcm;
}

export type EnvelopeErrorCode =
  /** Shorter than header + tag. */
  | 'too-short'
  /** Longer than the opener's maximum length. */
  | 'too-long'
  /** Byte 0 is not a format version this firmware reads. */
  | 'unsupported-version'
  /** Byte 1 names no suite, or one this opener does not accept (a command where telemetry is expected, clear text where encryption is required). */
  | 'suite-not-allowed'
  /** The counter field is 0 or above 2^53 - 1. */
  | 'bad-counter'
  /** The device id is not the one expected (another device's record, or a command for another device). */
  | 'wrong-device'
  /** No key for this (device id, key id). */
  | 'unknown-key'
  /** The tag or signature does not verify: forged, damaged, or sealed under another key. */
  | 'bad-tag'
  /** Authentic, but its counter was already accepted (inside the window). */
  | 'duplicate'
  /** Authentic, but its counter is at or below the window (or the receiver's restart floor). */
  | 'stale'
  /** Seal side: the counter source returned a value that is not an integer in 1..2^53 - 1. */
  | 'counter-out-of-range'
  /** Seal side: the counter source returned a value not above the one before (nonce reuse refused). */
  | 'counter-not-increasing';

export class EnvelopeError extends Error {
  constructor(
    readonly code: EnvelopeErrorCode,
    message: string,
  ) {
    super(message);
    setErrorName(this, 'EnvelopeError');
  }
}

/** The header fields of an envelope, read and checked but not yet authenticated. */
export interface EnvelopeHeader {
  readonly version: number;
  readonly suite: EnvelopeSuite;
  readonly keyId: number;
  /** A copy of the 8 device id bytes. */
  readonly deviceId: Uint8Array;
  readonly counter: number;
  /** Where the tag (or signature) starts: the payload is [ENVELOPE_HEADER_LENGTH, tagOffset) (for suite 0x42 the AEAD tag ends it). */
  readonly tagOffset: number;
}

/** Write the 21-byte header. Arguments are checked by the callers. */
export function encodeHeader(suite: EnvelopeSuite, keyId: number, deviceId: Uint8Array, counter: number, target: Uint8Array): void {
  const view = new DataView(target.buffer, target.byteOffset, ENVELOPE_HEADER_LENGTH);
  target[HEADER_OFFSETS.version] = ENVELOPE_FORMAT_VERSION;
  target[HEADER_OFFSETS.suite] = suite;
  view.setUint32(HEADER_OFFSETS.keyId, keyId, true);
  target.set(deviceId, HEADER_OFFSETS.deviceId);
  writeCounter(counter, target, HEADER_OFFSETS.counter);
}

/**
 * Read and check the header, first failure wins, in byte order: length
 * (too-short, too-long), version, suite (known and in `suites`), counter.
 * The device id and key id are checked by the opener (they need its
 * configuration). Throws EnvelopeError; TypeError if `envelope` is not a
 * Uint8Array.
 */
export function decodeHeader(envelope: Uint8Array, suites: readonly EnvelopeSuite[], maxLength: number): EnvelopeHeader {
  if (!(envelope instanceof Uint8Array)) throw new TypeError('envelope must be a Uint8Array');
  if (envelope.length < ENVELOPE_HEADER_LENGTH + ENVELOPE_TAG_LENGTH) {
    throw new EnvelopeError('too-short', `envelope of ${envelope.length} bytes, at least ${ENVELOPE_HEADER_LENGTH + ENVELOPE_TAG_LENGTH}`);
  }
  if (envelope.length > maxLength) throw new EnvelopeError('too-long', `envelope of ${envelope.length} bytes, at most ${maxLength}`);
  const version = envelope[HEADER_OFFSETS.version];
  if (version !== ENVELOPE_FORMAT_VERSION) throw new EnvelopeError('unsupported-version', `format version ${version}, this firmware reads ${ENVELOPE_FORMAT_VERSION}`);
  const suite = envelope[HEADER_OFFSETS.suite];
  if (suites.indexOf(suite as EnvelopeSuite) < 0) throw new EnvelopeError('suite-not-allowed', `suite 0x${suite.toString(16)} is not accepted here`);
  const tagLength =
    suite === EnvelopeSuite.commandEd25519 ? COMMAND_SIGNATURE_LENGTH
    : suite === EnvelopeSuite.commandEd25519Chacha20Poly1305 ? COMMAND_SIGNATURE_LENGTH + ENVELOPE_TAG_LENGTH
    : ENVELOPE_TAG_LENGTH;
  if (envelope.length < ENVELOPE_HEADER_LENGTH + tagLength) {
    throw new EnvelopeError('too-short', `envelope of ${envelope.length} bytes, at least ${ENVELOPE_HEADER_LENGTH + tagLength} for suite 0x${suite.toString(16)}`);
  }
  const counter = readCounter(envelope, HEADER_OFFSETS.counter);
  if (counter < 1 || counter > ENVELOPE_COUNTER_MAX) throw new EnvelopeError('bad-counter', `counter field is ${counter === 0 ? 0 : 'above 2^53 - 1'}`);
  const view = new DataView(envelope.buffer, envelope.byteOffset, ENVELOPE_HEADER_LENGTH);
  return {
    version,
    suite: suite as EnvelopeSuite,
    keyId: view.getUint32(HEADER_OFFSETS.keyId, true),
    deviceId: envelope.slice(HEADER_OFFSETS.deviceId, HEADER_OFFSETS.deviceId + DEVICE_ID_LENGTH),
    counter,
    tagOffset: envelope.length - tagLength,
  };
}

/** Counter as 7 little-endian bytes. The caller checked 1..2^53 - 1. */
export function writeCounter(counter: number, target: Uint8Array, offset: number): void {
  let low = counter % 0x1_0000_0000;
  let high = (counter - low) / 0x1_0000_0000; // < 2^21
  for (let i = 0; i < 4; i++) {
    target[offset + i] = low & 0xff;
    low = Math.floor(low / 256);
  }
  for (let i = 4; i < 7; i++) {
    target[offset + i] = high & 0xff;
    high >>>= 8;
  }
}

/** The 7-byte little-endian counter field; values above 2^53 - 1 come back as Infinity (never exact). */
export function readCounter(source: Uint8Array, offset: number): number {
  const high = source[offset + 4] | (source[offset + 5] << 8) | (source[offset + 6] << 16);
  if (high >= 0x20_0000) return Number.POSITIVE_INFINITY;
  const low = (source[offset] | (source[offset + 1] << 8) | (source[offset + 2] << 16)) + source[offset + 3] * 0x100_0000;
  return high * 0x1_0000_0000 + low;
}

/**
 * The AEAD nonce of a counter (docs/spec/envelope.md, "Nonce"): the counter
 * as a 12-byte little-endian integer (bytes 7..11 are zero). The key is
 * unique per (device secret, device id, key id, suite, direction), and the
 * persistent counter never returns a value twice, so no (key, nonce) pair
 * repeats.
 */
export function envelopeNonce(counter: number): Uint8Array {
  const nonce = new Uint8Array(ENVELOPE_NONCE_LENGTH);
  writeCounter(counter, nonce, 0);
  return nonce;
}

/**
 * The AEAD nonce of an encrypted command: the command counter (7 bytes LE),
 * then the command key id (4 bytes LE), then 0. The down key is per device
 * but shared by every command key the fleet uses: the key id keeps two
 * signers' counters from meeting on one nonce.
 */
export function commandNonce(counter: number, keyId: number): Uint8Array {
  const nonce = new Uint8Array(ENVELOPE_NONCE_LENGTH);
  writeCounter(counter, nonce, 0);
  new DataView(nonce.buffer).setUint32(7, keyId, true);
  return nonce;
}

/** Check a device id argument: 8 bytes. */
export function checkDeviceId(deviceId: unknown, name = 'deviceId'): Uint8Array {
  if (!(deviceId instanceof Uint8Array)) throw new TypeError(`${name} must be a Uint8Array`);
  if (deviceId.length !== DEVICE_ID_LENGTH) throw new RangeError(`${name} must be ${DEVICE_ID_LENGTH} bytes, got ${deviceId.length}`);
  return deviceId;
}

/** Check a key id argument: an integer in 0..2^32 - 1. */
export function checkKeyId(keyId: unknown): number {
  if (typeof keyId !== 'number') throw new TypeError(`keyId must be a number, got ${typeof keyId}`);
  if (!Number.isInteger(keyId) || keyId < 0 || keyId > 0xffff_ffff) throw new RangeError(`keyId must be an integer in 0..2^32-1, got ${keyId}`);
  return keyId;
}

/** Check a maximum envelope length option (undefined: MAX_ENVELOPE_LENGTH). */
export function checkMaxLength(maxLength: unknown): number {
  if (maxLength === undefined) return MAX_ENVELOPE_LENGTH;
  if (typeof maxLength !== 'number') throw new TypeError(`maxLength must be a number, got ${typeof maxLength}`);
  if (!Number.isInteger(maxLength) || maxLength < ENVELOPE_OVERHEAD || maxLength > MAX_ENVELOPE_LENGTH) {
    throw new RangeError(`maxLength must be an integer in ${ENVELOPE_OVERHEAD}..${MAX_ENVELOPE_LENGTH}, got ${maxLength}`);
  }
  return maxLength;
}

/** Same bytes (device ids are not secret: a plain compare). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
