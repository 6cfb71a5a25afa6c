/**
 * Helpers for the runtime's MQTT cases (engine-neutral): a scripted broker
 * behind the device's fake socket, deliveries on the device's topics, and
 * the telemetry records the device published, opened with its keys.
 */
import type { Crypto } from '../../firmware/hal/crypto.ts';
import { authenticateEnvelope } from '../../firmware/security/envelope.ts';
import { deriveDeviceKeys } from '../../firmware/security/envelope-keys.ts';
import { envelopePrimitives } from '../../firmware/security/envelope-primitives.ts';
import { deviceTopic } from '../../firmware/protocol/telemetry/index.ts';
import { FakeBroker } from '../protocol/session-broker.ts';
import { serve } from '../protocol/client-fakes.ts';
import { TEST_DEVICE_ID, TEST_KEY_ID, testSecret } from '../support/test-device.ts';
import { equal } from '../support/check.ts';
import type { Device } from './runtime-world.ts';

export const COMMAND_TOPIC = deviceTopic(TEST_DEVICE_ID, 'cmd');
export const UPDATE_TOPIC = deviceTopic(TEST_DEVICE_ID, 'update');
export const TELEMETRY_TOPIC = deviceTopic(TEST_DEVICE_ID, 'telemetry');

/** The device connected to a fresh scripted broker that acknowledges every PUBLISH at once. */
export function connect(d: Device): FakeBroker {
  const broker = new FakeBroker();
  broker.reset({ receiveMaximum: 8, autoAck: () => 0 });
  d.net.last.accept(8192);
  pump(d, broker);
  equal(d.runtime.status().linkConnected, true, 'connected');
  return broker;
}

/** Service the runtime and pass bytes both ways until quiet. */
export function pump(d: Device, broker: FakeBroker): void {
  for (let i = 0; i < 4; i++) {
    serve(d.net.last, broker, 8192);
    d.runtime.service();
  }
  serve(d.net.last, broker, 8192);
}

let nextPacketId = 1;
/** The broker forwards `payload` on `topic` (QoS 1) to the device. */
export function deliver(d: Device, broker: FakeBroker, topic: string, payload: Uint8Array): void {
  const packetId = nextPacketId;
  nextPacketId = (nextPacketId % 60_000) + 1;
  d.net.last.deliver(broker.encode({ type: 'publish', topic, payload, qos: 1, retain: false, dup: false, packetId, properties: {} }));
  pump(d, broker);
}

/** Every record payload the device published on its telemetry topic, opened with its keys, in order (resends included). */
export function telemetryRecords(broker: FakeBroker, crypto: Crypto): Uint8Array[] {
  const keys = deriveDeviceKeys(crypto, testSecret(), TEST_DEVICE_ID, TEST_KEY_ID);
  const primitives = envelopePrimitives(crypto);
  const out: Uint8Array[] = [];
  broker.publishes().forEach((p, i) => {
    if (broker.topics[i] !== TELEMETRY_TOPIC) return;
    out.push(authenticateEnvelope(p.payload, { primitives, deviceId: TEST_DEVICE_ID, keys: () => keys }).payload);
  });
  return out;
}

/** The topic filters the device subscribed to, over all connections. */
export function subscribed(broker: FakeBroker): string[] {
  const out: string[] = [];
  for (const p of broker.received) if (p.type === 'subscribe') for (const s of p.subscriptions) out.push(s.topicFilter);
  return out;
}
