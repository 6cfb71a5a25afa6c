/**
 * Persisted anti-replay windows (docs/spec/replay-window.md): one
 * `ReplayWindow` per sender, made restart-safe by a ceiling on flash.
 *
 * Reserve ahead, as the counter does (docs/spec/counter.md): for each sender
 * a durable ceiling C bounds every counter accepted. Before accepting a
 * counter above C, the store first makes C' = counter + R durable; after a
 * restart each window resumes with floor = C and an empty bitmap, so nothing
 * accepted before the restart can be accepted again. The rule is counted in
 * counter values, never in messages: a rule like "refuse anything at or
 * below the persisted value plus K" is unsound once counters skip, which the
 * model docs/models/replay-window.pml shows (planted bug message-counted).
 *
 * The ceilings are the keys of a two-block log (base/two-block-log.ts), one
 * key per sender: mirrored records, a rotation that copies every ceiling
 * before the new block counts, and a typed refusal wherever damage could
 * make a ceiling read lower (a forgotten ceiling reopens old counters).
 */
import { FORMAT_VERSIONS } from '../base/format-versions.ts';
import type { FlashPartition } from '../hal/flash.ts';
import { StorageError } from '../base/storage-error.ts';
import { LOG_PAIR_LENGTH, TwoBlockLog, type TwoBlockLogReport, type TwoBlockLogSpec, type TwoBlockLogStats } from '../base/two-block-log.ts';
import { checkWindowBits, REPLAY_COUNTER_MAX, ReplayError, ReplayWindow, type ReplayErrorCode, type ReplayVerdict } from './replay-window.ts';

/** Format version of the entries, separate from the package version (docs/spec/replay-window.md). */
export const REPLAY_STORE_FORMAT = FORMAT_VERSIONS.replayStore;
/** Record tag of a sender's ceiling ('R'); distinct from the counter's so neither partition opens as the other. */
export const REPLAY_KIND_CEILING = 0x52;
/** Default R: one record per 256 accepted counters; a restart refuses at most 256 values per sender (docs/spec/replay-window.md). */
export const DEFAULT_CEILING_RESERVE = 256;
/** Largest R accepted. */
export const MAX_CEILING_RESERVE = 0x1_0000_0000;
/** Largest sender index a record can name (u16), whatever the geometry. */
export const MAX_REPLAY_SENDERS = 0x1_0000;

export interface ReplayStoreOptions {
  /** Number of senders (windows), indexed 0..senders-1: integer 1..65536; a block must hold senders + 3 records of 32 bytes. Default 1. */
  senders?: number;
  /** R: how far above an accepted counter a new ceiling is set; integer 1..2^32. Default 256. */
  reserve?: number;
  /** Window size W in bits for every sender: integer 1..1024, default 64. */
  windowBits?: number;
}

export interface ReplayStoreStats extends TwoBlockLogStats {
  senders: number;
  reserve: number;
  windowBits: number;
}

interface Config {
  senders: number;
  reserve: number;
  windowBits: number;
}

export class ReplayStore {
  readonly senders: number;
  private readonly log: TwoBlockLog;
  private readonly reserve: number;
  private readonly windowBits: number;
  private readonly windows: ReplayWindow[];

  private constructor(log: TwoBlockLog, config: Config) {
    this.log = log;
    this.senders = config.senders;
    this.reserve = config.reserve;
    this.windowBits = config.windowBits;
    this.windows = [];
    for (let s = 0; s < config.senders; s++) this.windows.push(new ReplayWindow({ bits: config.windowBits, floor: log.value(s) }));
  }

  /**
   * Recover the windows from `flash` (reads its first two blocks, writes
   * nothing). Each window starts with floor = its sender's durable ceiling
   * and an empty bitmap. Throws ReplayError 'bad-geometry', 'blank',
   * 'not-formatted', 'format-too-new', 'damaged' or 'too-many-senders'
   * (docs/spec/two-block-log.md, "Recovery"): a blank partition is refused,
   * never opened with every floor at 0.
   */
  static open(flash: FlashPartition, options?: ReplayStoreOptions): ReplayStore {
    const config = checkOptions(options);
    return new ReplayStore(asReplayError(() => TwoBlockLog.open(flash, replayLog(config.senders))), config);
  }

  /**
   * Provisioning: an empty log, every floor at 0. Counters already accepted
   * become acceptable again: do it only together with new sender keys, never
   * to get past a refusal in the field.
   */
  static format(flash: FlashPartition, options?: Pick<ReplayStoreOptions, 'senders'>): void {
    const config = checkOptions(options);
    asReplayError(() => TwoBlockLog.format(flash, replayLog(config.senders)));
  }

  /** The verdict of `sender`'s window for `counter`; changes nothing (reads no flash). */
  check(sender: number, counter: number): ReplayVerdict {
    return this.windows[this.checkSender(sender)].check(counter);
  }

  /**
   * Accept `counter` from `sender`. Call only after the message's tag
   * verified. Throws ReplayError 'not-fresh' (nothing changed) when `check`
   * does not call it fresh. When the counter is above the sender's ceiling,
   * first writes a new ceiling (counter + R, at most 2^53 - 1) and returns
   * only once it is durable; a failure of that write (a power cut) leaves the
   * window unmoved.
   */
  accept(sender: number, counter: number): void {
    const index = this.checkSender(sender);
    const window = this.windows[index];
    const verdict = window.check(counter);
    if (verdict !== 'fresh') throw new ReplayError('not-fresh', `counter ${counter} of sender ${index} is ${verdict}, not fresh`, verdict);
    // A rotation a cut left unannounced is finished before any ceiling is relied on.
    this.log.settle();
    if (counter > this.log.value(index)) {
      this.log.write(index, counter > REPLAY_COUNTER_MAX - this.reserve ? REPLAY_COUNTER_MAX : counter + this.reserve);
    }
    window.accept(counter);
  }

  /** The restart floor of `sender` in this boot: everything at or below it is stale. */
  floor(sender: number): number {
    return this.windows[this.checkSender(sender)].floor;
  }

  /** The durable ceiling of `sender`: no counter above it was accepted; the next boot's floor. */
  ceiling(sender: number): number {
    return this.log.value(this.checkSender(sender));
  }

  /** The highest counter `sender`'s window accepted in this boot, or its floor. */
  highest(sender: number): number {
    return this.windows[this.checkSender(sender)].highest();
  }

  /** What recovery found and survived. */
  report(): TwoBlockLogReport {
    return this.log.report();
  }

  stats(): ReplayStoreStats {
    return { ...this.log.stats(), senders: this.senders, reserve: this.reserve, windowBits: this.windowBits };
  }

  private checkSender(sender: number): number {
    if (typeof sender !== 'number') throw new TypeError(`sender must be a number, got ${typeof sender}`);
    if (!Number.isInteger(sender) || sender < 0 || sender >= this.senders) throw new RangeError(`sender must be an integer in 0..${this.senders - 1}, got ${sender}`);
    return sender;
  }
}

/** The log of a store for `senders` senders: one key per sender. */
export function replayLog(senders: number): TwoBlockLogSpec {
  return { name: 'replay store', version: REPLAY_STORE_FORMAT, kind: REPLAY_KIND_CEILING, keys: senders };
}

/** Smallest block for `senders` senders: header, a record per sender, one more, handoff. */
export function replayBlockLength(senders: number): number {
  return (senders + 3) * LOG_PAIR_LENGTH;
}

/** The log's StorageError, as the ReplayError of the same meaning. */
function asReplayError<T>(run: () => T): T {
  try {
    return run();
  } catch (error) {
    if (!(error instanceof StorageError)) throw error;
    const code: ReplayErrorCode | undefined =
      error.code === 'too-many-keys' ? 'too-many-senders'
      : error.code === 'full' || error.code === 'exhausted' ? undefined
      : error.code;
    if (code === undefined) throw error;
    throw new ReplayError(code, error.message);
  }
}

function checkOptions(options: ReplayStoreOptions | undefined): Config {
  if (options === undefined) return { senders: 1, reserve: DEFAULT_CEILING_RESERVE, windowBits: checkWindowBits(undefined) };
  if (typeof options !== 'object' || options === null) throw new TypeError('replay store options must be an object');
  return {
    senders: checkInteger('senders', options.senders, 1, 1, MAX_REPLAY_SENDERS),
    reserve: checkInteger('reserve', options.reserve, DEFAULT_CEILING_RESERVE, 1, MAX_CEILING_RESERVE),
    windowBits: checkWindowBits((options as ReplayStoreOptions).windowBits),
  };
}

function checkInteger(name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number, got ${typeof value}`);
  if (!Number.isInteger(value) || value < min || value > max) throw new RangeError(`${name} must be an integer in ${min}..${max}, got ${value}`);
  return value;
}
