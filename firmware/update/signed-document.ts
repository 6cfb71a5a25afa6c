/**
 * The signed-document envelope shared by ROOT and IMAGE documents
 * (docs/spec/image-manifest.md, "Envelope", format 1). Both root.ts and
 * manifest.ts build on this module; neither imports the other's envelope
 * code, so the update area has no import cycle.
 *
 * Envelope, little-endian:
 *
 *   0        4     5     6         8            8+L    9+L
 *   +--------+-----+-----+---------+------------+------+---------------------+
 *   | "HFSD" | fmt | 0x00| body L  | body       | n    | n x (key id, sig)   |
 *   +--------+-----+-----+---------+------------+------+---------------------+
 *
 * Signatures are Ed25519 over the exact body bytes; a key id is the first
 * 8 bytes of SHA-256 of the public key. The body starts with its kind
 * (ROOT 0x01, IMAGE 0x02) and the format version again, so both are signed.
 * Bounds: body 2..2048 bytes, 0..8 signatures, so an envelope is at most
 * 2633 bytes; the decoder checks every length before it reads or copies.
 */
import { FORMAT_VERSIONS } from '../base/format-versions.ts';
import { KEY_ID_LENGTH, SIGNATURE_LENGTH, type SignatureEntry, type ThresholdTally } from '../security/verify.ts';
import { reject, UpdateError, type Rejection } from './errors.ts';

/** Format version of the envelope and of both bodies (docs/spec/image-manifest.md). */
export const SIGNED_DOCUMENT_FORMAT_VERSION = FORMAT_VERSIONS.signedDocument;
/** "HFSD": holdfast signed document. */
export const ENVELOPE_MAGIC: readonly number[] = Object.freeze([0x48, 0x46, 0x53, 0x44]);
export const ENVELOPE_HEADER_LENGTH = 8;
export const MAX_BODY_LENGTH = 2048;
export const MAX_SIGNATURES = 8;
/** One signature entry: key id (8) + Ed25519 signature (64). */
export const SIGNATURE_ENTRY_LENGTH = KEY_ID_LENGTH + SIGNATURE_LENGTH;
export const MAX_ENVELOPE_LENGTH = ENVELOPE_HEADER_LENGTH + MAX_BODY_LENGTH + 1 + MAX_SIGNATURES * SIGNATURE_ENTRY_LENGTH;
export const MAX_U32 = 0xffffffff;

/** Body byte 0. 0x00 and 0xFF (erased) are never kinds. */
export const DOCUMENT_KIND = Object.freeze({ root: 0x01, image: 0x02 });
export type DocumentKind = keyof typeof DOCUMENT_KIND;

export interface SignedDocument {
  readonly formatVersion: number;
  readonly kind: DocumentKind;
  /** The signed bytes (a copy). */
  readonly body: Uint8Array;
  readonly signatures: readonly SignatureEntry[];
}

/** Envelope bytes for `body` and its signatures (no signing here: tools/keys signs). */
export function encodeEnvelope(body: Uint8Array, signatures: readonly SignatureEntry[]): Uint8Array {
  if (body.length < 2 || body.length > MAX_BODY_LENGTH) throw new RangeError(`body must be 2..${MAX_BODY_LENGTH} bytes, got ${body.length}`);
  if (signatures.length > MAX_SIGNATURES) throw new RangeError(`at most ${MAX_SIGNATURES} signatures, got ${signatures.length}`);
  const out = new Uint8Array(ENVELOPE_HEADER_LENGTH + body.length + 1 + signatures.length * SIGNATURE_ENTRY_LENGTH);
  const view = new DataView(out.buffer);
  out.set(ENVELOPE_MAGIC, 0);
  out[4] = SIGNED_DOCUMENT_FORMAT_VERSION;
  out[5] = 0;
  view.setUint16(6, body.length, true);
  out.set(body, ENVELOPE_HEADER_LENGTH);
  let at = ENVELOPE_HEADER_LENGTH + body.length;
  out[at++] = signatures.length;
  for (const s of signatures) {
    if (s.keyId.length !== KEY_ID_LENGTH || s.signature.length !== SIGNATURE_LENGTH) throw new RangeError('signature entry must be an 8-byte key id and a 64-byte signature');
    out.set(s.keyId, at);
    out.set(s.signature, at + KEY_ID_LENGTH);
    at += SIGNATURE_ENTRY_LENGTH;
  }
  return out;
}

/**
 * Decode an envelope and check its body header (kind, format version).
 * Throws UpdateError 'malformed' or 'unknown-format', nothing else for any
 * Uint8Array input; reads and copies only within the bounds above.
 */
export function decodeEnvelope(bytes: Uint8Array): SignedDocument {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('document must be a Uint8Array');
  if (bytes.length >= 4 && bytes[0] === 0xff && bytes[1] === 0xff && bytes[2] === 0xff && bytes[3] === 0xff) {
    throw new UpdateError('malformed', 'erased (0xFF) where a signed document should start');
  }
  if (bytes.length < ENVELOPE_HEADER_LENGTH) throw new UpdateError('malformed', `truncated: ${bytes.length} bytes, the envelope header alone is ${ENVELOPE_HEADER_LENGTH}`);
  for (let i = 0; i < ENVELOPE_MAGIC.length; i++) {
    if (bytes[i] !== ENVELOPE_MAGIC[i]) throw new UpdateError('malformed', 'bad magic: not a holdfast signed document');
  }
  if (bytes[4] !== SIGNED_DOCUMENT_FORMAT_VERSION) throw new UpdateError('unknown-format', `envelope format ${bytes[4]}, this firmware reads format ${SIGNED_DOCUMENT_FORMAT_VERSION}`);
  if (bytes[5] !== 0) throw new UpdateError('malformed', `reserved envelope byte is 0x${hex2(bytes[5])}, must be 0x00`);
  if (bytes.length > MAX_ENVELOPE_LENGTH) throw new UpdateError('malformed', `${bytes.length} bytes, an envelope is at most ${MAX_ENVELOPE_LENGTH}`);
  const bodyLength = bytes[6] | (bytes[7] << 8);
  if (bodyLength < 2 || bodyLength > MAX_BODY_LENGTH) throw new UpdateError('malformed', `body length ${bodyLength} outside 2..${MAX_BODY_LENGTH}`);
  const countAt = ENVELOPE_HEADER_LENGTH + bodyLength;
  if (bytes.length <= countAt) throw new UpdateError('malformed', `truncated: body of ${bodyLength} bytes and signature count need ${countAt + 1} bytes, got ${bytes.length}`);
  const count = bytes[countAt];
  if (count > MAX_SIGNATURES) throw new UpdateError('malformed', `${count} signatures, at most ${MAX_SIGNATURES}`);
  const expected = countAt + 1 + count * SIGNATURE_ENTRY_LENGTH;
  if (bytes.length < expected) throw new UpdateError('malformed', `truncated: ${count} signatures need ${expected} bytes, got ${bytes.length}`);
  if (bytes.length > expected) throw new UpdateError('malformed', `${bytes.length - expected} trailing bytes after the last signature`);
  const body = bytes.slice(ENVELOPE_HEADER_LENGTH, countAt);
  const kind = readBodyKind(body);
  const signatures: SignatureEntry[] = [];
  for (let i = 0, at = countAt + 1; i < count; i++, at += SIGNATURE_ENTRY_LENGTH) {
    signatures.push(
      Object.freeze({
        keyId: bytes.slice(at, at + KEY_ID_LENGTH),
        signature: bytes.slice(at + KEY_ID_LENGTH, at + SIGNATURE_ENTRY_LENGTH),
      }),
    );
  }
  return Object.freeze({ formatVersion: SIGNED_DOCUMENT_FORMAT_VERSION, kind, body, signatures: Object.freeze(signatures) });
}

/**
 * The kind of a body after checking its two header bytes: 'unknown-format'
 * for an unknown kind or a format other than this firmware's, 'malformed'
 * for a body shorter than its header.
 */
export function readBodyKind(body: Uint8Array): DocumentKind {
  if (!(body instanceof Uint8Array)) throw new TypeError('body must be a Uint8Array');
  if (body.length < 2) throw new UpdateError('malformed', `body of ${body.length} bytes, its kind and format alone are 2`);
  const kind = body[0] === DOCUMENT_KIND.root ? 'root' : body[0] === DOCUMENT_KIND.image ? 'image' : undefined;
  if (kind === undefined) throw new UpdateError('unknown-format', `unknown document kind 0x${hex2(body[0])}`);
  if (body[1] !== SIGNED_DOCUMENT_FORMAT_VERSION) throw new UpdateError('unknown-format', `${kind} body format ${body[1]}, this firmware reads format ${SIGNED_DOCUMENT_FORMAT_VERSION}`);
  return kind;
}

/**
 * Check that `body` is a `kind` body of this firmware's format (every
 * exported body decoder calls this: a body is never judged by its length
 * alone). 'wrong-kind' for the other known kind.
 */
export function checkBodyKind(body: Uint8Array, kind: DocumentKind): void {
  const actual = readBodyKind(body);
  if (actual !== kind) throw new UpdateError('wrong-kind', `a ${actual} body where ${describeKind(kind)} was expected`);
}

/** Decode an envelope that must hold `kind`; throws UpdateError otherwise ('wrong-kind' for the other kind). */
export function decodeDocument(bytes: Uint8Array, kind: DocumentKind): SignedDocument {
  const document = decodeEnvelope(bytes);
  if (document.kind !== kind) throw new UpdateError('wrong-kind', `a ${document.kind} document where ${describeKind(kind)} was expected`);
  return document;
}

/** The rejection for a threshold that was not met (roots and manifests alike). */
export function rejectSignatures(tally: ThresholdTally, total: number, role: string): Rejection {
  if (tally.invalid > 0) {
    return reject('bad-signature', `${tally.invalid} signature(s) from ${role} do not verify; ${tally.valid} valid of ${tally.threshold} required`);
  }
  if (total === 0) return reject('too-few-signatures', `no signatures; ${tally.threshold} from ${role} required`);
  if (tally.valid === 0) return reject('wrong-key', `none of the ${total} signature(s) is from ${role}`);
  return reject('too-few-signatures', `${tally.valid} valid signature(s) from distinct ${role}, ${tally.threshold} required`);
}

/** RangeError unless `value` is an integer in min..2^32-1 (encoders' argument check). */
export function checkU32(value: number, name: string, min: number): void {
  if (!Number.isInteger(value) || value < min || value > MAX_U32) throw new RangeError(`${name} must be an integer ${min}..${MAX_U32}, got ${value}`);
}

export function hex2(byte: number): string {
  return (byte < 16 ? '0' : '') + byte.toString(16);
}

function describeKind(kind: DocumentKind): string {
  return kind === 'image' ? 'an image manifest' : 'a root';
}
