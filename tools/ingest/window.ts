/**
 * The ingest's per-sender window (docs/spec/ingest.md, "Window"): the exact
 * accepted set of one (device, key id) near its top, kept in the database
 * with the records it admitted.
 *
 * Unlike the device-side ReplayStore (firmware/security/replay-store.ts),
 * which reserves a ceiling ahead and so refuses in-flight counters after a
 * restart, this window is persisted EXACTLY (highest counter H and the
 * bitmap of H - W + 1 .. H) in the same transaction as the records: a
 * restart reopens nothing and refuses nothing fresh.
 *
 * Decision from the counter and the window only (no clock):
 *   counter > H                      fresh (any gap: reboots skip, loss skips)
 *   H - W < counter <= H, bit clear  fresh (a reorder inside the window)
 *   H - W < counter <= H, bit set    duplicate
 *   counter <= H - W                 stale (refused whether seen or not)
 *
 * Counters are plain numbers, integers 1..2^53 - 1 (the envelope's range).
 * Host tool (Node), but engine-neutral.
 */

/** W: 1024 counter values, the largest window firmware/security/replay-window.ts allows (128 bytes per sender). */
export const INGEST_WINDOW_BITS = 1024;
const WORDS = INGEST_WINDOW_BITS / 32;
/** Bytes of a serialized bitmap. */
export const WINDOW_BITMAP_BYTES = INGEST_WINDOW_BITS / 8;

export type WindowVerdict = 'fresh' | 'duplicate' | 'stale';

/** What the database keeps for one sender (besides the report counters). */
export interface WindowState {
  /** First counter ever accepted (0: none yet). */
  readonly first: number;
  /** H: highest accepted counter (0: none yet). */
  readonly highest: number;
  /** Bit i (byte i >> 3, bit i & 7) stands for counter H - i; WINDOW_BITMAP_BYTES bytes. */
  readonly bitmap: Uint8Array;
  /** Counters accepted in all. */
  readonly accepted: number;
}

export class IngestWindow {
  private readonly words = new Uint32Array(WORDS);
  private top: number;
  private firstAccepted: number;
  private count: number;

  constructor(state?: WindowState) {
    this.top = 0;
    this.firstAccepted = 0;
    this.count = 0;
    if (state !== undefined) {
      if (!Number.isSafeInteger(state.highest) || state.highest < 0) throw new RangeError(`highest must be an integer 0..2^53-1, got ${state.highest}`);
      if (!Number.isSafeInteger(state.first) || state.first < 0 || state.first > state.highest) throw new RangeError(`first must be an integer 0..highest, got ${state.first}`);
      if (!(state.bitmap instanceof Uint8Array) || state.bitmap.length !== WINDOW_BITMAP_BYTES) throw new RangeError(`bitmap must be ${WINDOW_BITMAP_BYTES} bytes`);
      if (!Number.isSafeInteger(state.accepted) || state.accepted < 0) throw new RangeError(`accepted must be a non-negative integer, got ${state.accepted}`);
      this.top = state.highest;
      this.firstAccepted = state.first;
      this.count = state.accepted;
      for (let i = 0; i < WORDS; i++) {
        const b = i * 4;
        this.words[i] = (state.bitmap[b] | (state.bitmap[b + 1] << 8) | (state.bitmap[b + 2] << 16) | (state.bitmap[b + 3] << 24)) >>> 0;
      }
      // Bits for counters below 1 cannot be set: a bitmap claiming them is damage.
      for (let i = state.highest; i < INGEST_WINDOW_BITS; i++) {
        if (this.bit(i)) throw new RangeError(`bitmap marks counter ${state.highest - i}, below 1`);
      }
      if (state.highest > 0 && !this.bit(0)) throw new RangeError('bitmap does not mark the highest counter');
    }
  }

  /** The verdict for `counter` (an integer 1..2^53 - 1); changes nothing. */
  check(counter: number): WindowVerdict {
    if (!Number.isSafeInteger(counter) || counter < 1) throw new RangeError(`counter must be an integer 1..2^53-1, got ${counter}`);
    if (counter > this.top) return 'fresh';
    const index = this.top - counter;
    if (index >= INGEST_WINDOW_BITS) return 'stale';
    return this.bit(index) ? 'duplicate' : 'fresh';
  }

  /** Mark `counter` accepted; throws unless `check` says fresh. */
  accept(counter: number): void {
    const verdict = this.check(counter);
    if (verdict !== 'fresh') throw new Error(`internal: accept of a ${verdict} counter ${counter}`);
    if (counter > this.top) {
      this.shift(counter - this.top);
      this.top = counter;
      this.words[0] |= 1;
    } else {
      const index = this.top - counter;
      this.words[index >>> 5] |= 1 << (index & 31);
    }
    if (this.firstAccepted === 0 || counter < this.firstAccepted) this.firstAccepted = counter;
    this.count++;
  }

  get highest(): number {
    return this.top;
  }

  get first(): number {
    return this.firstAccepted;
  }

  get accepted(): number {
    return this.count;
  }

  /** Counter values between the first and the highest accepted that were never accepted (reboot skips, loss, refusals). */
  get gaps(): number {
    return this.count === 0 ? 0 : this.top - this.firstAccepted + 1 - this.count;
  }

  state(): WindowState {
    const bitmap = new Uint8Array(WINDOW_BITMAP_BYTES);
    for (let i = 0; i < WORDS; i++) {
      const w = this.words[i];
      bitmap[i * 4] = w & 0xff;
      bitmap[i * 4 + 1] = (w >>> 8) & 0xff;
      bitmap[i * 4 + 2] = (w >>> 16) & 0xff;
      bitmap[i * 4 + 3] = w >>> 24;
    }
    return { first: this.firstAccepted, highest: this.top, bitmap, accepted: this.count };
  }

  private bit(index: number): boolean {
    return ((this.words[index >>> 5] >>> (index & 31)) & 1) === 1;
  }

  private shift(distance: number): void {
    const words = this.words;
    if (distance >= INGEST_WINDOW_BITS) {
      words.fill(0);
      return;
    }
    const wordShift = distance >>> 5;
    const bitShift = distance & 31;
    for (let i = WORDS - 1; i >= 0; i--) {
      const from = i - wordShift;
      let value = from >= 0 ? words[from] << bitShift : 0;
      if (bitShift !== 0 && from - 1 >= 0) value |= words[from - 1] >>> (32 - bitShift);
      words[i] = value >>> 0;
    }
  }
}
