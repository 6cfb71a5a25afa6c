/**
 * Scripted transport for the MqttClient cases (test/protocol/client.cases.ts):
 * a fake clock, deterministic entropy, and a StreamConnector whose streams
 * the test opens, feeds, stalls and fails by hand. Each stream checks the
 * client against the ECMA-419 contract it relies on: it never writes more
 * than the room last reported, and never writes after close. `serve` wires
 * a stream to the scripted broker of session-broker.ts until both are quiet.
 * Engine-neutral (runs in XS with the cases).
 */
import type { ByteStream, ByteStreamCallbacks, StreamConnector } from '../../firmware/hal/stream.ts';
import type { Entropy } from '../../firmware/hal/entropy.ts';
import type { MonotonicClock } from '../../firmware/hal/clock.ts';
import { MqttStreamDecoder, type MqttPacket, type MqttVersion } from '../../firmware/protocol/mqtt/index.ts';
import type { ClientEvent } from '../../firmware/protocol/mqtt-client/index.ts';
import { CheckFailure } from '../support/check.ts';
import type { FakeBroker } from './session-broker.ts';
import { ChunkQueue } from '../../tools/net/chunk-queue.ts';

export class FakeClock implements MonotonicClock {
  now = 0;
  ticks(): number {
    return this.now >>> 0;
  }
  advance(ms: number): number {
    this.now = (this.now + ms) >>> 0;
    return this.now;
  }
}

/** Deterministic entropy (xorshift32); two with the same seed give the same bytes. */
export function xorshiftEntropy(seed: number): Entropy & { draws: number } {
  let x = seed >>> 0 || 1;
  const e = {
    draws: 0,
    fill(target: Uint8Array): void {
      e.draws += 1;
      for (let i = 0; i < target.length; i++) {
        x ^= x << 13;
        x >>>= 0;
        x ^= x >>> 17;
        x ^= x << 5;
        x >>>= 0;
        target[i] = x & 0xff;
      }
    },
  };
  return e;
}

export function constantEntropy(byte: number): Entropy {
  return { fill: (t: Uint8Array) => void t.fill(byte) };
}

export class FakeStream implements ByteStream {
  private readonly inbox = new ChunkQueue();
  private taken = 0;
  /** Every chunk the client wrote, in order. */
  readonly chunks: Uint8Array[] = [];
  room = 0;
  closed = false;
  /** Writes beyond the reported room, or after close: contract breaches, asserted 0. */
  breaches = 0;
  /** Set by the test when the stream failed (onError sent). */
  failed = false;

  constructor(
    readonly host: string,
    readonly port: number,
    readonly openedAt: number,
    private readonly callbacks: ByteStreamCallbacks,
  ) {}

  read(target: Uint8Array): number {
    return this.inbox.read(target);
  }

  write(data: Uint8Array): number {
    if (this.closed || this.failed || data.length > this.room) this.breaches += 1;
    this.chunks.push(data.slice());
    this.room = Math.max(0, this.room - data.length);
    return this.room;
  }

  close(): void {
    this.closed = true;
  }

  // ---- the test's side

  /** The connection is up with `room` bytes of write space (the first onWritable). */
  accept(room: number): void {
    this.room = room;
    this.callbacks.onWritable(room);
  }

  /** The socket drained: `room` bytes of space again. */
  grant(room: number): void {
    this.room = room;
    if (!this.closed) this.callbacks.onWritable(room);
  }

  /** Bytes from the broker. */
  deliver(bytes: Uint8Array): void {
    this.inbox.push(bytes.slice());
    if (!this.closed) this.callbacks.onReadable(this.inbox.length);
  }

  fail(reason: string): void {
    this.failed = true;
    if (!this.closed) this.callbacks.onError(reason);
  }

  /** Bytes written since the last call. */
  takeWritten(): Uint8Array {
    const fresh = this.chunks.slice(this.taken);
    this.taken = this.chunks.length;
    let length = 0;
    for (const c of fresh) length += c.length;
    const out = new Uint8Array(length);
    let at = 0;
    for (const c of fresh) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }

  /** Every packet written on this stream, decoded as `version`. */
  packets(version: MqttVersion = 5): MqttPacket[] {
    const decoder = new MqttStreamDecoder({ protocolVersion: version, maximumPacketSize: 1 << 20 });
    const all: MqttPacket[] = [];
    for (const c of this.chunks) {
      const r = decoder.push(c);
      if (r.error) throw new CheckFailure(`client wrote bad bytes: ${r.error.message}`);
      all.push(...r.packets);
    }
    return all;
  }

  /** The protocol level of the CONNECT that opens this stream (the byte after the protocol name, §3.1.2.2). */
  connectLevel(): number {
    const first = this.chunks[0];
    if (first === undefined || first[0] !== 0x10) throw new CheckFailure('stream did not start with CONNECT');
    let i = 1;
    while ((first[i] & 0x80) !== 0) i++;
    // remaining length ends at i; then u16 name length (4), "MQTT", then the level.
    return first[i + 1 + 2 + 4];
  }

  /** Chunks written and not yet taken. */
  unread(): number {
    return this.chunks.length - this.taken;
  }
}

export class FakeNet implements StreamConnector {
  readonly streams: FakeStream[] = [];

  constructor(private readonly clock: MonotonicClock) {}

  connect(host: string, port: number, callbacks: ByteStreamCallbacks): ByteStream {
    const stream = new FakeStream(host, port, this.clock.ticks(), callbacks);
    this.streams.push(stream);
    return stream;
  }

  get last(): FakeStream {
    const s = this.streams[this.streams.length - 1];
    if (s === undefined) throw new CheckFailure('no connection was opened');
    return s;
  }

  breaches(): number {
    let n = 0;
    for (const s of this.streams) n += s.breaches;
    return n;
  }
}

/**
 * Pass bytes between `stream` and `broker` until neither has anything left,
 * granting `room` bytes of write space each round (a socket that drains).
 */
export function serve(stream: FakeStream, broker: FakeBroker, room: number): void {
  for (let round = 0; round < 100_000; round++) {
    const written = stream.takeWritten();
    if (written.length === 0) {
      if (stream.closed || stream.failed) return;
      stream.grant(room);
      if (stream.unread() === 0) return;
      continue;
    }
    const answers = broker.feed(written);
    for (const a of answers) if (!stream.closed) stream.deliver(a);
    if (!stream.closed) stream.grant(room);
  }
  throw new CheckFailure('serve did not settle');
}

/** Records every event; helpers to pick them by kind. */
export class EventLog {
  readonly all: ClientEvent[] = [];
  readonly push = (event: ClientEvent): void => {
    this.all.push(event);
  };

  of<K extends ClientEvent['kind']>(kind: K): Extract<ClientEvent, { kind: K }>[] {
    return this.all.filter((e): e is Extract<ClientEvent, { kind: K }> => e.kind === kind);
  }

  kinds(): string {
    return this.all.map((e) => e.kind).join(',');
  }
}
