/**
 * Challenge–response unlock of the serial console (docs/spec/console.md,
 * "Unlock"). The device holds only the fleet's console PUBLIC key
 * (Ed25519, provisioned); no password or secret is in the firmware.
 *
 * 1. `challenge()` builds `HFCU | 1 | len | deviceId | number | nonce`:
 *    `number` is the next value of a persistent monotonic source (the
 *    device's counter: never repeats, across reboots too) and `nonce` 16
 *    bytes from the Entropy HAL. A new challenge replaces the previous one.
 * 2. The fleet signs the challenge bytes with the console key.
 * 3. `respond(number, signature)` consumes the outstanding challenge,
 *    whatever the outcome (one try per challenge), and checks in order:
 *    no key provisioned, no outstanding challenge (a replayed response
 *    lands here), another number, older than the challenge lifetime on the
 *    monotonic clock, a signature that does not verify.
 * 4. Unlocked for `unlockMs` on the monotonic clock, or until `lock()` or
 *    a reboot (the state is RAM in this instance only).
 *
 * A captured response never works twice: its challenge is consumed by the
 * first try, and every later challenge carries a larger number.
 *
 * Time: elapsed time is accumulated at each `poll()` (every public method
 * polls), so the 2^32 ms wrap of the tick counter is harmless as long as
 * the runtime calls `poll()` at least once per 2^31 ms (24 days).
 */
import type { Crypto } from '../hal/crypto.ts';
import type { Entropy } from '../hal/entropy.ts';
import type { MonotonicClock } from '../hal/clock.ts';
import { elapsedMs } from '../base/ticks.ts';
import { FORMAT_VERSIONS } from '../base/format-versions.ts';
import { keyIdOf, PUBLIC_KEY_LENGTH, SIGNATURE_LENGTH } from './verify.ts';

/** "HFCU": the first bytes of every challenge (domain separation: no other holdfast document starts so). */
export const CONSOLE_CHALLENGE_MAGIC: readonly number[] = Object.freeze([0x48, 0x46, 0x43, 0x55]);
/** Format version of the challenge bytes. */
export const CONSOLE_CHALLENGE_VERSION = FORMAT_VERSIONS.consoleChallenge;
export const CONSOLE_NONCE_LENGTH = 16;
/** Longest device id in a challenge. */
export const CONSOLE_MAX_DEVICE_ID = 64;
/** Default lifetime of a challenge. */
export const DEFAULT_CHALLENGE_TTL_MS = 60_000;
/** Default time the console stays unlocked. */
export const DEFAULT_UNLOCK_MS = 300_000;
/** Largest lifetime or unlock time accepted (below half the tick modulus). */
export const MAX_CONSOLE_WINDOW_MS = 0x7fff_ffff;

export type ConsoleRefusal =
  /** No console key is provisioned: the console cannot be unlocked. */
  | 'no-key'
  /** No challenge outstanding (never asked, already answered: a replay). */
  | 'no-challenge'
  /** The response names another challenge number than the outstanding one. */
  | 'wrong-challenge'
  /** The challenge outlived its lifetime. */
  | 'stale-challenge'
  /** The signature does not verify under the console key (a wrong key, a forgery). */
  | 'bad-signature';

export interface ConsoleChallenge {
  /** The persistent number it carries. */
  readonly number: number;
  readonly nonce: Uint8Array;
  /** The bytes the fleet signs. */
  readonly bytes: Uint8Array;
  readonly ttlMs: number;
}

export type ConsoleUnlockResult =
  | { readonly ok: true; readonly number: number; /** First 4 bytes of the key id as a big-endian u32 (the audit event's keyId). */ readonly keyId: number; readonly unlockMs: number }
  | { readonly ok: false; readonly reason: ConsoleRefusal };

export interface ConsoleUnlockOptions {
  readonly crypto: Crypto;
  readonly entropy: Entropy;
  readonly clock: MonotonicClock;
  /** The device's id: 1..64 characters of [A-Za-z0-9._-]. */
  readonly deviceId: string;
  /** The fleet's console public key (32 bytes), or undefined when none is provisioned (every unlock refused). */
  readonly consoleKey: Uint8Array | undefined;
  /** Persistent and strictly increasing (the device's counter, storage/counter.ts): 1..2^53-1. */
  readonly numbers: { next(): number };
  readonly challengeTtlMs?: number;
  readonly unlockMs?: number;
}

interface Outstanding {
  readonly number: number;
  readonly bytes: Uint8Array;
  /** Milliseconds since it was issued (accumulated). */
  age: number;
}

export class ConsoleUnlock {
  private readonly crypto: Crypto;
  private readonly entropy: Entropy;
  private readonly clock: MonotonicClock;
  private readonly deviceId: Uint8Array;
  private readonly consoleKey: Uint8Array | undefined;
  private readonly keyId: number;
  private readonly numbers: { next(): number };
  readonly challengeTtlMs: number;
  readonly unlockMs: number;
  private lastTick: number;
  private outstanding: Outstanding | undefined = undefined;
  /** Milliseconds left unlocked (0: locked). */
  private unlockedLeft = 0;

  constructor(options: ConsoleUnlockOptions) {
    this.crypto = options.crypto;
    this.entropy = options.entropy;
    this.clock = options.clock;
    this.deviceId = deviceIdBytes(options.deviceId);
    const key = options.consoleKey;
    if (key !== undefined && (!(key instanceof Uint8Array) || key.length !== PUBLIC_KEY_LENGTH)) throw new RangeError(`the console key must be a ${PUBLIC_KEY_LENGTH}-byte Ed25519 public key`);
    this.consoleKey = key === undefined ? undefined : key.slice();
    this.keyId = key === undefined ? 0 : u32be(keyIdOf(this.crypto, key));
    this.numbers = options.numbers;
    this.challengeTtlMs = checkWindow(options.challengeTtlMs ?? DEFAULT_CHALLENGE_TTL_MS, 'challengeTtlMs');
    this.unlockMs = checkWindow(options.unlockMs ?? DEFAULT_UNLOCK_MS, 'unlockMs');
    this.lastTick = this.clock.ticks();
  }

  /** A console key is provisioned. */
  get provisioned(): boolean {
    return this.consoleKey !== undefined;
  }

  /** Advance the clocks of the outstanding challenge and of the unlock. */
  poll(): void {
    const now = this.clock.ticks();
    const step = elapsedMs(this.lastTick, now);
    this.lastTick = now;
    if (this.outstanding !== undefined) this.outstanding.age = Math.min(this.outstanding.age + step, MAX_CONSOLE_WINDOW_MS + 1);
    this.unlockedLeft = step >= this.unlockedLeft ? 0 : this.unlockedLeft - step;
  }

  /** A new challenge (replacing any outstanding one); takes a value of the persistent source. */
  challenge(): ConsoleChallenge {
    this.poll();
    const number = this.numbers.next();
    if (!Number.isSafeInteger(number) || number < 1) throw new RangeError(`the challenge number source returned ${String(number)}, not an integer in 1..2^53-1`);
    const nonce = new Uint8Array(CONSOLE_NONCE_LENGTH);
    this.entropy.fill(nonce);
    const bytes = encodeConsoleChallenge(this.deviceId, number, nonce);
    this.outstanding = { number, bytes, age: 0 };
    return { number, nonce, bytes: bytes.slice(), ttlMs: this.challengeTtlMs };
  }

  /** Answer the outstanding challenge; it is consumed whatever the outcome. */
  respond(number: number, signature: Uint8Array): ConsoleUnlockResult {
    this.poll();
    const outstanding = this.outstanding;
    this.outstanding = undefined;
    if (this.consoleKey === undefined) return { ok: false, reason: 'no-key' };
    if (outstanding === undefined) return { ok: false, reason: 'no-challenge' };
    if (number !== outstanding.number) return { ok: false, reason: 'wrong-challenge' };
    if (outstanding.age > this.challengeTtlMs) return { ok: false, reason: 'stale-challenge' };
    if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_LENGTH || !this.crypto.ed25519Verify(signature, outstanding.bytes, this.consoleKey)) return { ok: false, reason: 'bad-signature' };
    this.unlockedLeft = this.unlockMs;
    return { ok: true, number, keyId: this.keyId, unlockMs: this.unlockMs };
  }

  /** Unlocked now (polls first). */
  unlocked(): boolean {
    this.poll();
    return this.unlockedLeft > 0;
  }

  /** Milliseconds the console stays unlocked (0: locked). */
  remainingMs(): number {
    this.poll();
    return this.unlockedLeft;
  }

  /** Lock now and drop any outstanding challenge. */
  lock(): void {
    this.unlockedLeft = 0;
    this.outstanding = undefined;
  }
}

/** The challenge bytes (docs/spec/console.md, "Challenge"): what the fleet signs. */
export function encodeConsoleChallenge(deviceId: Uint8Array, number: number, nonce: Uint8Array): Uint8Array {
  if (deviceId.length < 1 || deviceId.length > CONSOLE_MAX_DEVICE_ID) throw new RangeError(`a device id is 1..${CONSOLE_MAX_DEVICE_ID} bytes`);
  if (!Number.isSafeInteger(number) || number < 0) throw new RangeError('a challenge number is an integer in 0..2^53-1');
  if (nonce.length !== CONSOLE_NONCE_LENGTH) throw new RangeError(`a challenge nonce is ${CONSOLE_NONCE_LENGTH} bytes`);
  const out = new Uint8Array(6 + deviceId.length + 8 + CONSOLE_NONCE_LENGTH);
  out.set(CONSOLE_CHALLENGE_MAGIC, 0);
  out[4] = CONSOLE_CHALLENGE_VERSION;
  out[5] = deviceId.length;
  out.set(deviceId, 6);
  let at = 6 + deviceId.length;
  let low = number % 0x1_0000_0000;
  let high = Math.floor(number / 0x1_0000_0000);
  for (let i = 0; i < 4; i++, low = Math.floor(low / 256)) out[at++] = low % 256;
  for (let i = 0; i < 4; i++, high = Math.floor(high / 256)) out[at++] = high % 256;
  out.set(nonce, at);
  return out;
}

export interface DecodedConsoleChallenge {
  readonly deviceId: string;
  readonly number: number;
  readonly nonce: Uint8Array;
}

/** Read challenge bytes back (the host checks what it is asked to sign); undefined when they are not a version-1 challenge. */
export function decodeConsoleChallenge(bytes: Uint8Array): DecodedConsoleChallenge | undefined {
  if (bytes.length < 6) return undefined;
  for (let i = 0; i < 4; i++) if (bytes[i] !== CONSOLE_CHALLENGE_MAGIC[i]) return undefined;
  if (bytes[4] !== CONSOLE_CHALLENGE_VERSION) return undefined;
  const n = bytes[5];
  if (n < 1 || n > CONSOLE_MAX_DEVICE_ID || bytes.length !== 6 + n + 8 + CONSOLE_NONCE_LENGTH) return undefined;
  let deviceId = '';
  for (let i = 0; i < n; i++) {
    const c = bytes[6 + i];
    if (!isIdByte(c)) return undefined;
    deviceId += String.fromCharCode(c);
  }
  const at = 6 + n;
  const low = bytes[at] + bytes[at + 1] * 0x100 + bytes[at + 2] * 0x1_0000 + bytes[at + 3] * 0x100_0000;
  const high = bytes[at + 4] + bytes[at + 5] * 0x100 + bytes[at + 6] * 0x1_0000 + bytes[at + 7] * 0x100_0000;
  if (high > 0x1f_ffff) return undefined;
  return { deviceId, number: high * 0x1_0000_0000 + low, nonce: bytes.slice(at + 8) };
}

function deviceIdBytes(id: string): Uint8Array {
  if (typeof id !== 'string' || id.length < 1 || id.length > CONSOLE_MAX_DEVICE_ID) throw new RangeError(`the device id must be 1..${CONSOLE_MAX_DEVICE_ID} characters`);
  const out = new Uint8Array(id.length);
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    if (!isIdByte(c)) throw new RangeError(`the device id must be [A-Za-z0-9._-], got ${JSON.stringify(id)}`);
    out[i] = c;
  }
  return out;
}

function isIdByte(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x5f || c === 0x2d;
}

function u32be(bytes: Uint8Array): number {
  return ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0;
}

function checkWindow(ms: number, field: string): number {
  if (!Number.isInteger(ms) || ms < 1 || ms > MAX_CONSOLE_WINDOW_MS) throw new RangeError(`${field} must be an integer in 1..${MAX_CONSOLE_WINDOW_MS}, got ${ms}`);
  return ms;
}
