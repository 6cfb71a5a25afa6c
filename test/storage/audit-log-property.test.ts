/**
 * Property tests (fast-check) for the audit log's decoders (Node): event
 * bodies, entries, block headers, export files, and AuditLog.open + read
 * over arbitrary partition contents. Each decoder gets random and mutated
 * bytes and must return a value or throw its own typed error, never
 * anything else, and never hang; what its encoder wrote round-trips, and
 * every single-bit error in an entry is caught.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { AUDIT_KIND_CODES, AUDIT_MAX_BODY, AuditDecodeError, decodeAuditEvent, encodeAuditEvent, type AuditEvent } from '../../firmware/storage/_audit-events.ts';
import { AUDIT_HEADER_LENGTH, decodeHeader, encodeEntry, encodeHeader, readEntry, tagChecks } from '../../firmware/storage/_audit-format.ts';
import { AuditLog } from '../../firmware/storage/audit-log.ts';
import { StorageError } from '../../firmware/storage/errors.ts';
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { SimFlash } from '../../tools/sim/flash/sim-flash.ts';
import { encodeExport } from '../../tools/audit/export.ts';
import { verifyExport } from '../../tools/audit/verify.ts';
import { BudgetFlash, Hang } from '../support/budget-flash.ts';
import { auditEventFor } from './audit-log.cases.ts';

const RUNS = Number(process.env.HOLDFAST_RUNS ?? 300);
const crypto = createNobleCrypto();
const KEY = new Uint8Array(32).fill(0x5a);
const CODES = Object.values(AUDIT_KIND_CODES);

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u53 = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const i53 = fc.integer({ min: -Number.MAX_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER });
const token = fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789._-'), minLength: 1, maxLength: 24 });
const optU32 = fc.option(fc.integer({ min: 0, max: 0xfffffffe }), { nil: null });
const u8 = fc.integer({ min: 0, max: 255 });

const eventArb: fc.Arbitrary<AuditEvent> = fc.oneof(
  fc.record({ kind: fc.constant('update-staged' as const), imageVersion: u32, securityVersion: u32, slot: u8, resumedAtChunk: u32 }),
  fc.record({ kind: fc.constant('update-committed' as const), imageVersion: u32, securityVersion: u32, slot: u8 }),
  fc.record({ kind: fc.constant('update-rolled-back' as const), imageVersion: u32, reason: token }),
  fc.record({ kind: fc.constantFrom('update-refused' as const, 'rollback-impossible' as const), imageVersion: optU32, reason: token }),
  fc.record({ kind: fc.constant('trial-started' as const), imageVersion: optU32, slot: u8 }),
  fc.record({ kind: fc.constant('unconfirmed-valid' as const), imageVersion: u32, slot: u8 }),
  fc.record({ kind: fc.constant('store-unreadable' as const), store: token, code: token }),
  fc.record({ kind: fc.constant('key-rotated' as const), role: fc.constantFrom('root' as const, 'targets' as const, 'device' as const, 'audit' as const), fromVersion: u32, toVersion: u32 }),
  fc.record({ kind: fc.constantFrom('replay-rejected' as const, 'forgery-rejected' as const), channel: fc.constantFrom('command' as const, 'telemetry' as const), keyId: u32, counter: u53 }),
  fc.record({ kind: fc.constantFrom('safe-mode-entered' as const, 'safe-mode-left' as const), reason: token }),
  fc.record({ kind: fc.constant('records-dropped' as const), store: fc.constant('outbox' as const), count: u32, total: u32 }),
  fc.record({ kind: fc.constant('watchdog-reset' as const), reason: token, resets: u32 }),
  fc.record({ kind: fc.constant('clock-jump' as const), deltaMs: i53.filter((v) => !Object.is(v, -0)), wallMs: u53 }),
  fc.record({ kind: fc.constant('console-unlocked' as const), keyId: u32, counter: u53 }),
  fc.tuple(u32, optU32, u53, u53).map(([blockSeq, count, a, b]) => ({ kind: 'dropped-unacknowledged' as const, blockSeq, count, firstCounter: Math.min(a, b), lastCounter: Math.max(a, b) })),
);

/** Decode, allowing only a typed refusal; a returned event re-encodes to the same bytes (one encoding per event). */
function decodeOrRefuse(code: number, body: Uint8Array): void {
  let event: AuditEvent;
  try {
    event = decodeAuditEvent(code, body);
  } catch (error) {
    assert.ok(error instanceof AuditDecodeError, `only AuditDecodeError, got ${String(error)}`);
    assert.ok(['truncated', 'trailing-bytes', 'unknown-kind', 'bad-value'].includes(error.code));
    return;
  }
  const again = encodeAuditEvent(event);
  assert.equal(again.code, code);
  assert.deepEqual(again.body, body, 'canonical: a decoded body re-encodes to the same bytes');
}

describe('audit event bodies', () => {
  test('every valid event round-trips within the body bound', () => {
    fc.assert(
      fc.property(eventArb, (event) => {
        const { code, body } = encodeAuditEvent(event);
        assert.ok(body.length <= AUDIT_MAX_BODY);
        assert.deepEqual(decodeAuditEvent(code, body), { ...event });
      }),
      { numRuns: RUNS, seed: 19 },
    );
  });

  test('random bytes under any kind code: an event or an AuditDecodeError', () => {
    fc.assert(fc.property(u8, fc.uint8Array({ maxLength: 80 }), (code, body) => decodeOrRefuse(code, body)), { numRuns: RUNS * 3, seed: 20 });
  });

  test('mutated valid bodies (bit flips, cuts, extra bytes, another kind): an event or an AuditDecodeError', () => {
    fc.assert(
      fc.property(eventArb, fc.nat(), fc.nat(), fc.uint8Array({ maxLength: 4 }), fc.constantFrom(...CODES), fc.integer({ min: 0, max: 3 }), (event, bit, cut, extra, otherCode, how) => {
        const { code, body } = encodeAuditEvent(event);
        let mutated = body.slice();
        if (how === 0 && body.length > 0) mutated[(bit >>> 3) % body.length] ^= 1 << (bit & 7);
        if (how === 1) mutated = body.slice(0, cut % (body.length + 1));
        if (how === 2) mutated = Uint8Array.from([...body, ...extra]);
        decodeOrRefuse(how === 3 ? otherCode : code, mutated);
      }),
      { numRuns: RUNS * 2, seed: 21 },
    );
  });
});

describe('audit entries and headers', () => {
  test('readEntry on random bytes never throws; an entry that reads has a consistent shape', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 200 }), fc.nat(200), (bytes, at) => {
        const read = readEntry(bytes, Math.min(at, bytes.length), bytes.length);
        if (read.state === 'entry') assert.equal(read.entry.bytes.length, 64 + read.entry.body.length);
      }),
      { numRuns: RUNS * 3, seed: 22 },
    );
  });

  test('every single-bit error in an entry is caught (never read as an entry)', () => {
    fc.assert(
      fc.property(eventArb, u53.filter((c) => c > 0), fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.nat(), (event, counter, prevHash, bit) => {
        const { code, body } = encodeAuditEvent(event);
        const entry = encodeEntry(crypto, KEY, { kind: code, counter, prevHash, body });
        const read = readEntry(entry, 0, entry.length);
        assert.equal(read.state, 'entry');
        if (read.state === 'entry') assert.ok(tagChecks(crypto, KEY, read.entry));
        const flipped = entry.slice();
        flipped[(bit >>> 3) % entry.length] ^= 1 << (bit & 7);
        assert.notEqual(readEntry(flipped, 0, flipped.length).state, 'entry');
      }),
      { numRuns: RUNS, seed: 23 },
    );
  });

  test('decodeHeader on random and bit-flipped headers never throws; only the written header reads valid', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: AUDIT_HEADER_LENGTH, maxLength: AUDIT_HEADER_LENGTH }), u32.filter((v) => v > 0), fc.nat(AUDIT_HEADER_LENGTH * 8 - 1), (random, seq, bit) => {
        decodeHeader(random);
        const header = encodeHeader({ version: 1, unitShift: 4, blockSeq: seq, ackCounter: 3, lastCounter: 9, anchor: new Uint8Array(32).fill(7), dropSeq: 0, dropCount: 0, dropFirst: 0, dropLast: 0 });
        assert.equal(decodeHeader(header).state, 'valid');
        const flipped = header.slice();
        flipped[bit >>> 3] ^= 1 << (bit & 7);
        assert.notEqual(decodeHeader(flipped).state, 'valid');
      }),
      { numRuns: RUNS, seed: 24 },
    );
  });
});

describe('audit exports and partitions', () => {
  const entries: Uint8Array[] = [];
  {
    let prev: Uint8Array = new Uint8Array(32);
    for (let i = 0; i < 6; i++) {
      const { code, body } = encodeAuditEvent(auditEventFor(i));
      const e = encodeEntry(crypto, KEY, { kind: code, counter: i + 1, prevHash: prev, body });
      entries.push(e);
      const sha = crypto.createSha256();
      sha.update(e);
      prev = sha.digest();
    }
  }
  const clean = encodeExport(entries);

  test('verifyExport never throws; any single-bit flip, cut or byte change of a valid export fails it', () => {
    assert.equal(verifyExport(crypto, KEY, clean).ok, true);
    fc.assert(
      fc.property(fc.nat(), fc.integer({ min: 0, max: 2 }), fc.uint8Array({ minLength: 1, maxLength: 8 }), (n, how, junk) => {
        let bytes = clean.slice();
        if (how === 0) bytes[(n >>> 3) % bytes.length] ^= 1 << (n & 7);
        if (how === 1) bytes = bytes.slice(0, n % bytes.length);
        if (how === 2) bytes = Uint8Array.from([...bytes, ...junk]);
        const result = verifyExport(crypto, KEY, bytes);
        assert.equal(result.ok, false, 'a changed export does not verify');
        assert.ok(result.firstBreak !== null);
      }),
      { numRuns: RUNS, seed: 25 },
    );
    fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), (random) => void verifyExport(crypto, KEY, random)), { numRuns: RUNS, seed: 26 });
  });

  test('AuditLog.open + read over arbitrary partition contents: a typed refusal or a log, in bounded work', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1024, maxLength: 1024 }), fc.boolean(), (contents, startValid) => {
        const sim = new SimFlash({ blocks: 2, blockLength: 512 });
        if (startValid) {
          AuditLog.format(sim);
          sim.data.set(contents.subarray(AUDIT_HEADER_LENGTH, 512), AUDIT_HEADER_LENGTH);
        } else sim.data.set(contents);
        const flash = new BudgetFlash(sim, 10_000);
        let c = 0;
        try {
          const log = AuditLog.open(flash, { crypto, key: KEY, counter: { next: () => ++c + 2 ** 40 } });
          flash.reset();
          log.read();
        } catch (error) {
          assert.ok(!(error instanceof Hang), 'bounded work');
          assert.ok(error instanceof StorageError, `a typed refusal, got ${String(error)}`);
        }
      }),
      { numRuns: Math.ceil(RUNS / 2), seed: 27 },
    );
  });
});
