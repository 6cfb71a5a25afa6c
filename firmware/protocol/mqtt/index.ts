/**
 * The MQTT 5.0 / 3.1.1 codec (docs/spec/mqtt-codec.md): the public surface.
 */
export { decodePacket, encodePacket, encodedLength, MAX_PACKET_SIZE, MIN_PACKET_SIZE } from './codec.ts';
export { DecodeReason, MqttDecodeError, type DecodeReasonCode } from './errors.ts';
export { MqttStreamDecoder, StreamState, type StreamResult, type StreamStateName } from './stream.ts';
export { PROPERTY_TABLE, type MqttProperties } from './properties.ts';
export * from './packets.ts';
