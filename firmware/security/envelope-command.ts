/**
 * Control messages to the device (docs/spec/envelope.md, "Commands"): the
 * same 21-byte header with suite 0x41 (or 0x42), the device id of the target
 * device, the key id of the fleet's command key (the first 4 bytes of
 * SHA-256 of its Ed25519 public key, little-endian), the command signer's
 * own counter, the payload, and an Ed25519 signature (64 bytes) over
 * everything before it. Suite 0x41 carries the payload in clear; 0x42
 * encrypts it first with ChaCha20-Poly1305 under the target device's down
 * key (envelope-keys.ts), nonce = command counter || key id, AAD = header.
 *
 * The device opens with `openCommand`: header checks, the target device id
 * must be its own, the key id must name a command key it trusts, the
 * signature verifies (strict RFC 8032), and only then the window of the
 * command sender decides. Sealing (`sealCommand`) runs where the fleet's
 * command key lives (a host tool or HSM wrapper supplies `sign`).
 */
import * as ed from '@noble/ed25519';
import type { Crypto } from '../hal/crypto.ts';
import { admit, type CounterSource, type ReplayGuard } from './envelope.ts';
import {
  checkDeviceId,
  checkKeyId,
  checkMaxLength,
  COMMAND_OVERHEAD,
  COMMAND_SIGNATURE_LENGTH,
  commandNonce,
  decodeHeader,
  encodeHeader,
  ENCRYPTED_COMMAND_OVERHEAD,
  ENVELOPE_COUNTER_MAX,
  ENVELOPE_HEADER_LENGTH,
  ENVELOPE_TAG_LENGTH,
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
  /** The target device. */
  deviceId: Uint8Array;
  /** The command signer's persistent counter. */
  counter: CounterSource;
  keyId: number;
  /** Ed25519 signature of `message` (64 bytes) under the command key named by keyId. */
  sign(message: Uint8Array): Uint8Array;
  /** Encrypt the payload (suite 0x42) under the target device's down key: its keys (the backend derives them from the device secret). */
  encrypt?: { primitives: EnvelopePrimitives; keys: DeviceKeys };
}

/** Seal a command for one device: takes one counter value, (encrypts,) signs everything before the signature. */
export function sealCommand(payload: Uint8Array, options: SealCommandOptions): Uint8Array {
  if (!(payload instanceof Uint8Array)) throw new TypeError('payload must be a Uint8Array');
  const overhead = options.encrypt ? ENCRYPTED_COMMAND_OVERHEAD : COMMAND_OVERHEAD;
  if (payload.length > 0xffff - overhead) throw new RangeError(`payload of ${payload.length} bytes, at most ${0xffff - overhead}`);
  const deviceId = checkDeviceId(options.deviceId);
  if (options.encrypt && !sameBytes(options.encrypt.keys.deviceId, deviceId)) throw new RangeError('encrypt.keys are not the target device\'s keys');
  const keyId = checkKeyId(options.keyId);
  const counter = options.counter.next();
  if (typeof counter !== 'number' || !Number.isSafeInteger(counter) || counter < 1 || counter > ENVELOPE_COUNTER_MAX) {
    throw new EnvelopeError('counter-out-of-range', `counter source returned ${String(counter)}, not an integer in 1..2^53-1`);
  }
  const envelope = new Uint8Array(overhead + payload.length);
  const signatureOffset = envelope.length - COMMAND_SIGNATURE_LENGTH;
  if (options.encrypt) {
    encodeHeader(EnvelopeSuite.commandEd25519Chacha20Poly1305, keyId, deviceId, counter, envelope);
    const { primitives, keys } = options.encrypt;
    const sealed = primitives.aeadSeal(EnvelopeSuite.chacha20Poly1305, keys.downChacha20Poly1305, commandNonce(counter, keyId), payload, envelope.subarray(0, ENVELOPE_HEADER_LENGTH));
    if (sealed.length !== payload.length + ENVELOPE_TAG_LENGTH) throw new Error(`AEAD returned ${sealed.length} bytes for ${payload.length}`);
    envelope.set(sealed, ENVELOPE_HEADER_LENGTH);
  } else {
    encodeHeader(EnvelopeSuite.commandEd25519, keyId, deviceId, counter, envelope);
    envelope.set(payload, ENVELOPE_HEADER_LENGTH);
  }
  const signature = options.sign(envelope.subarray(0, signatureOffset));
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
  /** This device's id: a command for any other device is refused. */
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
 * Open a command: header checks, device id = ours ('wrong-device'), key id
 * trusted ('unknown-key'; also an encrypted command without `keys`),
 * signature, then for 0x42 the AEAD tag ('bad-tag'), then the window
 * ('duplicate', 'stale'). Only a command that passes all of them is
 * returned.
 */
export function openCommand(envelope: Uint8Array, options: OpenCommandOptions): OpenedCommand {
  const header = decodeHeader(envelope, options.suites ?? COMMAND_SUITES, checkMaxLength(options.maxLength));
  const deviceId = checkDeviceId(options.deviceId);
  if (!sameBytes(header.deviceId, deviceId)) throw new EnvelopeError('wrong-device', 'command for another device');
  const candidates = options.commandKeys.filter((candidate) => candidate.keyId === header.keyId);
  if (candidates.length === 0) throw new EnvelopeError('unknown-key', `no command key ${header.keyId}`);
  const encrypted = header.suite === EnvelopeSuite.commandEd25519Chacha20Poly1305;
  if (encrypted && (options.keys === undefined || !sameBytes(options.keys.deviceId, deviceId))) throw new EnvelopeError('unknown-key', 'encrypted command, and no down key for this device');
  const signatureOffset = envelope.length - COMMAND_SIGNATURE_LENGTH;
  const signature = envelope.subarray(signatureOffset);
  const signed = envelope.subarray(0, signatureOffset);
  // Key ids are 4 bytes of a hash: two trusted keys may share one, so each is tried (at most a handful).
  let verified = false;
  for (let i = 0; i < candidates.length && !verified; i++) verified = options.primitives.ed25519Verify(signature, signed, candidates[i].publicKey);
  if (!verified) throw new EnvelopeError('bad-tag', 'command signature does not verify');
  let payload: Uint8Array;
  if (encrypted) {
    const keys = options.keys as DeviceKeys;
    const opened = options.primitives.aeadOpen(EnvelopeSuite.chacha20Poly1305, keys.downChacha20Poly1305, commandNonce(header.counter, header.keyId), envelope.subarray(ENVELOPE_HEADER_LENGTH, signatureOffset), envelope.subarray(0, ENVELOPE_HEADER_LENGTH));
    if (opened === undefined) throw new EnvelopeError('bad-tag', 'command AEAD tag does not verify (signed by a trusted key: sealed for another device key?)');
    payload = opened;
  } else {
    payload = envelope.slice(ENVELOPE_HEADER_LENGTH, signatureOffset);
  }
  admit(options.replay, header.counter);
  return { suite: header.suite as CommandSuite, keyId: header.keyId, counter: header.counter, payload };
}
