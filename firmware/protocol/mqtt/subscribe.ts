/**
 * SUBSCRIBE (MQTT 5 §3.8), SUBACK (§3.9), UNSUBSCRIBE (§3.10) and UNSUBACK
 * (§3.11); 3.1.1 §3.8–§3.11.
 */
import { ByteReader, ByteWriter } from './bytes.ts';
import { checkCode, checkPacketId, checkQos, type DecodeContext, type EncodedBody } from './body.ts';
import { DecodeReason, malformed, MqttDecodeError, protocolError } from './errors.ts';
import type { MqttVersion, SubackPacket, SubscribePacket, Subscription, UnsubackPacket, UnsubscribePacket } from './packets.ts';
import { readProperties, writeProperties } from './properties.ts';
import { hex, SUBACK_REASONS_V5, SUBACK_RETURN_CODES_V4, UNSUBACK_REASONS } from './reason-codes.ts';
import { isSharedFilter, topicFilterProblem } from './topics.ts';

/** SUBSCRIBE and UNSUBSCRIBE carry fixed-header flags 0b0010 (§3.8.1, §3.10.1). */
export const SUBSCRIBE_FLAGS = 0x02;

function readFilter(reader: ByteReader, what: string): string {
  const filter = reader.utf8(what);
  const problem = topicFilterProblem(filter);
  if (problem !== undefined) throw new MqttDecodeError(DecodeReason.TOPIC_FILTER_INVALID, `${what}: ${problem}`);
  return filter;
}

function readPacketId(reader: ByteReader, what: string): number {
  const packetId = reader.u16(`${what} packet identifier`);
  if (packetId === 0) throw protocolError(`${what}: packet identifier 0 (§2.2.1)`);
  return packetId;
}

function checkFilter(filter: unknown, what: string): string {
  if (typeof filter !== 'string') throw new TypeError(`${what}: topic filter must be a string`);
  const problem = topicFilterProblem(filter);
  if (problem !== undefined) throw new RangeError(`${what}: ${problem}`);
  return filter;
}

export function decodeSubscribe(reader: ByteReader, ctx: DecodeContext): SubscribePacket {
  const packetId = readPacketId(reader, 'subscribe');
  const properties = ctx.version === 5 ? readProperties(reader, 'subscribe') : {};
  const subscriptions: Subscription[] = [];
  while (reader.remaining() > 0) {
    const topicFilter = readFilter(reader, 'subscribe topic filter');
    const options = reader.u8('subscription options');
    const reserved = ctx.version === 5 ? 0xc0 : 0xfc;
    if ((options & reserved) !== 0) throw malformed(`subscribe: reserved subscription option bits set (${hex(options)})`);
    const qos = options & 0x03;
    if (qos === 3) throw malformed('subscribe: QoS 3');
    const retainHandling = (options >> 4) & 0x03;
    if (retainHandling === 3) throw protocolError('subscribe: retain handling 3 (§3.8.3.1)');
    const noLocal = (options & 0x04) !== 0;
    if (noLocal && isSharedFilter(topicFilter)) throw protocolError('subscribe: no local on a shared subscription (§3.8.3.1)');
    subscriptions.push({ topicFilter, qos: qos as 0 | 1 | 2, noLocal, retainAsPublished: (options & 0x08) !== 0, retainHandling: retainHandling as 0 | 1 | 2 });
  }
  if (subscriptions.length === 0) throw protocolError('subscribe: no topic filter (§3.8.3)');
  return { type: 'subscribe', packetId, subscriptions, properties };
}

export function encodeSubscribe(packet: SubscribePacket, version: MqttVersion): EncodedBody {
  const w = new ByteWriter();
  w.u16(checkPacketId(packet.packetId, 'subscribe'), 'packet identifier');
  if (version === 5) writeProperties(w, packet.properties, 'subscribe');
  if (!Array.isArray(packet.subscriptions) || packet.subscriptions.length === 0) throw new RangeError('subscribe: at least one subscription');
  for (const s of packet.subscriptions) {
    const filter = checkFilter(s.topicFilter, 'subscribe');
    let options = checkQos(s.qos, 'subscribe');
    if (version === 5) {
      if (s.retainHandling !== 0 && s.retainHandling !== 1 && s.retainHandling !== 2) throw new RangeError(`subscribe: retain handling ${String(s.retainHandling)}`);
      if (s.noLocal && isSharedFilter(filter)) throw new RangeError('subscribe: no local on a shared subscription');
      options |= (s.noLocal ? 0x04 : 0) | (s.retainAsPublished ? 0x08 : 0) | (s.retainHandling << 4);
    } else if (s.noLocal || s.retainAsPublished || s.retainHandling) {
      throw new RangeError('subscribe: 3.1.1 has no subscription options beyond QoS');
    }
    w.utf8(filter, 'topic filter');
    w.u8(options, 'subscription options');
  }
  return { flags: SUBSCRIBE_FLAGS, body: w.bytes() };
}

export function decodeSuback(reader: ByteReader, ctx: DecodeContext): SubackPacket {
  const packetId = readPacketId(reader, 'suback');
  const properties = ctx.version === 5 ? readProperties(reader, 'suback') : {};
  const allowed = ctx.version === 5 ? SUBACK_REASONS_V5 : SUBACK_RETURN_CODES_V4;
  const reasonCodes: number[] = [];
  while (reader.remaining() > 0) {
    const code = reader.u8('suback reason code');
    if (!allowed.has(code)) throw protocolError(`suback: reason code ${hex(code)} not defined for SUBACK`);
    reasonCodes.push(code);
  }
  if (reasonCodes.length === 0) throw protocolError('suback: no reason code');
  return { type: 'suback', packetId, reasonCodes, properties };
}

export function encodeSuback(packet: SubackPacket, version: MqttVersion): EncodedBody {
  const w = new ByteWriter();
  w.u16(checkPacketId(packet.packetId, 'suback'), 'packet identifier');
  if (version === 5) writeProperties(w, packet.properties, 'suback');
  if (!Array.isArray(packet.reasonCodes) || packet.reasonCodes.length === 0) throw new RangeError('suback: at least one reason code');
  for (const code of packet.reasonCodes) w.u8(checkCode(code, version === 5 ? SUBACK_REASONS_V5 : SUBACK_RETURN_CODES_V4, 'suback'), 'reason code');
  return { flags: 0, body: w.bytes() };
}

export function decodeUnsubscribe(reader: ByteReader, ctx: DecodeContext): UnsubscribePacket {
  const packetId = readPacketId(reader, 'unsubscribe');
  const properties = ctx.version === 5 ? readProperties(reader, 'unsubscribe') : {};
  const topicFilters: string[] = [];
  while (reader.remaining() > 0) topicFilters.push(readFilter(reader, 'unsubscribe topic filter'));
  if (topicFilters.length === 0) throw protocolError('unsubscribe: no topic filter (§3.10.3)');
  return { type: 'unsubscribe', packetId, topicFilters, properties };
}

export function encodeUnsubscribe(packet: UnsubscribePacket, version: MqttVersion): EncodedBody {
  const w = new ByteWriter();
  w.u16(checkPacketId(packet.packetId, 'unsubscribe'), 'packet identifier');
  if (version === 5) writeProperties(w, packet.properties, 'unsubscribe');
  if (!Array.isArray(packet.topicFilters) || packet.topicFilters.length === 0) throw new RangeError('unsubscribe: at least one topic filter');
  for (const filter of packet.topicFilters) w.utf8(checkFilter(filter, 'unsubscribe'), 'topic filter');
  return { flags: SUBSCRIBE_FLAGS, body: w.bytes() };
}

export function decodeUnsuback(reader: ByteReader, ctx: DecodeContext): UnsubackPacket {
  const packetId = readPacketId(reader, 'unsuback');
  if (ctx.version === 4) {
    reader.expectEnd('unsuback');
    return { type: 'unsuback', packetId, reasonCodes: [], properties: {} };
  }
  const properties = readProperties(reader, 'unsuback');
  const reasonCodes: number[] = [];
  while (reader.remaining() > 0) {
    const code = reader.u8('unsuback reason code');
    if (!UNSUBACK_REASONS.has(code)) throw protocolError(`unsuback: reason code ${hex(code)} not defined for UNSUBACK`);
    reasonCodes.push(code);
  }
  if (reasonCodes.length === 0) throw protocolError('unsuback: no reason code');
  return { type: 'unsuback', packetId, reasonCodes, properties };
}

export function encodeUnsuback(packet: UnsubackPacket, version: MqttVersion): EncodedBody {
  const w = new ByteWriter();
  w.u16(checkPacketId(packet.packetId, 'unsuback'), 'packet identifier');
  if (version === 5) {
    writeProperties(w, packet.properties, 'unsuback');
    if (!Array.isArray(packet.reasonCodes) || packet.reasonCodes.length === 0) throw new RangeError('unsuback: at least one reason code');
    for (const code of packet.reasonCodes) w.u8(checkCode(code, UNSUBACK_REASONS, 'unsuback'), 'reason code');
  } else if (packet.reasonCodes !== undefined && packet.reasonCodes.length > 0) {
    throw new RangeError('unsuback: 3.1.1 has no reason codes');
  }
  return { flags: 0, body: w.bytes() };
}
