/**
 * Audit log bytes (docs/spec/audit-log.md): block header and entry layouts,
 * the entry hash that chains them and the truncated HMAC tag. Shared by the
 * device (audit-log.ts) and the host verifier (tools/audit/verify.ts).
 * Little-endian throughout.
 */
import type { Crypto } from '../hal/crypto.ts';
import { crc32, crc32Final, crc32Init, crc32Update } from '../base/crc32.ts';
import { FORMAT_VERSIONS } from '../base/format-versions.ts';
import { getU32, putU32 } from '../base/entry16.ts';
import { AUDIT_MAX_BODY } from './_audit-events.ts';

export const AUDIT_FORMAT_VERSION: number = FORMAT_VERSIONS.auditLog;
/** Block header bytes (six 16-byte units). */
export const AUDIT_HEADER_LENGTH = 96;
/** Entries start at multiples of 16 from the block start, in both flash modes. */
export const AUDIT_ENTRY_ALIGN = 16;
/** Bytes of an entry before its body. */
export const AUDIT_ENTRY_FIXED = 48;
/** Bytes of the stored tag: HMAC-SHA-256 truncated to 128 bits. */
export const AUDIT_TAG_LENGTH = 16;
/** Bytes of an entry hash (SHA-256). */
export const AUDIT_HASH_LENGTH = 32;
/** Longest entry, unpadded: 48 + 64 + 16. */
export const AUDIT_MAX_ENTRY = AUDIT_ENTRY_FIXED + AUDIT_MAX_BODY + AUDIT_TAG_LENGTH;
/** Smallest block: a header, then room for a drop entry and a largest entry. */
export const AUDIT_MIN_BLOCK_LENGTH = 512;
export const AUDIT_MAX_BLOCK_LENGTH = 65536;
/** Header `dropCount` meaning "not known". */
export const DROP_COUNT_UNKNOWN = 0xffffffff;

const TWO_TO_32 = 0x1_0000_0000;
const MAX_HIGH = 0x1f_ffff;
/** Byte 3 of an entry: version ^ kind ^ bodyLength ^ this. */
const ENTRY_CHECK_XOR = 0xa5;

export interface AuditHeader {
  readonly version: number;
  readonly unitShift: number;
  /** Opening order: 1 for the block written by `format`, +1 per opening; (blockSeq − 1) mod N = index. */
  readonly blockSeq: number;
  /** Entries with counters up to this were acknowledged when the block was opened. */
  readonly ackCounter: number;
  /** Counter of the entry before this block's first entry (0: none). */
  readonly lastCounter: number;
  /** Hash of that entry (32 zero bytes: none, the start of the log). */
  readonly anchor: Uint8Array;
  /** A drop to record: 0 when none is pending at this opening. */
  readonly dropSeq: number;
  /** Unacknowledged entries dropped (DROP_COUNT_UNKNOWN: not known). */
  readonly dropCount: number;
  readonly dropFirst: number;
  readonly dropLast: number;
}

export type HeaderRead =
  | { readonly state: 'erased' }
  /** Not a header of this format: torn, damaged, or foreign. */
  | { readonly state: 'invalid' }
  /** A valid header of a newer format (byte 0 > ours, CRC of bytes 0..91 at 92 checks). */
  | { readonly state: 'newer'; readonly version: number }
  | { readonly state: 'valid'; readonly header: AuditHeader };

export function putU53(bytes: Uint8Array, at: number, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`a counter must be an integer in 0..2^53-1, got ${value}`);
  putU32(bytes, at, value % TWO_TO_32);
  putU32(bytes, at + 4, Math.floor(value / TWO_TO_32));
}

/** The u53 at `at`, or -1 when the high word exceeds 53 bits. */
export function getU53(bytes: Uint8Array, at: number): number {
  const high = getU32(bytes, at + 4);
  if (high > MAX_HIGH) return -1;
  return high * TWO_TO_32 + getU32(bytes, at);
}

export function alignUp(value: number, align: number): number {
  return Math.ceil(value / align) * align;
}

export function isErased(bytes: Uint8Array, from = 0, to = bytes.length): boolean {
  for (let i = from; i < to; i++) if (bytes[i] !== 0xff) return false;
  return true;
}

export function encodeHeader(h: AuditHeader): Uint8Array {
  const out = new Uint8Array(AUDIT_HEADER_LENGTH);
  out[0] = h.version;
  out[1] = h.unitShift;
  putU32(out, 4, h.blockSeq);
  putU53(out, 8, h.ackCounter);
  putU53(out, 16, h.lastCounter);
  out.set(h.anchor, 24);
  putU32(out, 56, h.dropSeq);
  putU32(out, 60, h.dropCount);
  putU53(out, 64, h.dropFirst);
  putU53(out, 72, h.dropLast);
  putU32(out, 92, crc32(out, 0, 92));
  return out;
}

/** Read a header; `bytes` holds at least AUDIT_HEADER_LENGTH bytes. */
export function decodeHeader(bytes: Uint8Array): HeaderRead {
  if (isErased(bytes, 0, AUDIT_HEADER_LENGTH)) return { state: 'erased' };
  if (getU32(bytes, 92) !== crc32(bytes, 0, 92)) return { state: 'invalid' };
  const version = bytes[0];
  if (version !== AUDIT_FORMAT_VERSION) return version > AUDIT_FORMAT_VERSION && version !== 0xff ? { state: 'newer', version } : { state: 'invalid' };
  const ackCounter = getU53(bytes, 8);
  const lastCounter = getU53(bytes, 16);
  const dropFirst = getU53(bytes, 64);
  const dropLast = getU53(bytes, 72);
  const blockSeq = getU32(bytes, 4);
  if (bytes[2] !== 0 || bytes[3] !== 0 || !isZero(bytes, 80, 92) || blockSeq === 0 || ackCounter < 0 || lastCounter < 0 || dropFirst < 0 || dropLast < 0) return { state: 'invalid' };
  return {
    state: 'valid',
    header: {
      version,
      unitShift: bytes[1],
      blockSeq,
      ackCounter,
      lastCounter,
      anchor: bytes.slice(24, 56),
      dropSeq: getU32(bytes, 56),
      dropCount: getU32(bytes, 60),
      dropFirst,
      dropLast,
    },
  };
}

function isZero(bytes: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (bytes[i] !== 0) return false;
  return true;
}

// ---------------------------------------------------------------- entries

/** Unpadded length of an entry with a `bodyLength`-byte body. */
export function entryLength(bodyLength: number): number {
  return AUDIT_ENTRY_FIXED + bodyLength + AUDIT_TAG_LENGTH;
}

/** Bytes an entry occupies on flash: padded with 0xFF to a multiple of 16. */
export function paddedEntryLength(bodyLength: number): number {
  return alignUp(entryLength(bodyLength), AUDIT_ENTRY_ALIGN);
}

export interface AuditEntryFields {
  readonly version: number;
  readonly kind: number;
  readonly counter: number;
  readonly prevHash: Uint8Array;
  readonly body: Uint8Array;
}

export interface AuditEntryRaw extends AuditEntryFields {
  readonly tag: Uint8Array;
  /** The entry's bytes, unpadded (what is hashed, published and exported). */
  readonly bytes: Uint8Array;
}

export type EntryRead =
  /** The 16 bytes at the position read erased: no entry starts here. */
  | { readonly state: 'erased' }
  /** Not an entry: torn, damaged, or not the start of one; `reason` says which check failed. */
  | { readonly state: 'invalid'; readonly reason: string }
  /** Checks, but of a newer entry format. */
  | { readonly state: 'newer'; readonly version: number }
  | { readonly state: 'entry'; readonly entry: AuditEntryRaw };

/**
 * The bytes an entry's tag covers: bytes 0..3 and 8..(48 + bodyLength), that
 * is everything before the tag except the CRC.
 */
function tagInput(bytes: Uint8Array, bodyLength: number): Uint8Array {
  const out = new Uint8Array(4 + AUDIT_ENTRY_FIXED - 8 + bodyLength);
  out.set(bytes.subarray(0, 4), 0);
  out.set(bytes.subarray(8, AUDIT_ENTRY_FIXED + bodyLength), 4);
  return out;
}

/** Tag of an entry: HMAC-SHA-256 under the audit key, first 16 bytes. */
export function entryTag(crypto: Crypto, key: Uint8Array, bytes: Uint8Array, bodyLength: number): Uint8Array {
  return crypto.hmacSha256(key, tagInput(bytes, bodyLength)).slice(0, AUDIT_TAG_LENGTH);
}

/** SHA-256 over the whole unpadded entry (tag and CRC included): the next entry's prevHash. */
export function entryHash(crypto: Crypto, entryBytes: Uint8Array): Uint8Array {
  const sha = crypto.createSha256();
  sha.update(entryBytes);
  return sha.digest();
}

/** Build an entry (unpadded); the counter must be 1..2^53-1, the kind 1..254, the body at most 64 bytes. */
export function encodeEntry(crypto: Crypto, key: Uint8Array, fields: Omit<AuditEntryFields, 'version'>): Uint8Array {
  const { kind, counter, prevHash, body } = fields;
  if (!Number.isInteger(kind) || kind < 1 || kind > 0xfe) throw new RangeError(`kind code must be 1..254, got ${kind}`);
  if (!Number.isSafeInteger(counter) || counter < 1) throw new RangeError(`counter must be an integer in 1..2^53-1, got ${counter}`);
  if (prevHash.length !== AUDIT_HASH_LENGTH) throw new RangeError(`prevHash must be ${AUDIT_HASH_LENGTH} bytes`);
  if (body.length > AUDIT_MAX_BODY) throw new RangeError(`body must be at most ${AUDIT_MAX_BODY} bytes, got ${body.length}`);
  const out = new Uint8Array(entryLength(body.length));
  out[0] = AUDIT_FORMAT_VERSION;
  out[1] = kind;
  out[2] = body.length;
  out[3] = AUDIT_FORMAT_VERSION ^ kind ^ body.length ^ ENTRY_CHECK_XOR;
  putU53(out, 8, counter);
  out.set(prevHash, 16);
  out.set(body, AUDIT_ENTRY_FIXED);
  out.set(entryTag(crypto, key, out, body.length), AUDIT_ENTRY_FIXED + body.length);
  putU32(out, 4, entryCrc(out, body.length));
  return out;
}

function entryCrc(bytes: Uint8Array, bodyLength: number): number {
  const c = crc32Update(crc32Init(), bytes, 0, 4);
  return crc32Final(crc32Update(c, bytes, 8, entryLength(bodyLength)));
}

/**
 * Read the entry starting at `bytes[at]` within `bytes[at, end)`. Checks its
 * shape and CRC-32 (which a torn write fails), not its tag (which needs the
 * key) nor its place in the chain.
 */
export function readEntry(bytes: Uint8Array, at: number, end: number = bytes.length): EntryRead {
  if (at + 16 <= end && isErased(bytes, at, at + 16)) return { state: 'erased' };
  if (at + 4 > end) return { state: 'invalid', reason: `${end - at} bytes left, shorter than an entry header` };
  const version = bytes[at];
  const kind = bytes[at + 1];
  const bodyLength = bytes[at + 2];
  if ((version ^ kind ^ bodyLength ^ ENTRY_CHECK_XOR) !== bytes[at + 3]) return { state: 'invalid', reason: 'header check byte mismatch' };
  if (version === 0xff || version === 0) return { state: 'invalid', reason: `version byte ${version}` };
  if (bodyLength > AUDIT_MAX_BODY && version === AUDIT_FORMAT_VERSION) return { state: 'invalid', reason: `body length ${bodyLength} exceeds ${AUDIT_MAX_BODY}` };
  const length = entryLength(bodyLength);
  if (at + length > end) return { state: 'invalid', reason: `entry of ${length} bytes runs past the end (${end - at} bytes left)` };
  const bytesOfEntry = bytes.subarray(at, at + length);
  if (getU32(bytesOfEntry, 4) !== entryCrc(bytesOfEntry, bodyLength)) return { state: 'invalid', reason: 'CRC-32 mismatch' };
  if (version !== AUDIT_FORMAT_VERSION) return version > AUDIT_FORMAT_VERSION ? { state: 'newer', version } : { state: 'invalid', reason: `version ${version}` };
  if (kind === 0 || kind === 0xff) return { state: 'invalid', reason: `kind code ${kind}` };
  const counter = getU53(bytesOfEntry, 8);
  if (counter < 1) return { state: 'invalid', reason: 'counter outside 1..2^53-1' };
  const copy = bytesOfEntry.slice();
  return {
    state: 'entry',
    entry: {
      version,
      kind,
      counter,
      prevHash: copy.subarray(16, 48),
      body: copy.subarray(AUDIT_ENTRY_FIXED, AUDIT_ENTRY_FIXED + bodyLength),
      tag: copy.subarray(AUDIT_ENTRY_FIXED + bodyLength, length),
      bytes: copy,
    },
  };
}

/** Constant-time equality of two byte strings of equal length (false when lengths differ). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** Does `entry`'s tag check under `key`? */
export function tagChecks(crypto: Crypto, key: Uint8Array, entry: AuditEntryRaw): boolean {
  return bytesEqual(entryTag(crypto, key, entry.bytes, entry.body.length), entry.tag);
}

/** 32 zero bytes: the predecessor hash of the first entry a log ever holds. */
export function genesisHash(): Uint8Array {
  return new Uint8Array(AUDIT_HASH_LENGTH);
}
