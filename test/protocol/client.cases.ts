/**
 * The device MQTT client (docs/design/mqtt-client.md) in Node and in XS,
 * against a scripted connector (client-fakes.ts) and the scripted broker of
 * session-broker.ts: writes that honour the stream's room, the bounded write
 * queue, backoff delays drawn from the injected entropy within their
 * ceilings (and no reconnect before them), the version policy (refusal
 * without fallback, fallback only when configured), Maximum QoS 0, resends
 * after a lost link, and the real Outbox drained through OutboxSource.
 */
import { encodePacket, type PublishPacket } from '../../firmware/protocol/mqtt/index.ts';
import { backoffDelayMs, OutboxSource, type SessionOptions } from '../../firmware/protocol/mqtt-session/index.ts';
import { ClientPhase, MqttClient, type MqttClientOptions } from '../../firmware/protocol/mqtt-client/index.ts';
import type { Entropy } from '../../firmware/hal/entropy.ts';
import type { RecordSource } from '../../firmware/protocol/mqtt-session/index.ts';
import { Outbox } from '../../firmware/storage/outbox.ts';
import { equal, ok } from '../support/check.ts';
import type { CaseSuite } from '../support/cases.ts';
import { BASE_OPTIONS, FakeBroker, MemorySource } from './session-broker.ts';
import { constantEntropy, EventLog, FakeClock, FakeNet, serve, xorshiftEntropy } from './client-fakes.ts';

interface RigOptions {
  count?: number;
  size?: number;
  session?: Partial<SessionOptions>;
  client?: Partial<MqttClientOptions>;
  entropy?: Entropy;
  source?: RecordSource;
}

function rig(o: RigOptions = {}) {
  const clock = new FakeClock();
  const net = new FakeNet(clock);
  const log = new EventLog();
  const memory = new MemorySource(o.count ?? 0, o.size ?? 8);
  const client = new MqttClient(
    { host: 'broker.test', port: 1883, session: { ...BASE_OPTIONS, ...o.session }, backoff: { baseMs: 100, capMs: 5000 }, ...o.client },
    { connector: net, clock, entropy: o.entropy ?? xorshiftEntropy(1), source: o.source ?? memory, onEvent: log.push },
  );
  return { clock, net, log, source: memory, client };
}

/** Runs `service` until the backoff is over and the next connection is opening. */
function waitForReconnect(r: ReturnType<typeof rig>): void {
  const before = r.net.streams.length;
  const due = r.client.nextDueMs();
  ok(due !== undefined, 'a reconnect is scheduled');
  r.clock.advance(due ?? 0);
  r.client.service();
  equal(r.net.streams.length, before + 1, 'reconnected when the backoff was over');
}

function connack(properties: Record<string, number>, reasonCode = 0): Uint8Array {
  return encodePacket({ type: 'connack', sessionPresent: false, reasonCode, properties }, { protocolVersion: 5 });
}

export const suite: CaseSuite = {
  name: 'mqtt client (socket loop)',
  cases: [
    {
      name: 'drains through a socket that takes 7 bytes at a time; never writes past the room it reported',
      run() {
        const r = rig({ count: 60, size: 20 });
        const broker = new FakeBroker();
        broker.reset({ receiveMaximum: 4, autoAck: () => 0 });
        r.client.start();
        equal(r.client.phase, ClientPhase.OPENING, 'opening until the first onWritable');
        r.net.last.accept(7);
        serve(r.net.last, broker, 7);
        equal(r.source.ackedUpTo, 59, 'every record acknowledged');
        equal(r.net.breaches(), 0, 'no write beyond the room, none after close');
        equal(broker.violations, 0, 'Receive Maximum kept');
        ok(r.client.stats().peakInFlight <= 4, `peak in flight ${r.client.stats().peakInFlight}`);
        equal(r.log.all.slice(0, 3).map((e) => e.kind).join(','), 'connecting,transport-open,connected', 'event order');
        equal(r.log.of('delivered').length > 0, true, 'deliveries reported');
        return { chunks: r.net.last.chunks.length, peakInFlight: r.client.stats().peakInFlight };
      },
    },
    {
      name: 'backoff: each delay is the injected entropy\'s full-jitter draw within its ceiling; no reconnect before it; reset after CONNACK 0',
      run() {
        const opts = { baseMs: 100, capMs: 5000 };
        const entropy = xorshiftEntropy(42);
        const twin = xorshiftEntropy(42);
        const r = rig({ entropy, client: { backoff: opts } });
        r.client.start();
        for (let k = 0; k < 12; k++) {
          r.net.last.fail('ECONNREFUSED');
          const b = r.log.of('backoff')[k];
          equal(b.attempt, k, `attempt ${k}`);
          equal(b.ceilingMs, Math.min(5000, 100 * 2 ** k), `ceiling ${k}`);
          equal(b.delayMs, backoffDelayMs(k, twin, opts), `delay ${k} is the entropy's draw`);
          ok(b.delayMs >= 0 && b.delayMs <= b.ceilingMs, `delay ${b.delayMs} within 0..${b.ceilingMs}`);
          const streams = r.net.streams.length;
          if (b.delayMs > 0) {
            r.clock.advance(b.delayMs - 1);
            for (let i = 0; i < 1000; i++) r.client.service();
            equal(r.net.streams.length, streams, `no reconnect before the delay (attempt ${k}), however often service runs`);
            r.clock.advance(1);
          }
          r.client.service();
          equal(r.net.streams.length, streams + 1, `reconnect at the delay (attempt ${k})`);
        }
        equal(entropy.draws, 12, 'one entropy draw per backoff, nothing else');
        // Success resets the exponent.
        const broker = new FakeBroker();
        broker.reset({});
        r.net.last.accept(4096);
        serve(r.net.last, broker, 4096);
        equal(r.log.of('connected').length, 1, 'connected');
        r.net.last.fail('ECONNRESET');
        const after = r.log.of('backoff').at(-1);
        equal(after?.attempt, 0, 'attempt counter reset by CONNACK 0');
        equal(after?.ceilingMs, 100, 'ceiling back at the base');
        return { reconnects: r.net.streams.length };
      },
    },
    {
      name: 'no tight reconnect loop: a refused transport for 10 simulated minutes, service every 10 ms',
      run() {
        const r = rig({ entropy: xorshiftEntropy(7), client: { backoff: { baseMs: 1000, capMs: 60_000 } } });
        r.client.start();
        let services = 0;
        for (let t = 0; t < 600_000; t += 10) {
          const s = r.net.last;
          if (!s.failed && !s.closed) s.fail('ECONNREFUSED');
          r.clock.now = t;
          r.client.service();
          services++;
        }
        const connects = r.net.streams.length;
        // Ceilings 1, 2, 4 … 32 s then 60 s: about 20 attempts in 10 minutes, against 60,000 service calls.
        ok(connects <= 40, `${connects} connection attempts in 10 minutes`);
        ok(connects >= 5, `${connects} attempts: it keeps trying`);
        const zero = rig({ entropy: constantEntropy(0) });
        zero.client.start();
        zero.net.last.fail('ECONNREFUSED');
        equal(zero.log.of('backoff')[0].delayMs, 0, 'all-zero entropy gives delay 0');
        equal(zero.net.streams.length, 1, 'even then, no reconnect inside the failure callback: only service() reconnects');
        return { connects, services };
      },
    },
    {
      name: 'a stream that stops draining: the write queue stays within its bound; the client closes and reconnects instead of growing',
      run() {
        const r = rig({ client: { writeQueueBytes: 200 } });
        const broker = new FakeBroker();
        broker.reset({});
        r.client.start();
        r.net.last.accept(4096);
        serve(r.net.last, broker, 4096);
        equal(r.log.of('connected').length, 1, 'connected');
        const stream = r.net.last;
        stream.grant(0); // the socket stops draining
        let delivered = 0;
        for (let id = 1; id <= 80 && !stream.closed; id++) {
          // Each incoming QoS 1 PUBLISH makes the session write a 4-byte PUBACK that cannot leave.
          stream.deliver(encodePacket({ type: 'publish', topic: 'cmd/dev-1', payload: new Uint8Array([id]), qos: 1, retain: false, dup: false, packetId: id, properties: {} }, { protocolVersion: 5 }));
          delivered++;
        }
        const overflow = r.log.of('write-overflow');
        equal(overflow.length, 1, 'overflow reported once');
        ok(overflow[0].queuedBytes + overflow[0].addBytes > 200 && overflow[0].queuedBytes <= 200, 'at the bound, not past it');
        equal(overflow[0].limitBytes, 200, 'with the limit');
        ok(r.client.stats().peakQueuedBytes <= 200, `peak queued ${r.client.stats().peakQueuedBytes}`);
        equal(stream.closed, true, 'connection closed');
        equal(r.log.of('closed').at(-1)?.cause, 'write-overflow', 'closed with cause write-overflow');
        equal(r.log.of('backoff').length, 1, 'reconnect scheduled through the backoff');
        equal(r.net.breaches(), 0, 'no write into a full socket');
        waitForReconnect(r);
        return { delivered, peakQueued: r.client.stats().peakQueuedBytes };
      },
    },
    {
      name: 'CONNACK 0x84: refused and reported, no fallback; every later CONNECT is still MQTT 5',
      run() {
        const r = rig({ count: 3 });
        const broker = new FakeBroker();
        r.client.start();
        for (let i = 0; i < 3; i++) {
          broker.reset({ connackReason: 0x84 });
          r.net.last.accept(4096);
          equal(r.net.last.connectLevel(), 5, `CONNECT ${i} is MQTT 5`);
          serve(r.net.last, broker, 4096);
          waitForReconnect(r);
        }
        const refused = r.log.of('refused');
        equal(refused.length, 3, 'each refusal reported');
        ok(refused.every((e) => e.reasonCode === 0x84 && e.unsupportedVersion), 'as an unsupported version');
        const kept = r.log.of('refused-no-fallback');
        equal(kept.length, 3, 'each time the version is kept, reported');
        ok(kept.every((e) => e.protocolVersion === 5 && e.reasonCode === 0x84), 'version 5 kept');
        equal(r.log.of('protocol-fallback').length, 0, 'no fallback');
        equal(r.client.protocolVersion, 5, 'configured version unchanged');
        equal(r.log.of('closed').every((e) => e.cause === 'session'), true, 'closed by the session');
        // A 3.1.1 broker answers an MQTT 5 CONNECT in 3.1.1 format (return code 1): the same refusal.
        r.net.last.accept(4096);
        r.net.last.deliver(new Uint8Array([0x20, 0x02, 0x00, 0x01]));
        equal(r.log.of('refused-no-fallback').at(-1)?.reasonCode, 1, '3.1.1-format refusal reported as a version refusal');
        equal(r.net.last.closed, true, 'and closed');
        // Configured 3.1.1, return code 1: refused, kept at 3.1.1.
        const v4 = rig({ session: { protocolVersion: 4 } });
        v4.client.start();
        v4.net.last.accept(4096);
        equal(v4.net.last.connectLevel(), 4, 'CONNECT level 4');
        v4.net.last.deliver(new Uint8Array([0x20, 0x02, 0x00, 0x01]));
        equal(v4.log.of('refused-no-fallback')[0]?.protocolVersion, 4, '3.1.1 refusal: version 4 kept');
        // Not authorized is a refusal, not a version matter.
        const auth = rig();
        const b2 = new FakeBroker();
        b2.reset({ connackReason: 0x87 });
        auth.client.start();
        auth.net.last.accept(4096);
        serve(auth.net.last, b2, 4096);
        equal(auth.log.of('refused')[0]?.unsupportedVersion, false, '0x87 is not a version refusal');
        equal(auth.log.of('refused-no-fallback').length, 0, 'no version event');
      },
    },
    {
      name: 'fallbackTo311 policy: after a version refusal the next CONNECT is 3.1.1 and the drain completes',
      run() {
        const r = rig({ count: 5, client: { fallbackTo311: true } });
        const broker = new FakeBroker();
        broker.reset({ connackReason: 0x84 });
        r.client.start();
        r.net.last.accept(4096);
        serve(r.net.last, broker, 4096);
        const fb = r.log.of('protocol-fallback');
        equal(fb.length, 1, 'fallback reported');
        equal(fb[0].from, 5, 'from 5');
        equal(fb[0].to, 4, 'to 3.1.1');
        equal(r.log.of('refused-no-fallback').length, 0, 'not reported as kept');
        waitForReconnect(r);
        const s = r.net.last;
        s.accept(4096);
        equal(s.connectLevel(), 4, 'next CONNECT is level 4');
        s.deliver(new Uint8Array([0x20, 0x02, 0x00, 0x00])); // 3.1.1 CONNACK accepted
        const acked = new Set<number>();
        for (let round = 0; round < 20 && r.source.ackedUpTo < 4; round++) {
          for (const p of s.packets(4)) {
            if (p.type !== 'publish' || p.packetId === undefined || acked.has(p.packetId)) continue;
            acked.add(p.packetId);
            s.deliver(encodePacket({ type: 'puback', packetId: p.packetId, reasonCode: 0, properties: {} }, { protocolVersion: 4 }));
          }
        }
        equal(r.source.ackedUpTo, 4, 'drained over 3.1.1');
        equal(r.client.protocolVersion, 4, 'stays on 3.1.1');
      },
    },
    {
      name: 'CONNACK Maximum QoS 0: reported, no PUBLISH on that connection; the next connection drains',
      run() {
        const r = rig({ count: 4 });
        const broker = new FakeBroker();
        broker.reset({ rawConnack: connack({ maximumQoS: 0 }) });
        r.client.start();
        r.net.last.accept(4096);
        serve(r.net.last, broker, 4096);
        const q = r.log.of('qos-unsupported');
        equal(q.length, 1, 'reported');
        equal(q[0].maximumQos, 0, 'with the announced maximum');
        equal(r.log.of('connected')[0]?.maximumQos, 0, 'connected event carries it');
        for (let i = 0; i < 5; i++) {
          r.clock.advance(1000);
          r.client.service();
        }
        equal(broker.publishes().length, 0, 'no PUBLISH written');
        equal(r.net.last.closed, false, 'the link stays up');
        r.net.last.fail('ECONNRESET');
        waitForReconnect(r);
        broker.reset({ autoAck: () => 0 });
        r.net.last.accept(4096);
        serve(r.net.last, broker, 4096);
        equal(r.source.ackedUpTo, 3, 'drained on a broker granting QoS 1');
      },
    },
    {
      name: 'link lost mid-drain: in-flight records resent first with DUP and their ids; each acknowledged once, in order',
      run() {
        const r = rig({ count: 12 });
        const broker = new FakeBroker();
        broker.reset({ receiveMaximum: 3 });
        r.client.start();
        r.net.last.accept(4096);
        serve(r.net.last, broker, 4096);
        equal(broker.held.length, 3, '3 in flight');
        r.net.last.deliver(broker.release(0));
        serve(r.net.last, broker, 4096);
        equal(r.source.ackedUpTo, 0, 'first acknowledged');
        const inFlight = broker.held.map((p) => p.packetId);
        r.net.last.fail('ECONNRESET');
        equal(r.log.of('closed').at(-1)?.cause, 'stream', 'closed by the stream');
        waitForReconnect(r);
        const before = broker.received.length;
        broker.reset({ receiveMaximum: 3, sessionPresent: true, autoAck: () => 0 });
        r.net.last.accept(4096);
        serve(r.net.last, broker, 4096);
        const again = broker.received.slice(before).filter((p): p is PublishPacket => p.type === 'publish');
        equal(again.slice(0, 3).map((p) => p.packetId).join(','), inFlight.join(','), 'original ids, first');
        ok(again.slice(0, 3).every((p) => p.dup), 'with DUP');
        equal(r.source.ackedUpTo, 11, 'all acknowledged (MemorySource refuses out-of-order or repeated acks)');
        return { resent: r.client.stats().session.resent };
      },
    },
    {
      name: 'nextDueMs: connect timeout, backoff, keep-alive; stop() ends it',
      run() {
        const r = rig({ session: { keepAliveSec: 10, responseTimeoutMs: 3000 } });
        equal(r.client.nextDueMs(), undefined, 'idle: nothing due');
        r.client.start();
        equal(r.client.nextDueMs(), 3000, 'opening: the connect timeout');
        r.clock.advance(3000);
        r.client.service();
        equal(r.log.of('closed')[0]?.cause, 'connect-timeout', 'no onWritable in time');
        const delay = r.log.of('backoff')[0].delayMs;
        equal(r.client.nextDueMs(), delay, 'waiting: the backoff delay');
        waitForReconnect(r);
        const broker = new FakeBroker();
        broker.reset({});
        r.net.last.accept(4096);
        serve(r.net.last, broker, 4096);
        equal(r.client.nextDueMs(), 10_000, 'connected: the next PINGREQ');
        r.clock.advance(10_000);
        r.client.service();
        equal(broker.publishes().length, 0, 'nothing to publish');
        serve(r.net.last, broker, 4096);
        equal(broker.received.at(-1)?.type, 'pingreq', 'PINGREQ when due');
        equal(r.client.nextDueMs(), 3000, 'then the PINGRESP deadline');
        r.client.stop();
        equal(r.client.phase, ClientPhase.STOPPED, 'stopped');
        equal(r.log.of('closed').at(-1)?.cause, 'stopped', 'closed by stop()');
        equal(r.client.nextDueMs(), undefined, 'nothing due');
        const streams = r.net.streams.length;
        r.clock.advance(600_000);
        r.client.service();
        equal(r.net.streams.length, streams, 'no reconnect after stop');
      },
    },
    {
      name: 'drains the real Outbox on simulated flash through OutboxSource, across a lost link',
      run(env) {
        const flash = env.createFlash({ blocks: 8, blockLength: 1024 });
        Outbox.format(flash);
        const outbox = Outbox.open(flash);
        for (let i = 0; i < 120; i++) outbox.append(new Uint8Array([i, 0xaa, 0xbb, 0xcc]));
        const r = rig({ source: new OutboxSource(outbox), session: { startSeq: outbox.stats().ackSeq, maxInFlight: 8 } });
        const broker = new FakeBroker();
        broker.reset({ receiveMaximum: 5 });
        r.client.start();
        r.net.last.accept(64);
        serve(r.net.last, broker, 64);
        for (let i = 0; i < 30 && broker.held.length > 1; i++) {
          r.net.last.deliver(broker.release(broker.held.length - 1)); // newest first: out of order
          serve(r.net.last, broker, 64);
        }
        r.net.last.fail('ECONNRESET');
        waitForReconnect(r);
        broker.reset({ receiveMaximum: 5, sessionPresent: true, autoAck: () => 0 });
        r.net.last.accept(64);
        serve(r.net.last, broker, 64);
        equal(outbox.stats().queued, 0, 'outbox empty');
        equal(outbox.stats().ackSeq, 120, 'acknowledged to the end');
        const seen = new Set(broker.publishes().map((p) => p.payload[0]));
        equal(seen.size, 120, 'every record published');
        equal(r.net.breaches(), 0, 'room honoured');
        return { published: broker.publishes().length, resent: r.client.stats().session.resent };
      },
    },
  ],
};
