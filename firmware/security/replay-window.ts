/**
 * Sliding anti-replay window for one sender (docs/spec/replay-window.md):
 * the RFC 4303 §3.4.3 / RFC 6347 §4.1.2.6 bitmap over message counters.
 *
 * State: the highest accepted counter H, a bitmap of the `bits` counters
 * H - bits + 1 .. H (bit i stands for counter H - i), and a floor below
 * which everything is refused (the restart floor, docs/spec/replay-window.md
 * "Restarts": the receiver's persisted ceiling, so a restart never reopens
 * a counter).
 *
 * Use: `check(counter)` is pure; verify the message's MAC or signature; only
 * then `accept(counter)`, which moves the window. A tag that fails to verify
 * must never reach `accept`, so a forged counter cannot slide the window past
 * genuine ones (docs/models/replay-window.md, planted bug move-before-verify).
 *
 * Counters are plain numbers (no BigInt: Espruino has none), integers in
 * 0..2^53 - 1. This class keeps no flash state: `ReplayStore`
 * (./replay-store.ts) persists the ceiling that makes restarts safe.
 */
import { setErrorName } from '../base/error-name.ts';

/** The window's answer for a counter. */
export type ReplayVerdict =
  /** Above the window, or inside it and never accepted: may be accepted once the tag verified. */
  | 'fresh'
  /** Inside the window and already accepted. */
  | 'duplicate'
  /** At or below the floor, or below the window: refused, whether seen or not. */
  | 'stale'
  /** Not an integer in 0..2^53 - 1. */
  | 'out-of-range';

export type ReplayErrorCode =
  /** `accept` of a counter that `check` does not call fresh; nothing changed. */
  | 'not-fresh'
  /** The partition holds a newer format version than this firmware reads; nothing was changed. */
  | 'format-too-new'
  /** The partition holds something that is not a replay store (and is not blank); nothing was changed. */
  | 'not-formatted'
  /** The partition is blank (never provisioned, or wiped): refused, never opened with every floor at 0. */
  | 'blank'
  /** Damage destroyed evidence a ceiling may depend on (docs/spec/two-block-log.md); nothing was changed. */
  | 'damaged'
  /** The partition holds ceilings for more senders than configured; nothing was changed. */
  | 'too-many-senders'
  /** The partition geometry cannot hold the format. */
  | 'bad-geometry';

export class ReplayError extends Error {
  constructor(
    readonly code: ReplayErrorCode,
    message: string,
    /** For 'not-fresh': what `check` said. */
    readonly verdict?: ReplayVerdict,
  ) {
    super(message);
    setErrorName(this, 'ReplayError');
  }
}

/** The largest counter: 2^53 - 1, the largest exact integer of a JS number (docs/spec/counter.md). */
export const REPLAY_COUNTER_MAX = Number.MAX_SAFE_INTEGER;
/** Default window: 64 bits, RFC 4303 §3.4.3's recommended minimum of 32 doubled, as RFC 6347 uses. */
export const DEFAULT_WINDOW_BITS = 64;
/** Largest window accepted: 1024 bits, 128 bytes of RAM per sender. */
export const MAX_WINDOW_BITS = 1024;

export interface ReplayWindowOptions {
  /** Window size W in bits: an integer 1..1024, default 64. Production windows are 64 or more (docs/spec/replay-window.md). */
  bits?: number;
  /** Everything at or below the floor is stale: 0 for a fresh sender, the persisted ceiling after a restart. */
  floor?: number;
}

export class ReplayWindow {
  /** W. */
  readonly bits: number;
  /** The floor this window was created with: fixed for its life. */
  readonly floor: number;
  /** Bit i of the window (counter H - i) is bit (i & 31) of word (i >>> 5). */
  private readonly words: Uint32Array;
  /** H: the highest accepted counter, or the floor before the first accept. */
  private top: number;
  private accepted = 0;

  constructor(options?: ReplayWindowOptions) {
    const { bits, floor } = checkWindowOptions(options);
    this.bits = bits;
    this.floor = floor;
    this.top = floor;
    this.words = new Uint32Array((bits + 31) >>> 5);
  }

  /** The verdict for `counter`; changes nothing. TypeError if `counter` is not a number. */
  check(counter: number): ReplayVerdict {
    if (typeof counter !== 'number') throw new TypeError(`counter must be a number, got ${typeof counter}`);
    if (!Number.isSafeInteger(counter) || counter < 0) return 'out-of-range';
    if (counter <= this.floor || counter <= this.top - this.bits) return 'stale';
    if (counter > this.top) return 'fresh';
    const index = this.top - counter;
    return (this.words[index >>> 5] >>> (index & 31)) & 1 ? 'duplicate' : 'fresh';
  }

  /**
   * Record `counter` as accepted. Call only after the message's tag verified.
   * Throws ReplayError 'not-fresh' (with the verdict) and changes nothing when
   * `check(counter)` is not 'fresh': a second `accept` of the same counter,
   * for example by two handlers of one duplicated message, is refused.
   */
  accept(counter: number): void {
    const verdict = this.check(counter);
    if (verdict !== 'fresh') throw new ReplayError('not-fresh', `counter ${counter} is ${verdict}, not fresh`, verdict);
    if (counter > this.top) {
      this.shift(counter - this.top);
      this.top = counter;
      this.words[0] |= 1;
    } else {
      const index = this.top - counter;
      this.words[index >>> 5] |= 1 << (index & 31);
    }
    this.accepted++;
  }

  /** H: the highest counter accepted, or the floor if none was. */
  highest(): number {
    return this.top;
  }

  /** Counters accepted by this window. */
  acceptedCount(): number {
    return this.accepted;
  }

  /** Slide the bitmap `distance` counters up (bit i moves to bit i + distance; bits past W drop out). */
  private shift(distance: number): void {
    const words = this.words;
    if (distance >= this.bits) {
      words.fill(0);
      return;
    }
    const wordShift = distance >>> 5;
    const bitShift = distance & 31;
    for (let i = words.length - 1; i >= 0; i--) {
      const from = i - wordShift;
      let value = from >= 0 ? words[from] << bitShift : 0;
      if (bitShift !== 0 && from - 1 >= 0) value |= words[from - 1] >>> (32 - bitShift);
      words[i] = value;
    }
    // Keep the bits past W clear (the last word may be partly outside the window).
    const spare = words.length * 32 - this.bits;
    if (spare > 0) words[words.length - 1] &= 0xffffffff >>> spare;
  }
}

function checkWindowOptions(options: ReplayWindowOptions | undefined): { bits: number; floor: number } {
  if (options === undefined) return { bits: DEFAULT_WINDOW_BITS, floor: 0 };
  if (typeof options !== 'object' || options === null) throw new TypeError('window options must be an object');
  return { bits: checkWindowBits(options.bits), floor: checkFloor(options.floor) };
}

/** Validate a window size (undefined: the default). */
export function checkWindowBits(bits: unknown): number {
  if (bits === undefined) return DEFAULT_WINDOW_BITS;
  if (typeof bits !== 'number') throw new TypeError(`bits must be a number, got ${typeof bits}`);
  if (!Number.isInteger(bits) || bits < 1 || bits > MAX_WINDOW_BITS) throw new RangeError(`bits must be an integer in 1..${MAX_WINDOW_BITS}, got ${bits}`);
  return bits;
}

function checkFloor(floor: unknown): number {
  if (floor === undefined) return 0;
  if (typeof floor !== 'number') throw new TypeError(`floor must be a number, got ${typeof floor}`);
  if (!Number.isSafeInteger(floor) || floor < 0) throw new RangeError(`floor must be an integer in 0..2^53-1, got ${floor}`);
  return floor;
}
