/**
 * Helpers for test/ingest and bench/ingest: a fleet of devices (device id,
 * key id, secret, suite, broker password), its inventory file, sealed
 * envelopes (sealWithCounter: the test picks counters, as a device's
 * persistent counter would give them), brokers with per-device accounts and
 * an ingest service account, and publishing with mqtt.js.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { deriveDeviceKeys, type DeviceKeys } from '../../firmware/security/envelope-keys.ts';
import { sealWithCounter } from '../../firmware/security/envelope.ts';
import { encodeHeader, envelopeHeaderLength, EnvelopeSuite, peekHeader, type TelemetrySuite } from '../../firmware/security/envelope-format.ts';
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { nodeEnvelopePrimitives } from '../../tools/ingest/node-primitives.ts';
import { LOOPBACK } from '../../tools/net/common.ts';
import { startMosquitto, type MosquittoBroker } from '../../tools/net/mosquitto.ts';
import { startAedes, type AedesBroker } from '../../tools/net/aedes-broker.ts';
import type { SuiteName } from '../../tools/ingest/inventory.ts';

export const INGEST_ACCOUNT = { username: 'ingest', password: 'pw-ingest-7f3a' } as const;
export const PRIMITIVES = nodeEnvelopePrimitives();
const SUITE_BY_NAME: Record<SuiteName, TelemetrySuite> = { 'hmac-sha256': EnvelopeSuite.hmacSha256, 'chacha20-poly1305': EnvelopeSuite.chacha20Poly1305, 'aes-256-gcm': EnvelopeSuite.aes256Gcm };

export interface TestDevice {
  /** 16 hex digits: the device id (covered by every envelope tag, not sent in it), topic level, broker user name. */
  readonly name: string;
  readonly keyId: number;
  readonly secretHex: string;
  readonly suiteName: SuiteName;
  readonly suite: TelemetrySuite;
  readonly keys: DeviceKeys;
  readonly password: string;
  readonly topic: string;
}

/** `count` devices with secrets derived from `seed` (deterministic). */
export function makeFleet(count: number, seed = 1, suites: readonly SuiteName[] = ['hmac-sha256', 'chacha20-poly1305', 'aes-256-gcm']): TestDevice[] {
  const crypto = createNobleCrypto();
  return Array.from({ length: count }, (_, i) => {
    const digest = createHash('sha256').update(`holdfast ingest test ${seed} ${i}`).digest();
    const name = `d1${digest.subarray(0, 7).toString('hex')}`;
    const secretHex = createHash('sha256').update(`secret ${seed} ${i}`).digest('hex');
    const suiteName = suites[i % suites.length];
    const keyId = 1 + (i % 3);
    const keys = deriveDeviceKeys(crypto, new Uint8Array(Buffer.from(secretHex, 'hex')), new Uint8Array(Buffer.from(name, 'hex')), keyId);
    return { name, keyId, secretHex, suiteName, suite: SUITE_BY_NAME[suiteName], keys, password: `pw-${name}`, topic: `holdfast/${name}/telemetry` };
  });
}

export function inventoryJson(devices: readonly TestDevice[]): string {
  return JSON.stringify({ format: 1, devices: devices.map((d) => ({ deviceId: d.name, keyId: d.keyId, secret: d.secretHex, suite: d.suiteName })) }, null, 2);
}

/** A temp dir holding `devices.json`; `cleanup()` removes it. */
export function tempDir(prefix = 'holdfast-ingest-test-'): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function writeInventory(dir: string, devices: readonly TestDevice[]): string {
  const file = join(dir, 'devices.json');
  writeFileSync(file, inventoryJson(devices));
  return file;
}

export function payloadOf(device: TestDevice, counter: number): Uint8Array {
  return new TextEncoder().encode(`${device.name}#${counter}`);
}

/** The envelope device `device` seals for `counter` (deterministic: the same bytes every time, as a resend from the outbox). */
export function seal(device: TestDevice, counter: number, payload = payloadOf(device, counter)): Uint8Array {
  return sealWithCounter(PRIMITIVES, device.keys, device.suite, counter, payload);
}

/**
 * `envelope` (format 2) with its key id and/or counter rewritten in the wire
 * header (varints re-encoded, so the length may change), payload and tag
 * kept: a forgery. The device id is not on the wire: the topic names it.
 */
export function rewriteHeader(envelope: Uint8Array, change: { keyId?: number; counter?: number }): Uint8Array {
  const header = peekHeader(envelope);
  if (header === undefined) throw new Error('rewriteHeader: not an envelope');
  const keyId = change.keyId ?? header.keyId;
  const counter = change.counter ?? header.counter;
  const length = envelopeHeaderLength(keyId, counter);
  const out = new Uint8Array(length + envelope.length - header.headerLength);
  encodeHeader(header.suite, keyId, counter, out);
  out.set(envelope.subarray(header.headerLength), length);
  return out;
}

export type TestBroker = MosquittoBroker | AedesBroker;

export async function startBroker(kind: 'mosquitto' | 'aedes', devices: readonly TestDevice[], options: { openAcl?: boolean } = {}): Promise<TestBroker> {
  const creds = devices.map((d) => ({ deviceId: d.name, password: d.password }));
  // The ingest reads telemetry and writes receipts (docs/spec/receipt.md); a denied receipt PUBLISH makes mosquitto 2.0.11 close the connection.
  const services = [{ ...INGEST_ACCOUNT, read: ['holdfast/#'], write: ['holdfast/+/receipt'] }];
  if (kind === 'mosquitto') return startMosquitto({ devices: creds, services, persistence: true, maxQueuedMessages: 0, ...(options.openAcl ? { openAcl: true } : {}) });
  return startAedes({ devices: creds, services, persistence: true, ...(options.openAcl ? { openAcl: true } : {}) });
}

/** A device's own MQTT connection (its credentials), QoS 1 publishing. */
export async function deviceClient(broker: { port: number; protocolVersions: readonly number[] }, device: TestDevice, port = broker.port): Promise<MqttClient> {
  return mqtt.connectAsync({
    host: LOOPBACK,
    port,
    clientId: `dev-${device.name}`,
    username: device.name,
    password: device.password,
    protocolVersion: broker.protocolVersions.includes(5) ? 5 : 4,
    reconnectPeriod: 100,
    connectTimeout: 5000,
    clean: true,
  });
}

/**
 * Publish every envelope at QoS 1 and wait for every PUBACK; window bounds how many are in flight.
 * A publish that fails because the connection died (a hostile gateway cuts it) is sent again with the
 * same bytes once the client reconnected, as a device resends the sealed record from its outbox.
 */
export async function publishAll(client: MqttClient, topic: string, envelopes: readonly Uint8Array[], window = 500): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < envelopes.length) {
      const e = envelopes[next++];
      for (let attempt = 0; ; attempt++) {
        try {
          await client.publishAsync(topic, Buffer.from(e), { qos: 1 });
          break;
        } catch (error) {
          if (attempt >= 50 || !/Connection closed|client disconnecting|connection lost/i.test(String(error))) throw error;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(window, envelopes.length) }, worker));
}

/** Polls `predicate` every 20 ms until it holds or `timeoutMs` passes (then throws with `what`). */
export async function waitUntil(predicate: () => boolean | Promise<boolean>, timeoutMs: number, what: () => string, pollMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what()}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/**
 * Every device of `fleet` publishes counters 1..perDevice in order, `chunk` at a time (at most `window` in flight),
 * on its own connection, in the background. `published()` counts the records whose PUBACK came back; `done`
 * settles when all have.
 */
export function publishInChunks(clients: readonly MqttClient[], fleet: readonly TestDevice[], perDevice: number, chunk: number, window: number): { done: Promise<void>; published(): number } {
  let published = 0;
  const done = Promise.all(
    fleet.map(async (d, i) => {
      for (let from = 1; from <= perDevice; from += chunk) {
        const length = Math.min(chunk, perDevice - from + 1);
        await publishAll(clients[i], d.topic, Array.from({ length }, (_, k) => seal(d, from + k)), window);
        published += length;
      }
    }),
  ).then(() => undefined);
  return { done, published: () => published };
}
