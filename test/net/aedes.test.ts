/**
 * The embedded 3.1.1 broker (tools/net/aedes-broker.ts): zero-install, same
 * start/stop/restart interface and the same per-device authority as the
 * mosquitto harness. In 3.1.1 a refused publish has no reason code: aedes
 * closes the publisher's connection and delivers nothing.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { sleep } from '../../tools/net/common.ts';
import { startAedes, type AedesBroker } from '../../tools/net/aedes-broker.ts';
import { client, DEVICES, endAll, INGEST, once, refusedConnect, subscriber, until } from './net-helpers.ts';

describe('aedes harness (MQTT 3.1.1)', () => {
  let broker: AedesBroker;
  before(async () => {
    broker = await startAedes({ devices: DEVICES, services: [INGEST] });
  });
  after(async () => {
    await endAll();
    await broker?.stop();
  });

  it('QoS 1 publishes round-trip on a free loopback port', async () => {
    const sub = await subscriber(broker.port, { protocolVersion: 4, clientId: 'ingest-rt', username: INGEST.username, password: INGEST.password });
    const dev = await client(broker.port, { protocolVersion: 4, clientId: 'dev1', username: 'dev1', password: 'pw-dev1' });
    for (let i = 0; i < 5; i++) await dev.publishAsync('holdfast/dev1/telemetry', `r${i}`, { qos: 1 });
    const got = await sub.waitFor(5);
    assert.deepEqual(got.map((g) => g.payload.toString()), ['r0', 'r1', 'r2', 'r3', 'r4']);
  });

  it('refuses an MQTT 5 CONNECT (return code 1, unacceptable protocol version)', async () => {
    const refused = await refusedConnect(broker.port, { protocolVersion: 5, clientId: 'dev1-v5', username: 'dev1', password: 'pw-dev1' });
    assert.match(String(refused.message), /protocol version|Unsupported|Unacceptable|closed/i);
  });

  it('a wrong password is refused (return code 4)', async () => {
    const refused = await refusedConnect(broker.port, { protocolVersion: 4, clientId: 'dev1-bad', username: 'dev1', password: 'nope' });
    assert.equal(refused.code, 4);
  });

  it('a device publishing under another device\'s topic loses its connection and nothing is delivered', async () => {
    const sub = await subscriber(broker.port, { protocolVersion: 4, clientId: 'ingest-acl', username: INGEST.username, password: INGEST.password });
    const dev = await client(broker.port, { protocolVersion: 4, clientId: 'dev1-acl', username: 'dev1', password: 'pw-dev1' });
    const closed = once(dev, 'close');
    dev.publish('holdfast/dev2/telemetry', 'forged', { qos: 1 }, () => undefined);
    await closed;
    await sleep(50);
    assert.deepEqual(sub.got, []);
    assert.ok(broker.refusals.some((r) => /publish dev1-acl \(dev1\) to holdfast\/dev2\/telemetry: not authorized/.test(r)));
  });

  it('a device may not subscribe to another device\'s topic (SUBACK 0x80)', async () => {
    const dev = await client(broker.port, { protocolVersion: 4, clientId: 'dev1-sub', username: 'dev1', password: 'pw-dev1' });
    await assert.rejects(dev.subscribeAsync('holdfast/dev2/#', { qos: 1 }), (e: Error & { packet?: { granted?: number[] } }) => e.packet?.granted?.[0] === 0x80);
  });
});

describe('aedes restart', () => {
  after(endAll);
  for (const persistence of [true, false]) {
    it(`persistence ${persistence ? 'on: the session and its queued QoS 1 message survive' : 'off: the session is gone'}; same port`, async () => {
      const broker = await startAedes({ devices: DEVICES, services: [INGEST], persistence });
      try {
        const session = { protocolVersion: 4 as const, clientId: 'ingest-persist', clean: false, username: INGEST.username, password: INGEST.password };
        const sub = await client(broker.port, session);
        await sub.subscribeAsync('holdfast/#', { qos: 1 });
        await sub.endAsync();
        const dev = await client(broker.port, { protocolVersion: 4, clientId: 'dev1-persist', username: 'dev1', password: 'pw-dev1' });
        await dev.publishAsync('holdfast/dev1/queued', 'while away', { qos: 1 });
        await dev.endAsync();
        const port = broker.port;
        await broker.restart();
        assert.equal(broker.port, port);
        const got: string[] = [];
        const again = mqtt.connect({ host: broker.host, port: broker.port, reconnectPeriod: 0, ...session });
        again.on('message', (_t, payload) => got.push(payload.toString()));
        const [connack] = (await once(again, 'connect')) as [{ sessionPresent: boolean }];
        if (persistence) await until(() => got.length > 0, 'the queued message');
        await sleep(50);
        assert.equal(connack.sessionPresent, persistence);
        assert.deepEqual(got, persistence ? ['while away'] : []);
        await again.endAsync();
      } finally {
        await broker.stop();
      }
    });
  }
});
