/**
 * Inside XS: the stream HAL over sockets the Node host owns (the XS bridge,
 * docs/design/mqtt-client.md). `connect`, `write` and `close` are
 * synchronous host calls (`issueCommand`); what the sockets do comes back as
 * host → guest commands (`handleCommand`), which `handleBridgeCommand`
 * routes: bytes read (delivered with the event, so reading costs no extra
 * round trip), room to write, errors, and timer ticks. So the firmware's
 * callbacks run from the guest's command handler, never inside its own host
 * calls, as ECMA-419 delivers them from the event loop.
 *
 * Also the two other HAL pieces such a guest needs: a clock that shows the
 * host's ticks as of the last command, and entropy from the host's CSPRNG.
 */
import type { ByteStream, ByteStreamCallbacks, StreamConnector } from '../../../firmware/hal/stream.ts';
import type { MonotonicClock } from '../../../firmware/hal/clock.ts';
import type { Entropy } from '../../../firmware/hal/entropy.ts';
import { concatBytes, encodeStreamRequest, fromUtf8, GuestCommand, ReplyStatus, Service, STREAM_EVENT_HEADER_LENGTH, StreamEvent, StreamOp, u32le, utf8 } from '../wire.ts';
import { callHost } from './host-call.ts';
import { ChunkQueue } from '../../net/chunk-queue.ts';

/** Host ticks as of the last command: time stands still while the guest runs (a command takes microseconds). */
export class BridgeClock implements MonotonicClock {
  now = 0;
  ticks(): number {
    return this.now >>> 0;
  }
}

/** The host's CSPRNG (node:crypto), standing in for the device's hardware RNG. */
export const hostEntropy: Entropy = Object.freeze({
  fill(target: Uint8Array): void {
    const reply = callHost(concatBytes(Uint8Array.of(Service.ENTROPY), u32le(target.length)));
    if (reply[0] !== ReplyStatus.OK || reply.length !== target.length + 1) throw new Error(`host entropy failed: ${fromUtf8(reply.subarray(1))}`);
    target.set(reply.subarray(1));
  },
});

export class RemoteStreamConnector implements StreamConnector {
  private readonly streams = new Map<number, RemoteStream>();

  connect(host: string, port: number, callbacks: ByteStreamCallbacks): ByteStream {
    const body = concatBytes(Uint8Array.of(port & 0xff, port >>> 8), utf8(host));
    const reply = streamCall(StreamOp.CONNECT, 0, body);
    const handle = new DataView(reply.buffer, reply.byteOffset).getUint32(0, true);
    const stream = new RemoteStream(handle, callbacks, () => this.streams.delete(handle));
    this.streams.set(handle, stream);
    return stream;
  }

  /** Streams open now (a test checks that closed ones are released). */
  get openCount(): number {
    return this.streams.size;
  }

  /** Routes one STREAM_EVENT command to its stream's callbacks; events for a closed stream are dropped. */
  dispatch(command: Uint8Array): void {
    const view = new DataView(command.buffer, command.byteOffset, command.byteLength);
    const event = command[1];
    const stream = this.streams.get(view.getUint32(2, true));
    if (stream === undefined) return;
    const body = command.subarray(STREAM_EVENT_HEADER_LENGTH);
    if (event === StreamEvent.READABLE) stream.arrived(body);
    else if (event === StreamEvent.WRITABLE) stream.writable(new DataView(body.buffer, body.byteOffset).getUint32(0, true));
    else if (event === StreamEvent.ERROR) stream.failed(fromUtf8(body));
    else throw new Error(`unknown stream event ${event}`);
  }
}

class RemoteStream implements ByteStream {
  private readonly inbox = new ChunkQueue();
  private closed = false;

  constructor(
    private readonly handle: number,
    private readonly callbacks: ByteStreamCallbacks,
    private readonly release: () => void,
  ) {}

  read(target: Uint8Array): number {
    return this.inbox.read(target);
  }

  write(data: Uint8Array): number {
    if (this.closed) return 0;
    const reply = streamCall(StreamOp.WRITE, this.handle, data);
    return new DataView(reply.buffer, reply.byteOffset).getUint32(0, true);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.release();
    streamCall(StreamOp.CLOSE, this.handle);
  }

  arrived(bytes: Uint8Array): void {
    this.inbox.push(bytes);
    this.callbacks.onReadable(this.inbox.length);
  }

  writable(room: number): void {
    this.callbacks.onWritable(room);
  }

  failed(reason: string): void {
    this.closed = true;
    this.release();
    this.callbacks.onError(reason);
  }
}

function streamCall(op: number, handle: number, body?: Uint8Array): Uint8Array {
  const reply = callHost(encodeStreamRequest(op, handle, body));
  if (reply[0] === ReplyStatus.OK) return reply.subarray(1);
  throw new Error(`host stream error: ${fromUtf8(reply.subarray(1))}`);
}

/** What a guest program runs behind the bridge (an MqttClient and its own commands). */
export interface BridgeApp {
  service(now: number): void;
  nextDueMs(now: number): number | undefined;
  /** The program's own commands (anything that is not a bridge command); returns its reply bytes. */
  command(request: Uint8Array): Uint8Array;
}

/**
 * One host → guest command: stream events and ticks go to the connector and
 * `app.service`, anything else to `app.command`. The reply is always i32
 * nextDueMs (-1: nothing timed), then the app's bytes.
 */
export function handleBridgeCommand(request: Uint8Array, connector: RemoteStreamConnector, clock: BridgeClock, app: BridgeApp): Uint8Array {
  let body: Uint8Array = new Uint8Array(0);
  const view = new DataView(request.buffer, request.byteOffset, request.byteLength);
  if (request[0] === GuestCommand.STREAM_EVENT) {
    clock.now = view.getUint32(6, true);
    connector.dispatch(request);
  } else if (request[0] === GuestCommand.TICK) {
    clock.now = view.getUint32(1, true);
    app.service(clock.now);
  } else {
    body = app.command(request);
  }
  const due = app.nextDueMs(clock.now);
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setInt32(0, due === undefined ? -1 : Math.min(due, 0x7fffffff), true);
  out.set(body, 4);
  return out;
}
