/**
 * Safe mode (docs/spec/safe-mode.md): the device keeps collecting and
 * delivering telemetry, answers only authenticated update and diagnostic
 * commands (and mode commands), and refuses every command with a physical
 * effect.
 *
 * The state is persisted in its own small partition as key 0 of a two-block
 * log (base/two-block-log.ts: mirrored records, rotation, typed refusals):
 *
 *   value = transitions * 256 + cause
 *
 * `transitions` counts every enter and every leave since the partition was
 * formatted, so the value only grows (as the log requires) and the device
 * is in safe mode exactly when `transitions` is odd; `cause` is the cause
 * code of the last transition (an entry cause when odd, a leave cause when
 * even). One write per transition, and a write is atomic for the log: a cut
 * leaves the transition done or not done, never half.
 *
 * Fail closed: a partition that does not open (blank, damaged, foreign,
 * newer format) reads as safe mode with cause 'unreadable'. Leaving from
 * there formats the partition (its fresh value 0 is normal mode); a cut
 * during that format leaves a partition that does not open: safe mode.
 */
import { TwoBlockLog, type TwoBlockLogSpec, type TwoBlockLogStats } from '../base/two-block-log.ts';
import { StorageError, type StorageErrorCode } from '../base/storage-error.ts';
import type { FlashPartition } from '../hal/flash.ts';
import { FORMAT_VERSIONS } from '../base/format-versions.ts';

/** Format version of the safe-mode log's records (FORMAT_VERSIONS.safeMode). */
export const SAFE_MODE_FORMAT = FORMAT_VERSIONS.safeMode;
/** Record tag ('S'), stamped in every header: no other store's partition opens as this one. */
export const SAFE_MODE_KIND = 0x53;
export const SAFE_MODE_LOG: TwoBlockLogSpec = Object.freeze({ name: 'safe-mode state', version: SAFE_MODE_FORMAT, kind: SAFE_MODE_KIND, keys: 1 });

/** Why the device entered safe mode (docs/spec/safe-mode.md, "Causes"). */
export type SafeModeEntryCause =
  /** A signed enter-safe-mode command. */
  | 'command'
  /** Policy could not be fetched or verified: no trusted root, security floor unreadable. */
  | 'policy'
  /** Storage recovery found damage beyond its threshold (or a store that does not open). */
  | 'storage'
  /** The monotonic clock and signed times disagree beyond the manipulation bound. */
  | 'clock'
  /** A failed trial boot could not be rolled back (no other slot verifies at or above the floor). */
  | 'no-rollback'
  /** `safe-mode on` on the unlocked serial console (docs/spec/console.md). */
  | 'console'
  /** The accepted revocation list names this device (docs/spec/revocation.md): only updates and diagnostics; no leave while it does. */
  | 'revoked'
  /** A signed quarantine command (docs/spec/commands.md): left only by a signed leave-quarantine. */
  | 'quarantine';

/** Why the device left safe mode: a verified leave-safe-mode command, or `safe-mode off` on the unlocked serial console. */
export type SafeModeLeaveCause = 'command' | 'console';

/** What the state reads as: entry causes, leave causes, 'none' (never entered), 'unreadable' (fail closed). */
export type SafeModeCause = SafeModeEntryCause | SafeModeLeaveCause | 'none' | 'unreadable';

/** Cause codes on flash (the low byte of the value). Permanent: a new cause gets a new code. */
export const SAFE_MODE_CAUSE_CODES = Object.freeze({
  none: 0x00,
  command: 0x01,
  policy: 0x02,
  storage: 0x03,
  clock: 0x04,
  'no-rollback': 0x05,
  console: 0x06,
  revoked: 0x07,
  quarantine: 0x08,
  /** Leave causes: 0x80 and above. */
  'leave-command': 0x81,
  'leave-console': 0x82,
  /** Never stored: what an unreadable partition reads as (health telemetry only). */
  unreadable: 0xfe,
});

const ENTRY_CAUSES: readonly SafeModeEntryCause[] = Object.freeze(['command', 'policy', 'storage', 'clock', 'no-rollback', 'console', 'revoked', 'quarantine'] as const);
const LEAVE_CODES: Readonly<Record<SafeModeLeaveCause, number>> = Object.freeze({ command: SAFE_MODE_CAUSE_CODES['leave-command'], console: SAFE_MODE_CAUSE_CODES['leave-console'] });
const CAUSE_SPAN = 256;

export interface SafeModeState {
  readonly active: boolean;
  /** The last transition's cause ('none': the partition never left normal mode). */
  readonly cause: SafeModeCause;
  /** Transitions since the partition was formatted (odd: safe mode); undefined when unreadable. */
  readonly transitions: number | undefined;
  /** The StorageError code that made the state unreadable. */
  readonly unreadable: StorageErrorCode | undefined;
  /** The cause's one-byte code (SAFE_MODE_CAUSE_CODES; the stored byte when it is one this firmware does not know). */
  readonly code: number;
}

export type EnterOutcome = 'entered' | 'already-active';
export type LeaveOutcome = 'left' | 'not-active';

/** The cause a stored code names, or undefined for a code this firmware does not know (read as safe, see `open`). */
function causeOfCode(code: number, entering: boolean): SafeModeCause | undefined {
  if (code === SAFE_MODE_CAUSE_CODES.none) return entering ? undefined : 'none';
  if (!entering) return code === LEAVE_CODES.command ? 'command' : code === LEAVE_CODES.console ? 'console' : undefined;
  for (const c of ENTRY_CAUSES) if (SAFE_MODE_CAUSE_CODES[c] === code) return c;
  return undefined;
}

export class SafeModeStore {
  private readonly flash: FlashPartition;
  private log: TwoBlockLog | undefined;
  private state: SafeModeState;

  private constructor(flash: FlashPartition, log: TwoBlockLog | undefined, state: SafeModeState) {
    this.flash = flash;
    this.log = log;
    this.state = state;
  }

  /** Provisioning: a fresh log, normal mode. */
  static format(flash: FlashPartition): void {
    TwoBlockLog.format(flash, SAFE_MODE_LOG);
  }

  /**
   * Recover the state (reads two blocks, writes nothing). Never throws on
   * flash contents: a StorageError (blank, damaged, not-formatted,
   * format-too-new, bad-geometry) reads as safe mode, cause 'unreadable';
   * an unknown cause code with an odd count reads as safe mode too.
   */
  static open(flash: FlashPartition): SafeModeStore {
    let log: TwoBlockLog;
    try {
      log = TwoBlockLog.open(flash, SAFE_MODE_LOG);
    } catch (error) {
      if (!(error instanceof StorageError)) throw error;
      return new SafeModeStore(flash, undefined, Object.freeze({ active: true, cause: 'unreadable', transitions: undefined, unreadable: error.code, code: SAFE_MODE_CAUSE_CODES.unreadable }));
    }
    return new SafeModeStore(flash, log, stateOf(log.value(0)));
  }

  get active(): boolean {
    return this.state.active;
  }

  status(): SafeModeState {
    return this.state;
  }

  /**
   * Enter safe mode for `cause`; returns once the state is durable. Already
   * in safe mode (or unreadable): nothing is written, the first cause stays.
   * Throws StorageError when the log refuses the write (the device is then
   * in safe mode for this boot only: `active` is true either way).
   */
  enter(cause: SafeModeEntryCause): EnterOutcome {
    if (!ENTRY_CAUSES.includes(cause)) throw new TypeError(`unknown safe-mode cause ${String(cause)}`);
    if (this.state.active) return 'already-active';
    const log = this.log as TwoBlockLog;
    // The next odd count: safe mode.
    const t = this.state.transitions as number;
    const transitions = t % 2 === 0 ? t + 1 : t + 2;
    const code = SAFE_MODE_CAUSE_CODES[cause];
    // RAM first: even if the write fails, this boot is in safe mode.
    this.state = Object.freeze({ active: true, cause, transitions, unreadable: undefined, code });
    log.write(0, transitions * CAUSE_SPAN + code);
    return 'entered';
  }

  /**
   * Quarantine (a verified quarantine command): safe mode with cause
   * `quarantine`, from normal mode or from safe mode with another cause (the
   * count steps by two, still odd: one write). Already quarantined: nothing
   * written. Unreadable: nothing can be written (the state is safe already;
   * 'already-active'). Throws StorageError when the log refuses the write
   * (this boot is quarantined all the same).
   */
  quarantine(): EnterOutcome {
    if (this.state.active && this.state.cause === 'quarantine') return 'already-active';
    if (!this.state.active) return this.enter('quarantine');
    if (this.log === undefined) return 'already-active';
    const transitions = (this.state.transitions as number) + 2;
    const code = SAFE_MODE_CAUSE_CODES.quarantine;
    this.state = Object.freeze({ active: true, cause: 'quarantine', transitions, unreadable: undefined, code });
    this.log.write(0, transitions * CAUSE_SPAN + code);
    return 'entered';
  }

  /**
   * Leave safe mode (a verified leave command or the unlocked console only: the runtime checks).
   * An unreadable state is left by formatting the partition (normal mode,
   * transitions 0). Returns once durable.
   */
  leave(cause: SafeModeLeaveCause): LeaveOutcome {
    if (cause !== 'command' && cause !== 'console') throw new TypeError(`unknown leave cause ${String(cause)}`);
    if (!this.state.active) return 'not-active';
    if (this.log === undefined) {
      SafeModeStore.format(this.flash);
      this.log = TwoBlockLog.open(this.flash, SAFE_MODE_LOG);
      this.state = stateOf(this.log.value(0));
      return 'left';
    }
    // The next even count: normal mode (an unknown code read as safe may sit on an even count).
    const t = this.state.transitions as number;
    const transitions = t % 2 === 1 ? t + 1 : t + 2;
    const code = LEAVE_CODES[cause];
    this.log.write(0, transitions * CAUSE_SPAN + code);
    this.state = Object.freeze({ active: false, cause, transitions, unreadable: undefined, code });
    return 'left';
  }

  /** The log's figures (undefined when unreadable). */
  stats(): TwoBlockLogStats | undefined {
    return this.log?.stats();
  }
}

function stateOf(value: number): SafeModeState {
  const transitions = Math.floor(value / CAUSE_SPAN);
  const active = transitions % 2 === 1;
  const code = value % CAUSE_SPAN;
  const cause = causeOfCode(code, active);
  // A code this firmware does not know (a newer firmware wrote it): fail closed, safe; the count is kept so a leave writes above it.
  if (cause === undefined) return Object.freeze({ active: true, cause: 'unreadable', transitions, unreadable: undefined, code });
  return Object.freeze({ active, cause, transitions, unreadable: undefined, code });
}
