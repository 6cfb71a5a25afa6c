/**
 * Incremental decoder for a byte stream (docs/spec/mqtt-codec.md, "Stream
 * decoder"): packets split across chunks at any byte, several packets per
 * chunk. Named states, one transition per step, no fall-through. Memory is
 * bounded: the only buffer is one packet body, allocated after the whole
 * Remaining Length is known and checked against the Maximum Packet Size.
 */
import type { DecodeContext } from './body.ts';
import { checkFirstByte, decodeBody, decodeContext } from './codec.ts';
import { DecodeReason, malformed, MqttDecodeError } from './errors.ts';
import type { DecodeOptions, MqttPacket } from './packets.ts';

export const StreamState = Object.freeze({
  /** Waiting for the first byte of a packet (type and flags). */
  FIXED_HEADER: 'fixed-header',
  /** Reading the Remaining Length, one byte at a time (at most 4). */
  REMAINING_LENGTH: 'remaining-length',
  /** Collecting the body into a buffer of exactly Remaining Length bytes. */
  BODY: 'body',
  /** A packet failed; the connection must close with `error.reasonCode`. Terminal. */
  FAILED: 'failed',
});

export type StreamStateName = (typeof StreamState)[keyof typeof StreamState];

export interface StreamResult {
  /** Every packet completed by this chunk, in order (those before a failure too). */
  readonly packets: MqttPacket[];
  /** Set once the stream failed; every later push returns it again. */
  readonly error?: MqttDecodeError;
}

const EMPTY = new Uint8Array(0);

export class MqttStreamDecoder {
  private readonly ctx: DecodeContext;
  private readonly maximumPacketSize: number;
  private current: StreamStateName = StreamState.FIXED_HEADER;
  private first = 0;
  private remaining = 0;
  private lengthBytes = 0;
  private multiplier = 1;
  private body: Uint8Array = EMPTY;
  private filled = 0;
  private failure: MqttDecodeError | undefined;
  private peakBuffered = 0;

  constructor(options: DecodeOptions) {
    const ctx = decodeContext(options);
    this.ctx = ctx;
    this.maximumPacketSize = ctx.maximumPacketSize;
  }

  get state(): StreamStateName {
    return this.current;
  }

  /** Bytes held between pushes (the partial body). */
  get bufferedBytes(): number {
    return this.body.length;
  }

  /** The largest body buffer this decoder ever allocated: never above maximumPacketSize - 2. */
  get maxBufferedBytes(): number {
    return this.peakBuffered;
  }

  get error(): MqttDecodeError | undefined {
    return this.failure;
  }

  push(chunk: Uint8Array): StreamResult {
    if (!(chunk instanceof Uint8Array)) throw new TypeError('push: expected a Uint8Array');
    const packets: MqttPacket[] = [];
    if (this.failure !== undefined) return { packets, error: this.failure };
    let at = 0;
    try {
      while (at < chunk.length) {
        switch (this.current) {
          case StreamState.FIXED_HEADER:
            at = this.readFirstByte(chunk, at);
            break;
          case StreamState.REMAINING_LENGTH:
            at = this.readLengthByte(chunk, at, packets);
            break;
          case StreamState.BODY:
            at = this.readBody(chunk, at, packets);
            break;
          case StreamState.FAILED:
            return { packets, error: this.failure };
        }
      }
    } catch (error) {
      if (!(error instanceof MqttDecodeError)) throw error;
      this.fail(error);
      return { packets, error };
    }
    return { packets };
  }

  private fail(error: MqttDecodeError): void {
    this.failure = error;
    this.current = StreamState.FAILED;
    this.body = EMPTY;
  }

  /** FIXED_HEADER → REMAINING_LENGTH. */
  private readFirstByte(chunk: Uint8Array, at: number): number {
    const byte = chunk[at];
    checkFirstByte(byte);
    this.first = byte;
    this.remaining = 0;
    this.lengthBytes = 0;
    this.multiplier = 1;
    this.current = StreamState.REMAINING_LENGTH;
    return at + 1;
  }

  /** REMAINING_LENGTH → REMAINING_LENGTH (more bytes), BODY, or FIXED_HEADER (empty body decoded). */
  private readLengthByte(chunk: Uint8Array, at: number, packets: MqttPacket[]): number {
    const byte = chunk[at];
    this.remaining += (byte & 0x7f) * this.multiplier;
    this.multiplier *= 128;
    this.lengthBytes += 1;
    if ((byte & 0x80) !== 0) {
      if (this.lengthBytes === 4) throw malformed('remaining length: variable byte integer longer than 4 bytes');
      // Refuse as soon as even the smallest value the next bytes could add is too large.
      const floor = 1 + this.lengthBytes + 1 + this.remaining + this.multiplier;
      if (floor > this.maximumPacketSize) throw this.tooLarge(floor, 'at least ');
      return at + 1;
    }
    if (byte === 0 && this.lengthBytes > 1) throw malformed('remaining length: variable byte integer not in its shortest form (§1.5.5)');
    const total = 1 + this.lengthBytes + this.remaining;
    if (total > this.maximumPacketSize) throw this.tooLarge(total, '');
    if (this.remaining === 0) {
      this.deliver(EMPTY, 0, 0, packets);
      return at + 1;
    }
    this.current = StreamState.BODY;
    this.filled = 0;
    const next = at + 1;
    if (chunk.length - next >= this.remaining) return next; // whole body in this chunk: decoded in place by readBody
    this.body = new Uint8Array(this.remaining);
    if (this.remaining > this.peakBuffered) this.peakBuffered = this.remaining;
    return next;
  }

  /** BODY → BODY (need more) or FIXED_HEADER (packet decoded). */
  private readBody(chunk: Uint8Array, at: number, packets: MqttPacket[]): number {
    if (this.body.length === 0) {
      // The whole body is in `chunk` (checked when the length was read).
      const end = at + this.remaining;
      this.deliver(chunk, at, end, packets);
      return end;
    }
    const take = Math.min(this.remaining - this.filled, chunk.length - at);
    this.body.set(chunk.subarray(at, at + take), this.filled);
    this.filled += take;
    if (this.filled === this.remaining) {
      const body = this.body;
      this.body = EMPTY;
      this.deliver(body, 0, body.length, packets);
    }
    return at + take;
  }

  private deliver(bytes: Uint8Array, start: number, end: number, packets: MqttPacket[]): void {
    packets.push(decodeBody(this.first, bytes, start, end, this.ctx));
    this.current = StreamState.FIXED_HEADER;
  }

  private tooLarge(total: number, qualifier: string): MqttDecodeError {
    return new MqttDecodeError(DecodeReason.PACKET_TOO_LARGE, `packet of ${qualifier}${total} bytes above the maximum ${this.maximumPacketSize}`);
  }
}
