/**
 * The device MQTT client: the socket loop around one MqttSession
 * (docs/design/mqtt-client.md). It opens a stream through the
 * `StreamConnector` HAL, feeds the session what the stream reads, writes
 * what the session returns (through a bounded write queue that honours the
 * stream's backpressure), calls `tick`, closes when the session says so, and
 * reconnects after a bounded exponential backoff with full jitter drawn from
 * the `Entropy` HAL.
 *
 * It has no timers: the runtime calls `service()` from its loop (or a
 * Moddable Timer) and may sleep `nextDueMs()` in between. Stream callbacks
 * drive it too (readable bytes, room to write, errors). Every session event
 * and every event of its own goes to one `onEvent` callback.
 *
 * Hand-written because it must run in XS on the device: mqtt.js and
 * mqtt-packet need Node's Buffer and streams, and Moddable's own MQTT
 * module speaks 3.1.1 at QoS 0 only (DESIGN §4, §7).
 *
 * Contract it relies on from the connector (ECMA-419 TCP socket semantics):
 * the first `onWritable` means the connection is open; callbacks never run
 * synchronously inside `connect`, `read`, `write` or `close`; `write` takes
 * at most the room last reported and returns the room left.
 */
import type { Entropy } from '../../hal/entropy.ts';
import type { MonotonicClock } from '../../hal/clock.ts';
import type { ByteStream, StreamConnector } from '../../hal/stream.ts';
import { elapsedMs } from '../../base/ticks.ts';
import { backoffCeilingMs, backoffDelayMs, MqttSession, type BackoffOptions, type RecordSource, type SessionEvent, type SessionOptions, type SessionStats, type Step } from '../mqtt-session/index.ts';
import { CloseCause, type ClientEvent, type CloseCauseName } from './events.ts';

export interface MqttClientOptions {
  readonly host: string;
  readonly port: number;
  /** The session's configuration; `protocolVersion` there is the configured version. */
  readonly session: SessionOptions;
  /** Bytes read from the stream per `read` call: the read buffer, allocated once (default 512). */
  readonly readBufferBytes?: number;
  /**
   * Bytes the client may hold that the stream has no room for yet (default
   * 8,192). Must exceed the largest step the session writes at once: CONNECT,
   * or `maxInFlight` PUBLISHes after a CONNACK. Past it the connection is
   * closed and reopened after the backoff, never grown.
   */
  readonly writeQueueBytes?: number;
  readonly backoff?: BackoffOptions;
  /** No first `onWritable` within this many ms → the attempt failed (default: the session's responseTimeoutMs). */
  readonly connectTimeoutMs?: number;
  /** Policy: after a version refusal of MQTT 5, use 3.1.1 from then on. Default false: the version is configuration only. */
  readonly fallbackTo311?: boolean;
}

export interface MqttClientDeps {
  readonly connector: StreamConnector;
  readonly clock: MonotonicClock;
  readonly entropy: Entropy;
  readonly source: RecordSource;
  readonly onEvent: (event: ClientEvent) => void;
}

export const ClientPhase = Object.freeze({
  /** Not started. */
  IDLE: 'idle',
  /** `connect` called; waiting for the first `onWritable`. */
  OPENING: 'opening',
  /** The transport is open; the session runs (CONNECTING, CONNECTED). */
  OPEN: 'open',
  /** Closed; waiting out the backoff before the next attempt. */
  WAITING: 'waiting',
  /** `stop()` was called. */
  STOPPED: 'stopped',
});
export type ClientPhaseName = (typeof ClientPhase)[keyof typeof ClientPhase];

export interface ClientStats {
  /** Transport connections attempted. */
  connects: number;
  /** CONNACK 0 received. */
  connacks: number;
  refusals: number;
  overflows: number;
  bytesWritten: number;
  bytesRead: number;
  /** Most bytes ever waiting in the write queue. */
  peakQueuedBytes: number;
  /** Most QoS 1 PUBLISHes in flight on any one connection. */
  peakInFlight: number;
  /** The session's own counters (its peak is per connection). */
  session: SessionStats;
}

const DEFAULT_READ_BUFFER = 512;
const DEFAULT_WRITE_QUEUE = 8192;

/** One transport connection; callbacks of an old one are ignored. */
interface Connection {
  stream: ByteStream | undefined;
  /** Room the stream last reported. */
  writable: number;
}

export class MqttClient {
  private readonly opts: MqttClientOptions;
  private readonly deps: MqttClientDeps;
  private readonly session: MqttSession;
  private readonly readBuffer: Uint8Array;
  private readonly writeLimit: number;
  private readonly connectTimeoutMs: number;
  private current: ClientPhaseName = ClientPhase.IDLE;
  private conn: Connection | undefined;
  /** Consecutive failed attempts since the last CONNACK 0: the backoff exponent. */
  private attempt = 0;
  private phaseSince = 0;
  private waitMs = 0;
  private fallbackPending = false;
  private queue: Uint8Array[] = [];
  private queueHead = 0;
  private queuedBytes = 0;
  private readonly counters = { connects: 0, connacks: 0, refusals: 0, overflows: 0, bytesWritten: 0, bytesRead: 0, peakQueuedBytes: 0, peakInFlight: 0 };

  constructor(options: MqttClientOptions, deps: MqttClientDeps) {
    const readBytes = options.readBufferBytes ?? DEFAULT_READ_BUFFER;
    const writeBytes = options.writeQueueBytes ?? DEFAULT_WRITE_QUEUE;
    if (!Number.isInteger(readBytes) || readBytes < 16 || readBytes > 65536) throw new RangeError(`readBufferBytes ${String(readBytes)} outside 16..65536`);
    if (!Number.isInteger(writeBytes) || writeBytes < 64) throw new RangeError(`writeQueueBytes ${String(writeBytes)} below 64`);
    if (typeof options.host !== 'string' || options.host.length === 0) throw new TypeError('host must be a non-empty string');
    if (!Number.isInteger(options.port) || options.port < 1 || options.port > 65535) throw new RangeError(`port ${String(options.port)} outside 1..65535`);
    // Checks the bounds now rather than at the first reconnect.
    backoffCeilingMs(0, options.backoff);
    this.opts = options;
    this.deps = deps;
    this.session = new MqttSession(options.session, deps.source);
    this.readBuffer = new Uint8Array(readBytes);
    this.writeLimit = writeBytes;
    this.connectTimeoutMs = options.connectTimeoutMs ?? options.session.responseTimeoutMs;
  }

  get phase(): ClientPhaseName {
    return this.current;
  }

  /** The protocol version the next CONNECT carries (changes only under `fallbackTo311`). */
  get protocolVersion(): number {
    return this.session.protocolVersion;
  }

  stats(): ClientStats {
    return { ...this.counters, session: this.session.stats() };
  }

  /** Open the first connection now. */
  start(now: number = this.deps.clock.ticks()): void {
    if (this.current !== ClientPhase.IDLE) throw new Error(`start in phase ${this.current}`);
    this.open(now);
  }

  /** Close the connection and never reconnect. */
  stop(): void {
    const wasOpen = this.conn !== undefined;
    this.current = ClientPhase.STOPPED;
    if (wasOpen) this.closeConnection(CloseCause.STOPPED, 'stop()', this.deps.clock.ticks());
  }

  /**
   * Let the client act at `now`: reconnect when the backoff is over, give up
   * on a transport that did not open in time, and tick the session (its
   * deadlines, keep-alive, and new records in the source). Call it after
   * appending records, and whenever `nextDueMs()` comes due.
   */
  service(now: number = this.deps.clock.ticks()): void {
    switch (this.current) {
      case ClientPhase.WAITING:
        if (elapsedMs(this.phaseSince, now) >= this.waitMs) this.open(now);
        return;
      case ClientPhase.OPENING:
        if (elapsedMs(this.phaseSince, now) >= this.connectTimeoutMs) this.closeConnection(CloseCause.CONNECT_TIMEOUT, `not connected within ${this.connectTimeoutMs} ms`, now);
        return;
      case ClientPhase.OPEN:
        this.apply(this.session.tick(now), now);
        return;
      default:
        return;
    }
  }

  /**
   * Milliseconds from `now` until `service` has something timed to do (0:
   * now); undefined when only stream callbacks or new records can need it.
   */
  nextDueMs(now: number = this.deps.clock.ticks()): number | undefined {
    switch (this.current) {
      case ClientPhase.WAITING:
        return Math.max(0, this.waitMs - elapsedMs(this.phaseSince, now));
      case ClientPhase.OPENING:
        return Math.max(0, this.connectTimeoutMs - elapsedMs(this.phaseSince, now));
      case ClientPhase.OPEN:
        return this.session.nextDeadlineMs(now);
      default:
        return undefined;
    }
  }

  /** SUBSCRIBE (QoS 1) on the current connection; throws unless connected. */
  subscribe(topicFilters: string[], now: number = this.deps.clock.ticks()): void {
    if (this.current !== ClientPhase.OPEN) throw new Error(`subscribe in phase ${this.current}`);
    this.apply(this.session.subscribe(topicFilters, now), now);
  }

  // ------------------------------------------------------------ connection

  private open(now: number): void {
    const conn: Connection = { stream: undefined, writable: 0 };
    this.conn = conn;
    this.current = ClientPhase.OPENING;
    this.phaseSince = now;
    this.counters.connects += 1;
    this.emit({ kind: 'connecting', host: this.opts.host, port: this.opts.port, attempt: this.attempt, protocolVersion: this.session.protocolVersion });
    let stream: ByteStream;
    try {
      stream = this.deps.connector.connect(this.opts.host, this.opts.port, {
        onReadable: () => {
          if (this.conn === conn) this.onReadable(conn);
        },
        onWritable: (count) => {
          if (this.conn === conn) this.onWritable(conn, count);
        },
        onError: (reason) => {
          if (this.conn === conn) this.closeConnection(CloseCause.STREAM, reason, this.deps.clock.ticks());
        },
      });
    } catch (error) {
      if (this.conn === conn) this.closeConnection(CloseCause.STREAM, `connect failed: ${describe(error)}`, now);
      return;
    }
    if (this.conn === conn) conn.stream = stream;
    else stream.close();
  }

  private onWritable(conn: Connection, count: number): void {
    const now = this.deps.clock.ticks();
    conn.writable = count;
    if (this.current === ClientPhase.OPENING) {
      this.current = ClientPhase.OPEN;
      this.phaseSince = now;
      this.emit({ kind: 'transport-open' });
      if (this.conn !== conn) return;
      this.apply(this.session.opened(now), now);
      return;
    }
    this.flush(conn);
  }

  private onReadable(conn: Connection): void {
    const stream = conn.stream;
    if (stream === undefined || this.current !== ClientPhase.OPEN) return;
    for (;;) {
      const n = stream.read(this.readBuffer);
      if (n <= 0) return;
      this.counters.bytesRead += n;
      this.apply(this.session.received(this.readBuffer.subarray(0, n), this.deps.clock.ticks()), this.deps.clock.ticks());
      if (this.conn !== conn) return;
    }
  }

  /** Reports the step's events, queues and flushes its bytes, closes when it says so. */
  private apply(step: Step, now: number): void {
    const conn = this.conn;
    let ending: SessionEvent | undefined;
    for (const event of step.events) {
      this.onSessionEvent(event);
      if (event.kind === 'refused' || event.kind === 'protocol-error' || event.kind === 'dead' || event.kind === 'server-disconnect') ending = event;
    }
    const inFlight = this.session.stats().inFlight;
    if (inFlight > this.counters.peakInFlight) this.counters.peakInFlight = inFlight;
    if (conn === undefined || this.conn !== conn) return;
    let add = 0;
    for (const bytes of step.write) add += bytes.length;
    if (this.queuedBytes + add > this.writeLimit) {
      this.counters.overflows += 1;
      this.emit({ kind: 'write-overflow', queuedBytes: this.queuedBytes, addBytes: add, limitBytes: this.writeLimit });
      if (this.conn === conn) this.closeConnection(CloseCause.WRITE_OVERFLOW, `${this.queuedBytes + add} bytes > ${this.writeLimit}`, now);
      return;
    }
    for (const bytes of step.write) if (bytes.length > 0) this.queue.push(bytes);
    this.queuedBytes += add;
    if (this.queuedBytes > this.counters.peakQueuedBytes) this.counters.peakQueuedBytes = this.queuedBytes;
    this.flush(conn);
    if (step.close && this.conn === conn) this.closeConnection(CloseCause.SESSION, ending === undefined ? 'session closed' : describeEvent(ending), now);
  }

  private onSessionEvent(event: SessionEvent): void {
    if (event.kind === 'connected') {
      // A CONNACK 0 ends the run of failures: the next backoff starts from the base again.
      this.attempt = 0;
      this.counters.connacks += 1;
    }
    this.emit(event);
    if (event.kind !== 'refused') return;
    this.counters.refusals += 1;
    if (!event.unsupportedVersion) return;
    const version = this.session.protocolVersion;
    if (version === 5 && this.opts.fallbackTo311 === true) {
      // Applied once the session is IDLE again (closeConnection).
      this.fallbackPending = true;
      this.emit({ kind: 'protocol-fallback', from: 5, to: 4, reasonCode: event.reasonCode });
    } else {
      this.emit({ kind: 'refused-no-fallback', protocolVersion: version, reasonCode: event.reasonCode });
    }
  }

  /** Writes queued bytes while the stream has room; a packet may go out in pieces. */
  private flush(conn: Connection): void {
    const stream = conn.stream;
    if (stream === undefined) return;
    while (this.queue.length > 0 && conn.writable > 0 && this.conn === conn) {
      const chunk = this.queue[0];
      const n = Math.min(chunk.length - this.queueHead, conn.writable);
      conn.writable = stream.write(chunk.subarray(this.queueHead, this.queueHead + n));
      this.queueHead += n;
      this.queuedBytes -= n;
      this.counters.bytesWritten += n;
      if (this.queueHead === chunk.length) {
        this.queue.shift();
        this.queueHead = 0;
      }
    }
  }

  /** Ends the connection (whoever decided), tells the session, and schedules the next attempt unless stopped. */
  private closeConnection(cause: CloseCauseName, detail: string, now: number): void {
    const conn = this.conn;
    if (conn === undefined) return;
    this.conn = undefined;
    this.queue = [];
    this.queueHead = 0;
    this.queuedBytes = 0;
    try {
      conn.stream?.close();
    } catch {
      // already closed by the peer: nothing left to release
    }
    this.session.closed();
    if (this.fallbackPending) {
      this.fallbackPending = false;
      this.session.useProtocolVersion(4);
    }
    const stopped = this.current === ClientPhase.STOPPED;
    if (!stopped) {
      this.current = ClientPhase.WAITING;
      this.phaseSince = now;
      this.waitMs = 0;
    }
    this.emit({ kind: 'closed', cause, detail });
    if (stopped || this.current !== ClientPhase.WAITING || this.conn !== undefined) return;
    const ceilingMs = backoffCeilingMs(this.attempt, this.opts.backoff);
    const delayMs = backoffDelayMs(this.attempt, this.deps.entropy, this.opts.backoff);
    this.waitMs = delayMs;
    this.emit({ kind: 'backoff', attempt: this.attempt, delayMs, ceilingMs });
    // Grows the ceiling for the next failure (backoffCeilingMs clamps it at the cap); reset by the next CONNACK 0.
    this.attempt += 1;
  }

  private emit(event: ClientEvent): void {
    this.deps.onEvent(event);
  }
}

function describeEvent(event: SessionEvent): string {
  switch (event.kind) {
    case 'refused':
      return `refused 0x${event.reasonCode.toString(16)}`;
    case 'protocol-error':
      return `protocol error 0x${event.reasonCode.toString(16)}: ${event.cause}`;
    case 'dead':
      return `dead: ${event.cause}`;
    case 'server-disconnect':
      return `server DISCONNECT 0x${event.reasonCode.toString(16)}`;
    default:
      return event.kind;
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
