/**
 * Sealed telemetry on the wire and in XS (docs/spec/telemetry.md, issue 17):
 * the bytes a record costs on the wire beyond its payload, measured on the
 * real encoded PUBLISH (holdfast's codec) carrying a real sealed envelope;
 * the XS compute and heap of seal + encode per record; and the XS heap of
 * the whole device path (SealedOutbox, OutboxSource, MqttSession) at a
 * backlog of 100 and of 10,000 records.
 */
import { createNobleCrypto } from '../firmware/security/noble-crypto.ts';
import { envelopePrimitives } from '../firmware/security/envelope-primitives.ts';
import { deriveDeviceKeys } from '../firmware/security/envelope-keys.ts';
import { sealWithCounter } from '../firmware/security/envelope.ts';
import { ENVELOPE_MAX_OVERHEAD, envelopeHeaderLength, envelopeOverhead, EnvelopeSuite, TELEMETRY_SUITES, type TelemetrySuite } from '../firmware/security/envelope-format.ts';
import { encodePacket, type MqttProperties, type MqttVersion } from '../firmware/protocol/mqtt/index.ts';
import type { BenchGroup, Figure } from './figures.ts';
import { openGuest } from './xs-guest.ts';

const PAYLOAD = 64;
const DEVICE_ID = Uint8Array.of(0xd1, 0, 0, 0, 0, 0, 0, 0x0a);
/**
 * The topic a device publishes telemetry to: holdfast/<device id>/telemetry
 * (tools/net/common.ts TOPIC_ROOT and the brokers' ACLs), the 8-byte device
 * id as 16 hex digits: 35 bytes.
 */
export const DEVICE_TOPIC = `holdfast/${hexId(DEVICE_ID)}/telemetry`;
const WIRE_TARGET = '≤ 40';
const WIRE_LIMIT = 40;
/** The key id of the wire cases: a device's key generation, below 128 (one LEB128 byte) for its first 127 rotations. */
const KEY_ID = 1;
/**
 * A realistic counter: 10^6 (a record a minute for about two years; less
 * with reboot skips): 3 LEB128 bytes. The worst case, 2^53 - 1, takes 8.
 */
const COUNTER_TYPICAL = 1_000_000;
const COUNTER_MAX = Number.MAX_SAFE_INTEGER;

function hexId(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16);
  return out;
}

interface WireCase {
  key: string;
  topic: string;
  version: MqttVersion;
  properties: MqttProperties;
  counter: number;
  label: string;
  /** Only the steady state a device's session sends has the target; the others are informational (why: in the label). */
  target: boolean;
}

/**
 * Bytes of the encoded QoS 1 PUBLISH carrying the sealed envelope (key id
 * `keyId`, counter `counter`) of a `payloadLength`-byte payload, minus that
 * payload: fixed header, topic, packet id, properties and the envelope's
 * header and tag (envelopeOverhead(keyId, counter): 20..31 bytes).
 */
export function wireOverhead(topic: string, version: MqttVersion, properties: MqttProperties, payloadLength: number, counter = COUNTER_TYPICAL, keyId = KEY_ID): number {
  const crypto = createNobleCrypto();
  const keys = deriveDeviceKeys(crypto, new Uint8Array(32).fill(0x11), DEVICE_ID, keyId);
  const payload = new Uint8Array(payloadLength).fill(0x42);
  const envelope = sealWithCounter(envelopePrimitives(crypto), keys, EnvelopeSuite.hmacSha256, counter, payload);
  if (envelope.length !== payloadLength + envelopeOverhead(keyId, counter)) throw new Error(`envelope of ${envelope.length} bytes for ${payloadLength}`);
  const packet = encodePacket({ type: 'publish', topic, payload: envelope, qos: 1, retain: false, dup: false, packetId: 1, properties }, { protocolVersion: version });
  return packet.length - payloadLength;
}

const WIRE_CASES: readonly WireCase[] = [
  {
    key: 'topicAlias',
    topic: '',
    version: 5,
    properties: { topicAlias: 1 },
    counter: COUNTER_TYPICAL,
    label: `MQTT 5 PUBLISH with a Topic Alias and an empty topic (every PUBLISH after the first on a connection: the steady state), key id ${KEY_ID}, counter 10^6 (3-byte varint). 10 bytes of MQTT 5 QoS 1 framing + ${envelopeOverhead(KEY_ID, COUNTER_TYPICAL)} of envelope`,
    target: true,
  },
  {
    key: 'topicAlias.counterMax',
    topic: '',
    version: 5,
    properties: { topicAlias: 1 },
    counter: COUNTER_MAX,
    label: `the same at the largest counter, 2^53 - 1 (8-byte varint), key id ${KEY_ID}: 10 + ${envelopeOverhead(KEY_ID, COUNTER_MAX)}`,
    target: true,
  },
  {
    key: 'deviceTopic',
    topic: DEVICE_TOPIC,
    version: 5,
    properties: {},
    counter: COUNTER_TYPICAL,
    label: `MQTT 5 PUBLISH to ${DEVICE_TOPIC} (35 bytes, the topic the brokers' ACLs give a device), counter 10^6. Informational, no target: sent once per connection (the PUBLISH that sets the alias), amortised over the connection's records`,
    target: false,
  },
  {
    key: 'oneByteTopic',
    topic: 't',
    version: 5,
    properties: {},
    counter: COUNTER_TYPICAL,
    label: 'MQTT 5 PUBLISH to a 1-byte topic, counter 10^6. Informational, no target: needs a broker ACL by client id (the ingest takes the device id from the holdfast/<id>/ topic)',
    target: false,
  },
  {
    key: 'mqtt311.oneByteTopic',
    topic: 't',
    version: 4,
    properties: {},
    counter: COUNTER_TYPICAL,
    label: 'MQTT 3.1.1 PUBLISH to a 1-byte topic (no properties byte: 7 bytes of framing), counter 10^6. Informational, no target: MQTT 3.1.1 has no topic aliases, so a real device sends its full topic every time',
    target: false,
  },
];

export const envelopeBench: BenchGroup = {
  title: 'Sealed telemetry: wire bytes and XS cost',
  prefix: 'envelope.',
  workload:
    `Wire: the QoS 1 PUBLISH holdfast's codec encodes for one ${PAYLOAD}-byte payload sealed in envelope format 2 (hmac-sha256; every telemetry suite has the same overhead; key id ${KEY_ID}, counter 10^6 unless stated), ` +
    'minus the payload: fixed header, remaining length, topic, packet id, properties (MQTT 5) and the envelope (header with varint key id and counter, 16-byte tag; the device id is not sent). ' +
    'The ≤ 40 target applies to the steady state (topic alias); the first PUBLISH of a connection and MQTT 3.1.1 are informational. ' +
    `XS: compute per record for seal (persistent counter on the Node side, default K) + PUBLISH encode of a ${PAYLOAD}-byte payload, the difference between a batch of 1,000 and a batch of 100 records over 900, per suite, ` +
    'and live heap slots after gc at both points; then the device path (SealedOutbox on its counter and outbox partitions, OutboxSource, MqttSession with 20 PUBLISHes held unacknowledged by the broker) ' +
    'at a backlog of 100 and of 10,000 sealed records.',
  async run(progress) {
    const figures: Figure[] = [];
    figures.push(
      {
        name: 'envelope.wire.envelopeBytes',
        value: envelopeOverhead(KEY_ID, COUNTER_TYPICAL),
        unit: 'bytes',
        label: `envelope bytes beyond the payload at key id ${KEY_ID}, counter 10^6 (${envelopeHeaderLength(KEY_ID, COUNTER_TYPICAL)}-byte header + 16-byte tag), any telemetry suite`,
        kind: 'count',
      },
      {
        name: 'envelope.wire.envelopeBytesMax',
        value: ENVELOPE_MAX_OVERHEAD,
        unit: 'bytes',
        label: 'largest envelope bytes beyond the payload, key id 2^32 - 1 and counter 2^53 - 1 (15-byte header + 16-byte tag): what buffers and outbox records are sized for',
        kind: 'count',
      },
    );
    for (const c of WIRE_CASES) {
      const value = wireOverhead(c.topic, c.version, c.properties, PAYLOAD, c.counter);
      const base = { name: `envelope.wire.overhead.${c.key}`, value, unit: 'bytes', label: `wire bytes per record beyond a ${PAYLOAD}-byte payload, envelope included: ${c.label}`, kind: 'count' as const };
      figures.push(
        c.target
          ? { ...base, target: WIRE_TARGET, limit: WIRE_LIMIT, direction: 'max' as const, anchor: 'coreMQTT / any MQTT 5 client: the same 10 bytes of framing with a topic alias' }
          : base,
      );
    }
    progress('  envelope: seal + encode in XS');
    figures.push(...(await xsSealFigures()));
    progress('  envelope: device path at backlog 100 and 10,000 in XS');
    figures.push(...(await xsBacklogFigures()));
    return figures;
  },
};

const SUITE_KEY: Record<TelemetrySuite, string> = {
  [EnvelopeSuite.hmacSha256]: 'hmacSha256',
  [EnvelopeSuite.chacha20Poly1305]: 'chacha20Poly1305',
  [EnvelopeSuite.aes256Gcm]: 'aes256Gcm',
} as Record<TelemetrySuite, string>;

async function xsSealFigures(): Promise<Figure[]> {
  const figures: Figure[] = [];
  for (const suite of TELEMETRY_SUITES) {
    const guest = await openGuest('bench/envelope-guest.ts', 'serveEnvelopeBench');
    try {
      guest.call({ op: 'sealer', suite, topic: DEVICE_TOPIC });
      const c100 = guest.call({ op: 'seal', count: 100 }).meter.compute;
      const h100 = guest.call({ op: 'heap' }).meter.currentHeapCount;
      const c1100 = guest.call({ op: 'seal', count: 1_000 }).meter.compute;
      const h1100 = guest.call({ op: 'heap' }).meter.currentHeapCount;
      // The 100-record batch and the 1,000-record batch: the per-record cost is their difference over 900.
      const perRecord = Math.round((c1100 - c100) / 900);
      const key = SUITE_KEY[suite];
      figures.push(
        { name: `envelope.xs.computePerRecord.${key}`, value: perRecord, unit: 'compute', label: `XS compute per record, seal (${key}) + PUBLISH encode, ${PAYLOAD}-byte payload, topic ${DEVICE_TOPIC}`, kind: 'count', anchor: 'envelope.md "Costs": seal of 32 bytes ≈ 142,000 (HMAC), 52,000 (ChaCha20-Poly1305), 173,000 (AES-256-GCM)' },
        {
          name: `envelope.xs.heapSlotsPerRecord.${key}`,
          value: Number(((h1100 - h100) / 1_000).toFixed(3)),
          unit: 'slots',
          label: `XS live heap slots retained per record after gc (${key}), ${h100.toLocaleString('en-US')} after 100 records, ${h1100.toLocaleString('en-US')} after 1,100`,
          kind: 'count',
          target: '= 0 (nothing kept per record)',
          limit: 0,
          direction: 'max',
        },
      );
    } finally {
      guest.close();
    }
  }
  return figures;
}

async function xsBacklogFigures(): Promise<Figure[]> {
  const guest = await openGuest('bench/envelope-guest.ts', 'serveEnvelopeBench');
  try {
    // 10,000 sealed 64-byte records are 101-byte outbox records (107 bytes in flash): 300 sectors of 4 KiB hold them without a drop.
    guest.call({ op: 'device', suite: EnvelopeSuite.hmacSha256, topic: DEVICE_TOPIC, outboxBlocks: 300, receiveMaximum: 20 });
    const a100 = guest.call({ op: 'append', count: 100 });
    if (a100.reply.queued !== 100 || a100.reply.inFlight !== 20) throw new Error(`backlog 100: ${JSON.stringify(a100.reply)}`);
    const heap100 = guest.call({ op: 'heap' }).meter.currentHeapCount;
    const a10000 = guest.call({ op: 'append', count: 9_900 });
    if (a10000.reply.queued !== 10_000 || a10000.reply.inFlight !== 20) throw new Error(`backlog 10,000: ${JSON.stringify(a10000.reply)}`);
    const heap10000 = guest.call({ op: 'heap' }).meter.currentHeapCount;
    return [
      { name: 'envelope.xs.computePerSealedAppend', value: Math.round(a10000.meter.compute / 9_900), unit: 'compute', label: `XS compute per SealedOutbox.append of a ${PAYLOAD}-byte payload (hmac-sha256 seal + durable outbox append, flash on the Node side), over 9,900 appends`, kind: 'count' },
      { name: 'envelope.xs.heap.backlog100', value: heap100, unit: 'slots', label: 'XS live heap slots (after gc), device path with 100 sealed records queued and 20 in flight', kind: 'count' },
      { name: 'envelope.xs.heap.backlog10000', value: heap10000, unit: 'slots', label: 'XS live heap slots (after gc), the same with 10,000 queued: flat in backlog size', kind: 'count', target: `= backlog100 (${heap100.toLocaleString('en-US')})`, limit: heap100, direction: 'max' },
    ];
  } finally {
    guest.close();
  }
}
