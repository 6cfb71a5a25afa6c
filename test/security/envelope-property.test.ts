/**
 * Node-only checks of the envelope (the shared cases in envelope.cases.ts
 * run in both engines): HKDF against RFC 5869's vectors and @noble/hashes,
 * the spec's derivation, varints, authenticated header and nonce rebuilt
 * independently, fast-check with random and mutated envelopes and
 * commands (non-canonical varints, single-bit flips, wrong device ids,
 * round trips of every suite at any key id and counter), and more than
 * 10,000 injected
 * replays, reorders and forgeries against a device back from a long time
 * offline (0 accepted, 0 fresh records refused).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { hmac } from '@noble/hashes/hmac.js';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { gcm } from '@noble/ciphers/aes.js';
import * as ed from '@noble/ed25519';
import { hkdfExpand, hkdfExtract, deriveDeviceKeys, ENVELOPE_HKDF_SALT, KEY_LABELS } from '../../firmware/security/envelope-keys.ts';
import { decodeHeader, EnvelopeError, envelopeOverhead, EnvelopeSuite, MAX_ENVELOPE_LENGTH, TELEMETRY_SUITES, type EnvelopeErrorCode, type TelemetrySuite } from '../../firmware/security/envelope-format.ts';
import type { DeviceKeys } from '../../firmware/security/envelope-keys.ts';
import { openEnvelope, sealWithCounter, replayStoreGuard, type OpenOptions } from '../../firmware/security/envelope.ts';
import { commandKeyId, ed25519Signer, openCommand, sealCommand } from '../../firmware/security/envelope-command.ts';
import { ReplayWindow } from '../../firmware/security/replay-window.ts';
import { ReplayStore } from '../../firmware/security/replay-store.ts';
import { SimFlash } from '../../tools/sim/flash/sim-flash.ts';
import { backlogScript, DEVICE_A, DEVICE_B, fixedBytes, fixture, leb128, plainCounter, runDeliveries, SECRET_A, withFields } from './envelope.cases.ts';

const fromHex = (text: string): Uint8Array => Uint8Array.from(text.match(/../g) ?? [], (b) => parseInt(b, 16));
const f = fixture();

/** The spec's wire header, read independently (BigInt, no shared code): { keyId, counter, length } or the refusal code. */
function readSpecHeader(bytes: Uint8Array, tagLength: number): { keyId: number; counter: number; length: number } | EnvelopeErrorCode {
  const end = bytes.length - tagLength;
  const varint = (at: number, max: number, maxValue: bigint): { value: bigint; next: number } | 'invalid' | 'truncated' => {
    let value = 0n;
    for (let i = 0; ; i++) {
      if (i === max) return 'invalid'; // overlong
      if (at + i >= end) return 'truncated';
      const b = bytes[at + i];
      value |= BigInt(b & 0x7f) << BigInt(7 * i);
      if (b < 0x80) {
        if (b === 0 && i > 0) return 'invalid'; // non-minimal
        return value > maxValue ? 'invalid' : { value, next: at + i + 1 };
      }
    }
  };
  const key = varint(2, 5, 0xffff_ffffn);
  if (key === 'truncated') return 'too-short';
  if (key === 'invalid') return 'bad-key-id';
  const counter = varint(key.next, 8, BigInt(Number.MAX_SAFE_INTEGER));
  if (counter === 'truncated') return 'too-short';
  if (counter === 'invalid' || counter.value === 0n) return 'bad-counter';
  return { keyId: Number(key.value), counter: Number(counter.value), length: counter.next };
}

describe('key derivation', () => {
  it('HKDF-SHA-256 on the HAL HMAC matches RFC 5869 appendix A.1-A.3', () => {
    const vectors = [
      { ikm: '0b'.repeat(22), salt: '000102030405060708090a0b0c', info: 'f0f1f2f3f4f5f6f7f8f9', length: 42, okm: '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865' },
      {
        ikm: Array.from({ length: 80 }, (_, i) => i.toString(16).padStart(2, '0')).join(''),
        salt: Array.from({ length: 80 }, (_, i) => (0x60 + i).toString(16).padStart(2, '0')).join(''),
        info: Array.from({ length: 80 }, (_, i) => (0xb0 + i).toString(16).padStart(2, '0')).join(''),
        length: 82,
        okm: 'b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87',
      },
      { ikm: '0b'.repeat(22), salt: '', info: '', length: 42, okm: '8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8' },
    ];
    for (const v of vectors) {
      const prk = hkdfExtract(f.crypto, fromHex(v.salt), fromHex(v.ikm));
      assert.equal(Buffer.from(hkdfExpand(f.crypto, prk, fromHex(v.info), v.length)).toString('hex'), v.okm);
    }
  });

  it('HKDF matches @noble/hashes for random inputs and lengths', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), fc.uint8Array({ maxLength: 80 }), fc.uint8Array({ maxLength: 80 }), fc.integer({ min: 1, max: 300 }), (ikm, salt, info, length) => {
        const ours = hkdfExpand(f.crypto, hkdfExtract(f.crypto, salt, ikm), info, length);
        assert.deepEqual(ours, hkdf(sha256, ikm, salt, info, length));
      }),
      { numRuns: 200 },
    );
  });

  it('deriveDeviceKeys is exactly the spec: HKDF(salt, secret, label || 0x00 || device id || key id LE, 32)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 64 }), fc.uint8Array({ minLength: 8, maxLength: 8 }), fc.integer({ min: 0, max: 0xffff_ffff }), (secret, deviceId, keyId) => {
        const keys = deriveDeviceKeys(f.crypto, secret, deviceId, keyId);
        const info = (label: string): Uint8Array => {
          const keyIdBytes = Buffer.alloc(4);
          keyIdBytes.writeUInt32LE(keyId);
          return Buffer.concat([Buffer.from(label, 'ascii'), Buffer.of(0), deviceId, keyIdBytes]);
        };
        const salt = Buffer.from(ENVELOPE_HKDF_SALT, 'ascii');
        assert.deepEqual(keys.upHmacSha256, hkdf(sha256, secret, salt, info(KEY_LABELS.upHmacSha256), 32));
        assert.deepEqual(keys.upChacha20Poly1305, hkdf(sha256, secret, salt, info(KEY_LABELS.upChacha20Poly1305), 32));
        assert.deepEqual(keys.upAes256Gcm, hkdf(sha256, secret, salt, info(KEY_LABELS.upAes256Gcm), 32));
        assert.deepEqual(keys.downChacha20Poly1305, hkdf(sha256, secret, salt, info(KEY_LABELS.downChacha20Poly1305), 32));
      }),
      { numRuns: 50 },
    );
  });
});

describe('the bytes, rebuilt from the spec with @noble directly', () => {
  it('header = 02, suite, LEB128 key id, LEB128 counter; tag and ciphertext equal HMAC(header || device id || payload)[0..16) and AEAD(key, counter as 12-byte LE nonce, AAD = header || device id)', () => {
    const keyCache = new Map<number, DeviceKeys>();
    const keysOf = (keyId: number): DeviceKeys => {
      let keys = keyCache.get(keyId);
      if (!keys) keyCache.set(keyId, (keys = deriveDeviceKeys(f.crypto, SECRET_A, DEVICE_A, keyId)));
      return keys;
    };
    fc.assert(
      fc.property(
        fc.constantFrom(...TELEMETRY_SUITES),
        fc.oneof(fc.constantFrom(0, 1, 127, 128, 0xffff_ffff), fc.integer({ min: 0, max: 0xffff_ffff })),
        fc.oneof(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), fc.constantFrom(1_000_000, Number.MAX_SAFE_INTEGER)),
        fc.uint8Array({ maxLength: 300 }),
        (suite, keyId, counter, payload) => {
          const keys = keysOf(keyId);
          const envelope = sealWithCounter(f.primitives, keys, suite, counter, payload);
          const expectedHeader = Uint8Array.from([0x02, suite, ...leb128(keyId), ...leb128(counter)]);
          const h = expectedHeader.length;
          assert.deepEqual(envelope.subarray(0, h), expectedHeader);
          const parsed = readSpecHeader(envelope, 16);
          assert.deepEqual(parsed, { keyId, counter, length: h });
          const aad = Buffer.concat([expectedHeader, DEVICE_A]);
          const nonce = Buffer.alloc(12);
          nonce.writeBigUInt64LE(BigInt(counter), 0); // bytes 7..11 stay 0: counter < 2^53
          if (suite === EnvelopeSuite.hmacSha256) {
            assert.deepEqual(envelope.subarray(h, h + payload.length), payload);
            assert.deepEqual(envelope.subarray(h + payload.length), hmac(sha256, keys.upHmacSha256, Buffer.concat([aad, payload])).subarray(0, 16));
          } else if (suite === EnvelopeSuite.chacha20Poly1305) {
            assert.deepEqual(envelope.subarray(h), chacha20poly1305(keys.upChacha20Poly1305, nonce, aad).encrypt(payload));
          } else {
            assert.deepEqual(envelope.subarray(h), gcm(keys.upAes256Gcm, nonce, aad).encrypt(payload));
          }
          assert.equal(envelope.length, payload.length + envelopeOverhead(keyId, counter));
          assert.ok(envelope.length - payload.length <= 31);
          // Round trip at this key id and counter.
          const opened = openEnvelope(envelope, { primitives: f.primitives, keys: (_d, k) => (k === keyId ? keys : undefined), deviceId: DEVICE_A, replay: new ReplayWindow() });
          assert.deepEqual(opened.payload, payload);
          assert.equal(opened.counter, counter);
          assert.equal(opened.keyId, keyId);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('encrypted commands, rebuilt from the spec', () => {
  it('ciphertext = ChaCha20-Poly1305(K_down, counter (7 LE) || key id (4 LE) || 0, AAD = header || device id); signature over header || device id || ciphertext || tag', () => {
    const secret = fixedBytes(32, 0x44);
    const publicKey = ed.getPublicKey(secret);
    const keyId = commandKeyId(f.crypto, publicKey);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), fc.uint8Array({ maxLength: 64 }), (counter, payload) => {
        const command = sealCommand(payload, { deviceId: DEVICE_A, counter: { next: () => counter }, keyId, sign: ed25519Signer(secret), encrypt: { primitives: f.primitives, keys: f.keysA } });
        const nonce = Buffer.alloc(12);
        nonce.writeBigUInt64LE(BigInt(counter), 0);
        nonce.writeUInt32LE(keyId, 7);
        const end = command.length - 64;
        const header = Uint8Array.from([0x02, 0x42, ...leb128(keyId), ...leb128(counter)]);
        const h = header.length;
        assert.deepEqual(command.subarray(0, h), header);
        const aad = Buffer.concat([header, DEVICE_A]);
        assert.deepEqual(command.subarray(h, end), chacha20poly1305(f.keysA.downChacha20Poly1305, nonce, aad).encrypt(payload));
        assert.ok(ed.verify(command.subarray(end), Buffer.concat([aad, command.subarray(h, end)]), publicKey));
        assert.ok(!ed.verify(command.subarray(end), Buffer.concat([header, DEVICE_B, command.subarray(h, end)]), publicKey));
        const opened = openCommand(command, { primitives: f.primitives, deviceId: DEVICE_A, commandKeys: [{ keyId, publicKey }], replay: new ReplayWindow(), keys: f.keysA });
        assert.deepEqual(opened.payload, payload);
      }),
      { numRuns: 30 },
    );
  });
});

describe('decoders under random and mutated input', () => {
  const options = (replay: ReplayWindow, suites?: readonly TelemetrySuite[]): OpenOptions => ({ primitives: f.primitives, keys: f.lookup, deviceId: DEVICE_A, replay, suites });

  it('random bytes: only typed EnvelopeErrors, nothing accepted, the window never moves', () => {
    const window = new ReplayWindow();
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }),
          // Random bodies behind a plausible header, to get past the early checks.
          fc.tuple(fc.constantFrom(...TELEMETRY_SUITES), fc.integer({ min: 1, max: 2 ** 40 }), fc.uint8Array({ minLength: 16, maxLength: 200 })).map(([suite, counter, body]) => {
            const e = sealWithCounter(f.primitives, f.keysA, suite, counter, new Uint8Array(0));
            const h = e.length - 16;
            const out = new Uint8Array(h + body.length);
            out.set(e.subarray(0, h));
            out.set(body, h);
            return out;
          }),
          // Version and suite right, then random header bytes: every varint shape.
          fc.tuple(fc.constantFrom(...TELEMETRY_SUITES), fc.uint8Array({ minLength: 18, maxLength: 60 })).map(([suite, rest]) => Uint8Array.from([0x02, suite, ...rest])),
        ),
        (bytes) => {
          try {
            openEnvelope(bytes, options(window));
            assert.fail('random bytes accepted');
          } catch (error) {
            assert.ok(error instanceof EnvelopeError, String(error));
          }
          assert.equal(window.acceptedCount(), 0);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('mutated genuine envelopes (byte edits, truncation, extension, splices): refused unless the bytes are unchanged', () => {
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('extend' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 20 }) }),
      fc.record({ kind: fc.constant('splice' as const), at: fc.nat(), from: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.constantFrom(...TELEMETRY_SUITES), fc.integer({ min: 1, max: 2 ** 52 }), fc.uint8Array({ maxLength: 64 }), fc.array(mutation, { minLength: 1, maxLength: 4 }), (suite, counter, payload, edits) => {
        const genuine = sealWithCounter(f.primitives, f.keysA, suite, counter, payload);
        const other = sealWithCounter(f.primitives, f.keysA, suite, counter + 1, payload);
        let bytes = genuine.slice();
        for (const edit of edits) {
          if (edit.kind === 'set' && bytes.length > 0) bytes[edit.at % bytes.length] = edit.value;
          else if (edit.kind === 'truncate') bytes = bytes.slice(0, edit.at % (bytes.length + 1));
          else if (edit.kind === 'extend') bytes = Uint8Array.from([...bytes, ...edit.bytes]);
          else if (edit.kind === 'splice' && bytes.length > 0) {
            // A piece of another genuine envelope (same device, key, suite) pasted in.
            const at = edit.at % bytes.length;
            const piece = other.subarray(edit.from % other.length);
            bytes.set(piece.subarray(0, bytes.length - at), at);
          }
        }
        const unchanged = bytes.length === genuine.length && bytes.every((b, i) => b === genuine[i]);
        const same = bytes.length === other.length && bytes.every((b, i) => b === other[i]);
        const window = new ReplayWindow();
        try {
          const opened = openEnvelope(bytes, options(window));
          assert.ok(unchanged || same, `mutated envelope accepted as counter ${opened.counter}`);
        } catch (error) {
          assert.ok(error instanceof EnvelopeError, String(error));
          assert.ok(!unchanged && !same, `genuine envelope refused: ${error.code}`);
          assert.equal(window.acceptedCount(), 0);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('commands: random mutations of a signed command are never accepted', () => {
    const secret = fixedBytes(32, 0x42);
    const publicKey = ed.getPublicKey(secret);
    const keyId = commandKeyId(f.crypto, publicKey);
    const sign = ed25519Signer(secret);
    const counter = plainCounter(1);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.nat(), fc.integer({ min: 1, max: 255 }), (payload, at, xor) => {
        const command = sealCommand(payload, { deviceId: DEVICE_A, counter, keyId, sign });
        const bad = command.slice();
        bad[at % bad.length] ^= xor;
        const window = new ReplayWindow();
        assert.throws(() => openCommand(bad, { primitives: f.primitives, deviceId: DEVICE_A, commandKeys: [{ keyId, publicKey }], replay: window }), EnvelopeError);
        assert.equal(window.acceptedCount(), 0);
        assert.equal(openCommand(command, { primitives: f.primitives, deviceId: DEVICE_A, commandKeys: [{ keyId, publicKey }], replay: window }).counter, counter.value);
      }),
      { numRuns: 150 },
    );
  });
});

describe('format 2: canonical varints, the implicit device id, single-bit flips', () => {
  const counting = (): { primitives: typeof f.primitives; calls: () => number } => {
    let calls = 0;
    const count = <A extends unknown[], R>(fn: (...args: A) => R) => (...args: A): R => {
      calls++;
      return fn(...args);
    };
    return {
      primitives: { hmacSha256: count(f.primitives.hmacSha256), aeadSeal: count(f.primitives.aeadSeal), aeadOpen: count(f.primitives.aeadOpen), ed25519Verify: count(f.primitives.ed25519Verify) },
      calls: () => calls,
    };
  };

  it('decodeHeader agrees with an independent reading of the spec on random header bytes (code or fields)', () => {
    fc.assert(
      fc.property(fc.constantFrom(...TELEMETRY_SUITES), fc.uint8Array({ minLength: 0, maxLength: 14 }), fc.nat({ max: 8 }), (suite, headerBytes, payloadLength) => {
        const bytes = Uint8Array.from([0x02, suite, ...headerBytes, ...new Uint8Array(payloadLength), ...new Uint8Array(16)]);
        if (bytes.length < 20) return;
        const spec = readSpecHeader(bytes, 16);
        let ours: ReturnType<typeof readSpecHeader>;
        try {
          const header = decodeHeader(bytes, TELEMETRY_SUITES, MAX_ENVELOPE_LENGTH);
          ours = { keyId: header.keyId, counter: header.counter, length: header.headerLength };
          assert.equal(header.tagOffset, bytes.length - 16);
        } catch (error) {
          assert.ok(error instanceof EnvelopeError, String(error));
          ours = error.code;
        }
        assert.deepEqual(ours, spec);
      }),
      { numRuns: 5000 },
    );
  });

  it('a genuine record with its key id or counter re-encoded non-canonically (padded with 0x80 .. 0x00, any length) is refused before any cryptography', () => {
    fc.assert(
      fc.property(fc.constantFrom(...TELEMETRY_SUITES), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), fc.boolean(), fc.integer({ min: 1, max: 8 }), fc.uint8Array({ maxLength: 20 }), (suite, counter, padKeyId, extra, payload) => {
        const genuine = sealWithCounter(f.primitives, f.keysA, suite, counter, payload);
        const pad = (field: number[]): number[] => {
          const out = field.slice();
          out[out.length - 1] |= 0x80;
          for (let i = 1; i < extra; i++) out.push(0x80);
          out.push(0);
          return out;
        };
        const keyField = leb128(f.keysA.keyId);
        const counterField = leb128(counter);
        const bad = withFields(genuine, padKeyId ? pad(keyField) : keyField, padKeyId ? counterField : pad(counterField));
        const c = counting();
        try {
          openEnvelope(bad, { primitives: c.primitives, keys: f.lookup, deviceId: DEVICE_A, replay: new ReplayWindow() });
          assert.fail('non-canonical header accepted');
        } catch (error) {
          assert.ok(error instanceof EnvelopeError, String(error));
          assert.equal(error.code, padKeyId ? 'bad-key-id' : 'bad-counter');
        }
        assert.equal(c.calls(), 0, 'no primitive called');
      }),
      { numRuns: 1000 },
    );
  });

  it('any single-bit flip of any telemetry envelope or command is refused, never by the window', () => {
    const secret = fixedBytes(32, 0x45);
    const publicKey = ed.getPublicKey(secret);
    const keyId = commandKeyId(f.crypto, publicKey);
    const sign = ed25519Signer(secret);
    fc.assert(
      fc.property(fc.constantFrom(...TELEMETRY_SUITES, 0x41, 0x42), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), fc.uint8Array({ maxLength: 40 }), fc.nat(), (suite, counter, payload, bitSeed) => {
        const isCommand = suite === 0x41 || suite === 0x42;
        const genuine = isCommand
          ? sealCommand(payload, { deviceId: DEVICE_A, counter: { next: () => counter }, keyId, sign, encrypt: suite === 0x42 ? { primitives: f.primitives, keys: f.keysA } : undefined })
          : sealWithCounter(f.primitives, f.keysA, suite as TelemetrySuite, counter, payload);
        const bit = bitSeed % (genuine.length * 8);
        const bad = genuine.slice();
        bad[bit >>> 3] ^= 1 << (bit & 7);
        const window = new ReplayWindow();
        const guard = { check: (c: number) => window.check(c), accept: () => assert.fail('a flipped envelope reached accept') };
        try {
          if (isCommand) openCommand(bad, { primitives: f.primitives, deviceId: DEVICE_A, commandKeys: [{ keyId, publicKey }], replay: guard, keys: f.keysA });
          else openEnvelope(bad, { primitives: f.primitives, keys: f.lookup, deviceId: DEVICE_A, replay: guard });
          assert.fail(`bit ${bit} flipped was accepted`);
        } catch (error) {
          assert.ok(error instanceof EnvelopeError, String(error));
          assert.ok(error.code !== 'duplicate' && error.code !== 'stale', `bit ${bit}: ${error.code}`);
        }
      }),
      { numRuns: 1500 },
    );
  });

  it('the wrong device id is refused: any other 8 bytes, even with the right key handed over (the tag covers the id), and commands for any other device', () => {
    const secret = fixedBytes(32, 0x46);
    const publicKey = ed.getPublicKey(secret);
    const keyId = commandKeyId(f.crypto, publicKey);
    const sign = ed25519Signer(secret);
    fc.assert(
      fc.property(fc.constantFrom(...TELEMETRY_SUITES), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ minLength: 8, maxLength: 8 }), fc.boolean(), (suite, counter, payload, other, encrypt) => {
        fc.pre(!other.every((b, i) => b === DEVICE_A[i]));
        const genuine = sealWithCounter(f.primitives, f.keysA, suite, counter, payload);
        const relabelled = (deviceId: Uint8Array, k: number): DeviceKeys | undefined => (k === 1 ? { ...f.keysA, deviceId: deviceId.slice() } : undefined);
        assert.throws(() => openEnvelope(genuine, { primitives: f.primitives, keys: relabelled, deviceId: other, replay: new ReplayWindow() }), (e: unknown) => e instanceof EnvelopeError && e.code === 'bad-tag');
        assert.equal(openEnvelope(genuine, { primitives: f.primitives, keys: relabelled, deviceId: DEVICE_A, replay: new ReplayWindow() }).counter, counter);
        const command = sealCommand(payload, { deviceId: other, counter: { next: () => counter }, keyId, sign, encrypt: encrypt ? { primitives: f.primitives, keys: { ...f.keysA, deviceId: other } } : undefined });
        assert.throws(
          () => openCommand(command, { primitives: f.primitives, deviceId: DEVICE_A, commandKeys: [{ keyId, publicKey }], replay: new ReplayWindow(), keys: f.keysA }),
          (e: unknown) => e instanceof EnvelopeError && e.code === 'bad-tag',
        );
      }),
      { numRuns: 300 },
    );
  });
});

describe('a device back after a long time offline: at least 10,000 injected replays, reorders and forgeries', () => {
  for (const suite of TELEMETRY_SUITES) {
    it(`suite 0x${suite.toString(16)}: window in RAM and ReplayStore on flash, 0 accepted, 0 fresh refused`, (t) => {
      const script = backlogScript(f, { seed: 900 + suite, online: 200, backlog: 4000, resumeAt: 5_000_000_000_000, reboots: 40, reserve: 4096, windowBits: 64, attacksPerRecord: 3, suite });
      const inRam = runDeliveries(f, script, new ReplayWindow({ bits: 64 }));
      const flash = new SimFlash({ blocks: 2, blockLength: 4096, mode: 'plain' });
      ReplayStore.format(flash);
      const onFlash = runDeliveries(f, script, replayStoreGuard(ReplayStore.open(flash), 0));
      for (const tally of [inRam, onFlash]) {
        assert.equal(tally.attacksAccepted, 0);
        assert.equal(tally.freshRejected, 0);
        assert.equal(tally.accepted, 4200);
        assert.ok(tally.attacks >= 10_000, `${tally.attacks} attacks`);
        assert.ok(tally.reordered >= 100, `${tally.reordered} reordered`);
      }
      t.diagnostic(`deliveries=${script.length} fresh=${inRam.fresh} reordered=${inRam.reordered} attacks=${inRam.attacks} refusedBy=${JSON.stringify(inRam.refusedBy)}`);
    });
  }
});
