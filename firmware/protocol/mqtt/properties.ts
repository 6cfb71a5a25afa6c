/**
 * MQTT 5 properties (§2.2.2): the table of every property identifier, its
 * data type, the packets it may appear in (§2.2.2.2 table 2-4, with "will"
 * for the Will Properties of CONNECT, §3.1.3.2), whether it may repeat, and
 * the value rule checked on decode (and on encode). AUTH is not supported,
 * so its column is absent; PUBREC/PUBREL/PUBCOMP likewise.
 */
import { ByteReader, ByteWriter } from './bytes.ts';
import { malformed, protocolError } from './errors.ts';
import { hex } from './reason-codes.ts';
import { VBI_MAX } from './vbi.ts';

/** Where a property block sits. */
export type PropertyContext = 'connect' | 'will' | 'connack' | 'publish' | 'puback' | 'subscribe' | 'suback' | 'unsubscribe' | 'unsuback' | 'disconnect';

export interface MqttProperties {
  payloadFormatIndicator?: number;
  messageExpiryInterval?: number;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Uint8Array;
  /** Subscription Identifiers: several in a PUBLISH (§3.3.2.3.8), at most one in a SUBSCRIBE. */
  subscriptionIdentifiers?: number[];
  sessionExpiryInterval?: number;
  assignedClientIdentifier?: string;
  serverKeepAlive?: number;
  authenticationMethod?: string;
  authenticationData?: Uint8Array;
  requestProblemInformation?: number;
  willDelayInterval?: number;
  requestResponseInformation?: number;
  responseInformation?: string;
  serverReference?: string;
  reasonString?: string;
  receiveMaximum?: number;
  topicAliasMaximum?: number;
  topicAlias?: number;
  maximumQoS?: number;
  retainAvailable?: number;
  /** User Properties in wire order (§3.1.2.11.8: order must be kept); may repeat everywhere. */
  userProperties?: [string, string][];
  maximumPacketSize?: number;
  wildcardSubscriptionAvailable?: number;
  subscriptionIdentifiersAvailable?: number;
  sharedSubscriptionAvailable?: number;
}

type DataType = 'byte' | 'u16' | 'u32' | 'vbi' | 'utf8' | 'binary' | 'pair';

/** A value rule: undefined when `value` is acceptable, else the cause (a protocol error, §2.2.2.2 and per-property text). */
type ValueRule = (value: number) => string | undefined;

const zeroOrOne: ValueRule = (v) => (v === 0 || v === 1 ? undefined : `must be 0 or 1, is ${v}`);
const nonZero: ValueRule = (v) => (v !== 0 ? undefined : 'must not be 0');

interface PropertySpec {
  readonly id: number;
  readonly key: keyof MqttProperties;
  readonly type: DataType;
  readonly contexts: readonly PropertyContext[];
  /** Contexts in which the property may appear more than once. */
  readonly repeats: readonly PropertyContext[];
  readonly rule?: ValueRule;
}

const ALL_CONTEXTS: readonly PropertyContext[] = ['connect', 'will', 'connack', 'publish', 'puback', 'subscribe', 'suback', 'unsubscribe', 'unsuback', 'disconnect'];

function spec(id: number, key: keyof MqttProperties, type: DataType, contexts: readonly PropertyContext[], rule?: ValueRule, repeats: readonly PropertyContext[] = []): PropertySpec {
  return Object.freeze({ id, key, type, contexts: Object.freeze(contexts), repeats: Object.freeze(repeats), rule });
}

/** MQTT 5 §2.2.2.2, table 2-4 (AUTH, PUBREC, PUBREL, PUBCOMP columns left out). */
export const PROPERTY_TABLE: readonly PropertySpec[] = Object.freeze([
  spec(0x01, 'payloadFormatIndicator', 'byte', ['publish', 'will'], zeroOrOne),
  spec(0x02, 'messageExpiryInterval', 'u32', ['publish', 'will']),
  spec(0x03, 'contentType', 'utf8', ['publish', 'will']),
  spec(0x08, 'responseTopic', 'utf8', ['publish', 'will']),
  spec(0x09, 'correlationData', 'binary', ['publish', 'will']),
  spec(0x0b, 'subscriptionIdentifiers', 'vbi', ['publish', 'subscribe'], nonZero, ['publish']),
  spec(0x11, 'sessionExpiryInterval', 'u32', ['connect', 'connack', 'disconnect']),
  spec(0x12, 'assignedClientIdentifier', 'utf8', ['connack']),
  spec(0x13, 'serverKeepAlive', 'u16', ['connack']),
  spec(0x15, 'authenticationMethod', 'utf8', ['connect', 'connack']),
  spec(0x16, 'authenticationData', 'binary', ['connect', 'connack']),
  spec(0x17, 'requestProblemInformation', 'byte', ['connect'], zeroOrOne),
  spec(0x18, 'willDelayInterval', 'u32', ['will']),
  spec(0x19, 'requestResponseInformation', 'byte', ['connect'], zeroOrOne),
  spec(0x1a, 'responseInformation', 'utf8', ['connack']),
  spec(0x1c, 'serverReference', 'utf8', ['connack', 'disconnect']),
  spec(0x1f, 'reasonString', 'utf8', ['connack', 'puback', 'suback', 'unsuback', 'disconnect']),
  spec(0x21, 'receiveMaximum', 'u16', ['connect', 'connack'], nonZero),
  spec(0x22, 'topicAliasMaximum', 'u16', ['connect', 'connack']),
  spec(0x23, 'topicAlias', 'u16', ['publish']),
  spec(0x24, 'maximumQoS', 'byte', ['connack'], zeroOrOne),
  spec(0x25, 'retainAvailable', 'byte', ['connack'], zeroOrOne),
  spec(0x26, 'userProperties', 'pair', ALL_CONTEXTS, undefined, ALL_CONTEXTS),
  spec(0x27, 'maximumPacketSize', 'u32', ['connect', 'connack'], nonZero),
  spec(0x28, 'wildcardSubscriptionAvailable', 'byte', ['connack'], zeroOrOne),
  spec(0x29, 'subscriptionIdentifiersAvailable', 'byte', ['connack'], zeroOrOne),
  spec(0x2a, 'sharedSubscriptionAvailable', 'byte', ['connack'], zeroOrOne),
]);

/** Property id → spec, built once (at preload on the device). */
const BY_ID: ReadonlyMap<number, PropertySpec> = new Map(PROPERTY_TABLE.map((s) => [s.id, s]));

/**
 * Reads a property block (Property Length VBI, then properties) at the
 * reader's position. Checks: the length fits the packet (0x81), every id is
 * known and allowed here (0x81, §2.2.2.2 "an Identifier which is not valid
 * for its packet type ... is a Malformed Packet"), no property repeats
 * unless allowed (0x82), values obey their rule (0x82), Authentication Data
 * only with an Authentication Method (0x82, §3.1.2.11.10).
 */
export function readProperties(reader: ByteReader, context: PropertyContext): MqttProperties {
  const length = reader.vbi(`${context} property length`);
  const block = reader.sub(length, `${context} properties`);
  const props: MqttProperties = {};
  const record = props as Record<string, unknown>;
  while (block.remaining() > 0) {
    const id = block.vbi(`${context} property identifier`);
    const s = BY_ID.get(id);
    if (s === undefined) throw malformed(`${context}: unknown property ${hex(id)}`);
    if (s.contexts.indexOf(context) < 0) throw malformed(`${context}: property ${s.key} (${hex(id)}) not allowed here`);
    const what = `${context} property ${s.key}`;
    let value: unknown;
    switch (s.type) {
      case 'byte':
        value = block.u8(what);
        break;
      case 'u16':
        value = block.u16(what);
        break;
      case 'u32':
        value = block.u32(what);
        break;
      case 'vbi':
        value = block.vbi(what);
        break;
      case 'utf8':
        value = block.utf8(what);
        break;
      case 'binary':
        value = block.binary(what);
        break;
      case 'pair':
        value = [block.utf8(`${what} name`), block.utf8(`${what} value`)];
        break;
    }
    if (s.rule !== undefined) {
      const problem = s.rule(value as number);
      if (problem !== undefined) throw protocolError(`${what} ${problem}`);
    }
    const repeats = s.repeats.indexOf(context) >= 0;
    const many = s.type === 'pair' || s.key === 'subscriptionIdentifiers';
    if (record[s.key] !== undefined && !repeats) throw protocolError(`${what} appears more than once`);
    if (many) {
      const list = (record[s.key] as unknown[] | undefined) ?? [];
      list.push(value);
      record[s.key] = list;
    } else {
      record[s.key] = value;
    }
  }
  if (props.authenticationData !== undefined && props.authenticationMethod === undefined) {
    throw protocolError(`${context}: authentication data without an authentication method`);
  }
  return props;
}

/** A property block's identifiers and values, checked with the decoder's rules: RangeError/TypeError on anything the decoder would refuse. */
export function writeProperties(writer: ByteWriter, props: MqttProperties | undefined, context: PropertyContext): void {
  const body = new ByteWriter();
  const record = (props ?? {}) as Record<string, unknown>;
  if (typeof record !== 'object') throw new TypeError(`${context} properties: expected an object`);
  for (const key of Object.keys(record)) {
    if (record[key] === undefined) continue;
    const s = PROPERTY_TABLE.find((p) => p.key === key);
    if (s === undefined) throw new TypeError(`${context}: unknown property ${key}`);
    if (s.contexts.indexOf(context) < 0) throw new RangeError(`${context}: property ${key} not allowed here`);
  }
  if (record.authenticationData !== undefined && record.authenticationMethod === undefined) throw new RangeError(`${context}: authentication data without an authentication method`);
  for (const s of PROPERTY_TABLE) {
    const value = record[s.key];
    if (value === undefined) continue;
    const what = `${context} property ${s.key}`;
    const many = s.type === 'pair' || s.key === 'subscriptionIdentifiers';
    const values = many ? value : [value];
    if (!Array.isArray(values)) throw new TypeError(`${what}: expected an array`);
    if (many && values.length > 1 && s.repeats.indexOf(context) < 0) throw new RangeError(`${what}: at most one here`);
    for (const v of values) {
      if (s.rule !== undefined && typeof v === 'number') {
        const problem = s.rule(v);
        if (problem !== undefined) throw new RangeError(`${what} ${problem}`);
      }
      body.vbi(s.id, 'property identifier');
      switch (s.type) {
        case 'byte':
          body.u8(v as number, what);
          break;
        case 'u16':
          body.u16(v as number, what);
          break;
        case 'u32':
          body.u32(v as number, what);
          break;
        case 'vbi':
          if (typeof v === 'number' && v > VBI_MAX) throw new RangeError(`${what}: above ${VBI_MAX}`);
          body.vbi(v as number, what);
          break;
        case 'utf8':
          body.utf8(v as string, what);
          break;
        case 'binary':
          body.binary(v as Uint8Array, what);
          break;
        case 'pair': {
          const pair = v as [string, string];
          if (!Array.isArray(pair) || pair.length !== 2) throw new TypeError(`${what}: expected [name, value]`);
          body.utf8(pair[0], `${what} name`);
          body.utf8(pair[1], `${what} value`);
          break;
        }
      }
    }
  }
  writer.vbi(body.length, `${context} property length`);
  writer.raw(body.bytes(), `${context} properties`);
}
