/**
 * The stream HAL (firmware/hal/stream.ts) over Node's `node:net` and
 * `node:tls`, so the firmware MQTT client runs in Node against a real broker
 * (docs/design/mqtt-client.md). Also the other HAL pieces a Node run needs
 * (a monotonic clock, entropy from node:crypto) and `runClient`, the loop a
 * runtime would be: service() when nextDueMs() comes due, and after every
 * stream event.
 *
 * Semantics kept from ECMA-419's TCP socket: the first `onWritable` means
 * connected (after the TLS handshake for TLS); callbacks come from the
 * event loop, never inside `connect`/`read`/`write`/`close`; `write` returns
 * the room left below the socket's high-water mark, and `onWritable` follows
 * Node's 'drain' when that room was used up. Reads: bytes are kept until
 * `read` takes them; past `maxInboxBytes` the socket is paused (TCP pushes
 * back on the broker) and resumed once `read` drained them.
 *
 * Host tool (Node).
 */
import { randomFillSync } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { ByteStream, ByteStreamCallbacks, StreamConnector } from '../../firmware/hal/stream.ts';
import type { MonotonicClock } from '../../firmware/hal/clock.ts';
import type { Entropy } from '../../firmware/hal/entropy.ts';
import { ChunkQueue } from './chunk-queue.ts';

export interface NodeTlsOptions {
  /** PEM of the CA that signed the broker's certificate. */
  readonly ca?: string | Buffer;
  /** PEM client certificate and key (mutual TLS: the device identity). */
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
  /** SNI and the name checked against the certificate (default: the host, unless it is an IP). */
  readonly servername?: string;
  /** Default true. */
  readonly rejectUnauthorized?: boolean;
}

export interface NodeStreamOptions {
  /** Speak TLS with these settings; plain TCP without. */
  readonly tls?: NodeTlsOptions;
  /** Pause reading past this many unread bytes (default 64 KiB). */
  readonly maxInboxBytes?: number;
  /** Every socket opened, for a test to watch or to destroy. */
  readonly onSocket?: (socket: Socket) => void;
}

export class NodeStreamConnector implements StreamConnector {
  /** Sockets not yet closed: `closeAll()` ends them (test cleanup). */
  private readonly open = new Set<Socket>();

  constructor(private readonly options: NodeStreamOptions = {}) {}

  connect(host: string, port: number, callbacks: ByteStreamCallbacks): ByteStream {
    const tls = this.options.tls;
    const socket: Socket = tls
      ? tlsConnect({ host, port, ca: tls.ca, cert: tls.cert, key: tls.key, servername: tls.servername, rejectUnauthorized: tls.rejectUnauthorized ?? true })
      : netConnect({ host, port });
    this.open.add(socket);
    socket.once('close', () => this.open.delete(socket));
    this.options.onSocket?.(socket);
    return new NodeStream(socket, tls !== undefined, callbacks, this.options.maxInboxBytes ?? 65536);
  }

  /** Destroys every socket still open. */
  closeAll(): void {
    for (const socket of this.open) socket.destroy();
    this.open.clear();
  }
}

class NodeStream implements ByteStream {
  private readonly inbox = new ChunkQueue();
  private ended = false;
  private paused = false;
  private corked = false;

  constructor(
    private readonly socket: Socket,
    secure: boolean,
    private readonly callbacks: ByteStreamCallbacks,
    private readonly maxInbox: number,
  ) {
    socket.setNoDelay(true);
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      if (!this.ended) this.callbacks.onWritable(this.room());
    });
    socket.on('data', (chunk: Buffer) => {
      if (this.ended) return;
      this.inbox.push(chunk);
      if (this.inbox.length > this.maxInbox && !this.paused) {
        this.paused = true;
        socket.pause();
      }
      this.callbacks.onReadable(this.inbox.length);
    });
    socket.on('drain', () => {
      if (!this.ended) this.callbacks.onWritable(this.room());
    });
    socket.on('error', (error: Error) => this.fail(`${(error as NodeJS.ErrnoException).code ?? error.name}: ${error.message}`));
    socket.on('close', () => this.fail('closed by peer'));
  }

  read(target: Uint8Array): number {
    const n = this.inbox.read(target);
    if (this.paused && this.inbox.length <= this.maxInbox / 2) {
      this.paused = false;
      this.socket.resume();
    }
    return n;
  }

  write(data: Uint8Array): number {
    if (this.ended) return 0;
    // Writes within one event-loop turn leave as one writev (one segment instead of one per packet, Nagle being off).
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    // Node keeps a reference until the bytes are sent: the client never reuses what it queued.
    this.socket.write(data);
    return this.room();
  }

  close(): void {
    if (this.ended) return;
    this.ended = true;
    // FIN after what is queued (a DISCONNECT); a peer that never closes is cut after 2 s.
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 2000).unref();
  }

  private room(): number {
    return Math.max(0, this.socket.writableHighWaterMark - this.socket.writableLength);
  }

  private fail(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.socket.destroy();
    this.callbacks.onError(reason);
  }
}

/** Node's monotonic clock as the HAL's 32-bit wrapping ticks. */
export const nodeClock: MonotonicClock = Object.freeze({
  ticks: (): number => Math.floor(performance.now()) >>> 0,
});

/** The OS's CSPRNG as the HAL's entropy. */
export const nodeEntropy: Entropy = Object.freeze({
  fill: (target: Uint8Array): void => void randomFillSync(target),
});

/** What `runClient` drives: MqttClient's timer-less surface. */
export interface Serviceable {
  service(now?: number): void;
  nextDueMs(now?: number): number | undefined;
}

/**
 * The runtime loop in Node: calls `service()` when `nextDueMs()` comes due
 * and at least every `pollMs` (new records appended elsewhere). Returns a
 * function that stops the loop.
 */
export function runClient(client: Serviceable, pollMs = 50): () => void {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const loop = (): void => {
    if (stopped) return;
    client.service();
    const due = client.nextDueMs();
    timer = setTimeout(loop, Math.max(1, Math.min(pollMs, due ?? pollMs)));
  };
  timer = setTimeout(loop, 0);
  return () => {
    stopped = true;
    if (timer !== undefined) clearTimeout(timer);
  };
}
