/**
 * Sealed telemetry records (docs/spec/envelope.md).
 *
 * Seal side (the device): `EnvelopeSealer.seal(payload)` takes the next value
 * of the persistent counter, writes the wire header (format 2: version,
 * suite, key id and counter as canonical varints) and appends the tag (HMAC
 * or AEAD) over the wire header, the device's id (not sent: the receiver
 * knows it from the authenticated connection) and the payload. Seal when the record is appended to the outbox: the outbox keeps
 * the sealed bytes, so every resend, after any reboot, carries exactly the
 * same bytes (and the same counter), which the receiver's window turns into
 * a harmless duplicate.
 *
 * Open side (the receiver): `openEnvelope` takes the device id from its
 * context (the broker-authenticated topic), checks the header early (length,
 * version, suite, key id, counter, then the key lookup), verifies the tag
 * FIRST (a record of another device fails it: the device id is in the
 * authenticated header), and
 * only then asks the replay window: `check`, then `accept`. The decision
 * uses the counter, the tag and the window state only: no clock.
 *
 * security/ may not import storage/: the counter comes in through
 * `CounterSource` (the real `Counter` of firmware/storage/counter.ts fits it).
 */
import { constantTimeEqual } from './_ct.ts';
import type { AeadSuite, EnvelopePrimitives } from './envelope-primitives.ts';
import {
  authenticatedHeader,
  authenticatedMessage,
  checkDeviceId,
  checkMaxLength,
  decodeHeader,
  encodeHeader,
  ENVELOPE_COUNTER_MAX,
  ENVELOPE_MAX_OVERHEAD,
  ENVELOPE_TAG_LENGTH,
  envelopeHeaderLength,
  EnvelopeError,
  envelopeNonce,
  EnvelopeSuite,
  isAeadSuite,
  isTelemetrySuite,
  sameBytes,
  TELEMETRY_SUITES,
  type EnvelopeHeader,
  type TelemetrySuite,
} from './envelope-format.ts';
import type { DeviceKeys } from './envelope-keys.ts';
import type { ReplayVerdict } from './replay-window.ts';

/** Where the sealer takes its counter values: the persistent counter's `next()` (values never repeat, across power cuts too). */
export interface CounterSource {
  next(): number;
}

/** The receiver's anti-replay state for one sender: a `ReplayWindow`, or one sender of a `ReplayStore` (see `replayStoreGuard`). */
export interface ReplayGuard {
  /** Pure: the verdict for a counter. */
  check(counter: number): ReplayVerdict;
  /** Record the counter as accepted; called only after the tag verified and `check` said fresh. */
  accept(counter: number): void;
}

export interface EnvelopeSealerOptions {
  primitives: EnvelopePrimitives;
  /** This device's keys (deriveDeviceKeys); they carry the key id written in every header and the device id every tag covers. */
  keys: DeviceKeys;
  counter: CounterSource;
  /** Default: hmac-sha256 (authenticated, payload in clear). */
  suite?: TelemetrySuite;
}

export class EnvelopeSealer {
  readonly suite: TelemetrySuite;
  private readonly primitives: EnvelopePrimitives;
  private readonly keys: DeviceKeys;
  private readonly counter: CounterSource;
  /** The last counter value sealed by this instance (0: none yet). */
  private last = 0;

  constructor(options: EnvelopeSealerOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError('sealer options must be an object');
    const suite = options.suite ?? EnvelopeSuite.hmacSha256;
    if (typeof suite !== 'number') throw new TypeError(`suite must be a number, got ${typeof suite}`);
    if (!isTelemetrySuite(suite)) throw new RangeError(`suite 0x${(suite as number).toString(16)} is not a telemetry suite`);
    if (typeof options.counter !== 'object' || options.counter === null || typeof options.counter.next !== 'function') throw new TypeError('counter must have a next() method');
    if (typeof options.primitives !== 'object' || options.primitives === null) throw new TypeError('primitives must be an object (envelopePrimitives(crypto))');
    checkDeviceId(options.keys?.deviceId, 'keys.deviceId');
    this.suite = suite;
    this.primitives = options.primitives;
    this.keys = options.keys;
    this.counter = options.counter;
  }

  /** The counter value of this instance's last seal (0: none yet): what the envelope it returned carries. */
  get lastCounter(): number {
    return this.last;
  }

  /**
   * Seal `payload` (0..65,535 − 31 bytes) under the next counter value.
   * Takes exactly one counter value; if `next()` throws (a power cut while
   * it raises its bound, exhaustion), nothing is sealed and the error
   * propagates. Refuses (EnvelopeError 'counter-out-of-range' or
   * 'counter-not-increasing') a value that could reuse a nonce.
   */
  seal(payload: Uint8Array): Uint8Array {
    if (!(payload instanceof Uint8Array)) throw new TypeError('payload must be a Uint8Array');
    if (payload.length > 0xffff - ENVELOPE_MAX_OVERHEAD) throw new RangeError(`payload of ${payload.length} bytes, at most ${0xffff - ENVELOPE_MAX_OVERHEAD}`);
    const counter = this.counter.next();
    if (typeof counter !== 'number' || !Number.isSafeInteger(counter) || counter < 1 || counter > ENVELOPE_COUNTER_MAX) {
      throw new EnvelopeError('counter-out-of-range', `counter source returned ${String(counter)}, not an integer in 1..2^53-1`);
    }
    if (counter <= this.last) throw new EnvelopeError('counter-not-increasing', `counter source returned ${counter} after ${this.last}`);
    this.last = counter;
    return sealWithCounter(this.primitives, this.keys, this.suite, counter, payload);
  }
}

/**
 * The envelope of `payload` at `counter`: deterministic (the same inputs give
 * the same bytes). Internal to seal paths and tests: a caller that picks its
 * own counter values can reuse a nonce; `EnvelopeSealer` cannot.
 */
export function sealWithCounter(primitives: EnvelopePrimitives, keys: DeviceKeys, suite: TelemetrySuite, counter: number, payload: Uint8Array): Uint8Array {
  const headerLength = envelopeHeaderLength(keys.keyId, counter);
  const envelope = new Uint8Array(headerLength + payload.length + ENVELOPE_TAG_LENGTH);
  encodeHeader(suite, keys.keyId, counter, envelope);
  const header = envelope.subarray(0, headerLength);
  if (suite === EnvelopeSuite.hmacSha256) {
    envelope.set(payload, headerLength);
    const mac = primitives.hmacSha256(keys.upHmacSha256, authenticatedMessage(header, keys.deviceId, payload));
    envelope.set(mac.subarray(0, ENVELOPE_TAG_LENGTH), headerLength + payload.length);
  } else {
    const sealed = primitives.aeadSeal(suite, aeadKey(keys, suite), envelopeNonce(counter), payload, authenticatedHeader(header, keys.deviceId));
    if (sealed.length !== payload.length + ENVELOPE_TAG_LENGTH) throw new Error(`AEAD returned ${sealed.length} bytes for ${payload.length}`);
    envelope.set(sealed, headerLength);
  }
  return envelope;
}

/** Looks up the keys of (device id, key id); undefined when unknown (revoked, never provisioned). */
export type KeyLookup = (deviceId: Uint8Array, keyId: number) => DeviceKeys | undefined;

export interface AuthenticateOptions {
  primitives: EnvelopePrimitives;
  keys: KeyLookup;
  /**
   * The device the envelope comes from, 8 bytes: not on the wire, so the
   * receiver supplies it from the identity the broker authenticated (the
   * device id in the topic holdfast/<id>/..., which the ACL binds to the
   * client's credentials). The tag covers it: a record of another device
   * fails as 'bad-tag' (or 'unknown-key' when this device has no such key id).
   */
  deviceId: Uint8Array;
  /** Suites accepted (default: all three telemetry suites). A receiver that requires encryption lists only the AEAD suites. */
  suites?: readonly TelemetrySuite[];
  /** Longest envelope accepted, bytes (default and largest 65,535): bounds the memory of one open. */
  maxLength?: number;
}

export interface OpenOptions extends AuthenticateOptions {
  /** The sender's window, or a function giving the window of (device id, key id) (the device id is options.deviceId). */
  replay: ReplayGuard | ((deviceId: Uint8Array, keyId: number) => ReplayGuard);
}

/** An authentic (and, from `openEnvelope`, fresh) record. */
export interface OpenedEnvelope {
  readonly suite: TelemetrySuite;
  readonly keyId: number;
  /** The device id the opener was given (a copy): authenticated by the tag. */
  readonly deviceId: Uint8Array;
  readonly counter: number;
  /** The plaintext payload (a copy). */
  readonly payload: Uint8Array;
}

/**
 * Header checks and tag verification, no freshness: an authentic envelope
 * may still be a replay. `options.deviceId` is required (TypeError or
 * RangeError when it is not 8 bytes). Throws EnvelopeError: too-short,
 * too-long, unsupported-version, suite-not-allowed, bad-key-id,
 * bad-counter, unknown-key, bad-tag (first failure in that order).
 */
export function authenticateEnvelope(envelope: Uint8Array, options: AuthenticateOptions): OpenedEnvelope {
  const deviceId = checkDeviceId(options.deviceId).slice();
  const header = decodeHeader(envelope, options.suites ?? TELEMETRY_SUITES, checkMaxLength(options.maxLength));
  const keys = options.keys(deviceId, header.keyId);
  if (keys === undefined) throw new EnvelopeError('unknown-key', `no key ${header.keyId} for this device`);
  if (!sameBytes(keys.deviceId, deviceId) || keys.keyId !== header.keyId) throw new EnvelopeError('unknown-key', 'the key lookup returned keys of another device or key id');
  const payload = verifyTag(options.primitives, keys, header, envelope);
  return { suite: header.suite as TelemetrySuite, keyId: header.keyId, deviceId, counter: header.counter, payload };
}

/**
 * Open a record: `authenticateEnvelope`, then the window decides from the
 * counter alone: 'duplicate' and 'stale' throw EnvelopeError of that code,
 * 'fresh' is accepted (the window moves) and the record returned. A record
 * whose tag fails never reaches the window, so no forgery moves it.
 */
export function openEnvelope(envelope: Uint8Array, options: OpenOptions): OpenedEnvelope {
  const opened = authenticateEnvelope(envelope, options);
  const guard = typeof options.replay === 'function' ? options.replay(opened.deviceId, opened.keyId) : options.replay;
  admit(guard, opened.counter);
  return opened;
}

/** check, then accept; the verdict as an EnvelopeError. Shared with commands. */
export function admit(guard: ReplayGuard, counter: number): void {
  const verdict = guard.check(counter);
  if (verdict === 'duplicate') throw new EnvelopeError('duplicate', `counter ${counter} was already accepted`);
  if (verdict !== 'fresh') throw new EnvelopeError('stale', `counter ${counter} is ${verdict}: at or below the window`);
  guard.accept(counter);
}

/** One sender of a ReplayStore as a guard. */
export function replayStoreGuard(store: { check(sender: number, counter: number): ReplayVerdict; accept(sender: number, counter: number): void }, sender: number): ReplayGuard {
  return { check: (counter) => store.check(sender, counter), accept: (counter) => store.accept(sender, counter) };
}

/** The tag over the authenticated header (wire header || keys.deviceId, the device id the opener was given) and the payload. */
function verifyTag(primitives: EnvelopePrimitives, keys: DeviceKeys, header: EnvelopeHeader, envelope: Uint8Array): Uint8Array {
  const suite = header.suite;
  const wireHeader = envelope.subarray(0, header.headerLength);
  if (suite === EnvelopeSuite.hmacSha256) {
    const mac = primitives.hmacSha256(keys.upHmacSha256, authenticatedMessage(wireHeader, keys.deviceId, envelope.subarray(header.headerLength, header.tagOffset)));
    if (!constantTimeEqual(mac.subarray(0, ENVELOPE_TAG_LENGTH), envelope.subarray(header.tagOffset))) throw new EnvelopeError('bad-tag', 'MAC does not verify');
    return envelope.slice(header.headerLength, header.tagOffset);
  }
  if (!isAeadSuite(suite)) throw new EnvelopeError('suite-not-allowed', `suite 0x${suite.toString(16)} is not a telemetry suite`);
  const aead = suite as AeadSuite;
  const plaintext = primitives.aeadOpen(aead, aeadKey(keys, aead), envelopeNonce(header.counter), envelope.subarray(header.headerLength), authenticatedHeader(wireHeader, keys.deviceId));
  if (plaintext === undefined) throw new EnvelopeError('bad-tag', 'AEAD tag does not verify');
  return plaintext;
}

function aeadKey(keys: DeviceKeys, suite: AeadSuite): Uint8Array {
  return suite === EnvelopeSuite.chacha20Poly1305 ? keys.upChacha20Poly1305 : keys.upAes256Gcm;
}
