/**
 * One whole packet in, one packet out (docs/spec/mqtt-codec.md). The fixed
 * header (§2.1): packet type and flags in the first byte, then the
 * Remaining Length as a Variable Byte Integer. `checkFirstByte` and
 * `decodeBody` are what the stream decoder (stream.ts) calls; `decodePacket`
 * takes a buffer holding exactly one packet.
 */
import { ByteReader } from './bytes.ts';
import type { DecodeContext, EncodedBody } from './body.ts';
import { decodeConnack, decodeConnect, encodeConnack, encodeConnect } from './connect.ts';
import { decodeDisconnect, encodeDisconnect } from './disconnect.ts';
import { DecodeReason, malformed, MqttDecodeError, protocolError } from './errors.ts';
import { PacketType, type DecodeOptions, type EncodeOptions, type MqttPacket, type MqttVersion } from './packets.ts';
import { decodePuback, decodePublish, encodePuback, encodePublish } from './publish.ts';
import { decodeSuback, decodeSubscribe, decodeUnsuback, decodeUnsubscribe, encodeSuback, encodeSubscribe, encodeUnsuback, encodeUnsubscribe, SUBSCRIBE_FLAGS } from './subscribe.ts';
import { VBI_MAX, vbiLength, writeVbi } from './vbi.ts';

/** The smallest Maximum Packet Size that makes sense: a 2-byte fixed header. */
export const MIN_PACKET_SIZE = 2;
/** The largest packet MQTT can express: 1 + 4 + 268,435,455 bytes (§2.1.4). */
export const MAX_PACKET_SIZE = 1 + 4 + VBI_MAX;

/** Fixed-header flags that every packet type but PUBLISH must carry exactly (§2.1.3 table 2-2). */
const FIXED_FLAGS: Readonly<Record<number, number>> = Object.freeze({
  [PacketType.CONNECT]: 0,
  [PacketType.CONNACK]: 0,
  [PacketType.PUBACK]: 0,
  [PacketType.SUBSCRIBE]: SUBSCRIBE_FLAGS,
  [PacketType.SUBACK]: 0,
  [PacketType.UNSUBSCRIBE]: SUBSCRIBE_FLAGS,
  [PacketType.UNSUBACK]: 0,
  [PacketType.PINGREQ]: 0,
  [PacketType.PINGRESP]: 0,
  [PacketType.DISCONNECT]: 0,
});

/** Checks the options once; RangeError/TypeError on a bad configuration. */
export function decodeContext(options: DecodeOptions): DecodeContext & { readonly maximumPacketSize: number } {
  if (typeof options !== 'object' || options === null) throw new TypeError('decode options: expected an object');
  if (options.protocolVersion !== 4 && options.protocolVersion !== 5) throw new RangeError(`protocolVersion ${String(options.protocolVersion)} is not 4 or 5`);
  const max = options.maximumPacketSize;
  if (typeof max !== 'number' || !Number.isInteger(max) || max < MIN_PACKET_SIZE || max > MAX_PACKET_SIZE) {
    throw new RangeError(`maximumPacketSize ${String(max)} outside ${MIN_PACKET_SIZE}..${MAX_PACKET_SIZE}`);
  }
  const aliasMax = options.topicAliasMaximum ?? 0;
  if (typeof aliasMax !== 'number' || !Number.isInteger(aliasMax) || aliasMax < 0 || aliasMax > 0xffff) throw new RangeError(`topicAliasMaximum ${String(aliasMax)} outside 0..65535`);
  return Object.freeze({ version: options.protocolVersion, topicAliasMaximum: aliasMax, maximumPacketSize: max });
}

/**
 * The first byte of a packet: a supported type with the flags it must
 * carry. Fails before any body byte is read.
 */
export function checkFirstByte(byte: number): void {
  const type = byte >> 4;
  const flags = byte & 0x0f;
  if (type === 0) throw malformed('packet type 0 is reserved');
  if (type === PacketType.PUBREC || type === PacketType.PUBREL || type === PacketType.PUBCOMP || type === PacketType.AUTH) {
    throw protocolError(`packet type ${type} (QoS 2 flow or AUTH) is not supported`);
  }
  if (type === PacketType.PUBLISH) return;
  if (flags !== FIXED_FLAGS[type]) throw malformed(`packet type ${type}: fixed-header flags ${flags}, must be ${FIXED_FLAGS[type]}`);
}

/** Decodes the body `bytes[start, end)` of a packet whose first byte passed checkFirstByte. */
export function decodeBody(first: number, bytes: Uint8Array, start: number, end: number, ctx: DecodeContext): MqttPacket {
  const reader = new ByteReader(bytes, start, end);
  switch (first >> 4) {
    case PacketType.CONNECT:
      return decodeConnect(reader, ctx);
    case PacketType.CONNACK:
      return decodeConnack(reader, ctx);
    case PacketType.PUBLISH:
      return decodePublish(first & 0x0f, reader, ctx);
    case PacketType.PUBACK:
      return decodePuback(reader, ctx);
    case PacketType.SUBSCRIBE:
      return decodeSubscribe(reader, ctx);
    case PacketType.SUBACK:
      return decodeSuback(reader, ctx);
    case PacketType.UNSUBSCRIBE:
      return decodeUnsubscribe(reader, ctx);
    case PacketType.UNSUBACK:
      return decodeUnsuback(reader, ctx);
    case PacketType.PINGREQ:
      reader.expectEnd('pingreq');
      return { type: 'pingreq' };
    case PacketType.PINGRESP:
      reader.expectEnd('pingresp');
      return { type: 'pingresp' };
    case PacketType.DISCONNECT:
      return decodeDisconnect(reader, ctx);
    default:
      throw protocolError(`packet type ${first >> 4} is not supported`);
  }
}

/**
 * Decodes a buffer that holds exactly one packet. Fails with
 * MqttDecodeError (0x81 for a short or long buffer, 0x95 above the maximum
 * packet size), never with anything else for any input bytes.
 */
export function decodePacket(bytes: Uint8Array, options: DecodeOptions): MqttPacket {
  const ctx = decodeContext(options);
  if (!(bytes instanceof Uint8Array)) throw new TypeError('decodePacket: expected a Uint8Array');
  if (bytes.length > ctx.maximumPacketSize) throw new MqttDecodeError(DecodeReason.PACKET_TOO_LARGE, `packet of ${bytes.length} bytes above the maximum ${ctx.maximumPacketSize}`);
  const header = new ByteReader(bytes, 0, bytes.length);
  const first = header.u8('fixed header');
  checkFirstByte(first);
  const remaining = header.vbi('remaining length');
  const total = header.offset + remaining;
  if (total > ctx.maximumPacketSize) throw new MqttDecodeError(DecodeReason.PACKET_TOO_LARGE, `packet of ${total} bytes above the maximum ${ctx.maximumPacketSize}`);
  if (remaining !== header.remaining()) throw malformed(`remaining length ${remaining}, but ${header.remaining()} bytes follow`);
  return decodeBody(first, bytes, header.offset, bytes.length, ctx);
}

function encodeBody(packet: MqttPacket, version: MqttVersion): EncodedBody {
  switch (packet.type) {
    case 'connect':
      return encodeConnect(packet, version);
    case 'connack':
      return encodeConnack(packet, version);
    case 'publish':
      return encodePublish(packet, version);
    case 'puback':
      return encodePuback(packet, version);
    case 'subscribe':
      return encodeSubscribe(packet, version);
    case 'suback':
      return encodeSuback(packet, version);
    case 'unsubscribe':
      return encodeUnsubscribe(packet, version);
    case 'unsuback':
      return encodeUnsuback(packet, version);
    case 'pingreq':
    case 'pingresp':
      return { flags: 0, body: new Uint8Array(0) };
    case 'disconnect':
      return encodeDisconnect(packet, version);
    default:
      throw new TypeError(`encodePacket: unknown packet type ${String((packet as { type?: unknown }).type)}`);
  }
}

const TYPE_NUMBER: Readonly<Record<MqttPacket['type'], number>> = Object.freeze({
  connect: PacketType.CONNECT,
  connack: PacketType.CONNACK,
  publish: PacketType.PUBLISH,
  puback: PacketType.PUBACK,
  subscribe: PacketType.SUBSCRIBE,
  suback: PacketType.SUBACK,
  unsubscribe: PacketType.UNSUBSCRIBE,
  unsuback: PacketType.UNSUBACK,
  pingreq: PacketType.PINGREQ,
  pingresp: PacketType.PINGRESP,
  disconnect: PacketType.DISCONNECT,
});

/**
 * The packet's bytes. Refuses (TypeError, RangeError) anything the decoder
 * would refuse, and a packet above `maximumPacketSize` when one is given
 * (the peer's Maximum Packet Size, §3.1.2.11.4 / §3.2.2.3.6).
 */
export function encodePacket(packet: MqttPacket, options: EncodeOptions): Uint8Array {
  if (typeof packet !== 'object' || packet === null) throw new TypeError('encodePacket: expected a packet object');
  if (options.protocolVersion !== 4 && options.protocolVersion !== 5) throw new RangeError(`protocolVersion ${String(options.protocolVersion)} is not 4 or 5`);
  const { flags, body } = encodeBody(packet, options.protocolVersion);
  if (body.length > VBI_MAX) throw new RangeError(`packet body of ${body.length} bytes above ${VBI_MAX}`);
  const total = 1 + vbiLength(body.length) + body.length;
  if (options.maximumPacketSize !== undefined && total > options.maximumPacketSize) {
    throw new RangeError(`packet of ${total} bytes above the maximum packet size ${options.maximumPacketSize}`);
  }
  const out = new Uint8Array(total);
  out[0] = (TYPE_NUMBER[packet.type] << 4) | flags;
  const at = writeVbi(out, 1, body.length);
  out.set(body, at);
  return out;
}

/** Size of the packet once encoded (the same checks as encodePacket). */
export function encodedLength(packet: MqttPacket, options: EncodeOptions): number {
  return encodePacket(packet, { protocolVersion: options.protocolVersion }).length;
}

