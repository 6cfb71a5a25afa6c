/**
 * Commands from the cloud (docs/spec/commands.md): authenticated by
 * `openCommand` (signature by the fleet's command key), fresh by the
 * device's persisted replay window (its own sender index of a ReplayStore),
 * allowed by the policy table (kind, safe mode, rate limit on the monotonic
 * clock, parameter bounds), and, for a physical effect, applied through the
 * Actuator HAL at most once per command counter across power cuts: an
 * intent is journaled before the effect and a completion after it; a
 * duplicate is answered 'already-applied'; a command cut between the two is
 * 'outcome-unknown' and is never applied again.
 *
 * Every call yields one typed result and one event (`onEvent`) for the
 * runtime to audit; `open` yields one 'command-interrupted' event per
 * command a cut left unfinished. No wall clock is read anywhere.
 */
import type { Actuator, ActuatorEffect } from '../hal/actuator.ts';
import type { MonotonicClock } from '../hal/clock.ts';
import type { FlashPartition } from '../hal/flash.ts';
import { openCommand, type CommandKey } from '../security/envelope-command.ts';
import type { ReplayGuard } from '../security/envelope.ts';
import { EnvelopeError, type CommandSuite, type EnvelopeErrorCode } from '../security/envelope-format.ts';
import type { DeviceKeys } from '../security/envelope-keys.ts';
import type { EnvelopePrimitives } from '../security/envelope-primitives.ts';
import type { ReplayVerdict } from '../security/replay-window.ts';
import { CommandJournal, DEFAULT_JOURNAL_SLOTS } from './_command-journal.ts';
import { COMMAND_POLICY, decodeCommandPayload, type CommandKind, type PolicyRow } from './_command-policy.ts';
import { RateLimiter } from './_command-rate.ts';
import { StorageError, type StorageErrorCode } from '../base/storage-error.ts';

export { COMMAND_POLICY, encodeCommandPayload, decodeCommandPayload, findRow, type CommandKind, type PolicyRow, type ParameterSpec, type RateLimit } from './_command-policy.ts';
export { CommandJournal, COMMAND_JOURNAL_FORMAT, COMMAND_JOURNAL_KIND, DEFAULT_JOURNAL_SLOTS, MAX_JOURNAL_SLOTS, journalBlockLength, journalLog } from './_command-journal.ts';

export type DeviceMode = 'normal' | 'safe';

export type CommandRefusal =
  /** The envelope did not open: malformed, another device, unknown key, bad signature (`code` says which). */
  | 'unauthenticated'
  /** The window saw this counter in this boot, and the journal does not hold it. */
  | 'replay'
  /** At or below the window or the restart floor, and the journal does not hold it. */
  | 'stale'
  /** A physical command older than one already started: applying it would reorder effects. */
  | 'reordered'
  | 'safe-mode'
  | 'rate-limited'
  | 'unknown-command'
  | 'bad-parameters'
  /** The journal holds the command's intent but not its completion (a cut or an actuator failure): never applied again. */
  | 'outcome-unknown'
  /** The journal could not be opened (blank, damaged, ...): no physical effect without it. */
  | 'journal-unavailable'
  /** Authentic, but the accepted revocation list revokes the command key (docs/spec/revocation.md). */
  | 'key-revoked'
  /** The revocation store did not open: no command is known not to be revoked (fail closed). */
  | 'revocation-unavailable';

export type CommandResult =
  | { readonly status: 'applied'; readonly counter: number; readonly command: string; readonly effect: ActuatorEffect }
  /** Fresh and allowed, not physical: the runtime runs it (update check, diagnostics, safe mode). */
  | { readonly status: 'accepted'; readonly counter: number; readonly command: string; readonly kind: Exclude<CommandKind, 'physical'>; readonly parameters: Readonly<Record<string, number>> }
  | { readonly status: 'already-applied'; readonly counter: number }
  | { readonly status: 'refused'; readonly counter: number | null; readonly command: string | null; readonly reason: CommandRefusal; readonly detail: string };

/** What the runtime audits (docs/spec/commands.md, "Events"). `keyId` is the command key's. */
export type CommandEvent =
  | { readonly kind: 'command-applied'; readonly keyId: number; readonly counter: number; readonly command: string; readonly target: string; readonly value: number }
  | { readonly kind: 'command-accepted'; readonly keyId: number; readonly counter: number; readonly command: string }
  | { readonly kind: 'command-already-applied'; readonly keyId: number; readonly counter: number }
  | { readonly kind: 'command-refused'; readonly keyId: number; readonly counter: number | null; readonly command: string | null; readonly reason: CommandRefusal; readonly code: EnvelopeErrorCode | null }
  /** Found by `open`: a command started (intent durable) and not known to have finished. */
  | { readonly kind: 'command-interrupted'; readonly keyId: number; readonly counter: number }
  /** Found by `open`: the journal's StorageError code; physical commands are refused until it is provisioned again. */
  | { readonly kind: 'command-journal-unreadable'; readonly keyId: number; readonly code: StorageErrorCode };

/** The replay store's two calls the processor needs (a ReplayStore). */
export interface CommandReplayStore {
  check(sender: number, counter: number): ReplayVerdict;
  accept(sender: number, counter: number): void;
}

export interface CommandProcessorOptions {
  primitives: EnvelopePrimitives;
  /** This device's id: a command for any other is refused. */
  deviceId: Uint8Array;
  /** The fleet's command key (one key, one counter, one sender index, one journal). */
  commandKey: CommandKey;
  /** Needed to open encrypted commands (suite 0x42). */
  keys?: DeviceKeys;
  suites?: readonly CommandSuite[];
  /** The device's persisted replay windows, and the command key's sender index in it. */
  replay: CommandReplayStore;
  sender: number;
  /** The journal's partition (its own, formatted with CommandJournal.format). */
  journal: FlashPartition;
  journalSlots?: number;
  actuator: Actuator;
  clock: MonotonicClock;
  /** Default COMMAND_POLICY. */
  policy?: readonly PolicyRow[];
  onEvent?: (event: CommandEvent) => void;
  /**
   * Asked for every authentic command before its freshness: a refusal when
   * the command key may not be used (revoked by the accepted revocation list,
   * or no list can be read). The counter is not consumed (no flash write for
   * a revoked key's traffic); the refusal is emitted and answered.
   */
  keyGate?: (keyId: number) => { readonly reason: 'key-revoked' | 'revocation-unavailable'; readonly detail: string } | undefined;
}

/** openCommand's window step, deferred: the processor decides freshness itself, after the journal. */
const AUTHENTICATE_ONLY: ReplayGuard = Object.freeze({ check: (): ReplayVerdict => 'fresh', accept: (): void => undefined });

export class CommandProcessor {
  private readonly options: CommandProcessorOptions;
  private readonly journal: CommandJournal | undefined;
  private readonly rate: RateLimiter;
  private readonly policy: readonly PolicyRow[];
  private readonly keyId: number;

  private constructor(options: CommandProcessorOptions, journal: CommandJournal | undefined) {
    this.options = options;
    this.journal = journal;
    this.rate = new RateLimiter(options.clock);
    this.policy = options.policy ?? COMMAND_POLICY;
    this.keyId = options.commandKey.keyId;
  }

  /**
   * Open the journal (writes nothing) and report every command a cut left
   * unfinished. A journal that does not open (its StorageError: blank,
   * damaged, not-formatted, format-too-new ...) is reported as an event and
   * the processor still answers update, diagnostic and mode commands, while
   * every physical command is refused 'journal-unavailable' (the runtime
   * enters safe mode on that event). Other errors (bad options) throw.
   */
  static open(options: CommandProcessorOptions): CommandProcessor {
    if (typeof options !== 'object' || options === null) throw new TypeError('command processor options must be an object');
    let journal: CommandJournal | undefined;
    let failure: StorageErrorCode | undefined;
    try {
      journal = CommandJournal.open(options.journal, options.journalSlots ?? DEFAULT_JOURNAL_SLOTS);
    } catch (error) {
      if (!(error instanceof StorageError) || error.code === 'bad-geometry') throw error;
      failure = error.code;
    }
    const processor = new CommandProcessor(options, journal);
    if (failure !== undefined) processor.emit({ kind: 'command-journal-unreadable', keyId: processor.keyId, code: failure });
    for (const counter of journal?.unfinished() ?? []) processor.emit({ kind: 'command-interrupted', keyId: processor.keyId, counter });
    return processor;
  }

  /** Whether the journal opened (physical commands need it). */
  get journalAvailable(): boolean {
    return this.journal !== undefined;
  }

  /** What the journal knows of `counter` (diagnostics, tests). */
  journalState(counter: number): 'done' | 'unknown' | undefined {
    return this.journal?.lookup(counter);
  }

  /** Process one command envelope as received, in `mode`. */
  handle(envelope: Uint8Array, mode: DeviceMode): CommandResult {
    if (mode !== 'normal' && mode !== 'safe') throw new TypeError(`mode must be 'normal' or 'safe', got ${String(mode)}`);
    const o = this.options;
    let counter: number;
    let payload: Uint8Array;
    try {
      const opened = openCommand(envelope, { primitives: o.primitives, deviceId: o.deviceId, commandKeys: [o.commandKey], replay: AUTHENTICATE_ONLY, keys: o.keys, suites: o.suites });
      counter = opened.counter;
      payload = opened.payload;
    } catch (error) {
      if (!(error instanceof EnvelopeError)) throw error;
      return this.refuse(null, null, 'unauthenticated', error.message, error.code);
    }
    const gate = o.keyGate?.(this.keyId);
    if (gate !== undefined) return this.refuse(counter, null, gate.reason, gate.detail);
    // Freshness: a counter the window does not call fresh is answered from the journal, or refused.
    const verdict = o.replay.check(o.sender, counter);
    if (verdict !== 'fresh') {
      const known = this.journal?.lookup(counter);
      if (known === 'done') {
        this.emit({ kind: 'command-already-applied', keyId: this.keyId, counter });
        return { status: 'already-applied', counter };
      }
      if (known === 'unknown') return this.refuse(counter, null, 'outcome-unknown', `command ${counter} was started and not known to have finished: never applied again`);
      return this.refuse(counter, null, verdict === 'duplicate' ? 'replay' : 'stale', `counter ${counter} is ${verdict}`);
    }
    // Policy, decided before the counter is consumed; every decision consumes it.
    const decoded = decodeCommandPayload(this.policy, payload);
    let refusal: { reason: CommandRefusal; detail: string } | undefined;
    let row: PolicyRow | undefined;
    if (!decoded.ok) {
      refusal = decoded;
      row = decoded.row;
    } else {
      row = decoded.command.row;
      if (mode === 'safe' && !row.inSafeMode) refusal = { reason: 'safe-mode', detail: `${row.name} is refused in safe mode` };
      else if (row.kind === 'physical' && this.journal === undefined) refusal = { reason: 'journal-unavailable', detail: 'the command journal did not open' };
      else if (row.kind === 'physical' && counter <= (this.journal as CommandJournal).highestStarted()) {
        refusal = { reason: 'reordered', detail: `physical command ${counter} is older than ${(this.journal as CommandJournal).highestStarted()}, already started` };
      } else if (!this.rate.allows(row.code, row.rate)) refusal = { reason: 'rate-limited', detail: `${row.name}: ${row.rate.count} per ${row.rate.windowMs} ms` };
    }
    // The counter is decided once: refused or not, it can never be accepted again (a refused command cannot apply later).
    o.replay.accept(o.sender, counter);
    if (refusal !== undefined || !decoded.ok || row === undefined) {
      const r = refusal ?? { reason: 'unknown-command' as const, detail: 'no row' };
      return this.refuse(counter, row?.name ?? null, r.reason, r.detail);
    }
    this.rate.record(row.code, row.rate);
    const parameters = decoded.command.parameters;
    if (row.kind !== 'physical') {
      this.emit({ kind: 'command-accepted', keyId: this.keyId, counter, command: row.name });
      return { status: 'accepted', counter, command: row.name, kind: row.kind, parameters };
    }
    const effect: ActuatorEffect = Object.freeze({ kind: row.name, target: `${row.actuator ?? 'output'}-${parameters.target}`, value: parameters.value });
    // Intent durable before the effect, completion after it (docs/spec/commands.md, "State table").
    const journal = this.journal as CommandJournal;
    const slot = journal.begin(counter);
    try {
      o.actuator.apply(effect, counter);
    } catch (error) {
      // Nothing is written: the intent stays unfinished, so the command reads 'outcome-unknown' from now on.
      return this.refuse(counter, row.name, 'outcome-unknown', `the actuator failed: ${error instanceof Error ? error.message : String(error)}`);
    }
    journal.finish(slot, counter);
    this.emit({ kind: 'command-applied', keyId: this.keyId, counter, command: row.name, target: effect.target, value: effect.value });
    return { status: 'applied', counter, command: row.name, effect };
  }

  private refuse(counter: number | null, command: string | null, reason: CommandRefusal, detail: string, code: EnvelopeErrorCode | null = null): CommandResult {
    this.emit({ kind: 'command-refused', keyId: this.keyId, counter, command, reason, code });
    return { status: 'refused', counter, command, reason, detail };
  }

  private emit(event: CommandEvent): void {
    this.options.onEvent?.(event);
  }
}
