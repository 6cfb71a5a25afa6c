/**
 * The firmware MQTT client drains a real Outbox (on SimFlash, through
 * OutboxSource) into Debian's mosquitto (MQTT 5, Receive Maximum 5 from
 * max_inflight_messages, persistence on), and a subscriber (the `mqtt` npm
 * client, persistent session, QoS 1) receives every record:
 *
 * - in Node, over node:net (tools/net/node-stream.ts), the broker restarted
 *   once mid-drain;
 * - in XS, the client and the outbox running in the real XS engine, the
 *   sockets owned by Node through the stream bridge (tools/xs/stream-bridge.ts),
 *   the broker restarted once mid-drain there too;
 * - in Node over TLS with the device's own client certificate (CN = device
 *   id = the username mosquitto's ACL sees), and the same in XS;
 * - through the hostile gateway answering CONNECT with 0x84 (a gateway
 *   pretending to be an old broker): refusals reported, no downgrade; and,
 *   with the fallbackTo311 policy, a drain over 3.1.1 after one refusal.
 *
 * Asserted: every record reached the subscriber (duplicates allowed: QoS 1)
 * under the device's full topic, though the device sends the topic once per
 * connection and then Topic Alias 1 (mosquitto's Topic Alias Maximum is 10;
 * the subscriber announces none, so mosquitto must resolve the alias),
 * the outbox is empty, no more than Receive Maximum PUBLISHes were ever in
 * flight, and a restart shows up as a closed link, a backoff and a
 * reconnect with the session present. Without mosquitto (or openssl for the
 * TLS runs) the tests skip, except under CI, where they fail.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { findMosquitto, findMosquittoPasswd, findOpenssl, requireComponents, skipUnless, sleep } from '../../tools/net/common.ts';
import { startMosquitto, type MosquittoBroker } from '../../tools/net/mosquitto.ts';
import { startGateway } from '../../tools/net/hostile-gateway.ts';
import { NodeStreamConnector, nodeClock, nodeEntropy, runClient, type NodeStreamOptions } from '../../tools/net/node-stream.ts';
import { SimFlash } from '../../tools/sim/flash/sim-flash.ts';
import { HostServices } from '../../tools/xs/host-services.ts';
import { XsStreamBridge } from '../../tools/xs/stream-bridge.ts';
import { Outbox } from '../../firmware/storage/outbox.ts';
import { OutboxSource, type SessionOptions } from '../../firmware/protocol/mqtt-session/index.ts';
import { MqttClient, type ClientEvent } from '../../firmware/protocol/mqtt-client/index.ts';
import type { DeviceInit, DeviceStatus } from './client-xs-device.ts';

const needs = [findMosquitto(), findMosquittoPasswd(), findOpenssl()];
const skip = skipUnless(needs);

const RECORDS = 300;
const PAYLOAD_BYTES = 64;
const RECEIVE_MAXIMUM = 5;
const DEVICES = ['dev-node', 'dev-xs', 'dev-node-tls', 'dev-xs-tls', 'dev-gw', 'dev-gw-311'] as const;
const OBSERVER = { username: 'observer', password: 'pw-observer' };
const DEVICE_ENTRY = fileURLToPath(new URL('./client-xs-device.ts', import.meta.url));

/** Record i of `device`: "<device>:<i>:" padded to 64 bytes, so the subscriber knows which one arrived. */
function payload(device: string, i: number): Uint8Array {
  const text = `${device}:${String(i).padStart(6, '0')}:`.padEnd(PAYLOAD_BYTES, 'x');
  return new TextEncoder().encode(text);
}

/** A SimFlash holding an outbox of `records` records for `device`. */
function filledFlash(device: string, records = RECORDS): SimFlash {
  const flash = new SimFlash({ blocks: 16, blockLength: 4096 });
  Outbox.format(flash);
  const outbox = Outbox.open(flash);
  for (let i = 0; i < records; i++) outbox.append(payload(device, i));
  return flash;
}

function sessionOptions(device: string, password: boolean): Omit<SessionOptions, 'startSeq' | 'password'> & { password?: string } {
  return {
    protocolVersion: 5,
    clientId: device,
    topic: `holdfast/${device}/telemetry`,
    keepAliveSec: 30,
    sessionExpirySec: 600,
    maximumPacketSize: 4096,
    maxInFlight: 16,
    responseTimeoutMs: 5000,
    ...(password ? { username: device, password: `pw-${device}` } : {}),
  };
}

async function waitFor(what: string, condition: () => boolean, timeoutMs = 30_000, state: () => string = () => ''): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}; ${state()}`);
    await sleep(10);
  }
}

describe('firmware MQTT client against mosquitto', { skip }, () => {
  let broker: MosquittoBroker;
  let subscriber: mqtt.MqttClient;
  /** Per device, the record numbers the subscriber received (a set: QoS 1 may repeat). */
  const received = new Map<string, Set<number>>();
  let duplicates = 0;
  /** Messages that arrived under a topic other than their device's full telemetry topic. */
  const wrongTopics: string[] = [];

  before(async () => {
    requireComponents(needs);
    broker = await startMosquitto({
      devices: DEVICES.map((deviceId) => ({ deviceId, password: `pw-${deviceId}` })),
      services: [{ ...OBSERVER, read: ['holdfast/#'] }],
      maxInflightMessages: RECEIVE_MAXIMUM,
      persistence: true,
      tls: true,
    });
    subscriber = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, {
      ...OBSERVER,
      clientId: 'observer-1',
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 600 },
      reconnectPeriod: 100,
    });
    subscriber.on('message', (topic, message) => {
      const [device, index] = message.toString('latin1').split(':');
      if (topic !== `holdfast/${device}/telemetry`) wrongTopics.push(`${device}:${index} on '${topic}'`);
      const set = received.get(device) ?? new Set<number>();
      if (set.has(Number(index))) duplicates++;
      set.add(Number(index));
      received.set(device, set);
    });
    subscriber.on('error', () => {
      // reconnects on its own across the broker restarts
    });
    await subscriber.subscribeAsync('holdfast/#', { qos: 1 });
  });

  after(async () => {
    await subscriber?.endAsync(true);
    await broker?.stop();
  });

  const got = (device: string): number => received.get(device)?.size ?? 0;

  function tlsFor(device: string): NodeStreamOptions {
    const pki = broker.pki;
    const cert = pki?.clients.get(device);
    if (!pki || !cert) throw new Error('broker has no PKI');
    return { tls: { ca: readFileSync(pki.caCert), cert: readFileSync(cert.cert), key: readFileSync(cert.key), servername: 'localhost' } };
  }

  /** Drains `device`'s outbox with the client in Node; restarts the broker once at a third of the drain when asked. */
  async function drainInNode(
    device: string,
    options: { tls: boolean; restart: boolean; port?: number; records?: number; fallbackTo311?: boolean },
    t: { diagnostic(m: string): void },
  ): Promise<ClientEvent[]> {
    const records = options.records ?? RECORDS;
    const flash = filledFlash(device, records);
    const outbox = Outbox.open(flash);
    const events: ClientEvent[] = [];
    const connector = new NodeStreamConnector(options.tls ? tlsFor(device) : {});
    const session = sessionOptions(device, !options.tls);
    const client = new MqttClient(
      {
        host: '127.0.0.1',
        port: options.port ?? (options.tls ? broker.tlsPort ?? 0 : broker.port),
        session: { ...session, password: session.password === undefined ? undefined : new TextEncoder().encode(session.password), startSeq: outbox.stats().ackSeq },
        backoff: { baseMs: 50, capMs: 1000 },
        fallbackTo311: options.fallbackTo311 ?? false,
      },
      { connector, clock: nodeClock, entropy: nodeEntropy, source: new OutboxSource(outbox), onEvent: (e) => events.push(e) },
    );
    const stop = runClient(client, 20);
    client.start();
    try {
      if (options.restart) {
        await waitFor('a third of the drain', () => outbox.stats().ackSeq >= RECORDS / 3);
        const queued = outbox.stats().queued;
        await broker.restart();
        assert.ok(queued > 0, 'the restart came mid-drain');
        t.diagnostic(`${device}: broker restarted with ${queued} records still queued`);
      }
      await waitFor(`${device} drained and received`, () => outbox.stats().queued === 0 && got(device) === records, 30_000, () => `received ${got(device)}, queued ${outbox.stats().queued}, phase ${client.phase}, last events ${JSON.stringify(events.slice(-8))}`);
    } finally {
      stop();
      client.stop();
      connector.closeAll();
    }
    const stats = client.stats();
    assert.equal(stats.session.quotaViolations, 0, 'send quota never exceeded');
    // 3.1.1 has no Receive Maximum: there the window is the session's maxInFlight.
    const window = options.fallbackTo311 ? session.maxInFlight : RECEIVE_MAXIMUM;
    assert.ok(stats.peakInFlight <= window, `peak in flight ${stats.peakInFlight} ≤ ${window}`);
    // MQTT 5: one PUBLISH per connection carries the topic, the rest alias 1 alone; 3.1.1 has no aliases.
    if (options.fallbackTo311) assert.equal(stats.session.aliased, 0, '3.1.1: no topic alias');
    else assert.ok(stats.session.aliased >= records - stats.connacks, `aliased ${stats.session.aliased} of ${stats.session.published + stats.session.resent} PUBLISHes over ${stats.connacks} connections`);
    assert.deepEqual(wrongTopics, [], 'every message under its full topic');
    t.diagnostic(`${device}: ${records} records, ${stats.connects} connections, peak in flight ${stats.peakInFlight}, resent ${stats.session.resent}, aliased ${stats.session.aliased}, ${events.filter((e) => e.kind === 'backoff').length} backoffs`);
    return events;
  }

  /** The same drain with the client and the outbox in XS, sockets in Node. */
  async function drainInXs(device: string, options: { tls: boolean; restart: boolean }, t: { diagnostic(m: string): void }): Promise<ClientEvent[]> {
    const services = new HostServices();
    const flashHandle = 1000 + DEVICES.indexOf(device as (typeof DEVICES)[number]);
    services.flashes.set(flashHandle, filledFlash(device));
    const bridge = await XsStreamBridge.open(DEVICE_ENTRY, { services, net: options.tls ? tlsFor(device) : {}, pollMs: 20 });
    const events: ClientEvent[] = [];
    let last: DeviceStatus | undefined;
    const status = (): DeviceStatus => {
      last = bridge.callJson({ status: true }) as DeviceStatus;
      events.push(...last.events);
      return last;
    };
    try {
      const init: DeviceInit = {
        now: nodeClock.ticks(),
        flashHandle,
        host: '127.0.0.1',
        port: options.tls ? broker.tlsPort ?? 0 : broker.port,
        session: sessionOptions(device, !options.tls),
        client: { backoff: { baseMs: 50, capMs: 1000 } },
      };
      bridge.callJson({ init });
      if (options.restart) {
        await waitFor('a third of the drain in XS', () => status().ackSeq >= RECORDS / 3);
        const queued = last?.queued ?? 0;
        await broker.restart();
        assert.ok(queued > 0, 'the restart came mid-drain');
        t.diagnostic(`${device} (XS): broker restarted with ${queued} records still queued`);
      }
      await waitFor(`${device} drained in XS and received`, () => {
        if (bridge.failure) throw bridge.failure;
        return status().queued === 0 && got(device) === RECORDS;
      }, 30_000, () => `received ${got(device)}, status ${JSON.stringify({ ...last, events: undefined })}, last events ${JSON.stringify(events.slice(-8))}`);
      bridge.callJson({ stop: true });
      assert.equal(status().openStreams, 0, 'the guest released its stream');
    } finally {
      bridge.close();
    }
    const stats = last?.stats;
    assert.ok(stats);
    assert.equal(stats.session.quotaViolations, 0, 'send quota never exceeded');
    assert.ok(stats.peakInFlight <= RECEIVE_MAXIMUM, `peak in flight ${stats.peakInFlight} ≤ Receive Maximum ${RECEIVE_MAXIMUM}`);
    assert.ok(stats.session.aliased >= RECORDS - stats.connacks, `XS: aliased ${stats.session.aliased} over ${stats.connacks} connections`);
    assert.deepEqual(wrongTopics, [], 'every message under its full topic');
    assert.ok(bridge.streams.counts.writes > 0 && bridge.streams.counts.events > 0, 'bytes went through the bridge both ways');
    t.diagnostic(
      `${device} (XS): ${RECORDS} records, ${stats.connects} connections, peak in flight ${stats.peakInFlight}, resent ${stats.session.resent}; ` +
        `bridge: ${bridge.streams.counts.writes} writes, ${bridge.streams.counts.events} socket events, ${bridge.commands} guest commands`,
    );
    return events;
  }

  function assertRestartSeen(events: ClientEvent[]): void {
    const closed = events.filter((e) => e.kind === 'closed');
    assert.ok(closed.length >= 1 && closed.every((e) => e.kind === 'closed' && (e.cause === 'stream' || e.cause === 'stopped')), `closed by the restart: ${JSON.stringify(closed)}`);
    assert.ok(events.some((e) => e.kind === 'backoff'), 'backoff scheduled');
    const connected = events.filter((e) => e.kind === 'connected');
    assert.ok(connected.length >= 2, 'reconnected');
    assert.ok(connected.slice(1).some((e) => e.kind === 'connected' && e.sessionPresent), 'the broker kept the session across its restart (persistence)');
    assert.equal(connected[0].kind === 'connected' && connected[0].receiveMaximum, RECEIVE_MAXIMUM, 'Receive Maximum from max_inflight_messages');
    assertAliased(events);
  }

  /** Every CONNACK allowed topic aliases, and every message so far arrived under its full topic. */
  function assertAliased(events: ClientEvent[]): void {
    const connected = events.filter((e): e is Extract<ClientEvent, { kind: 'connected' }> => e.kind === 'connected');
    assert.ok(connected.length > 0 && connected.every((e) => e.topicAliasMaximum >= 1), `mosquitto allows topic aliases: ${JSON.stringify(connected.map((e) => e.topicAliasMaximum))}`);
    assert.deepEqual(wrongTopics, [], 'every message under its full topic');
  }

  it('in Node over TCP: every record reaches the subscriber across a broker restart', async (t) => {
    const events = await drainInNode('dev-node', { tls: false, restart: true }, t);
    assertRestartSeen(events);
    assert.equal(got('dev-node'), RECORDS);
  });

  it('in XS through the stream bridge: every record reaches the subscriber across a broker restart', async (t) => {
    const events = await drainInXs('dev-xs', { tls: false, restart: true }, t);
    assertRestartSeen(events);
    assert.equal(got('dev-xs'), RECORDS);
  });

  it('in Node over TLS with the device certificate: every record reaches the subscriber', async (t) => {
    const events = await drainInNode('dev-node-tls', { tls: true, restart: false }, t);
    assert.ok(events.some((e) => e.kind === 'connected'), 'connected over TLS');
    assertAliased(events);
    assert.ok(!events.some((e) => e.kind === 'refused'), 'accepted on the certificate (no password)');
    assert.equal(got('dev-node-tls'), RECORDS);
  });

  it('a gateway answering CONNECT with 0x84 three times: three audited refusals, no downgrade, then the drain', async (t) => {
    const gateway = await startGateway({ upstream: { port: broker.port }, seed: 17, rules: [{ action: 'refuseConnect', nth: [0, 1, 2] }] });
    try {
      const events = await drainInNode('dev-gw', { tls: false, restart: false, port: gateway.port, records: 50 }, t);
      const kept = events.filter((e) => e.kind === 'refused-no-fallback');
      assert.equal(kept.length, 3, 'each refusal reported as version kept');
      assert.ok(kept.every((e) => e.kind === 'refused-no-fallback' && e.protocolVersion === 5 && e.reasonCode === 0x84));
      assert.equal(events.filter((e) => e.kind === 'protocol-fallback').length, 0, 'no fallback');
      const attempts = events.filter((e) => e.kind === 'connecting');
      assert.ok(attempts.length >= 4 && attempts.every((e) => e.kind === 'connecting' && e.protocolVersion === 5), 'every CONNECT is MQTT 5');
      assert.equal(events.filter((e) => e.kind === 'backoff').length >= 3, true, 'each refusal paced by the backoff');
      assert.equal(gateway.events.filter((e) => e.action === 'refuseConnect').length, 3);
      assert.equal(got('dev-gw'), 50);
    } finally {
      await gateway.stop();
    }
  });

  it('fallbackTo311 policy: after the gateway refuses MQTT 5 once, the drain completes over 3.1.1', async (t) => {
    const gateway = await startGateway({ upstream: { port: broker.port }, seed: 17, rules: [{ action: 'refuseConnect', nth: [0] }] });
    try {
      const events = await drainInNode('dev-gw-311', { tls: false, restart: false, port: gateway.port, records: 50, fallbackTo311: true }, t);
      assert.equal(events.filter((e) => e.kind === 'protocol-fallback').length, 1, 'fallback reported');
      const attempts = events.filter((e): e is Extract<ClientEvent, { kind: 'connecting' }> => e.kind === 'connecting');
      assert.equal(attempts[0].protocolVersion, 5, 'first CONNECT MQTT 5');
      assert.ok(attempts.slice(1).every((e) => e.protocolVersion === 4), 'then 3.1.1');
      assert.equal(got('dev-gw-311'), 50);
    } finally {
      await gateway.stop();
    }
  });

  it('in XS over TLS (sockets and TLS in Node): every record reaches the subscriber', async (t) => {
    const events = await drainInXs('dev-xs-tls', { tls: true, restart: false }, t);
    assert.ok(events.some((e) => e.kind === 'connected'), 'connected over TLS');
    assert.equal(got('dev-xs-tls'), RECORDS);
    t.diagnostic(`duplicates seen by the subscriber over all runs: ${duplicates}`);
  });
});
