/**
 * Ingest receipts (docs/spec/receipt.md): the ingest's authenticated
 * statement to one device "these counter values were accepted", so that a
 * record leaves the device's flash only when the service that stores it has
 * it (the end-to-end argument), never on a broker's PUBACK alone.
 *
 * A receipt carries the ingest's exact per-sender window as it keeps it
 * (tools/ingest/window.ts): the highest accepted counter H and a 1024-bit
 * bitmap, bit i = counter H - i. It asserts acceptances only, and an
 * accepted counter stays accepted, so an old or replayed receipt is still
 * true: no freshness rule, no counter of its own.
 *
 *   offset  size  field
 *   0       1     format version (RECEIPT_FORMAT_VERSION = 1)
 *   1       4     key id, u32 LE (the device key generation the window is for)
 *   5       7     H, u56 LE, 0..2^53 - 1 (0: nothing accepted yet)
 *   12      128   bitmap: bit i (byte i >> 3, bit i & 7) = counter H - i accepted
 *   140     16    tag = HMAC-SHA-256(K_receipt, device id (8) || bytes 0..139)[0..16)
 *
 * `sealReceipt` is the ingest's side (Node calls it), `openReceipt` the
 * device's. Both are engine-neutral; `openReceipt` checks length, version,
 * key id and the tag before it interprets a single bit of the window.
 */
import { setErrorName } from '../base/error-name.ts';
import { FORMAT_VERSIONS } from '../base/format-versions.ts';
import { constantTimeEqual } from './_ct.ts';
import { checkDeviceId, checkKeyId, ENVELOPE_COUNTER_MAX, readCounter, writeCounter } from './envelope-format.ts';
import type { DeviceKeys } from './envelope-keys.ts';

/** Receipt format version, separate from the package version (docs/spec/receipt.md). */
export const RECEIPT_FORMAT_VERSION = FORMAT_VERSIONS.receipt;
/** W: counter values one receipt speaks for, the ingest's window (tools/ingest/window.ts INGEST_WINDOW_BITS). */
export const RECEIPT_WINDOW_BITS = 1024;
/** Bytes of the bitmap. */
export const RECEIPT_BITMAP_BYTES = RECEIPT_WINDOW_BITS / 8;
/** Bytes of the tag: HMAC-SHA-256 truncated to 128 bits (RFC 2104 §5; docs/spec/receipt.md, "Tag"). */
export const RECEIPT_TAG_LENGTH = 16;
/** Offsets of the fields. */
export const RECEIPT_OFFSETS = Object.freeze({ version: 0, keyId: 1, highest: 5, bitmap: 12, tag: 12 + RECEIPT_BITMAP_BYTES });
/** Bytes of every receipt: 156. */
export const RECEIPT_LENGTH = RECEIPT_OFFSETS.tag + RECEIPT_TAG_LENGTH;

export type ReceiptErrorCode =
  /** Not exactly RECEIPT_LENGTH bytes. */
  | 'bad-length'
  /** Byte 0 is not a receipt format this firmware reads. */
  | 'unsupported-version'
  /** The key id is not the one of the keys this device holds. */
  | 'unknown-key'
  /** The tag does not verify: forged, damaged, another device's receipt, or sealed under another key. */
  | 'bad-tag'
  /** Authentic, but the window it states cannot be true (H above 2^53 - 1, H not marked, counters below 1 marked): an ingest bug, refused. */
  | 'malformed';

export class ReceiptError extends Error {
  constructor(
    readonly code: ReceiptErrorCode,
    message: string,
  ) {
    super(message);
    setErrorName(this, 'ReceiptError');
  }
}

/** HMAC-SHA-256, 32 bytes: the Crypto HAL and `EnvelopePrimitives` both fit. */
export interface ReceiptMac {
  hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array;
}

/** What the ingest keeps for one sender: `IngestWindow.state()` (tools/ingest/window.ts) fits as it is. */
export interface ReceiptWindowState {
  /** H: highest accepted counter (0: none yet). */
  readonly highest: number;
  /** RECEIPT_BITMAP_BYTES bytes; bit i (byte i >> 3, bit i & 7) stands for counter H - i. */
  readonly bitmap: Uint8Array;
}

/** A verified receipt. */
export interface OpenedReceipt {
  readonly keyId: number;
  /** H: the highest counter the ingest had accepted (0: none). */
  readonly highest: number;
  /**
   * True when the receipt states that `counter` was accepted: H - W < counter ≤ H
   * and its bit is set. False for anything else, counters below the window
   * included (the receipt says nothing about them).
   */
  covers(counter: number): boolean;
}

/**
 * The ingest's side: a receipt of `state` for the device of `keys` (its
 * device id and key id). Throws RangeError when the state cannot be true
 * (the same rules `openReceipt` applies), TypeError for wrong types.
 */
export function sealReceipt(mac: ReceiptMac, keys: DeviceKeys, state: ReceiptWindowState): Uint8Array {
  if (typeof mac !== 'object' || mac === null || typeof mac.hmacSha256 !== 'function') throw new TypeError('mac must have hmacSha256 (the Crypto HAL or envelopePrimitives)');
  const key = receiptKey(keys);
  if (typeof state !== 'object' || state === null) throw new TypeError('state must be an object { highest, bitmap }');
  if (typeof state.highest !== 'number') throw new TypeError(`highest must be a number, got ${typeof state.highest}`);
  if (!Number.isSafeInteger(state.highest) || state.highest < 0) throw new RangeError(`highest must be an integer in 0..2^53-1, got ${state.highest}`);
  if (!(state.bitmap instanceof Uint8Array)) throw new TypeError('bitmap must be a Uint8Array');
  if (state.bitmap.length !== RECEIPT_BITMAP_BYTES) throw new RangeError(`bitmap must be ${RECEIPT_BITMAP_BYTES} bytes, got ${state.bitmap.length}`);
  const problem = windowProblem(state.highest, state.bitmap);
  if (problem !== undefined) throw new RangeError(problem);
  const receipt = new Uint8Array(RECEIPT_LENGTH);
  receipt[RECEIPT_OFFSETS.version] = RECEIPT_FORMAT_VERSION;
  new DataView(receipt.buffer).setUint32(RECEIPT_OFFSETS.keyId, keys.keyId, true);
  writeCounter(state.highest, receipt, RECEIPT_OFFSETS.highest);
  receipt.set(state.bitmap, RECEIPT_OFFSETS.bitmap);
  receipt.set(computeTag(mac, key, keys.deviceId, receipt), RECEIPT_OFFSETS.tag);
  return receipt;
}

/**
 * The device's side: verify `bytes` as a receipt for this device (`keys`:
 * its device id, key id and receipt key). Checks, first failure wins, each a
 * ReceiptError: length (exactly RECEIPT_LENGTH: 'bad-length'), version
 * ('unsupported-version'), key id ('unknown-key'), tag in constant time
 * ('bad-tag'), then the window it states ('malformed'). TypeError when
 * `bytes` is not a Uint8Array. O(1) work and memory (one HMAC of 148 bytes,
 * one 128-byte copy) whatever the input.
 */
export function openReceipt(bytes: Uint8Array, keys: DeviceKeys, mac: ReceiptMac): OpenedReceipt {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('receipt must be a Uint8Array');
  const key = receiptKey(keys);
  if (typeof mac !== 'object' || mac === null || typeof mac.hmacSha256 !== 'function') throw new TypeError('mac must have hmacSha256 (the Crypto HAL or envelopePrimitives)');
  if (bytes.length !== RECEIPT_LENGTH) throw new ReceiptError('bad-length', `receipt of ${bytes.length} bytes, expected ${RECEIPT_LENGTH}`);
  const version = bytes[RECEIPT_OFFSETS.version];
  if (version !== RECEIPT_FORMAT_VERSION) throw new ReceiptError('unsupported-version', `receipt format ${version}, this firmware reads ${RECEIPT_FORMAT_VERSION}`);
  const keyId = new DataView(bytes.buffer, bytes.byteOffset, RECEIPT_LENGTH).getUint32(RECEIPT_OFFSETS.keyId, true);
  if (keyId !== keys.keyId) throw new ReceiptError('unknown-key', `receipt for key id ${keyId}, this device holds ${keys.keyId}`);
  const tag = computeTag(mac, key, keys.deviceId, bytes);
  if (!constantTimeEqual(tag, bytes.subarray(RECEIPT_OFFSETS.tag, RECEIPT_LENGTH))) throw new ReceiptError('bad-tag', 'receipt tag does not verify');
  const highest = readCounter(bytes, RECEIPT_OFFSETS.highest);
  if (!(highest <= ENVELOPE_COUNTER_MAX)) throw new ReceiptError('malformed', 'H above 2^53 - 1');
  const bitmap = bytes.slice(RECEIPT_OFFSETS.bitmap, RECEIPT_OFFSETS.bitmap + RECEIPT_BITMAP_BYTES);
  const problem = windowProblem(highest, bitmap);
  if (problem !== undefined) throw new ReceiptError('malformed', problem);
  return Object.freeze<OpenedReceipt>({
    keyId,
    highest,
    covers(counter: number): boolean {
      if (typeof counter !== 'number' || !Number.isSafeInteger(counter) || counter < 1 || counter > highest) return false;
      const index = highest - counter;
      return index < RECEIPT_WINDOW_BITS && bitAt(bitmap, index);
    },
  });
}

/** Why (highest, bitmap) cannot be an ingest window, or undefined when it can (tools/ingest/window.ts's own rules). */
function windowProblem(highest: number, bitmap: Uint8Array): string | undefined {
  // Bits for counters below 1 (index ≥ H) can never be set.
  for (let i = Math.min(highest, RECEIPT_WINDOW_BITS); i < RECEIPT_WINDOW_BITS; i++) {
    if (bitAt(bitmap, i)) return `bitmap marks counter ${highest - i}, below 1`;
  }
  if (highest > 0 && !bitAt(bitmap, 0)) return `bitmap does not mark H = ${highest}`;
  return undefined;
}

function bitAt(bitmap: Uint8Array, index: number): boolean {
  return ((bitmap[index >>> 3] >>> (index & 7)) & 1) === 1;
}

/** HMAC-SHA-256(K_receipt, device id || receipt[0..140))[0..16). */
function computeTag(mac: ReceiptMac, key: Uint8Array, deviceId: Uint8Array, receipt: Uint8Array): Uint8Array {
  const input = new Uint8Array(deviceId.length + RECEIPT_OFFSETS.tag);
  input.set(deviceId, 0);
  input.set(receipt.subarray(0, RECEIPT_OFFSETS.tag), deviceId.length);
  const full = mac.hmacSha256(key, input);
  if (!(full instanceof Uint8Array) || full.length < RECEIPT_TAG_LENGTH) throw new TypeError('hmacSha256 must return at least 16 bytes');
  return full.subarray(0, RECEIPT_TAG_LENGTH);
}

function receiptKey(keys: DeviceKeys): Uint8Array {
  if (typeof keys !== 'object' || keys === null) throw new TypeError('keys must be DeviceKeys (deriveDeviceKeys)');
  checkDeviceId(keys.deviceId, 'keys.deviceId');
  checkKeyId(keys.keyId);
  if (!(keys.receipt instanceof Uint8Array) || keys.receipt.length === 0) throw new TypeError('keys.receipt must be the receipt key (deriveDeviceKeys)');
  return keys.receipt;
}
