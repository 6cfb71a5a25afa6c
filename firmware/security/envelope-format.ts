/**
 * The envelope's bytes, format 2 (docs/spec/envelope.md): constants, the
 * typed error, the variable-length wire header, the authenticated header
 * and the nonce. No cryptography here: envelope-keys.ts derives the keys,
 * envelope.ts seals and opens telemetry records, envelope-command.ts
 * control messages.
 *
 * Wire bytes (each field located by the ones before it):
 *
 *   size   field
 *   1      format version (ENVELOPE_FORMAT_VERSION = 2)
 *   1      suite (EnvelopeSuite)
 *   1..5   key id, unsigned LEB128, canonical, 0..2^32 - 1
 *   1..8   counter, unsigned LEB128, canonical, 1..2^53 - 1
 *   n      payload (ciphertext for AEAD suites)
 *   16|64|80  tag (HMAC-SHA-256/128, Poly1305, GHASH) or Ed25519 signature
 *          (an encrypted command has both: 16-byte AEAD tag, then 64-byte signature)
 *
 * The device id (8 bytes) is not on the wire: the receiver supplies it from
 * context (the broker-authenticated topic; a device its own id) and the tag
 * covers it: authenticated header = wire header || device id.
 *
 * The header is read and checked field by field, in that order, before any
 * key is looked up or any tag computed: a bad envelope costs O(1) work and
 * no allocation sized by its claims. Varints must be canonical (shortest
 * form), so a record has exactly one byte string.
 */
import { FORMAT_VERSIONS } from '../base/format-versions.ts';
import { setErrorName } from '../base/error-name.ts';

/** Envelope format version, separate from the package version (docs/spec/envelope.md). Format 1 (fixed 21-byte header with the device id) never shipped and is refused like any unknown version. */
export const ENVELOPE_FORMAT_VERSION = FORMAT_VERSIONS.envelope;
/** Bytes of the device id: implicit (not on the wire), authenticated. */
export const DEVICE_ID_LENGTH = 8;
/** Longest key id field: a u32 in LEB128. */
export const KEY_ID_MAX_BYTES = 5;
/** Longest counter field: 2^53 - 1 in LEB128. */
export const COUNTER_MAX_BYTES = 8;
/** Shortest wire header: version, suite, 1-byte key id, 1-byte counter. */
export const ENVELOPE_MIN_HEADER_LENGTH = 4;
/** Longest wire header: 1 + 1 + 5 + 8 = 15. */
export const ENVELOPE_MAX_HEADER_LENGTH = 2 + KEY_ID_MAX_BYTES + COUNTER_MAX_BYTES;
/** Bytes of a MAC or AEAD tag: HMAC-SHA-256 truncated to 128 bits (RFC 2104 §5), Poly1305 and GCM tags. */
export const ENVELOPE_TAG_LENGTH = 16;
/** Bytes of an Ed25519 signature (RFC 8032 §5.1.6). */
export const COMMAND_SIGNATURE_LENGTH = 64;
/** Fewest bytes a telemetry envelope adds to its payload: 4-byte header + tag = 20 (key id < 128, counter < 128). The shortest envelope. */
export const ENVELOPE_MIN_OVERHEAD = ENVELOPE_MIN_HEADER_LENGTH + ENVELOPE_TAG_LENGTH;
/** Most bytes a telemetry envelope adds to its payload: 15-byte header + tag = 31. Size buffers and outbox records with this; `envelopeOverhead` gives one envelope's. */
export const ENVELOPE_MAX_OVERHEAD = ENVELOPE_MAX_HEADER_LENGTH + ENVELOPE_TAG_LENGTH;
/** Most bytes a command envelope adds to its payload: 15 + 64 = 79 (suite 0x41). */
export const COMMAND_MAX_OVERHEAD = ENVELOPE_MAX_HEADER_LENGTH + COMMAND_SIGNATURE_LENGTH;
/** Most bytes an encrypted command adds: 15 + 16 + 64 = 95 (suite 0x42). */
export const ENCRYPTED_COMMAND_MAX_OVERHEAD = COMMAND_MAX_OVERHEAD + ENVELOPE_TAG_LENGTH;
/** Bytes of an AEAD nonce (RFC 8439 §2.8, NIST SP 800-38D §5.2.1.1's 96-bit IV). */
export const ENVELOPE_NONCE_LENGTH = 12;
/** Largest counter: 2^53 - 1, the persistent counter's range (docs/spec/counter.md). */
export const ENVELOPE_COUNTER_MAX = Number.MAX_SAFE_INTEGER;
/** Largest key id: 2^32 - 1. */
export const ENVELOPE_KEY_ID_MAX = 0xffff_ffff;
/** Default and largest accepted envelope length (bytes, whole envelope): 65,535. */
export const MAX_ENVELOPE_LENGTH = 0xffff;

/**
 * What protects the payload (byte 1). Values 0x00 and 0xFF are reserved
 * (never valid: an erased or zeroed buffer is refused at byte 1).
 */
export const EnvelopeSuite = Object.freeze({
  /** Telemetry, payload in clear, tag = HMAC-SHA-256(K_up_hmac, wire header || device id || payload)[0..16). */
  hmacSha256: 0x01,
  /** Telemetry, payload encrypted with ChaCha20-Poly1305 (RFC 8439), AAD = wire header || device id. */
  chacha20Poly1305: 0x02,
  /** Telemetry, payload encrypted with AES-256-GCM (NIST SP 800-38D), AAD = wire header || device id. */
  aes256Gcm: 0x03,
  /** Control message to the device, payload in clear, Ed25519 signature by the fleet's command key over wire header || device id || payload. */
  commandEd25519: 0x41,
  /** Control message to the device, payload encrypted with ChaCha20-Poly1305 under the device's down key (AAD = wire header || device id), then signed like 0x41 over wire header || device id || ciphertext || tag. */
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
  /** Shorter than its header + tag (also: a key id or counter varint that runs into the tag). */
  | 'too-short'
  /** Longer than the opener's maximum length. */
  | 'too-long'
  /** Byte 0 is not a format version this firmware reads (format 1 included: it never shipped). */
  | 'unsupported-version'
  /** Byte 1 names no suite, or one this opener does not accept (a command where telemetry is expected, clear text where encryption is required). */
  | 'suite-not-allowed'
  /** The key id varint is not canonical (a zero last byte after the first), longer than 5 bytes, or above 2^32 - 1. */
  | 'bad-key-id'
  /** The counter varint is not canonical, longer than 8 bytes, 0, or above 2^53 - 1. */
  | 'bad-counter'
  /** No key for this (device id, key id). */
  | 'unknown-key'
  /** The tag or signature does not verify: forged, damaged, sealed under another key, or sealed for another device id (the device id is authenticated, not sent). */
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

/** The wire header fields of an envelope, read and checked but not yet authenticated. */
export interface EnvelopeHeader {
  readonly version: number;
  readonly suite: EnvelopeSuite;
  readonly keyId: number;
  readonly counter: number;
  /** Bytes of the wire header (4..15): the payload starts here. */
  readonly headerLength: number;
  /** Where the tag (or signature) starts: the payload is [headerLength, tagOffset) (for suite 0x42 the AEAD tag ends it). */
  readonly tagOffset: number;
}

/** Bytes of `value` (a non-negative integer up to 2^53 - 1) as an unsigned LEB128 varint: 1 per 7 bits. */
export function varintLength(value: number): number {
  let length = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    length++;
  }
  return length;
}

/**
 * Write `value` (a non-negative integer up to 2^53 - 1, checked by the
 * caller) as a canonical unsigned LEB128 varint: 7 bits per byte, low
 * group first, bit 7 set on every byte but the last. No 32-bit operators
 * (values above 2^31 stay exact). Returns the offset after it.
 */
export function writeVarint(value: number, target: Uint8Array, offset: number): number {
  while (value >= 0x80) {
    target[offset++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  target[offset++] = value;
  return offset;
}

/** `readVarint` result: the varint runs past `end`. */
export const VARINT_TRUNCATED = -1;
/** `readVarint` result: not canonical, longer than `maxBytes`, or above the range `maxBytes` and `lastByteMax` allow. */
export const VARINT_INVALID = -2;

/**
 * Read a canonical unsigned LEB128 varint of at most `maxBytes` bytes from
 * source[offset..end). The last allowed byte may be at most `lastByteMax`
 * (its continuation bit clear and the value in range: 0x0F for both a u32
 * in 5 bytes and 2^53 - 1 in 8). A final byte of 0 after the first byte is a
 * non-minimal encoding and refused, so every value has exactly one
 * encoding, of length varintLength(value). Returns the value (0 or more) or
 * VARINT_TRUNCATED / VARINT_INVALID.
 */
export function readVarint(source: Uint8Array, offset: number, end: number, maxBytes: number, lastByteMax: number): number {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < maxBytes; i++) {
    if (offset + i >= end) return VARINT_TRUNCATED;
    const byte = source[offset + i];
    if (i === maxBytes - 1 && byte > lastByteMax) return VARINT_INVALID;
    value += (byte & 0x7f) * scale;
    if ((byte & 0x80) === 0) return byte === 0 && i > 0 ? VARINT_INVALID : value;
    scale *= 0x80;
  }
  return VARINT_INVALID;
}

/** Bytes of the wire header for (key id, counter): 2 + varint(key id) + varint(counter), 4..15. */
export function envelopeHeaderLength(keyId: number, counter: number): number {
  return 2 + varintLength(keyId) + varintLength(counter);
}

/** Bytes a telemetry envelope of (key id, counter) adds to its payload: header + 16-byte tag, 20..31 (ENVELOPE_MAX_OVERHEAD). */
export function envelopeOverhead(keyId: number, counter: number): number {
  return envelopeHeaderLength(checkKeyId(keyId), checkCounterArgument(counter)) + ENVELOPE_TAG_LENGTH;
}

/** Bytes a command envelope of (key id, counter) adds: header + signature (68..79), + the AEAD tag when encrypted (84..95). */
export function commandOverhead(keyId: number, counter: number, encrypted: boolean): number {
  return envelopeHeaderLength(checkKeyId(keyId), checkCounterArgument(counter)) + COMMAND_SIGNATURE_LENGTH + (encrypted ? ENVELOPE_TAG_LENGTH : 0);
}

/**
 * Write the wire header (version, suite, key id, counter) at the start of
 * `target`; returns its length (envelopeHeaderLength). Arguments are
 * checked by the callers.
 */
export function encodeHeader(suite: EnvelopeSuite, keyId: number, counter: number, target: Uint8Array): number {
  target[0] = ENVELOPE_FORMAT_VERSION;
  target[1] = suite;
  return writeVarint(counter, target, writeVarint(keyId, target, 2));
}

/**
 * The authenticated header: the wire header (envelope[0..headerLength))
 * followed by the 8-byte device id. The AEAD suites use it as AAD; the HMAC
 * and the Ed25519 signature cover it followed by the payload (see
 * `authenticatedMessage`). The wire header delimits itself (fixed-size
 * version and suite, self-terminating canonical varints) and the device id
 * has a fixed size, so the concatenation has exactly one reading.
 */
export function authenticatedHeader(wireHeader: Uint8Array, deviceId: Uint8Array): Uint8Array {
  const out = new Uint8Array(wireHeader.length + DEVICE_ID_LENGTH);
  out.set(wireHeader, 0);
  out.set(deviceId, wireHeader.length);
  return out;
}

/**
 * What an HMAC tag or an Ed25519 signature covers: wire header || device id
 * || body, where body is the payload (0x01, 0x41) or ciphertext || AEAD tag
 * (0x42). One allocation of header + 8 + body bytes.
 */
export function authenticatedMessage(wireHeader: Uint8Array, deviceId: Uint8Array, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(wireHeader.length + DEVICE_ID_LENGTH + body.length);
  out.set(wireHeader, 0);
  out.set(deviceId, wireHeader.length);
  out.set(body, wireHeader.length + DEVICE_ID_LENGTH);
  return out;
}

/** Tag bytes of a suite (16, 64 or 80); 16 for an unknown value (the caller refuses it first). */
export function suiteTagLength(suite: number): number {
  return suite === EnvelopeSuite.commandEd25519 ? COMMAND_SIGNATURE_LENGTH
    : suite === EnvelopeSuite.commandEd25519Chacha20Poly1305 ? COMMAND_SIGNATURE_LENGTH + ENVELOPE_TAG_LENGTH
    : ENVELOPE_TAG_LENGTH;
}

/**
 * Read and check the wire header, first failure wins, in byte order: length
 * (too-short below 20 bytes, too-long), version, suite (known and in
 * `suites`; too-short below 4 + its tag), key id varint (bad-key-id, or
 * too-short when it runs into the tag), counter varint (bad-counter,
 * too-short). The key id is checked against keys by the opener (it needs
 * its configuration). Throws EnvelopeError; TypeError if `envelope` is not
 * a Uint8Array.
 */
export function decodeHeader(envelope: Uint8Array, suites: readonly EnvelopeSuite[], maxLength: number): EnvelopeHeader {
  if (!(envelope instanceof Uint8Array)) throw new TypeError('envelope must be a Uint8Array');
  if (envelope.length < ENVELOPE_MIN_OVERHEAD) throw new EnvelopeError('too-short', `envelope of ${envelope.length} bytes, at least ${ENVELOPE_MIN_OVERHEAD}`);
  if (envelope.length > maxLength) throw new EnvelopeError('too-long', `envelope of ${envelope.length} bytes, at most ${maxLength}`);
  const version = envelope[0];
  if (version !== ENVELOPE_FORMAT_VERSION) throw new EnvelopeError('unsupported-version', `format version ${version}, this firmware reads ${ENVELOPE_FORMAT_VERSION}`);
  const suite = envelope[1];
  if (suites.indexOf(suite as EnvelopeSuite) < 0) throw new EnvelopeError('suite-not-allowed', `suite 0x${suite.toString(16)} is not accepted here`);
  const tagLength = suiteTagLength(suite);
  if (envelope.length < ENVELOPE_MIN_HEADER_LENGTH + tagLength) {
    throw new EnvelopeError('too-short', `envelope of ${envelope.length} bytes, at least ${ENVELOPE_MIN_HEADER_LENGTH + tagLength} for suite 0x${suite.toString(16)}`);
  }
  const tagOffset = envelope.length - tagLength;
  const keyId = readVarint(envelope, 2, tagOffset, KEY_ID_MAX_BYTES, 0x0f);
  if (keyId === VARINT_TRUNCATED) throw new EnvelopeError('too-short', 'the key id runs into the tag');
  if (keyId === VARINT_INVALID) throw new EnvelopeError('bad-key-id', 'key id is not a canonical LEB128 u32');
  const counterOffset = 2 + varintLength(keyId);
  const counter = readVarint(envelope, counterOffset, tagOffset, COUNTER_MAX_BYTES, 0x0f);
  if (counter === VARINT_TRUNCATED) throw new EnvelopeError('too-short', 'the counter runs into the tag');
  if (counter === VARINT_INVALID) throw new EnvelopeError('bad-counter', 'counter is not a canonical LEB128 value up to 2^53 - 1');
  if (counter === 0) throw new EnvelopeError('bad-counter', 'counter is 0');
  return { version, suite: suite as EnvelopeSuite, keyId, counter, headerLength: counterOffset + varintLength(counter), tagOffset };
}

const ALL_SUITES: readonly EnvelopeSuite[] = Object.freeze([
  EnvelopeSuite.hmacSha256,
  EnvelopeSuite.chacha20Poly1305,
  EnvelopeSuite.aes256Gcm,
  EnvelopeSuite.commandEd25519,
  EnvelopeSuite.commandEd25519Chacha20Poly1305,
]);

/**
 * The wire header of a well-formed envelope of any suite, or undefined when
 * `decodeHeader` would refuse it. Nothing is authenticated: for routing
 * (which key id) and for a device reading back its own sealed records
 * (which counter).
 */
export function peekHeader(envelope: Uint8Array): EnvelopeHeader | undefined {
  try {
    return decodeHeader(envelope, ALL_SUITES, MAX_ENVELOPE_LENGTH);
  } catch (error) {
    if (error instanceof EnvelopeError) return undefined;
    throw error;
  }
}

/** Counter as 7 little-endian bytes (the AEAD nonces below, and receipts: docs/spec/receipt.md). The caller checked 1..2^53 - 1. */
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

/** A 7-byte little-endian counter field (receipts); values above 2^53 - 1 come back as Infinity (never exact). */
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
  if (!Number.isInteger(keyId) || keyId < 0 || keyId > ENVELOPE_KEY_ID_MAX) throw new RangeError(`keyId must be an integer in 0..2^32-1, got ${keyId}`);
  return keyId;
}

/** Check a counter argument: an integer in 1..2^53 - 1. */
function checkCounterArgument(counter: unknown): number {
  if (typeof counter !== 'number') throw new TypeError(`counter must be a number, got ${typeof counter}`);
  if (!Number.isSafeInteger(counter) || counter < 1) throw new RangeError(`counter must be an integer in 1..2^53-1, got ${counter}`);
  return counter;
}

/** Check a maximum envelope length option (undefined: MAX_ENVELOPE_LENGTH). */
export function checkMaxLength(maxLength: unknown): number {
  if (maxLength === undefined) return MAX_ENVELOPE_LENGTH;
  if (typeof maxLength !== 'number') throw new TypeError(`maxLength must be a number, got ${typeof maxLength}`);
  if (!Number.isInteger(maxLength) || maxLength < ENVELOPE_MIN_OVERHEAD || maxLength > MAX_ENVELOPE_LENGTH) {
    throw new RangeError(`maxLength must be an integer in ${ENVELOPE_MIN_OVERHEAD}..${MAX_ENVELOPE_LENGTH}, got ${maxLength}`);
  }
  return maxLength;
}

/** Same bytes (device ids are not secret: a plain compare). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
