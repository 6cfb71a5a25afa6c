/**
 * Draining a backlog into a real broker (docs/design/mqtt-client.md):
 * 10,000 records of 64 bytes, QoS 1, into Debian's mosquitto over loopback
 * (Receive Maximum 20 from max_inflight_messages, no subscriber: PUBACK
 * 0x10 counts as delivered). Holdfast's firmware client (Node engine,
 * node:net through tools/net/node-stream.ts) drains the real Outbox on
 * SimFlash; the `mqtt` npm client (5.16.0) publishes the same payloads from
 * RAM. Both are timed from the start of the connection to the last PUBACK,
 * alternately, ROUNDS times each in one run; the median of each is
 * reported, and their ratio (timings only compare within one run on this
 * shared machine).
 *
 * Peak in flight: holdfast's from its session's own count (bounded by the
 * broker's Receive Maximum by construction); mqtt.js's counted from its
 * 'packetsend'/'packetreceive' events: it ignores Receive Maximum (DESIGN §4).
 */
import mqtt from 'mqtt';
import { findMosquitto, findMosquittoPasswd, sleep } from '../tools/net/common.ts';
import { startMosquitto, type MosquittoBroker } from '../tools/net/mosquitto.ts';
import { NodeStreamConnector, nodeClock, nodeEntropy, runClient } from '../tools/net/node-stream.ts';
import { SimFlash } from '../tools/sim/flash/sim-flash.ts';
import { Outbox } from '../firmware/storage/outbox.ts';
import { OutboxSource } from '../firmware/protocol/mqtt-session/index.ts';
import { MqttClient } from '../firmware/protocol/mqtt-client/index.ts';
import type { BenchGroup, Figure } from './figures.ts';

export const DRAIN_RECORDS = 10_000;
const PAYLOAD_BYTES = 64;
const RECEIVE_MAXIMUM = 20;
const ROUNDS = 5;
const DEVICE = 'bench-dev';
const PASSWORD = 'pw-bench-dev';
const TOPIC = `holdfast/${DEVICE}/telemetry`;
const TIMEOUT_MS = 120_000;

export interface DrainRun {
  records: number;
  ms: number;
  peakInFlight: number;
}

function payloads(): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < DRAIN_RECORDS; i++) out.push(new TextEncoder().encode(`${DEVICE}:${String(i).padStart(6, '0')}:`.padEnd(PAYLOAD_BYTES, 'x')));
  return out;
}

/** Holdfast's client drains an outbox of the payloads (appended before the clock starts). */
export async function drainHoldfast(broker: MosquittoBroker, data: readonly Uint8Array[], clientId: string): Promise<DrainRun> {
  const flash = new SimFlash({ blocks: 320, blockLength: 4096 });
  Outbox.format(flash);
  const outbox = Outbox.open(flash);
  for (const p of data) outbox.append(p);
  const connector = new NodeStreamConnector();
  const lastSeq = outbox.stats().ackSeq + data.length - 1;
  let settle: (error?: Error) => void = () => {};
  const done = new Promise<void>((resolve, reject) => {
    settle = (error) => (error ? reject(error) : resolve());
  });
  const client = new MqttClient(
    {
      host: broker.host,
      port: broker.port,
      session: {
        protocolVersion: 5, clientId, topic: TOPIC, keepAliveSec: 60, sessionExpirySec: 0, maximumPacketSize: 4096,
        maxInFlight: 64, responseTimeoutMs: 10_000, startSeq: outbox.stats().ackSeq, username: DEVICE, password: new TextEncoder().encode(PASSWORD),
      },
      backoff: { baseMs: 50, capMs: 1000 },
    },
    {
      connector, clock: nodeClock, entropy: nodeEntropy, source: new OutboxSource(outbox),
      onEvent: (e) => {
        if (e.kind === 'delivered' && e.uptoSeq === lastSeq) settle();
        else if (e.kind === 'refused' || e.kind === 'protocol-error' || (e.kind === 'closed' && e.cause !== 'stopped')) settle(new Error(`holdfast drain failed: ${JSON.stringify(e)}`));
      },
    },
  );
  const timer = setTimeout(() => settle(new Error(`holdfast drain timed out at ${outbox.stats().ackSeq}`)), TIMEOUT_MS);
  const started = performance.now();
  const stop = runClient(client, 20);
  client.start();
  try {
    await done;
    const ms = performance.now() - started;
    if (outbox.stats().queued !== 0) throw new Error(`outbox not empty: ${outbox.stats().queued}`);
    return { records: data.length, ms, peakInFlight: client.stats().peakInFlight };
  } finally {
    clearTimeout(timer);
    stop();
    client.stop();
    connector.closeAll();
  }
}

/** mqtt.js publishes the payloads at QoS 1 and waits for every PUBACK. */
export async function drainMqttJs(broker: MosquittoBroker, data: readonly Uint8Array[], clientId: string): Promise<DrainRun> {
  const started = performance.now();
  const client = await mqtt.connectAsync(`mqtt://${broker.host}:${broker.port}`, { clientId, username: DEVICE, password: PASSWORD, protocolVersion: 5, clean: true, reconnectPeriod: 0 });
  let inFlight = 0;
  let peak = 0;
  client.on('packetsend', (p) => {
    if (p.cmd === 'publish') {
      inFlight++;
      if (inFlight > peak) peak = inFlight;
    }
  });
  client.on('packetreceive', (p) => {
    if (p.cmd === 'puback') inFlight--;
  });
  try {
    let acked = 0;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`mqtt.js drain timed out at ${acked}`)), TIMEOUT_MS);
      for (const p of data) {
        client.publish(TOPIC, Buffer.from(p.buffer, p.byteOffset, p.length), { qos: 1 }, (error) => {
          if (error) {
            clearTimeout(timer);
            reject(error);
            return;
          }
          acked++;
          if (acked === data.length) {
            clearTimeout(timer);
            resolve();
          }
        });
      }
    });
    return { records: data.length, ms: performance.now() - started, peakInFlight: peak };
  } finally {
    await client.endAsync(true);
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

export const mqttDrainBench: BenchGroup = {
  title: 'MQTT drain to a real broker',
  prefix: 'mqtt.drain.',
  workload:
    `A backlog of ${DRAIN_RECORDS.toLocaleString('en-US')} records of ${PAYLOAD_BYTES} bytes, QoS 1, into mosquitto over loopback (max_inflight_messages ${RECEIVE_MAXIMUM}, so Receive Maximum ${RECEIVE_MAXIMUM}; no subscriber). ` +
    "Holdfast's firmware client (Node engine, node:net) drains the real Outbox on SimFlash (appended before timing); the mqtt npm client 5.16.0 publishes the same payloads from RAM. " +
    `Each is timed from connect to the last PUBACK, alternately, ${ROUNDS} rounds each in one run; medians and their ratio. ` +
    "Peak in flight: holdfast's session count; mqtt.js's from its packetsend/packetreceive events.",
  async run(progress) {
    if (!findMosquitto().ok || !findMosquittoPasswd().ok) {
      progress('  mqtt drain: mosquitto is not installed (apt-get install mosquitto): skipped');
      return [];
    }
    const broker = await startMosquitto({ devices: [{ deviceId: DEVICE, password: PASSWORD }], maxInflightMessages: RECEIVE_MAXIMUM });
    const data = payloads();
    const holdfast: DrainRun[] = [];
    const mqttjs: DrainRun[] = [];
    try {
      for (let round = 0; round < ROUNDS; round++) {
        holdfast.push(await drainHoldfast(broker, data, `${DEVICE}-h${round}`));
        progress(`  mqtt drain: holdfast round ${round + 1}: ${Math.round(holdfast[round].ms)} ms, peak in flight ${holdfast[round].peakInFlight}`);
        await sleep(50);
        mqttjs.push(await drainMqttJs(broker, data, `${DEVICE}-m${round}`));
        progress(`  mqtt drain: mqtt.js round ${round + 1}: ${Math.round(mqttjs[round].ms)} ms, peak in flight ${mqttjs[round].peakInFlight}`);
        await sleep(50);
      }
    } finally {
      await broker.stop();
    }
    const holdfastRate = DRAIN_RECORDS / (median(holdfast.map((r) => r.ms)) / 1000);
    const mqttjsRate = DRAIN_RECORDS / (median(mqttjs.map((r) => r.ms)) / 1000);
    const holdfastPeak = Math.max(...holdfast.map((r) => r.peakInFlight));
    const mqttjsPeak = Math.max(...mqttjs.map((r) => r.peakInFlight));
    const figures: Figure[] = [
      {
        name: 'mqtt.drain.ratio',
        value: Number((holdfastRate / mqttjsRate).toFixed(2)),
        unit: '×',
        label: "holdfast's drain rate over mqtt.js's, same payloads, same broker, one run",
        kind: 'timing',
        anchor: 'mqtt.js 5.16.0 publishing the same payloads at QoS 1 (measured in the same run)',
        target: '≥ 1.0',
        limit: 1,
        direction: 'min',
      },
      { name: 'mqtt.drain.holdfast.rate', value: Math.round(holdfastRate), unit: 'records/s', label: `holdfast client (Node) draining the Outbox on SimFlash, median of ${ROUNDS}`, kind: 'timing' },
      { name: 'mqtt.drain.mqttjs.rate', value: Math.round(mqttjsRate), unit: 'records/s', label: `mqtt.js 5.16.0 publishing from RAM at QoS 1, median of ${ROUNDS}`, kind: 'timing' },
      {
        name: 'mqtt.drain.holdfast.peakInFlight',
        value: holdfastPeak,
        unit: 'PUBLISHes',
        label: `most unacknowledged PUBLISHes at once, holdfast (broker's Receive Maximum ${RECEIVE_MAXIMUM})`,
        kind: 'count',
        target: `≤ Receive Maximum (${RECEIVE_MAXIMUM})`,
        limit: RECEIVE_MAXIMUM,
        direction: 'max',
      },
      { name: 'mqtt.drain.mqttjs.peakInFlight', value: mqttjsPeak, unit: 'PUBLISHes', label: `most unacknowledged PUBLISHes at once, mqtt.js (ignores Receive Maximum ${RECEIVE_MAXIMUM})`, kind: 'timing' },
      { name: 'mqtt.drain.receiveMaximum', value: RECEIVE_MAXIMUM, unit: 'PUBLISHes', label: 'Receive Maximum mosquitto announced (max_inflight_messages)', kind: 'count' },
      { name: 'mqtt.drain.records', value: DRAIN_RECORDS, unit: 'records', label: `records per drain (${PAYLOAD_BYTES}-byte payloads)`, kind: 'count' },
    ];
    return figures;
  },
};
