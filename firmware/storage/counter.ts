/**
 * The persistent monotonic counter (docs/spec/counter.md): numbers messages
 * and drives replay protection, so it never returns a value twice and never
 * goes backwards, across any power cut, and never reads lower after damage.
 *
 * Reserve ahead as RFC 8613 appendix B.1.1 does for OSCORE sequence numbers:
 * a durable bound `reservedUpTo` covers the next K values, so K - 1 of every
 * K increments write nothing; the bound is durable before any value above
 * the old bound is returned, and after a reboot the counter resumes above
 * the last durable bound (values up to it count as possibly used).
 *
 * The bound is key 0 of a two-block log (base/two-block-log.ts), which
 * mirrors every record, rotates between two blocks and refuses, with a typed
 * StorageError, whatever could make the bound read lower.
 */
import type { FlashPartition } from '../hal/flash.ts';
import { TwoBlockLog, type TwoBlockLogReport, type TwoBlockLogSpec, type TwoBlockLogStats } from '../base/two-block-log.ts';
import { FORMAT_VERSIONS } from '../base/format-versions.ts';
import { StorageError } from './errors.ts';

/** The largest value the counter returns: 2^53 - 1, the largest exact integer of a JS number. */
export const COUNTER_MAX_VALUE = Number.MAX_SAFE_INTEGER;
/** Default K: 32 bytes per 4096 increments = 0.0078 bytes programmed per increment (docs/spec/counter.md). */
export const DEFAULT_COUNTER_RESERVE = 4096;
/** Largest K accepted: a reboot skips at most 2^32 values. */
export const MAX_COUNTER_RESERVE = 0x1_0000_0000;
/** Record tag of a reservation bound. */
export const COUNTER_KIND_BOUND = 0x01;
/** The counter's log: one key, the bound. */
export const COUNTER_LOG: TwoBlockLogSpec = Object.freeze({ name: 'counter', version: FORMAT_VERSIONS.counter, kind: COUNTER_KIND_BOUND, keys: 1 });

export interface CounterOptions {
  /** K: values reserved by each persisted bound; integer 1..2^32. Default 4096. */
  reserve?: number;
}

export interface CounterStats extends TwoBlockLogStats {
  /** K in use. */
  reserve: number;
  /** The durable bound: no value above it was returned; after a reboot the counter resumes above it. */
  reservedUpTo: number;
  /** Last value returned in this boot. */
  current: number | undefined;
  /** Values left before `next()` throws 'exhausted'. */
  remaining: number;
}

export class Counter {
  private readonly log: TwoBlockLog;
  private readonly reserve: number;
  /** Values up to `last` count as used: the last value returned, or the bound recovered at open. */
  private last: number;
  private returned: number | undefined = undefined;

  private constructor(log: TwoBlockLog, reserve: number) {
    this.log = log;
    this.reserve = reserve;
    this.last = log.value(0);
  }

  /**
   * Recover the counter from `flash` (reads its first two blocks, writes
   * nothing). Throws StorageError 'bad-geometry', 'blank', 'not-formatted',
   * 'format-too-new' or 'damaged' (docs/spec/two-block-log.md, "Recovery"):
   * a blank partition is refused, never opened as a fresh counter.
   */
  static open(flash: FlashPartition, options?: CounterOptions): Counter {
    const reserve = checkOptions(options);
    return new Counter(TwoBlockLog.open(flash, COUNTER_LOG), reserve);
  }

  /**
   * Provisioning: erase the counter's two blocks and write an empty log, so
   * the partition opens as a fresh counter (first value 1). Values already
   * returned from this partition become reusable: do it only with a new
   * key, never to get past a refusal in the field.
   */
  static format(flash: FlashPartition): void {
    TwoBlockLog.format(flash, COUNTER_LOG);
  }

  /**
   * The next value: strictly greater than every value returned before, in
   * this boot or any earlier one. Writes a new bound first (and returns once
   * it is durable) when the value is above the current bound.
   */
  next(): number {
    const value = this.last + 1;
    if (value > COUNTER_MAX_VALUE) throw new StorageError('exhausted', `the counter reached its bound ${COUNTER_MAX_VALUE}`);
    // A rotation a cut left unannounced is finished before any value is used.
    this.log.settle();
    const bound = this.log.value(0);
    if (value > bound) this.log.write(0, this.reserve - 1 > COUNTER_MAX_VALUE - value ? COUNTER_MAX_VALUE : value + this.reserve - 1);
    this.last = value;
    this.returned = value;
    return value;
  }

  /** The last value returned in this boot, or undefined before the first `next()`. */
  current(): number | undefined {
    return this.returned;
  }

  /** What recovery found and survived (torn and repaired records, damaged slots). */
  report(): TwoBlockLogReport {
    return this.log.report();
  }

  stats(): CounterStats {
    return {
      ...this.log.stats(),
      reserve: this.reserve,
      reservedUpTo: this.log.value(0),
      current: this.returned,
      remaining: COUNTER_MAX_VALUE - this.last,
    };
  }
}

function checkOptions(options: CounterOptions | undefined): number {
  if (options === undefined) return DEFAULT_COUNTER_RESERVE;
  if (typeof options !== 'object' || options === null) throw new TypeError('counter options must be an object');
  const reserve = options.reserve;
  if (reserve === undefined) return DEFAULT_COUNTER_RESERVE;
  if (typeof reserve !== 'number') throw new TypeError(`reserve must be a number, got ${typeof reserve}`);
  if (!Number.isInteger(reserve) || reserve < 1 || reserve > MAX_COUNTER_RESERVE) {
    throw new RangeError(`reserve must be an integer in 1..${MAX_COUNTER_RESERVE}, got ${reserve}`);
  }
  return reserve;
}
