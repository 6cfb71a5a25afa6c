/**
 * The session's flow-control core against the real mosquitto (MQTT 5) over
 * a node:net socket, in Node: mosquitto advertises Receive Maximum 3
 * (max_inflight_messages) and Maximum Packet Size 512; the session drains
 * 200 records, never has more than 3 PUBLISHes unacknowledged, and reports
 * the one oversize record instead of sending it (mosquitto would close the
 * connection on it). mosquitto's default Topic Alias Maximum (10) lets the
 * session send the topic once and alias 1 after it; mosquitto accepts every
 * aliased PUBLISH (it would close the connection on an unmapped alias).
 * No subscriber: PUBACK 0x10 counts as delivered.
 * Without mosquitto the test skips with a message, except under CI.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { findMosquitto, findMosquittoPasswd, requireComponents, skipUnless } from '../../tools/net/common.ts';
import { startMosquitto, type MosquittoBroker } from '../../tools/net/mosquitto.ts';
import { MqttStreamDecoder } from '../../firmware/protocol/mqtt/index.ts';
import { MqttSession, type SessionEvent, type Step } from '../../firmware/protocol/mqtt-session/index.ts';
import { BASE_OPTIONS, MemorySource } from './session-broker.ts';

const needs = [findMosquitto(), findMosquittoPasswd()];
const skip = skipUnless(needs);

describe('mqtt session against mosquitto', { skip }, () => {
  let broker: MosquittoBroker;
  before(async () => {
    requireComponents(needs);
    broker = await startMosquitto({ devices: [{ deviceId: 'dev1', password: 'pw-dev1' }], maxInflightMessages: 3, maxPacketSize: 512 });
  });
  after(async () => {
    await broker?.stop();
  });

  it('drains 200 records within Receive Maximum 3; the oversize one is reported, not sent', async (t) => {
    const source = new MemorySource(200, 32);
    source.records[57] = { seq: 57, payload: new Uint8Array(600) };
    const session = new MqttSession(
      { ...BASE_OPTIONS, clientId: 'dev1', username: 'dev1', password: new TextEncoder().encode('pw-dev1'), topic: 'holdfast/dev1/telemetry', maxInFlight: 16 },
      source,
    );
    const events: SessionEvent[] = [];
    const start = performance.now();
    const now = (): number => Math.floor(performance.now() - start) >>> 0;
    let unacked = 0;
    const watcher = new MqttStreamDecoder({ protocolVersion: 5, maximumPacketSize: 1 << 20 });
    let peak = 0;
    let largest = 0;
    const socket: Socket = connect(broker.port, '127.0.0.1');
    const apply = (step: Step): void => {
      events.push(...step.events);
      for (const bytes of step.write) {
        if (bytes[0] >> 4 === 3) unacked++;
        if (bytes.length > largest) largest = bytes.length;
        socket.write(bytes);
      }
      peak = Math.max(peak, unacked);
      if (step.close) socket.destroy();
    };
    await new Promise<void>((resolve, reject) => {
      const timer = setInterval(() => apply(session.tick(now())), 20);
      let done = false;
      const finish = (error?: Error): void => {
        if (done) return;
        done = true;
        clearInterval(timer);
        clearTimeout(deadline);
        socket.destroy();
        if (error) reject(error);
        else resolve();
      };
      socket.on('connect', () => apply(session.opened(now())));
      socket.on('data', (data: Buffer) => {
        const bytes = new Uint8Array(data.buffer, data.byteOffset, data.length);
        // The test's own count of the window: PUBACKs decoded independently, before the session sees them.
        for (const p of watcher.push(bytes).packets) if (p.type === 'puback') unacked--;
        const before = events.length;
        apply(session.received(bytes, now()));
        for (const e of events.slice(before)) if (e.kind === 'protocol-error' || e.kind === 'dead' || e.kind === 'refused') finish(new Error(`session: ${JSON.stringify(e)}`));
        if (source.ackedUpTo === 199) finish();
      });
      socket.on('error', (error) => finish(error));
      socket.on('close', () => (source.ackedUpTo === 199 ? finish() : finish(new Error(`connection closed at ack ${source.ackedUpTo}; events ${JSON.stringify(events.slice(-3))}`))));
      const deadline = setTimeout(() => finish(new Error(`timeout at ack ${source.ackedUpTo}`)), 20_000);
    });
    const connected = events.find((e) => e.kind === 'connected');
    assert.ok(connected && connected.kind === 'connected');
    assert.equal(connected.receiveMaximum, 3, 'mosquitto advertises Receive Maximum 3');
    assert.equal(connected.maximumPacketSize, 512, 'and Maximum Packet Size 512');
    assert.ok(connected.topicAliasMaximum >= 1, `mosquitto allows topic aliases (Topic Alias Maximum ${connected.topicAliasMaximum})`);
    const stats = session.stats();
    assert.equal(stats.quotaViolations, 0);
    assert.ok(stats.peakInFlight <= 3, `peak in flight ${stats.peakInFlight}`);
    assert.ok(peak <= 3, `peak unacknowledged seen on the wire ${peak}`);
    assert.ok(largest <= 512, `largest packet written ${largest}`);
    const oversize = events.filter((e) => e.kind === 'oversize');
    assert.equal(oversize.length, 1);
    assert.equal(oversize[0].kind === 'oversize' && oversize[0].seq, 57);
    assert.equal(stats.published, 199, 'every other record published once');
    assert.equal(stats.aliased, 198, 'all but the first with the topic alias alone');
    assert.equal(source.ackedUpTo, 199);
    t.diagnostic(`peak in flight ${stats.peakInFlight} (wire ${peak}), largest packet ${largest} bytes, ${stats.published} published`);
  });
});
