/**
 * Control messages to the device (docs/spec/envelope.md, "Commands"): the
 * same format-2 wire header with suite 0x41 (or 0x42), the key id of the
 * fleet's command key (the first 4 bytes of SHA-256 of its Ed25519 public
 * key, little-endian, as a varint), the command signer's own counter, the
 * payload, and an Ed25519 signature (64 bytes) over the authenticated
 * header (wire header || the target device's id) and everything after the
 * header before the signature. The target device id is not on the wire:
 * the signature binds it. Suite 0x41 carries the payload in clear; 0x42
 * encrypts it first with ChaCha20-Poly1305 under the target device's down
 * key (envelope-keys.ts), nonce = command counter || key id, AAD = wire
 * header || device id.
 *
 * The device opens with `openCommand` under its own id: header checks, the
 * key id must name a command key it trusts, the signature verifies (strict
 * RFC 8032; a command signed for another device fails here), and only then
 * the window of the command sender decides. Sealing (`sealCommand`) runs where the fleet's
 * command key lives (a host tool or HSM wrapper supplies `sign`).
 */
import * as ed from '@noble/ed25519';
import type { Crypto } from '../hal/crypto.ts';
import { admit, type CounterSource, type ReplayGuard } from './envelope.ts';
import {
  checkDeviceId,
  checkKeyId,
  authenticatedHeader,
  authenticatedMessage,
  checkMaxLength,
  COMMAND_MAX_OVERHEAD,
  COMMAND_SIGNATURE_LENGTH,
  commandNonce,
  decodeHeader,
  encodeHeader,
  ENCRYPTED_COMMAND_MAX_OVERHEAD,
  ENVELOPE_COUNTER_MAX,
  ENVELOPE_TAG_LENGTH,
  envelopeHeaderLength,
  EnvelopeError,
  EnvelopeSuite,
  sameBytes,
  type CommandSuite,
} from './envelope-format.ts';
import type { DeviceKeys } from './envelope-keys.ts';
import type { EnvelopePrimitives } from './envelope-primitives.ts';
import { configureEd25519 } from './noble-crypto.ts';
import { PUBLIC_KEY_LENGTH } from './verify.ts';

export const COMMAND_SUITES: readonly CommandSuite[] = Object.freeze([EnvelopeSuite.commandEd25519, EnvelopeSuite.commandEd25519Chacha20Poly1305]);

/** The 4-byte key id of a command public key: SHA-256(publicKey)[0..4) read as u32 little-endian. */
export function commandKeyId(crypto: Crypto, publicKey: Uint8Array): number {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== PUBLIC_KEY_LENGTH) throw new RangeError(`publicKey must be ${PUBLIC_KEY_LENGTH} bytes`);
  const hash = crypto.createSha256();
  hash.update(publicKey);
  const digest = hash.digest();
  return (digest[0] | (digest[1] << 8) | (digest[2] << 16)) + digest[3] * 0x100_0000;
}

/** A command key the device trusts. */
export interface CommandKey {
  readonly keyId: number;
  readonly publicKey: Uint8Array;
}

export interface SealCommandOptions {
  /** The target device: not on the wire, covered by the signature (and the AAD of 0x42). */
  deviceId: Uint8Array;
  /** The command signer's persistent counter. */
  counter: CounterSource;
  keyId: number;
  /** Ed25519 signature of `message` (64 bytes) under the command key named by keyId. */
  sign(message: Uint8Array): Uint8Array;
  /** Encrypt the payload (suite 0x42) under the target device's down key: its keys (the backend derives them from the device secret). */
  encrypt?: { primitives: EnvelopePrimitives; keys: DeviceKeys };
}

/** Seal a command for one device: takes one counter value, (encrypts,) signs the authenticated header and everything after the wire header before the signature. */
export function sealCommand(payload: Uint8Array, options: SealCommandOptions): Uint8Array {
  if (!(payload instanceof Uint8Array)) throw new TypeError('payload must be a Uint8Array');
  const maxOverhead = options.encrypt ? ENCRYPTED_COMMAND_MAX_OVERHEAD : COMMAND_MAX_OVERHEAD;
  if (payload.length > 0xffff - maxOverhead) throw new RangeError(`payload of ${payload.length} bytes, at most ${0xffff - maxOverhead}`);
  const deviceId = checkDeviceId(options.deviceId);
  if (options.encrypt && !sameBytes(options.encrypt.keys.deviceId, deviceId)) throw new RangeError('encrypt.keys are not the target device\'s keys');
  const keyId = checkKeyId(options.keyId);
  const counter = options.counter.next();
  if (typeof counter !== 'number' || !Number.isSafeInteger(counter) || counter < 1 || counter > ENVELOPE_COUNTER_MAX) {
    throw new EnvelopeError('counter-out-of-range', `counter source returned ${String(counter)}, not an integer in 1..2^53-1`);
  }
  const headerLength = envelopeHeaderLength(keyId, counter);
  const envelope = new Uint8Array(headerLength + payload.length + (options.encrypt ? ENVELOPE_TAG_LENGTH : 0) + COMMAND_SIGNATURE_LENGTH);
  const signatureOffset = envelope.length - COMMAND_SIGNATURE_LENGTH;
  const header = envelope.subarray(0, headerLength);
  if (options.encrypt) {
    encodeHeader(EnvelopeSuite.commandEd25519Chacha20Poly1305, keyId, counter, envelope);
    const { primitives, keys } = options.encrypt;
    const sealed = primitives.aeadSeal(EnvelopeSuite.chacha20Poly1305, keys.downChacha20Poly1305, commandNonce(counter, keyId), payload, authenticatedHeader(header, deviceId));
    if (sealed.length !== payload.length + ENVELOPE_TAG_LENGTH) throw new Error(`AEAD returned ${sealed.length} bytes for ${payload.length}`);
    envelope.set(sealed, headerLength);
  } else {
    encodeHeader(EnvelopeSuite.commandEd25519, keyId, counter, envelope);
    envelope.set(payload, headerLength);
  }
  const signature = options.sign(authenticatedMessage(header, deviceId, envelope.subarray(headerLength, signatureOffset)));
  if (!(signature instanceof Uint8Array) || signature.length !== COMMAND_SIGNATURE_LENGTH) throw new Error(`sign returned no ${COMMAND_SIGNATURE_LENGTH}-byte signature`);
  envelope.set(signature, signatureOffset);
  return envelope;
}

/** A `sign` for `sealCommand` from a 32-byte Ed25519 secret key (@noble/ed25519, RFC 8032). Host side: the fleet's command key. */
export function ed25519Signer(secretKey: Uint8Array): (message: Uint8Array) => Uint8Array {
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== 32) throw new RangeError('secretKey must be 32 bytes');
  configureEd25519();
  const key = secretKey.slice();
  return (message) => ed.sign(message, key);
}

export interface OpenCommandOptions {
  primitives: EnvelopePrimitives;
  /** This device's id, 8 bytes (required): the signature covers it, so a command signed for any other device is refused ('bad-tag'). */
  deviceId: Uint8Array;
  /** The command keys this device trusts. */
  commandKeys: readonly CommandKey[];
  /** The window of the command sender (a ReplayStore sender on the device: restart-safe). */
  replay: ReplayGuard;
  /** This device's keys: needed to open encrypted commands (suite 0x42); without them 0x42 is refused as 'unknown-key'. */
  keys?: DeviceKeys;
  /** Suites accepted (default both): a device that requires encrypted commands lists only 0x42. */
  suites?: readonly CommandSuite[];
  /** Longest envelope accepted, bytes (default and largest 65,535). */
  maxLength?: number;
}

export interface OpenedCommand {
  readonly suite: CommandSuite;
  readonly keyId: number;
  readonly counter: number;
  readonly payload: Uint8Array;
}

/**
 * Open a command: `options.deviceId` is required (TypeError/RangeError
 * otherwise), header checks, key id trusted ('unknown-key'; also an
 * encrypted command without `keys`), signature over the authenticated
 * header with our device id (a command for another device: 'bad-tag'),
 * then for 0x42 the AEAD tag ('bad-tag'), then the window ('duplicate',
 * 'stale'). Only a command that passes all of them is returned.
 */
export function openCommand(envelope: Uint8Array, options: OpenCommandOptions): OpenedCommand {
  const deviceId = checkDeviceId(options.deviceId);
  const header = decodeHeader(envelope, options.suites ?? COMMAND_SUITES, checkMaxLength(options.maxLength));
  const candidates = options.commandKeys.filter((candidate) => candidate.keyId === header.keyId);
  if (candidates.length === 0) throw new EnvelopeError('unknown-key', `no command key ${header.keyId}`);
  const encrypted = header.suite === EnvelopeSuite.commandEd25519Chacha20Poly1305;
  if (encrypted && (options.keys === undefined || !sameBytes(options.keys.deviceId, deviceId))) throw new EnvelopeError('unknown-key', 'encrypted command, and no down key for this device');
  const signatureOffset = envelope.length - COMMAND_SIGNATURE_LENGTH;
  const signature = envelope.subarray(signatureOffset);
  const wireHeader = envelope.subarray(0, header.headerLength);
  const signed = authenticatedMessage(wireHeader, deviceId, envelope.subarray(header.headerLength, signatureOffset));
  // Key ids are 4 bytes of a hash: two trusted keys may share one, so each is tried (at most a handful).
  let verified = false;
  for (let i = 0; i < candidates.length && !verified; i++) verified = options.primitives.ed25519Verify(signature, signed, candidates[i].publicKey);
  if (!verified) throw new EnvelopeError('bad-tag', 'command signature does not verify');
  let payload: Uint8Array;
  if (encrypted) {
    const keys = options.keys as DeviceKeys;
    const opened = options.primitives.aeadOpen(EnvelopeSuite.chacha20Poly1305, keys.downChacha20Poly1305, commandNonce(header.counter, header.keyId), envelope.subarray(header.headerLength, signatureOffset), authenticatedHeader(wireHeader, deviceId));
    if (opened === undefined) throw new EnvelopeError('bad-tag', 'command AEAD tag does not verify (signed by a trusted key: sealed for another device key?)');
    payload = opened;
  } else {
    payload = envelope.slice(header.headerLength, signatureOffset);
  }
  admit(options.replay, header.counter);
  return { suite: header.suite as CommandSuite, keyId: header.keyId, counter: header.counter, payload };
}
