/**
 * Node side of the XS stream bridge (docs/design/mqtt-client.md, "XS
 * bridge"): firmware running in a real XS worker talks to real TCP/TLS
 * sockets that Node owns.
 *
 * - Guest → host (the guest's `issueCommand`, synchronous): STREAM
 *   CONNECT/WRITE/CLOSE and ENTROPY, answered by `HostStreams` through
 *   HostServices (tools/xs/wire.ts has the bytes).
 * - Host → guest (`worker.command`, from Node's event loop): a socket's
 *   bytes, room to write and errors as STREAM_EVENT commands, and TICK
 *   commands when the guest's last reply said something is due (at most
 *   `pollMs` apart). The worker is synchronous, so Node's event loop does not
 *   run while the guest runs: a socket event can never arrive inside a guest
 *   call, and each is delivered as soon as the guest is idle.
 *
 * Host tool (Node).
 */
import { randomFillSync } from 'node:crypto';
import type { ByteStream } from '../../firmware/hal/stream.ts';
import { NodeStreamConnector, nodeClock, type NodeStreamOptions } from '../net/node-stream.ts';
import { bundleForXs } from './bundle.ts';
import { errorReply, HostServices, ok } from './host-services.ts';
import { XsWorker } from './xsnap-worker.ts';
import { encodeStreamEvent, encodeTick, fromUtf8, Service, STREAM_HEADER_LENGTH, StreamEvent, StreamOp, u32le, utf8 } from './wire.ts';

/** Largest READABLE delivery: what the guest holds at once beyond its client's read buffer. */
const MAX_DELIVERY = 16 * 1024;

/** Answers STREAM and ENTROPY requests; sockets are NodeStreamConnector streams. */
export class HostStreams {
  private readonly streams = new Map<number, ByteStream>();
  private nextHandle = 1;
  private readonly connector: NodeStreamConnector;
  /** Counters for tests and the bench: host calls by kind. */
  readonly counts = { connects: 0, writes: 0, bytesWritten: 0, closes: 0, events: 0 };

  constructor(
    options: NodeStreamOptions,
    private readonly deliver: (command: Uint8Array) => void,
  ) {
    this.connector = new NodeStreamConnector(options);
  }

  /** Registers STREAM and ENTROPY with `services`. */
  install(services: HostServices): void {
    services.register(Service.STREAM, this.handle);
    services.register(Service.ENTROPY, entropyService);
  }

  handle = (request: Uint8Array): Uint8Array => {
    const view = new DataView(request.buffer, request.byteOffset, request.byteLength);
    const op = request[1];
    const handle = view.getUint32(2, true);
    const body = request.subarray(STREAM_HEADER_LENGTH);
    try {
      switch (op) {
        case StreamOp.CONNECT:
          return ok(u32le(this.connect(fromUtf8(body.subarray(2)), body[0] | (body[1] << 8))));
        case StreamOp.WRITE: {
          const stream = this.streams.get(handle);
          this.counts.writes++;
          this.counts.bytesWritten += body.length;
          // Unknown handle: the socket failed and its ERROR is on its way to the guest; report no room.
          return ok(u32le(stream === undefined ? 0 : stream.write(body.slice())));
        }
        case StreamOp.CLOSE:
          this.counts.closes++;
          this.streams.get(handle)?.close();
          this.streams.delete(handle);
          return ok();
        default:
          throw new Error(`unknown stream op ${op}`);
      }
    } catch (error) {
      return errorReply(error);
    }
  };

  private connect(host: string, port: number): number {
    const handle = this.nextHandle++;
    this.counts.connects++;
    const buffer = new Uint8Array(MAX_DELIVERY);
    const send = (event: number, body?: Uint8Array): void => {
      this.counts.events++;
      this.deliver(encodeStreamEvent(event, handle, nodeClock.ticks(), body));
    };
    const stream: ByteStream = this.connector.connect(host, port, {
      onReadable: () => {
        for (;;) {
          const n = stream.read(buffer);
          if (n === 0 || !this.streams.has(handle)) return;
          send(StreamEvent.READABLE, buffer.slice(0, n));
        }
      },
      onWritable: (room) => send(StreamEvent.WRITABLE, u32le(room)),
      onError: (reason) => {
        this.streams.delete(handle);
        send(StreamEvent.ERROR, utf8(reason));
      },
    });
    this.streams.set(handle, stream);
    return handle;
  }

  closeAll(): void {
    for (const stream of this.streams.values()) stream.close();
    this.streams.clear();
    this.connector.closeAll();
  }
}

function entropyService(request: Uint8Array): Uint8Array {
  const length = new DataView(request.buffer, request.byteOffset, request.byteLength).getUint32(1, true);
  if (length > 65536) return errorReply(new RangeError(`entropy request of ${length} bytes`));
  const bytes = new Uint8Array(length);
  randomFillSync(bytes);
  return ok(bytes);
}

export interface XsStreamBridgeOptions {
  /** TLS and socket settings for the host's sockets. */
  readonly net?: NodeStreamOptions;
  /** Tick at least this often (ms) even when the guest says nothing is due (default 50): new records, polling. */
  readonly pollMs?: number;
  /** HostServices to extend (e.g. one already holding a SimFlash the guest attaches to). */
  readonly services?: HostServices;
}

/**
 * A worker running a guest program (bundled from `entry`, which sets
 * `handleCommand` with handleBridgeCommand) wired to host sockets. Events
 * are delivered from Node's event loop; a guest failure stops the bridge
 * and is kept in `failure` (and handed to `onFailure`).
 */
export class XsStreamBridge {
  readonly services: HostServices;
  readonly streams: HostStreams;
  failure: Error | undefined;
  onFailure: ((error: Error) => void) | undefined;
  /** Commands delivered to the guest (events + ticks + app commands). */
  commands = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = 0;
  private closed = false;

  private constructor(
    private readonly worker: XsWorker,
    services: HostServices,
    private readonly pollMs: number,
    net: NodeStreamOptions,
  ) {
    this.services = services;
    this.streams = new HostStreams(net, (command) => this.send(command));
    this.streams.install(services);
  }

  static async open(entry: string, options: XsStreamBridgeOptions = {}): Promise<XsStreamBridge> {
    const code = await bundleForXs(entry);
    const services = options.services ?? new HostServices();
    const worker = XsWorker.spawn({ onCommand: services.handle, stdout: 'stderr' });
    const bridge = new XsStreamBridge(worker, services, options.pollMs ?? 50, options.net ?? {});
    try {
      worker.evaluate(code);
    } catch (error) {
      bridge.close();
      throw error;
    }
    return bridge;
  }

  /** One of the guest program's own commands; returns its reply bytes (after the nextDueMs prefix). */
  call(request: Uint8Array): Uint8Array {
    const reply = this.send(request);
    if (reply === undefined) throw this.failure ?? new Error('XS stream bridge is closed');
    return reply;
  }

  /** The guest program's command with a JSON request and reply. */
  callJson(message: unknown): unknown {
    return JSON.parse(fromUtf8(this.call(utf8(JSON.stringify(message)))));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.streams.closeAll();
    this.worker.close();
  }

  private send(command: Uint8Array): Uint8Array | undefined {
    if (this.closed || this.failure !== undefined) return undefined;
    let reply: Uint8Array;
    try {
      reply = this.worker.command(command).reply;
    } catch (error) {
      this.failure = error instanceof Error ? error : new Error(String(error));
      if (this.timer !== undefined) clearTimeout(this.timer);
      this.onFailure?.(this.failure);
      return undefined;
    }
    this.commands++;
    const due = new DataView(reply.buffer, reply.byteOffset, reply.byteLength).getInt32(0, true);
    this.schedule(due < 0 ? this.pollMs : Math.min(due, this.pollMs));
    return reply.subarray(4);
  }

  /** Tick in `delayMs`, unless a tick is already due no later (so frequent commands cannot starve the tick). */
  private schedule(delayMs: number): void {
    const at = performance.now() + Math.max(1, delayMs);
    if (this.timer !== undefined && this.timerAt <= at) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.send(encodeTick(nodeClock.ticks()));
    }, Math.max(1, delayMs));
  }
}
