/**
 * The packets the codec encodes and decodes (docs/spec/mqtt-codec.md), as
 * plain objects. Field names follow the MQTT 5 specification; where 3.1.1
 * has no such field the decoder fills the 3.1.1 meaning (reason code 0,
 * empty properties). AUTH and the QoS 2 acknowledgements (PUBREC, PUBREL,
 * PUBCOMP) are not supported.
 */
import type { MqttProperties } from './properties.ts';

/** Protocol level byte of CONNECT: 4 is MQTT 3.1.1, 5 is MQTT 5.0. */
export type MqttVersion = 4 | 5;

/** Control packet types (MQTT 5 §2.1.2): the high nibble of the first byte. */
export const PacketType = Object.freeze({
  CONNECT: 1,
  CONNACK: 2,
  PUBLISH: 3,
  PUBACK: 4,
  PUBREC: 5,
  PUBREL: 6,
  PUBCOMP: 7,
  SUBSCRIBE: 8,
  SUBACK: 9,
  UNSUBSCRIBE: 10,
  UNSUBACK: 11,
  PINGREQ: 12,
  PINGRESP: 13,
  DISCONNECT: 14,
  AUTH: 15,
});

export interface WillMessage {
  topic: string;
  payload: Uint8Array;
  qos: 0 | 1 | 2;
  retain: boolean;
  /** MQTT 5 Will Properties (§3.1.3.2); empty in 3.1.1. */
  properties: MqttProperties;
}

export interface ConnectPacket {
  type: 'connect';
  protocolVersion: MqttVersion;
  clientId: string;
  /** Keep Alive in seconds (§3.1.2.10); 0 turns it off. */
  keepAlive: number;
  /** Clean Start (5) / Clean Session (3.1.1). */
  cleanStart: boolean;
  username?: string;
  password?: Uint8Array;
  will?: WillMessage;
  properties: MqttProperties;
}

export interface ConnackPacket {
  type: 'connack';
  sessionPresent: boolean;
  /** MQTT 5 Reason Code (§3.2.2.2) or the 3.1.1 Return Code (0..5). */
  reasonCode: number;
  properties: MqttProperties;
}

export interface PublishPacket {
  type: 'publish';
  topic: string;
  payload: Uint8Array;
  qos: 0 | 1 | 2;
  retain: boolean;
  dup: boolean;
  /** Present (1..65535) exactly when qos > 0. */
  packetId?: number;
  properties: MqttProperties;
}

export interface PubackPacket {
  type: 'puback';
  packetId: number;
  reasonCode: number;
  properties: MqttProperties;
}

export interface Subscription {
  topicFilter: string;
  /** Maximum QoS (3.1.1: requested QoS). */
  qos: 0 | 1 | 2;
  /** MQTT 5 subscription options (§3.8.3.1); false/0 in 3.1.1. */
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: 0 | 1 | 2;
}

export interface SubscribePacket {
  type: 'subscribe';
  packetId: number;
  subscriptions: Subscription[];
  properties: MqttProperties;
}

export interface SubackPacket {
  type: 'suback';
  packetId: number;
  /** One per subscription: granted QoS or failure (3.1.1: 0, 1, 2, 0x80). */
  reasonCodes: number[];
  properties: MqttProperties;
}

export interface UnsubscribePacket {
  type: 'unsubscribe';
  packetId: number;
  topicFilters: string[];
  properties: MqttProperties;
}

export interface UnsubackPacket {
  type: 'unsuback';
  packetId: number;
  /** One per topic filter in MQTT 5; empty in 3.1.1 (which has no payload). */
  reasonCodes: number[];
  properties: MqttProperties;
}

export interface PingreqPacket {
  type: 'pingreq';
}

export interface PingrespPacket {
  type: 'pingresp';
}

export interface DisconnectPacket {
  type: 'disconnect';
  /** 0 in 3.1.1 (no variable header). */
  reasonCode: number;
  properties: MqttProperties;
}

export type MqttPacket =
  | ConnectPacket
  | ConnackPacket
  | PublishPacket
  | PubackPacket
  | SubscribePacket
  | SubackPacket
  | UnsubscribePacket
  | UnsubackPacket
  | PingreqPacket
  | PingrespPacket
  | DisconnectPacket;

/** What the decoder needs to know about its side of the connection. */
export interface DecodeOptions {
  /** The configured protocol version; a CONNECT of another level fails with 0x84. */
  readonly protocolVersion: MqttVersion;
  /** Largest whole packet accepted, in bytes (MQTT 5 §3.1.2.11.4): the bound on every allocation. */
  readonly maximumPacketSize: number;
  /** The Topic Alias Maximum this side announced (§3.1.2.11.5, §3.2.2.3.8); 0 (the default) refuses every alias. */
  readonly topicAliasMaximum?: number;
}

export interface EncodeOptions {
  readonly protocolVersion: MqttVersion;
  /** When set, a packet larger than this is refused with RangeError before anything is returned. */
  readonly maximumPacketSize?: number;
}
