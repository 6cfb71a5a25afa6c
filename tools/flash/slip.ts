/**
 * SLIP framing (RFC 1055) as Espressif's serial loader uses it
 * (esptool docs, "Serial Protocol", "Low Level Protocol"): every packet
 * starts and ends with 0xC0; inside it 0xC0 is sent as 0xDB 0xDC and 0xDB
 * as 0xDB 0xDD.
 *
 * The decoder is incremental and bounded: a frame longer than `maxFrame`
 * decoded bytes is dropped (counted) without buffering it, a bad escape
 * drops its frame (counted), and bytes between frames are garbage
 * (counted, skipped). Every 0xC0 ends the current frame and starts the
 * next, so a receiver that starts mid-stream resynchronises at the first
 * "0xC0 0xC0" pair, which the loader protocol produces between packets.
 *
 * Host tool (Node), but no Node APIs: Uint8Array only.
 */

export const SLIP_END = 0xc0;
export const SLIP_ESC = 0xdb;
export const SLIP_ESC_END = 0xdc;
export const SLIP_ESC_ESC = 0xdd;

/** Largest loader packet: 8-byte header + a 16-bit size of data. */
export const MAX_LOADER_FRAME = 8 + 0xffff;

/** SLIP-encode one packet: 0xC0, escaped bytes, 0xC0. */
export function slipEncode(packet: Uint8Array): Uint8Array {
  let extra = 0;
  for (const byte of packet) if (byte === SLIP_END || byte === SLIP_ESC) extra++;
  const out = new Uint8Array(packet.length + extra + 2);
  let at = 0;
  out[at++] = SLIP_END;
  for (const byte of packet) {
    if (byte === SLIP_END) {
      out[at++] = SLIP_ESC;
      out[at++] = SLIP_ESC_END;
    } else if (byte === SLIP_ESC) {
      out[at++] = SLIP_ESC;
      out[at++] = SLIP_ESC_ESC;
    } else out[at++] = byte;
  }
  out[at] = SLIP_END;
  return out;
}

export interface SlipStats {
  /** Frames delivered. */
  frames: number;
  /** Bytes outside any frame (before the first 0xC0, or after a dropped frame). */
  garbageBytes: number;
  /** Frames dropped for an escape other than 0xDB 0xDC / 0xDB 0xDD. */
  badEscapes: number;
  /** Frames dropped for exceeding maxFrame. */
  oversizeFrames: number;
}

/** Decoder states. Outside: before the first 0xC0, or discarding the rest of a dropped frame. */
const State = Object.freeze({ Outside: 0, InFrame: 1, Escaped: 2 } as const);
type State = (typeof State)[keyof typeof State];

export class SlipDecoder {
  readonly stats: SlipStats = { frames: 0, garbageBytes: 0, badEscapes: 0, oversizeFrames: 0 };
  private readonly buffer: Uint8Array;
  private length = 0;
  private state: State = State.Outside;

  constructor(readonly maxFrame = MAX_LOADER_FRAME) {
    if (!Number.isInteger(maxFrame) || maxFrame < 1 || maxFrame > 1 << 24) throw new RangeError(`maxFrame must be an integer in 1..2^24, got ${maxFrame}`);
    this.buffer = new Uint8Array(maxFrame);
  }

  /** Feed received bytes; returns the complete frames they finished (copies). Never throws. */
  push(bytes: Uint8Array): Uint8Array[] {
    const frames: Uint8Array[] = [];
    for (const byte of bytes) {
      if (byte === SLIP_END) {
        if (this.state === State.Escaped) this.stats.badEscapes++;
        else if (this.state === State.InFrame && this.length > 0) {
          frames.push(this.buffer.slice(0, this.length));
          this.stats.frames++;
        }
        this.length = 0;
        this.state = State.InFrame;
        continue;
      }
      switch (this.state) {
        case State.Outside:
          this.stats.garbageBytes++;
          break;
        case State.InFrame:
          if (byte === SLIP_ESC) this.state = State.Escaped;
          else this.append(byte);
          break;
        case State.Escaped:
          if (byte === SLIP_ESC_END) {
            this.state = State.InFrame;
            this.append(SLIP_END);
          } else if (byte === SLIP_ESC_ESC) {
            this.state = State.InFrame;
            this.append(SLIP_ESC);
          } else {
            this.stats.badEscapes++;
            this.drop();
          }
          break;
      }
    }
    return frames;
  }

  private append(byte: number): void {
    if (this.length === this.maxFrame) {
      this.stats.oversizeFrames++;
      this.drop();
      return;
    }
    this.buffer[this.length++] = byte;
  }

  /** Forget the current frame; bytes up to the next 0xC0 are discarded. */
  private drop(): void {
    this.length = 0;
    this.state = State.Outside;
  }
}
