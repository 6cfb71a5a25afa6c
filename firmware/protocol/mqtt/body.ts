/**
 * What every per-packet codec shares: the decode context and the encoded
 * body (fixed-header flags plus the bytes after the Remaining Length).
 */
import type { MqttVersion } from './packets.ts';

export interface DecodeContext {
  readonly version: MqttVersion;
  /** The Topic Alias Maximum this side announced: an alias above it is 0x94. */
  readonly topicAliasMaximum: number;
}

export interface EncodedBody {
  /** The low nibble of the first byte (§2.1.3). */
  readonly flags: number;
  readonly body: Uint8Array;
}

export function checkPacketId(value: unknown, what: string): number {
  if (typeof value !== 'number') throw new TypeError(`${what}: packet id must be a number`);
  if (!Number.isInteger(value) || value < 1 || value > 0xffff) throw new RangeError(`${what}: packet id ${value} outside 1..65535`);
  return value;
}

export function checkQos(value: unknown, what: string): 0 | 1 | 2 {
  if (value !== 0 && value !== 1 && value !== 2) throw new RangeError(`${what}: QoS ${String(value)} is not 0, 1 or 2`);
  return value;
}

export function checkCode(value: unknown, allowed: ReadonlySet<number>, what: string): number {
  if (typeof value !== 'number') throw new TypeError(`${what}: reason code must be a number`);
  if (!allowed.has(value)) throw new RangeError(`${what}: reason code ${value} not defined for this packet`);
  return value;
}
