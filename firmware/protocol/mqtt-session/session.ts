/**
 * The MQTT session's flow-control core (docs/spec/mqtt-session.md). A
 * transport-agnostic, clock-injected state machine: the caller feeds it
 * "connection opened", received bytes, time ticks and "connection closed";
 * each call returns the bytes to write, the events to report and whether
 * the caller must close the connection. It has no timers of its own.
 *
 * Send quota as MQTT 5 §4.9: set to the broker's Receive Maximum at each
 * CONNACK, decremented per QoS 1 PUBLISH sent, incremented per PUBACK.
 * PINGREQ and SUBSCRIBE never touch it.
 *
 * Topic alias (MQTT 5 §3.3.2.3.4): when the broker's CONNACK allows at
 * least one, the first PUBLISH of a connection carries the topic and Topic
 * Alias 1, every later one an empty topic and Topic Alias 1. The mapping
 * lives as long as the connection. The session announces no Topic Alias
 * Maximum of its own, so an alias from the broker stays a protocol error.
 */
import { elapsedMs } from '../../base/ticks.ts';
import { seqAdd, seqDiff } from '../../base/seq.ts';
import { encodePacket, MqttStreamDecoder, type MqttPacket, type MqttVersion } from '../mqtt/index.ts';

/** One record of the source (the outbox or anything like it). */
export interface SourceRecord {
  readonly seq: number;
  readonly payload: Uint8Array;
}

/**
 * Where records come from. `peekFrom(seq)`: the first unacknowledged record
 * whose sequence number is ≥ `seq` (serial-number order), or undefined.
 * `ack(seq)`: every record up to and including `seq` is delivered.
 */
export interface RecordSource {
  peekFrom(seq: number): SourceRecord | undefined;
  ack(uptoSeq: number): void;
}

export interface SessionOptions {
  readonly protocolVersion: MqttVersion;
  readonly clientId: string;
  /** Topic every record is published to (QoS 1, no retain). */
  readonly topic: string;
  /** Keep Alive, seconds (0 turns keep-alive off). */
  readonly keepAliveSec: number;
  /** Session Expiry Interval sent in CONNECT (MQTT 5 only), seconds. */
  readonly sessionExpirySec: number;
  /** Largest packet this side accepts (decoder bound, announced in CONNECT). */
  readonly maximumPacketSize: number;
  /** Records held in RAM at once (in flight plus acknowledged-but-not-yet-in-order): the RAM bound. */
  readonly maxInFlight: number;
  /** No PINGRESP (or no CONNACK) within this many ms → the connection is dead. */
  readonly responseTimeoutMs: number;
  /** First sequence number to read from the source (its oldest unacknowledged record). */
  readonly startSeq: number;
  /** CONNECT User Name and Password, when the broker wants them. */
  readonly username?: string;
  readonly password?: Uint8Array;
  /**
   * Topic filters subscribed (QoS 1) after every CONNACK 0, before any
   * PUBLISH of that connection (the ingest's receipts, docs/spec/receipt.md).
   * Subscribing again on a resumed session is harmless (§3.8.4: it replaces
   * the subscription); doing it every time survives a broker that lost it.
   */
  readonly subscriptions?: readonly string[];
  /**
   * MQTT 5: send the topic once per connection and then Topic Alias 1 with
   * an empty topic, when the broker's CONNACK Topic Alias Maximum is ≥ 1.
   * Default true; false sends the full topic every time. Never in 3.1.1.
   */
  readonly topicAliases?: boolean;
}

export const SessionState = Object.freeze({
  /** No connection. `opened` → CONNECTING. */
  IDLE: 'idle',
  /** CONNECT written, waiting for CONNACK. */
  CONNECTING: 'connecting',
  /** CONNACK 0 received: publishing. */
  CONNECTED: 'connected',
  /** The session gave up on this connection (error, refusal, dead link); waiting for `closed`. */
  CLOSING: 'closing',
});
export type SessionStateName = (typeof SessionState)[keyof typeof SessionState];

export type SessionEvent =
  /** `topicAliasMaximum`: the broker's (0 when absent or in 3.1.1); the session uses alias 1 when it is ≥ 1 and `topicAliases` is not false. */
  | { readonly kind: 'connected'; readonly sessionPresent: boolean; readonly receiveMaximum: number; readonly maximumPacketSize: number; readonly maximumQos: number; readonly topicAliasMaximum: number }
  /** CONNACK refused the CONNECT. `unsupportedVersion`: 0x84 (MQTT 5), return code 1 (3.1.1), or a 3.1.1-format refusal answering our MQTT 5 CONNECT. */
  | { readonly kind: 'refused'; readonly reasonCode: number; readonly unsupportedVersion: boolean }
  /** CONNACK Maximum QoS 0 (§3.2.2.3.4): our QoS 1 PUBLISHes would be refused, so none is written on this connection. */
  | { readonly kind: 'qos-unsupported'; readonly maximumQos: number }
  | { readonly kind: 'protocol-error'; readonly reasonCode: number; readonly cause: string }
  | { readonly kind: 'dead'; readonly cause: string }
  | { readonly kind: 'server-disconnect'; readonly reasonCode: number }
  | { readonly kind: 'delivered'; readonly uptoSeq: number }
  | { readonly kind: 'oversize'; readonly seq: number; readonly size: number; readonly limit: number }
  | { readonly kind: 'parked'; readonly seq: number; readonly reasonCode: number }
  | { readonly kind: 'suback'; readonly packetId: number; readonly reasonCodes: number[] }
  | { readonly kind: 'message'; readonly topic: string; readonly payload: Uint8Array; readonly qos: number };

export interface Step {
  readonly write: Uint8Array[];
  readonly events: SessionEvent[];
  /** The caller must close the connection (after writing `write`). */
  close: boolean;
}

export interface SessionStats {
  /** QoS 1 PUBLISHes in flight now. */
  inFlight: number;
  /** The most ever in flight at once on one connection. */
  peakInFlight: number;
  /** The largest quota violation seen: always 0 (kept to be asserted). */
  quotaViolations: number;
  published: number;
  resent: number;
  oversize: number;
  parked: number;
  /** PUBLISHes written with an empty topic and the topic alias (the topic sent once per connection). */
  aliased: number;
}

type EntryState = 'queued' | 'inflight' | 'done' | 'parked';

interface Entry {
  readonly seq: number;
  readonly payload: Uint8Array;
  packetId: number;
  state: EntryState;
  dup: boolean;
}

/** The one Topic Alias the session uses (for its one topic). */
export const TOPIC_ALIAS = 1;

/** Receive Maximum when CONNACK has none (MQTT 5 §3.2.2.3.3). */
export const DEFAULT_RECEIVE_MAXIMUM = 65535;

const PROTOCOL_ERROR = 0x82;
/** CONNACK reason 0x84 Unsupported Protocol Version (§3.2.2.2). */
const UNSUPPORTED_PROTOCOL_VERSION = 0x84;
/** 3.1.1 CONNACK return code 1, unacceptable protocol version (3.1.1 §3.2.2.3). */
const UNACCEPTABLE_PROTOCOL_VERSION_311 = 1;

/** A complete 3.1.1 CONNACK refusing the version: 0x20, remaining length 2, flags 0, return code 1. */
function isLegacyRefusal(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x20 && bytes[1] === 0x02 && bytes[2] === 0x00 && bytes[3] === UNACCEPTABLE_PROTOCOL_VERSION_311;
}

export class MqttSession {
  private opts: SessionOptions;
  private readonly source: RecordSource;
  private current: SessionStateName = SessionState.IDLE;
  private decoder: MqttStreamDecoder | undefined;
  /** Records taken from the source and not yet acknowledged to it, in seq order. */
  private entries: Entry[] = [];
  /** Next sequence number to read from the source. */
  private nextSeq: number;
  private quota = 0;
  private receiveMaximum = 0;
  private brokerMaxPacket = 0;
  private keepAliveMs = 0;
  private lastSentAt = 0;
  private waitingSince: number | undefined;
  private nextPacketId = 1;
  /** A record was parked on this connection: take no new records until the next one. */
  private halted = false;
  /** The broker's Maximum QoS is 0 on this connection: write no PUBLISH at all. */
  private qosBlocked = false;
  /** Topic Alias 1 may be used on this connection (MQTT 5, broker's Topic Alias Maximum ≥ 1, not turned off). */
  private aliasAllowed = false;
  /** Topic Alias 1 is mapped to the topic on this connection (a PUBLISH carrying both was written). */
  private aliasMapped = false;
  private readonly subscribes = new Set<number>();
  private readonly counters: SessionStats = { inFlight: 0, peakInFlight: 0, quotaViolations: 0, published: 0, resent: 0, oversize: 0, parked: 0, aliased: 0 };

  constructor(options: SessionOptions, source: RecordSource) {
    if (options.protocolVersion !== 4 && options.protocolVersion !== 5) throw new RangeError(`protocolVersion ${String(options.protocolVersion)} is not 4 or 5`);
    if (!Number.isInteger(options.maxInFlight) || options.maxInFlight < 1 || options.maxInFlight > 65535) throw new RangeError(`maxInFlight ${String(options.maxInFlight)} outside 1..65535`);
    if (!Number.isInteger(options.keepAliveSec) || options.keepAliveSec < 0 || options.keepAliveSec > 65535) throw new RangeError(`keepAliveSec ${String(options.keepAliveSec)} outside 0..65535`);
    if (!Number.isInteger(options.responseTimeoutMs) || options.responseTimeoutMs < 1) throw new RangeError(`responseTimeoutMs ${String(options.responseTimeoutMs)} must be a positive integer`);
    this.opts = options;
    this.source = source;
    this.nextSeq = options.startSeq >>> 0;
  }

  get state(): SessionStateName {
    return this.current;
  }

  /** The send quota now (MQTT 5 §4.9). */
  get sendQuota(): number {
    return this.quota;
  }

  stats(): SessionStats {
    return { ...this.counters };
  }

  /** The protocol version the next CONNECT carries. */
  get protocolVersion(): MqttVersion {
    return this.opts.protocolVersion;
  }

  /**
   * Changes the configured protocol version, only while IDLE. The session
   * never calls it: the client does, and only when its policy allows a
   * fallback to 3.1.1 (docs/design/mqtt-client.md).
   */
  useProtocolVersion(version: MqttVersion): void {
    if (this.current !== SessionState.IDLE) throw new Error(`useProtocolVersion in state ${this.current}`);
    if (version !== 4 && version !== 5) throw new RangeError(`protocolVersion ${String(version)} is not 4 or 5`);
    this.opts = { ...this.opts, protocolVersion: version };
  }

  /**
   * Milliseconds from `now` until `tick` has a deadline to act on (the
   * CONNACK or PINGRESP deadline, or the next PINGREQ), 0 if one is already
   * due; undefined when none is pending (IDLE, CLOSING, or keep-alive off
   * and nothing awaited). New records need a `tick` whenever they appear.
   */
  nextDeadlineMs(now: number): number | undefined {
    const until = (since: number, spanMs: number): number => Math.max(0, spanMs - elapsedMs(since, now));
    if (this.current === SessionState.CONNECTING) return this.waitingSince === undefined ? undefined : until(this.waitingSince, this.opts.responseTimeoutMs);
    if (this.current !== SessionState.CONNECTED) return undefined;
    if (this.waitingSince !== undefined) return until(this.waitingSince, this.opts.responseTimeoutMs);
    return this.keepAliveMs > 0 ? until(this.lastSentAt, this.keepAliveMs) : undefined;
  }

  /** A connection is open: write CONNECT. IDLE → CONNECTING. */
  opened(now: number): Step {
    if (this.current !== SessionState.IDLE) throw new Error(`opened in state ${this.current}`);
    const step = newStep();
    this.decoder = new MqttStreamDecoder({ protocolVersion: this.opts.protocolVersion, maximumPacketSize: this.opts.maximumPacketSize });
    this.current = SessionState.CONNECTING;
    this.quota = 0;
    this.halted = false;
    this.qosBlocked = false;
    this.aliasAllowed = false;
    this.aliasMapped = false;
    this.subscribes.clear();
    const properties = this.opts.protocolVersion === 5 ? { sessionExpiryInterval: this.opts.sessionExpirySec, maximumPacketSize: this.opts.maximumPacketSize } : {};
    const connect: MqttPacket = { type: 'connect', protocolVersion: this.opts.protocolVersion, clientId: this.opts.clientId, keepAlive: this.opts.keepAliveSec, cleanStart: false, properties };
    if (this.opts.username !== undefined) connect.username = this.opts.username;
    if (this.opts.password !== undefined) connect.password = this.opts.password;
    this.send(step, connect, now);
    this.waitingSince = now;
    return step;
  }

  /**
   * The connection closed (by either side). Any state → IDLE. In-flight
   * PUBLISHes stay with their packet ids, to be resent after the next CONNACK.
   */
  closed(): void {
    this.current = SessionState.IDLE;
    this.decoder = undefined;
    this.waitingSince = undefined;
    this.quota = 0;
    this.counters.inFlight = 0;
    // Topic alias mappings exist only within one network connection (§3.3.2.3.4).
    this.aliasAllowed = false;
    this.aliasMapped = false;
    for (const e of this.entries) {
      if (e.state === 'inflight') {
        e.state = 'queued';
        e.dup = true;
      } else if (e.state === 'parked') {
        // Park policy: retried once per connection, as a new PUBLISH.
        e.state = 'queued';
        e.dup = false;
        e.packetId = 0;
      }
    }
  }

  /** Bytes arrived from the broker. */
  received(bytes: Uint8Array, now: number): Step {
    const step = newStep();
    if (this.decoder === undefined || this.current === SessionState.CLOSING || this.current === SessionState.IDLE) return step;
    if (this.current === SessionState.CONNECTING && this.opts.protocolVersion === 5 && isLegacyRefusal(bytes)) {
      // A 3.1.1 server answers an MQTT 5 CONNECT with a 3.1.1 CONNACK (remaining length 2, return code 1), which
      // no MQTT 5 CONNACK can be (its property length is mandatory, §3.2.2.3.1): a version refusal, reported as one.
      this.waitingSince = undefined;
      step.events.push({ kind: 'refused', reasonCode: bytes[3], unsupportedVersion: true });
      this.current = SessionState.CLOSING;
      step.close = true;
      return step;
    }
    const result = this.decoder.push(bytes);
    for (const packet of result.packets) {
      if (step.close) break;
      this.handle(packet, step, now);
    }
    if (result.error !== undefined && !step.close) this.fail(step, result.error.reasonCode, result.error.message, now);
    if (!step.close && this.current === SessionState.CONNECTED) this.pump(step, now);
    return step;
  }

  /** Time passed: keep-alive and response deadlines; also drains new records. */
  tick(now: number): Step {
    const step = newStep();
    if (this.current === SessionState.CONNECTING) {
      if (this.waitingSince !== undefined && elapsedMs(this.waitingSince, now) >= this.opts.responseTimeoutMs) this.dead(step, 'no CONNACK in time');
      return step;
    }
    if (this.current !== SessionState.CONNECTED) return step;
    if (this.waitingSince !== undefined) {
      if (elapsedMs(this.waitingSince, now) >= this.opts.responseTimeoutMs) {
        this.dead(step, `no PINGRESP within ${this.opts.responseTimeoutMs} ms`);
        return step;
      }
    }
    this.pump(step, now);
    if (this.keepAliveMs > 0 && this.waitingSince === undefined && elapsedMs(this.lastSentAt, now) >= this.keepAliveMs) {
      this.send(step, { type: 'pingreq' }, now);
      this.waitingSince = now;
    }
    return step;
  }

  /** SUBSCRIBE (QoS ≤ 1 filters); never counts against the send quota. Returns its packet id in the step's events via SUBACK later. */
  subscribe(topicFilters: string[], now: number): Step {
    const step = newStep();
    if (this.current !== SessionState.CONNECTED) throw new Error(`subscribe in state ${this.current}`);
    this.writeSubscribe(topicFilters, step, now);
    return step;
  }

  private writeSubscribe(topicFilters: readonly string[], step: Step, now: number): void {
    const packetId = this.allocatePacketId();
    this.subscribes.add(packetId);
    const subscriptions = topicFilters.map((topicFilter) => ({ topicFilter, qos: 1 as const, noLocal: false, retainAsPublished: false, retainHandling: 0 as const }));
    this.send(step, { type: 'subscribe', packetId, subscriptions, properties: {} }, now);
  }

  // ------------------------------------------------------------ incoming

  private handle(packet: MqttPacket, step: Step, now: number): void {
    if (this.current === SessionState.CONNECTING) {
      if (packet.type !== 'connack') {
        this.fail(step, PROTOCOL_ERROR, `${packet.type} before CONNACK`, now);
        return;
      }
      this.onConnack(packet.reasonCode, packet.sessionPresent, packet.properties, step, now);
      return;
    }
    switch (packet.type) {
      case 'puback':
        this.onPuback(packet.packetId, packet.reasonCode, step, now);
        return;
      case 'pingresp':
        this.waitingSince = undefined;
        return;
      case 'suback':
        if (!this.subscribes.delete(packet.packetId)) {
          this.fail(step, PROTOCOL_ERROR, `SUBACK for unknown packet id ${packet.packetId}`, now);
          return;
        }
        step.events.push({ kind: 'suback', packetId: packet.packetId, reasonCodes: packet.reasonCodes });
        return;
      case 'publish':
        if (packet.qos === 2) {
          // Every subscription asks for QoS 1 at most (§3.8.3.1): a QoS 2 PUBLISH breaks the grant (§3.3.4), and QoS 2 is left out.
          this.fail(step, PROTOCOL_ERROR, 'QoS 2 PUBLISH from the broker (granted at most QoS 1)', now);
          return;
        }
        step.events.push({ kind: 'message', topic: packet.topic, payload: packet.payload, qos: packet.qos });
        if (packet.qos === 1 && packet.packetId !== undefined) this.send(step, { type: 'puback', packetId: packet.packetId, reasonCode: 0, properties: {} }, now);
        return;
      case 'disconnect':
        step.events.push({ kind: 'server-disconnect', reasonCode: packet.reasonCode });
        this.current = SessionState.CLOSING;
        step.close = true;
        return;
      default:
        this.fail(step, PROTOCOL_ERROR, `unexpected ${packet.type} while connected`, now);
    }
  }

  private onConnack(reasonCode: number, sessionPresent: boolean, properties: { receiveMaximum?: number; maximumPacketSize?: number; serverKeepAlive?: number; maximumQoS?: number; topicAliasMaximum?: number }, step: Step, now: number): void {
    this.waitingSince = undefined;
    if (reasonCode !== 0) {
      // Refused (e.g. 0x84 / 3.1.1 return code 1): reported, never retried as another version.
      const unsupportedVersion = this.opts.protocolVersion === 5 ? reasonCode === UNSUPPORTED_PROTOCOL_VERSION : reasonCode === UNACCEPTABLE_PROTOCOL_VERSION_311;
      step.events.push({ kind: 'refused', reasonCode, unsupportedVersion });
      this.current = SessionState.CLOSING;
      step.close = true;
      return;
    }
    const v5 = this.opts.protocolVersion === 5;
    const receiveMaximum = v5 ? properties.receiveMaximum ?? DEFAULT_RECEIVE_MAXIMUM : this.opts.maxInFlight;
    if (receiveMaximum === 0) {
      // The codec refuses this already (0x82); kept so the rule holds whatever decodes the bytes.
      this.fail(step, PROTOCOL_ERROR, 'CONNACK Receive Maximum 0', now);
      return;
    }
    this.receiveMaximum = receiveMaximum;
    this.quota = receiveMaximum;
    this.brokerMaxPacket = v5 ? properties.maximumPacketSize ?? 0 : 0;
    const keepAlive = v5 && properties.serverKeepAlive !== undefined ? properties.serverKeepAlive : this.opts.keepAliveSec;
    this.keepAliveMs = keepAlive * 1000;
    // §3.2.2.3.8: absent means 0, no alias may be sent; a new connection starts with no mapping.
    const topicAliasMaximum = v5 ? properties.topicAliasMaximum ?? 0 : 0;
    this.aliasAllowed = topicAliasMaximum >= TOPIC_ALIAS && this.opts.topicAliases !== false;
    this.aliasMapped = false;
    this.current = SessionState.CONNECTED;
    this.counters.inFlight = 0;
    this.counters.peakInFlight = 0;
    if (!sessionPresent) {
      // The broker has no state: every unacknowledged PUBLISH is a new one.
      for (const e of this.entries) {
        if (e.state === 'queued') {
          e.dup = false;
          e.packetId = 0;
        }
      }
    }
    // §3.2.2.3.4: absent means QoS 2 is supported; 3.1.1 has no such property.
    const maximumQos = v5 ? properties.maximumQoS ?? 2 : 2;
    step.events.push({ kind: 'connected', sessionPresent, receiveMaximum, maximumPacketSize: this.brokerMaxPacket, maximumQos, topicAliasMaximum });
    // Configured subscriptions first: a receipt queued at the broker can then arrive while the backlog drains.
    if (this.opts.subscriptions !== undefined && this.opts.subscriptions.length > 0) this.writeSubscribe(this.opts.subscriptions, step, now);
    if (maximumQos < 1) {
      // Maximum QoS policy: the broker would refuse a QoS 1 PUBLISH (DISCONNECT 0x9B, §3.3.1.4); records are never
      // downgraded to QoS 0 (that would give up the acknowledgement the outbox waits for). Report, write none.
      this.qosBlocked = true;
      step.events.push({ kind: 'qos-unsupported', maximumQos });
    }
  }

  private onPuback(packetId: number, reasonCode: number, step: Step, now: number): void {
    let index = -1;
    for (let i = 0; i < this.entries.length; i++) {
      const e = this.entries[i];
      if (e.state === 'inflight' && e.packetId === packetId) {
        index = i;
        break;
      }
    }
    if (index < 0) {
      this.fail(step, PROTOCOL_ERROR, `PUBACK for unknown packet id ${packetId}`, now);
      return;
    }
    const entry = this.entries[index];
    // §4.9: any PUBACK releases one unit of quota.
    this.quota = Math.min(this.quota + 1, this.receiveMaximum);
    this.counters.inFlight -= 1;
    if (reasonCode < 0x80) {
      // 0x00 and 0x10 (no matching subscribers): delivered.
      entry.state = 'done';
    } else {
      entry.state = 'parked';
      entry.packetId = 0;
      this.halted = true;
      this.counters.parked += 1;
      step.events.push({ kind: 'parked', seq: entry.seq, reasonCode });
    }
    this.ackInOrder(step);
  }

  /** Acknowledges to the source the longest run of delivered records at the front. */
  private ackInOrder(step: Step): void {
    let count = 0;
    while (count < this.entries.length && this.entries[count].state === 'done') count++;
    if (count === 0) return;
    const upto = this.entries[count - 1].seq;
    this.entries = this.entries.slice(count);
    this.source.ack(upto);
    step.events.push({ kind: 'delivered', uptoSeq: upto });
  }

  // ------------------------------------------------------------ outgoing

  /** Sends queued records (resends first), then new ones, while quota and RAM bound allow. */
  private pump(step: Step, now: number): void {
    if (this.qosBlocked) return;
    for (const e of this.entries) {
      if (this.quota === 0) return;
      if (e.state === 'queued') this.publish(e, step, now);
      if (this.current !== SessionState.CONNECTED) return;
    }
    while (this.quota > 0 && !this.halted && this.entries.length < this.opts.maxInFlight && this.current === SessionState.CONNECTED) {
      const record = this.source.peekFrom(this.nextSeq);
      if (record === undefined) return;
      if (seqDiff(record.seq, this.nextSeq) < 0) throw new Error(`source returned seq ${record.seq} before ${this.nextSeq}`);
      this.nextSeq = seqAdd(record.seq, 1);
      const entry: Entry = { seq: record.seq, payload: record.payload, packetId: 0, state: 'queued', dup: false };
      this.entries.push(entry);
      this.publish(entry, step, now);
    }
  }

  private publish(entry: Entry, step: Step, now: number): void {
    if (entry.packetId === 0) entry.packetId = this.allocatePacketId();
    // With an alias: the topic and alias 1 until a PUBLISH carrying both is written on this connection, then alias 1 alone.
    const aliasOnly = this.aliasAllowed && this.aliasMapped;
    const topic = aliasOnly ? '' : this.opts.topic;
    const properties = this.aliasAllowed ? { topicAlias: TOPIC_ALIAS } : {};
    const packet: MqttPacket = { type: 'publish', topic, payload: entry.payload, qos: 1, retain: false, dup: entry.dup, packetId: entry.packetId, properties };
    // Judged by the size actually written (with or without the topic).
    const bytes = encodePacket(packet, { protocolVersion: this.opts.protocolVersion });
    if (this.brokerMaxPacket > 0 && bytes.length > this.brokerMaxPacket) {
      // Oversize policy: never sent; reported and dropped (acknowledged to the source in order).
      entry.state = 'done';
      entry.packetId = 0;
      this.counters.oversize += 1;
      step.events.push({ kind: 'oversize', seq: entry.seq, size: bytes.length, limit: this.brokerMaxPacket });
      this.ackInOrder(step);
      return;
    }
    if (this.quota <= 0) this.counters.quotaViolations += 1;
    this.quota -= 1;
    this.counters.inFlight += 1;
    if (this.counters.inFlight > this.counters.peakInFlight) this.counters.peakInFlight = this.counters.inFlight;
    if (entry.dup) this.counters.resent += 1;
    else this.counters.published += 1;
    if (aliasOnly) this.counters.aliased += 1;
    if (this.aliasAllowed) this.aliasMapped = true;
    entry.state = 'inflight';
    entry.dup = true; // a later resend of this packet id carries DUP
    step.write.push(bytes);
    this.lastSentAt = now;
  }

  private allocatePacketId(): number {
    for (let tries = 0; tries < 65535; tries++) {
      const id = this.nextPacketId;
      this.nextPacketId = id === 65535 ? 1 : id + 1;
      if (!this.inUse(id)) return id;
    }
    throw new Error('no free packet id');
  }

  private inUse(id: number): boolean {
    if (this.subscribes.has(id)) return true;
    for (const e of this.entries) if (e.packetId === id) return true;
    return false;
  }

  private send(step: Step, packet: MqttPacket, now: number): void {
    step.write.push(encodePacket(packet, { protocolVersion: this.opts.protocolVersion }));
    this.lastSentAt = now;
  }

  /** Protocol violation: DISCONNECT with `reasonCode` (MQTT 5; 3.1.1 just closes), report, close. */
  private fail(step: Step, reasonCode: number, cause: string, now: number): void {
    if (this.opts.protocolVersion === 5) this.send(step, { type: 'disconnect', reasonCode, properties: {} }, now);
    step.events.push({ kind: 'protocol-error', reasonCode, cause });
    this.current = SessionState.CLOSING;
    step.close = true;
  }

  private dead(step: Step, cause: string): void {
    step.events.push({ kind: 'dead', cause });
    this.current = SessionState.CLOSING;
    step.close = true;
  }
}

function newStep(): Step {
  return { write: [], events: [], close: false };
}

