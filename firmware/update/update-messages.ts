/**
 * Updates over MQTT (docs/spec/device-topics.md, "Updates"): the messages
 * the cloud publishes on `holdfast/<id>/update` (a signed manifest, or one
 * chunk of the image) and the update-request record (telemetry record type
 * 0x05) the device appends to ask for the manifest or for the next chunk.
 *
 * Chunks carry no signature of their own: the manifest is signed by the
 * fleet's targets keys and names the image's SHA-256 and length; staging
 * hashes every byte written and refuses the image (and starts over) unless
 * the whole matches, and the staged image passes ESP-IDF's checks before
 * the bootloader is pointed at it. A forged chunk can waste a download,
 * never get a byte booted; a per-chunk signature would cost an Ed25519
 * verification per chunk on the device for no more safety.
 *
 * Every length is checked against its bound before anything is copied.
 * The decoders are total: any bytes give a message or an
 * UpdateMessageError with a stable code.
 */
import { setErrorName } from '../base/error-name.ts';
import { FORMAT_VERSIONS } from '../base/format-versions.ts';
import { MAX_ENVELOPE_LENGTH } from './signed-document.ts';

export const UPDATE_MESSAGE_KIND = Object.freeze({ manifest: 0x01, chunk: 0x02 });
export const UPDATE_MESSAGE_HEADER_LENGTH = 4;
export const CHUNK_HEADER_LENGTH = 14;
/** The largest chunk a device accepts (one 4 KiB erase block: what staging writes at a time). */
export const MAX_CHUNK_LENGTH = 4096;
/** The largest manifest message body: a signed document's largest envelope. */
export const MAX_MANIFEST_LENGTH = MAX_ENVELOPE_LENGTH;

export const UPDATE_REQUEST_TYPE = 0x05;
export const UPDATE_REQUEST_LENGTH = 16;
export const UPDATE_REQUEST_KIND = Object.freeze({ manifest: 0x01, chunk: 0x02 });

export type UpdateMessage =
  | { readonly kind: 'manifest'; readonly manifest: Uint8Array }
  /** `tag`: imageTag(manifest.imageDigest), the first 4 digest bytes as a little-endian u32. */
  | { readonly kind: 'chunk'; readonly tag: number; readonly offset: number; readonly bytes: Uint8Array };

export interface UpdateRequest {
  /** 'manifest': send the current manifest (tag: the one a download in progress needs, 0 for any). 'chunk': `length` bytes at `offset` of image `tag`. */
  readonly kind: 'manifest' | 'chunk';
  readonly tag: number;
  readonly offset: number;
  readonly length: number;
}

export type UpdateMessageErrorCode = 'truncated' | 'too-long' | 'format-too-new' | 'bad-version' | 'bad-kind' | 'bad-field' | 'wrong-type';

export class UpdateMessageError extends Error {
  readonly code: UpdateMessageErrorCode;
  constructor(code: UpdateMessageErrorCode, message: string) {
    super(message);
    this.code = code;
    setErrorName(this, 'UpdateMessageError');
  }
}

function header(kind: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  out[0] = FORMAT_VERSIONS.updateMessage;
  out[1] = kind;
  return out;
}

export function encodeManifestMessage(manifest: Uint8Array): Uint8Array {
  if (manifest.length < 1 || manifest.length > MAX_MANIFEST_LENGTH) throw new RangeError(`a manifest is 1..${MAX_MANIFEST_LENGTH} bytes, got ${manifest.length}`);
  const out = header(UPDATE_MESSAGE_KIND.manifest, UPDATE_MESSAGE_HEADER_LENGTH + manifest.length);
  out.set(manifest, UPDATE_MESSAGE_HEADER_LENGTH);
  return out;
}

export function encodeChunkMessage(tag: number, offset: number, bytes: Uint8Array): Uint8Array {
  checkU32('tag', tag);
  checkU32('offset', offset);
  if (bytes.length < 1 || bytes.length > MAX_CHUNK_LENGTH) throw new RangeError(`a chunk is 1..${MAX_CHUNK_LENGTH} bytes, got ${bytes.length}`);
  const out = header(UPDATE_MESSAGE_KIND.chunk, CHUNK_HEADER_LENGTH + bytes.length);
  const view = new DataView(out.buffer);
  view.setUint32(4, tag, true);
  view.setUint32(8, offset, true);
  view.setUint16(12, bytes.length, true);
  out.set(bytes, CHUNK_HEADER_LENGTH);
  return out;
}

/** A message from the update topic; `maxChunk` is the device's bound (default MAX_CHUNK_LENGTH). Copies what it returns. */
export function decodeUpdateMessage(bytes: Uint8Array, maxChunk: number = MAX_CHUNK_LENGTH): UpdateMessage {
  if (bytes.length < UPDATE_MESSAGE_HEADER_LENGTH) throw new UpdateMessageError('truncated', `an update message has a ${UPDATE_MESSAGE_HEADER_LENGTH}-byte header, got ${bytes.length} bytes`);
  checkVersion(bytes[0]);
  if (bytes[2] !== 0 || bytes[3] !== 0) throw new UpdateMessageError('bad-field', 'reserved bytes 2..3 are not 0');
  if (bytes[1] === UPDATE_MESSAGE_KIND.manifest) {
    const length = bytes.length - UPDATE_MESSAGE_HEADER_LENGTH;
    if (length < 1) throw new UpdateMessageError('truncated', 'an empty manifest');
    if (length > MAX_MANIFEST_LENGTH) throw new UpdateMessageError('too-long', `a manifest of ${length} bytes, at most ${MAX_MANIFEST_LENGTH}`);
    return { kind: 'manifest', manifest: bytes.slice(UPDATE_MESSAGE_HEADER_LENGTH) };
  }
  if (bytes[1] === UPDATE_MESSAGE_KIND.chunk) {
    if (bytes.length < CHUNK_HEADER_LENGTH) throw new UpdateMessageError('truncated', `a chunk message has a ${CHUNK_HEADER_LENGTH}-byte header, got ${bytes.length} bytes`);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    const length = view.getUint16(12, true);
    if (length < 1 || length > Math.min(maxChunk, MAX_CHUNK_LENGTH)) throw new UpdateMessageError('too-long', `chunk length ${length} outside 1..${Math.min(maxChunk, MAX_CHUNK_LENGTH)}`);
    if (bytes.length !== CHUNK_HEADER_LENGTH + length) throw new UpdateMessageError('truncated', `chunk length ${length} but ${bytes.length - CHUNK_HEADER_LENGTH} bytes follow the header`);
    return { kind: 'chunk', tag: view.getUint32(4, true), offset: view.getUint32(8, true), bytes: bytes.slice(CHUNK_HEADER_LENGTH) };
  }
  throw new UpdateMessageError('bad-kind', `update message kind ${bytes[1]}`);
}

export function encodeUpdateRequest(request: UpdateRequest): Uint8Array {
  checkU32('tag', request.tag);
  checkU32('offset', request.offset);
  checkU32('length', request.length);
  const kind = UPDATE_REQUEST_KIND[request.kind];
  if (kind === undefined) throw new RangeError(`unknown request kind ${String(request.kind)}`);
  if (request.kind === 'chunk' && (request.length < 1 || request.length > MAX_CHUNK_LENGTH)) throw new RangeError(`a chunk request is for 1..${MAX_CHUNK_LENGTH} bytes, got ${request.length}`);
  if (request.kind === 'manifest' && (request.offset !== 0 || request.length !== 0)) throw new RangeError('a manifest request has offset and length 0');
  const out = new Uint8Array(UPDATE_REQUEST_LENGTH);
  const view = new DataView(out.buffer);
  out[0] = UPDATE_REQUEST_TYPE;
  out[1] = FORMAT_VERSIONS.updateMessage;
  out[2] = kind;
  view.setUint32(4, request.tag, true);
  view.setUint32(8, request.offset, true);
  view.setUint32(12, request.length, true);
  return out;
}

export function decodeUpdateRequest(bytes: Uint8Array): UpdateRequest {
  if (bytes.length < 2) throw new UpdateMessageError('truncated', `an update request is ${UPDATE_REQUEST_LENGTH} bytes, got ${bytes.length}`);
  if (bytes[0] !== UPDATE_REQUEST_TYPE) throw new UpdateMessageError('wrong-type', `record type 0x${bytes[0].toString(16)} is not an update request (0x05)`);
  checkVersion(bytes[1]);
  if (bytes.length !== UPDATE_REQUEST_LENGTH) throw new UpdateMessageError('truncated', `an update request is ${UPDATE_REQUEST_LENGTH} bytes, got ${bytes.length}`);
  if (bytes[3] !== 0) throw new UpdateMessageError('bad-field', 'reserved byte 3 is not 0');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const tag = view.getUint32(4, true);
  const offset = view.getUint32(8, true);
  const length = view.getUint32(12, true);
  if (bytes[2] === UPDATE_REQUEST_KIND.manifest) {
    if (offset !== 0 || length !== 0) throw new UpdateMessageError('bad-field', 'a manifest request has offset and length 0');
    return { kind: 'manifest', tag, offset, length };
  }
  if (bytes[2] === UPDATE_REQUEST_KIND.chunk) {
    if (length < 1 || length > MAX_CHUNK_LENGTH) throw new UpdateMessageError('bad-field', `chunk request length ${length} outside 1..${MAX_CHUNK_LENGTH}`);
    return { kind: 'chunk', tag, offset, length };
  }
  throw new UpdateMessageError('bad-kind', `update request kind ${bytes[2]}`);
}

function checkVersion(version: number): void {
  if (version > FORMAT_VERSIONS.updateMessage) throw new UpdateMessageError('format-too-new', `update message format ${version} is newer than ${FORMAT_VERSIONS.updateMessage}`);
  if (version !== FORMAT_VERSIONS.updateMessage) throw new UpdateMessageError('bad-version', `update message format ${version} is not ${FORMAT_VERSIONS.updateMessage}`);
}

function checkU32(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RangeError(`${name} must be a u32, got ${value}`);
}
