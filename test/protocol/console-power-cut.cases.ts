/**
 * The console's flash-writing paths under power cuts, in Node and in XS,
 * both flash modes: challenge numbers taken from the persistent Counter and
 * audit entries appended to the AuditLog (unlocks, refusals, commands), on
 * one simulated flash (counter in blocks 0..1, audit log in 2..7), through
 * the real ConsoleServer and ConsoleUnlock, cut at every flash operation.
 *
 * After every recovery:
 * - the console is locked (unlock state is RAM only);
 * - every unlock the host saw accepted is in the audit log (the entry is
 *   durable before the reply), every `console-unlocked` entry names a
 *   challenge that was issued, and no challenge number unlocked twice;
 * - the last captured response, replayed, is refused and the refusal is
 *   audited;
 * - a new challenge's number is above every number issued before the cut.
 *
 * A planted bug (challenge numbers from RAM, restarting at each boot) must
 * be caught by the last invariant.
 */
import * as ed from '@noble/ed25519';
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { configureEd25519, createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { ConsoleUnlock } from '../../firmware/security/console-unlock.ts';
import { Counter } from '../../firmware/storage/counter.ts';
import { AuditLog, type AuditEvent } from '../../firmware/storage/audit-log.ts';
import { ConsoleDecoder, ConsoleServer, encodeConsoleFrame, type ConsoleFrame, type ConsoleTarget } from '../../firmware/protocol/console/index.ts';
import { PartitionView } from '../../tools/sim/flash/partition-view.ts';
import { runExhaustive, type CutScenario } from '../../tools/sim/power-cut.ts';
import type { FlashMode } from '../../tools/sim/flash/sim-flash.ts';
import { equal, ok } from '../support/check.ts';
import { caughtByInvariant, runnerOptions } from '../support/case-helpers.ts';
import type { CaseEnv, CaseSuite } from '../support/cases.ts';

const SEED = new Uint8Array(32).map((_, i) => (i * 13 + 7) & 0xff);
const AUDIT_KEY = new Uint8Array(32).fill(0x3c);
const ROUNDS = 3;

function hex(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16);
  return out;
}

function unhex(text: string): Uint8Array {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

interface State {
  formatted: boolean;
  /** Challenge numbers the device handed out (recorded once the reply was seen). */
  issued: number[];
  /** Unlocks the host saw accepted. */
  accepted: number[];
  /** The newest response the host sent (captured by an eavesdropper). */
  captured: { number: string; sig: string } | undefined;
  rounds: number;
}

interface Device {
  send(op: string, fields?: Record<string, string>): ConsoleFrame;
  audit: AuditLog;
}

function bootDevice(flash: FlashPartition, state: State, ramNumbers: boolean): Device {
  const counterFlash = new PartitionView(flash, 0, 2);
  const auditFlash = new PartitionView(flash, 2, 6);
  if (!state.formatted) {
    // Provisioning (no number issued yet): cut part way, it is simply done again.
    Counter.format(counterFlash);
    AuditLog.format(auditFlash);
    state.formatted = true;
  }
  const crypto = createNobleCrypto();
  const counter = Counter.open(counterFlash, { reserve: 4 });
  const audit = AuditLog.open(auditFlash, { crypto, key: AUDIT_KEY, counter });
  configureEd25519();
  let ram = 0;
  const unlock = new ConsoleUnlock({
    crypto,
    entropy: { fill: (t) => t.fill(state.issued.length & 0xff) },
    clock: { ticks: () => 0 },
    deviceId: 'cut-1',
    consoleKey: ed.getPublicKey(SEED),
    numbers: ramNumbers ? { next: () => ++ram } : counter,
  });
  const target: ConsoleTarget = {
    status: () => ({}),
    outbox: () => ({}),
    counter: () => ({}),
    slots: () => [],
    auditTail: () => [],
    confirm: () => ({ ok: true }),
    rollback: () => ({ ok: true }),
    setSafeMode: () => ({ ok: true }),
    reboot: () => ({ ok: true }),
    audit: (event: AuditEvent) => {
      audit.append(event);
    },
  };
  const replies: ConsoleFrame[] = [];
  const decoder = new ConsoleDecoder();
  const server = new ConsoleServer({ output: { write: (b) => (decoder.push(b, (f) => replies.push(f)), 4096) }, target, unlock, deviceId: 'cut-1' });
  let id = 0;
  return {
    audit,
    send(op, fields = {}) {
      replies.length = 0;
      server.receive(encodeConsoleFrame('cmd', { id: String(++id), op, ...fields }));
      const reply = replies[replies.length - 1];
      ok(reply !== undefined && (reply.kind === 'ok' || reply.kind === 'err'), `${op}: a reply`);
      return reply;
    },
  };
}

function scenario(mode: FlashMode, ramNumbers = false): CutScenario<State> {
  return {
    name: `console unlock and audit (${mode}${ramNumbers ? ', planted: challenge numbers in RAM' : ''})`,
    flash: { blocks: 8, blockLength: 1024, mode, onBitSet: 'throw' },
    createState: () => ({ formatted: false, issued: [], accepted: [], captured: undefined, rounds: 0 }),
    boot(flash, state) {
      const device = bootDevice(flash, state, ramNumbers);
      // ---- invariants after recovery
      const records = device.audit.read().records;
      const unlocked = records.filter((r) => r.event?.kind === 'console-unlocked').map((r) => (r.event as { counter: number }).counter);
      for (const n of state.accepted) ok(unlocked.includes(n), `the accepted unlock of challenge ${n} is in the audit log`);
      for (const n of unlocked) ok(state.issued.includes(n), `audited unlock of challenge ${n}, which was issued`);
      equal(new Set(unlocked).size, unlocked.length, 'no challenge number unlocked twice');
      equal(device.send('status').fields.locked, 'true', 'locked after a reboot');
      if (state.captured !== undefined) {
        const replay = device.send('unlock-response', state.captured);
        equal(replay.fields.code, 'no-challenge', 'the captured response is refused after a reboot');
        equal(replay.fields.audited, 'true', 'and the refusal audited');
      }
      const fresh = device.send('unlock');
      const number = Number(fresh.fields.number);
      ok(state.issued.every((n) => number > n), `a new challenge (${number}) is above every number issued before (${state.issued.join(', ')})`);
      state.issued.push(number);
      // ---- the work: unlock, change state, lock; ROUNDS times
      let challenge = fresh;
      while (state.rounds < ROUNDS) {
        const sig = hex(ed.sign(unhex(challenge.fields.challenge), SEED));
        state.captured = { number: challenge.fields.number, sig };
        const reply = device.send('unlock-response', state.captured);
        equal(reply.kind, 'ok', `unlock accepted: ${JSON.stringify(reply.fields)}`);
        state.accepted.push(Number(challenge.fields.number));
        equal(device.send('safe-mode', { mode: 'on' }).kind, 'ok', 'a state-changing command accepted');
        device.send('lock');
        equal(device.send('reboot').fields.code, 'locked', 'refused once locked');
        state.rounds++;
        if (state.rounds < ROUNDS) {
          challenge = device.send('unlock');
          state.issued.push(Number(challenge.fields.number));
        }
      }
    },
  };
}

function run(env: CaseEnv, mode: FlashMode) {
  return { ...runExhaustive(scenario(mode), runnerOptions(env, { variants: 1 })) };
}

export const suite: CaseSuite = {
  name: 'console under power cuts',
  cases: [
    { name: 'plain flash: cut at every operation of unlocks, commands and refusals', run: (env) => run(env, 'plain') },
    { name: 'strict flash (16-byte write-once units): cut at every operation', run: (env) => run(env, 'strict') },
    {
      name: 'planted bug: challenge numbers from RAM (restarting at each boot) are caught',
      run(env) {
        caughtByInvariant(() => runExhaustive(scenario('plain', true), runnerOptions(env, { variants: 1 })), /above every number issued before/, 'RAM challenge numbers');
      },
    },
  ],
};
