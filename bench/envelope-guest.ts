/**
 * Inside XS, for bench/envelope.bench.ts: the device's telemetry path with
 * its flash held by the Node side, so XS's meter counts firmware work.
 *
 * - 'sealer' + 'seal': seal a 64-byte payload under the persistent counter
 *   and encode it as an MQTT 5 QoS 1 PUBLISH, `count` times (no outbox).
 * - 'device' + 'append': a SealedOutbox (counter and outbox partitions)
 *   drained by an MqttSession through OutboxSource into a broker that holds
 *   its PUBACKs (the window stays full): the device with a backlog.
 * - 'heap': collect garbage, so the reply's meter shows live slots only.
 */
import { createNobleCrypto } from '../firmware/security/noble-crypto.ts';
import { envelopePrimitives } from '../firmware/security/envelope-primitives.ts';
import { deriveDeviceKeys } from '../firmware/security/envelope-keys.ts';
import { EnvelopeSealer } from '../firmware/security/envelope.ts';
import type { TelemetrySuite } from '../firmware/security/envelope-format.ts';
import { Counter } from '../firmware/storage/counter.ts';
import { Outbox } from '../firmware/storage/outbox.ts';
import { encodePacket } from '../firmware/protocol/mqtt/index.ts';
import { MqttSession, OutboxSource } from '../firmware/protocol/mqtt-session/index.ts';
import { SealedOutbox } from '../firmware/protocol/telemetry/index.ts';
import { RemoteFlash } from '../tools/xs/guest/remote-flash.ts';
import { fromUtf8, utf8 } from '../tools/xs/wire.ts';
import { BASE_OPTIONS, FakeBroker, Link } from '../test/protocol/session-broker.ts';

interface EnvelopeBenchRequest {
  op: 'sealer' | 'seal' | 'device' | 'append' | 'heap';
  suite?: TelemetrySuite;
  topic?: string;
  outboxBlocks?: number;
  receiveMaximum?: number;
  count?: number;
}

declare const gc: () => void;

const DEVICE_ID = Uint8Array.of(0xd1, 0, 0, 0, 0, 0, 0, 0x0a);

export function serveEnvelopeBench(): void {
  const state: { sealer?: EnvelopeSealer; topic: string; sealed?: SealedOutbox; link?: Link; outbox?: Outbox; packetId: number; payload: Uint8Array } = {
    topic: 't',
    packetId: 0,
    payload: new Uint8Array(64).fill(0x42),
  };
  (globalThis as { handleCommand?: (r: ArrayBuffer) => ArrayBuffer }).handleCommand = (request) => {
    const message = JSON.parse(fromUtf8(new Uint8Array(request))) as EnvelopeBenchRequest;
    const crypto = createNobleCrypto();
    let reply: Record<string, unknown> = {};
    if (message.op === 'sealer' || message.op === 'device') {
      const secret = new Uint8Array(32).fill(0x11);
      const keys = deriveDeviceKeys(crypto, secret, DEVICE_ID, 1);
      const counterFlash = RemoteFlash.create({ blocks: 2 });
      Counter.format(counterFlash);
      const counter = Counter.open(counterFlash);
      state.topic = message.topic ?? 't';
      if (message.op === 'sealer') {
        state.sealer = new EnvelopeSealer({ primitives: envelopePrimitives(crypto), keys, counter, suite: message.suite });
      } else {
        const outbox = Outbox.open(RemoteFlash.create({ blocks: message.outboxBlocks ?? 64 }));
        state.outbox = outbox;
        state.sealed = new SealedOutbox({ outbox, counter, primitives: envelopePrimitives(crypto), keys, suite: message.suite });
        const session = new MqttSession({ ...BASE_OPTIONS, topic: state.topic, maxInFlight: 64, startSeq: outbox.stats().ackSeq }, new OutboxSource(outbox));
        state.link = new Link(session, new FakeBroker());
        state.link.open({ receiveMaximum: message.receiveMaximum ?? 20 });
      }
    }
    if (message.op === 'seal') {
      const sealer = state.sealer!;
      let bytes = 0;
      for (let i = 0; i < (message.count ?? 0); i++) {
        const envelope = sealer.seal(state.payload);
        state.packetId = state.packetId === 65535 ? 1 : state.packetId + 1;
        bytes += encodePacket({ type: 'publish', topic: state.topic, payload: envelope, qos: 1, retain: false, dup: false, packetId: state.packetId, properties: {} }, { protocolVersion: 5 }).length;
      }
      reply = { bytes };
    }
    if (message.op === 'append') {
      const sealed = state.sealed!;
      for (let i = 0; i < (message.count ?? 0); i++) sealed.append(state.payload);
      // The session takes what its window allows (the broker holds every PUBACK: the window stays full).
      state.link!.tick(0);
      reply = { queued: state.outbox!.stats().queued, inFlight: state.link!.session.stats().inFlight };
    }
    if (message.op === 'heap') gc();
    return utf8(JSON.stringify(reply)).buffer as ArrayBuffer;
  };
}
