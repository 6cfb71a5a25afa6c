/**
 * Decode failures of the MQTT codec (docs/spec/mqtt-codec.md). Every
 * failure carries the MQTT 5 DISCONNECT reason code the session must send
 * (§3.14.2.1) and a one-line cause for the log. In MQTT 3.1.1 there is no
 * DISCONNECT reason: the session closes the connection and logs the same
 * code and cause.
 *
 * Wrong arguments to the encoder are not decode failures: a wrong type
 * throws TypeError, an out-of-range value RangeError.
 */
import { setErrorName } from '../../base/error-name.ts';

/** The DISCONNECT reason codes a decode failure can carry (MQTT 5 §2.4, §3.14.2.1). */
export const DecodeReason = Object.freeze({
  /** 0x81 Malformed Packet: the bytes do not follow the packet's grammar. */
  MALFORMED: 0x81,
  /** 0x82 Protocol Error: well-formed bytes that break a rule of the protocol. */
  PROTOCOL_ERROR: 0x82,
  /** 0x84 Unsupported Protocol Version (CONNECT's level differs from the configured version). */
  UNSUPPORTED_PROTOCOL_VERSION: 0x84,
  /** 0x8F Topic Filter invalid. */
  TOPIC_FILTER_INVALID: 0x8f,
  /** 0x90 Topic Name invalid. */
  TOPIC_NAME_INVALID: 0x90,
  /** 0x94 Topic Alias invalid: 0, or above the Topic Alias Maximum this side announced. */
  TOPIC_ALIAS_INVALID: 0x94,
  /** 0x95 Packet too large: above the configured Maximum Packet Size. */
  PACKET_TOO_LARGE: 0x95,
  /** 0x99 Payload format invalid: Payload Format Indicator 1 with a payload that is not UTF-8. */
  PAYLOAD_FORMAT_INVALID: 0x99,
});

export type DecodeReasonCode = (typeof DecodeReason)[keyof typeof DecodeReason];

export class MqttDecodeError extends Error {
  /** The DISCONNECT reason code to send (MQTT 5), or to log (3.1.1). */
  readonly reasonCode: DecodeReasonCode;

  constructor(reasonCode: DecodeReasonCode, cause: string) {
    super(cause);
    setErrorName(this, 'MqttDecodeError');
    this.reasonCode = reasonCode;
  }
}

export function malformed(cause: string): MqttDecodeError {
  return new MqttDecodeError(DecodeReason.MALFORMED, cause);
}

export function protocolError(cause: string): MqttDecodeError {
  return new MqttDecodeError(DecodeReason.PROTOCOL_ERROR, cause);
}
