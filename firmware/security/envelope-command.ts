/**
 * Control messages to the device (docs/spec/envelope.md, "Commands"): the
 * same 21-byte header with suite 0x41, the device id of the target device,
 * the key id of the fleet's command key (the first 4 bytes of SHA-256 of its
 * Ed25519 public key, little-endian), the command signer's own counter, the
 * payload in clear, and an Ed25519 signature (64 bytes) over header ||
 * payload.
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
  decodeHeader,
  encodeHeader,
  ENVELOPE_COUNTER_MAX,
  ENVELOPE_HEADER_LENGTH,
  EnvelopeError,
  EnvelopeSuite,
  sameBytes,
} from './envelope-format.ts';
import type { EnvelopePrimitives } from './envelope-primitives.ts';
import { configureEd25519 } from './noble-crypto.ts';
import { PUBLIC_KEY_LENGTH } from './verify.ts';

const COMMAND_SUITES = Object.freeze([EnvelopeSuite.commandEd25519]);

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
}

/** Seal a command for one device: takes one counter value, signs header || payload. */
export function sealCommand(payload: Uint8Array, options: SealCommandOptions): Uint8Array {
  if (!(payload instanceof Uint8Array)) throw new TypeError('payload must be a Uint8Array');
  if (payload.length > 0xffff - COMMAND_OVERHEAD) throw new RangeError(`payload of ${payload.length} bytes, at most ${0xffff - COMMAND_OVERHEAD}`);
  const deviceId = checkDeviceId(options.deviceId);
  const keyId = checkKeyId(options.keyId);
  const counter = options.counter.next();
  if (typeof counter !== 'number' || !Number.isSafeInteger(counter) || counter < 1 || counter > ENVELOPE_COUNTER_MAX) {
    throw new EnvelopeError('counter-out-of-range', `counter source returned ${String(counter)}, not an integer in 1..2^53-1`);
  }
  const envelope = new Uint8Array(COMMAND_OVERHEAD + payload.length);
  encodeHeader(EnvelopeSuite.commandEd25519, keyId, deviceId, counter, envelope);
  envelope.set(payload, ENVELOPE_HEADER_LENGTH);
  const signature = options.sign(envelope.subarray(0, ENVELOPE_HEADER_LENGTH + payload.length));
  if (!(signature instanceof Uint8Array) || signature.length !== COMMAND_SIGNATURE_LENGTH) throw new Error(`sign returned no ${COMMAND_SIGNATURE_LENGTH}-byte signature`);
  envelope.set(signature, ENVELOPE_HEADER_LENGTH + payload.length);
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
  /** Longest envelope accepted, bytes (default and largest 65,535). */
  maxLength?: number;
}

export interface OpenedCommand {
  readonly keyId: number;
  readonly counter: number;
  readonly payload: Uint8Array;
}

/**
 * Open a command: header checks, device id = ours ('wrong-device'), key id
 * trusted ('unknown-key'), signature ('bad-tag'), then the window
 * ('duplicate', 'stale'). Only a command that passes all of them is returned.
 */
export function openCommand(envelope: Uint8Array, options: OpenCommandOptions): OpenedCommand {
  const header = decodeHeader(envelope, COMMAND_SUITES, checkMaxLength(options.maxLength));
  if (!sameBytes(header.deviceId, checkDeviceId(options.deviceId))) throw new EnvelopeError('wrong-device', 'command for another device');
  let key: CommandKey | undefined;
  for (const candidate of options.commandKeys) if (candidate.keyId === header.keyId) key = candidate;
  if (key === undefined) throw new EnvelopeError('unknown-key', `no command key ${header.keyId}`);
  const signed = envelope.subarray(0, header.tagOffset);
  if (!options.primitives.ed25519Verify(envelope.subarray(header.tagOffset), signed, key.publicKey)) throw new EnvelopeError('bad-tag', 'command signature does not verify');
  admit(options.replay, header.counter);
  return { keyId: header.keyId, counter: header.counter, payload: envelope.slice(ENVELOPE_HEADER_LENGTH, header.tagOffset) };
}
