/**
 * PUBLISH (MQTT 5 §3.3, 3.1.1 §3.3) and PUBACK (§3.4). QoS 2 PUBLISHes are
 * decoded (the bytes are the same as QoS 1) but their PUBREC/PUBREL/PUBCOMP
 * are not supported: a session that never grants QoS 2 refuses them.
 */
import { ByteReader, ByteWriter } from './bytes.ts';
import { checkCode, checkPacketId, checkQos, type DecodeContext, type EncodedBody } from './body.ts';
import { DecodeReason, malformed, MqttDecodeError, protocolError } from './errors.ts';
import type { MqttVersion, PubackPacket, PublishPacket } from './packets.ts';
import { readProperties, writeProperties } from './properties.ts';
import { hex, PUBACK_REASONS } from './reason-codes.ts';
import { topicNameProblem } from './topics.ts';
import { decodeUtf8 } from './utf8.ts';

/** PUBLISH fixed-header flags (§3.3.1). */
const FLAG_DUP = 0x08;
const FLAG_RETAIN = 0x01;

export function decodePublish(flags: number, reader: ByteReader, ctx: DecodeContext): PublishPacket {
  const qos = (flags >> 1) & 0x03;
  if (qos === 3) throw malformed('publish: QoS 3');
  const dup = (flags & FLAG_DUP) !== 0;
  if (qos === 0 && dup) throw malformed('publish: DUP set on a QoS 0 message (§3.3.1.1)');
  const topic = reader.utf8('topic name');
  const problem = topicNameProblem(topic);
  if (problem !== undefined) throw new MqttDecodeError(DecodeReason.TOPIC_NAME_INVALID, `publish: ${problem}`);
  let packetId: number | undefined;
  if (qos > 0) {
    packetId = reader.u16('packet identifier');
    if (packetId === 0) throw protocolError('publish: packet identifier 0 (§2.2.1)');
  }
  const properties = ctx.version === 5 ? readProperties(reader, 'publish') : {};
  if (properties.topicAlias !== undefined && (properties.topicAlias === 0 || properties.topicAlias > ctx.topicAliasMaximum)) {
    throw new MqttDecodeError(DecodeReason.TOPIC_ALIAS_INVALID, `publish: topic alias ${properties.topicAlias} outside 1..${ctx.topicAliasMaximum}`);
  }
  if (topic.length === 0 && properties.topicAlias === undefined) {
    if (ctx.version === 5) throw protocolError('publish: empty topic name without a topic alias (§3.3.2.1)');
    throw new MqttDecodeError(DecodeReason.TOPIC_NAME_INVALID, 'publish: empty topic name');
  }
  if (properties.responseTopic !== undefined) {
    const responseProblem = topicNameProblem(properties.responseTopic);
    if (responseProblem !== undefined) throw protocolError(`publish: response topic: ${responseProblem}`);
  }
  const payload = reader.rest();
  if (properties.payloadFormatIndicator === 1) {
    const text = decodeUtf8(payload, 0, payload.length);
    if (!text.ok) throw new MqttDecodeError(DecodeReason.PAYLOAD_FORMAT_INVALID, `publish: payload format indicator 1 but ${text.cause}`);
  }
  const packet: PublishPacket = { type: 'publish', topic, payload, qos: qos as 0 | 1 | 2, retain: (flags & FLAG_RETAIN) !== 0, dup, properties };
  if (packetId !== undefined) packet.packetId = packetId;
  return packet;
}

export function encodePublish(packet: PublishPacket, version: MqttVersion): EncodedBody {
  const qos = checkQos(packet.qos, 'publish');
  if (qos === 0 && packet.dup) throw new RangeError('publish: DUP on a QoS 0 message');
  if (typeof packet.topic !== 'string') throw new TypeError('publish: topic must be a string');
  const problem = topicNameProblem(packet.topic);
  if (problem !== undefined) throw new RangeError(`publish: ${problem}`);
  const alias = packet.properties?.topicAlias;
  if (alias === 0) throw new RangeError('publish: topic alias 0');
  if (packet.topic === '' && (version === 4 || alias === undefined)) throw new RangeError('publish: empty topic needs a topic alias (MQTT 5 only)');
  if (packet.properties?.responseTopic !== undefined) {
    const responseProblem = topicNameProblem(packet.properties.responseTopic);
    if (responseProblem !== undefined) throw new RangeError(`publish: response topic: ${responseProblem}`);
  }
  const w = new ByteWriter();
  w.utf8(packet.topic, 'topic name');
  if (qos > 0) w.u16(checkPacketId(packet.packetId, 'publish'), 'packet identifier');
  else if (packet.packetId !== undefined) throw new RangeError('publish: a QoS 0 message has no packet id');
  if (version === 5) writeProperties(w, packet.properties, 'publish');
  if (packet.properties?.payloadFormatIndicator === 1 && packet.payload instanceof Uint8Array && !decodeUtf8(packet.payload, 0, packet.payload.length).ok) {
    throw new RangeError('publish: payload format indicator 1 with a payload that is not UTF-8');
  }
  w.raw(packet.payload, 'payload');
  return { flags: (packet.dup ? FLAG_DUP : 0) | (qos << 1) | (packet.retain ? FLAG_RETAIN : 0), body: w.bytes() };
}

export function decodePuback(reader: ByteReader, ctx: DecodeContext): PubackPacket {
  const packetId = reader.u16('packet identifier');
  if (packetId === 0) throw protocolError('puback: packet identifier 0');
  let reasonCode = 0;
  let properties = {};
  if (ctx.version === 5 && reader.remaining() > 0) {
    reasonCode = reader.u8('puback reason code');
    if (!PUBACK_REASONS.has(reasonCode)) throw protocolError(`puback: reason code ${hex(reasonCode)} not defined for PUBACK`);
    if (reader.remaining() > 0) properties = readProperties(reader, 'puback');
  }
  reader.expectEnd('puback');
  return { type: 'puback', packetId, reasonCode, properties };
}

/** Shortest form (§3.4.2.1): reason 0 without properties is 2 bytes; without properties 3 bytes. */
export function encodePuback(packet: PubackPacket, version: MqttVersion): EncodedBody {
  const w = new ByteWriter();
  w.u16(checkPacketId(packet.packetId, 'puback'), 'packet identifier');
  const reasonCode = checkCode(packet.reasonCode ?? 0, PUBACK_REASONS, 'puback');
  if (version === 4) {
    if (reasonCode !== 0) throw new RangeError('puback: 3.1.1 has no reason codes');
  } else {
    const props = new ByteWriter();
    writeProperties(props, packet.properties, 'puback');
    const hasProps = props.length > 1;
    if (reasonCode !== 0 || hasProps) w.u8(reasonCode, 'reason code');
    if (hasProps) w.raw(props.bytes(), 'properties');
  }
  return { flags: 0, body: w.bytes() };
}
