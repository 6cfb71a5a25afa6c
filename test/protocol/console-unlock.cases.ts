/**
 * The console's challenge–response unlock (firmware/security/console-unlock.ts,
 * docs/spec/console.md "Unlock") in Node and in XS: a fresh response
 * unlocks; a replayed one, one by another key, one for another challenge and
 * one after the challenge's lifetime are refused; the unlock ends on the
 * monotonic clock (across the 2^32 tick wrap) or at lock(); challenge
 * numbers come from the persistent counter, so they keep rising across a
 * reboot (a fresh instance over the same flash) and a response captured
 * before the reboot does not answer a challenge after it.
 */
import * as ed from '@noble/ed25519';
import { configureEd25519, createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { ConsoleUnlock, CONSOLE_NONCE_LENGTH, decodeConsoleChallenge, encodeConsoleChallenge, type ConsoleUnlockOptions } from '../../firmware/security/console-unlock.ts';
import { keyIdOf } from '../../firmware/security/verify.ts';
import { Counter } from '../../firmware/storage/counter.ts';
import { equal, ok, throws } from '../support/check.ts';
import type { CaseEnv, CaseSuite } from '../support/cases.ts';

const SEED = new Uint8Array(32).map((_, i) => (i * 11 + 1) & 0xff);
const OTHER = new Uint8Array(32).fill(0x42);

function sign(seed: Uint8Array, message: Uint8Array): Uint8Array {
  configureEd25519();
  return ed.sign(message, seed);
}

function publicKey(seed: Uint8Array): Uint8Array {
  configureEd25519();
  return ed.getPublicKey(seed);
}

interface Fixture {
  unlock: ConsoleUnlock;
  clock: { now: number };
  numbers: number[];
}

function fixture(overrides: Partial<ConsoleUnlockOptions> = {}, start = 5_000): Fixture {
  const clock = { now: start };
  const numbers: number[] = [];
  let next = 100;
  let nonce = 0;
  const unlock = new ConsoleUnlock({
    crypto: createNobleCrypto(),
    entropy: { fill: (t) => t.fill(++nonce) },
    clock: { ticks: () => clock.now % 0x1_0000_0000 },
    deviceId: 'pump-17',
    consoleKey: publicKey(SEED),
    numbers: {
      next: () => {
        numbers.push(++next);
        return next;
      },
    },
    challengeTtlMs: 30_000,
    unlockMs: 120_000,
    ...overrides,
  });
  return { unlock, clock, numbers };
}

function answer(f: Fixture, seed = SEED): ReturnType<ConsoleUnlock['respond']> {
  const c = f.unlock.challenge();
  return f.unlock.respond(c.number, sign(seed, c.bytes));
}

export const suite: CaseSuite = {
  name: 'console unlock',
  cases: [
    {
      name: 'challenge bytes: HFCU, version 1, device id, the number (u64 LE), 16 random bytes; decoded back',
      run() {
        const f = fixture();
        const c = f.unlock.challenge();
        equal(c.bytes.length, 4 + 1 + 1 + 7 + 8 + CONSOLE_NONCE_LENGTH, 'length');
        equal(String.fromCharCode(c.bytes[0], c.bytes[1], c.bytes[2], c.bytes[3]), 'HFCU', 'magic');
        equal(c.bytes[4], 1, 'version');
        equal(c.bytes[5], 7, 'device id length');
        equal(c.bytes[13], 101, 'number low byte');
        const d = decodeConsoleChallenge(c.bytes);
        ok(d !== undefined, 'decodes');
        equal(d.deviceId, 'pump-17', 'device id');
        equal(d.number, 101, 'number');
        equal(d.nonce[0], 1, 'nonce from the entropy HAL');
        const big = encodeConsoleChallenge(new Uint8Array([0x61]), 2 ** 53 - 1, new Uint8Array(16));
        equal(decodeConsoleChallenge(big)?.number, 2 ** 53 - 1, 'the largest number round-trips');
        const tampered = c.bytes.slice();
        tampered[4] = 2;
        equal(decodeConsoleChallenge(tampered), undefined, 'another version is not a challenge');
        equal(decodeConsoleChallenge(c.bytes.subarray(0, c.bytes.length - 1)), undefined, 'a short one is not');
        throws(() => fixture({ deviceId: 'bad id' }), 'RangeError', 'a device id with a space is refused');
      },
    },
    {
      name: 'a fresh response unlocks; the result names the key (first 4 bytes of its id) and the challenge number',
      run() {
        const f = fixture();
        equal(f.unlock.unlocked(), false, 'locked at start');
        const result = answer(f);
        ok(result.ok, `unlocked: ${JSON.stringify(result)}`);
        const id = keyIdOf(createNobleCrypto(), publicKey(SEED));
        equal(result.keyId, ((id[0] << 24) | (id[1] << 16) | (id[2] << 8) | id[3]) >>> 0, 'key id');
        equal(result.number, 101, 'challenge number');
        equal(f.unlock.unlocked(), true, 'unlocked');
        equal(f.unlock.remainingMs(), 120_000, 'for the whole unlock time');
      },
    },
    {
      name: 'a replayed response is refused (the challenge answers once), also after a new challenge',
      run() {
        const f = fixture();
        const c = f.unlock.challenge();
        const signature = sign(SEED, c.bytes);
        ok(f.unlock.respond(c.number, signature).ok, 'first use unlocks');
        equal(JSON.stringify(f.unlock.respond(c.number, signature)), JSON.stringify({ ok: false, reason: 'no-challenge' }), 'the same response at once again');
        f.unlock.lock();
        equal(JSON.stringify(f.unlock.respond(c.number, signature)), JSON.stringify({ ok: false, reason: 'no-challenge' }), 'replay without a challenge');
        const again = f.unlock.challenge();
        ok(again.number > c.number, 'the next challenge has a larger number');
        equal(JSON.stringify(f.unlock.respond(c.number, signature)), JSON.stringify({ ok: false, reason: 'wrong-challenge' }), 'replay against a new challenge');
        equal(JSON.stringify(f.unlock.respond(again.number, sign(SEED, again.bytes))), JSON.stringify({ ok: false, reason: 'no-challenge' }), 'a failed try consumed that challenge too');
        equal(f.unlock.unlocked(), false, 'still locked');
      },
    },
    {
      name: 'a response by another key, a truncated or altered signature, or a signature over other bytes is refused',
      run() {
        const f = fixture();
        equal(JSON.stringify(answer(f, OTHER)), JSON.stringify({ ok: false, reason: 'bad-signature' }), 'another key');
        let c = f.unlock.challenge();
        equal(f.unlock.respond(c.number, sign(SEED, c.bytes).subarray(0, 63)).ok, false, 'truncated');
        c = f.unlock.challenge();
        const altered = sign(SEED, c.bytes);
        altered[10] ^= 0x04;
        equal(f.unlock.respond(c.number, altered).ok, false, 'altered');
        c = f.unlock.challenge();
        const other = c.bytes.slice();
        other[other.length - 1] ^= 1;
        equal(f.unlock.respond(c.number, sign(SEED, other)).ok, false, 'over other bytes');
        equal(f.unlock.unlocked(), false, 'locked');
        const none = fixture({ consoleKey: undefined });
        equal(none.unlock.provisioned, false, 'no key provisioned');
        equal(JSON.stringify(answer(none)), JSON.stringify({ ok: false, reason: 'no-key' }), 'no key: refused');
      },
    },
    {
      name: 'a challenge older than its lifetime on the monotonic clock is refused; at exactly the lifetime it is accepted',
      run() {
        const f = fixture();
        let c = f.unlock.challenge();
        f.clock.now += 30_001;
        equal(JSON.stringify(f.unlock.respond(c.number, sign(SEED, c.bytes))), JSON.stringify({ ok: false, reason: 'stale-challenge' }), 'stale');
        c = f.unlock.challenge();
        f.clock.now += 30_000;
        ok(f.unlock.respond(c.number, sign(SEED, c.bytes)).ok, 'at the lifetime: accepted');
      },
    },
    {
      name: 'the unlock ends on the monotonic clock, across the 2^32 tick wrap, and at lock()',
      run() {
        const f = fixture({}, 0xffff_0000);
        ok(answer(f).ok, 'unlocked just before the wrap');
        f.clock.now += 100_000; // the ticks wrap past 0
        equal(f.unlock.remainingMs(), 20_000, 'time counted across the wrap');
        equal(f.unlock.unlocked(), true, 'still unlocked');
        f.clock.now += 20_000;
        equal(f.unlock.unlocked(), false, 'ended after exactly the unlock time');
        ok(answer(f).ok, 'unlocked again');
        f.unlock.lock();
        equal(f.unlock.unlocked(), false, 'lock() ends it');
        const slow = fixture();
        ok(answer(slow).ok, 'unlocked');
        for (let i = 0; i < 10; i++) {
          slow.clock.now += 11_999;
          ok(slow.unlock.unlocked(), `poll ${i}: still unlocked`);
        }
        slow.clock.now += 10;
        equal(slow.unlock.unlocked(), false, 'polled in small steps: ends at the same total');
      },
    },
    {
      name: 'challenge numbers from the persistent counter keep rising across a reboot; a response from before it answers nothing after',
      run(env: CaseEnv) {
        const flash = env.createFlash({ blocks: 2, blockLength: 1024 });
        Counter.format(flash);
        const boot = (): ConsoleUnlock => {
          const counter = Counter.open(flash, { reserve: 4 });
          return new ConsoleUnlock({ crypto: createNobleCrypto(), entropy: { fill: (t) => t.fill(7) }, clock: { ticks: () => 0 }, deviceId: 'pump-17', consoleKey: publicKey(SEED), numbers: counter });
        };
        let unlock = boot();
        const before = unlock.challenge();
        const captured = sign(SEED, before.bytes);
        unlock = boot(); // reboot: the outstanding challenge is gone, the counter resumes above its bound
        equal(JSON.stringify(unlock.respond(before.number, captured)), JSON.stringify({ ok: false, reason: 'no-challenge' }), 'nothing outstanding after a reboot');
        const after = unlock.challenge();
        ok(after.number > before.number, `number ${after.number} above ${before.number}`);
        equal(unlock.respond(before.number, captured).ok, false, 'the captured response does not answer the new challenge');
        equal(unlock.unlocked(), false, 'locked after a reboot');
        return { before: before.number, after: after.number };
      },
    },
  ],
};
