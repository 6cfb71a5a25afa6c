/**
 * A scripted in-memory MQTT 5 broker for the session tests, built on the
 * same codec. It decodes what the client writes, answers CONNECT with a
 * configured CONNACK, holds QoS 1 PUBLISHes until the test releases their
 * PUBACKs (or acknowledges at once with `autoAck`), and counts every rule
 * the client breaks: PUBLISHes beyond its Receive Maximum, packets above its
 * Maximum Packet Size. With a Topic Alias Maximum it accepts aliases as a
 * broker does (§3.3.2.3.4): the mapping lives for one connection, and a
 * PUBLISH with an empty topic and an alias not mapped on this connection is
 * a protocol error (a CheckFailure here).
 */
import { encodePacket, MqttStreamDecoder, type MqttPacket, type MqttProperties, type PublishPacket } from '../../firmware/protocol/mqtt/index.ts';
import { MqttSession, type SessionEvent, type SessionOptions, type SourceRecord, type RecordSource } from '../../firmware/protocol/mqtt-session/index.ts';
import { CheckFailure } from '../support/check.ts';

export interface BrokerConfig {
  receiveMaximum?: number;
  maximumPacketSize?: number;
  sessionPresent?: boolean;
  connackReason?: number;
  /** Raw CONNACK bytes instead of an encoded one (for values the encoder refuses). */
  rawConnack?: Uint8Array;
  /** Topic Alias Maximum announced in CONNACK (absent: 0, no alias allowed). */
  topicAliasMaximum?: number;
  /** PUBACK at once, with this reason code per PUBLISH. */
  autoAck?: (publish: PublishPacket) => number | undefined;
}

export class FakeBroker {
  config: BrokerConfig = {};
  private decoder = new MqttStreamDecoder({ protocolVersion: 5, maximumPacketSize: 1 << 20 });
  /** Every packet the client wrote, in order, over all connections. */
  readonly received: MqttPacket[] = [];
  /** The topic of every PUBLISH in `received`, in order, with aliases resolved as a broker does. */
  readonly topics: string[] = [];
  /** Topic alias → topic on this connection. */
  private aliases = new Map<number, string>();
  /** QoS 1 PUBLISHes held (no PUBACK yet) on this connection. */
  held: PublishPacket[] = [];
  inFlight = 0;
  violations = 0;
  oversizeSeen = 0;
  peakInFlight = 0;

  reset(config: BrokerConfig): void {
    this.config = config;
    this.decoder = new MqttStreamDecoder({ protocolVersion: 5, maximumPacketSize: 1 << 20, topicAliasMaximum: config.topicAliasMaximum ?? 0 });
    this.aliases = new Map();
    this.held = [];
    this.inFlight = 0;
  }

  /** Bytes from the client → bytes back. */
  feed(bytes: Uint8Array): Uint8Array[] {
    const max = this.config.maximumPacketSize;
    if (max !== undefined && bytes.length > max) this.oversizeSeen++;
    const result = this.decoder.push(bytes);
    if (result.error) throw new CheckFailure(`client wrote bad bytes: ${result.error.message}`);
    const out: Uint8Array[] = [];
    for (const p of result.packets) {
      this.received.push(p);
      if (p.type === 'publish') this.topics.push(this.resolveTopic(p));
      if (p.type === 'connect') {
        if (this.config.rawConnack) {
          out.push(this.config.rawConnack);
          continue;
        }
        const properties: MqttProperties = {};
        if (this.config.receiveMaximum !== undefined) properties.receiveMaximum = this.config.receiveMaximum;
        if (this.config.maximumPacketSize !== undefined) properties.maximumPacketSize = this.config.maximumPacketSize;
        if (this.config.topicAliasMaximum !== undefined) properties.topicAliasMaximum = this.config.topicAliasMaximum;
        out.push(this.encode({ type: 'connack', sessionPresent: this.config.sessionPresent ?? false, reasonCode: this.config.connackReason ?? 0, properties }));
      } else if (p.type === 'publish' && p.qos === 1) {
        this.inFlight++;
        if (this.inFlight > this.peakInFlight) this.peakInFlight = this.inFlight;
        if (this.inFlight > (this.config.receiveMaximum ?? 65535)) this.violations++;
        const code = this.config.autoAck?.(p);
        if (code === undefined) this.held.push(p);
        else out.push(this.puback(p.packetId ?? 0, code));
      } else if (p.type === 'pingreq') {
        // answered by the test (pingresp()) so a missing answer can be scripted
      } else if (p.type === 'subscribe') {
        out.push(this.encode({ type: 'suback', packetId: p.packetId, reasonCodes: p.subscriptions.map(() => 1), properties: {} }));
      }
    }
    return out;
  }

  /** The PUBLISH's topic: its own, or the one its alias maps to on this connection (§3.3.2.3.4). */
  private resolveTopic(p: PublishPacket): string {
    const alias = p.properties.topicAlias;
    if (alias === undefined) return p.topic;
    if (p.topic !== '') {
      this.aliases.set(alias, p.topic);
      return p.topic;
    }
    const topic = this.aliases.get(alias);
    if (topic === undefined) throw new CheckFailure(`PUBLISH with topic alias ${alias} not mapped on this connection (protocol error 0x82)`);
    return topic;
  }

  /** PUBACK for the held PUBLISH at `index` of `held`. */
  release(index: number, reasonCode = 0): Uint8Array {
    const [p] = this.held.splice(index, 1);
    return this.puback(p.packetId ?? 0, reasonCode);
  }

  puback(packetId: number, reasonCode: number): Uint8Array {
    this.inFlight--;
    return this.encode({ type: 'puback', packetId, reasonCode, properties: {} });
  }

  encode(packet: MqttPacket): Uint8Array {
    return encodePacket(packet, { protocolVersion: 5 });
  }

  publishes(): PublishPacket[] {
    return this.received.filter((p): p is PublishPacket => p.type === 'publish');
  }
}

/** An in-memory record source that checks the session acknowledges in order. */
export class MemorySource implements RecordSource {
  readonly records: SourceRecord[] = [];
  ackedUpTo = -1;
  ackCalls = 0;

  constructor(count: number, size = 8) {
    for (let seq = 0; seq < count; seq++) {
      const payload = new Uint8Array(size);
      payload.fill(seq & 0xff);
      this.records.push({ seq, payload });
    }
  }

  peekFrom(seq: number): SourceRecord | undefined {
    for (const r of this.records) if (r.seq >= seq && r.seq > this.ackedUpTo) return r;
    return undefined;
  }

  ack(uptoSeq: number): void {
    if (uptoSeq <= this.ackedUpTo) throw new CheckFailure(`ack ${uptoSeq} not above ${this.ackedUpTo}`);
    this.ackedUpTo = uptoSeq;
    this.ackCalls++;
  }
}

export const BASE_OPTIONS: SessionOptions = Object.freeze({
  protocolVersion: 5,
  clientId: 'dev-1',
  topic: 't/dev-1',
  keepAliveSec: 10,
  sessionExpirySec: 3600,
  maximumPacketSize: 4096,
  maxInFlight: 64,
  responseTimeoutMs: 5000,
  startSeq: 0,
});

/** Wires a session to the broker: every written byte goes to the broker and every answer back, until quiet. */
export class Link {
  readonly events: SessionEvent[] = [];
  closedBySession = false;
  now = 0;

  constructor(
    readonly session: MqttSession,
    readonly broker: FakeBroker,
  ) {}

  open(config: BrokerConfig): void {
    this.broker.reset(config);
    this.closedBySession = false;
    this.apply(this.session.opened(this.now));
  }

  /** Deliver `bytes` from the broker to the session. */
  deliver(bytes: Uint8Array): void {
    this.apply(this.session.received(bytes, this.now));
  }

  tick(ms: number): void {
    this.now = (this.now + ms) >>> 0;
    this.apply(this.session.tick(this.now));
  }

  close(): void {
    this.session.closed();
  }

  apply(step: { write: Uint8Array[]; events: SessionEvent[]; close: boolean }): void {
    this.events.push(...step.events);
    if (step.close) this.closedBySession = true;
    const answers: Uint8Array[] = [];
    for (const bytes of step.write) answers.push(...this.broker.feed(bytes));
    if (step.close) return;
    for (const a of answers) this.deliver(a);
  }

  /** Release held PUBACKs until none are left (in the given order picker). */
  drain(pick: (held: PublishPacket[]) => number = () => 0, reason = 0): void {
    let guard = 0;
    while (this.broker.held.length > 0 && !this.closedBySession) {
      if (guard++ > 100_000) throw new CheckFailure('drain did not finish');
      this.deliver(this.broker.release(pick(this.broker.held), reason));
    }
  }

  eventsOf<K extends SessionEvent['kind']>(kind: K): Extract<SessionEvent, { kind: K }>[] {
    return this.events.filter((e): e is Extract<SessionEvent, { kind: K }> => e.kind === kind);
  }
}

