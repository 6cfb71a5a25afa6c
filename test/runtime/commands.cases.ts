/**
 * Commands from the cloud (docs/spec/commands.md), in Node and in XS, plain
 * and strict flash: the policy table row by row, replays, forgeries, the
 * rate limit on a virtual monotonic clock, safe mode, and power cuts at
 * every flash operation (and at the actuator) of a command sequence with
 * duplicates. The invariants, checked at every call and every recovery:
 * - the actuator never applies one command counter twice;
 * - 'applied' means applied exactly once, by this call;
 * - 'already-applied' means applied once before;
 * - a command whose processing a cut interrupted is answered, when it comes
 *   again, 'already-applied' (applied and its completion durable),
 *   'outcome-unknown' (its intent durable: never applied again, applied or
 *   not), or 'stale'/'replay' only if it was never applied.
 */
import * as ed from '@noble/ed25519';
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { envelopePrimitives, type EnvelopePrimitives } from '../../firmware/security/envelope-primitives.ts';
import { commandKeyId, ed25519Signer, sealCommand } from '../../firmware/security/envelope-command.ts';
import { ReplayStore, replayBlockLength } from '../../firmware/security/replay-store.ts';
import type { Actuator, ActuatorEffect } from '../../firmware/hal/actuator.ts';
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import {
  COMMAND_POLICY,
  CommandJournal,
  CommandProcessor,
  encodeCommandPayload,
  findRow,
  journalBlockLength,
  type CommandEvent,
  type CommandResult,
  type DeviceMode,
  type PolicyRow,
} from '../../firmware/runtime/commands.ts';
import { PartitionView } from '../../tools/sim/flash/partition-view.ts';
import { PowerCut } from '../../tools/sim/flash/errors.ts';
import { exhaustiveTier, replayCuts, runExhaustive, runRandom, type CutScenario, type CuttableFlash } from '../../tools/sim/power-cut.ts';
import type { FlashMode } from '../../tools/sim/flash/sim-flash.ts';
import { equal, ok, throws } from '../support/check.ts';
import { caughtByInvariant, runnerOptions, throwsCode } from '../support/case-helpers.ts';
import { WriteBackFlash } from '../support/write-back-flash.ts';
import type { CaseEnv, CaseSuite } from '../support/cases.ts';

const DEVICE = Uint8Array.of(0xd1, 0, 0, 0, 0, 0, 0, 0x0c);
const OTHER_DEVICE = Uint8Array.of(0xd1, 0, 0, 0, 0, 0, 0, 0x0d);
const SECRET = new Uint8Array(32).fill(0x5c);
const MINUTE = 60_000;
/** Flash: blocks 0-1 the replay store, blocks 2-3 the journal. */
const BLOCK = 384;
const SLOTS = 4;
/** The power-cut scenario: 2 slots in 224-byte blocks (5 data records each), so the logs rotate. */
const SCENARIO_BLOCK = 224;
const SCENARIO_SLOTS = 2;

/** A virtual monotonic clock: starts near the 2^32 wrap so limits cross it. */
class VirtualClock {
  t = 0x1_0000_0000 - 90_000;
  ticks(): number {
    return this.t % 0x1_0000_0000;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

/** The recording fake: every apply, in order; a second apply of one counter fails the test on the spot. */
class RecordingActuator implements Actuator {
  constructor(
    readonly log: { counter: number; effect: ActuatorEffect }[],
    private readonly hook?: (counter: number) => 'before' | 'after' | undefined,
  ) {}
  apply(effect: ActuatorEffect, counter: number): void {
    const cut = this.hook?.(counter);
    if (cut === 'before') throw new Error('actuator: power lost before the effect');
    ok(!this.log.some((e) => e.counter === counter), `command ${counter} applied twice`);
    this.log.push({ counter, effect: { ...effect } });
    if (cut === 'after') throw new Error('actuator: power lost after the effect');
  }
}

interface Fleet {
  primitives: EnvelopePrimitives;
  keyId: number;
  publicKey: Uint8Array;
  seal(counter: number, payload: Uint8Array, deviceId?: Uint8Array): Uint8Array;
}

function fleet(): Fleet {
  const crypto = createNobleCrypto();
  const primitives = envelopePrimitives(crypto);
  const publicKey = ed.getPublicKey(SECRET);
  const keyId = commandKeyId(crypto, publicKey);
  const sign = ed25519Signer(SECRET);
  return {
    primitives,
    keyId,
    publicKey,
    seal: (counter, payload, deviceId = DEVICE) => sealCommand(payload, { deviceId, counter: { next: () => counter }, keyId, sign }),
  };
}

/** Verification memoised by the exact bytes (sound: same bytes, same answer); keeps the power-cut runs fast in XS. */
function memoPrimitives(inner: EnvelopePrimitives): EnvelopePrimitives {
  const seen = new Map<string, boolean>();
  const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return {
    ...inner,
    ed25519Verify(signature, message, publicKey) {
      const key = `${hex(signature)}:${hex(message)}:${hex(publicKey)}`;
      let verdict = seen.get(key);
      if (verdict === undefined) {
        verdict = inner.ed25519Verify(signature, message, publicKey);
        seen.set(key, verdict);
      }
      return verdict;
    },
  };
}

function row(name: string): PolicyRow {
  const r = COMMAND_POLICY.find((x) => x.name === name);
  ok(r, `row ${name}`);
  return r;
}

/** A valid payload for a row: every parameter at its minimum. */
function validPayload(r: PolicyRow, values: Record<string, number> = {}): Uint8Array {
  const all: Record<string, number> = {};
  for (const p of r.parameters) all[p.name] = values[p.name] ?? p.min;
  return encodeCommandPayload(r, all);
}

interface Device {
  flash: CuttableFlash;
  clock: VirtualClock;
  applied: { counter: number; effect: ActuatorEffect }[];
  events: CommandEvent[];
  processor: CommandProcessor;
  reboot(): void;
  handle(envelope: Uint8Array, mode?: DeviceMode): CommandResult;
}

function device(env: CaseEnv, f: Fleet, o: { reserve?: number; windowBits?: number; slots?: number; hook?: (counter: number) => 'before' | 'after' | undefined } = {}): Device {
  const flash = env.createFlash({ blocks: 4, blockLength: BLOCK, mode: 'plain', onBitSet: 'throw' });
  const replayPart = new PartitionView(flash, 0, 2);
  const journalPart = new PartitionView(flash, 2, 2);
  ReplayStore.format(replayPart);
  CommandJournal.format(journalPart, o.slots ?? SLOTS);
  const d: Device = {
    flash,
    clock: new VirtualClock(),
    applied: [],
    events: [],
    processor: undefined as unknown as CommandProcessor,
    reboot() {
      const replay = ReplayStore.open(replayPart, { reserve: o.reserve ?? 3, windowBits: o.windowBits ?? 16 });
      d.processor = CommandProcessor.open({
        primitives: f.primitives,
        deviceId: DEVICE,
        commandKey: { keyId: f.keyId, publicKey: f.publicKey },
        replay,
        sender: 0,
        journal: journalPart,
        journalSlots: o.slots ?? SLOTS,
        actuator: new RecordingActuator(d.applied, o.hook),
        clock: d.clock,
        onEvent: (e) => d.events.push(e),
      });
      // The rate budget starts spent at boot: a minute later every row has its whole budget.
      d.clock.advance(MINUTE);
    },
    handle: (envelope, mode = 'normal') => d.processor.handle(envelope, mode),
  };
  d.reboot();
  return d;
}

function expectStatus(result: CommandResult, status: CommandResult['status'], what: string, reason?: string): void {
  equal(result.status, status, `${what}: status (${JSON.stringify(result)})`);
  if (reason !== undefined && result.status === 'refused') equal(result.reason, reason, `${what}: reason (${result.detail})`);
}

// ---------------------------------------------------------------- the power-cut scenario

interface Delivery {
  readonly counter: number;
  readonly row: string;
  readonly values: Readonly<Record<string, number>>;
  readonly mode: DeviceMode;
}

/** Commands with explicit duplicates, a safe-mode stretch, a reordered physical command, and every kind. */
function commandScript(): Delivery[] {
  const d = (counter: number, r: string, values: Record<string, number> = {}, mode: DeviceMode = 'normal'): Delivery => ({ counter, row: r, values, mode });
  return [
    d(3, 'set-output', { target: 1, value: 1 }),
    d(3, 'set-output', { target: 1, value: 1 }), // duplicate: already-applied
    d(4, 'report-status', { section: 2 }),
    d(9, 'set-level', { target: 2, value: 400 }),
    d(7, 'pulse-output', { target: 3, value: 250 }), // older than 9: reordered
    d(11, 'set-output', { target: 1, value: 0 }, 'safe'), // refused in safe mode
    d(12, 'check-update', {}, 'safe'),
    d(11, 'set-output', { target: 1, value: 0 }), // refused before: a replay now
    d(9, 'set-level', { target: 2, value: 400 }), // duplicate of an applied one
    d(15, 'pulse-output', { target: 0, value: 100 }),
    d(16, 'enter-safe-mode', {}),
    d(20, 'set-output', { target: 5, value: 1 }),
    d(15, 'pulse-output', { target: 0, value: 100 }),
    d(20, 'set-output', { target: 5, value: 1 }),
  ];
}

interface CutState {
  next: number;
  applied: { counter: number; effect: ActuatorEffect }[];
  /** Physical counters whose processing a cut interrupted (the call never returned). */
  interrupted: number[];
  /** The physical command being processed when the boot ended, if any. */
  inFlight: number | undefined;
  appliedResults: number[];
  applies: number;
  actuatorStruck: boolean;
  outcomes: Record<string, number>;
}

interface CutScenarioOptions {
  mode: FlashMode;
  /** Across every run of the scenario: how the redelivery of an interrupted command was answered. */
  tally?: Record<string, number>;
  /** Stand a different flash under the journal (the planted-bug demonstration). */
  wrapJournal?: (flash: FlashPartition) => FlashPartition;
  /** Cut at the actuator: on the `at`-th apply call (0-based, over all boots), before or after the effect. */
  actuatorCut?: { at: number; phase: 'before' | 'after' };
}

export function commandScenario(f: Fleet, o: CutScenarioOptions): CutScenario<CutState> {
  const script = commandScript();
  const primitives = memoPrimitives(f.primitives);
  let envelopes: Uint8Array[] | undefined;
  const name = `commands/${o.mode}${o.actuatorCut ? `/actuator-cut-${o.actuatorCut.at}-${o.actuatorCut.phase}` : ''}`;
  return {
    name,
    flash: { blocks: 4, blockLength: SCENARIO_BLOCK, mode: o.mode, onBitSet: 'throw' },
    createState: () => ({ next: -1, applied: [], interrupted: [], inFlight: undefined, appliedResults: [], applies: 0, actuatorStruck: false, outcomes: {} }),
    boot(flash, state) {
      envelopes ??= script.map((s) => f.seal(s.counter, validPayload(row(s.row), s.values)));
      const replayPart = new PartitionView(flash, 0, 2);
      const rawJournal = new PartitionView(flash, 2, 2);
      const journalPart = o.wrapJournal ? o.wrapJournal(rawJournal) : rawJournal;
      if (state.next < 0) {
        ReplayStore.format(replayPart);
        CommandJournal.format(rawJournal, SCENARIO_SLOTS);
        state.next = 0;
      }
      if (state.inFlight !== undefined) {
        if (!state.interrupted.includes(state.inFlight)) state.interrupted.push(state.inFlight);
        state.inFlight = undefined;
      }
      const clock = new VirtualClock();
      const events: CommandEvent[] = [];
      const actuator = new RecordingActuator(state.applied, () => {
        const at = state.applies++;
        if (o.actuatorCut === undefined || at !== o.actuatorCut.at || state.actuatorStruck) return undefined;
        // The CPU stops here: any flash operation after it is cut too, and the boot ends when the call returns.
        state.actuatorStruck = true;
        (flash as CuttableFlash).armCut({ atOperation: 0, seed: 7 });
        return o.actuatorCut.phase;
      });
      const processor = CommandProcessor.open({
        primitives,
        deviceId: DEVICE,
        commandKey: { keyId: f.keyId, publicKey: f.publicKey },
        replay: ReplayStore.open(replayPart, { reserve: 2, windowBits: 16 }),
        sender: 0,
        journal: journalPart,
        journalSlots: SCENARIO_SLOTS,
        actuator,
        clock,
        onEvent: (e) => events.push(e),
      });
      // Recovery: every unfinished command the journal reports was interrupted by a cut.
      for (const e of events) if (e.kind === 'command-interrupted') ok(state.interrupted.includes(e.counter), `open reports command ${e.counter} unfinished, but no cut interrupted it`);
      clock.advance(MINUTE);
      while (state.next < script.length) {
        const s = script[state.next];
        const physical = row(s.row).kind === 'physical';
        const appliedBefore = state.applied.filter((a) => a.counter === s.counter).length;
        if (physical) state.inFlight = s.counter;
        const struck = state.actuatorStruck;
        const result = processor.handle(envelopes[state.next], s.mode);
        if (state.actuatorStruck && !struck) throw new PowerCut(-1); // the result was never seen
        state.inFlight = undefined;
        const appliedNow = state.applied.filter((a) => a.counter === s.counter).length;
        ok(appliedNow <= 1, `command ${s.counter} applied ${appliedNow} times`);
        const key = result.status === 'refused' ? `refused-${result.reason}` : result.status;
        state.outcomes[key] = (state.outcomes[key] ?? 0) + 1;
        if (o.tally && state.interrupted.includes(s.counter)) o.tally[`${key}${appliedNow === 1 ? '/was-applied' : '/not-applied'}`] = (o.tally[`${key}${appliedNow === 1 ? '/was-applied' : '/not-applied'}`] ?? 0) + 1;
        if (result.status === 'applied') {
          equal(appliedBefore, 0, `command ${s.counter} answered applied, applied before`);
          equal(appliedNow, 1, `command ${s.counter} answered applied`);
          state.appliedResults.push(s.counter);
        } else if (result.status === 'already-applied') {
          equal(appliedNow, 1, `command ${s.counter} answered already-applied`);
        } else if (result.status === 'refused') {
          equal(appliedNow, appliedBefore, `a refusal of ${s.counter} applied it`);
          if (result.reason === 'outcome-unknown') ok(state.interrupted.includes(s.counter), `command ${s.counter} outcome-unknown, never interrupted`);
          // A command applied before is never answered as if the device did not know it.
          if (appliedNow === 1) ok(result.reason === 'outcome-unknown', `command ${s.counter}, applied, answered ${result.reason}`);
        }
        state.next++;
        clock.advance(MINUTE);
      }
      // Every command answered 'applied' is in the actuator's log exactly once, and nothing else is applied twice.
      for (const c of state.appliedResults) equal(state.applied.filter((a) => a.counter === c).length, 1, `applied command ${c}`);
    },
  };
}

/** The policy table as the spec states it (docs/spec/commands.md, "Policy table"): code, name, kind, safe mode, rate per minute, parameters. */
const POLICY_SPEC = [
  '0x01 set-output physical no 6 target:1:0..7 value:1:0..1',
  '0x02 set-level physical no 6 target:1:0..3 value:2:0..1000',
  '0x03 pulse-output physical no 2 target:1:0..7 value:2:1..10000',
  '0x10 report-status diagnostic yes 10 section:1:0..3',
  '0x20 check-update update yes 4',
  '0x21 roll-back-update update yes 2 version:4:1..4294967295',
  '0x30 enter-safe-mode mode no 2',
  '0x31 leave-safe-mode mode yes 2',
  '0x32 quarantine mode yes 2',
  '0x33 leave-quarantine mode yes 2',
  '0x40 rotate-key key no 2 keyId:4:1..4294967295',
  '0x41 confirm-key-rotation key no 2 keyId:4:1..4294967295 keyPrefix:4:0..4294967295',
];

function describeRow(r: PolicyRow): string {
  const params = r.parameters.map((p) => `${p.name}:${p.bytes}:${p.min}..${p.max}`);
  equal(r.rate.windowMs, MINUTE, `${r.name}: window`);
  return [`0x${r.code.toString(16).padStart(2, '0')}`, r.name, r.kind, r.inSafeMode ? 'yes' : 'no', String(r.rate.count), ...params].join(' ');
}

const unitCases = [
  {
    name: 'policy table: the rows are the spec\'s',
    run() {
      equal(COMMAND_POLICY.map(describeRow).join('\n'), POLICY_SPEC.join('\n'), 'table');
      ok(Object.isFrozen(COMMAND_POLICY) && COMMAND_POLICY.every((r) => Object.isFrozen(r)), 'frozen');
    },
  },
  ...COMMAND_POLICY.map((r) => ({
    name: `policy row ${r.name}: allowed in normal mode, ${r.inSafeMode ? 'allowed' : 'refused'} in safe mode, bounds, exact length, ${r.rate.count} per minute`,
    run(env: CaseEnv) {
      const f = fleet();
      const d = device(env, f);
      let counter = 100;
      const physical = r.kind === 'physical';
      const send = (payload: Uint8Array, mode: DeviceMode = 'normal') => d.handle(f.seal(counter++, payload), mode);
      // Normal mode, every parameter at its minimum then its maximum.
      const max: Record<string, number> = {};
      for (const p of r.parameters) max[p.name] = p.max;
      const first = send(validPayload(r));
      expectStatus(first, physical ? 'applied' : 'accepted', `${r.name} at minimum`);
      const second = send(validPayload(r, max));
      expectStatus(second, physical ? 'applied' : 'accepted', `${r.name} at maximum`);
      if (physical && second.status === 'applied') {
        equal(second.effect.kind, r.name, 'effect kind');
        equal(second.effect.target, `${r.actuator}-${max.target}`, 'effect target');
        equal(second.effect.value, max.value, 'effect value');
      }
      if (!physical && second.status === 'accepted') {
        equal(second.kind, r.kind, 'kind');
        for (const p of r.parameters) equal(second.parameters[p.name], p.max, `parameter ${p.name}`);
      }
      d.clock.advance(MINUTE);
      // Safe mode.
      expectStatus(send(validPayload(r), 'safe'), r.inSafeMode ? 'accepted' : 'refused', `${r.name} in safe mode`, r.inSafeMode ? undefined : 'safe-mode');
      d.clock.advance(MINUTE);
      // Bounds: one past each end (when the field can hold it), and lengths one short and one long.
      for (const p of r.parameters) {
        const limit = p.bytes === 1 ? 0xff : p.bytes === 2 ? 0xffff : 0xffffffff;
        if (p.max < limit) expectStatus(send(validPayload(r, { [p.name]: p.max + 1 })), 'refused', `${p.name} = max + 1`, 'bad-parameters');
        if (p.min > 0) expectStatus(send(validPayload(r, { [p.name]: p.min - 1 })), 'refused', `${p.name} = min - 1`, 'bad-parameters');
      }
      const good = validPayload(r);
      if (good.length > 1) expectStatus(send(good.subarray(0, good.length - 1)), 'refused', 'one byte short', 'bad-parameters');
      const long = new Uint8Array(good.length + 1);
      long.set(good);
      expectStatus(send(long), 'refused', 'one byte long', 'bad-parameters');
      // Rate: `count` starts in one minute, the next refused, then a whole budget again a minute later.
      d.clock.advance(MINUTE);
      for (let i = 0; i < r.rate.count; i++) {
        expectStatus(send(validPayload(r)), physical ? 'applied' : 'accepted', `start ${i + 1} of ${r.rate.count}`);
        d.clock.advance(Math.floor(MINUTE / (2 * r.rate.count)));
      }
      expectStatus(send(validPayload(r)), 'refused', `start ${r.rate.count + 1} within a minute`, 'rate-limited');
      d.clock.advance(MINUTE / 2);
      expectStatus(send(validPayload(r)), physical ? 'applied' : 'accepted', 'a minute after the first start');
      const applied = d.applied.length;
      equal(applied, physical ? 3 + r.rate.count : 0, 'actuator calls');
      return { commands: counter - 100, applied };
    },
  })),
  {
    name: 'unknown command codes and an empty payload are refused; refusals reach no actuator and consume the counter',
    run(env: CaseEnv) {
      const f = fleet();
      const d = device(env, f);
      expectStatus(d.handle(f.seal(5, new Uint8Array(0))), 'refused', 'empty payload', 'unknown-command');
      let counter = 6;
      for (const code of [0x00, 0x04, 0x11, 0x22, 0x34, 0xff]) expectStatus(d.handle(f.seal(counter++, Uint8Array.of(code, 0, 0))), 'refused', `code 0x${code.toString(16)}`, 'unknown-command');
      expectStatus(d.handle(f.seal(5, validPayload(row('set-output')))), 'refused', 'a valid command under a refused counter', 'replay');
      equal(d.applied.length, 0, 'nothing applied');
    },
  },
  {
    name: 'replays: the same counter twice, after a restart, and below the window; a refused command never applies later',
    run(env: CaseEnv) {
      const f = fleet();
      const d = device(env, f, { windowBits: 16 });
      const set = f.seal(50, validPayload(row('set-output'), { target: 2, value: 1 }));
      const status = f.seal(51, validPayload(row('report-status')));
      const refused = f.seal(52, validPayload(row('set-output'), { target: 3, value: 1 }));
      expectStatus(d.handle(set), 'applied', 'first delivery');
      expectStatus(d.handle(set), 'already-applied', 'same counter again');
      expectStatus(d.handle(status), 'accepted', 'diagnostic');
      expectStatus(d.handle(status), 'refused', 'diagnostic again', 'replay');
      expectStatus(d.handle(refused, 'safe'), 'refused', 'physical in safe mode', 'safe-mode');
      expectStatus(d.handle(refused, 'normal'), 'refused', 'the same envelope after safe mode', 'replay');
      expectStatus(d.handle(f.seal(100, validPayload(row('check-update')))), 'accepted', 'counter 100');
      expectStatus(d.handle(f.seal(84, validPayload(row('check-update')))), 'refused', 'counter 84 = 100 - W', 'stale');
      expectStatus(d.handle(f.seal(85, validPayload(row('check-update')))), 'accepted', 'counter 85, inside the window');
      d.reboot();
      expectStatus(d.handle(set), 'already-applied', 'applied command after a restart');
      expectStatus(d.handle(status), 'refused', 'diagnostic after a restart', 'stale');
      expectStatus(d.handle(refused, 'normal'), 'refused', 'refused command after a restart', 'stale');
      equal(d.applied.map((a) => a.counter).join(','), '50', 'applied once');
      const kinds = d.events.map((e) => e.kind);
      equal(kinds.filter((k) => k === 'command-already-applied').length, 2, 'already-applied events');
      equal(kinds.filter((k) => k === 'command-applied').length, 1, 'applied events');
    },
  },
  {
    name: 'physical commands apply in counter order: an older one, fresh in the window, is refused as reordered',
    run(env: CaseEnv) {
      const f = fleet();
      const d = device(env, f);
      expectStatus(d.handle(f.seal(10, validPayload(row('set-level'), { target: 1, value: 600 }))), 'applied', 'counter 10');
      d.clock.advance(MINUTE);
      expectStatus(d.handle(f.seal(8, validPayload(row('set-level'), { target: 1, value: 200 }))), 'refused', 'counter 8 after 10', 'reordered');
      expectStatus(d.handle(f.seal(9, validPayload(row('report-status')))), 'accepted', 'a diagnostic may be reordered');
      equal(d.applied.length, 1, 'one effect');
    },
  },
  {
    name: 'forged commands (bad signature, another device, unknown key, wrong suite, truncated) reach no actuator and move no window',
    run(env: CaseEnv) {
      const f = fleet();
      const d = device(env, f);
      const payload = validPayload(row('set-output'), { target: 0, value: 1 });
      const tampered = f.seal(30, payload);
      tampered[22] ^= 1;
      const badSig = f.seal(31, payload);
      badSig[badSig.length - 1] ^= 0x80;
      const otherKey = sealCommand(payload, { deviceId: DEVICE, counter: { next: () => 32 }, keyId: (f.keyId ^ 1) >>> 0, sign: ed25519Signer(new Uint8Array(32).fill(7)) });
      const otherSigner = sealCommand(payload, { deviceId: DEVICE, counter: { next: () => 33 }, keyId: f.keyId, sign: ed25519Signer(new Uint8Array(32).fill(7)) });
      const cases: [string, Uint8Array, string][] = [
        ['payload changed', tampered, 'bad-tag'],
        ['signature changed', badSig, 'bad-tag'],
        ['another key id', otherKey, 'unknown-key'],
        ['signed by another key under our key id', otherSigner, 'bad-tag'],
        ['for another device (the signature covers the device id, which is not on the wire)', f.seal(34, payload, OTHER_DEVICE), 'bad-tag'],
        ['truncated', f.seal(35, payload).subarray(0, 40), 'too-short'],
      ];
      for (const [what, envelope, code] of cases) {
        const result = d.handle(envelope);
        expectStatus(result, 'refused', what, 'unauthenticated');
        const event = d.events[d.events.length - 1];
        ok(event.kind === 'command-refused' && event.code === code, `${what}: event ${JSON.stringify(event)}`);
      }
      equal(d.applied.length, 0, 'no effect');
      // The counters the forgeries carried are still fresh for genuine commands.
      for (const c of [30, 31, 32, 33]) expectStatus(d.handle(f.seal(c, validPayload(row('report-status')))), 'accepted', `genuine counter ${c}`);
    },
  },
  {
    name: 'rate limit on the monotonic clock: spent at boot, refilled a window later, across the 2^32 tick wrap',
    run(env: CaseEnv) {
      const f = fleet();
      const d = device(env, f);
      // A fresh boot starts spent; put its first tick 70 s before the 2^32 wrap.
      d.clock.t = 0x1_0000_0000 - 70_000;
      d.reboot();
      d.clock.advance(-MINUTE); // as if no time passed since the boot
      const pulse = row('pulse-output');
      let counter = 200;
      expectStatus(d.handle(f.seal(counter++, validPayload(pulse))), 'refused', 'right after boot', 'rate-limited');
      d.clock.advance(MINUTE - 1);
      expectStatus(d.handle(f.seal(counter++, validPayload(pulse))), 'refused', '1 ms before a minute after boot', 'rate-limited');
      d.clock.advance(1);
      const wrapBefore = d.clock.ticks();
      expectStatus(d.handle(f.seal(counter++, validPayload(pulse))), 'applied', 'a minute after boot');
      d.clock.advance(30_000);
      const wrapAfter = d.clock.ticks();
      ok(wrapAfter < wrapBefore, `the clock wrapped (${wrapBefore} -> ${wrapAfter})`);
      expectStatus(d.handle(f.seal(counter++, validPayload(pulse))), 'applied', 'second of 2, across the wrap');
      expectStatus(d.handle(f.seal(counter++, validPayload(pulse))), 'refused', 'third within a minute', 'rate-limited');
      expectStatus(d.handle(f.seal(counter++, validPayload(row('set-output')))), 'applied', 'another row has its own budget');
      d.clock.advance(30_000);
      expectStatus(d.handle(f.seal(counter++, validPayload(pulse))), 'applied', 'a minute after the first');
      equal(d.applied.length, 4, 'effects');
    },
  },
  {
    name: 'an actuator that fails: outcome-unknown now, after a restart (with a command-interrupted event), never applied again',
    run(env: CaseEnv) {
      const f = fleet();
      const d = device(env, f, { hook: (counter) => (counter === 41 ? 'after' : undefined) });
      const envelope = f.seal(41, validPayload(row('pulse-output'), { target: 4, value: 500 }));
      expectStatus(d.handle(envelope), 'refused', 'actuator throws', 'outcome-unknown');
      equal(d.processor.journalState(41), 'unknown', 'journal');
      expectStatus(d.handle(envelope), 'refused', 'again', 'outcome-unknown');
      const before = d.events.length;
      d.reboot();
      const interrupted = d.events.slice(before);
      equal(JSON.stringify(interrupted), JSON.stringify([{ kind: 'command-interrupted', keyId: f.keyId, counter: 41 }]), 'open reports the interrupted command');
      expectStatus(d.handle(envelope), 'refused', 'after a restart', 'outcome-unknown');
      equal(d.applied.filter((a) => a.counter === 41).length, 1, 'applied once (the fake recorded it before throwing)');
      expectStatus(d.handle(f.seal(50, validPayload(row('pulse-output'), { target: 4, value: 500 }))), 'applied', 'the cloud re-signs with a new counter, above the restart floor');
    },
  },
  {
    name: 'the journal keeps the last S physical commands: an older duplicate is refused stale, never applied again',
    run(env: CaseEnv) {
      const f = fleet();
      const d = device(env, f, { slots: 2 });
      const sent = [60, 61, 62].map((c) => f.seal(c, validPayload(row('set-output'), { target: c - 60, value: 1 })));
      for (const e of sent) expectStatus(d.handle(e), 'applied', 'first delivery');
      expectStatus(d.handle(sent[2]), 'already-applied', 'newest');
      expectStatus(d.handle(sent[1]), 'already-applied', 'second newest');
      expectStatus(d.handle(sent[0]), 'refused', 'forgotten by the journal', 'replay');
      d.reboot();
      expectStatus(d.handle(sent[0]), 'refused', 'forgotten, after a restart', 'stale');
      expectStatus(d.handle(sent[1]), 'already-applied', 'kept, after a restart');
      equal(d.applied.length, 3, 'three effects');
    },
  },
  {
    name: 'a journal that does not open: reported at open, physical commands refused journal-unavailable, the others still answered',
    run(env: CaseEnv) {
      const f = fleet();
      const d = device(env, f);
      expectStatus(d.handle(f.seal(70, validPayload(row('set-output'), { value: 1 }))), 'applied', 'before the damage');
      // Both journal blocks erased (blank), then garbage in one (not-formatted / damaged).
      for (const [what, spoil] of [
        ['blank', () => { d.flash.eraseBlock(2); d.flash.eraseBlock(3); }],
        ['garbage', () => d.flash.write(2 * BLOCK, new Uint8Array(64).fill(0x12))],
      ] as const) {
        spoil();
        const before = d.events.length;
        d.reboot();
        ok(!d.processor.journalAvailable, `${what}: journal unavailable`);
        const event = d.events[before];
        ok(event.kind === 'command-journal-unreadable', `${what}: event ${JSON.stringify(event)}`);
        const base = what === 'blank' ? 80 : 90;
        expectStatus(d.handle(f.seal(base, validPayload(row('set-output'), { value: 0 }))), 'refused', `${what}: physical`, 'journal-unavailable');
        expectStatus(d.handle(f.seal(base + 1, validPayload(row('report-status')))), 'accepted', `${what}: diagnostic`);
        expectStatus(d.handle(f.seal(base + 2, validPayload(row('check-update'))), 'safe'), 'accepted', `${what}: update in safe mode`);
        expectStatus(d.handle(f.seal(70, validPayload(row('set-output'), { value: 1 }))), 'refused', `${what}: the applied command, unknown to a lost journal`, 'stale');
      }
      equal(d.applied.length, 1, 'one effect');
      throws(() => CommandProcessor.open({ ...({} as Parameters<typeof CommandProcessor.open>[0]), journal: env.createFlash({ blocks: 1, blockLength: 4096 }), commandKey: { keyId: f.keyId, publicKey: f.publicKey } }), 'StorageError', 'bad geometry still throws');
    },
  },
  {
    name: 'journal: slots and geometry are checked; a blank or foreign partition is refused',
    run(env: CaseEnv) {
      for (const slots of [0, 63, 1.5]) throws(() => CommandJournal.format(env.createFlash({ blocks: 2, blockLength: 4096 }), slots), 'RangeError', `slots ${slots}`);
      equal(journalBlockLength(4), 352, 'block for 4 slots');
      throwsCode(() => CommandJournal.open(env.createFlash({ blocks: 2, blockLength: 4096 })), 'StorageError', 'blank', 'blank');
      const replay = env.createFlash({ blocks: 2, blockLength: replayBlockLength(1) });
      ReplayStore.format(replay);
      throws(() => CommandJournal.open(replay, 1), 'StorageError', 'a replay-store partition');
      throwsCode(() => CommandJournal.format(env.createFlash({ blocks: 2, blockLength: 320 }), 8), 'StorageError', 'bad-geometry', '8 slots in 320-byte blocks');
    },
  },
];

/** What the clean run answers, row by row of the script. */
const CLEAN_OUTCOMES = ['applied', 'already-applied', 'accepted', 'applied', 'refused', 'refused', 'accepted', 'refused', 'already-applied', 'applied', 'accepted', 'applied', 'already-applied', 'already-applied'];

export const suite: CaseSuite = {
  name: 'commands',
  cases: [
    ...unitCases,
    {
      name: 'the clean run of the power-cut script: what each delivery is answered',
      run(env) {
        const f = fleet();
        const d = device(env, f, { reserve: 2 });
        const results = commandScript().map((s) => {
          const r = d.handle(f.seal(s.counter, validPayload(row(s.row), s.values)), s.mode);
          d.clock.advance(MINUTE);
          return r;
        });
        equal(results.map((r) => r.status).join(','), CLEAN_OUTCOMES.join(','), 'statuses');
        const reasons = results.flatMap((r) => (r.status === 'refused' ? [r.reason] : []));
        equal(reasons.join(','), 'reordered,safe-mode,replay', 'refusals');
        equal(d.applied.map((a) => a.counter).join(','), '3,9,15,20', 'applied counters');
        equal(d.events.length, results.length, 'one event per call');
        // The power-cut scenario's clean run rotates its logs (the two formats erase 4 blocks, each rotation 1).
        const scenario = commandScenario(f, { mode: 'plain' });
        const flash = env.createFlash(scenario.flash);
        scenario.boot(flash, scenario.createState(), 0);
        const erases = flash.counters.erases;
        ok(erases >= 6, `rotations in the scenario: ${erases - 4}`);
        return { scenarioOperations: flash.counters.operations, scenarioErases: erases };
      },
    },
    ...(['plain', 'strict'] as const).map((mode) => ({
      name: `power cut at every flash operation of the script, ${mode} (both tear modes): each branch of the rule for an interrupted command is reached`,
      run: (env: CaseEnv) => {
        const tally: Record<string, number> = {};
        const report = runExhaustive(commandScenario(fleet(), { mode, tally }), runnerOptions(env, { variants: exhaustiveTier() ? 8 : 2 }));
        // A cut before the intent was durable: never applied, refused as a replay or stale; after it: outcome unknown; after the completion: already applied.
        ok((tally['refused-stale/not-applied'] ?? 0) + (tally['refused-replay/not-applied'] ?? 0) > 0, `no interrupted command was refused unapplied: ${JSON.stringify(tally)}`);
        ok((tally['refused-outcome-unknown/was-applied'] ?? 0) > 0, `no applied, unfinished command was answered outcome-unknown: ${JSON.stringify(tally)}`);
        ok((tally['refused-outcome-unknown/not-applied'] ?? 0) > 0, `no unapplied command with a durable intent (a torn second copy) was answered outcome-unknown: ${JSON.stringify(tally)}`);
        ok((tally['already-applied/was-applied'] ?? 0) > 0, `no interrupted command was answered already-applied: ${JSON.stringify(tally)}`);
        return { ...report, ...tally };
      },
    })),
    {
      name: 'the invariants catch a journal whose writes return before they are durable',
      run(env) {
        const scenario = commandScenario(fleet(), { mode: 'plain', wrapJournal: (flash) => new WriteBackFlash(flash) });
        const caught = caughtByInvariant(
          () => runExhaustive(scenario, runnerOptions(env, { saveFailureImage: () => undefined, secondCuts: 'none' })),
          /applied, answered|applied twice|unfinished/,
          'a journal that is not durable',
        );
        return { caughtAtOperation: caught.cutPlans[0].atOperation };
      },
    },
    ...(['plain', 'strict'] as const).map((mode) => ({
      name: `random multi-cut runs of the script (up to 3 cuts each), ${mode}`,
      run: (env: CaseEnv) => ({ ...runRandom(commandScenario(fleet(), { mode }), { ...runnerOptions(env), runs: 20, maxCuts: 3, seed: mode === 'plain' ? 31 : 32 }) }),
    })),
    {
      name: 'a cut at the actuator, before and after the effect, at every apply: never applied again, answered outcome-unknown',
      run(env) {
        const f = fleet();
        let runs = 0;
        for (const phase of ['before', 'after'] as const) {
          const tally: Record<string, number> = {};
          for (let at = 0; at < 4; at++) {
            replayCuts(commandScenario(f, { mode: 'plain', actuatorCut: { at, phase }, tally }), [], runnerOptions(env));
            runs++;
          }
          // Every later delivery of the interrupted command (the resend, and the script's own duplicates) is outcome-unknown.
          const expected = `refused-outcome-unknown/${phase === 'before' ? 'not-applied' : 'was-applied'}`;
          equal(Object.keys(tally).join(','), expected, `answers to an interrupted command, cut ${phase} the effect`);
          ok(tally[expected] >= 4, `${expected}: ${tally[expected]}`);
        }
        return { runs };
      },
    },
  ],
};
