/**
 * The hostile gateway (tools/net/hostile-gateway.ts) between mqtt.js devices
 * and real brokers: QoS 1 round trips through it with mosquitto (MQTT 5) and
 * aedes (3.1.1), then one test per misbehaviour showing it happens exactly as
 * scheduled and is logged with its seed, rule, ordinal and packet index, and
 * a rerun with the same seed giving the same actions.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { findMosquitto, findMosquittoPasswd, requireComponents, skipUnless, sleep, type BrokerHandle } from '../../tools/net/common.ts';
import { startAedes } from '../../tools/net/aedes-broker.ts';
import { startMosquitto } from '../../tools/net/mosquitto.ts';
import { decodePacket, formatEvent, startGateway, takeFrame, type HostileGateway, type Rule } from '../../tools/net/hostile-gateway.ts';
import { client, DEVICES, endAll, INGEST, once, refusedConnect, subscriber, until } from './net-helpers.ts';

const needs = [findMosquitto(), findMosquittoPasswd()];
const skipMosquitto = skipUnless(needs);

const gateways = new Set<HostileGateway>();
async function gateway(broker: BrokerHandle, rules: Rule[], seed = 17): Promise<HostileGateway> {
  const g = await startGateway({ upstream: { port: broker.port }, seed, rules, broker });
  gateways.add(g);
  return g;
}
async function stopGateways(): Promise<void> {
  await Promise.all([...gateways].map((g) => g.stop()));
  gateways.clear();
}

const v4 = (clientId: string, user: 'dev1' | 'dev2' = 'dev1') => ({ protocolVersion: 4 as const, clientId, username: user, password: `pw-${user}` });
const ingest4 = (clientId: string) => ({ protocolVersion: 4 as const, clientId, username: INGEST.username, password: INGEST.password });

describe('framing', () => {
  it('takeFrame splits on fixed header + remaining length, waits for more, refuses a 5-byte length', () => {
    const two = Buffer.from([0xc0, 0x00, 0xd0, 0x00]);
    const f = takeFrame(two, 1 << 20);
    assert.ok(typeof f === 'object' && f.type === 'pingreq' && f.bytes.length === 2);
    assert.equal(takeFrame(Buffer.from([0x30, 0x05, 0x00]), 1 << 20), 'more');
    assert.equal(takeFrame(Buffer.from([0x30, 0x80]), 1 << 20), 'more');
    assert.equal(takeFrame(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]), 1 << 30), 'bad');
    assert.equal(takeFrame(Buffer.from([0x30, 0xff, 0x7f]), 100), 'bad');
  });
});

describe('hostile gateway in front of aedes (MQTT 3.1.1)', () => {
  let broker: BrokerHandle;
  before(async () => {
    broker = await startAedes({ devices: DEVICES, services: [INGEST] });
  });
  after(async () => {
    await endAll();
    await stopGateways();
    await broker?.stop();
  });

  it('passes QoS 1 publishes through unchanged when the schedule is empty', async () => {
    const g = await gateway(broker, []);
    const sub = await subscriber(broker.port, ingest4('ingest-pass'));
    const dev = await client(g.port, v4('dev1-pass'));
    for (let i = 0; i < 10; i++) await dev.publishAsync('holdfast/dev1/t', `p${i}`, { qos: 1 });
    const got = await sub.waitFor(10);
    assert.deepEqual(got.map((m) => m.payload.toString()), Array.from({ length: 10 }, (_, i) => `p${i}`));
    assert.deepEqual(g.events, []);
  });

  it('duplicate: the 2nd PUBLISH arrives twice at a subscriber; the device sees one PUBACK per publish', async () => {
    const g = await gateway(broker, [{ action: 'duplicate', nth: [1] }]);
    const sub = await subscriber(broker.port, ingest4('ingest-dup'));
    const dev = await client(g.port, v4('dev1-dup'));
    let acks = 0;
    dev.on('packetreceive', (p) => p.cmd === 'puback' && acks++);
    for (let i = 0; i < 3; i++) await dev.publishAsync('holdfast/dev1/t', `d${i}`, { qos: 1 });
    const got = await sub.waitFor(4);
    await sleep(50);
    assert.deepEqual(got.map((m) => m.payload.toString()), ['d0', 'd1', 'd1', 'd2']);
    assert.equal(acks, 3, 'the extra PUBACK is swallowed');
    assert.equal(g.events.length, 1);
    assert.match(formatEvent(g.events[0]), /^seed=17 rule=0 ordinal=1 packet=up#\d+ conn=0 client=dev1-dup publish duplicate 1 extra copy of id \d+$/);
  });

  it('duplicate downstream: the subscriber itself gets the PUBLISH twice', async () => {
    const g = await gateway(broker, [{ action: 'duplicate', dir: 'down', clientId: 'ingest-dupdown', nth: [0] }]);
    const sub = await subscriber(g.port, ingest4('ingest-dupdown'));
    const dev = await client(broker.port, v4('dev1-dupdown'));
    await dev.publishAsync('holdfast/dev1/t', 'once', { qos: 1 });
    const got = await sub.waitFor(2);
    assert.deepEqual(got.map((m) => m.payload.toString()), ['once', 'once']);
  });

  it('cut mid-packet: the connection drops after a seeded prefix and the PUBLISH is never delivered', async () => {
    const g = await gateway(broker, [{ action: 'cut', nth: [1] }]);
    const sub = await subscriber(broker.port, ingest4('ingest-cut'));
    const dev = await client(g.port, v4('dev1-cut'));
    await dev.publishAsync('holdfast/dev1/t', 'before', { qos: 1 });
    const closed = once(dev, 'close');
    dev.publish('holdfast/dev1/t', 'cut in the middle', { qos: 1 }, () => undefined);
    await closed;
    await sub.waitFor(1);
    await sleep(100);
    assert.deepEqual(sub.got.map((m) => m.payload.toString()), ['before']);
    const [event] = g.events;
    assert.equal(event.action, 'cut');
    const [, keep, of] = /after (\d+) of (\d+) bytes/.exec(event.detail)!.map(Number);
    assert.ok(keep >= 1 && keep < of, `cut inside the packet: ${event.detail}`);
  });

  it('cut a PUBACK on its way down: the broker delivered, the device never heard, and its DUP resend after reconnect is delivered a second time', async () => {
    const g = await gateway(broker, [{ action: 'cut', dir: 'down', type: 'puback', clientId: 'dev1-lostack', nth: [0] }]);
    const sub = await subscriber(broker.port, ingest4('ingest-lostack'));
    const dev = mqtt.connect({ host: '127.0.0.1', port: g.port, ...v4('dev1-lostack'), clean: false, reconnectPeriod: 50 });
    try {
      await once(dev, 'connect');
      await dev.publishAsync('holdfast/dev1/t', 'acked late', { qos: 1 });
      const got = await sub.waitFor(2);
      assert.deepEqual(got.map((m) => `${m.payload} dup=${m.dup}`), ['acked late dup=false', 'acked late dup=false']);
      assert.equal(g.connections, 2);
      assert.match(formatEvent(g.events[0]), /conn=0 client=dev1-lostack puback cut after [1-3] of 4 bytes$/);
    } finally {
      await dev.endAsync(true);
    }
  });

  it('flip anywhere (region any) can break the framing: the broker drops the connection or delivers altered bytes, never the original', async () => {
    const g = await gateway(broker, [{ action: 'flip', region: 'any', bits: 3, nth: [0] }], 5);
    const sub = await subscriber(broker.port, ingest4('ingest-flipany'));
    const dev = mqtt.connect({ host: '127.0.0.1', port: g.port, ...v4('dev1-flipany'), reconnectPeriod: 0 });
    dev.on('error', () => undefined);
    await once(dev, 'connect');
    dev.publish('holdfast/dev1/t', 'exact bytes', { qos: 0 });
    await sleep(150);
    assert.ok(!sub.got.some((m) => m.topic === 'holdfast/dev1/t' && m.payload.toString() === 'exact bytes'));
    assert.match(g.events[0].detail, /^packet: (byte \d+ bit [0-7](, )?){3}$/);
    dev.end(true);
  });

  it('stall: part of the packet, then nothing for 300 ms, then the rest; delivered once', async () => {
    const g = await gateway(broker, [{ action: 'stall', ms: 300, nth: [0] }]);
    const sub = await subscriber(broker.port, ingest4('ingest-stall'));
    const dev = await client(g.port, v4('dev1-stall'));
    const started = Date.now();
    await dev.publishAsync('holdfast/dev1/t', 'stalled', { qos: 1 });
    const took = Date.now() - started;
    assert.ok(took >= 290, `PUBACK after ${took} ms`);
    assert.deepEqual((await sub.waitFor(1)).map((m) => m.payload.toString()), ['stalled']);
    assert.match(g.events[0].detail, /^\d+ of \d+ bytes, then 300 ms$/);
  });

  it('delay: the packet and what follows wait 200 ms, order kept', async () => {
    const g = await gateway(broker, [{ action: 'delay', ms: 200, nth: [0] }]);
    const sub = await subscriber(broker.port, ingest4('ingest-delay'));
    const dev = await client(g.port, v4('dev1-delay'));
    const started = Date.now();
    await Promise.all([dev.publishAsync('holdfast/dev1/t', 'a', { qos: 1 }), dev.publishAsync('holdfast/dev1/t', 'b', { qos: 1 })]);
    assert.ok(Date.now() - started >= 190);
    assert.deepEqual((await sub.waitFor(2)).map((m) => m.payload.toString()), ['a', 'b']);
  });

  it('drop: a QoS 0 PUBLISH vanishes', async () => {
    const g = await gateway(broker, [{ action: 'drop', nth: [0] }]);
    const sub = await subscriber(broker.port, ingest4('ingest-drop'));
    const dev = await client(g.port, v4('dev1-drop'));
    await dev.publishAsync('holdfast/dev1/t', 'lost', { qos: 0 });
    await dev.publishAsync('holdfast/dev1/t', 'kept', { qos: 1 });
    await sub.waitFor(1);
    await sleep(50);
    assert.deepEqual(sub.got.map((m) => m.payload.toString()), ['kept']);
  });

  it('flip: one seeded bit of the payload changes; the broker delivers the altered bytes', async () => {
    const g = await gateway(broker, [{ action: 'flip', nth: [0] }]);
    const sub = await subscriber(broker.port, ingest4('ingest-flip'));
    const dev = await client(g.port, v4('dev1-flip'));
    const sent = Buffer.from('0123456789abcdef');
    await dev.publishAsync('holdfast/dev1/t', sent, { qos: 1 });
    const [got] = await sub.waitFor(1);
    assert.equal(got.topic, 'holdfast/dev1/t');
    let bits = 0;
    for (let i = 0; i < sent.length; i++) for (let x = sent[i] ^ got.payload[i]; x; x &= x - 1) bits++;
    assert.equal(bits, 1);
    assert.match(g.events[0].detail, /^payload: byte \d+ bit [0-7]$/);
  });

  it('reorder across a reconnect: the withheld PUBLISH is injected after newer ones on the next connection', async () => {
    const g = await gateway(broker, [{ action: 'reorder', nth: [0], releaseAfterPublishes: 2, releaseAfterMs: 2000 }]);
    const sub = await subscriber(broker.port, ingest4('ingest-reorder'));
    const dev = mqtt.connect({ host: '127.0.0.1', port: g.port, ...v4('dev1-reorder'), clean: false, reconnectPeriod: 50 });
    try {
      await once(dev, 'connect');
      const first = dev.publishAsync('holdfast/dev1/t', 'm0', { qos: 1 });
      await once(dev, 'close');
      await once(dev, 'connect');
      await first; // mqtt.js resends m0 (DUP) on the resumed session
      await dev.publishAsync('holdfast/dev1/t', 'm1', { qos: 1 });
      const got = await sub.waitFor(3);
      await sleep(50);
      assert.deepEqual(got.map((m) => m.payload.toString()), ['m0', 'm1', 'm0'], 'the old m0 arrives after m1');
      assert.equal(got[0].dup, false);
      assert.match(g.events[0].detail, /withheld id \d+; connection cut/);
    } finally {
      await dev.endAsync(true);
    }
  });

  it('replay: a captured PUBLISH is injected twice more, 30 ms apart; the device notices nothing', async () => {
    const g = await gateway(broker, [{ action: 'replay', nth: [0], times: 2, afterMs: 30 }]);
    const sub = await subscriber(broker.port, ingest4('ingest-replay'));
    const dev = await client(g.port, v4('dev1-replay'));
    let acks = 0;
    dev.on('packetreceive', (p) => p.cmd === 'puback' && acks++);
    await dev.publishAsync('holdfast/dev1/t', 'captured', { qos: 1 });
    const got = await sub.waitFor(3);
    await dev.publishAsync('holdfast/dev1/t', 'next', { qos: 1 });
    await sub.waitFor(4);
    assert.deepEqual(sub.got.map((m) => m.payload.toString()), ['captured', 'captured', 'captured', 'next']);
    assert.equal(got.length >= 3, true);
    assert.equal(acks, 2);
  });

  it('replay on the next connection: the capture comes back after a reconnect', async () => {
    const g = await gateway(broker, [{ action: 'replay', nth: [0], nextConnection: true }]);
    const sub = await subscriber(broker.port, ingest4('ingest-replay2'));
    const dev = await client(g.port, v4('dev1-replay2'));
    await dev.publishAsync('holdfast/dev1/t', 'old', { qos: 1 });
    await dev.endAsync();
    const again = await client(g.port, v4('dev1-replay2'));
    await again.publishAsync('holdfast/dev1/t', 'new', { qos: 1 });
    await sub.waitFor(3);
    assert.deepEqual(sub.got.map((m) => m.payload.toString()), ['old', 'new', 'old']);
    assert.equal(g.connections, 2);
  });

  it('forge: a PUBLISH the device never sent reaches the subscriber on the device\'s own connection', async () => {
    const g = await gateway(broker, [{ action: 'forge', nth: [0], payload: new TextEncoder().encode('forged!') }, { action: 'forge', nth: [1] }]);
    const sub = await subscriber(broker.port, ingest4('ingest-forge'));
    const dev = await client(g.port, v4('dev1-forge'));
    let acks = 0;
    dev.on('packetreceive', (p) => p.cmd === 'puback' && acks++);
    await dev.publishAsync('holdfast/dev1/t', 'genuine', { qos: 1 });
    await dev.publishAsync('holdfast/dev1/t', 'genuine2', { qos: 1 });
    const got = await sub.waitFor(4);
    assert.deepEqual(got.slice(0, 3).map((m) => m.payload.toString()), ['genuine', 'forged!', 'genuine2']);
    assert.equal(got[3].payload.length, 'genuine2'.length, 'default forgery: seeded random bytes of the same length');
    assert.notEqual(got[3].payload.toString(), 'genuine2');
    assert.equal(acks, 2, 'PUBACKs of forged packets are swallowed');
    assert.deepEqual(g.events.map((e) => `${e.rule}:${e.ordinal}`), ['0:0', '1:1']);
  });

  it('refuseConnect (3.1.1): CONNACK return code 0x01, nothing reaches the broker', async () => {
    const g = await gateway(broker, [{ action: 'refuseConnect' }]);
    const refused = await refusedConnect(g.port, v4('dev1-refused'));
    assert.equal(refused.code, 1);
    assert.match(g.events[0].detail, /return code 0x01/);
  });

  it('two devices at once, 300 publishes, seeded duplicates/replays/forgeries: every delivery is an original or a logged injection', async () => {
    const rules: Rule[] = [{ action: 'duplicate', probability: 0.1 }, { action: 'replay', probability: 0.1 }, { action: 'forge', probability: 0.1 }];
    const g = await gateway(broker, rules, 4242);
    const sub = await subscriber(broker.port, ingest4('ingest-burst'));
    const devs = await Promise.all([client(g.port, v4('dev1-burst', 'dev1')), client(g.port, v4('dev2-burst', 'dev2'))]);
    await Promise.all(devs.map((d, k) => Promise.all(Array.from({ length: 150 }, (_, i) => d.publishAsync(`holdfast/dev${k + 1}/t`, `dev${k + 1}:${i}`, { qos: 1 })))));
    const injected = g.events.length;
    assert.ok(injected > 10, `${injected} injections`);
    await sub.waitFor(300 + injected);
    await sleep(100);
    assert.equal(sub.got.length, 300 + injected);
    const originals = new Set(sub.got.map((m) => m.payload.toString()).filter((p) => /^dev[12]:\d+$/.test(p)));
    assert.equal(originals.size, 300, 'every original delivered');
    const forged = g.events.filter((e) => e.action === 'forge').length;
    assert.equal(sub.got.filter((m) => !/^dev[12]:\d+$/.test(m.payload.toString())).length, forged, 'anything else is a logged forgery');
  });

  it('the same seed and traffic give the same actions; another seed gives others', async () => {
    const rules: Rule[] = [{ action: 'flip', probability: 0.3 }, { action: 'duplicate', probability: 0.2 }];
    const run = async (seed: number) => {
      const g = await gateway(broker, rules, seed);
      const sub = await subscriber(broker.port, ingest4(`ingest-det-${seed}-${gateways.size}`), 'holdfast/dev2/#');
      const dev = await client(g.port, v4(`dev2-det`, 'dev2'));
      for (let i = 0; i < 30; i++) await dev.publishAsync('holdfast/dev2/t', `payload number ${i}`, { qos: 1 });
      await dev.endAsync();
      await sub.client.endAsync();
      // mqtt.js picks random packet ids: everything else must match.
      return g.events.map((e) => `${e.rule}:${e.ordinal}:${e.packetIndex - g.events[0].packetIndex}:${e.action}:${e.detail.replace(/ id \d+/, '')}`);
    };
    const a = await run(1234);
    const b = await run(1234);
    const c = await run(99);
    assert.ok(a.length > 0);
    assert.deepEqual(b, a);
    assert.notDeepEqual(c, a);
  });
});

describe('hostile gateway in front of mosquitto (MQTT 5)', { skip: skipMosquitto }, () => {
  let broker: BrokerHandle;
  before(async () => {
    requireComponents(needs);
    broker = await startMosquitto({ devices: DEVICES, services: [INGEST], persistence: true });
  });
  after(async () => {
    await endAll();
    await stopGateways();
    await broker?.stop();
  });
  const v5 = (clientId: string) => ({ protocolVersion: 5 as const, clientId, username: 'dev1', password: 'pw-dev1' });
  const ingest5 = (clientId: string) => ({ protocolVersion: 5 as const, clientId, username: INGEST.username, password: INGEST.password });

  it('QoS 1 publishes round-trip through the gateway with PUBACK reason codes intact', async () => {
    const g = await gateway(broker, []);
    const sub = await subscriber(broker.port, ingest5('ingest5-rt'));
    const dev = await client(g.port, v5('dev1-rt5'));
    const reasons: number[] = [];
    dev.on('packetreceive', (p) => p.cmd === 'puback' && reasons.push(p.reasonCode ?? 0));
    for (let i = 0; i < 5; i++) await dev.publishAsync('holdfast/dev1/t', `q${i}`, { qos: 1, properties: { userProperties: { i: String(i) } } });
    await dev.publishAsync('holdfast/dev1/nobody-listens', 'x', { qos: 1 }).catch(() => undefined);
    const got = await sub.waitFor(6);
    assert.deepEqual(got.slice(0, 5).map((m) => m.payload.toString()), ['q0', 'q1', 'q2', 'q3', 'q4']);
    assert.deepEqual(reasons.slice(0, 5), [0, 0, 0, 0, 0]);
  });

  it('refuseConnect (MQTT 5): CONNACK reason 0x84 unsupported protocol version', async () => {
    const g = await gateway(broker, [{ action: 'refuseConnect', nth: [0] }]);
    const refused = await refusedConnect(g.port, v5('dev1-refused5'));
    assert.equal(refused.code, 0x84);
    assert.match(formatEvent(g.events[0]), /connect refuseConnect CONNACK reason 0x84/);
    // The next CONNECT is not refused (nth [0] only).
    const ok = await client(g.port, v5('dev1-refused5'));
    assert.ok(ok.connected);
  });

  it('forge and replay on an MQTT 5 connection (properties encoded) are delivered', async () => {
    // The first rule that fires takes the packet: the replay rule's ordinal 0 is the forge's packet, so it acts on ordinal 1.
    const g = await gateway(broker, [{ action: 'forge', nth: [0], payload: new TextEncoder().encode('forged5') }, { action: 'replay', nth: [1] }]);
    const sub = await subscriber(broker.port, ingest5('ingest5-forge'));
    const dev = await client(g.port, v5('dev1-forge5'));
    await dev.publishAsync('holdfast/dev1/t', 'first', { qos: 1 });
    await dev.publishAsync('holdfast/dev1/t', 'second', { qos: 1 });
    await sub.waitFor(4);
    await sleep(50);
    assert.deepEqual(sub.got.map((m) => m.payload.toString()), ['first', 'forged5', 'second', 'second']);
  });

  it('topic aliases: a forgery of an aliased PUBLISH and a replay of one on the next connection carry the full topic and are delivered', { timeout: 30_000 }, async () => {
    // The device maps alias 1 on its first PUBLISH and then sends an empty topic, as holdfast's session does. Rule 0
    // forges after the aliased 2nd PUBLISH; rule 1 captures the aliased 3rd and injects it on the next connection,
    // released at once after CONNACK (before the device maps the alias there).
    const g = await gateway(broker, [{ action: 'forge', nth: [1], payload: new TextEncoder().encode('forged-alias') }, { action: 'replay', nth: [2], nextConnection: true, releaseAfterPublishes: 99, releaseAfterMs: 0 }]);
    const sub = await subscriber(broker.port, ingest5('ingest5-alias'));
    const dev = await client(g.port, v5('dev1-alias'));
    await dev.publishAsync('holdfast/dev1/t', 'mapped', { qos: 1, properties: { topicAlias: 1 } });
    await dev.publishAsync('', 'aliased', { qos: 1, properties: { topicAlias: 1 } });
    await dev.publishAsync('', 'captured', { qos: 1, properties: { topicAlias: 1 } });
    await dev.endAsync();
    const again = await client(g.port, v5('dev1-alias'));
    await sub.waitFor(5, 10_000);
    await again.endAsync();
    assert.deepEqual(sub.got.map((m) => m.payload.toString()), ['mapped', 'aliased', 'forged-alias', 'captured', 'captured']);
    assert.ok(sub.got.every((m) => m.topic === 'holdfast/dev1/t'), sub.got.map((m) => m.topic).join(' '));
    assert.match(g.events[0].detail, /^forged holdfast\/dev1\/t /);
  });

  it('restartBroker: the broker restarts on the same port after the scheduled PUBLISH; the persistent session keeps what was queued', async () => {
    const g = await gateway(broker, [{ action: 'restartBroker', clientId: 'dev1-restart', nth: [1] }]);
    const session = { ...ingest5('ingest5-restart'), clean: false, properties: { sessionExpiryInterval: 300 } };
    const sub = await client(broker.port, session);
    await sub.subscribeAsync('holdfast/dev1/restart', { qos: 1 });
    await sub.endAsync();
    const dev = await client(g.port, v5('dev1-restart'));
    await dev.publishAsync('holdfast/dev1/restart', 'before', { qos: 1 });
    const closed = once(dev, 'close', 5000);
    dev.publish('holdfast/dev1/restart', 'trigger', { qos: 1 }, () => undefined);
    await closed;
    await g.brokerRestarts();
    assert.ok(broker.running);
    assert.match(formatEvent(g.events[0]), /rule=0 ordinal=1 .*publish restartBroker restarting mosquitto/);
    const got: string[] = [];
    const again = mqtt.connect({ host: broker.host, port: broker.port, reconnectPeriod: 0, ...session });
    again.on('message', (_t, payload) => got.push(payload.toString()));
    const [connack] = (await once(again, 'connect')) as [{ sessionPresent: boolean }];
    await until(() => got.length > 0, 'the message queued before the restart');
    await again.endAsync();
    assert.equal(connack.sessionPresent, true);
    assert.ok(got[0] === 'before', `queued before the restart: ${got.join(', ')}`);
  });
});

describe('decodePacket', () => {
  it('decodes what mqtt-packet generated, per protocol version', () => {
    const p = decodePacket(Buffer.from([0x30, 0x05, 0x00, 0x01, 0x74, 0x68, 0x69]), 4);
    assert.equal(p?.cmd, 'publish');
    assert.equal((p as { topic?: string }).topic, 't');
  });
});
