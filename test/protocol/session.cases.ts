/**
 * The MQTT session's flow-control core (docs/spec/mqtt-session.md) in Node
 * and in XS, driven against a scripted in-memory broker built on the same
 * codec (session-broker.ts): the send quota, in-order acknowledgement,
 * resends after reconnect, the oversize and reason-code policies, refused
 * CONNECT, keep-alive, bad bytes, and the backoff bounds.
 */
import { decodePacket, encodePacket, type PublishPacket } from '../../firmware/protocol/mqtt/index.ts';
import { backoffDelayMs, MqttSession, SessionState, type SessionOptions } from '../../firmware/protocol/mqtt-session/index.ts';
import type { Entropy } from '../../firmware/hal/entropy.ts';
import { equal, ok, throws } from '../support/check.ts';
import type { CaseSuite } from '../support/cases.ts';
import { Outbox } from '../../firmware/storage/outbox.ts';
import { BASE_OPTIONS, FakeBroker, Link, MemorySource } from './session-broker.ts';
import { OutboxSource } from '../../firmware/protocol/mqtt-session/index.ts';

function setup(count: number, options: Partial<SessionOptions> = {}, size = 8): { link: Link; source: MemorySource; session: MqttSession; broker: FakeBroker } {
  const source = new MemorySource(count, size);
  const session = new MqttSession({ ...BASE_OPTIONS, ...options }, source);
  const broker = new FakeBroker();
  return { link: new Link(session, broker), source, session, broker };
}

/** Deterministic entropy (xorshift32), or a constant byte. */
function entropy(seed: number): Entropy {
  let x = seed >>> 0 || 1;
  return {
    fill(target: Uint8Array): void {
      for (let i = 0; i < target.length; i++) {
        x ^= x << 13;
        x >>>= 0;
        x ^= x >>> 17;
        x ^= x << 5;
        x >>>= 0;
        target[i] = x & 0xff;
      }
    },
  };
}

function constant(byte: number): Entropy {
  return { fill: (t: Uint8Array) => void t.fill(byte) };
}

function ids(publishes: PublishPacket[]): number[] {
  return publishes.map((p) => p.packetId ?? -1);
}

function seqOf(p: PublishPacket): number {
  return p.payload[0];
}

export const suite: CaseSuite = {
  name: 'mqtt session flow control',
  cases: [
    {
      name: 'CONNECT carries Clean Start 0, Session Expiry and our Maximum Packet Size',
      run() {
        const { link, broker } = setup(0);
        link.open({});
        const connect = broker.received[0];
        ok(connect.type === 'connect', 'first packet is CONNECT');
        equal(connect.cleanStart, false, 'clean start');
        equal(connect.properties.sessionExpiryInterval, 3600, 'session expiry');
        equal(connect.properties.maximumPacketSize, 4096, 'maximum packet size');
        equal(link.session.state, SessionState.CONNECTED, 'connected');
        equal(link.session.sendQuota, 65535, 'absent Receive Maximum → 65,535');
      },
    },
    {
      name: 'quota never exceeded with Receive Maximum 1, 2 and 20; everything delivered in order',
      run() {
        const report: Record<string, number> = {};
        for (const rm of [1, 2, 20]) {
          const { link, broker, source, session } = setup(100);
          link.open({ receiveMaximum: rm });
          equal(broker.held.length, rm, `RM ${rm}: exactly RM PUBLISHes before the first PUBACK`);
          equal(session.sendQuota, 0, `RM ${rm}: quota used up`);
          link.drain();
          equal(broker.violations, 0, `RM ${rm}: window violations`);
          equal(broker.peakInFlight, rm, `RM ${rm}: peak in flight`);
          equal(source.ackedUpTo, 99, `RM ${rm}: all acknowledged`);
          equal(session.stats().quotaViolations, 0, `RM ${rm}: session's own count`);
          equal(broker.publishes().length, 100, `RM ${rm}: each record sent once`);
          report[`peakRm${rm}`] = broker.peakInFlight;
        }
        return report;
      },
    },
    {
      name: 'PINGREQ and SUBSCRIBE do not consume quota',
      run() {
        const { link, broker, session } = setup(0);
        link.open({ receiveMaximum: 1 });
        equal(session.sendQuota, 1, 'quota 1');
        link.apply(session.subscribe(['cmd/dev-1'], link.now));
        equal(link.eventsOf('suback').length, 1, 'SUBACK reported');
        link.tick(10_000);
        equal(broker.received.filter((p) => p.type === 'pingreq').length, 1, 'PINGREQ sent when idle for keep-alive');
        equal(session.sendQuota, 1, 'quota unchanged by SUBSCRIBE and PINGREQ');
        // A record appears now: it can still go out with quota 1.
        const src = setup(1);
        src.link.open({ receiveMaximum: 1 });
        src.link.apply(src.session.subscribe(['a', 'b'], 0));
        src.link.tick(10_000);
        equal(src.broker.publishes().length, 1, 'the one record went out despite SUBSCRIBE and PINGREQ');
      },
    },
    {
      name: 'out-of-order PUBACKs acknowledge the source in order',
      run() {
        const { link, broker, source } = setup(5);
        link.open({ receiveMaximum: 5 });
        equal(broker.held.length, 5, '5 in flight');
        link.deliver(broker.release(4)); // seq 4
        link.deliver(broker.release(2)); // seq 2
        equal(source.ackedUpTo, -1, 'nothing acked while seq 0 is open');
        link.deliver(broker.release(0)); // seq 0
        equal(source.ackedUpTo, 0, 'seq 0');
        link.deliver(broker.release(0)); // seq 1 → 1 and 2
        equal(source.ackedUpTo, 2, 'run up to seq 2');
        link.deliver(broker.release(0)); // seq 3 → 3 and 4
        equal(source.ackedUpTo, 4, 'all');
        equal(source.ackCalls, 3, 'three cumulative acks');
      },
    },
    {
      name: 'reconnect with session present: DUP resends with the original ids first, then new records',
      run() {
        const { link, broker, source } = setup(6);
        link.open({ receiveMaximum: 3 });
        const first = broker.publishes().slice();
        equal(first.length, 3, '3 sent');
        link.deliver(broker.release(1)); // seq 1 delivered, frees one unit → seq 3 goes out
        equal(broker.publishes().length, 4, 'seq 3 sent');
        const idsBefore = new Map(broker.publishes().map((p) => [seqOf(p), p.packetId]));
        link.close();
        const before = broker.received.length;
        link.now += 1000;
        link.tick(0); // nothing happens while idle
        equal(broker.received.length, before, 'no resend on a timer while disconnected');
        link.open({ receiveMaximum: 3, sessionPresent: true });
        const after = broker.received.slice(before + 1).filter((p): p is PublishPacket => p.type === 'publish');
        equal(after.length, 3, 'quota 3 on the new connection');
        equal(after.map(seqOf).join(','), '0,2,3', 'the unacknowledged ones, in order, first');
        for (const p of after) {
          equal(p.dup, true, `seq ${seqOf(p)} DUP`);
          equal(p.packetId, idsBefore.get(seqOf(p)), `seq ${seqOf(p)} original id`);
        }
        link.drain();
        equal(source.ackedUpTo, 5, 'all delivered');
        const fresh = broker.publishes().slice(7);
        equal(fresh.map(seqOf).join(','), '4,5', 'new records after the resends');
        ok(fresh.every((p) => !p.dup), 'new records without DUP');
      },
    },
    {
      name: 'reconnect without session present: unacknowledged records resent as new PUBLISHes',
      run() {
        const { link, broker, source } = setup(4);
        link.open({ receiveMaximum: 2 });
        link.close();
        const before = broker.publishes().length;
        link.open({ receiveMaximum: 2, sessionPresent: false });
        const again = broker.publishes().slice(before);
        equal(again.map(seqOf).join(','), '0,1', 'the same records first');
        ok(again.every((p) => !p.dup), 'DUP 0');
        link.drain();
        equal(source.ackedUpTo, 3, 'all delivered');
      },
    },
    {
      name: 'no resend on a timer within a connection',
      run() {
        const { link, broker } = setup(2);
        link.open({ receiveMaximum: 2 });
        for (let i = 0; i < 20; i++) {
          link.tick(1000);
          // answer PINGREQs so the link stays up
          if (broker.received[broker.received.length - 1].type === 'pingreq') link.deliver(broker.encode({ type: 'pingresp' }));
        }
        equal(broker.publishes().length, 2, 'each PUBLISH once');
        equal(link.closedBySession, false, 'link alive');
      },
    },
    {
      name: 'oversize record: reported, never sent, acknowledged in order (drop policy)',
      run() {
        const source = new MemorySource(0);
        for (let seq = 0; seq < 3; seq++) source.records.push({ seq, payload: new Uint8Array(seq === 1 ? 200 : 10).fill(seq) });
        const session = new MqttSession(BASE_OPTIONS, source);
        const broker = new FakeBroker();
        const link = new Link(session, broker);
        link.open({ receiveMaximum: 10, maximumPacketSize: 100 });
        equal(broker.oversizeSeen, 0, 'no oversize packet on the wire');
        equal(broker.publishes().map(seqOf).join(','), '0,2', 'seq 1 not sent');
        const over = link.eventsOf('oversize');
        equal(over.length, 1, 'one oversize event');
        equal(over[0].seq, 1, 'for seq 1');
        equal(over[0].limit, 100, 'with the limit');
        ok(over[0].size > 100, 'and the size');
        link.drain();
        equal(source.ackedUpTo, 2, 'acked past it, in order');
        equal(session.stats().oversize, 1, 'counted');
      },
    },
    {
      name: 'PUBACK 0x10 counts as delivered; 0x87 parks until the next connection',
      run() {
        const { link, broker, source, session } = setup(4);
        link.open({ receiveMaximum: 1, autoAck: () => 0x10 });
        equal(source.ackedUpTo, 3, '0x10: all delivered');

        equal(session.stats().parked, 0, '0x10 parks nothing');
        equal(broker.violations, 0, 'no window violation');

        const b = setup(4);
        b.link.open({ receiveMaximum: 2 });
        equal(b.broker.held.length, 2, 'seq 0 and 1 in flight');
        b.link.deliver(b.broker.release(1, 0x87)); // seq 1 refused
        const parked = b.link.eventsOf('parked');
        equal(parked.length, 1, 'one parked event');
        equal(parked[0].seq, 1, 'seq 1');
        equal(parked[0].reasonCode, 0x87, 'with its reason');
        equal(b.broker.publishes().length, 2, 'the freed quota takes no new record on this connection');
        b.link.deliver(b.broker.release(0)); // seq 0 delivered
        equal(b.source.ackedUpTo, 0, 'acked up to the parked one only');
        for (let i = 0; i < 5; i++) {
          b.link.tick(1000);
          if (b.broker.received[b.broker.received.length - 1].type === 'pingreq') b.link.deliver(b.broker.encode({ type: 'pingresp' }));
        }
        equal(b.broker.publishes().length, 2, 'no retry, no new records on this connection (no tight loop)');
        b.link.close();
        const sent = b.broker.publishes().length;
        b.link.open({ receiveMaximum: 2, sessionPresent: true, autoAck: () => 0 });
        const retry = b.broker.publishes().slice(sent);
        equal(seqOf(retry[0]), 1, 'parked record retried first on the next connection');
        equal(retry[0].dup, false, 'as a new PUBLISH (its flow was completed by the PUBACK)');
        equal(b.source.ackedUpTo, 3, 'then the rest');
        equal(b.session.stats().parked, 1, 'counted');
      },
    },
    {
      name: 'Receive Maximum 0 in CONNACK → DISCONNECT 0x82',
      run() {
        const { link, broker } = setup(1);
        // CONNACK, flags 0, reason 0, properties length 3: 0x21 0x0000 (the encoder refuses to write it).
        link.open({ rawConnack: new Uint8Array([0x20, 0x06, 0x00, 0x00, 0x03, 0x21, 0x00, 0x00]) });
        const last = broker.received[broker.received.length - 1];
        ok(last.type === 'disconnect', 'DISCONNECT written');
        equal(last.reasonCode, 0x82, 'protocol error');
        equal(link.closedBySession, true, 'closed');
        equal(broker.publishes().length, 0, 'nothing published');
        equal(link.eventsOf('protocol-error')[0].reasonCode, 0x82, 'reported');
      },
    },
    {
      name: 'refused CONNECT (0x84) is reported; no fallback to 3.1.1',
      run() {
        const { link, broker, session } = setup(1);
        link.open({ connackReason: 0x84 });
        const refused = link.eventsOf('refused');
        equal(refused.length, 1, 'refusal reported');
        equal(refused[0].reasonCode, 0x84, 'with its code');
        equal(link.closedBySession, true, 'closed');
        equal(broker.received.length, 1, 'only the one CONNECT');
        link.close();
        link.open({});
        const connects = broker.received.filter((p) => p.type === 'connect');
        ok(connects.every((p) => p.type === 'connect' && p.protocolVersion === 5), 'every CONNECT is MQTT 5');
        equal(session.state, SessionState.CONNECTED, 'a later connection works');
      },
    },
    {
      name: 'bad bytes → DISCONNECT with the codec reason; unexpected packets → 0x82',
      run() {
        const a = setup(1);
        a.link.open({ receiveMaximum: 1 });
        a.link.deliver(new Uint8Array([0x00, 0x00])); // packet type 0: malformed
        const d = a.broker.received[a.broker.received.length - 1];
        ok(d.type === 'disconnect' && d.reasonCode === 0x81, 'DISCONNECT 0x81');
        const cause = a.link.eventsOf('protocol-error')[0];
        equal(cause.reasonCode, 0x81, 'reported reason');
        ok(cause.cause.length > 0 && !cause.cause.includes('\n'), 'one-line cause');

        const b = setup(0);
        b.link.open({});
        b.link.deliver(b.broker.encode({ type: 'connack', sessionPresent: false, reasonCode: 0, properties: {} }));
        const d2 = b.broker.received[b.broker.received.length - 1];
        ok(d2.type === 'disconnect' && d2.reasonCode === 0x82, 'second CONNACK → 0x82');

        const c = setup(1);
        c.link.open({ receiveMaximum: 1 });
        c.link.deliver(c.broker.encode({ type: 'puback', packetId: 999, reasonCode: 0, properties: {} }));
        const d3 = c.broker.received[c.broker.received.length - 1];
        ok(d3.type === 'disconnect' && d3.reasonCode === 0x82, 'PUBACK for unknown id → 0x82');
        equal(c.source.ackedUpTo, -1, 'nothing acked');

        const e = setup(0);
        e.link.open({});
        e.link.deliver(encodePacket({ type: 'pingreq' }, { protocolVersion: 5 }));
        const d4 = e.broker.received[e.broker.received.length - 1];
        ok(d4.type === 'disconnect' && d4.reasonCode === 0x82, 'PINGREQ from the broker → 0x82');

        const f = setup(0);
        f.link.open({});
        f.link.deliver(f.broker.encode({ type: 'publish', topic: 'cmd/x', payload: new Uint8Array(1), qos: 2, retain: false, dup: false, packetId: 7, properties: {} }));
        const d5 = f.broker.received[f.broker.received.length - 1];
        ok(d5.type === 'disconnect' && d5.reasonCode === 0x82, 'QoS 2 PUBLISH → 0x82');

        const g = setup(0);
        g.link.open({});
        g.link.deliver(g.broker.encode({ type: 'publish', topic: 'cmd/x', payload: new Uint8Array([9]), qos: 1, retain: false, dup: false, packetId: 8, properties: {} }));
        const ack = g.broker.received[g.broker.received.length - 1];
        ok(ack.type === 'puback' && ack.packetId === 8 && ack.reasonCode === 0, 'incoming QoS 1 PUBLISH acknowledged');
        equal(g.link.eventsOf('message').length, 1, 'and reported');
        equal(g.session.sendQuota, 65535, 'an incoming PUBLISH does not touch the send quota');
      },
    },
    {
      name: 'keep-alive: PINGREQ when idle, no PINGRESP in time → dead; no CONNACK in time → dead',
      run() {
        const { link, broker } = setup(0, { keepAliveSec: 5, responseTimeoutMs: 3000 });
        link.open({});
        link.tick(4999);
        equal(broker.received.filter((p) => p.type === 'pingreq').length, 0, 'not before the interval');
        link.tick(1);
        equal(broker.received.filter((p) => p.type === 'pingreq').length, 1, 'at the interval');
        link.deliver(broker.encode({ type: 'pingresp' }));
        link.tick(5000);
        equal(broker.received.filter((p) => p.type === 'pingreq').length, 2, 'again after the next interval');
        link.tick(2999);
        equal(link.closedBySession, false, 'still waiting');
        link.tick(1);
        equal(link.eventsOf('dead').length, 1, 'dead reported');
        equal(link.closedBySession, true, 'close requested');

        const s = new MqttSession({ ...BASE_OPTIONS, responseTimeoutMs: 3000 }, new MemorySource(0));
        const step0 = s.opened(0);
        equal(step0.write.length, 1, 'CONNECT');
        equal(s.tick(2999).close, false, 'waiting for CONNACK');
        const step = s.tick(3000);
        equal(step.close, true, 'no CONNACK → close');
        equal(step.events[0].kind, 'dead', 'reported dead');
      },
    },
    {
      name: 'MQTT 3.1.1 is a configured choice: protocol level 4, no properties',
      run() {
        const source = new MemorySource(3);
        const s = new MqttSession({ ...BASE_OPTIONS, protocolVersion: 4, maxInFlight: 2 }, source);
        const step = s.opened(0);
        const connect = decodePacket(step.write[0], { protocolVersion: 4, maximumPacketSize: 4096 });
        ok(connect.type === 'connect' && connect.protocolVersion === 4 && !connect.cleanStart, 'CONNECT level 4, clean session 0');
        const out = s.received(encodePacket({ type: 'connack', sessionPresent: false, reasonCode: 0, properties: {} }, { protocolVersion: 4 }), 0);
        equal(out.write.length, 2, 'maxInFlight bounds the window in 3.1.1');
        const refused = new MqttSession({ ...BASE_OPTIONS, protocolVersion: 4 }, new MemorySource(0));
        refused.opened(0);
        const r = refused.received(encodePacket({ type: 'connack', sessionPresent: false, reasonCode: 1, properties: {} }, { protocolVersion: 4 }), 0);
        equal(r.events[0].kind, 'refused', 'return code 1 reported as refused');
        equal(r.write.length, 0, 'nothing written');
      },
    },
    {
      name: 'drains the real Outbox on simulated flash: out-of-order PUBACKs, a reconnect, records appended meanwhile',
      run(env) {
        const flash = env.createFlash({ blocks: 4, blockLength: 1024 });
        Outbox.format(flash);
        const outbox = Outbox.open(flash);
        for (let i = 0; i < 40; i++) outbox.append(new Uint8Array([i, 1, 2, 3]));
        const session = new MqttSession({ ...BASE_OPTIONS, maxInFlight: 8, startSeq: outbox.stats().ackSeq }, new OutboxSource(outbox));
        const broker = new FakeBroker();
        const link = new Link(session, broker);
        link.open({ receiveMaximum: 4 });
        for (let i = 0; i < 10; i++) link.deliver(broker.release(broker.held.length - 1)); // newest first
        link.close();
        link.open({ receiveMaximum: 4, sessionPresent: true });
        for (let i = 40; i < 60; i++) outbox.append(new Uint8Array([i, 1, 2, 3]));
        let guard = 0;
        while (outbox.stats().queued > 0) {
          if (guard++ > 1000) throw new Error('drain stalled');
          if (broker.held.length > 0) link.deliver(broker.release(guard % broker.held.length));
          else link.tick(1);
        }
        equal(broker.violations, 0, 'window violations');
        const seen = new Set(broker.publishes().map(seqOf));
        equal(seen.size, 60, 'every record published');
        equal(outbox.stats().ackSeq, 60, 'outbox acknowledged to the end');
        return { published: broker.publishes().length, resent: session.stats().resent };
      },
    },
    {
      name: 'topic alias: a broker without Topic Alias Maximum (absent or 0) never sees one; the full topic every time',
      run() {
        for (const config of [{ receiveMaximum: 4 }, { receiveMaximum: 4, topicAliasMaximum: 0 }]) {
          const { link, broker, source, session } = setup(10);
          link.open(config);
          link.drain();
          equal(source.ackedUpTo, 9, 'all delivered');
          const pubs = broker.publishes();
          equal(pubs.length, 10, 'ten PUBLISHes');
          ok(pubs.every((p) => p.topic === BASE_OPTIONS.topic && p.properties.topicAlias === undefined), 'every PUBLISH has the topic and no alias property');
          equal(link.eventsOf('connected')[0].topicAliasMaximum, 0, 'connected event: alias maximum 0');
          equal(session.stats().aliased, 0, 'none aliased');
        }
      },
    },
    {
      name: 'topic alias: with Topic Alias Maximum 1 or 10, the first PUBLISH carries topic + alias 1, every later one an empty topic + alias 1',
      run() {
        const report: Record<string, number> = {};
        for (const max of [1, 10]) {
          const { link, broker, source, session } = setup(20);
          link.open({ receiveMaximum: 5, topicAliasMaximum: max });
          link.drain();
          equal(source.ackedUpTo, 19, `max ${max}: all delivered`);
          const pubs = broker.publishes();
          equal(pubs.length, 20, `max ${max}: twenty PUBLISHes`);
          equal(pubs[0].topic, BASE_OPTIONS.topic, `max ${max}: first has the topic`);
          equal(pubs[0].properties.topicAlias, 1, `max ${max}: and alias 1`);
          ok(pubs.slice(1).every((p) => p.topic === '' && p.properties.topicAlias === 1), `max ${max}: later ones empty topic + alias 1`);
          ok(broker.topics.every((t) => t === BASE_OPTIONS.topic), `max ${max}: the broker resolves every one to the topic`);
          equal(link.eventsOf('connected')[0].topicAliasMaximum, max, `max ${max}: connected event carries it`);
          equal(session.stats().aliased, 19, `max ${max}: 19 aliased`);
          ok(pubs.every((p, i) => seqOf(p) === i), `max ${max}: in order`);
        }
        // The bytes saved per PUBLISH: topic length (2 + 7 here) minus the alias property (3).
        const plain = new MqttSession(BASE_OPTIONS, new MemorySource(2));
        const aliased = new MqttSession(BASE_OPTIONS, new MemorySource(2));
        plain.opened(0);
        aliased.opened(0);
        const connack = (max: number): Uint8Array => encodePacket({ type: 'connack', sessionPresent: false, reasonCode: 0, properties: max > 0 ? { topicAliasMaximum: max } : {} }, { protocolVersion: 5 });
        const a = plain.received(connack(0), 0).write;
        const b = aliased.received(connack(5), 0).write;
        equal(a.length, 2, 'two PUBLISHes without alias');
        equal(b.length, 2, 'two PUBLISHes with alias');
        equal(b[0].length, a[0].length + 3, 'first: the alias property costs 3 bytes');
        equal(b[1].length, a[1].length + 3 - BASE_OPTIONS.topic.length, 'later: the topic is gone');
        report.bytesSavedPerPublish = a[1].length - b[1].length;
        return report;
      },
    },
    {
      name: 'topic alias: a new connection starts with no mapping; the DUP resend (original packet id) establishes it again',
      run() {
        const { link, broker, source } = setup(6);
        link.open({ receiveMaximum: 3, topicAliasMaximum: 10 });
        equal(broker.publishes().length, 3, '3 sent');
        const firstIds = ids(broker.publishes());
        link.deliver(broker.release(1)); // seq 1 delivered, seq 3 goes out aliased
        equal(broker.publishes()[3].topic, '', 'seq 3: alias only');
        link.close();
        const before = broker.publishes().length;
        link.open({ receiveMaximum: 3, sessionPresent: true, topicAliasMaximum: 10 });
        const resent = broker.publishes().slice(before);
        equal(resent.map(seqOf).join(','), '0,2,3', 'the unacknowledged ones first');
        ok(resent.every((p) => p.dup), 'all DUP');
        equal(resent[0].packetId, firstIds[0], 'seq 0 keeps its packet id');
        equal(resent[0].topic, BASE_OPTIONS.topic, 'the first PUBLISH of the new connection (a DUP resend) carries the topic');
        equal(resent[0].properties.topicAlias, 1, 'and alias 1');
        ok(resent.slice(1).every((p) => p.topic === '' && p.properties.topicAlias === 1), 'then alias only');
        link.drain();
        equal(source.ackedUpTo, 5, 'all delivered');
        ok(broker.topics.every((t) => t === BASE_OPTIONS.topic), 'every PUBLISH resolves to the topic on its own connection');

        // A reconnect to a broker that allows no alias: the full topic again, no alias property.
        const b = setup(4);
        b.link.open({ receiveMaximum: 2, topicAliasMaximum: 5 });
        b.link.close();
        const n = b.broker.publishes().length;
        b.link.open({ receiveMaximum: 2, sessionPresent: true });
        const again = b.broker.publishes().slice(n);
        ok(again.length > 0 && again.every((p) => p.topic === BASE_OPTIONS.topic && p.properties.topicAlias === undefined), 'no alias where the new CONNACK allows none');
        b.link.drain();
        equal(b.source.ackedUpTo, 3, 'all delivered');

        // Session present 0: resent as new PUBLISHes; the first establishes the alias.
        const c = setup(3);
        c.link.open({ receiveMaximum: 3, topicAliasMaximum: 5 });
        c.link.close();
        const m = c.broker.publishes().length;
        c.link.open({ receiveMaximum: 3, sessionPresent: false, topicAliasMaximum: 5 });
        const fresh = c.broker.publishes().slice(m);
        equal(fresh.length, 3, 'three resent');
        equal(fresh[0].topic, BASE_OPTIONS.topic, 'first carries the topic');
        ok(fresh.slice(1).every((p) => p.topic === ''), 'then alias only');
      },
    },
    {
      name: 'topic alias: topicAliases false and MQTT 3.1.1 never send one',
      run() {
        const { link, broker, session } = setup(5, { topicAliases: false });
        link.open({ receiveMaximum: 5, topicAliasMaximum: 10 });
        link.drain();
        ok(broker.publishes().every((p) => p.topic === BASE_OPTIONS.topic && p.properties.topicAlias === undefined), 'topicAliases false: full topic, no alias');
        equal(session.stats().aliased, 0, 'none aliased');

        const s = new MqttSession({ ...BASE_OPTIONS, protocolVersion: 4, maxInFlight: 3 }, new MemorySource(3));
        s.opened(0);
        const out = s.received(encodePacket({ type: 'connack', sessionPresent: false, reasonCode: 0, properties: {} }, { protocolVersion: 4 }), 0);
        equal(out.write.length, 3, 'three PUBLISHes in 3.1.1');
        for (const bytes of out.write) {
          const p = decodePacket(bytes, { protocolVersion: 4, maximumPacketSize: 4096 });
          ok(p.type === 'publish' && p.topic === BASE_OPTIONS.topic, '3.1.1: the full topic every time');
        }
        const connected = out.events.find((e) => e.kind === 'connected');
        ok(connected !== undefined && connected.kind === 'connected' && connected.topicAliasMaximum === 0, '3.1.1: alias maximum 0');
      },
    },
    {
      name: 'topic alias: the broker Maximum Packet Size is judged on the bytes actually written',
      run() {
        // Sizes: full topic (t/dev-1, 7 bytes) + alias = aliased + 9 bytes. Limit between the two forms of record 1.
        const source = new MemorySource(0);
        source.records.push({ seq: 0, payload: new Uint8Array(10) });
        source.records.push({ seq: 1, payload: new Uint8Array(40).fill(1) });
        source.records.push({ seq: 2, payload: new Uint8Array(10).fill(2) });
        const probe = (topic: string, n: number): number => encodePacket({ type: 'publish', topic, payload: new Uint8Array(n), qos: 1, retain: false, dup: false, packetId: 1, properties: { topicAlias: 1 } }, { protocolVersion: 5 }).length;
        const limit = probe('', 40);
        ok(probe(BASE_OPTIONS.topic, 40) > limit, 'record 1 with its topic would be over the limit');
        const session = new MqttSession(BASE_OPTIONS, source);
        const broker = new FakeBroker();
        const link = new Link(session, broker);
        link.open({ receiveMaximum: 10, maximumPacketSize: limit, topicAliasMaximum: 2 });
        equal(link.eventsOf('oversize').length, 0, 'record 1 fits with the alias alone: not dropped');
        equal(broker.publishes().map(seqOf).join(','), '0,1,2', 'all three sent');
        equal(broker.oversizeSeen, 0, 'nothing above the limit on the wire');
        link.drain();
        equal(source.ackedUpTo, 2, 'all delivered');

        // The same record first on a connection (it must carry the topic): over the limit, dropped and reported; the next one maps the alias.
        const s2 = new MemorySource(0);
        s2.records.push({ seq: 0, payload: new Uint8Array(40).fill(0) });
        s2.records.push({ seq: 1, payload: new Uint8Array(10).fill(1) });
        s2.records.push({ seq: 2, payload: new Uint8Array(10).fill(2) });
        const b = new FakeBroker();
        const l2 = new Link(new MqttSession(BASE_OPTIONS, s2), b);
        l2.open({ receiveMaximum: 10, maximumPacketSize: limit, topicAliasMaximum: 2 });
        const over = l2.eventsOf('oversize');
        equal(over.length, 1, 'first record dropped');
        equal(over[0].size, probe(BASE_OPTIONS.topic, 40), 'reported with the size it would have had');
        const pubs = b.publishes();
        equal(pubs.map(seqOf).join(','), '1,2', 'the rest sent');
        equal(pubs[0].topic, BASE_OPTIONS.topic, 'the first one written carries the topic');
        equal(pubs[1].topic, '', 'then alias only');
        equal(b.oversizeSeen, 0, 'nothing above the limit on the wire');
      },
    },
    {
      name: 'topic alias from the broker: refused (the session announces no Topic Alias Maximum) with DISCONNECT 0x94',
      run() {
        const { link, broker } = setup(0);
        link.open({ topicAliasMaximum: 10 });
        const connect = broker.received[0];
        ok(connect.type === 'connect' && connect.properties.topicAliasMaximum === undefined, 'CONNECT announces no Topic Alias Maximum');
        link.deliver(broker.encode({ type: 'publish', topic: 'cmd/x', payload: new Uint8Array([1]), qos: 1, retain: false, dup: false, packetId: 3, properties: { topicAlias: 1 } }));
        const last = broker.received[broker.received.length - 1];
        ok(last.type === 'disconnect' && last.reasonCode === 0x94, 'DISCONNECT 0x94 Topic Alias invalid');
        equal(link.eventsOf('protocol-error')[0]?.reasonCode, 0x94, 'reported');
        equal(link.eventsOf('message').length, 0, 'no message event');
        equal(link.closedBySession, true, 'closed');
      },
    },
    {
      name: 'backoff: full jitter within bounded exponential ceilings, from the entropy HAL',
      run() {
        const opts = { baseMs: 500, capMs: 60_000 };
        for (let attempt = 0; attempt < 40; attempt++) {
          const ceiling = Math.min(60_000, 500 * 2 ** attempt);
          equal(backoffDelayMs(attempt, constant(0), opts), 0, `attempt ${attempt}: lowest`);
          equal(backoffDelayMs(attempt, constant(0xff), opts), ceiling, `attempt ${attempt}: highest is the ceiling`);
          const rng = entropy(attempt + 1);
          for (let i = 0; i < 50; i++) {
            const d = backoffDelayMs(attempt, rng, opts);
            ok(Number.isInteger(d) && d >= 0 && d <= ceiling, `attempt ${attempt}: ${d} within 0..${ceiling}`);
          }
        }
        equal(backoffDelayMs(3, entropy(7), opts), backoffDelayMs(3, entropy(7), opts), 'pure in (attempt, entropy)');
        throws(() => backoffDelayMs(-1, constant(0)), 'RangeError', 'negative attempt');
        return { ceilingAt10: Math.min(60_000, 500 * 2 ** 10) };
      },
    },
  ],
};
