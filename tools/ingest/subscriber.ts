/**
 * A minimal MQTT subscriber with acknowledgements under the caller's
 * control (docs/spec/ingest.md, "Acknowledgement order"): QoS 1, a
 * persistent session (MQTT 5 Clean Start 0 with a Session Expiry, or 3.1.1
 * clean session 0), and a PUBACK only when the caller says the message is
 * committed. mqtt.js cannot do this without serializing: it handles the
 * next incoming packet only after the previous one's acknowledgement
 * callback ran (node_modules/mqtt/build/lib/client.js, `work`), so holding
 * acks for a batch commit would take one message per commit. Packets are
 * framed and encoded by mqtt-packet.
 *
 * A message is acked on the connection it arrived on, or not at all: after
 * a reconnect the broker redelivers every unacknowledged QoS 1 message of
 * the session (MQTT 5 §4.4), and the ingest's window turns the copy it had
 * already committed into a duplicate.
 *
 * Host tool (Node).
 */
import { connect, type Socket } from 'node:net';
import mqttPacket from 'mqtt-packet';

export interface SubscriberOptions {
  host: string;
  port: number;
  clientId: string;
  username?: string;
  password?: string;
  /** 5 (MQTT 5, default) or 4 (3.1.1). */
  protocolVersion: 4 | 5;
  /** Topic filter, subscribed at QoS 1. */
  topic: string;
  /** MQTT 5 Session Expiry Interval in seconds (default 7 days). */
  sessionExpirySeconds?: number;
  /** Keep alive in seconds (default 30). */
  keepaliveSeconds?: number;
  /** MQTT 5 Receive Maximum the subscriber announces (default 65,535). */
  receiveMaximum?: number;
  onMessage(message: IncomingMessage): void;
  /** A failure that reconnecting cannot fix (refused CONNECT, refused subscription). */
  onFatal(error: Error): void;
  /** Connection events, for the progress log. */
  onLog?(line: string): void;
}

export interface IncomingMessage {
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: number;
  readonly messageId: number | undefined;
  readonly dup: boolean;
  /** Connection number it arrived on. */
  readonly connection: number;
}

const RECONNECT_MIN_MS = 50;
const RECONNECT_MAX_MS = 2000;

export class Subscriber {
  private socket: Socket | undefined;
  private connection = 0;
  private connected = false;
  private stopping = false;
  private backoffMs = RECONNECT_MIN_MS;
  private pingTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private nextId = 1;
  private paused = false;
  private readyResolve: (() => void) | undefined;
  /** Resolves on the first SUBACK. */
  readonly ready: Promise<void>;

  constructor(private readonly options: SubscriberOptions) {
    this.ready = new Promise((resolve) => (this.readyResolve = resolve));
  }

  start(): void {
    this.open();
  }

  /** Whether a message from `connection` can still be acknowledged. */
  canAck(connection: number): boolean {
    return this.connected && connection === this.connection && this.socket !== undefined;
  }

  /** PUBACK each QoS 1 message, in the order given, if its connection is still the current one. Returns how many were sent. */
  ack(messages: readonly IncomingMessage[]): number {
    const socket = this.socket;
    if (!socket || !this.connected) return 0;
    // One buffer for the whole batch: PUBACK is 0x40, remaining length 2, packet id (MQTT 5 §3.4.2.1: reason code
    // 0x00 and no properties may be omitted; mqtt-packet writes the same 4 bytes).
    const out = Buffer.allocUnsafe(messages.length * 4);
    let sent = 0;
    for (const m of messages) {
      if (m.qos !== 1 || m.messageId === undefined || m.connection !== this.connection) continue;
      const at = sent * 4;
      out[at] = 0x40;
      out[at + 1] = 0x02;
      out[at + 2] = m.messageId >>> 8;
      out[at + 3] = m.messageId & 0xff;
      sent++;
    }
    if (sent > 0) socket.write(out.subarray(0, sent * 4));
    return sent;
  }

  /**
   * PUBLISH at QoS 0 (the receipts: a lost one costs the device a resend,
   * never a record), retained when asked. False when not connected.
   */
  publish(topic: string, payload: Uint8Array, retain: boolean): boolean {
    const socket = this.socket;
    if (!socket || !this.connected) return false;
    socket.write(mqttPacket.generate({ cmd: 'publish', topic, payload: Buffer.from(payload.buffer, payload.byteOffset, payload.length), qos: 0, retain, dup: false } as mqttPacket.Packet, { protocolVersion: this.options.protocolVersion }));
    return true;
  }

  /** Stop reading from the broker (TCP back-pressure) until `resume`. */
  pause(): void {
    this.paused = true;
    this.socket?.pause();
  }

  resume(): void {
    this.paused = false;
    this.socket?.resume();
  }

  /** DISCONNECT (the session stays on the broker) and close; no reconnect. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.pingTimer);
    const socket = this.socket;
    if (!socket) return;
    await new Promise<void>((resolve) => {
      socket.once('close', () => resolve());
      if (this.connected) socket.end(mqttPacket.generate({ cmd: 'disconnect', ...(this.options.protocolVersion === 5 ? { reasonCode: 0 } : {}) } as mqttPacket.Packet, { protocolVersion: this.options.protocolVersion }));
      else socket.destroy();
      setTimeout(() => socket.destroy(), 1000).unref();
    });
  }

  private log(line: string): void {
    this.options.onLog?.(line);
  }

  private open(): void {
    if (this.stopping) return;
    const o = this.options;
    const socket = connect({ host: o.host, port: o.port });
    socket.setNoDelay(true);
    this.socket = socket;
    const connection = ++this.connection;
    this.connected = false;
    const parser = mqttPacket.parser({ protocolVersion: o.protocolVersion });
    parser.on('packet', (packet) => this.handle(packet as mqttPacket.Packet & Record<string, any>, connection));
    const bad = (reason: string) => {
      this.log(`bad packet from the broker: ${reason}; reconnecting`);
      socket.destroy();
    };
    parser.on('error', (error) => bad(error.message));
    const framer = new Framer(
      (frame) => {
        // The common packet, a QoS 1 PUBLISH without MQTT 5 properties, is read here (no copy of the payload);
        // every other packet goes to mqtt-packet's parser, whole.
        const m = fastPublish(frame, o.protocolVersion === 5, connection);
        if (m === undefined) parser.parse(frame);
        else if (connection === this.connection && this.socket !== undefined) o.onMessage(m);
      },
      bad,
    );
    socket.on('data', (data: Buffer) => framer.push(data));
    if (this.paused) socket.pause();
    socket.on('error', (error) => this.log(`connection ${connection}: ${error.message}`));
    socket.on('close', () => {
      if (this.socket === socket) {
        this.socket = undefined;
        this.connected = false;
        clearInterval(this.pingTimer);
      }
      if (this.stopping) return;
      this.log(`connection ${connection} closed; reconnecting in ${this.backoffMs} ms`);
      this.reconnectTimer = setTimeout(() => this.open(), this.backoffMs);
      this.backoffMs = Math.min(RECONNECT_MAX_MS, this.backoffMs * 2);
    });
    socket.on('connect', () => {
      const v5 = o.protocolVersion === 5;
      const packet = {
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: o.protocolVersion,
        clean: false,
        clientId: o.clientId,
        keepalive: o.keepaliveSeconds ?? 30,
        ...(o.username !== undefined ? { username: o.username } : {}),
        ...(o.password !== undefined ? { password: Buffer.from(o.password, 'utf8') } : {}),
        ...(v5 ? { properties: { sessionExpiryInterval: o.sessionExpirySeconds ?? 7 * 24 * 3600, receiveMaximum: o.receiveMaximum ?? 65535 } } : {}),
      };
      socket.write(mqttPacket.generate(packet as mqttPacket.Packet, { protocolVersion: o.protocolVersion }));
    });
  }

  private handle(packet: mqttPacket.Packet & Record<string, any>, connection: number): void {
    const o = this.options;
    const socket = this.socket;
    if (connection !== this.connection || !socket) return;
    switch (packet.cmd) {
      case 'connack': {
        const code = o.protocolVersion === 5 ? packet.reasonCode ?? 0 : packet.returnCode ?? 0;
        if (code !== 0) {
          this.stopping = true;
          socket.destroy();
          o.onFatal(new Error(`the broker refused the connection (${o.protocolVersion === 5 ? 'reason' : 'return'} code 0x${code.toString(16)})`));
          return;
        }
        this.connected = true;
        this.backoffMs = RECONNECT_MIN_MS;
        this.log(`connected (connection ${connection}, session present ${packet.sessionPresent ? 'yes' : 'no'})`);
        const keepalive = (o.keepaliveSeconds ?? 30) * 1000;
        clearInterval(this.pingTimer);
        this.pingTimer = setInterval(() => socket.write(mqttPacket.generate({ cmd: 'pingreq' } as mqttPacket.Packet, { protocolVersion: o.protocolVersion })), keepalive / 2);
        this.pingTimer.unref();
        // Subscribe on every connection: idempotent, and it repairs a session the broker lost.
        const id = this.messageId();
        socket.write(mqttPacket.generate({ cmd: 'subscribe', messageId: id, subscriptions: [{ topic: o.topic, qos: 1 }] } as mqttPacket.Packet, { protocolVersion: o.protocolVersion }));
        return;
      }
      case 'suback': {
        const granted = (packet.granted as number[] | undefined) ?? [];
        if (granted.some((g) => g >= 0x80)) {
          this.stopping = true;
          socket.destroy();
          o.onFatal(new Error(`the broker refused the subscription to ${o.topic} (code 0x${granted[0].toString(16)})`));
          return;
        }
        this.readyResolve?.();
        return;
      }
      case 'publish':
        o.onMessage({ topic: packet.topic as string, payload: packet.payload as Buffer, qos: packet.qos as number, messageId: packet.messageId, dup: packet.dup === true, connection });
        return;
      case 'pubrel':
        // QoS 2 is never granted (subscribed at QoS 1); answer so a confused broker is not left waiting.
        socket.write(mqttPacket.generate({ cmd: 'pubcomp', messageId: packet.messageId } as mqttPacket.Packet, { protocolVersion: o.protocolVersion }));
        return;
      case 'disconnect':
        this.log(`the broker disconnected us (reason 0x${(packet.reasonCode ?? 0).toString(16)})`);
        socket.destroy();
        return;
      default:
        return;
    }
  }

  private messageId(): number {
    const id = this.nextId;
    this.nextId = id >= 0xffff ? 1 : id + 1;
    return id;
  }
}

/**
 * Splits the byte stream into whole MQTT packets (fixed header: type and
 * flags, Remaining Length as a variable byte integer of at most 4 bytes,
 * MQTT 5 §2.1.4). A frame is a view of the received chunk when it lies in
 * one chunk; one spanning chunks is copied once, when it is complete.
 */
export class Framer {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes the frame at the head of `pending` needs (0: not known yet). */
  private needed = 0;

  constructor(
    private readonly onFrame: (frame: Buffer) => void,
    private readonly onError: (reason: string) => void,
  ) {}

  push(chunk: Buffer): void {
    let data = chunk;
    if (this.pendingBytes > 0) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      if (this.needed === 0 || this.pendingBytes >= this.needed) {
        data = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending, this.pendingBytes);
        this.pending = [];
        this.pendingBytes = 0;
        this.needed = 0;
      } else return;
    }
    let at = 0;
    while (at < data.length) {
      const length = frameLength(data, at);
      if (length === -1) return this.onError('Remaining Length longer than 4 bytes');
      if (length === 0 || at + length > data.length) {
        this.pending.push(data.subarray(at));
        this.pendingBytes = data.length - at;
        this.needed = length;
        return;
      }
      const frame = data.subarray(at, at + length);
      at += length;
      this.onFrame(frame);
    }
  }
}

/** Whole length of the packet starting at `at` (header included); 0 when its header is not complete yet, -1 when malformed. */
function frameLength(data: Buffer, at: number): number {
  let value = 0;
  let multiplier = 1;
  for (let i = 1; i <= 4; i++) {
    if (at + i >= data.length) return 0;
    const byte = data[at + i];
    value += (byte & 0x7f) * multiplier;
    if ((byte & 0x80) === 0) return 1 + i + value;
    multiplier *= 128;
  }
  return -1;
}

/**
 * A QoS 1 PUBLISH (MQTT 3.1.1 or 5 without properties) read in place:
 * the topic decoded, the payload a view of the frame. Undefined for every
 * other packet, and for a PUBLISH this does not read (another QoS,
 * properties, a malformed one): mqtt-packet's parser takes those.
 */
export function fastPublish(frame: Buffer, v5: boolean, connection: number): IncomingMessage | undefined {
  const first = frame[0];
  if (first >> 4 !== 3 || ((first >> 1) & 3) !== 1) return undefined;
  let at = 2;
  while (frame[at - 1] & 0x80) at++; // past the Remaining Length (Framer checked it)
  if (at + 2 > frame.length) return undefined;
  const topicLength = (frame[at] << 8) | frame[at + 1];
  at += 2;
  if (topicLength === 0 || at + topicLength + 2 > frame.length) return undefined;
  const topic = frame.toString('utf8', at, at + topicLength);
  at += topicLength;
  const messageId = (frame[at] << 8) | frame[at + 1];
  at += 2;
  if (v5) {
    if (at >= frame.length || frame[at] !== 0) return undefined;
    at += 1;
  }
  return { topic, payload: frame.subarray(at), qos: 1, messageId, dup: (first & 0x08) !== 0, connection };
}
