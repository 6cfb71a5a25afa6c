/**
 * Bad input never crashes the console decoder or server, and never makes
 * them hold more than one line (docs/spec/console.md, "Frames"):
 * - random bytes in random chunks: no throw, `pending` never above
 *   CONSOLE_MAX_LINE + 1, every byte accounted for (skipped + in frames);
 * - valid frames with random garbage between them: every frame decodes, in
 *   order, whatever the chunking, and the garbage is counted as skipped;
 * - one byte of such a stream changed: the other frames still decode and
 *   nothing decodes to a frame that was not sent (the CRC catches it);
 * - anything the decoder accepts re-encodes to bytes that decode the same;
 * - the ConsoleServer fed random bytes and mutated command frames never
 *   throws and never runs a state-changing action while locked.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CONSOLE_MAX_LINE, ConsoleDecoder, ConsoleServer, encodeConsoleFrame, type ConsoleFrame, type ConsoleTarget } from '../../firmware/protocol/console/index.ts';
import { ConsoleUnlock } from '../../firmware/security/console-unlock.ts';
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { concat } from '../support/bytes.ts';

const RUNS = 300;

const key = fc.stringMatching(/^[a-z][a-z0-9._-]{0,15}$/);
const value = fc.oneof(fc.string({ maxLength: 24 }), fc.string({ unit: 'binary', maxLength: 12 }), fc.integer(), fc.boolean(), fc.constant(null));
const frameArb = fc
  .tuple(fc.stringMatching(/^[a-z]{1,16}$/), fc.uniqueArray(fc.tuple(key, value), { maxLength: 8, selector: (e) => e[0] }))
  .map(([kind, entries]) => ({ kind, fields: Object.fromEntries(entries) as Record<string, string | number | boolean | null> }))
  .filter((f) => {
    try {
      encodeConsoleFrame(f.kind, f.fields);
      return true;
    } catch {
      return false;
    }
  });
const garbage = fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.constantFrom(new TextEncoder().encode('HF1 '), new TextEncoder().encode('HF1 ok id=1'), new TextEncoder().encode('HF'), new TextEncoder().encode('\r\n')));

function chunked(bytes: Uint8Array, sizes: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  let i = 0;
  while (at < bytes.length) {
    const n = Math.max(1, sizes.length === 0 ? bytes.length : sizes[i++ % sizes.length]);
    out.push(bytes.subarray(at, at + n));
    at += n;
  }
  return out;
}

function decode(chunks: Uint8Array[]): { frames: ConsoleFrame[]; decoder: ConsoleDecoder } {
  const decoder = new ConsoleDecoder();
  const frames: ConsoleFrame[] = [];
  for (const c of chunks) {
    decoder.push(c, (f) => frames.push(f));
    assert.ok(decoder.pending <= CONSOLE_MAX_LINE + 1, `pending ${decoder.pending}`);
  }
  return { frames, decoder };
}

/** What a frame decodes to: every value as its wire text. */
function expected(f: { kind: string; fields: Record<string, string | number | boolean | null> }): ConsoleFrame {
  const decoded = decode([encodeConsoleFrame(f.kind, f.fields)]).frames;
  assert.equal(decoded.length, 1);
  return decoded[0];
}

describe('console framing under random and mutated bytes', () => {
  it('random bytes in random chunks: no throw, one line of memory at most, every byte accounted for', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), fc.array(fc.integer({ min: 1, max: 700 }), { maxLength: 8 }), (bytes, sizes) => {
        const { decoder } = decode(chunked(bytes, sizes));
        assert.ok(decoder.stats.skippedBytes <= bytes.length);
      }),
      { numRuns: RUNS },
    );
  });

  it('long runs without a line end (and long runs of markers) stay within one line', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 4, max: 20_000 }), fc.boolean(), (byte, length, marked) => {
        const bytes = new Uint8Array(length).fill(byte === 0x0a ? 0x61 : byte);
        if (marked) bytes.set(new TextEncoder().encode('HF1 '), 0);
        const { decoder, frames } = decode(chunked(bytes, [997]));
        assert.equal(frames.length, 0);
        assert.equal(decoder.stats.skippedBytes + decoder.pending, length);
      }),
      { numRuns: 100 },
    );
  });

  it('valid frames with garbage between them all decode, in order, whatever the chunking; garbage is counted', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(garbage, frameArb), { minLength: 1, maxLength: 6 }), garbage, fc.array(fc.integer({ min: 1, max: 90 }), { maxLength: 5 }), (pairs, tail, sizes) => {
        const parts: Uint8Array[] = [];
        let garbageBytes = 0;
        let lineEnds = 0;
        for (const [g, f] of [...pairs.map(([g, f]) => [g, f] as const)]) {
          parts.push(g, encodeConsoleFrame(f.kind, f.fields));
          garbageBytes += g.length;
          lineEnds += g.filter((b) => b === 0x0a).length;
        }
        const tailClean = tail.filter((b) => b !== 0x0a);
        parts.push(tailClean);
        const { frames, decoder } = decode(chunked(concat(...parts), sizes));
        assert.deepEqual(frames, pairs.map(([, f]) => expected(f)));
        const skipped = decoder.stats.skippedBytes + decoder.pending;
        assert.ok(skipped <= garbageBytes + tailClean.length && skipped >= garbageBytes + tailClean.length - lineEnds, `skipped ${skipped} of ${garbageBytes + tailClean.length} garbage bytes`);
      }),
      { numRuns: RUNS },
    );
  });

  it('one byte changed: the other frames decode, nothing that was not sent is decoded', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { minLength: 2, maxLength: 5 }), fc.nat(), fc.integer({ min: 0, max: 255 }), (list, where, byte) => {
        const encoded = list.map((f) => encodeConsoleFrame(f.kind, f.fields));
        const stream = concat(...encoded);
        const at = where % stream.length;
        fc.pre(stream[at] !== byte);
        stream[at] = byte;
        const { frames } = decode([stream]);
        const sent = list.map(expected).map((f) => JSON.stringify(f));
        const got = frames.map((f) => JSON.stringify(f));
        let i = 0;
        for (const g of got) {
          while (i < sent.length && sent[i] !== g) i++;
          assert.ok(i < sent.length, `decoded a frame that was not sent: ${g}`);
          i++;
        }
        assert.ok(got.length >= list.length - 1 && got.length <= list.length, `${got.length} of ${list.length} frames survive one changed byte`);
      }),
      { numRuns: RUNS },
    );
  });

  it('whatever the decoder accepts re-encodes to a frame that decodes the same', () => {
    fc.assert(
      fc.property(frameArb, (f) => {
        const first = expected(f);
        const again = decode([encodeConsoleFrame(first.kind, first.fields)]).frames;
        assert.deepEqual(again, [first]);
      }),
      { numRuns: RUNS },
    );
  });

  it('the server never throws on random bytes and mutated commands, and runs no action while locked', () => {
    const actions: string[] = [];
    const target: ConsoleTarget = {
      status: () => ({ up: 1 }),
      outbox: () => ({}),
      counter: () => ({}),
      slots: () => [],
      auditTail: () => [],
      confirm: () => (actions.push('confirm'), { ok: true }),
      rollback: () => (actions.push('rollback'), { ok: true }),
      setSafeMode: () => (actions.push('safe-mode'), { ok: true }),
      reboot: () => (actions.push('reboot'), { ok: true }),
      audit: () => {},
    };
    let number = 0;
    const unlock = new ConsoleUnlock({ crypto: createNobleCrypto(), entropy: { fill: (t) => t.fill(1) }, clock: { ticks: () => 0 }, deviceId: 'd', consoleKey: new Uint8Array(32).fill(0x11), numbers: { next: () => ++number } });
    let written = 0;
    const server = new ConsoleServer({ output: { write: (b) => ((written += b.length), 0) }, target, unlock, deviceId: 'd' });
    const ops = ['status', 'reboot', 'confirm', 'rollback', 'safe-mode', 'unlock', 'unlock-response', 'audit-tail', 'slots', 'lock', 'help', 'nope'];
    const command = fc.tuple(fc.constantFrom(...ops), fc.dictionary(fc.constantFrom('id', 'n', 'mode', 'number', 'sig', 'x'), fc.string({ maxLength: 140 }), { maxKeys: 4 })).map(([op, fields]) => encodeConsoleFrame('cmd', { ...fields, op }));
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.uint8Array({ maxLength: 64 }), command, command.chain((c) => fc.nat({ max: c.length - 1 }).map((i) => Uint8Array.from(c, (b, k) => (k === i ? b ^ 0x20 : b))))), { maxLength: 12 }), (chunks) => {
        for (const c of chunks) server.receive(c);
      }),
      { numRuns: RUNS },
    );
    assert.deepEqual(actions, [], 'nothing ran: the console was never unlocked');
    assert.ok(server.stats().commands > 0 && written > 0, 'commands were answered');
  });
});
