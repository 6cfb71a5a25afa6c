/**
 * The command journal (docs/spec/commands.md, "The journal"): which
 * physical commands were started and which finished, so that a command
 * counter's effect is applied at most once and a duplicate can be answered
 * "already applied" across power cuts.
 *
 * It keeps the last `slots` physical commands in a two-block log
 * (base/two-block-log.ts: mirrored records, rotation, typed refusals), two
 * keys per slot: key 2k is the counter whose intent slot k holds, key 2k + 1
 * the counter whose completion it holds. Physical commands are started in
 * increasing counter order (the policy refuses a reordered one), so a new
 * command takes the slot with the oldest intent and both keys only grow, as
 * the log requires. A slot reads as
 *
 *   done == intent        -> that command finished: 'done'
 *   done <  intent        -> started, not known to have finished: 'unknown'
 */
import { FORMAT_VERSIONS } from '../base/format-versions.ts';
import { TwoBlockLog, LOG_PAIR_LENGTH, type TwoBlockLogReport, type TwoBlockLogSpec, type TwoBlockLogStats } from '../base/two-block-log.ts';
import type { FlashPartition } from '../hal/flash.ts';

export const COMMAND_JOURNAL_FORMAT = FORMAT_VERSIONS.commandJournal;
/** Record tag ('C'), stamped in every header too, so no other store's partition opens as a journal. */
export const COMMAND_JOURNAL_KIND = 0x43;
export const DEFAULT_JOURNAL_SLOTS = 8;
/** Most slots: 2 keys each, and a block of 4096 bytes holds at most 125 keys. */
export const MAX_JOURNAL_SLOTS = 62;

export type JournalState = 'done' | 'unknown';

export function journalLog(slots: number): TwoBlockLogSpec {
  return { name: 'command journal', version: COMMAND_JOURNAL_FORMAT, kind: COMMAND_JOURNAL_KIND, keys: 2 * checkSlots(slots) };
}

/** Smallest block for `slots` slots: header, two records per slot, one more, handoff. */
export function journalBlockLength(slots: number): number {
  return (2 * checkSlots(slots) + 3) * LOG_PAIR_LENGTH;
}

export class CommandJournal {
  readonly slots: number;
  private readonly log: TwoBlockLog;

  private constructor(log: TwoBlockLog, slots: number) {
    this.log = log;
    this.slots = slots;
  }

  /** Recover (reads two blocks, writes nothing); throws StorageError 'blank', 'damaged', 'not-formatted', 'format-too-new', 'too-many-keys', 'bad-geometry'. */
  static open(flash: FlashPartition, slots = DEFAULT_JOURNAL_SLOTS): CommandJournal {
    return new CommandJournal(TwoBlockLog.open(flash, journalLog(slots)), slots);
  }

  /** Provisioning only, together with a new command key (its counters start again). */
  static format(flash: FlashPartition, slots = DEFAULT_JOURNAL_SLOTS): void {
    TwoBlockLog.format(flash, journalLog(slots));
  }

  /** What the journal knows of `counter`: undefined when no slot holds it (never started, or forgotten). */
  lookup(counter: number): JournalState | undefined {
    for (let slot = 0; slot < this.slots; slot++) {
      if (this.log.value(2 * slot) === counter && counter > 0) return this.log.value(2 * slot + 1) === counter ? 'done' : 'unknown';
    }
    return undefined;
  }

  /** The highest counter ever started (0: none). */
  highestStarted(): number {
    let highest = 0;
    for (let slot = 0; slot < this.slots; slot++) highest = Math.max(highest, this.log.value(2 * slot));
    return highest;
  }

  /** Counters started and not known to have finished, in increasing order. */
  unfinished(): number[] {
    const found: number[] = [];
    for (let slot = 0; slot < this.slots; slot++) {
      const intent = this.log.value(2 * slot);
      if (intent > 0 && this.log.value(2 * slot + 1) !== intent) found.push(intent);
    }
    return found.sort((a, b) => a - b);
  }

  /**
   * Make the intent of `counter` durable in the slot of the oldest intent;
   * returns the slot. `counter` must be above every counter started.
   */
  begin(counter: number): number {
    if (!Number.isSafeInteger(counter) || counter <= this.highestStarted()) {
      throw new RangeError(`command journal: counter ${counter} is not above the highest started, ${this.highestStarted()}`);
    }
    let slot = 0;
    for (let s = 1; s < this.slots; s++) if (this.log.value(2 * s) < this.log.value(2 * slot)) slot = s;
    this.log.write(2 * slot, counter);
    return slot;
  }

  /** Make the completion of the command begun in `slot` durable. */
  finish(slot: number, counter: number): void {
    if (this.log.value(2 * slot) !== counter) throw new RangeError(`command journal: slot ${slot} holds ${this.log.value(2 * slot)}, not ${counter}`);
    this.log.write(2 * slot + 1, counter);
  }

  report(): TwoBlockLogReport {
    return this.log.report();
  }

  stats(): TwoBlockLogStats {
    return this.log.stats();
  }
}

function checkSlots(slots: number): number {
  if (typeof slots !== 'number') throw new TypeError(`slots must be a number, got ${typeof slots}`);
  if (!Number.isInteger(slots) || slots < 1 || slots > MAX_JOURNAL_SLOTS) throw new RangeError(`slots must be an integer in 1..${MAX_JOURNAL_SLOTS}, got ${slots}`);
  return slots;
}
