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
    let sent = 0;
    socket.cork();
    for (const m of messages) {
      if (m.qos !== 1 || m.messageId === undefined || m.connection !== this.connection) continue;
      socket.write(mqttPacket.generate({ cmd: 'puback', messageId: m.messageId, ...(this.options.protocolVersion === 5 ? { reasonCode: 0 } : {}) } as mqttPacket.Packet, { protocolVersion: this.options.protocolVersion }));
      sent++;
    }
    socket.uncork();
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
    parser.on('error', (error) => {
      this.log(`bad packet from the broker: ${error.message}; reconnecting`);
      socket.destroy();
    });
    socket.on('data', (data) => parser.parse(data));
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
