/**
 * The envelope, format 2 (docs/spec/envelope.md) in Node and in XS: byte
 * layout and the spec's test vector, canonical varints, round trips of
 * every suite, early typed refusals, the implicit (authenticated) device
 * id, forgeries, the nonce
 * under power cuts at every flash operation of the persistent counter, a
 * device back from a long time offline with a backlog, commands, and the
 * cost of a seal (the XS run reports compute).
 */
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { envelopePrimitives, type AeadSuite, type EnvelopePrimitives } from '../../firmware/security/envelope-primitives.ts';
import { deriveDeviceKeys, type DeviceKeys } from '../../firmware/security/envelope-keys.ts';
import {
  COMMAND_MAX_OVERHEAD,
  commandOverhead,
  ENCRYPTED_COMMAND_MAX_OVERHEAD,
  ENVELOPE_FORMAT_VERSION,
  ENVELOPE_MAX_OVERHEAD,
  ENVELOPE_MIN_OVERHEAD,
  EnvelopeError,
  envelopeHeaderLength,
  envelopeOverhead,
  EnvelopeSuite,
  peekHeader,
  readVarint,
  TELEMETRY_SUITES,
  VARINT_INVALID,
  VARINT_TRUNCATED,
  varintLength,
  writeVarint,
  type EnvelopeErrorCode,
  type TelemetrySuite,
} from '../../firmware/security/envelope-format.ts';
import { EnvelopeSealer, openEnvelope, replayStoreGuard, sealWithCounter, type CounterSource, type OpenOptions, type ReplayGuard } from '../../firmware/security/envelope.ts';
import { commandKeyId, ed25519Signer, openCommand, sealCommand } from '../../firmware/security/envelope-command.ts';
import { ReplayWindow } from '../../firmware/security/replay-window.ts';
import { ReplayStore } from '../../firmware/security/replay-store.ts';
import { Counter } from '../../firmware/storage/counter.ts';
import * as ed from '@noble/ed25519';
import type { Crypto } from '../../firmware/hal/crypto.ts';
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { runExhaustive, type CutScenario } from '../../tools/sim/power-cut.ts';
import { Rng } from '../../tools/sim/rng.ts';
import type { FlashMode } from '../../tools/sim/flash/sim-flash.ts';
import { bytesEqual, equal, ok, throws } from '../support/check.ts';
import { caughtByInvariant, exhaustiveCase, runnerOptions } from '../support/case-helpers.ts';
import { WriteBackFlash } from '../support/write-back-flash.ts';
import type { CaseEnv, CaseSuite } from '../support/cases.ts';

// ---------------------------------------------------------------- fixtures

export function fixedBytes(length: number, start: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (start + i * 7) & 0xff;
  return bytes;
}

export const DEVICE_A = Uint8Array.of(0xd1, 0, 0, 0, 0, 0, 0, 0x0a);
export const DEVICE_B = Uint8Array.of(0xd1, 0, 0, 0, 0, 0, 0, 0x0b);
export const SECRET_A = fixedBytes(32, 0x11);
export const SECRET_B = fixedBytes(32, 0x77);

export interface Fixture {
  crypto: Crypto;
  primitives: EnvelopePrimitives;
  keysA: DeviceKeys;
  keysB: DeviceKeys;
  /** Keys of A, key id 1 (the provisioned one) and 2 (a rotation). */
  lookup(deviceId: Uint8Array, keyId: number): DeviceKeys | undefined;
}

export function fixture(): Fixture {
  const crypto = createNobleCrypto();
  const keysA = deriveDeviceKeys(crypto, SECRET_A, DEVICE_A, 1);
  const keysB = deriveDeviceKeys(crypto, SECRET_B, DEVICE_B, 1);
  return {
    crypto,
    primitives: envelopePrimitives(crypto),
    keysA,
    keysB,
    lookup: (deviceId, keyId) => {
      if (keyId !== 1) return undefined;
      if (deviceId[7] === 0x0a && deviceId[0] === 0xd1) return keysA;
      if (deviceId[7] === 0x0b && deviceId[0] === 0xd1) return keysB;
      return undefined;
    },
  };
}

/** A counter source that counts from `start` (the pure stand-in; the power-cut cases use the real Counter). */
export function plainCounter(start: number): CounterSource & { value: number } {
  return {
    value: start - 1,
    next() {
      this.value++;
      return this.value;
    },
  };
}

export function fromHex(text: string): Uint8Array {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substring(2 * i, 2 * i + 2), 16);
  return out;
}

export function hex(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16);
  return out;
}

function refusedWith(run: () => unknown, code: EnvelopeErrorCode, message: string): void {
  const error = throws(run, 'EnvelopeError', message) as EnvelopeError;
  equal(error.code, code, `${message}: code (${error.message})`);
}

/** Unsigned LEB128 of `value` (up to 2^53 - 1), written independently of envelope-format.ts: 7 bits per byte, low first. */
export function leb128(value: number): number[] {
  const out: number[] = [];
  do {
    const low = value % 128;
    value = (value - low) / 128;
    out.push(value > 0 ? low + 128 : low);
  } while (value > 0);
  return out;
}

/**
 * `envelope` with its wire header replaced by version, suite, then the given
 * key id and counter field bytes (any bytes: non-canonical, overlong), and
 * the payload and tag kept.
 */
export function withFields(envelope: Uint8Array, keyIdField: readonly number[], counterField: readonly number[]): Uint8Array {
  const header = peekHeader(envelope);
  if (header === undefined) throw new Error('withFields: not an envelope');
  const rest = envelope.subarray(header.headerLength);
  const out = new Uint8Array(2 + keyIdField.length + counterField.length + rest.length);
  out[0] = envelope[0];
  out[1] = envelope[1];
  out.set(keyIdField, 2);
  out.set(counterField, 2 + keyIdField.length);
  out.set(rest, 2 + keyIdField.length + counterField.length);
  return out;
}

/** The payload start (wire header length) of a well-formed envelope. */
export function headerLengthOf(envelope: Uint8Array): number {
  const header = peekHeader(envelope);
  if (header === undefined) throw new Error('not an envelope');
  return header.headerLength;
}

function suiteName(suite: number): string {
  return suite === EnvelopeSuite.hmacSha256 ? 'hmac-sha256' : suite === EnvelopeSuite.chacha20Poly1305 ? 'chacha20-poly1305' : 'aes-256-gcm';
}

// ------------------------------------------------- adversarial deliveries

export interface Delivery {
  readonly envelope: Uint8Array;
  /** 'fresh': a genuine record delivered for the first time (must be accepted); otherwise it must be refused. */
  readonly kind: 'fresh' | 'duplicate' | 'replay' | 'forgery';
  readonly counter: number;
  /** A genuine record delivered after records with higher counters (held back, still inside the window). */
  readonly reordered?: boolean;
}

export interface BacklogOptions {
  seed: number;
  /** Records delivered while the device was online, before it went away. */
  online: number;
  /** Records in the backlog it brings back. */
  backlog: number;
  /** Where its counter stands when it comes back (far above the window: a year of reboots, each skipping up to K). */
  resumeAt: number;
  /** Reboots during the backlog, each skipping 1..K - 1 values. */
  reboots: number;
  /** Counter values K a reboot can skip (the counter's reserve). */
  reserve: number;
  windowBits: number;
  /** Injected replays, duplicates and forgeries per genuine record (on average). */
  attacksPerRecord: number;
  suite: TelemetrySuite;
}

/**
 * A device online for a while, then gone (its counter far above the
 * receiver's window when it returns), then draining a backlog mostly in
 * order, some records reordered within the window, QoS 1 duplicates of
 * the same bytes, replays of anything captured, and forgeries: bit flips,
 * a rewritten counter or device id, tags of another device, random bytes.
 */
export function backlogScript(f: Fixture, o: BacklogOptions): Delivery[] {
  const rng = new Rng(o.seed);
  const counter = plainCounter(1);
  const seal = (payload: Uint8Array): { envelope: Uint8Array; counter: number } => {
    const value = counter.next();
    return { envelope: sealWithCounter(f.primitives, f.keysA, o.suite, value, payload), counter: value };
  };
  const genuine: { envelope: Uint8Array; counter: number }[] = [];
  for (let i = 0; i < o.online; i++) genuine.push(seal(fixedBytes(rng.between(0, 40), i)));
  counter.value = o.resumeAt - 1;
  const rebootAt = new Set<number>();
  for (let r = 0; r < o.reboots; r++) rebootAt.add(o.online + rng.below(o.backlog));
  for (let i = 0; i < o.backlog; i++) {
    if (rebootAt.has(o.online + i)) counter.value += rng.between(1, o.reserve - 1);
    genuine.push(seal(fixedBytes(rng.between(0, 40), 1000 + i)));
  }
  // Order of first deliveries: in order, with some records held back and released while still inside the window.
  const order: number[] = [];
  const held: number[] = [];
  const late = new Set<number>();
  for (let i = 0; i < genuine.length; i++) {
    // Release anything the next record would push out of the window (counter distance W - 1 at most).
    for (let h = held.length - 1; h >= 0; h--) {
      if (genuine[i].counter - genuine[held[h]].counter >= o.windowBits || rng.chance(0.4)) {
        late.add(held[h]);
        order.push(held.splice(h, 1)[0]);
      }
    }
    if (i + 1 < genuine.length && genuine[i + 1].counter - genuine[i].counter < o.windowBits && held.length < 3 && rng.chance(0.1)) held.push(i);
    else order.push(i);
  }
  for (const h of held) late.add(h);
  while (held.length > 0) order.push(held.pop() as number);

  const script: Delivery[] = [];
  const sent: number[] = [];
  for (const index of order) {
    const record = genuine[index];
    script.push({ envelope: record.envelope, kind: 'fresh', counter: record.counter, reordered: late.has(index) });
    sent.push(index);
    let attacks = rng.below(2 * o.attacksPerRecord + 1);
    while (attacks-- > 0) script.push(attack(f, rng, genuine, sent, o.suite));
  }
  return script;
}

function attack(f: Fixture, rng: Rng, genuine: readonly { envelope: Uint8Array; counter: number }[], sent: readonly number[], suite: TelemetrySuite): Delivery {
  const pick = genuine[sent[rng.below(sent.length)]];
  const latest = genuine[sent[sent.length - 1]];
  const roll = rng.below(100);
  if (roll < 20) return { envelope: latest.envelope, kind: 'duplicate', counter: latest.counter }; // QoS 1 redelivery
  if (roll < 45) return { envelope: pick.envelope, kind: 'replay', counter: pick.counter }; // captured and replayed
  const forged = pick.envelope.slice();
  if (roll < 65) {
    const bit = rng.below(forged.length * 8);
    forged[bit >>> 3] ^= 1 << (bit & 7);
  } else if (roll < 75) {
    // A fresh-looking counter under an old tag (the varint may change length).
    const counter = latest.counter + 1 + rng.below(1000);
    return { envelope: withFields(forged, leb128(f.keysA.keyId), leb128(counter)), kind: 'forgery', counter: pick.counter };
  } else if (roll < 82) {
    // Sealed by B with B's key (B is a known device), delivered on A's topic: the device id is not on the wire, the tag covers A's.
    const other = sealWithCounter(f.primitives, f.keysB, suite, latest.counter + 1 + rng.below(100), fixedBytes(8, roll));
    return { envelope: other, kind: 'forgery', counter: latest.counter };
  } else if (roll < 90) {
    // The same record re-encoded with a non-canonical counter (one more byte: a set continuation bit and a zero byte): other bytes, same values.
    const field = leb128(pick.counter);
    field[field.length - 1] |= 0x80;
    field.push(0);
    return { envelope: withFields(forged, leb128(f.keysA.keyId), field), kind: 'forgery', counter: pick.counter };
  } else {
    for (let i = headerLengthOf(forged); i < forged.length; i++) forged[i] = rng.below(256);
  }
  return { envelope: forged, kind: 'forgery', counter: pick.counter };
}

export interface DeliveryTally {
  fresh: number;
  /** Fresh records delivered after higher counters. */
  reordered: number;
  accepted: number;
  freshRejected: number;
  attacks: number;
  attacksAccepted: number;
  refusedBy: Record<string, number>;
}

/** Feed `script` to `openEnvelope` with the given window; count; throw on the first wrong decision. */
export function runDeliveries(f: Fixture, script: readonly Delivery[], replay: ReplayGuard, o: { suites?: readonly TelemetrySuite[] } = {}): DeliveryTally {
  const tally: DeliveryTally = { fresh: 0, reordered: 0, accepted: 0, freshRejected: 0, attacks: 0, attacksAccepted: 0, refusedBy: {} };
  const options: OpenOptions = { primitives: f.primitives, keys: f.lookup, deviceId: DEVICE_A, replay, suites: o.suites };
  for (let i = 0; i < script.length; i++) {
    const d = script[i];
    if (d.kind === 'fresh') tally.fresh++;
    if (d.reordered) tally.reordered++;
    else tally.attacks++;
    let code: string | undefined;
    try {
      const opened = openEnvelope(d.envelope, options);
      tally.accepted++;
      if (d.kind !== 'fresh') tally.attacksAccepted++;
      ok(d.kind === 'fresh', `delivery ${i} (${d.kind}, counter ${d.counter}) was accepted as counter ${opened.counter}`);
      equal(opened.counter, d.counter, `delivery ${i}: counter`);
    } catch (error) {
      if (!(error instanceof EnvelopeError)) throw error;
      code = error.code;
      tally.refusedBy[code] = (tally.refusedBy[code] ?? 0) + 1;
      if (d.kind === 'fresh') tally.freshRejected++;
      ok(d.kind !== 'fresh', `delivery ${i}: fresh record, counter ${d.counter}, refused: ${error.code} (${error.message})`);
      if (d.kind === 'forgery') ok(code !== 'duplicate' && code !== 'stale', `delivery ${i}: a forgery reached the window (${code})`);
      else ok(code === 'duplicate' || code === 'stale', `delivery ${i}: a genuine ${d.kind} refused as ${code}, not by the window`);
    }
  }
  return tally;
}

// ------------------------------------------------- nonce under power cuts

interface NonceState {
  /** Every (key, nonce) pair an AEAD was asked to seal with, in any boot. */
  used: Set<string>;
  sealed: number;
  formatted: boolean;
}

export interface NonceScenarioOptions {
  mode: FlashMode;
  blockLength: number;
  reserve: number;
  total: number;
  perSession: number;
  wrap?: (flash: FlashPartition) => FlashPartition;
  name?: string;
}

/**
 * Seal `total` records alternating ChaCha20-Poly1305 and AES-256-GCM, with
 * the real Counter over the simulated flash, `perSession` per boot; the
 * AEAD calls are logged as they happen, so a (key, nonce) pair used by a
 * seal that a cut then interrupted still counts.
 */
export function nonceScenario(f: Fixture, o: NonceScenarioOptions): CutScenario<NonceState> {
  return {
    name: o.name ?? `envelope nonce/${o.mode}/block${o.blockLength}/K${o.reserve}/${o.total}`,
    flash: { blocks: 2, blockLength: o.blockLength, mode: o.mode, onBitSet: 'throw' },
    createState: () => ({ used: new Set<string>(), sealed: 0, formatted: false }),
    boot(flash, state) {
      if (!state.formatted) {
        Counter.format(flash);
        state.formatted = true;
      }
      const logging: EnvelopePrimitives = {
        ...f.primitives,
        aeadSeal(suite: AeadSuite, key, nonce, plaintext, aad) {
          const pair = `${hex(key)}/${hex(nonce)}`;
          ok(!state.used.has(pair), `(key, nonce) pair used twice: nonce ${hex(nonce)} under the ${suiteName(suite)} key`);
          state.used.add(pair);
          return f.primitives.aeadSeal(suite, key, nonce, plaintext, aad);
        },
      };
      const counter = Counter.open(o.wrap ? o.wrap(flash) : flash, { reserve: o.reserve });
      const sealers = [EnvelopeSuite.chacha20Poly1305, EnvelopeSuite.aes256Gcm].map((suite) => new EnvelopeSealer({ primitives: logging, keys: f.keysA, counter, suite }));
      for (let i = 0; i < o.perSession && state.sealed < o.total; i++) {
        const sealer = sealers[state.sealed % 2];
        const envelope = sealer.seal(fixedBytes(5, state.sealed));
        equal(envelope.length, 5 + envelopeOverhead(f.keysA.keyId, sealer.lastCounter), 'sealed length');
        state.sealed++;
      }
    },
  };
}

// ---------------------------------------------------------------- cases

const PAYLOADS = [0, 1, 16, 64, 256];

export const suite: CaseSuite = {
  name: 'envelope',
  cases: [
    {
      name: 'byte layout and test vector (docs/spec/envelope.md): version 2, suite, key id and counter as LEB128, payload, tag over wire header || device id || payload; overhead 22 at key id 1, counter 10^6',
      run() {
        const f = fixture();
        // The spec's example: device A (d1 00 00 00 00 00 00 0a), secret fixedBytes(32, 0x11) = 11 18 1f .. ea, key id 1, counter 1,000,000, payload ca fe.
        bytesEqual(f.keysA.upHmacSha256, fromHex('eeb365c5789be19c8f2da201c9a9059b0f27d3eec94e2bde5c22a84e08cb4643'), 'K_up_hmac of the example');
        const envelope = sealWithCounter(f.primitives, f.keysA, EnvelopeSuite.hmacSha256, 1_000_000, Uint8Array.of(0xca, 0xfe));
        bytesEqual(
          envelope,
          Uint8Array.of(
            0x02, //                                           format version 2
            0x01, //                                           suite: hmac-sha256
            0x01, //                                           key id 1 (LEB128, 1 byte)
            0xc0, 0x84, 0x3d, //                               counter 1,000,000 = 0x0f4240 (LEB128: 0x40|0x80, 0x04|0x80, 0x3d)
            0xca, 0xfe, //                                     payload
            // tag: HMAC-SHA-256(K_up_hmac, 02 01 01 c0 84 3d || d1 00 00 00 00 00 00 0a || ca fe)[0..16)
            0xef, 0x04, 0x13, 0x5e, 0x87, 0x73, 0xd2, 0xce, 0xa2, 0x73, 0x59, 0x36, 0xd3, 0x80, 0x8e, 0x82,
          ),
          'the test vector, byte for byte',
        );
        const authenticated = new Uint8Array(16);
        authenticated.set(Uint8Array.of(0x02, 0x01, 0x01, 0xc0, 0x84, 0x3d), 0);
        authenticated.set(DEVICE_A, 6);
        authenticated.set(Uint8Array.of(0xca, 0xfe), 14);
        bytesEqual(envelope.subarray(8), f.crypto.hmacSha256(f.keysA.upHmacSha256, authenticated).subarray(0, 16), 'tag = HMAC-SHA-256(K_up_hmac, wire header || device id || payload)[0..16)');
        equal(envelope.length - 2, 22, 'overhead at key id 1, counter 10^6');
        equal(envelopeOverhead(1, 1_000_000), 22, 'envelopeOverhead(1, 10^6)');
        // The AEAD suites of the same record: same header, AAD = wire header || device id.
        equal(hex(sealWithCounter(f.primitives, f.keysA, EnvelopeSuite.chacha20Poly1305, 1_000_000, Uint8Array.of(0xca, 0xfe))), '020201c0843df9edfd4fd21db7f8702d37aecc25e5104705', 'chacha20-poly1305 vector');
        equal(hex(sealWithCounter(f.primitives, f.keysA, EnvelopeSuite.aes256Gcm, 1_000_000, Uint8Array.of(0xca, 0xfe))), '020301c0843dec923b6e13deb20830ab6a086d33dbb9f50a', 'aes-256-gcm vector');
        // The longest header: key id 2^32 - 1 (5 bytes), counter 2^53 - 1 (8 bytes): overhead 31 = ENVELOPE_MAX_OVERHEAD.
        const widest = deriveDeviceKeys(f.crypto, SECRET_A, DEVICE_A, 0xffff_ffff);
        const longest = sealWithCounter(f.primitives, widest, EnvelopeSuite.hmacSha256, Number.MAX_SAFE_INTEGER, Uint8Array.of(0xca, 0xfe));
        bytesEqual(longest.subarray(0, 17), fromHex('0201ffffffff0fffffffffffffff0fcafe'), 'longest header');
        equal(longest.length - 2, ENVELOPE_MAX_OVERHEAD, 'largest overhead');
        equal(ENVELOPE_MAX_OVERHEAD, 31, 'ENVELOPE_MAX_OVERHEAD');
        equal(ENVELOPE_MIN_OVERHEAD, 20, 'ENVELOPE_MIN_OVERHEAD');
        equal(COMMAND_MAX_OVERHEAD, 79, 'COMMAND_MAX_OVERHEAD');
        equal(ENCRYPTED_COMMAND_MAX_OVERHEAD, 95, 'ENCRYPTED_COMMAND_MAX_OVERHEAD');
        equal(ENVELOPE_FORMAT_VERSION, 2, 'format version');
        return { overheadAtCounter1e6: envelopeOverhead(1, 1_000_000), overheadMax: ENVELOPE_MAX_OVERHEAD, commandOverheadMax: COMMAND_MAX_OVERHEAD };
      },
    },
    {
      name: 'varints: LEB128 vectors, canonical only (one byte string per value), lengths at every 7-bit boundary, overhead per (key id, counter)',
      run() {
        const vectors: [number, string][] = [
          [0, '00'],
          [1, '01'],
          [127, '7f'],
          [128, '8001'],
          [300, 'ac02'],
          [16_383, 'ff7f'],
          [16_384, '808001'],
          [1_000_000, 'c0843d'],
          [0x0403_0201, '81848c20'],
          [0xffff_ffff, 'ffffffff0f'],
          [2 ** 49 - 1, 'ffffffffffff7f'],
          [2 ** 49, '8080808080808001'],
          [Number.MAX_SAFE_INTEGER, 'ffffffffffffff0f'],
        ];
        for (const [value, encoded] of vectors) {
          const out = new Uint8Array(10);
          const end = writeVarint(value, out, 1);
          equal(hex(out.subarray(1, end)), encoded, `writeVarint(${value})`);
          equal(hex(Uint8Array.from(leb128(value))), encoded, `independent LEB128 of ${value}`);
          equal(varintLength(value), encoded.length / 2, `varintLength(${value})`);
          equal(readVarint(fromHex(encoded), 0, encoded.length / 2, 8, 0x0f), value, `readVarint(${encoded})`);
        }
        // Every length boundary of the counter round-trips, and the overhead grows one byte per 7 bits.
        for (let bits = 1; bits <= 53; bits++) {
          for (const value of [2 ** (bits - 1), 2 ** bits - 1]) {
            const bytes = Uint8Array.from(leb128(value));
            equal(readVarint(bytes, 0, bytes.length, 8, 0x0f), value, `counter ${value}`);
            equal(envelopeOverhead(1, value), 2 + 1 + Math.ceil(bits / 7) + 16, `overhead at counter ${value}`);
          }
        }
        equal(envelopeOverhead(0, 1), 20, 'smallest overhead');
        equal(envelopeOverhead(127, 127), 20, 'key id and counter below 128');
        equal(envelopeOverhead(128, 128), 22, 'both at 128');
        equal(envelopeOverhead(0xffff_ffff, Number.MAX_SAFE_INTEGER), 31, 'largest');
        equal(commandOverhead(0xffff_ffff, 1, false), 2 + 5 + 1 + 64, 'command, 5-byte key id');
        equal(commandOverhead(0xffff_ffff, 1, true), 2 + 5 + 1 + 16 + 64, 'encrypted command');
        equal(envelopeHeaderLength(1, 1_000_000), 6, 'header length');
        throws(() => envelopeOverhead(2 ** 32, 1), 'RangeError', 'key id above u32');
        throws(() => envelopeOverhead(1, 0), 'RangeError', 'counter 0');
        throws(() => envelopeOverhead(1, 2 ** 53), 'RangeError', 'counter 2^53');
        // Refused: non-minimal (a zero last byte after the first), overlong, above the range, running past the end.
        const refused: [string, number, number][] = [
          ['8000', 8, VARINT_INVALID], // 0 in two bytes
          ['8100', 8, VARINT_INVALID], // 1 in two bytes
          ['ff8000', 8, VARINT_INVALID], // 127 in three bytes
          ['ffffffff1f', 5, VARINT_INVALID], // 2^33 - 1 > u32
          ['ffffffff8f01', 5, VARINT_INVALID], // a sixth key id byte
          ['8080808080808010', 8, VARINT_INVALID], // 2^53
          ['ffffffffffffff8f01', 8, VARINT_INVALID], // a ninth counter byte
          ['80', 8, VARINT_TRUNCATED],
          ['ffff', 8, VARINT_TRUNCATED],
          ['', 8, VARINT_TRUNCATED],
        ];
        for (const [encoded, maxBytes, expected] of refused) {
          equal(readVarint(fromHex(encoded), 0, encoded.length / 2, maxBytes, 0x0f), expected, `readVarint('${encoded}', at most ${maxBytes} bytes)`);
        }
        return { vectors: vectors.length };
      },
    },
    {
      name: 'every suite round-trips every payload size; AEAD payloads are encrypted; overhead is envelopeOverhead(key id, counter) (20 at counters below 128)',
      run() {
        const f = fixture();
        for (const suite of TELEMETRY_SUITES) {
          const sealer = new EnvelopeSealer({ primitives: f.primitives, keys: f.keysA, counter: plainCounter(5), suite });
          const window = new ReplayWindow();
          for (const size of PAYLOADS) {
            const payload = fixedBytes(size, size);
            const envelope = sealer.seal(payload);
            equal(envelope.length - size, envelopeOverhead(1, sealer.lastCounter), `${suiteName(suite)} overhead at ${size}`);
            equal(envelope.length - size, 20, `${suiteName(suite)} overhead at ${size}, counter ${sealer.lastCounter}`);
            equal(envelope[0], ENVELOPE_FORMAT_VERSION, 'version byte');
            equal(envelope[1], suite, 'suite byte');
            if (suite !== EnvelopeSuite.hmacSha256 && size >= 16) ok(hex(envelope.subarray(4, 4 + size)) !== hex(payload), `${suiteName(suite)} leaves the payload in clear`);
            const opened = openEnvelope(envelope, { primitives: f.primitives, keys: f.lookup, deviceId: DEVICE_A, replay: window });
            bytesEqual(opened.payload, payload, `${suiteName(suite)} payload at ${size}`);
            equal(opened.suite, suite, 'suite');
            equal(opened.keyId, 1, 'key id');
            bytesEqual(opened.deviceId, DEVICE_A, 'device id');
          }
          equal(window.highest(), 5 + PAYLOADS.length - 1, 'window moved to the last counter');
        }
      },
    },
    {
      name: 'a resend carries the same bytes and changes nothing: the second delivery is a duplicate',
      run() {
        const f = fixture();
        for (const suite of TELEMETRY_SUITES) {
          const a = sealWithCounter(f.primitives, f.keysA, suite, 77, fixedBytes(20, 3));
          const b = sealWithCounter(f.primitives, f.keysA, suite, 77, fixedBytes(20, 3));
          bytesEqual(a, b, `${suiteName(suite)}: sealing is deterministic`);
          const window = new ReplayWindow();
          const options: OpenOptions = { primitives: f.primitives, keys: f.lookup, deviceId: DEVICE_A, replay: window };
          openEnvelope(a, options);
          refusedWith(() => openEnvelope(b, options), 'duplicate', 'resend');
          equal(window.acceptedCount(), 1, 'accepted once');
        }
      },
    },
    {
      name: 'early, typed refusals in byte order: length, version (format 1 too), suite, key id, counter (canonical varints only), then key, tag',
      run() {
        const f = fixture();
        const good = sealWithCounter(f.primitives, f.keysA, EnvelopeSuite.hmacSha256, 9, fixedBytes(10, 1));
        equal(hex(good.subarray(0, 4)), '02010109', 'header: version 2, suite 1, key id 1, counter 9');
        const opts = (extra: Partial<OpenOptions> = {}): OpenOptions => ({ primitives: f.primitives, keys: f.lookup, deviceId: DEVICE_A, replay: new ReplayWindow(), ...extra });
        const mutate = (edit: (bytes: Uint8Array) => void): Uint8Array => {
          const bytes = good.slice();
          edit(bytes);
          return bytes;
        };
        const fields = (keyIdHex: string, counterHex: string): Uint8Array => withFields(good, Array.from(fromHex(keyIdHex)), Array.from(fromHex(counterHex)));
        refusedWith(() => openEnvelope(good.subarray(0, 19), opts()), 'too-short', '19 bytes');
        refusedWith(() => openEnvelope(new Uint8Array(0), opts()), 'too-short', 'empty');
        refusedWith(() => openEnvelope(good, opts({ maxLength: good.length - 1 })), 'too-long', 'above maxLength');
        refusedWith(() => openEnvelope(new Uint8Array(70_000), opts()), 'too-long', '70,000 bytes');
        // Format 1 never shipped: its version byte is refused like any other unknown one.
        for (const version of [0, 1, 3, 0xff]) refusedWith(() => openEnvelope(mutate((b) => (b[0] = version)), opts()), 'unsupported-version', `version ${version}`);
        for (const s of [0, 4, 0x41, 0xff]) refusedWith(() => openEnvelope(mutate((b) => (b[1] = s)), opts()), 'suite-not-allowed', `suite ${s}`);
        refusedWith(() => openEnvelope(good, opts({ suites: [EnvelopeSuite.chacha20Poly1305] })), 'suite-not-allowed', 'clear text where encryption is required');
        // Key id: non-minimal, overlong, above 2^32 - 1, running into the tag.
        refusedWith(() => openEnvelope(fields('8100', '09'), opts()), 'bad-key-id', 'key id 1 in two bytes');
        refusedWith(() => openEnvelope(fields('8000', '09'), opts()), 'bad-key-id', 'key id 0 in two bytes');
        refusedWith(() => openEnvelope(fields('8180808000', '09'), opts()), 'bad-key-id', 'key id 1 in five bytes');
        refusedWith(() => openEnvelope(fields('ffffffff10', '09'), opts()), 'bad-key-id', 'key id 2^32');
        refusedWith(() => openEnvelope(fields('8180808080', '09'), opts()), 'bad-key-id', 'a sixth key id byte');
        refusedWith(() => openEnvelope(fields('ffffffff0f', '09'), opts()), 'unknown-key', 'key id 2^32 - 1 is well-formed (and unknown)');
        const keyIntoTag = new Uint8Array(20);
        keyIntoTag.set(Uint8Array.of(0x02, 0x01, 0x80, 0x80));
        keyIntoTag.fill(0x80, 4);
        refusedWith(() => openEnvelope(keyIntoTag, opts()), 'too-short', 'key id runs into the tag');
        // Counter: 0, non-minimal, above 2^53 - 1, overlong, running into the tag.
        refusedWith(() => openEnvelope(fields('01', '00'), opts()), 'bad-counter', 'counter 0');
        refusedWith(() => openEnvelope(fields('01', '8900'), opts()), 'bad-counter', 'counter 9 in two bytes');
        refusedWith(() => openEnvelope(fields('01', '8980808080808000'), opts()), 'bad-counter', 'counter 9 in eight bytes');
        refusedWith(() => openEnvelope(fields('01', '8080808080808010'), opts()), 'bad-counter', 'counter 2^53');
        refusedWith(() => openEnvelope(fields('01', '898080808080808000'), opts()), 'bad-counter', 'a ninth counter byte');
        refusedWith(() => openEnvelope(fields('01', 'ffffffffffffff0f'), opts()), 'bad-tag', 'counter 2^53 - 1 is well-formed (and not what the tag covers)');
        const counterIntoTag = new Uint8Array(20);
        counterIntoTag.set(Uint8Array.of(0x02, 0x01, 0x01, 0x89));
        counterIntoTag.fill(0xff, 4);
        refusedWith(() => openEnvelope(counterIntoTag, opts()), 'too-short', 'counter runs into the tag');
        // First failure wins, in byte order.
        refusedWith(
          () =>
            openEnvelope(
              mutate((b) => {
                b[0] = 1;
                b[2] = 0x81;
                b[3] = 0;
              }),
              opts(),
            ),
          'unsupported-version',
          'bad version before bad key id',
        );
        refusedWith(() => openEnvelope(fields('8100', '00'), opts()), 'bad-key-id', 'bad key id before bad counter');
        // Keys: key id 2 unknown; a device the lookup does not know; the device id of another known device (B): its keys, and the tag covers A's id.
        refusedWith(() => openEnvelope(mutate((b) => (b[2] = 2)), opts()), 'unknown-key', 'key id 2');
        refusedWith(() => openEnvelope(good, opts({ deviceId: Uint8Array.of(0xd1, 0, 0, 0, 0, 0, 0, 0x0c) })), 'unknown-key', 'unknown device');
        refusedWith(() => openEnvelope(good, opts({ deviceId: DEVICE_B })), 'bad-tag', 'A\'s record presented as B\'s');
        refusedWith(() => openEnvelope(mutate((b) => (b[good.length - 1] ^= 1)), opts()), 'bad-tag', 'tag bit');
        throws(() => openEnvelope('x' as unknown as Uint8Array, opts()), 'TypeError', 'not bytes');
        throws(() => openEnvelope(good, opts({ deviceId: undefined as unknown as Uint8Array })), 'TypeError', 'no device id');
        throws(() => openEnvelope(good, opts({ deviceId: new Uint8Array(7) })), 'RangeError', '7-byte device id');
        // All of those left a fresh window untouched, and the genuine one is still accepted.
        const window = new ReplayWindow();
        openEnvelope(good, opts({ replay: window }));
        equal(window.highest(), 9, 'accepted after the refusals');
      },
    },
    {
      name: 'the device id is implicit and authenticated: the same key with another device id fails the tag, in every suite; a re-encoded header fails too',
      run() {
        const f = fixture();
        for (const suite of TELEMETRY_SUITES) {
          const good = sealWithCounter(f.primitives, f.keysA, suite, 300, fixedBytes(12, 3));
          // A lookup that hands A's own keys for B: only the device id in the authenticated header differs.
          const relabelled = (deviceId: Uint8Array, keyId: number): DeviceKeys | undefined => (keyId === 1 ? { ...f.keysA, deviceId: deviceId.slice() } : undefined);
          refusedWith(() => openEnvelope(good, { primitives: f.primitives, keys: relabelled, deviceId: DEVICE_B, replay: new ReplayWindow() }), 'bad-tag', `${suiteName(suite)}: A's record, A's key, device id B`);
          equal(openEnvelope(good, { primitives: f.primitives, keys: relabelled, deviceId: DEVICE_A, replay: new ReplayWindow() }).counter, 300, `${suiteName(suite)}: accepted as A's`);
          // B's genuine record on A's topic.
          const ofB = sealWithCounter(f.primitives, f.keysB, suite, 301, fixedBytes(12, 3));
          refusedWith(() => openEnvelope(ofB, { primitives: f.primitives, keys: f.lookup, deviceId: DEVICE_A, replay: new ReplayWindow() }), 'bad-tag', `${suiteName(suite)}: B's record as A's`);
          // The header of the same values in other bytes (300 with a zero-padded varint) never reaches the tag.
          refusedWith(() => openEnvelope(withFields(good, [0x01], [0xac, 0x82, 0x00]), { primitives: f.primitives, keys: f.lookup, deviceId: DEVICE_A, replay: new ReplayWindow() }), 'bad-counter', `${suiteName(suite)}: counter 300 re-encoded`);
        }
      },
    },
    {
      name: 'every single-bit flip of a sealed envelope is refused before the window, for every suite',
      run() {
        const f = fixture();
        let flips = 0;
        for (const suite of TELEMETRY_SUITES) {
          const good = sealWithCounter(f.primitives, f.keysA, suite, 1000, fixedBytes(12, suite));
          const window = new ReplayWindow();
          const guard: ReplayGuard = { check: (c) => window.check(c), accept: () => ok(false, 'a flipped envelope reached accept') };
          for (let bit = 0; bit < good.length * 8; bit++) {
            const bad = good.slice();
            bad[bit >>> 3] ^= 1 << (bit & 7);
            try {
              openEnvelope(bad, { primitives: f.primitives, keys: f.lookup, deviceId: DEVICE_A, replay: guard });
              ok(false, `${suiteName(suite)}: bit ${bit} flipped was accepted`);
            } catch (error) {
              ok(error instanceof EnvelopeError, `bit ${bit}: ${String(error)}`);
              ok(error.code !== 'duplicate' && error.code !== 'stale', `bit ${bit}: refused by the window, not the tag`);
            }
            flips++;
          }
        }
        return { flips };
      },
    },
    {
      name: 'sealer: one counter value per seal; a counter source that repeats or leaves the range is refused (no nonce reuse)',
      run() {
        const f = fixture();
        const values = [5, 6, 6, 0, 2 ** 53, 1.5];
        const source: CounterSource = { next: () => values.shift() as number };
        const sealer = new EnvelopeSealer({ primitives: f.primitives, keys: f.keysA, counter: source, suite: EnvelopeSuite.chacha20Poly1305 });
        sealer.seal(new Uint8Array(1));
        sealer.seal(new Uint8Array(1));
        refusedWith(() => sealer.seal(new Uint8Array(1)), 'counter-not-increasing', 'repeat');
        refusedWith(() => sealer.seal(new Uint8Array(1)), 'counter-out-of-range', '0');
        refusedWith(() => sealer.seal(new Uint8Array(1)), 'counter-out-of-range', '2^53');
        refusedWith(() => sealer.seal(new Uint8Array(1)), 'counter-out-of-range', 'fraction');
        throws(() => new EnvelopeSealer({ primitives: f.primitives, keys: f.keysA, counter: source, suite: 0x41 as TelemetrySuite }), 'RangeError', 'command suite');
        throws(() => sealer.seal(new Uint8Array(0xffff - ENVELOPE_MAX_OVERHEAD + 1)), 'RangeError', 'payload too long (one byte above 65,535 - 31)');
        throws(() => deriveDeviceKeys(f.crypto, new Uint8Array(31), DEVICE_A, 1), 'RangeError', 'short secret');
        throws(() => deriveDeviceKeys(f.crypto, SECRET_A, new Uint8Array(7), 1), 'RangeError', 'short device id');
        throws(() => deriveDeviceKeys(f.crypto, SECRET_A, DEVICE_A, 2 ** 32), 'RangeError', 'key id');
      },
    },
    {
      name: 'keys: one per (direction, suite), bound to device id and key id',
      run() {
        const f = fixture();
        const k = f.keysA;
        const all = [k.upHmacSha256, k.upChacha20Poly1305, k.upAes256Gcm, k.downChacha20Poly1305].map(hex);
        equal(new Set(all).size, 4, 'four distinct keys');
        const rotated = deriveDeviceKeys(f.crypto, SECRET_A, DEVICE_A, 2);
        ok(hex(rotated.upHmacSha256) !== hex(k.upHmacSha256), 'a new key id gives new keys');
        const other = deriveDeviceKeys(f.crypto, SECRET_A, DEVICE_B, 1);
        ok(hex(other.upHmacSha256) !== hex(k.upHmacSha256), 'the same secret under another device id gives other keys');
      },
    },
    ...(['plain', 'strict'] as const).map((mode) =>
      exhaustiveCase(
        `no (key, nonce) pair is used twice: power cut at every flash operation while sealing, ${mode}, K=3, 60 seals, 10 per boot, sampled second cuts`,
        nonceScenario(fixture(), { mode, blockLength: 128, reserve: 3, total: 60, perSession: 10 }),
        { secondCuts: { sample: 2 } },
      ),
    ),
    {
      name: 'the nonce check catches a counter whose bound is not durable before its values are used',
      run(env) {
        const scenario = nonceScenario(fixture(), { mode: 'plain', blockLength: 128, reserve: 3, total: 60, perSession: 10, wrap: (flash) => new WriteBackFlash(flash), name: 'envelope nonce/write-back-flash' });
        const caught = caughtByInvariant(
          () => runExhaustive(scenario, runnerOptions(env, { saveFailureImage: () => undefined, secondCuts: 'none' })),
          /used twice/,
          'sealing over a counter whose bound was not durable',
        );
        return { caughtAtOperation: caught.cutPlans[0].atOperation };
      },
    },
    ...TELEMETRY_SUITES.map((suite) => ({
      name: `back after a long time offline (${suiteName(suite)}): counters far above the window, backlog in order with reorders, duplicates, replays, forgeries; ReplayStore on flash`,
      run(env: CaseEnv) {
        const f = fixture();
        const flash = env.createFlash({ blocks: 2, blockLength: 256, mode: 'plain' });
        ReplayStore.format(flash);
        const store = ReplayStore.open(flash);
        const script = backlogScript(f, { seed: 40 + suite, online: 20, backlog: 150, resumeAt: 3_000_000_000_000 + suite, reboots: 4, reserve: 4096, windowBits: 64, attacksPerRecord: 1, suite });
        const tally = runDeliveries(f, script, replayStoreGuard(store, 0));
        equal(tally.freshRejected, 0, 'fresh records refused');
        equal(tally.attacksAccepted, 0, 'attacks accepted');
        equal(tally.accepted, 170, 'every genuine record accepted once');
        // A restart of the receiver reopens nothing: every genuine record is refused afterwards.
        const reopened = ReplayStore.open(flash);
        const replays = script.filter((d) => d.kind === 'fresh').map((d) => ({ ...d, kind: 'replay' as const }));
        const after = runDeliveries(f, replays, replayStoreGuard(reopened, 0));
        equal(after.attacksAccepted, 0, 'replays accepted after the receiver restarted');
        return { deliveries: script.length, fresh: tally.fresh, reordered: tally.reordered, attacks: tally.attacks, replaysAfterRestart: after.attacks };
      },
    })),
    {
      name: 'freshness limit: a record delayed by W counter values or more is refused as stale, never accepted late',
      run() {
        const f = fixture();
        const window = new ReplayWindow({ bits: 64 });
        const options: OpenOptions = { primitives: f.primitives, keys: f.lookup, deviceId: DEVICE_A, replay: window };
        openEnvelope(sealWithCounter(f.primitives, f.keysA, EnvelopeSuite.hmacSha256, 100, new Uint8Array(1)), options);
        openEnvelope(sealWithCounter(f.primitives, f.keysA, EnvelopeSuite.hmacSha256, 37, new Uint8Array(1)), options); // 100 - 37 = 63 < 64: inside
        refusedWith(() => openEnvelope(sealWithCounter(f.primitives, f.keysA, EnvelopeSuite.hmacSha256, 36, new Uint8Array(1)), options), 'stale', '100 - 36 = 64');
      },
    },
    {
      name: 'commands: signed by the fleet key over the target device id (not on the wire), own counter; another device (bad signature), unknown key, bad signature, replay refused',
      run() {
        const f = fixture();
        const secret = fixedBytes(32, 0x42);
        const publicKey = ed.getPublicKey(secret);
        const keyId = commandKeyId(f.crypto, publicKey);
        const signer = plainCounter(1);
        const sign = ed25519Signer(secret);
        const window = new ReplayWindow();
        const opts = { primitives: f.primitives, deviceId: DEVICE_A, commandKeys: [{ keyId, publicKey }], replay: window };
        const command = sealCommand(fixedBytes(9, 1), { deviceId: DEVICE_A, counter: signer, keyId, sign });
        equal(command.length, 9 + commandOverhead(keyId, 1, false), 'command length');
        equal(command.length, 9 + 2 + varintLength(keyId) + 1 + 64, 'command length: header, payload, signature');
        equal(command[1], EnvelopeSuite.commandEd25519, 'suite byte');
        const opened = openCommand(command, opts);
        bytesEqual(opened.payload, fixedBytes(9, 1), 'payload');
        equal(opened.counter, 1, 'counter');
        refusedWith(() => openCommand(command, opts), 'duplicate', 'the same command again');
        const forB = sealCommand(new Uint8Array(3), { deviceId: DEVICE_B, counter: signer, keyId, sign });
        refusedWith(() => openCommand(forB, opts), 'bad-tag', 'command for B: the signature covers B\'s id');
        const unknown = sealCommand(new Uint8Array(3), { deviceId: DEVICE_A, counter: signer, keyId: (keyId ^ 1) >>> 0, sign });
        refusedWith(() => openCommand(unknown, opts), 'unknown-key', 'unknown command key');
        const tampered = sealCommand(Uint8Array.of(1, 2, 3), { deviceId: DEVICE_A, counter: signer, keyId, sign });
        tampered[headerLengthOf(tampered)] ^= 1;
        refusedWith(() => openCommand(tampered, opts), 'bad-tag', 'payload changed');
        const telemetry = sealWithCounter(f.primitives, f.keysA, EnvelopeSuite.hmacSha256, 999, new Uint8Array(70));
        refusedWith(() => openCommand(telemetry, opts), 'suite-not-allowed', 'telemetry where a command is expected');
        refusedWith(() => openEnvelope(command, { primitives: f.primitives, keys: f.lookup, deviceId: DEVICE_A, replay: new ReplayWindow() }), 'suite-not-allowed', 'command where telemetry is expected');
        equal(window.acceptedCount(), 1, 'only the genuine command moved the window');
        const later = sealCommand(new Uint8Array(1), { deviceId: DEVICE_A, counter: signer, keyId, sign });
        equal(openCommand(later, opts).counter, 5, 'the next genuine command is accepted');
        // Two trusted keys under one 4-byte key id: each is tried.
        const decoy = ed.getPublicKey(fixedBytes(32, 0x99));
        const shared = sealCommand(new Uint8Array(2), { deviceId: DEVICE_A, counter: signer, keyId, sign });
        equal(openCommand(shared, { ...opts, commandKeys: [{ keyId, publicKey: decoy }, { keyId, publicKey }] }).counter, 6, 'accepted under the second key of a shared key id');
        // The signed message is wire header || device id || payload (rebuilt here by hand).
        const signedFor = (deviceId: Uint8Array, envelope: Uint8Array): Uint8Array => {
          const h = headerLengthOf(envelope);
          const message = new Uint8Array(envelope.length - 64 + 8);
          message.set(envelope.subarray(0, h), 0);
          message.set(deviceId, h);
          message.set(envelope.subarray(h, envelope.length - 64), h + 8);
          return message;
        };
        ok(f.primitives.ed25519Verify(shared.subarray(shared.length - 64), signedFor(DEVICE_A, shared), publicKey), 'signature over wire header || device id || payload');
        ok(!f.primitives.ed25519Verify(shared.subarray(shared.length - 64), signedFor(DEVICE_B, shared), publicKey), 'not over another device id');
        throws(() => openCommand(shared, { ...opts, deviceId: new Uint8Array(9) }), 'RangeError', '9-byte device id');
      },
    },
    {
      name: 'encrypted commands (0x42): payload hidden, signed over the ciphertext, opened only with this device\'s down key; overhead header + 80 (at most 95)',
      run() {
        const f = fixture();
        const secret = fixedBytes(32, 0x43);
        const publicKey = ed.getPublicKey(secret);
        const keyId = commandKeyId(f.crypto, publicKey);
        const signer = plainCounter(100);
        const sign = ed25519Signer(secret);
        const window = new ReplayWindow();
        const opts = { primitives: f.primitives, deviceId: DEVICE_A, commandKeys: [{ keyId, publicKey }], replay: window, keys: f.keysA };
        const payload = fixedBytes(24, 5);
        const command = sealCommand(payload, { deviceId: DEVICE_A, counter: signer, keyId, sign, encrypt: { primitives: f.primitives, keys: f.keysA } });
        equal(command.length, 24 + commandOverhead(keyId, 100, true), 'length');
        equal(command[1], EnvelopeSuite.commandEd25519Chacha20Poly1305, 'suite byte');
        const h = headerLengthOf(command);
        ok(hex(command.subarray(h, h + 24)) !== hex(payload), 'payload in clear');
        // Sealed for B with B's down key and signed for B: A refuses it (the signature covers B's id).
        const forB = sealCommand(payload, { deviceId: DEVICE_B, counter: plainCounter(500), keyId, sign, encrypt: { primitives: f.primitives, keys: f.keysB } });
        refusedWith(() => openCommand(forB, opts), 'bad-tag', 'encrypted command for B');
        refusedWith(() => openCommand(command, { ...opts, keys: undefined }), 'unknown-key', 'no down key');
        refusedWith(() => openCommand(command, { ...opts, suites: [EnvelopeSuite.commandEd25519] }), 'suite-not-allowed', 'encrypted where only clear commands are accepted');
        equal(window.acceptedCount(), 0, 'refusals moved nothing');
        const opened = openCommand(command, opts);
        bytesEqual(opened.payload, payload, 'payload');
        equal(opened.suite, EnvelopeSuite.commandEd25519Chacha20Poly1305, 'suite');
        refusedWith(() => openCommand(command, opts), 'duplicate', 'again');
        // Signed by the fleet but encrypted under B's key: the signature holds, the AEAD tag does not.
        const misaddressed = sealCommand(payload, { deviceId: DEVICE_A, counter: signer, keyId, sign, encrypt: { primitives: f.primitives, keys: { ...f.keysB, deviceId: DEVICE_A } } });
        refusedWith(() => openCommand(misaddressed, opts), 'bad-tag', 'encrypted under another key');
        const flipped = sealCommand(payload, { deviceId: DEVICE_A, counter: signer, keyId, sign, encrypt: { primitives: f.primitives, keys: f.keysA } });
        flipped[headerLengthOf(flipped) + 9] ^= 4;
        refusedWith(() => openCommand(flipped, opts), 'bad-tag', 'ciphertext changed');
        equal(window.acceptedCount(), 1, 'one command accepted');
        return { encryptedCommandOverheadBytes: commandOverhead(keyId, 100, true), encryptedCommandMaxOverheadBytes: ENCRYPTED_COMMAND_MAX_OVERHEAD };
      },
    },
    ...TELEMETRY_SUITES.map((suite) => ({
      name: `seal cost, ${suiteName(suite)}, 1 record of 32 bytes (baseline for the 41-record case)`,
      run: () => sealRecords(suite, 1),
    })),
    ...TELEMETRY_SUITES.map((suite) => ({
      name: `seal cost, ${suiteName(suite)}, 41 records of 32 bytes`,
      run: () => sealRecords(suite, 41),
    })),
    {
      name: 'open cost, hmac-sha256, 40 records of 32 bytes with a window',
      run() {
        const f = fixture();
        const envelopes: Uint8Array[] = [];
        for (let i = 1; i <= 40; i++) envelopes.push(sealWithCounter(f.primitives, f.keysA, EnvelopeSuite.hmacSha256, i, fixedBytes(32, i)));
        const window = new ReplayWindow();
        for (const e of envelopes) openEnvelope(e, { primitives: f.primitives, keys: f.lookup, deviceId: DEVICE_A, replay: window });
        return { opened: envelopes.length };
      },
    },
  ],
};

function sealRecords(suite: TelemetrySuite, count: number): { sealed: number } {
  const f = fixture();
  const sealer = new EnvelopeSealer({ primitives: f.primitives, keys: f.keysA, counter: plainCounter(1), suite });
  const payload = fixedBytes(32, 9);
  for (let i = 0; i < count; i++) sealer.seal(payload);
  return { sealed: count };
}
