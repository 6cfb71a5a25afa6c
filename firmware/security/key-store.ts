/**
 * The device key store (docs/spec/key-rotation.md, "Key store"): the
 * `hf_keys` partition, two slots of one block each. It says which envelope
 * key generation is current, the rotation in progress if any, and the
 * generation before the current one (for evidence).
 *
 * Blank (both slots erased) means "the provisioning record's key is
 * current": a device leaves the factory so. Every record is self-contained
 * (current generation, previous generation, pending rotation), so a write
 * never depends on the other slot.
 *
 * A write goes to the slot that does not hold the store's record:
 *   1. erase it; 2. write the body; 3. write header copy A; 4. write header
 *   copy B; 5. erase the other slot.
 * The record counts from step 3 (copy A valid). Recovery, per slot:
 * - valid: copy A or copy B is a header of this store whose digest matches
 *   the body (one copy damaged is repaired from the other);
 * - uncommitted: both copies erased, or copy A torn, copy B erased and every
 *   byte after the body erased (a cut in step 3); its body is scratch;
 * - otherwise not valid (a slot cut in steps 1 or 5, or damage).
 * Then: two valid slots: the higher sequence (they must be consecutive,
 * else `damaged`); one valid slot: it (the other is scratch of a cut write
 * or erase); none: `blank` state (the provisioning key) when both are
 * uncommitted, `damaged` otherwise. A header of a newer format is
 * `format-too-new`; a header of another store is `damaged`.
 *
 * Slot layout: header copy A (bytes 0..31), header copy B (32..63), body
 * from byte 64 (KEY_STORE_BODY bytes, padded with 0xFF to the flash's
 * write unit). Header: "HFKS" | version u8 | 0 | body length u16 |
 * sequence u32 | 4 zero bytes | first 16 bytes of SHA-256 over the
 * header's first 16 bytes and the body.
 *
 * Runs in XS and Node: no Node imports, no module state.
 */
import type { Crypto } from '../hal/crypto.ts';
import type { FlashPartition } from '../hal/flash.ts';
import { FORMAT_VERSIONS } from '../base/format-versions.ts';
import { StorageError } from '../base/storage-error.ts';

/** "HFKS". */
export const KEY_STORE_MAGIC: readonly number[] = Object.freeze([0x48, 0x46, 0x4b, 0x53]);
export const KEY_STORE_FORMAT = FORMAT_VERSIONS.keyStore;
export const KEY_STORE_HEADER = 32;
/** Bytes of a record body (docs/spec/key-rotation.md, "Record body"). */
export const KEY_STORE_BODY = 176;
const BODY_AT = 2 * KEY_STORE_HEADER;
const DIGEST_BYTES = 16;
const SEED_BYTES = 32;
const SECRET_BYTES = 32;

const FLAG_CURRENT_STORED = 1;
const FLAG_PREVIOUS = 2;
const FLAG_PENDING = 4;

/** The generation in use: the provisioning record's, or one the store holds. */
export interface KeyGeneration {
  readonly keyId: number;
  /** 'provisioning': seed and secret are the provisioning record's. */
  readonly source: 'provisioning' | 'store';
  /** Ed25519 seed (store generations only). */
  readonly seed: Uint8Array | undefined;
  /** Envelope device secret (store generations only). */
  readonly secret: Uint8Array | undefined;
  /** First counter value sealed under this generation (0 for the provisioning one). */
  readonly sinceCounter: number;
}

export interface PendingRotation {
  readonly keyId: number;
  readonly seed: Uint8Array;
  /** The envelope device secret the new generation will use (computed when the rotation began). */
  readonly secret: Uint8Array;
  /** The counter value the rotation request carries. */
  readonly requestCounter: number;
}

export interface RetiredGeneration {
  readonly keyId: number;
  /** The first counter value NOT sealed under it (the next generation's sinceCounter). */
  readonly untilCounter: number;
}

export interface KeyState {
  /** Record sequence (0: blank store). */
  readonly sequence: number;
  readonly current: KeyGeneration;
  readonly previous: RetiredGeneration | undefined;
  readonly pending: PendingRotation | undefined;
}

type SlotReading =
  | { readonly state: 'valid'; readonly sequence: number; readonly body: Uint8Array }
  | { readonly state: 'uncommitted' }
  | { readonly state: 'invalid' };

export class KeyStore {
  private slot: number;
  private held: KeyState;

  private constructor(
    private readonly flash: FlashPartition,
    private readonly crypto: Crypto,
    private readonly provisionedKeyId: number,
    slot: number,
    held: KeyState,
  ) {
    this.slot = slot;
    this.held = held;
  }

  /** Provisioning (and `flash --erase-data`): both slots erased, the provisioning key current. */
  static format(flash: FlashPartition): void {
    geometry(flash);
    flash.eraseBlock(0);
    flash.eraseBlock(1);
  }

  /**
   * Recover (reads both slots, writes nothing). `provisionedKeyId` is the
   * provisioning record's key id (the current one while the store is blank).
   * Throws StorageError 'bad-geometry', 'format-too-new' or 'damaged'.
   */
  static open(flash: FlashPartition, crypto: Crypto, provisionedKeyId: number): KeyStore {
    const blockLength = geometry(flash);
    const slots = [readSlot(flash, crypto, 0, blockLength), readSlot(flash, crypto, 1, blockLength)];
    const valid = [0, 1].filter((i) => slots[i].state === 'valid');
    if (valid.length === 0) {
      if (slots.every((s) => s.state === 'uncommitted')) {
        return new KeyStore(flash, crypto, provisionedKeyId, 1, Object.freeze({ sequence: 0, current: provisioningGeneration(provisionedKeyId), previous: undefined, pending: undefined }));
      }
      throw new StorageError('damaged', 'key store: no slot holds a valid record and a slot is not erased');
    }
    let best = valid[0];
    if (valid.length === 2) {
      const [a, b] = [sequenceOf(slots[0]), sequenceOf(slots[1])];
      if (Math.abs(a - b) !== 1) throw new StorageError('damaged', `key store: slots of sequence ${a} and ${b}, which no write leaves`);
      best = a > b ? 0 : 1;
    }
    const chosen = slots[best];
    if (chosen.state !== 'valid') throw new StorageError('damaged', 'key store: no valid slot');
    return new KeyStore(flash, crypto, provisionedKeyId, best, decodeBody(chosen.sequence, chosen.body, provisionedKeyId));
  }

  state(): KeyState {
    return this.held;
  }

  /**
   * Persist a rotation in progress (its new key id must be current + 1, and
   * `requestCounter` at least the current generation's sinceCounter). A
   * pending rotation already held is replaced only by the same key id and
   * seed (a repeated request changes nothing but the request counter).
   */
  begin(pending: PendingRotation): KeyState {
    const current = this.held.current;
    if (pending.keyId !== current.keyId + 1) throw new RangeError(`key store: a rotation from key id ${current.keyId} makes key id ${current.keyId + 1}, not ${pending.keyId}`);
    if (pending.seed.length !== SEED_BYTES || pending.secret.length !== SECRET_BYTES) throw new RangeError('key store: seed and secret are 32 bytes');
    checkCounter(pending.requestCounter);
    if (pending.requestCounter < current.sinceCounter) throw new RangeError(`key store: request counter ${pending.requestCounter} is below the current generation's ${current.sinceCounter}`);
    const next: KeyState = Object.freeze({ sequence: this.held.sequence + 1, current, previous: this.held.previous, pending: freezePending(pending) });
    this.write(next);
    return next;
  }

  /**
   * Commit the pending rotation: the new generation is current from
   * `sinceCounter` on (the first counter value it seals), the old one is
   * kept as previous with untilCounter = sinceCounter.
   */
  commit(sinceCounter: number): KeyState {
    const pending = this.held.pending;
    if (pending === undefined) throw new RangeError('key store: no rotation is pending');
    checkCounter(sinceCounter);
    if (sinceCounter <= pending.requestCounter) throw new RangeError(`key store: the new key must start above the request counter ${pending.requestCounter}, not at ${sinceCounter}`);
    const next: KeyState = Object.freeze({
      sequence: this.held.sequence + 1,
      current: Object.freeze<KeyGeneration>({ keyId: pending.keyId, source: 'store', seed: pending.seed, secret: pending.secret, sinceCounter }),
      previous: Object.freeze({ keyId: this.held.current.keyId, untilCounter: sinceCounter }),
      pending: undefined,
    });
    this.write(next);
    return next;
  }

  private write(next: KeyState): void {
    const { blockLength, writeAlign } = this.flash.status();
    const target = 1 - this.slot;
    const body = encodeBody(next);
    const padded = new Uint8Array(Math.ceil(body.length / writeAlign) * writeAlign).fill(0xff);
    padded.set(body, 0);
    const head = header(this.crypto, next.sequence, body);
    this.flash.eraseBlock(target);
    this.flash.write(target * blockLength + BODY_AT, padded);
    this.flash.write(target * blockLength, head);
    // Committed from here (copy A); copy B lets one damaged copy be repaired.
    this.slot = target;
    this.held = next;
    this.flash.write(target * blockLength + KEY_STORE_HEADER, head);
    this.flash.eraseBlock(1 - target);
  }
}

function sequenceOf(slot: SlotReading): number {
  return slot.state === 'valid' ? slot.sequence : -1;
}

function provisioningGeneration(keyId: number): KeyGeneration {
  return Object.freeze<KeyGeneration>({ keyId, source: 'provisioning', seed: undefined, secret: undefined, sinceCounter: 0 });
}

function freezePending(p: PendingRotation): PendingRotation {
  return Object.freeze({ keyId: p.keyId, seed: p.seed.slice(), secret: p.secret.slice(), requestCounter: p.requestCounter });
}

function checkCounter(n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`key store: counter ${String(n)} is not an integer in 0..2^53-1`);
}

function geometry(flash: FlashPartition): number {
  const { blocks, blockLength, writeAlign } = flash.status();
  if (blocks !== 2 || KEY_STORE_HEADER % writeAlign !== 0 || blockLength < BODY_AT + KEY_STORE_BODY + writeAlign) {
    throw new StorageError('bad-geometry', `key store: ${blocks} blocks of ${blockLength} bytes: expected 2 blocks of at least ${BODY_AT + KEY_STORE_BODY + writeAlign} bytes`);
  }
  return blockLength;
}

/*
 * Body (KEY_STORE_BODY bytes, little-endian):
 *   0 flags u8 (1 current stored, 2 previous, 4 pending) | 1..3 zero
 *   4 current key id u32 | 8 since counter u64 | 16 current seed (32) | 48 current secret (32)
 *   80 previous key id u32 | 84 until counter u64
 *   92 pending key id u32 | 96 request counter u64 | 104 pending seed (32) | 136 pending secret (32)... (ends at 168)
 */
const AT = Object.freeze({ currentKeyId: 4, since: 8, currentSeed: 16, currentSecret: 48, previousKeyId: 80, until: 84, pendingKeyId: 92, request: 96, pendingSeed: 104, pendingSecret: 136 });

function encodeBody(state: KeyState): Uint8Array {
  const body = new Uint8Array(KEY_STORE_BODY);
  const view = new DataView(body.buffer);
  const { current, previous, pending } = state;
  body[0] = (current.source === 'store' ? FLAG_CURRENT_STORED : 0) | (previous ? FLAG_PREVIOUS : 0) | (pending ? FLAG_PENDING : 0);
  view.setUint32(AT.currentKeyId, current.keyId, true);
  putCounter(view, AT.since, current.sinceCounter);
  if (current.seed) body.set(current.seed, AT.currentSeed);
  if (current.secret) body.set(current.secret, AT.currentSecret);
  if (previous) {
    view.setUint32(AT.previousKeyId, previous.keyId, true);
    putCounter(view, AT.until, previous.untilCounter);
  }
  if (pending) {
    view.setUint32(AT.pendingKeyId, pending.keyId, true);
    putCounter(view, AT.request, pending.requestCounter);
    body.set(pending.seed, AT.pendingSeed);
    body.set(pending.secret, AT.pendingSecret);
  }
  return body;
}

function decodeBody(sequence: number, body: Uint8Array, provisionedKeyId: number): KeyState {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const flags = body[0];
  if ((flags & ~(FLAG_CURRENT_STORED | FLAG_PREVIOUS | FLAG_PENDING)) !== 0 || body[1] !== 0 || body[2] !== 0 || body[3] !== 0) {
    throw new StorageError('damaged', `key store: record flags 0x${flags.toString(16)} that this format does not define`);
  }
  const keyId = view.getUint32(AT.currentKeyId, true);
  const stored = (flags & FLAG_CURRENT_STORED) !== 0;
  if (!stored && keyId !== provisionedKeyId) throw new StorageError('damaged', `key store: the provisioning generation is key id ${keyId}, the record says ${provisionedKeyId}`);
  if (stored && keyId <= provisionedKeyId) throw new StorageError('damaged', `key store: stored generation ${keyId} is not after the provisioning key id ${provisionedKeyId}`);
  const current: KeyGeneration = Object.freeze({
    keyId,
    source: stored ? 'store' : 'provisioning',
    seed: stored ? body.slice(AT.currentSeed, AT.currentSeed + SEED_BYTES) : undefined,
    secret: stored ? body.slice(AT.currentSecret, AT.currentSecret + SECRET_BYTES) : undefined,
    sinceCounter: getCounter(view, AT.since),
  });
  const previous: RetiredGeneration | undefined = (flags & FLAG_PREVIOUS) !== 0 ? Object.freeze({ keyId: view.getUint32(AT.previousKeyId, true), untilCounter: getCounter(view, AT.until) }) : undefined;
  if (previous && (previous.keyId !== keyId - 1 || previous.untilCounter !== current.sinceCounter)) throw new StorageError('damaged', 'key store: the previous generation does not precede the current one');
  const pending: PendingRotation | undefined =
    (flags & FLAG_PENDING) !== 0
      ? Object.freeze({
          keyId: view.getUint32(AT.pendingKeyId, true),
          requestCounter: getCounter(view, AT.request),
          seed: body.slice(AT.pendingSeed, AT.pendingSeed + SEED_BYTES),
          secret: body.slice(AT.pendingSecret, AT.pendingSecret + SECRET_BYTES),
        })
      : undefined;
  if (pending && pending.keyId !== keyId + 1) throw new StorageError('damaged', `key store: pending key id ${pending.keyId} does not follow ${keyId}`);
  return Object.freeze({ sequence, current, previous, pending });
}

function putCounter(view: DataView, at: number, n: number): void {
  view.setUint32(at, n % 0x100000000, true);
  view.setUint32(at + 4, Math.floor(n / 0x100000000), true);
}

function getCounter(view: DataView, at: number): number {
  const n = view.getUint32(at, true) + view.getUint32(at + 4, true) * 0x100000000;
  if (!Number.isSafeInteger(n)) throw new StorageError('damaged', 'key store: a counter above 2^53-1');
  return n;
}

function digestOf(crypto: Crypto, head: Uint8Array, body: Uint8Array): Uint8Array {
  const hash = crypto.createSha256();
  hash.update(head.subarray(0, 16));
  hash.update(body);
  return hash.digest().subarray(0, DIGEST_BYTES);
}

function header(crypto: Crypto, sequence: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(KEY_STORE_HEADER);
  out.set(KEY_STORE_MAGIC, 0);
  out[4] = KEY_STORE_FORMAT;
  out[6] = body.length & 0xff;
  out[7] = body.length >>> 8;
  new DataView(out.buffer).setUint32(8, sequence, true);
  out.set(digestOf(crypto, out, body), 16);
  return out;
}

function erased(bytes: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (bytes[i] !== 0xff) return false;
  return true;
}

/** One header copy: its sequence when valid for `body`, 'newer' for a newer format, else undefined. */
function readCopy(crypto: Crypto, block: Uint8Array, at: number, body: Uint8Array): number | 'newer' | undefined {
  for (let i = 0; i < 4; i++) if (block[at + i] !== KEY_STORE_MAGIC[i]) return undefined;
  if (block[at + 4] > KEY_STORE_FORMAT) return 'newer';
  if (block[at + 4] !== KEY_STORE_FORMAT || block[at + 5] !== 0 || (block[at + 6] | (block[at + 7] << 8)) !== KEY_STORE_BODY) return undefined;
  for (let i = 12; i < 16; i++) if (block[at + i] !== 0) return undefined;
  const digest = digestOf(crypto, block.subarray(at, at + KEY_STORE_HEADER), body);
  let diff = 0;
  for (let i = 0; i < DIGEST_BYTES; i++) diff |= digest[i] ^ block[at + 16 + i];
  if (diff !== 0) return undefined;
  return new DataView(block.buffer, block.byteOffset + at + 8, 4).getUint32(0, true);
}

function readSlot(flash: FlashPartition, crypto: Crypto, slot: number, blockLength: number): SlotReading {
  const block = new Uint8Array(blockLength);
  flash.read(slot * blockLength, block);
  const body = block.subarray(BODY_AT, BODY_AT + KEY_STORE_BODY);
  const a = readCopy(crypto, block, 0, body);
  const b = readCopy(crypto, block, KEY_STORE_HEADER, body);
  if (a === 'newer' || b === 'newer') throw new StorageError('format-too-new', `key store: slot ${slot} holds a record of a newer format; this firmware reads format ${KEY_STORE_FORMAT}`);
  if (a !== undefined && b !== undefined && a !== b) throw new StorageError('damaged', `key store: slot ${slot}'s header copies disagree`);
  const sequence = a ?? b;
  if (sequence !== undefined) return { state: 'valid', sequence, body: body.slice() };
  const copyAErased = erased(block, 0, KEY_STORE_HEADER);
  const copyBErased = erased(block, KEY_STORE_HEADER, BODY_AT);
  if (copyAErased && copyBErased) return { state: 'uncommitted' };
  // A cut while copy A was written: B and everything past the body are still erased.
  if (copyBErased && erased(block, BODY_AT + KEY_STORE_BODY, blockLength)) return { state: 'uncommitted' };
  return { state: 'invalid' };
}
