/**
 * The console line protocol (docs/spec/console.md) in Node and in XS: the
 * frame codec (round trip, the CRC, the grammar, garbage skipped and
 * counted, a line over the limit dropped without growing, a frame cut by a
 * restarted sender) and the ConsoleServer against a scripted target (reads
 * answered, state-changing commands refused and audited while locked,
 * accepted and audited once unlocked with the console key).
 */
import * as ed from '@noble/ed25519';
import { configureEd25519, createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { ConsoleUnlock } from '../../firmware/security/console-unlock.ts';
import { decodeAuditEvent, encodeAuditEvent, type AuditEvent } from '../../firmware/storage/audit-log.ts';
import { crc16 } from '../../firmware/base/crc16.ts';
import { StorageError } from '../../firmware/storage/errors.ts';
import {
  CONSOLE_MAX_LINE,
  ConsoleDecoder,
  ConsoleServer,
  decodeConsoleLine,
  encodeConsoleFrame,
  type ConsoleActionResult,
  type ConsoleFrame,
  type ConsoleTarget,
} from '../../firmware/protocol/console/index.ts';
import { equal, ok, throws } from '../support/check.ts';
import type { CaseSuite } from '../support/cases.ts';
import { concat } from '../support/bytes.ts';

function ascii(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff;
  return out;
}

function text(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return s;
}

function hex4(n: number): string {
  return (n + 0x10000).toString(16).slice(1);
}

/** A line with a correct CRC over `body` (which ends with the space before `*`). */
function withCrc(body: string): string {
  return `${body}*${hex4(crc16(ascii(body)))}`;
}

function decodeAll(bytes: Uint8Array, chunk = bytes.length): { frames: ConsoleFrame[]; decoder: ConsoleDecoder } {
  const decoder = new ConsoleDecoder();
  const frames: ConsoleFrame[] = [];
  for (let at = 0; at < bytes.length; at += chunk) decoder.push(bytes, (f) => frames.push(f), undefined, at, Math.min(bytes.length, at + chunk));
  return { frames, decoder };
}

function sameFields(actual: Readonly<Record<string, string>>, expected: Record<string, string>, what: string): void {
  equal(JSON.stringify(actual), JSON.stringify(expected), what);
}

// ---------------------------------------------------------------- server fixtures

const SEED = new Uint8Array(32).map((_, i) => (i * 7 + 3) & 0xff);
const OTHER_SEED = new Uint8Array(32).fill(9);

function publicKeyOf(seed: Uint8Array): Uint8Array {
  configureEd25519();
  return ed.getPublicKey(seed);
}

function sign(seed: Uint8Array, message: Uint8Array): Uint8Array {
  configureEd25519();
  return ed.sign(message, seed);
}

function hexOf(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16);
  return out;
}

function unhex(h: string): Uint8Array {
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.slice(2 * i, 2 * i + 2), 16);
  return out;
}

interface Rig {
  server: ConsoleServer;
  /** Frames the server wrote, decoded. */
  out: ConsoleFrame[];
  audit: AuditEvent[];
  actions: string[];
  clock: { now: number };
  send(op: string, fields?: Record<string, string>): ConsoleFrame[];
}

function rig(options: { consoleKey?: Uint8Array | undefined; auditFails?: boolean; auditFault?: boolean } = {}): Rig {
  const out: ConsoleFrame[] = [];
  const audit: AuditEvent[] = [];
  const actions: string[] = [];
  const clock = { now: 1000 };
  let nextNumber = 40;
  const outDecoder = new ConsoleDecoder();
  const reply = (name: string): ConsoleActionResult => {
    actions.push(name);
    return { ok: true, fields: { done: name } };
  };
  const target: ConsoleTarget = {
    status: () => ({ version: 7, slot: 0, 'safe-mode': false }),
    outbox: () => ({ queued: 3, 'next-seq': 12, dropped: 0 }),
    counter: () => ({ current: 99, 'reserved-up-to': 4096 }),
    slots: () => [{ slot: 0, state: 'valid', running: true }, { slot: 1, state: 'new', running: false }],
    auditTail: (max) => Array.from({ length: Math.min(max, 3) }, (_, i) => ({ counter: 10 + i, kind: 'safe-mode-left' })),
    confirm: () => reply('confirm'),
    rollback: () => ({ ok: false, code: 'no-other-slot', message: 'the other slot holds no valid image' }),
    setSafeMode: (on) => reply(on ? 'safe-mode-on' : 'safe-mode-off'),
    reboot: () => reply('reboot'),
    audit: (event) => {
      if (options.auditFails) throw new StorageError('damaged', 'audit partition damaged');
      if (options.auditFault) throw new Error('a fault that is not a storage failure');
      encodeAuditEvent(event); // a malformed event would throw here, as the real log does
      audit.push(event);
    },
  };
  const unlock = new ConsoleUnlock({
    crypto: createNobleCrypto(),
    entropy: { fill: (t) => t.fill(0x5a) },
    clock: { ticks: () => clock.now >>> 0 },
    deviceId: 'dev-0001',
    consoleKey: 'consoleKey' in options ? options.consoleKey : publicKeyOf(SEED),
    numbers: { next: () => ++nextNumber },
    challengeTtlMs: 10_000,
    unlockMs: 60_000,
  });
  const server = new ConsoleServer({ output: { write: (bytes) => (outDecoder.push(bytes, (f) => out.push(f)), 1024) }, target, unlock, deviceId: 'dev-0001' });
  let id = 0;
  return {
    server,
    out,
    audit,
    actions,
    clock,
    send(op, fields = {}) {
      const before = out.length;
      server.receive(encodeConsoleFrame('cmd', { id: String(++id), op, ...fields }));
      return out.slice(before);
    },
  };
}

function only(frames: ConsoleFrame[], what: string): ConsoleFrame {
  equal(frames.length, 1, `${what}: one reply frame`);
  return frames[0];
}

function unlockWith(r: Rig, seed: Uint8Array): ConsoleFrame {
  const challenge = only(r.send('unlock'), 'unlock');
  equal(challenge.kind, 'ok', 'a challenge is issued');
  const signature = sign(seed, unhex(challenge.fields.challenge));
  return only(r.send('unlock-response', { number: challenge.fields.number, sig: hexOf(signature) }), 'unlock-response');
}

export const suite: CaseSuite = {
  name: 'console line protocol',
  cases: [
    {
      name: 'a frame round-trips: kind, keys in order, values with spaces, %, =, *, non-ASCII, empty, numbers, booleans, null',
      run() {
        const fields = { id: 7, msg: 'hello world 100% = *done*', name: 'Zürich ☃ 𝄞', empty: '', ok: true, none: null, neg: -3.5 };
        const bytes = encodeConsoleFrame('log', fields);
        ok(bytes.length <= CONSOLE_MAX_LINE + 1, 'within the line limit');
        equal(bytes[bytes.length - 1], 0x0a, 'ends with LF');
        for (let i = 0; i < bytes.length - 1; i++) ok(bytes[i] >= 0x20 && bytes[i] <= 0x7e, `byte ${i} printable ASCII`);
        const line = text(bytes.subarray(0, bytes.length - 1));
        equal(line.indexOf('HF1 '), 0, 'starts with the marker');
        equal(line.lastIndexOf('HF1 '), 0, 'the marker appears once');
        const frame = decodeConsoleLine(bytes.subarray(0, bytes.length - 1));
        ok(typeof frame === 'object', 'decodes');
        equal(frame.kind, 'log', 'kind');
        sameFields(frame.fields, { id: '7', msg: 'hello world 100% = *done*', name: 'Zürich ☃ 𝄞', empty: '', ok: 'true', none: '-', neg: '-3.5' }, 'fields');
        const { frames, decoder } = decodeAll(bytes, 1);
        equal(frames.length, 1, 'byte by byte: one frame');
        equal(decoder.stats.skippedBytes, 0, 'nothing skipped');
      },
    },
    {
      name: 'the wire form is the documented one (spec example, CRC-16/CCITT-FALSE over everything before *)',
      run() {
        const bytes = encodeConsoleFrame('cmd', { id: 1, op: 'status' });
        const body = 'HF1 cmd id=1 op=status ';
        equal(text(bytes), `${withCrc(body)}\n`, 'exact bytes');
        equal(crc16(ascii('123456789')), 0x29b1, 'the CRC check value');
      },
    },
    {
      name: 'garbage around frames is skipped and counted, frames in it are found, whatever the chunking',
      run() {
        const a = encodeConsoleFrame('log', { lvl: 'info', area: 'boot', msg: 'one' });
        const b = encodeConsoleFrame('ok', { id: 2, op: 'status' });
        const noise1 = ascii('ets Jun  8 2016 00:22:57\r\nrst:0x1 (POWERON_RESET)\r\nHF');
        const noise2 = new Uint8Array([0x00, 0xff, 0x48, 0x46, 0x32, 0x0a, 0x80]);
        const stream = concat(noise1, a, noise2, b, ascii('tail without newline'));
        for (const chunk of [1, 2, 3, 7, 64, stream.length]) {
          const { frames, decoder } = decodeAll(stream, chunk);
          equal(frames.length, 2, `chunk ${chunk}: two frames`);
          equal(frames[0].fields.msg, 'one', `chunk ${chunk}: first`);
          equal(frames[1].kind, 'ok', `chunk ${chunk}: second`);
          equal(decoder.stats.skippedBytes, noise1.length + noise2.length + 'tail without newline'.length, `chunk ${chunk}: every garbage byte counted once`);
          equal(decoder.stats.frames, 2, 'frames counted');
        }
      },
    },
    {
      name: 'a bad CRC, a bad grammar and a bad escape are each dropped and counted; the next frame still decodes',
      run() {
        const good = encodeConsoleFrame('ok', { id: 3 });
        const flipped = encodeConsoleFrame('ok', { id: 4, op: 'status' });
        flipped[9] ^= 0x01; // a bit error in the body
        const lines = [
          flipped,
          ascii(`${withCrc('HF1 OK id=1 ')}\n`), // upper-case kind
          ascii(`${withCrc('HF1 ok id=1  ')}\n`), // empty token
          ascii(`${withCrc('HF1 ok id=%4 ')}\n`), // escape cut short
          ascii(`${withCrc('HF1 ok id=%C3%28 ')}\n`), // not UTF-8
          ascii(`${withCrc('HF1 ok id=1 id=2 ')}\n`), // duplicate key
          ascii(`${withCrc('HF1 ok 9=1 ')}\n`), // key not starting with a letter
          ascii('HF1 ok id=1 *ABCD\n'), // upper-case CRC digits
          ascii('HF1 ok id=1\n'), // no CRC
          good,
        ];
        const { frames, decoder } = decodeAll(concat(...lines), 5);
        equal(frames.length, 1, 'only the good frame');
        equal(frames[0].fields.id, '3', 'it is the good one');
        equal(decoder.stats.badCrc, 1, 'one CRC failure');
        equal(decoder.stats.malformed, 8, 'eight grammar failures');
      },
    },
    {
      name: 'a line over the limit is dropped as it arrives (the buffer does not grow) and counted; the decoder resumes at the next frame',
      run() {
        const decoder = new ConsoleDecoder();
        const frames: ConsoleFrame[] = [];
        decoder.push(ascii('HF1 log msg='), (f) => frames.push(f));
        const filler = new Uint8Array(1000).fill(0x61);
        for (let i = 0; i < 100; i++) {
          decoder.push(filler, (f) => frames.push(f));
          ok(decoder.pending <= CONSOLE_MAX_LINE + 1, `pending ${decoder.pending} stays within one line`);
        }
        equal(decoder.stats.overlong, 1, 'one overlong line');
        decoder.push(ascii(' *0000\n'), (f) => frames.push(f));
        decoder.push(encodeConsoleFrame('ok', { id: 5 }), (f) => frames.push(f));
        equal(frames.length, 1, 'the next frame decodes');
        equal(decoder.stats.skippedBytes, 'HF1 log msg='.length + 100_000 + ' *0000'.length, 'every byte of the dropped line counted');
        throws(() => encodeConsoleFrame('log', { msg: 'x'.repeat(CONSOLE_MAX_LINE) }), 'ConsoleEncodeError', 'the encoder refuses an overlong frame');
        const longest = encodeConsoleFrame('log', { msg: 'x'.repeat(CONSOLE_MAX_LINE - 'HF1 log msg= *0000'.length) });
        equal(longest.length, CONSOLE_MAX_LINE + 1, 'a frame of exactly the limit is encoded');
        equal(decodeAll(longest).frames.length, 1, 'and decoded');
      },
    },
    {
      name: 'a frame cut by a restarted sender (a new HF1 before its line end) is dropped and counted; the new one decodes',
      run() {
        const full = encodeConsoleFrame('log', { lvl: 'info', msg: 'the first line was cut' });
        const cut = full.subarray(0, 20);
        const next = encodeConsoleFrame('hello', { proto: 1, device: 'dev-0001' });
        const { frames, decoder } = decodeAll(concat(cut, next), 4);
        equal(frames.length, 1, 'one frame');
        equal(frames[0].kind, 'hello', 'the restarted one');
        equal(decoder.stats.interrupted, 1, 'counted as interrupted');
        equal(decoder.stats.skippedBytes, cut.length, 'the cut frame counted as skipped');
        const crlf = ascii(`${withCrc('HF1 ok id=9 ')}\r\n`);
        equal(decodeAll(crlf).frames.length, 1, 'a CR before the LF is accepted');
      },
    },
    {
      name: 'reads are answered without unlocking: status, outbox, counter, slots (items), audit-tail n, help; unknown ops and bad arguments are errors',
      run() {
        const r = rig();
        const status = only(r.send('status'), 'status');
        equal(status.kind, 'ok', 'status ok');
        equal(status.fields.id, '1', 'reply carries the request id');
        equal(status.fields.version, '7', 'target field');
        equal(status.fields.locked, 'true', 'locked');
        equal(only(r.send('outbox'), 'outbox').fields.queued, '3', 'outbox');
        equal(only(r.send('counter'), 'counter').fields.current, '99', 'counter');
        const slots = r.send('slots');
        equal(slots.length, 3, 'two items and the ok');
        equal(slots[0].kind, 'item', 'item');
        equal(slots[1].fields.state, 'new', 'slot 1');
        equal(slots[2].fields.count, '2', 'count');
        const tail = r.send('audit-tail', { n: '2' });
        equal(tail.length, 3, 'two entries and the ok');
        equal(only(r.send('audit-tail', { n: '33' }), 'n too big').fields.code, 'bad-args', 'n bounded');
        equal(only(r.send('frobnicate'), 'unknown').fields.code, 'unknown-op', 'unknown op');
        ok(only(r.send('help'), 'help').fields.ops.includes('audit-tail'), 'help lists ops');
        equal(only(r.send('safe-mode', { mode: 'maybe' }), 'locked first').fields.code, 'locked', 'locked before argument checks');
        equal(r.actions.length, 0, 'no action ran');
      },
    },
    {
      name: 'a state-changing command while locked is refused and audited; after unlocking with the console key it runs, audited first',
      run() {
        const r = rig();
        for (const op of ['reboot', 'confirm', 'rollback']) {
          const refused = only(r.send(op), op);
          equal(refused.kind, 'err', `${op} refused`);
          equal(refused.fields.code, 'locked', `${op}: locked`);
          equal(refused.fields.audited, 'true', `${op}: audited`);
        }
        equal(JSON.stringify(r.audit), JSON.stringify([
          { kind: 'console-refused', op: 'reboot', reason: 'locked' },
          { kind: 'console-refused', op: 'confirm', reason: 'locked' },
          { kind: 'console-refused', op: 'rollback', reason: 'locked' },
        ]), 'three refusals audited');
        equal(r.actions.length, 0, 'nothing ran');
        const unlocked = unlockWith(r, SEED);
        equal(unlocked.kind, 'ok', `unlocked: ${JSON.stringify(unlocked.fields)}`);
        equal(r.audit[3].kind, 'console-unlocked', 'the unlock is audited');
        equal((r.audit[3] as { counter: number }).counter, Number(unlocked.fields.number), 'with the challenge number');
        const reboot = only(r.send('reboot'), 'reboot');
        equal(reboot.kind, 'ok', 'reboot accepted');
        equal(reboot.fields.done, 'reboot', 'the target ran it');
        equal(JSON.stringify(r.audit[4]), JSON.stringify({ kind: 'console-command', op: 'reboot' }), 'audited before it ran');
        const rollback = only(r.send('rollback'), 'rollback');
        equal(rollback.fields.code, 'no-other-slot', 'the target\'s refusal is passed on');
        equal(only(r.send('safe-mode', { mode: 'on' }), 'safe mode').kind, 'ok', 'safe-mode on');
        equal(JSON.stringify(r.actions), JSON.stringify(['reboot', 'safe-mode-on']), 'actions ran in order');
        equal(only(r.send('lock'), 'lock').kind, 'ok', 'lock');
        equal(only(r.send('confirm'), 'after lock').fields.code, 'locked', 'locked again');
      },
    },
    {
      name: 'unlock refusals: wrong key, replayed response, no key provisioned; each audited with its reason',
      run() {
        const r = rig();
        const wrong = unlockWith(r, OTHER_SEED);
        equal(wrong.fields.code, 'bad-signature', 'another key is refused');
        const challenge = only(r.send('unlock'), 'unlock');
        const response = { number: challenge.fields.number, sig: hexOf(sign(SEED, unhex(challenge.fields.challenge))) };
        equal(only(r.send('unlock-response', response), 'first').kind, 'ok', 'the right key unlocks');
        equal(only(r.send('unlock-response', response), 'replay while unlocked').fields.code, 'no-challenge', 'the same response at once again is refused');
        r.send('lock');
        equal(only(r.send('unlock-response', response), 'replay').fields.code, 'no-challenge', 'the same response after a lock is refused');
        only(r.send('unlock'), 'new challenge');
        equal(only(r.send('unlock-response', response), 'replay against a new challenge').fields.code, 'wrong-challenge', 'an old response does not answer a new challenge');
        equal(only(r.send('reboot'), 'still locked').fields.code, 'locked', 'still locked');
        const reasons = r.audit.filter((e) => e.kind === 'console-refused').map((e) => (e as { reason: string }).reason);
        equal(JSON.stringify(reasons), JSON.stringify(['bad-signature', 'no-challenge', 'no-challenge', 'wrong-challenge', 'locked']), 'every refusal audited');
        const none = rig({ consoleKey: undefined });
        const refused = only(none.send('unlock'), 'no key');
        equal(refused.fields.code, 'no-key', 'no key provisioned');
        equal(JSON.stringify(none.audit), JSON.stringify([{ kind: 'console-refused', op: 'unlock', reason: 'no-key' }]), 'audited');
      },
    },
    {
      name: 'an audit sink that fails (StorageError) makes a state-changing command and an unlock refused (fail closed); any other fault propagates',
      run() {
        const r = rig({ auditFails: true });
        const refused = only(r.send('reboot'), 'reboot');
        equal(refused.fields.code, 'locked', 'still refused');
        equal(refused.fields.audited, 'false', 'says it was not audited');
        const unlocked = unlockWith(r, SEED);
        equal(unlocked.fields.code, 'audit-failed', 'an unaudited unlock is refused');
        equal(only(r.send('reboot'), 'reboot').fields.code, 'locked', 'and the console stays locked');
        const faulty = rig({ auditFault: true });
        throws(() => faulty.send('reboot'), 'Error', 'a fault that is not a StorageError propagates (a power cut stops everything)', 'not a storage failure');
        equal(faulty.out.length, 0, 'and nothing was answered');
      },
    },
    {
      name: 'log frames: level filter, reserved and invalid keys left out, an overlong line replaced by a short one; commands keep working after garbage',
      run() {
        const r = rig();
        r.server.write('debug', 'boot', 'hidden');
        r.server.write('info', 'boot', 'started', { slot: 0, msg: 'clash', 'Bad Key': 1, version: '1.2' });
        r.server.write('warn', 'net', 'x'.repeat(2000));
        r.server.write('error', 'y'.repeat(600), 'an area too long for any frame');
        equal(r.out.length, 3, 'debug is below the default level');
        equal(r.out[2].fields.area, 'y'.repeat(32), 'the replacement of an overlong line keeps the area\'s start');
        sameFields(r.out[0].fields, { lvl: 'info', area: 'boot', msg: 'started', slot: '0', version: '1.2' }, 'fields');
        equal(r.out[1].fields.msg, 'log line too long for a frame', 'overlong replaced');
        equal(r.server.stats().encodeFailures, 2, 'counted');
        r.server.receive(new Uint8Array([0xff, 0x00, 0x41, 0x0a, 0x48, 0x46]));
        equal(only(r.send('status'), 'after garbage').kind, 'ok', 'the next command is answered');
        ok(Number(r.out[r.out.length - 1].fields['rx-skipped']) >= 6, 'status shows the skipped bytes');
      },
    },
    {
      name: 'the unlock ends on the monotonic clock: a command after unlockMs is refused; readFrom reads a ByteStream in chunks',
      run() {
        const r = rig();
        equal(unlockWith(r, SEED).kind, 'ok', 'unlocked');
        r.clock.now += 59_999;
        equal(only(r.send('status'), 'status').fields['unlock-ms'], '1', 'one millisecond left');
        equal(only(r.send('confirm'), 'in time').kind, 'ok', 'accepted within the unlock time');
        r.clock.now += 1;
        const late = only(r.send('confirm'), 'late');
        equal(late.fields.code, 'locked', 'refused once the unlock time is over');
        const frames = [encodeConsoleFrame('cmd', { id: 90, op: 'counter' }), encodeConsoleFrame('cmd', { id: 91, op: 'outbox' })];
        const bytes = concat(ascii('noise'), frames[0], frames[1]);
        let at = 0;
        const stream = {
          read(target: Uint8Array): number {
            const n = Math.min(target.length, bytes.length - at, 7);
            target.set(bytes.subarray(at, at + n));
            at += n;
            return n;
          },
        };
        const before = r.out.length;
        r.server.readFrom(stream, 10);
        equal(at, 10, 'only the bytes announced are read');
        equal(r.out.length, before, 'no frame complete yet');
        r.server.readFrom(stream, bytes.length - at);
        equal(r.out.length, before + 2, 'both commands answered');
        equal(r.out[before].fields.id, '90', 'in order');
        equal(r.out[before + 1].fields.queued, '3', 'outbox');
      },
    },
    {
      name: 'the console audit kinds round-trip through the audit event codec',
      run() {
        for (const event of [{ kind: 'console-refused', op: 'reboot', reason: 'locked' }, { kind: 'console-command', op: 'safe-mode' }, { kind: 'console-unlocked', keyId: 0xdeadbeef, counter: 2 ** 40 }] as AuditEvent[]) {
          const { code, body } = encodeAuditEvent(event);
          equal(JSON.stringify(decodeAuditEvent(code, body)), JSON.stringify(event), `${event.kind} round-trips`);
        }
      },
    },
  ],
};
