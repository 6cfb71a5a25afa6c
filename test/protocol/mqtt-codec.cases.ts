/**
 * The MQTT codec (docs/spec/mqtt-codec.md) in Node and in XS: round trips
 * of every supported packet in both versions, byte examples, every
 * validation rule with the reason code it carries (through decodePacket and
 * through the stream decoder fed one byte at a time), split streams,
 * the memory bound, encoder refusals, and a short mutation run.
 */
import {
  DecodeReason,
  decodePacket,
  encodePacket,
  MqttDecodeError,
  MqttStreamDecoder,
  StreamState,
  type DecodeOptions,
  type MqttPacket,
  type MqttVersion,
} from '../../firmware/protocol/mqtt/index.ts';
import { Rng } from '../../tools/sim/rng.ts';
import { bytesEqual, CheckFailure, equal, ok, throws } from '../support/check.ts';
import type { CaseSuite, FirmwareCase } from '../support/cases.ts';
import { concat, mutate } from './mqtt-mutate.ts';

// ---------------------------------------------------------------- helpers

function hex(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, '');
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** A packet from its first byte and body (hex): the Remaining Length is computed. */
function pkt(first: number, body: string): Uint8Array {
  const b = hex(body);
  const vbi: number[] = [];
  let rest = b.length;
  do {
    let byte = rest % 128;
    rest = Math.floor(rest / 128);
    if (rest > 0) byte |= 0x80;
    vbi.push(byte);
  } while (rest > 0);
  return concat(new Uint8Array([first, ...vbi]), b);
}

/** UTF-8 string field (hex of the bytes, length prefix added). */
function str(bytesHex: string): string {
  const n = bytesHex.replace(/\s+/g, '').length / 2;
  return `${n.toString(16).padStart(4, '0')} ${bytesHex}`;
}

/** An ASCII string field. */
function ascii(text: string): string {
  let h = '';
  for (let i = 0; i < text.length; i++) h += text.charCodeAt(i).toString(16).padStart(2, '0');
  return str(h);
}

/** A property block (hex of the properties, length prefix added; short blocks only). */
function props(bytesHex: string): string {
  const n = bytesHex.replace(/\s+/g, '').length / 2;
  if (n > 127) throw new Error('props helper: short blocks only');
  return `${n.toString(16).padStart(2, '0')} ${bytesHex}`;
}

const V5: DecodeOptions = { protocolVersion: 5, maximumPacketSize: 4096, topicAliasMaximum: 10 };
const V4: DecodeOptions = { protocolVersion: 4, maximumPacketSize: 4096 };

/** Canonical text of a packet: keys sorted, bytes as arrays. */
function canon(value: unknown): string {
  if (value instanceof Uint8Array) return `bytes[${Array.from(value).join(',')}]`;
  if (Array.isArray(value)) return `[${value.map(canon).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    return `{${Object.keys(record)
      .filter((k) => record[k] !== undefined)
      .sort()
      .map((k) => `${k}:${canon(record[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

function samePacket(actual: MqttPacket, expected: MqttPacket, message: string): void {
  equal(canon(actual), canon(expected), message);
}

/** Decodes `bytes` one byte at a time through a stream decoder. */
function streamDecode(bytes: Uint8Array, options: DecodeOptions, chunk = 1): { packets: MqttPacket[]; error?: MqttDecodeError } {
  const decoder = new MqttStreamDecoder(options);
  const packets: MqttPacket[] = [];
  for (let at = 0; at < bytes.length; at += chunk) {
    const r = decoder.push(bytes.subarray(at, at + chunk));
    packets.push(...r.packets);
    if (r.error) return { packets, error: r.error };
  }
  return { packets };
}

/** `bytes` fails with `reason` through decodePacket and through the stream decoder, with a cause containing `fragment`. */
function fails(bytes: Uint8Array, options: DecodeOptions, reason: number, fragment: string, message: string): void {
  let caught: unknown;
  try {
    decodePacket(bytes, options);
  } catch (error) {
    caught = error;
  }
  if (!(caught instanceof MqttDecodeError)) throw new CheckFailure(`${message}: decodePacket ${caught === undefined ? 'accepted it' : `threw ${String(caught)}`}`);
  equal(caught.reasonCode, reason, `${message}: reason code (cause: ${caught.message})`);
  ok(caught.message.includes(fragment), `${message}: cause ${JSON.stringify(caught.message)} lacks ${JSON.stringify(fragment)}`);
  const streamed = streamDecode(bytes, options);
  ok(streamed.error !== undefined, `${message}: the stream decoder accepted it`);
  equal(streamed.error.reasonCode, reason, `${message}: stream reason code (cause: ${streamed.error.message})`);
}

// ---------------------------------------------------------------- sample packets

const bin = (...values: number[]) => new Uint8Array(values);

function samples(version: MqttVersion): MqttPacket[] {
  const v5 = version === 5;
  const p = <T extends object>(v5Props: T) => (v5 ? v5Props : {});
  return [
    {
      type: 'connect',
      protocolVersion: version,
      clientId: 'dev-01',
      keepAlive: 30,
      cleanStart: false,
      username: 'dev-01',
      password: bin(1, 2, 3),
      will: { topic: 'd/dev-01/status', payload: bin(0x6f, 0x66, 0x66), qos: 1, retain: true, properties: p({ willDelayInterval: 5, payloadFormatIndicator: 1, contentType: 'text/plain' }) },
      properties: p({ sessionExpiryInterval: 3600, receiveMaximum: 20, maximumPacketSize: 4096, topicAliasMaximum: 10, requestProblemInformation: 1, userProperties: [['a', '1'], ['b', '2'], ['a', '3']] as [string, string][] }),
    },
    { type: 'connect', protocolVersion: version, clientId: '', keepAlive: 0, cleanStart: true, properties: {} },
    {
      type: 'connack',
      sessionPresent: true,
      reasonCode: 0,
      properties: p({ receiveMaximum: 10, maximumPacketSize: 1024, topicAliasMaximum: 5, maximumQoS: 1, retainAvailable: 0, assignedClientIdentifier: 'auto-1', serverKeepAlive: 60, sharedSubscriptionAvailable: 0 }),
    },
    { type: 'connack', sessionPresent: false, reasonCode: v5 ? 0x84 : 1, properties: p({ reasonString: 'version' }) },
    { type: 'publish', topic: 'd/dev-01/t', payload: bin(1, 2, 3, 0xff), qos: 1, retain: false, dup: true, packetId: 65535, properties: p({ messageExpiryInterval: 60, correlationData: bin(9), responseTopic: 'r/x', subscriptionIdentifiers: [1, 268435455] }) },
    { type: 'publish', topic: 'ü/日本/😀', payload: new Uint8Array(0), qos: 0, retain: true, dup: false, properties: p({ topicAlias: 10, payloadFormatIndicator: 1 }) },
    { type: 'publish', topic: 'q2', payload: new Uint8Array(300), qos: 2, retain: false, dup: false, packetId: 1, properties: {} },
    { type: 'puback', packetId: 1, reasonCode: 0, properties: {} },
    { type: 'puback', packetId: 2, reasonCode: v5 ? 0x10 : 0, properties: {} },
    { type: 'puback', packetId: 3, reasonCode: v5 ? 0x97 : 0, properties: p({ reasonString: 'quota', userProperties: [['k', 'v']] as [string, string][] }) },
    {
      type: 'subscribe',
      packetId: 7,
      subscriptions: [
        { topicFilter: 'c/dev-01/#', qos: 1, noLocal: v5, retainAsPublished: v5, retainHandling: v5 ? 2 : 0 },
        { topicFilter: '+/x/+', qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 },
        { topicFilter: '$share/g/a/#', qos: 2, noLocal: false, retainAsPublished: false, retainHandling: v5 ? 1 : 0 },
      ],
      properties: p({ subscriptionIdentifiers: [42] }),
    },
    { type: 'suback', packetId: 7, reasonCodes: [1, 0, 0x80], properties: p({ reasonString: 'partly' }) },
    { type: 'unsubscribe', packetId: 8, topicFilters: ['c/dev-01/#', '#'], properties: p({ userProperties: [['u', '']] as [string, string][] }) },
    { type: 'unsuback', packetId: 8, reasonCodes: v5 ? [0, 0x11] : [], properties: {} },
    { type: 'pingreq' },
    { type: 'pingresp' },
    { type: 'disconnect', reasonCode: 0, properties: {} },
    { type: 'disconnect', reasonCode: v5 ? 0x8e : 0, properties: p({ reasonString: 'taken over', serverReference: 'other', sessionExpiryInterval: 0 }) },
  ] as MqttPacket[];
}

// ---------------------------------------------------------------- validation table

interface Rule {
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly reason: number;
  readonly fragment: string;
  readonly options?: DecodeOptions;
}

const { MALFORMED, PROTOCOL_ERROR, UNSUPPORTED_PROTOCOL_VERSION, TOPIC_FILTER_INVALID, TOPIC_NAME_INVALID, TOPIC_ALIAS_INVALID, PACKET_TOO_LARGE, PAYLOAD_FORMAT_INVALID } = DecodeReason;

const A = ascii('a');
const CONNECT5 = `${ascii('MQTT')} 05`;
const CONNECT4 = `${ascii('MQTT')} 04`;

/** Every decode rule of docs/spec/mqtt-codec.md with its reason code (MQTT 5 unless the name says 3.1.1). */
export const RULES: readonly Rule[] = [
  // Fixed header (§2.1)
  { name: 'packet type 0 is reserved', bytes: hex('00 00'), reason: MALFORMED, fragment: 'reserved' },
  { name: 'PUBREC is not supported', bytes: pkt(0x50, '00 01'), reason: PROTOCOL_ERROR, fragment: 'not supported' },
  { name: 'PUBREL is not supported', bytes: pkt(0x62, '00 01'), reason: PROTOCOL_ERROR, fragment: 'not supported' },
  { name: 'PUBCOMP is not supported', bytes: pkt(0x70, '00 01'), reason: PROTOCOL_ERROR, fragment: 'not supported' },
  { name: 'AUTH is not supported', bytes: pkt(0xf0, ''), reason: PROTOCOL_ERROR, fragment: 'not supported' },
  { name: 'CONNACK with fixed-header flags 1', bytes: pkt(0x21, '00 00'), reason: MALFORMED, fragment: 'flags' },
  { name: 'SUBSCRIBE with fixed-header flags 0', bytes: pkt(0x80, `00 01 00 ${A} 00`), reason: MALFORMED, fragment: 'flags' },
  { name: 'UNSUBSCRIBE with fixed-header flags 0', bytes: pkt(0xa0, `00 01 00 ${A}`), reason: MALFORMED, fragment: 'flags' },
  { name: 'PINGREQ with fixed-header flags 2', bytes: pkt(0xc2, ''), reason: MALFORMED, fragment: 'flags' },
  { name: 'remaining length of 5 bytes', bytes: hex('30 ff ff ff ff 01'), reason: MALFORMED, fragment: 'longer than 4 bytes', options: { ...V5, maximumPacketSize: 268_435_460 } },
  { name: 'remaining length not in its shortest form', bytes: hex('c0 80 00'), reason: MALFORMED, fragment: 'shortest form' },
  { name: 'remaining length above the maximum packet size', bytes: pkt(0x30, `${A} 00 ${'00'.repeat(60)}`), reason: PACKET_TOO_LARGE, fragment: 'above the maximum 64', options: { ...V5, maximumPacketSize: 64 } },
  { name: 'a huge remaining length fails before its last byte', bytes: hex('30 ff ff ff 7f'), reason: PACKET_TOO_LARGE, fragment: 'above the maximum 1024', options: { ...V5, maximumPacketSize: 1024 } },
  { name: 'PINGREQ with a body', bytes: pkt(0xc0, '00'), reason: MALFORMED, fragment: 'unexpected bytes' },
  { name: 'PINGRESP with a body', bytes: pkt(0xd0, '00'), reason: MALFORMED, fragment: 'unexpected bytes' },
  // UTF-8 (§1.5.4)
  { name: 'UTF-8: U+0000', bytes: pkt(0x30, `${str('61 00')} 00`), reason: MALFORMED, fragment: 'U+0000' },
  { name: 'UTF-8: overlong 2-byte form of "/"', bytes: pkt(0x30, `${str('c0 af')} 00`), reason: MALFORMED, fragment: 'invalid lead byte' },
  { name: 'UTF-8: overlong 3-byte form', bytes: pkt(0x30, `${str('e0 80 af')} 00`), reason: MALFORMED, fragment: 'overlong' },
  { name: 'UTF-8: overlong 4-byte form', bytes: pkt(0x30, `${str('f0 80 80 af')} 00`), reason: MALFORMED, fragment: 'overlong' },
  { name: 'UTF-8: surrogate U+D800', bytes: pkt(0x30, `${str('ed a0 80')} 00`), reason: MALFORMED, fragment: 'surrogate' },
  { name: 'UTF-8: above U+10FFFF', bytes: pkt(0x30, `${str('f4 90 80 80')} 00`), reason: MALFORMED, fragment: 'above U+10FFFF' },
  { name: 'UTF-8: truncated sequence', bytes: pkt(0x30, `${str('61 e2 82')} 00`), reason: MALFORMED, fragment: 'truncated' },
  { name: 'UTF-8: lone continuation byte', bytes: pkt(0x30, `${str('80')} 00`), reason: MALFORMED, fragment: 'continuation' },
  { name: 'UTF-8: 0xFF', bytes: pkt(0x30, `${str('ff')} 00`), reason: MALFORMED, fragment: 'invalid lead byte' },
  { name: 'string length past the packet', bytes: pkt(0x30, '00 09 61 62'), reason: MALFORMED, fragment: 'topic name: needs 9 bytes' },
  // Properties (§2.2.2)
  { name: 'property length past the packet', bytes: pkt(0x30, `${A} 09 01`), reason: MALFORMED, fragment: 'publish properties: needs 9 bytes' },
  { name: 'unknown property 0x7f', bytes: pkt(0x30, `${A} ${props('7f 00')}`), reason: MALFORMED, fragment: 'unknown property 0x7f' },
  { name: 'property not allowed in PUBLISH (session expiry)', bytes: pkt(0x30, `${A} ${props('11 00 00 00 01')}`), reason: MALFORMED, fragment: 'not allowed here' },
  { name: 'property not allowed in will properties (topic alias)', bytes: pkt(0x10, `${CONNECT5} 04 00 00 00 ${A} ${props('23 00 01')} ${A} 0000`), reason: MALFORMED, fragment: 'will: property topicAlias' },
  { name: 'property not allowed in DISCONNECT (topic alias)', bytes: pkt(0xe0, `00 ${props('23 00 01')}`), reason: MALFORMED, fragment: 'not allowed here' },
  { name: 'duplicate property (content type)', bytes: pkt(0x30, `${A} ${props(`03 ${A} 03 ${A}`)}`), reason: PROTOCOL_ERROR, fragment: 'more than once' },
  { name: 'duplicate subscription identifier in SUBSCRIBE', bytes: pkt(0x82, `00 01 ${props('0b 01 0b 02')} ${A} 00`), reason: PROTOCOL_ERROR, fragment: 'more than once' },
  { name: 'payload format indicator 2', bytes: pkt(0x30, `${A} ${props('01 02')}`), reason: PROTOCOL_ERROR, fragment: 'must be 0 or 1' },
  { name: 'payload format indicator 1 with a payload that is not UTF-8', bytes: pkt(0x30, `${A} ${props('01 01')} 61 ff`), reason: PAYLOAD_FORMAT_INVALID, fragment: 'payload format indicator 1' },
  { name: 'subscription identifier 0', bytes: pkt(0x30, `${A} ${props('0b 00')}`), reason: PROTOCOL_ERROR, fragment: 'must not be 0' },
  { name: 'subscription identifier of 5 bytes', bytes: pkt(0x30, `${A} ${props('0b ff ff ff ff 01')}`), reason: MALFORMED, fragment: 'longer than 4 bytes' },
  { name: 'receive maximum 0', bytes: pkt(0x10, `${CONNECT5} 02 00 00 ${props('21 00 00')} 0000`), reason: PROTOCOL_ERROR, fragment: 'receiveMaximum must not be 0' },
  { name: 'maximum packet size 0', bytes: pkt(0x20, `00 00 ${props('27 00 00 00 00')}`), reason: PROTOCOL_ERROR, fragment: 'maximumPacketSize must not be 0' },
  { name: 'request problem information 2', bytes: pkt(0x10, `${CONNECT5} 02 00 00 ${props('17 02')} 0000`), reason: PROTOCOL_ERROR, fragment: 'must be 0 or 1' },
  { name: 'maximum QoS 2', bytes: pkt(0x20, `00 00 ${props('24 02')}`), reason: PROTOCOL_ERROR, fragment: 'maximumQoS must be 0 or 1' },
  { name: 'retain available 2', bytes: pkt(0x20, `00 00 ${props('25 02')}`), reason: PROTOCOL_ERROR, fragment: 'must be 0 or 1' },
  { name: 'authentication data without a method', bytes: pkt(0x10, `${CONNECT5} 02 00 00 ${props('16 00 01 00')} 0000`), reason: PROTOCOL_ERROR, fragment: 'without an authentication method' },
  { name: 'binary data length past the packet', bytes: pkt(0x30, `${A} ${props('09 00 05 01')}`), reason: MALFORMED, fragment: 'needs 5 bytes' },
  // CONNECT (§3.1)
  { name: 'CONNECT: protocol name MQIsdp (3.1)', bytes: pkt(0x10, `${ascii('MQIsdp')} 03 02 00 00 0000`), reason: MALFORMED, fragment: 'protocol name' },
  { name: 'CONNECT: level 4 on an MQTT 5 connection', bytes: pkt(0x10, `${CONNECT4} 02 00 00 0000`), reason: UNSUPPORTED_PROTOCOL_VERSION, fragment: 'protocol level 4' },
  { name: 'CONNECT: level 5 on a 3.1.1 connection', bytes: pkt(0x10, `${CONNECT5} 02 00 00 00 0000`), reason: UNSUPPORTED_PROTOCOL_VERSION, fragment: 'protocol level 5', options: V4 },
  { name: 'CONNECT: reserved flag bit 0', bytes: pkt(0x10, `${CONNECT5} 03 00 00 00 0000`), reason: MALFORMED, fragment: 'reserved bit 0' },
  { name: 'CONNECT: will QoS 3', bytes: pkt(0x10, `${CONNECT5} 1e 00 00 00 0000 00 ${A} 0000`), reason: MALFORMED, fragment: 'will QoS 3' },
  { name: 'CONNECT: will retain without a will', bytes: pkt(0x10, `${CONNECT5} 22 00 00 00 0000`), reason: MALFORMED, fragment: 'without a will' },
  { name: 'CONNECT: will QoS without a will', bytes: pkt(0x10, `${CONNECT5} 0a 00 00 00 0000`), reason: MALFORMED, fragment: 'without a will' },
  { name: 'CONNECT: will topic with a wildcard', bytes: pkt(0x10, `${CONNECT5} 06 00 00 00 0000 00 ${ascii('a/+')} 0000`), reason: TOPIC_NAME_INVALID, fragment: 'will topic' },
  { name: 'CONNECT: empty will topic', bytes: pkt(0x10, `${CONNECT5} 06 00 00 00 0000 00 0000 0000`), reason: TOPIC_NAME_INVALID, fragment: 'empty will topic' },
  { name: 'CONNECT 3.1.1: password without user name', bytes: pkt(0x10, `${CONNECT4} 42 00 00 0000 0001 00`), reason: MALFORMED, fragment: 'password without user name', options: V4 },
  { name: 'CONNECT: bytes after the last field', bytes: pkt(0x10, `${CONNECT5} 02 00 00 00 0000 00`), reason: MALFORMED, fragment: 'unexpected bytes' },
  // CONNACK (§3.2)
  { name: 'CONNACK: reserved acknowledge flag bits', bytes: pkt(0x20, '02 00 00'), reason: MALFORMED, fragment: 'reserved acknowledge flag' },
  { name: 'CONNACK: reason code 0x01 is not a CONNACK code', bytes: pkt(0x20, '00 01 00'), reason: PROTOCOL_ERROR, fragment: 'not defined for CONNACK' },
  { name: 'CONNACK 3.1.1: return code 6', bytes: pkt(0x20, '00 06'), reason: PROTOCOL_ERROR, fragment: 'not defined for CONNACK', options: V4 },
  { name: 'CONNACK: session present with a failure code', bytes: pkt(0x20, '01 87 00'), reason: PROTOCOL_ERROR, fragment: 'session present' },
  { name: 'CONNACK 3.1.1: session present with a failure code', bytes: pkt(0x20, '01 05'), reason: PROTOCOL_ERROR, fragment: 'session present', options: V4 },
  { name: 'CONNACK 3.1.1: a property block', bytes: pkt(0x20, '00 00 00'), reason: MALFORMED, fragment: 'unexpected bytes', options: V4 },
  // PUBLISH (§3.3)
  { name: 'PUBLISH: QoS 3', bytes: pkt(0x36, `${A} 00 01 00`), reason: MALFORMED, fragment: 'QoS 3' },
  { name: 'PUBLISH: DUP on QoS 0', bytes: pkt(0x38, `${A} 00`), reason: MALFORMED, fragment: 'DUP' },
  { name: 'PUBLISH: packet identifier 0 at QoS 1', bytes: pkt(0x32, `${A} 00 00 00`), reason: PROTOCOL_ERROR, fragment: 'packet identifier 0' },
  { name: 'PUBLISH: topic with "#"', bytes: pkt(0x30, `${ascii('a/#')} 00`), reason: TOPIC_NAME_INVALID, fragment: 'wildcard' },
  { name: 'PUBLISH: topic with "+"', bytes: pkt(0x30, `${ascii('+')} 00`), reason: TOPIC_NAME_INVALID, fragment: 'wildcard' },
  { name: 'PUBLISH: empty topic without an alias', bytes: pkt(0x30, '0000 00'), reason: PROTOCOL_ERROR, fragment: 'empty topic name' },
  { name: 'PUBLISH 3.1.1: empty topic', bytes: pkt(0x30, '0000'), reason: TOPIC_NAME_INVALID, fragment: 'empty topic name', options: V4 },
  { name: 'PUBLISH: topic alias 0', bytes: pkt(0x30, `${A} ${props('23 00 00')}`), reason: TOPIC_ALIAS_INVALID, fragment: 'topic alias 0' },
  { name: 'PUBLISH: topic alias above the announced maximum', bytes: pkt(0x30, `${A} ${props('23 00 0b')}`), reason: TOPIC_ALIAS_INVALID, fragment: 'outside 1..10' },
  { name: 'PUBLISH: any topic alias when none was announced', bytes: pkt(0x30, `${A} ${props('23 00 01')}`), reason: TOPIC_ALIAS_INVALID, fragment: 'outside 1..0', options: { protocolVersion: 5, maximumPacketSize: 4096 } },
  { name: 'PUBLISH: response topic with a wildcard', bytes: pkt(0x30, `${A} ${props(`08 ${ascii('r/#')}`)}`), reason: PROTOCOL_ERROR, fragment: 'response topic' },
  { name: 'PUBLISH: packet identifier cut short', bytes: pkt(0x32, `${A} 00`), reason: MALFORMED, fragment: 'packet identifier: needs 2 bytes' },
  // PUBACK (§3.4)
  { name: 'PUBACK: packet identifier 0', bytes: pkt(0x40, '00 00'), reason: PROTOCOL_ERROR, fragment: 'packet identifier 0' },
  { name: 'PUBACK: no packet identifier', bytes: pkt(0x40, ''), reason: MALFORMED, fragment: 'needs 2 bytes' },
  { name: 'PUBACK: reason code 0x01', bytes: pkt(0x40, '00 01 01'), reason: PROTOCOL_ERROR, fragment: 'not defined for PUBACK' },
  { name: 'PUBACK: reason code 0x8f (a SUBACK code)', bytes: pkt(0x40, '00 01 8f'), reason: PROTOCOL_ERROR, fragment: 'not defined for PUBACK' },
  { name: 'PUBACK 3.1.1: a reason code byte', bytes: pkt(0x40, '00 01 00'), reason: MALFORMED, fragment: 'unexpected bytes', options: V4 },
  // SUBSCRIBE (§3.8)
  { name: 'SUBSCRIBE: no topic filter', bytes: pkt(0x82, '00 01 00'), reason: PROTOCOL_ERROR, fragment: 'no topic filter' },
  { name: 'SUBSCRIBE: packet identifier 0', bytes: pkt(0x82, `00 00 00 ${A} 00`), reason: PROTOCOL_ERROR, fragment: 'packet identifier 0' },
  { name: 'SUBSCRIBE: reserved option bits', bytes: pkt(0x82, `00 01 00 ${A} 40`), reason: MALFORMED, fragment: 'reserved subscription option' },
  { name: 'SUBSCRIBE 3.1.1: MQTT 5 option bits', bytes: pkt(0x82, `00 01 ${A} 04`), reason: MALFORMED, fragment: 'reserved subscription option', options: V4 },
  { name: 'SUBSCRIBE: QoS 3', bytes: pkt(0x82, `00 01 00 ${A} 03`), reason: MALFORMED, fragment: 'QoS 3' },
  { name: 'SUBSCRIBE: retain handling 3', bytes: pkt(0x82, `00 01 00 ${A} 30`), reason: PROTOCOL_ERROR, fragment: 'retain handling 3' },
  { name: 'SUBSCRIBE: no local on a shared subscription', bytes: pkt(0x82, `00 01 00 ${ascii('$share/g/a')} 04`), reason: PROTOCOL_ERROR, fragment: 'shared subscription' },
  { name: 'SUBSCRIBE: "#" not last', bytes: pkt(0x82, `00 01 00 ${ascii('a/#/b')} 00`), reason: TOPIC_FILTER_INVALID, fragment: "'#'" },
  { name: 'SUBSCRIBE: "+" inside a level', bytes: pkt(0x82, `00 01 00 ${ascii('a+')} 00`), reason: TOPIC_FILTER_INVALID, fragment: "'+'" },
  { name: 'SUBSCRIBE: empty topic filter', bytes: pkt(0x82, '00 01 00 0000 00'), reason: TOPIC_FILTER_INVALID, fragment: 'empty topic filter' },
  { name: 'SUBSCRIBE: shared subscription without a filter', bytes: pkt(0x82, `00 01 00 ${ascii('$share/g')} 00`), reason: TOPIC_FILTER_INVALID, fragment: 'shared subscription' },
  { name: 'SUBSCRIBE: options byte missing', bytes: pkt(0x82, `00 01 00 ${A}`), reason: MALFORMED, fragment: 'subscription options: needs 1 bytes' },
  // SUBACK (§3.9)
  { name: 'SUBACK: no reason code', bytes: pkt(0x90, '00 01 00'), reason: PROTOCOL_ERROR, fragment: 'no reason code' },
  { name: 'SUBACK: reason code 0x10', bytes: pkt(0x90, '00 01 00 10'), reason: PROTOCOL_ERROR, fragment: 'not defined for SUBACK' },
  { name: 'SUBACK 3.1.1: return code 0x87', bytes: pkt(0x90, '00 01 87'), reason: PROTOCOL_ERROR, fragment: 'not defined for SUBACK', options: V4 },
  { name: 'SUBACK: packet identifier 0', bytes: pkt(0x90, '00 00 00 00'), reason: PROTOCOL_ERROR, fragment: 'packet identifier 0' },
  // UNSUBSCRIBE (§3.10)
  { name: 'UNSUBSCRIBE: no topic filter', bytes: pkt(0xa2, '00 01 00'), reason: PROTOCOL_ERROR, fragment: 'no topic filter' },
  { name: 'UNSUBSCRIBE: invalid topic filter', bytes: pkt(0xa2, `00 01 00 ${ascii('#/a')}`), reason: TOPIC_FILTER_INVALID, fragment: "'#'" },
  { name: 'UNSUBSCRIBE: subscription identifier is not allowed', bytes: pkt(0xa2, `00 01 ${props('0b 01')} ${A}`), reason: MALFORMED, fragment: 'not allowed here' },
  // UNSUBACK (§3.11)
  { name: 'UNSUBACK: no reason code', bytes: pkt(0xb0, '00 01 00'), reason: PROTOCOL_ERROR, fragment: 'no reason code' },
  { name: 'UNSUBACK: reason code 0x10', bytes: pkt(0xb0, '00 01 00 10'), reason: PROTOCOL_ERROR, fragment: 'not defined for UNSUBACK' },
  { name: 'UNSUBACK 3.1.1: a payload', bytes: pkt(0xb0, '00 01 00'), reason: MALFORMED, fragment: 'unexpected bytes', options: V4 },
  // DISCONNECT (§3.14)
  { name: 'DISCONNECT: reason code 0x05', bytes: pkt(0xe0, '05'), reason: PROTOCOL_ERROR, fragment: 'not defined for DISCONNECT' },
  { name: 'DISCONNECT: reason code 0x10 (a PUBACK code)', bytes: pkt(0xe0, '10 00'), reason: PROTOCOL_ERROR, fragment: 'not defined for DISCONNECT' },
  { name: 'DISCONNECT 3.1.1: a body', bytes: pkt(0xe0, '00'), reason: MALFORMED, fragment: 'unexpected bytes', options: V4 },
  { name: 'DISCONNECT: duplicate reason string', bytes: pkt(0xe0, `80 ${props(`1f ${A} 1f ${A}`)}`), reason: PROTOCOL_ERROR, fragment: 'more than once' },
];

// ---------------------------------------------------------------- cases

function roundTripCase(version: MqttVersion): FirmwareCase {
  return {
    name: `round trip: every supported packet, MQTT ${version === 5 ? '5.0' : '3.1.1'}`,
    run() {
      const options = version === 5 ? V5 : V4;
      let bytesTotal = 0;
      for (const packet of samples(version)) {
        const bytes = encodePacket(packet, { protocolVersion: version });
        bytesTotal += bytes.length;
        samePacket(decodePacket(bytes, options), packet, `${packet.type} decodes to itself`);
        const streamed = streamDecode(bytes, options);
        equal(streamed.error, undefined, `${packet.type} through the stream`);
        samePacket(streamed.packets[0], packet, `${packet.type} through the stream, byte by byte`);
        bytesEqual(encodePacket(decodePacket(bytes, options), { protocolVersion: version }), bytes, `${packet.type} re-encodes to the same bytes`);
      }
      return { packets: samples(version).length, bytes: bytesTotal };
    },
  };
}

export const suite: CaseSuite = {
  name: 'mqtt codec',
  cases: [
    roundTripCase(5),
    roundTripCase(4),
    {
      name: 'byte examples: CONNECT 3.1.1, shortest PUBACK and DISCONNECT, PUBLISH with properties',
      run() {
        // CONNECT 3.1.1: "MQTT", level 4, flags 0x02 (clean), keep alive 60, empty client id.
        const connect = hex('10 0c 0004 4d515454 04 02 003c 0000');
        samePacket(decodePacket(connect, V4), { type: 'connect', protocolVersion: 4, clientId: '', keepAlive: 60, cleanStart: true, properties: {} }, 'CONNECT 3.1.1');
        bytesEqual(encodePacket({ type: 'connect', protocolVersion: 4, clientId: '', keepAlive: 60, cleanStart: true, properties: {} }, { protocolVersion: 4 }), connect, 'CONNECT 3.1.1 bytes');
        // PUBACK, MQTT 5: reason 0 and no properties is the 2-byte form (§3.4.2.1); reason 0x10 alone is 3 bytes.
        bytesEqual(encodePacket({ type: 'puback', packetId: 1, reasonCode: 0, properties: {} }, { protocolVersion: 5 }), hex('40 02 0001'), 'PUBACK short form');
        bytesEqual(encodePacket({ type: 'puback', packetId: 1, reasonCode: 0x10, properties: {} }, { protocolVersion: 5 }), hex('40 03 0001 10'), 'PUBACK with a reason only');
        samePacket(decodePacket(hex('40 04 0001 10 00'), V5), { type: 'puback', packetId: 1, reasonCode: 0x10, properties: {} }, 'PUBACK with an empty property block');
        // DISCONNECT, MQTT 5: reason 0 and no properties is empty (§3.14.2.1).
        bytesEqual(encodePacket({ type: 'disconnect', reasonCode: 0, properties: {} }, { protocolVersion: 5 }), hex('e0 00'), 'DISCONNECT short form');
        bytesEqual(encodePacket({ type: 'disconnect', reasonCode: 0x81, properties: {} }, { protocolVersion: 5 }), hex('e0 01 81'), 'DISCONNECT 0x81');
        // PUBLISH QoS 1, topic "a", packet id 5, properties: topic alias 1, two subscription identifiers, payload "hi".
        const publish = hex('32 0f 0001 61 0005 07 0b 01 0b 02 23 0001 6869');
        samePacket(
          decodePacket(publish, V5),
          { type: 'publish', topic: 'a', payload: bin(0x68, 0x69), qos: 1, retain: false, dup: false, packetId: 5, properties: { subscriptionIdentifiers: [1, 2], topicAlias: 1 } },
          'PUBLISH',
        );
        // A topic alias alone, with an empty topic name (§3.3.2.3.4).
        samePacket(decodePacket(hex('30 06 0000 03 23 0001'), V5), { type: 'publish', topic: '', payload: new Uint8Array(0), qos: 0, retain: false, dup: false, properties: { topicAlias: 1 } }, 'alias only');
        // MQTT 5 allows a password without a user name (§3.1.2.9).
        samePacket(
          decodePacket(hex('10 11 0004 4d515454 05 42 0000 00 0000 0002 0102'), V5),
          { type: 'connect', protocolVersion: 5, clientId: '', keepAlive: 0, cleanStart: true, password: bin(1, 2), properties: {} },
          'MQTT 5 password without user name',
        );
        // User properties keep their wire order, repeated names included.
        const user = decodePacket(pkt(0xe0, `00 ${props(`26 ${ascii('b')} ${ascii('1')} 26 ${ascii('a')} ${ascii('2')} 26 ${ascii('b')} ${ascii('3')}`)}`), V5);
        equal(canon(user.type === 'disconnect' ? user.properties.userProperties : undefined), canon([['b', '1'], ['a', '2'], ['b', '3']]), 'user property order');
      },
    },
    {
      name: `every validation rule fails with its reason code (${RULES.length} rules, whole and byte by byte)`,
      run() {
        for (const rule of RULES) fails(rule.bytes, rule.options ?? V5, rule.reason, rule.fragment, rule.name);
        return { rules: RULES.length };
      },
    },
    {
      name: 'split streams: every chunk size, several packets per chunk, same packets in order',
      run() {
        let pushes = 0;
        for (const version of [5, 4] as const) {
          const options = version === 5 ? V5 : V4;
          const packets = samples(version);
          const stream = concat(...packets.map((p) => encodePacket(p, { protocolVersion: version })));
          for (let chunk = 1; chunk <= stream.length; chunk += chunk < 16 ? 1 : 37) {
            const r = streamDecode(stream, options, chunk);
            pushes += Math.ceil(stream.length / chunk);
            equal(r.error, undefined, `chunk ${chunk}`);
            equal(r.packets.length, packets.length, `chunk ${chunk}: packet count`);
            for (let i = 0; i < packets.length; i++) samePacket(r.packets[i], packets[i], `chunk ${chunk}, packet ${i}`);
          }
          // One push with everything, then a packet split at every byte boundary.
          const one = encodePacket(packets[4], { protocolVersion: version });
          for (let cut = 0; cut <= one.length; cut++) {
            const decoder = new MqttStreamDecoder(options);
            const first = decoder.push(one.subarray(0, cut));
            const second = decoder.push(one.subarray(cut));
            equal(first.packets.length + second.packets.length, 1, `cut at ${cut}`);
            equal(decoder.state, StreamState.FIXED_HEADER, `cut at ${cut}: back to the fixed header`);
          }
        }
        return { pushes };
      },
    },
    {
      name: 'packets before a bad one are delivered; a failed stream stays failed',
      run() {
        const good = encodePacket({ type: 'pingresp' }, { protocolVersion: 5 });
        const bad = pkt(0x40, '00 00');
        const decoder = new MqttStreamDecoder(V5);
        const r = decoder.push(concat(good, good, bad, good));
        equal(r.packets.length, 2, 'two PINGRESPs before the bad PUBACK');
        equal(r.error?.reasonCode, PROTOCOL_ERROR, 'PUBACK with packet id 0');
        equal(decoder.state, StreamState.FAILED, 'state');
        const again = decoder.push(good);
        equal(again.packets.length, 0, 'nothing after a failure');
        equal(again.error, r.error, 'the same error');
      },
    },
    {
      name: 'memory bound: the body buffer is never above maximumPacketSize - 2, and nothing is allocated for a refused length',
      run() {
        for (const max of [2, 16, 100, 1000]) {
          const decoder = new MqttStreamDecoder({ ...V5, maximumPacketSize: max });
          // A PUBLISH claiming at least 2,097,152 bytes: refused before its last length byte.
          const r = decoder.push(hex('30 ff ff ff'));
          equal(r.error?.reasonCode, PACKET_TOO_LARGE, `max ${max}: refused`);
          equal(decoder.maxBufferedBytes, 0, `max ${max}: nothing allocated`);
        }
        // A packet of exactly the maximum is accepted, one byte more is refused.
        const exact = encodePacket({ type: 'publish', topic: 'a', payload: new Uint8Array(94), qos: 0, retain: false, dup: false, properties: {} }, { protocolVersion: 5 });
        equal(exact.length, 100, 'a 100-byte packet');
        const decoder = new MqttStreamDecoder({ ...V5, maximumPacketSize: 100 });
        for (let i = 0; i < exact.length; i++) equal(decoder.push(exact.subarray(i, i + 1)).error, undefined, `byte ${i}`);
        equal(decoder.maxBufferedBytes, 98, 'buffered exactly the body');
        equal(decoder.bufferedBytes, 0, 'released after the packet');
        const over = new MqttStreamDecoder({ ...V5, maximumPacketSize: 99 });
        equal(over.push(exact).error?.reasonCode, PACKET_TOO_LARGE, 'max 99 refuses it');
        throws(() => decodePacket(exact, { ...V5, maximumPacketSize: 99 }), 'MqttDecodeError', 'decodePacket refuses it', 'above the maximum 99');
        return { maxBuffered: decoder.maxBufferedBytes };
      },
    },
    {
      name: 'encoder refuses what the decoder would refuse',
      run() {
        const e5 = { protocolVersion: 5 } as const;
        const pub = { type: 'publish', topic: 'a', payload: new Uint8Array(0), qos: 0, retain: false, dup: false, properties: {} } as const;
        throws(() => encodePacket({ ...pub, topic: 'a/#' }, e5), 'RangeError', 'wildcard topic');
        throws(() => encodePacket({ ...pub, topic: 'a\u0000' }, e5), 'RangeError', 'U+0000');
        throws(() => encodePacket({ ...pub, topic: 'a\ud800' }, e5), 'TypeError', 'lone surrogate');
        throws(() => encodePacket({ ...pub, qos: 1 }, e5), 'TypeError', 'QoS 1 without a packet id');
        throws(() => encodePacket({ ...pub, qos: 1, packetId: 0 }, e5), 'RangeError', 'packet id 0');
        throws(() => encodePacket({ ...pub, dup: true }, e5), 'RangeError', 'DUP on QoS 0');
        throws(() => encodePacket({ ...pub, qos: 3 as 1 }, e5), 'RangeError', 'QoS 3');
        throws(() => encodePacket({ ...pub, properties: { topicAlias: 0 } }, e5), 'RangeError', 'topic alias 0');
        throws(() => encodePacket({ ...pub, properties: { sessionExpiryInterval: 1 } }, e5), 'RangeError', 'property not allowed in PUBLISH');
        throws(() => encodePacket({ ...pub, properties: { payloadFormatIndicator: 2 } }, e5), 'RangeError', 'payload format 2');
        throws(() => encodePacket({ ...pub, payload: bin(0xff), properties: { payloadFormatIndicator: 1 } }, e5), 'RangeError', 'payload not UTF-8');
        throws(() => encodePacket({ ...pub, topic: 'x'.repeat(65536) }, e5), 'RangeError', 'string above 65,535 bytes');
        throws(() => encodePacket({ ...pub, topic: '\u00e9'.repeat(32768) }, e5), 'RangeError', '32,768 two-byte characters');
        equal(encodePacket({ ...pub, topic: 'x'.repeat(65535) }, e5).length, 1 + 3 + 2 + 65535 + 1, 'a 65,535-byte topic');
        throws(() => encodePacket({ ...pub, topic: '' }, { protocolVersion: 4 }), 'RangeError', '3.1.1 empty topic');
        throws(() => encodePacket({ type: 'puback', packetId: 1, reasonCode: 0x01, properties: {} }, e5), 'RangeError', 'PUBACK reason 0x01');
        throws(() => encodePacket({ type: 'puback', packetId: 1, reasonCode: 0x10, properties: {} }, { protocolVersion: 4 }), 'RangeError', '3.1.1 PUBACK with a reason');
        throws(() => encodePacket({ type: 'subscribe', packetId: 1, subscriptions: [], properties: {} }, e5), 'RangeError', 'no subscription');
        throws(() => encodePacket({ type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter: 'a#', qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 }], properties: {} }, e5), 'RangeError', 'bad filter');
        throws(() => encodePacket({ type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter: 'a', qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 }], properties: { subscriptionIdentifiers: [1, 2] } }, e5), 'RangeError', 'two subscription ids');
        throws(() => encodePacket({ type: 'connack', sessionPresent: true, reasonCode: 0x80, properties: {} }, e5), 'RangeError', 'session present with a failure');
        throws(() => encodePacket({ type: 'connect', protocolVersion: 4, clientId: '', keepAlive: 0, cleanStart: false, properties: {} }, { protocolVersion: 4 }), 'RangeError', '3.1.1 empty id without clean session');
        throws(() => encodePacket({ type: 'connect', protocolVersion: 4, clientId: 'a', keepAlive: 0, cleanStart: true, password: bin(1), properties: {} }, { protocolVersion: 4 }), 'RangeError', '3.1.1 password alone');
        throws(() => encodePacket({ type: 'disconnect', reasonCode: 0x05, properties: {} }, e5), 'RangeError', 'DISCONNECT 0x05');
        throws(() => encodePacket({ type: 'connect', protocolVersion: 5, clientId: 'a', keepAlive: 0, cleanStart: true, properties: { receiveMaximum: 0 } }, e5), 'RangeError', 'receive maximum 0');
        throws(() => encodePacket({ type: 'connect', protocolVersion: 5, clientId: 'a', keepAlive: 0, cleanStart: true, properties: { authenticationData: bin(1) } }, e5), 'RangeError', 'auth data alone');
        throws(() => encodePacket({ ...pub, payload: new Uint8Array(100) }, { protocolVersion: 5, maximumPacketSize: 50 }), 'RangeError', "above the peer's maximum packet size");
        throws(() => encodePacket({ type: 'auth' } as unknown as MqttPacket, e5), 'TypeError', 'AUTH');
        throws(() => new MqttStreamDecoder({ protocolVersion: 3 as 4, maximumPacketSize: 100 }), 'RangeError', 'protocol version 3');
        throws(() => new MqttStreamDecoder({ protocolVersion: 5, maximumPacketSize: 1 }), 'RangeError', 'maximum packet size 1');
        throws(() => new MqttStreamDecoder(V5).push([1, 2] as unknown as Uint8Array), 'TypeError', 'push a non-Uint8Array');
      },
    },
    {
      name: 'longest strings: 65,535-byte topics of 1-, 2-, 3- and 4-byte characters decode and re-encode (linear in XS too)',
      run() {
        const options = { ...V5, maximumPacketSize: 70_000 };
        let characters = 0;
        for (const [unit, bytesPer] of [['a', 1], ['\u00e9', 2], ['\u65e5', 3], ['\u{1f600}', 4]] as const) {
          const count = Math.floor(65_535 / bytesPer);
          const topic = unit.repeat(count);
          const packet: MqttPacket = { type: 'publish', topic, payload: bin(1), qos: 0, retain: false, dup: false, properties: { userProperties: [['k', unit.repeat(100)]] } };
          const bytes = encodePacket(packet, { protocolVersion: 5 });
          const decoded = decodePacket(bytes, options);
          ok(decoded.type === 'publish' && decoded.topic === topic, `${bytesPer}-byte characters: same topic`);
          bytesEqual(encodePacket(decoded, { protocolVersion: 5 }), bytes, `${bytesPer}-byte characters: same bytes`);
          characters += count;
        }
        return { characters };
      },
    },
    {
      name: 'mutated packets: a packet or a typed error, in this engine too',
      run() {
        const rng = new Rng(0x5eed);
        const reasons = new Set<number>([MALFORMED, PROTOCOL_ERROR, UNSUPPORTED_PROTOCOL_VERSION, TOPIC_FILTER_INVALID, TOPIC_NAME_INVALID, TOPIC_ALIAS_INVALID, PACKET_TOO_LARGE, PAYLOAD_FORMAT_INVALID]);
        let decoded = 0;
        let refused = 0;
        for (const version of [5, 4] as const) {
          const options = version === 5 ? V5 : V4;
          const seeds = samples(version).map((p) => encodePacket(p, { protocolVersion: version }));
          for (let i = 0; i < 1500; i++) {
            const bytes = mutate(seeds[i % seeds.length], rng);
            try {
              const packet = decodePacket(bytes, options);
              decoded++;
              samePacket(decodePacket(encodePacket(packet, { protocolVersion: version }), { ...options, maximumPacketSize: 1 << 20 }), packet, 'accepted packets re-encode');
            } catch (error) {
              if (!(error instanceof MqttDecodeError)) throw new CheckFailure(`untyped failure on ${Array.from(bytes).join(',')}: ${String(error)}`);
              ok(reasons.has(error.reasonCode), `reason ${error.reasonCode}`);
              refused++;
            }
          }
        }
        return { decoded, refused };
      },
    },
  ],
};
