/**
 * DISCONNECT (MQTT 5 §3.14, 3.1.1 §3.14), in both directions. PINGREQ and
 * PINGRESP have no body at all (§3.12, §3.13) and are handled in codec.ts.
 */
import { ByteReader, ByteWriter } from './bytes.ts';
import { checkCode, type DecodeContext, type EncodedBody } from './body.ts';
import { protocolError } from './errors.ts';
import type { DisconnectPacket, MqttVersion } from './packets.ts';
import { readProperties, writeProperties } from './properties.ts';
import { DISCONNECT_REASONS, hex } from './reason-codes.ts';

export function decodeDisconnect(reader: ByteReader, ctx: DecodeContext): DisconnectPacket {
  let reasonCode = 0;
  let properties = {};
  if (ctx.version === 5 && reader.remaining() > 0) {
    reasonCode = reader.u8('disconnect reason code');
    if (!DISCONNECT_REASONS.has(reasonCode)) throw protocolError(`disconnect: reason code ${hex(reasonCode)} not defined for DISCONNECT`);
    if (reader.remaining() > 0) properties = readProperties(reader, 'disconnect');
  }
  reader.expectEnd('disconnect');
  return { type: 'disconnect', reasonCode, properties };
}

/** Shortest form (§3.14.2.1): nothing for reason 0 without properties. */
export function encodeDisconnect(packet: DisconnectPacket, version: MqttVersion): EncodedBody {
  const w = new ByteWriter();
  const reasonCode = checkCode(packet.reasonCode ?? 0, DISCONNECT_REASONS, 'disconnect');
  if (version === 4) {
    if (reasonCode !== 0) throw new RangeError('disconnect: 3.1.1 has no reason codes');
  } else {
    const props = new ByteWriter();
    writeProperties(props, packet.properties, 'disconnect');
    const hasProps = props.length > 1;
    if (reasonCode !== 0 || hasProps) w.u8(reasonCode, 'reason code');
    if (hasProps) w.raw(props.bytes(), 'properties');
  }
  return { flags: 0, body: w.bytes() };
}
