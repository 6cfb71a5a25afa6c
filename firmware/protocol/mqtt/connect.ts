/**
 * CONNECT (MQTT 5 §3.1, 3.1.1 §3.1) and CONNACK (§3.2).
 */
import { ByteReader, ByteWriter } from './bytes.ts';
import { checkCode, checkQos, type DecodeContext, type EncodedBody } from './body.ts';
import { DecodeReason, malformed, MqttDecodeError, protocolError } from './errors.ts';
import type { ConnackPacket, ConnectPacket, MqttVersion, WillMessage } from './packets.ts';
import { readProperties, writeProperties } from './properties.ts';
import { CONNACK_REASONS_V5, CONNACK_RETURN_CODES_V4, hex } from './reason-codes.ts';
import { topicNameProblem } from './topics.ts';

/** Protocol Name (§3.1.2.1). MQTT 3.1's "MQIsdp" (level 3) is not supported. */
const PROTOCOL_NAME = 'MQTT';

/** Connect Flags bits (§3.1.2.3). */
const FLAG_RESERVED = 0x01;
const FLAG_CLEAN = 0x02;
const FLAG_WILL = 0x04;
const FLAG_WILL_QOS_SHIFT = 3;
const FLAG_WILL_RETAIN = 0x20;
const FLAG_PASSWORD = 0x40;
const FLAG_USERNAME = 0x80;

export function decodeConnect(reader: ByteReader, ctx: DecodeContext): ConnectPacket {
  const name = reader.utf8('protocol name');
  if (name !== PROTOCOL_NAME) throw malformed(`protocol name ${JSON.stringify(name)} is not "MQTT"`);
  const level = reader.u8('protocol level');
  if (level !== ctx.version) throw new MqttDecodeError(DecodeReason.UNSUPPORTED_PROTOCOL_VERSION, `protocol level ${level}, configured for ${ctx.version}`);
  const flags = reader.u8('connect flags');
  if ((flags & FLAG_RESERVED) !== 0) throw malformed('connect flags: reserved bit 0 is set');
  const hasWill = (flags & FLAG_WILL) !== 0;
  const willQos = (flags >> FLAG_WILL_QOS_SHIFT) & 0x03;
  const willRetain = (flags & FLAG_WILL_RETAIN) !== 0;
  if (willQos === 3) throw malformed('connect flags: will QoS 3');
  if (!hasWill && (willQos !== 0 || willRetain)) throw malformed('connect flags: will QoS or retain without a will');
  const hasUser = (flags & FLAG_USERNAME) !== 0;
  const hasPassword = (flags & FLAG_PASSWORD) !== 0;
  if (ctx.version === 4 && hasPassword && !hasUser) throw malformed('connect flags: password without user name (3.1.1 §3.1.2.9)');
  const keepAlive = reader.u16('keep alive');
  const properties = ctx.version === 5 ? readProperties(reader, 'connect') : {};
  const clientId = reader.utf8('client identifier');
  const packet: ConnectPacket = { type: 'connect', protocolVersion: ctx.version, clientId, keepAlive, cleanStart: (flags & FLAG_CLEAN) !== 0, properties };
  if (hasWill) {
    const willProperties = ctx.version === 5 ? readProperties(reader, 'will') : {};
    const topic = reader.utf8('will topic');
    const problem = topic.length === 0 ? 'empty will topic' : topicNameProblem(topic);
    if (problem !== undefined) throw new MqttDecodeError(DecodeReason.TOPIC_NAME_INVALID, `will topic: ${problem}`);
    const payload = reader.binary('will payload');
    packet.will = { topic, payload, qos: willQos as 0 | 1 | 2, retain: willRetain, properties: willProperties };
  }
  if (hasUser) packet.username = reader.utf8('user name');
  if (hasPassword) packet.password = reader.binary('password');
  reader.expectEnd('connect');
  return packet;
}

export function encodeConnect(packet: ConnectPacket, version: MqttVersion): EncodedBody {
  if (packet.protocolVersion !== undefined && packet.protocolVersion !== version) throw new RangeError(`connect: protocolVersion ${packet.protocolVersion} differs from the encoder's ${version}`);
  const w = new ByteWriter();
  w.utf8(PROTOCOL_NAME, 'protocol name');
  w.u8(version, 'protocol level');
  const will: WillMessage | undefined = packet.will;
  let flags = packet.cleanStart ? FLAG_CLEAN : 0;
  if (will !== undefined) {
    flags |= FLAG_WILL | (checkQos(will.qos, 'will') << FLAG_WILL_QOS_SHIFT) | (will.retain ? FLAG_WILL_RETAIN : 0);
    const problem = will.topic === '' ? 'empty will topic' : typeof will.topic === 'string' ? topicNameProblem(will.topic) : undefined;
    if (problem !== undefined) throw new RangeError(`will topic: ${problem}`);
  }
  if (version === 4 && packet.clientId === '' && !packet.cleanStart) throw new RangeError('connect: a 3.1.1 empty client id needs Clean Session [MQTT-3.1.3-7]');
  if (packet.username !== undefined) flags |= FLAG_USERNAME;
  if (packet.password !== undefined) {
    if (version === 4 && packet.username === undefined) throw new RangeError('connect: a 3.1.1 password needs a user name');
    flags |= FLAG_PASSWORD;
  }
  w.u8(flags, 'connect flags');
  w.u16(packet.keepAlive, 'keep alive');
  if (version === 5) writeProperties(w, packet.properties, 'connect');
  w.utf8(packet.clientId, 'client identifier');
  if (will !== undefined) {
    if (version === 5) writeProperties(w, will.properties, 'will');
    w.utf8(will.topic, 'will topic');
    w.binary(will.payload, 'will payload');
  }
  if (packet.username !== undefined) w.utf8(packet.username, 'user name');
  if (packet.password !== undefined) w.binary(packet.password, 'password');
  return { flags: 0, body: w.bytes() };
}

export function decodeConnack(reader: ByteReader, ctx: DecodeContext): ConnackPacket {
  const ack = reader.u8('connect acknowledge flags');
  if ((ack & 0xfe) !== 0) throw malformed('connack: reserved acknowledge flag bits set');
  const reasonCode = reader.u8('connack reason code');
  const allowed = ctx.version === 5 ? CONNACK_REASONS_V5 : CONNACK_RETURN_CODES_V4;
  if (!allowed.has(reasonCode)) throw protocolError(`connack: reason code ${hex(reasonCode)} not defined for CONNACK`);
  const sessionPresent = (ack & 0x01) !== 0;
  if (sessionPresent && reasonCode !== 0) throw protocolError(`connack: session present with reason code ${hex(reasonCode)}`);
  const properties = ctx.version === 5 ? readProperties(reader, 'connack') : {};
  reader.expectEnd('connack');
  return { type: 'connack', sessionPresent, reasonCode, properties };
}

export function encodeConnack(packet: ConnackPacket, version: MqttVersion): EncodedBody {
  const w = new ByteWriter();
  const reasonCode = checkCode(packet.reasonCode, version === 5 ? CONNACK_REASONS_V5 : CONNACK_RETURN_CODES_V4, 'connack');
  if (packet.sessionPresent && reasonCode !== 0) throw new RangeError('connack: session present needs reason code 0');
  w.u8(packet.sessionPresent ? 1 : 0, 'acknowledge flags');
  w.u8(reasonCode, 'reason code');
  if (version === 5) writeProperties(w, packet.properties, 'connack');
  return { flags: 0, body: w.bytes() };
}
