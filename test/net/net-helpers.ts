/**
 * Helpers for the real-components tests (test/net/): mqtt.js clients with
 * test defaults, a subscriber that records what arrives, and the skip/fail
 * policy for missing system components (tools/net/common.ts).
 */
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { connect, type Socket } from 'node:net';
import mqttPacket from 'mqtt-packet';
import { LOOPBACK, sleep } from '../../tools/net/common.ts';

export const DEVICES = [
  { deviceId: 'dev1', password: 'pw-dev1' },
  { deviceId: 'dev2', password: 'pw-dev2' },
] as const;
export const INGEST = { username: 'ingest', password: 'pw-ingest' } as const;

/** Every client made through `client()`, ended in `endAll()` (after hooks). */
const open = new Set<MqttClient>();

export async function client(port: number, options: IClientOptions): Promise<MqttClient> {
  const c = await mqtt.connectAsync({ host: LOOPBACK, port, reconnectPeriod: 0, connectTimeout: 3000, ...options });
  open.add(c);
  return c;
}

/** Connect and expect a refusal: resolves with the error mqtt.js reports. */
export async function refusedConnect(port: number, options: IClientOptions): Promise<Error & { code?: number }> {
  const c = mqtt.connect({ host: LOOPBACK, port, reconnectPeriod: 0, connectTimeout: 3000, ...options });
  open.add(c);
  return new Promise((resolve, reject) => {
    c.once('error', (e) => resolve(e as Error & { code?: number }));
    c.once('connect', () => reject(new Error('connected, but a refusal was expected')));
    c.once('close', () => setTimeout(() => resolve(Object.assign(new Error('closed without CONNACK'), { code: -1 })), 50));
  });
}

export async function endAll(): Promise<void> {
  await Promise.all([...open].map((c) => c.endAsync(true).catch(() => undefined)));
  open.clear();
}

export interface Received {
  topic: string;
  payload: Buffer;
  dup: boolean;
}

/** A subscriber (QoS 1) recording every PUBLISH it gets, in order. */
export async function subscriber(port: number, options: IClientOptions, filter = 'holdfast/#'): Promise<{ client: MqttClient; got: Received[]; waitFor(n: number, timeoutMs?: number): Promise<Received[]> }> {
  const c = await client(port, options);
  const got: Received[] = [];
  c.on('message', (topic, payload, packet) => got.push({ topic, payload: Buffer.from(payload), dup: packet.dup }));
  await c.subscribeAsync(filter, { qos: 1 });
  return {
    client: c,
    got,
    async waitFor(n: number, timeoutMs = 3000) {
      const deadline = Date.now() + timeoutMs;
      while (got.length < n) {
        if (Date.now() > deadline) throw new Error(`subscriber got ${got.length} of ${n}: ${got.map((g) => g.payload.toString()).join(', ')}`);
        await sleep(5);
      }
      return got;
    },
  };
}

/** Waits for an event on an emitter, or rejects after timeoutMs. */
export function once(emitter: { once(event: string, listener: (...a: any[]) => void): unknown }, event: string, timeoutMs = 3000): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${timeoutMs} ms`)), timeoutMs);
    emitter.once(event, (...args: unknown[]) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

/** A raw MQTT connection that never acknowledges anything: for counting what a broker sends unacknowledged. */
export async function rawClient(port: number, protocolVersion: number): Promise<{ socket: Socket; packets: mqttPacket.Packet[]; send(p: object): void }> {
  const socket = connect({ host: LOOPBACK, port });
  await once(socket, 'connect');
  const parser = mqttPacket.parser({ protocolVersion });
  const packets: mqttPacket.Packet[] = [];
  parser.on('packet', (p) => packets.push(p));
  socket.on('data', (b: Buffer) => parser.parse(b));
  socket.on('error', () => undefined);
  return { socket, packets, send: (p: object) => socket.write(mqttPacket.generate(p as mqttPacket.Packet, { protocolVersion })) };
}

/** Polls `predicate` every 5 ms; rejects naming `what` after timeoutMs (slow machines: wait for the fact, not a fixed time). */
export async function until(predicate: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}
