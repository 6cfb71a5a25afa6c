/**
 * Node-only helpers for the MQTT codec's property tests: fast-check
 * arbitraries for every supported packet in holdfast's representation, and
 * the mapping to and from mqtt-packet 9.0.2's (the oracle). The
 * representation differences, normalized here, are listed in
 * docs/spec/mqtt-codec.md ("Oracle differences").
 */
import fc from 'fast-check';
import type { MqttPacket, MqttProperties, MqttVersion, Subscription, WillMessage } from '../../firmware/protocol/mqtt/index.ts';
import { CONNACK_REASONS_V5, CONNACK_RETURN_CODES_V4, DISCONNECT_REASONS, PUBACK_REASONS, SUBACK_REASONS_V5, SUBACK_RETURN_CODES_V4, UNSUBACK_REASONS } from '../../firmware/protocol/mqtt/reason-codes.ts';
import { topicFilterProblem } from '../../firmware/protocol/mqtt/topics.ts';

// ---------------------------------------------------------------- arbitraries

/** Any MQTT string: valid code points (no lone surrogates), no U+0000. */
const text = (maxLength = 12) => fc.string({ unit: 'binary', maxLength }).filter((s) => !s.includes('\u0000'));
/** User property names that are not Object.prototype members (mqtt-packet keys an object by them). */
const propName = text(8).filter((s) => !(s in Object.prototype));
const bytes = (maxLength = 24) => fc.uint8Array({ maxLength });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const bit = fc.constantFrom(0, 1);
const packetId = fc.integer({ min: 1, max: 0xffff });
const qos = fc.constantFrom<0 | 1 | 2>(0, 1, 2);
const subId = fc.integer({ min: 1, max: 268_435_455 });

const level = text(6).filter((s) => !s.includes('+') && !s.includes('#') && !s.includes('/'));
export const topicName = fc.array(level, { minLength: 1, maxLength: 4 }).map((l) => l.join('/')).filter((t) => t.length > 0);
export const topicFilter = fc
  .tuple(fc.array(fc.oneof(level, fc.constant('+')), { minLength: 1, maxLength: 4 }), fc.boolean())
  .map(([levels, hash]) => [...levels, ...(hash ? ['#'] : [])].join('/'))
  .filter((f) => topicFilterProblem(f) === undefined);

/**
 * User properties, repeated names included. mqtt-packet's parser drops a
 * value that follows an empty one under the same name (it tests the first
 * value for truthiness), so an empty value is only generated for a name that
 * does not repeat.
 */
const userProperties = fc
  .array(fc.tuple(propName, text(8)), { maxLength: 3 })
  .filter((pairs) => pairs.every(([name, value]) => value !== '' || pairs.filter((p) => p[0] === name).length === 1));

/** A property block for `keys`, each present or not. */
function props(fields: Partial<Record<keyof MqttProperties, fc.Arbitrary<unknown>>>): fc.Arbitrary<MqttProperties> {
  return fc.record(fields as Record<string, fc.Arbitrary<unknown>>, { requiredKeys: [] }) as fc.Arbitrary<MqttProperties>;
}

const none = fc.constant<MqttProperties>({});

function versionProps(version: MqttVersion, fields: Parameters<typeof props>[0]): fc.Arbitrary<MqttProperties> {
  return version === 5 ? props({ ...fields, userProperties }) : none;
}

const authPair = fc.option(fc.tuple(text(8), fc.option(bytes(8), { nil: undefined })), { nil: undefined });

function connect(version: MqttVersion): fc.Arbitrary<MqttPacket> {
  const will: fc.Arbitrary<WillMessage> = fc.record({
    topic: topicName,
    payload: bytes(),
    qos,
    retain: fc.boolean(),
    properties: versionProps(version, {
      payloadFormatIndicator: fc.constant(0),
      messageExpiryInterval: u32,
      contentType: text(),
      responseTopic: topicName,
      correlationData: bytes(8),
      willDelayInterval: u32,
    }),
  });
  return fc
    .record({
      clientId: text(),
      keepAlive: u16,
      cleanStart: fc.boolean(),
      username: fc.option(text(), { nil: undefined }),
      password: fc.option(bytes(8), { nil: undefined }),
      will: fc.option(will, { nil: undefined }),
      properties: versionProps(version, {
        sessionExpiryInterval: u32,
        receiveMaximum: fc.integer({ min: 1, max: 0xffff }),
        maximumPacketSize: fc.integer({ min: 1, max: 0xffff_ffff }),
        topicAliasMaximum: u16,
        requestResponseInformation: bit,
        requestProblemInformation: bit,
      }),
      auth: version === 5 ? authPair : fc.constant(undefined),
    })
    .map(({ auth, ...p }) => {
      const packet = { type: 'connect' as const, protocolVersion: version, ...p };
      // 3.1.1 needs a user name with a password [MQTT-3.1.2-22]; mqtt-packet also refuses it in MQTT 5, which allows it (§3.1.2.9).
      if (packet.password !== undefined && packet.username === undefined) packet.username = 'u';
      // 3.1.1 requires Clean Session with an empty client id [MQTT-3.1.3-7]; mqtt-packet also refuses it in MQTT 5, which allows it.
      if (packet.clientId === '') packet.cleanStart = true;
      if (auth !== undefined) packet.properties = { ...packet.properties, authenticationMethod: auth[0], ...(auth[1] ? { authenticationData: auth[1] } : {}) };
      return stripUndefined(packet) as MqttPacket;
    });
}

function connack(version: MqttVersion): fc.Arbitrary<MqttPacket> {
  return fc
    .record({
      sessionPresent: fc.boolean(),
      reasonCode: fc.constantFrom(...(version === 5 ? CONNACK_REASONS_V5 : CONNACK_RETURN_CODES_V4)),
      properties: versionProps(version, {
        sessionExpiryInterval: u32,
        assignedClientIdentifier: text(),
        serverKeepAlive: u16,
        responseInformation: text(),
        serverReference: text(),
        reasonString: text(),
        receiveMaximum: fc.integer({ min: 1, max: 0xffff }),
        topicAliasMaximum: u16,
        maximumQoS: bit,
        retainAvailable: bit,
        maximumPacketSize: fc.integer({ min: 1, max: 0xffff_ffff }),
        wildcardSubscriptionAvailable: bit,
        subscriptionIdentifiersAvailable: bit,
        sharedSubscriptionAvailable: bit,
      }),
      auth: version === 5 ? authPair : fc.constant(undefined),
    })
    .map(({ auth, ...p }) => {
      const packet = { type: 'connack' as const, ...p, sessionPresent: p.reasonCode === 0 && p.sessionPresent };
      if (auth !== undefined) packet.properties = { ...packet.properties, authenticationMethod: auth[0], ...(auth[1] ? { authenticationData: auth[1] } : {}) };
      return packet;
    });
}

function publish(version: MqttVersion): fc.Arbitrary<MqttPacket> {
  return fc
    .record({
      topic: topicName,
      payload: bytes(40),
      qos,
      retain: fc.boolean(),
      dup: fc.boolean(),
      packetId,
      properties: versionProps(version, {
        payloadFormatIndicator: fc.constant(0),
        messageExpiryInterval: u32,
        contentType: text(),
        responseTopic: topicName,
        correlationData: bytes(8),
        subscriptionIdentifiers: fc.array(subId, { minLength: 1, maxLength: 3 }),
        topicAlias: fc.integer({ min: 1, max: 0xffff }),
      }),
    })
    .chain((p) =>
      // Payload Format Indicator 1 needs a UTF-8 payload (§3.3.2.3.2).
      version === 5 && p.properties.payloadFormatIndicator === 0
        ? fc.option(text(20), { nil: undefined }).map((t) => (t === undefined ? p : { ...p, payload: new TextEncoder().encode(t), properties: { ...p.properties, payloadFormatIndicator: 1 } }))
        : fc.constant(p),
    )
    .map(({ packetId: id, ...p }) => stripUndefined({ type: 'publish' as const, ...p, dup: p.qos > 0 && p.dup, packetId: p.qos > 0 ? id : undefined }) as MqttPacket);
}

function puback(version: MqttVersion): fc.Arbitrary<MqttPacket> {
  return fc.record({
    type: fc.constant('puback' as const),
    packetId,
    reasonCode: version === 5 ? fc.constantFrom(...PUBACK_REASONS) : fc.constant(0),
    properties: versionProps(version, { reasonString: text() }),
  });
}

function subscribe(version: MqttVersion): fc.Arbitrary<MqttPacket> {
  const subscription: fc.Arbitrary<Subscription> = fc.record({
    topicFilter,
    qos,
    noLocal: version === 5 ? fc.boolean() : fc.constant(false),
    retainAsPublished: version === 5 ? fc.boolean() : fc.constant(false),
    retainHandling: version === 5 ? fc.constantFrom<0 | 1 | 2>(0, 1, 2) : fc.constant<0>(0),
  });
  return fc.record({
    type: fc.constant('subscribe' as const),
    packetId,
    subscriptions: fc.array(subscription, { minLength: 1, maxLength: 4 }),
    properties: versionProps(version, { subscriptionIdentifiers: fc.array(subId, { minLength: 1, maxLength: 1 }) }),
  });
}

function suback(version: MqttVersion): fc.Arbitrary<MqttPacket> {
  return fc.record({
    type: fc.constant('suback' as const),
    packetId,
    reasonCodes: fc.array(fc.constantFrom(...(version === 5 ? SUBACK_REASONS_V5 : SUBACK_RETURN_CODES_V4)), { minLength: 1, maxLength: 5 }),
    properties: versionProps(version, { reasonString: text() }),
  });
}

function unsubscribe(version: MqttVersion): fc.Arbitrary<MqttPacket> {
  return fc.record({
    type: fc.constant('unsubscribe' as const),
    packetId,
    topicFilters: fc.array(topicFilter, { minLength: 1, maxLength: 4 }),
    properties: versionProps(version, {}),
  });
}

function unsuback(version: MqttVersion): fc.Arbitrary<MqttPacket> {
  return fc.record({
    type: fc.constant('unsuback' as const),
    packetId,
    reasonCodes: version === 5 ? fc.array(fc.constantFrom(...UNSUBACK_REASONS), { minLength: 1, maxLength: 5 }) : fc.constant<number[]>([]),
    properties: versionProps(version, { reasonString: text() }),
  });
}

function disconnect(version: MqttVersion): fc.Arbitrary<MqttPacket> {
  return fc.record({
    type: fc.constant('disconnect' as const),
    reasonCode: version === 5 ? fc.constantFrom(...DISCONNECT_REASONS) : fc.constant(0),
    properties: versionProps(version, { sessionExpiryInterval: u32, reasonString: text(), serverReference: text() }),
  });
}

export const PACKET_KINDS = ['connect', 'connack', 'publish', 'puback', 'subscribe', 'suback', 'unsubscribe', 'unsuback', 'pingreq', 'pingresp', 'disconnect'] as const;
export type PacketKind = (typeof PACKET_KINDS)[number];

export function packetArbitrary(kind: PacketKind, version: MqttVersion): fc.Arbitrary<MqttPacket> {
  switch (kind) {
    case 'connect':
      return connect(version);
    case 'connack':
      return connack(version);
    case 'publish':
      return publish(version);
    case 'puback':
      return puback(version);
    case 'subscribe':
      return subscribe(version);
    case 'suback':
      return suback(version);
    case 'unsubscribe':
      return unsubscribe(version);
    case 'unsuback':
      return unsuback(version);
    case 'pingreq':
      return fc.constant({ type: 'pingreq' as const });
    case 'pingresp':
      return fc.constant({ type: 'pingresp' as const });
    case 'disconnect':
      return disconnect(version);
  }
}

export function anyPacket(version: MqttVersion): fc.Arbitrary<MqttPacket> {
  return fc.oneof(...PACKET_KINDS.map((k) => packetArbitrary(k, version)));
}

function stripUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

// ---------------------------------------------------------------- normal form

/**
 * A comparable form of a holdfast packet: bytes as number arrays, user
 * properties ordered by name (mqtt-packet keeps an object keyed by name, so
 * the interleaving of different names is lost; the order of one name's
 * values is kept), no empty property objects, and the defaults a 3.1.1 or
 * short-form packet implies made explicit.
 */
export function normalize(packet: MqttPacket): unknown {
  return JSON.parse(
    JSON.stringify(packet, (key, value: unknown) => {
      if (value instanceof Uint8Array) return { bytes: Array.from(value) };
      if (key === 'userProperties' && Array.isArray(value) && value.length === 0) return undefined;
      if (key === 'userProperties' && Array.isArray(value)) {
        const pairs = value as [string, string][];
        return pairs.map((p, i) => ({ p, i })).sort((a, b) => (a.p[0] < b.p[0] ? -1 : a.p[0] > b.p[0] ? 1 : a.i - b.i)).map(({ p }) => p);
      }
      return value;
    }),
  );
}

// ---------------------------------------------------------------- mqtt-packet mapping

type OracleObject = Record<string, unknown>;

const BOOLEAN_PROPS = new Set(['payloadFormatIndicator', 'requestProblemInformation', 'requestResponseInformation', 'retainAvailable', 'wildcardSubscriptionAvailable', 'subscriptionIdentifiersAvailable', 'sharedSubscriptionAvailable']);

function propsToOracle(p: MqttProperties | undefined): OracleObject | undefined {
  if (!p) return undefined;
  const out: OracleObject = {};
  for (const [key, value] of Object.entries(p)) {
    if (value === undefined) continue;
    if (BOOLEAN_PROPS.has(key)) out[key] = value === 1;
    else if (key === 'subscriptionIdentifiers') out.subscriptionIdentifier = (value as number[]).length === 1 ? (value as number[])[0] : value;
    else if (key === 'userProperties') {
      const pairs = value as [string, string][];
      if (pairs.length === 0) continue;
      const grouped: Record<string, string | string[]> = {};
      for (const [name, v] of pairs) {
        const previous = grouped[name];
        grouped[name] = previous === undefined ? v : Array.isArray(previous) ? [...previous, v] : [previous, v];
      }
      out.userProperties = grouped;
    } else if (value instanceof Uint8Array) out[key] = Buffer.from(value);
    else out[key] = value;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

function propsFromOracle(p: unknown): MqttProperties {
  const out: Record<string, unknown> = {};
  if (!p) return out;
  for (const [key, value] of Object.entries(p as OracleObject)) {
    if (BOOLEAN_PROPS.has(key)) out[key] = value ? 1 : 0;
    else if (key === 'subscriptionIdentifier') out.subscriptionIdentifiers = Array.isArray(value) ? value : [value];
    else if (key === 'userProperties') {
      const pairs: [string, string][] = [];
      for (const [name, v] of Object.entries(value as Record<string, string | string[]>)) for (const one of Array.isArray(v) ? v : [v]) pairs.push([name, one]);
      out.userProperties = pairs;
    } else if (Buffer.isBuffer(value)) out[key] = new Uint8Array(value);
    else out[key] = value;
  }
  return out;
}

/** A holdfast packet as mqtt-packet's generate() takes it. */
export function toOracle(packet: MqttPacket, version: MqttVersion): OracleObject {
  switch (packet.type) {
    case 'connect':
      return {
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: version,
        clean: packet.cleanStart,
        keepalive: packet.keepAlive,
        clientId: packet.clientId,
        ...(packet.username !== undefined ? { username: packet.username } : {}),
        ...(packet.password !== undefined ? { password: Buffer.from(packet.password) } : {}),
        ...(packet.will
          ? { will: { topic: packet.will.topic, payload: Buffer.from(packet.will.payload), qos: packet.will.qos, retain: packet.will.retain, properties: propsToOracle(packet.will.properties) } }
          : {}),
        properties: propsToOracle(packet.properties),
      };
    case 'connack':
      return { cmd: 'connack', sessionPresent: packet.sessionPresent, ...(version === 5 ? { reasonCode: packet.reasonCode } : { returnCode: packet.reasonCode }), properties: propsToOracle(packet.properties) };
    case 'publish':
      return {
        cmd: 'publish',
        topic: packet.topic,
        payload: Buffer.from(packet.payload),
        qos: packet.qos,
        retain: packet.retain,
        dup: packet.dup,
        ...(packet.packetId !== undefined ? { messageId: packet.packetId } : {}),
        properties: propsToOracle(packet.properties),
      };
    case 'puback':
      return { cmd: 'puback', messageId: packet.packetId, reasonCode: packet.reasonCode, properties: propsToOracle(packet.properties) };
    case 'subscribe':
      return {
        cmd: 'subscribe',
        messageId: packet.packetId,
        subscriptions: packet.subscriptions.map((s) =>
          version === 5 ? { topic: s.topicFilter, qos: s.qos, nl: s.noLocal, rap: s.retainAsPublished, rh: s.retainHandling } : { topic: s.topicFilter, qos: s.qos },
        ),
        properties: propsToOracle(packet.properties),
      };
    case 'suback':
      return { cmd: 'suback', messageId: packet.packetId, granted: packet.reasonCodes, properties: propsToOracle(packet.properties) };
    case 'unsubscribe':
      return { cmd: 'unsubscribe', messageId: packet.packetId, unsubscriptions: packet.topicFilters, properties: propsToOracle(packet.properties) };
    case 'unsuback':
      return { cmd: 'unsuback', messageId: packet.packetId, ...(version === 5 ? { granted: packet.reasonCodes } : {}), properties: propsToOracle(packet.properties) };
    case 'pingreq':
    case 'pingresp':
      return { cmd: packet.type };
    case 'disconnect':
      return { cmd: 'disconnect', reasonCode: packet.reasonCode, properties: propsToOracle(packet.properties) };
  }
}

/** What mqtt-packet's parser emitted, in holdfast's representation (3.1.1 defaults filled in). */
export function fromOracle(o: OracleObject, version: MqttVersion): MqttPacket {
  const properties = propsFromOracle(o.properties);
  switch (o.cmd) {
    case 'connect': {
      const w = o.will as OracleObject | undefined;
      const packet: MqttPacket = { type: 'connect', protocolVersion: o.protocolVersion as MqttVersion, clientId: o.clientId as string, keepAlive: o.keepalive as number, cleanStart: o.clean as boolean, properties };
      if (w) packet.will = { topic: w.topic as string, payload: new Uint8Array(w.payload as Buffer), qos: w.qos as 0 | 1 | 2, retain: w.retain as boolean, properties: propsFromOracle(w.properties) };
      if (o.username !== undefined) packet.username = o.username as string;
      if (o.password !== undefined) packet.password = new Uint8Array(o.password as Buffer);
      return packet;
    }
    case 'connack':
      return { type: 'connack', sessionPresent: o.sessionPresent as boolean, reasonCode: (version === 5 ? o.reasonCode : o.returnCode) as number, properties };
    case 'publish': {
      const packet: MqttPacket = { type: 'publish', topic: o.topic as string, payload: new Uint8Array(o.payload as Buffer), qos: o.qos as 0 | 1 | 2, retain: o.retain as boolean, dup: o.dup as boolean, properties };
      if ((o.qos as number) > 0) packet.packetId = o.messageId as number;
      return packet;
    }
    case 'puback':
      return { type: 'puback', packetId: o.messageId as number, reasonCode: (o.reasonCode as number | undefined) ?? 0, properties };
    case 'subscribe':
      return {
        type: 'subscribe',
        packetId: o.messageId as number,
        subscriptions: (o.subscriptions as OracleObject[]).map((s) => ({
          topicFilter: s.topic as string,
          qos: s.qos as 0 | 1 | 2,
          noLocal: Boolean(s.nl),
          retainAsPublished: Boolean(s.rap),
          retainHandling: ((s.rh as number | undefined) ?? 0) as 0 | 1 | 2,
        })),
        properties,
      };
    case 'suback':
      return { type: 'suback', packetId: o.messageId as number, reasonCodes: o.granted as number[], properties };
    case 'unsubscribe':
      return { type: 'unsubscribe', packetId: o.messageId as number, topicFilters: o.unsubscriptions as string[], properties };
    case 'unsuback':
      return { type: 'unsuback', packetId: o.messageId as number, reasonCodes: version === 5 ? ((o.granted as number[] | undefined) ?? []) : [], properties };
    case 'pingreq':
    case 'pingresp':
      return { type: o.cmd };
    case 'disconnect':
      return { type: 'disconnect', reasonCode: (o.reasonCode as number | undefined) ?? 0, properties };
    default:
      throw new Error(`oracle emitted ${String(o.cmd)}`);
  }
}
