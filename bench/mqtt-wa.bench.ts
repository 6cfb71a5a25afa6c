/**
 * The MQTT client on the device (issue 17): flash write amplification of
 * the drain itself, records acknowledged one by one as PUBACKs arrive, with
 * the default settings, compared with the storage W2 figures
 * (bench/outbox.bench.ts, ../shared/ANCHORS.md); and the size of the
 * client's es2021 bundle.
 *
 * Drain: the real Outbox on SimFlash, read by OutboxSource, sent by
 * MqttSession to the scripted in-memory broker of
 * test/protocol/session-broker.ts, which answers every PUBLISH with its
 * PUBACK at once; the session acknowledges each record to the outbox as its
 * PUBACK arrives. Same partition and passes as W2: 64 sectors of 4 KiB, two
 * passes of 20,000 records, the second measured.
 */
import { existsSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join, resolve } from 'node:path';
import * as esbuild from 'esbuild';
import { Outbox, type OutboxOptions } from '../firmware/storage/outbox.ts';
import { Counter } from '../firmware/storage/counter.ts';
import { MqttSession, OutboxSource, type RecordSource, type SourceRecord } from '../firmware/protocol/mqtt-session/index.ts';
import { SealedOutbox } from '../firmware/protocol/telemetry/index.ts';
import { createNobleCrypto } from '../firmware/security/noble-crypto.ts';
import { envelopePrimitives } from '../firmware/security/envelope-primitives.ts';
import { deriveDeviceKeys } from '../firmware/security/envelope-keys.ts';
import { EnvelopeSuite } from '../firmware/security/envelope-format.ts';
import { SimFlash, type FlashMode } from '../tools/sim/flash/sim-flash.ts';
import { BASE_OPTIONS, FakeBroker, Link, MemorySource } from '../test/protocol/session-broker.ts';
import type { BenchGroup, Figure } from './figures.ts';
import { steadyState } from './outbox.bench.ts';
import { DEVICE_TOPIC } from './envelope.bench.ts';

const RECORDS = 20_000;
const SECTORS = 64;
const SIZES = [16, 64, 256] as const;
const MODES = ['plain', 'strict'] as const;
/** Target: within 10 % of the storage W2 figure. */
const WITHIN = 1.1;

interface DrainFigures {
  wa: number;
  erasesPerMiB: number;
  published: number;
}

/**
 * Two passes of RECORDS appends of `size` bytes, each followed by a session
 * tick; the broker PUBACKs at once, so each record is acknowledged to the
 * outbox before the next append (`burst` = 1), or after a burst of `burst`
 * appends the session drains them, acknowledging one by one. The second
 * pass is measured. `sealed`: append `size`-byte payloads through a
 * SealedOutbox (hmac-sha256, counter on its own flash, default K), and
 * divide by application payload bytes.
 */
export function drainSteadyState(mode: FlashMode, size: number, burst: number, sealed = false, ackEvery = 1, outboxOptions: OutboxOptions = {}): DrainFigures {
  const flash = new SimFlash({ blocks: SECTORS, mode });
  const counterFlash = new SimFlash({ blocks: 2, mode });
  const outbox = Outbox.open(flash, outboxOptions);
  let append: (payload: Uint8Array) => void = (payload) => void outbox.append(payload);
  if (sealed) {
    Counter.format(counterFlash);
    const crypto = createNobleCrypto();
    const keys = deriveDeviceKeys(crypto, new Uint8Array(32).fill(0x11), Uint8Array.of(0xd1, 0, 0, 0, 0, 0, 0, 0x0a), 1);
    const sealedOutbox = new SealedOutbox({ outbox, counter: Counter.open(counterFlash), primitives: envelopePrimitives(crypto), keys, suite: EnvelopeSuite.hmacSha256 });
    append = (payload) => void sealedOutbox.append(payload);
  }
  const source = ackEvery === 1 ? new OutboxSource(outbox) : new AckBatchingSource(new OutboxSource(outbox), ackEvery);
  const session = new MqttSession({ ...BASE_OPTIONS, topic: DEVICE_TOPIC, maxInFlight: 64, startSeq: outbox.stats().ackSeq }, source);
  const broker = new FakeBroker();
  const link = new Link(session, broker);
  let published = 0;
  link.open({ receiveMaximum: 20, autoAck: () => ((published += 1), 0) });
  const record = new Uint8Array(size);
  const pass = () => {
    for (let i = 0; i < RECORDS; i++) {
      record.fill(i & 0xff);
      append(record);
      if ((i + 1) % burst === 0) link.tick(0);
    }
    link.tick(0);
    if (source instanceof AckBatchingSource) source.flush();
    // The broker keeps what it decoded; the drain figures need none of it.
    broker.received.length = 0;
    broker.topics.length = 0;
  };
  pass();
  flash.resetCounters();
  counterFlash.resetCounters();
  const before = published;
  pass();
  if (outbox.peek() !== undefined) throw new Error(`drain ${mode} ${size}: records left undelivered`);
  if (link.closedBySession || session.stats().quotaViolations !== 0) throw new Error(`drain ${mode} ${size}: session closed or broke its quota`);
  const payload = RECORDS * size;
  return {
    wa: (flash.counters.bytesProgrammed + counterFlash.counters.bytesProgrammed) / payload,
    erasesPerMiB: (flash.counters.erases + counterFlash.counters.erases) / (payload / (1 << 20)),
    published: published - before,
  };
}

/**
 * For comparison with the outbox's own `ackRideFrom` (default 8): acknowledge
 * the outbox every `every` records instead of at every PUBACK, so one
 * append in `every` carries an ack field, as in W2. A bench-only sketch
 * (after a reboot up to `every` - 1 delivered records come again, on top of
 * the outbox's own bound); the outbox now does the same itself (an append
 * carries the ack point only once `ackRideFrom` acks wait).
 */
class AckBatchingSource implements RecordSource {
  private pending: number | undefined;
  private count = 0;

  constructor(
    private readonly inner: RecordSource,
    private readonly every: number,
  ) {}

  peekFrom(seq: number): SourceRecord | undefined {
    return this.inner.peekFrom(seq);
  }

  ack(uptoSeq: number): void {
    this.pending = uptoSeq;
    if (++this.count % this.every !== 0) return;
    this.inner.ack(uptoSeq);
    this.pending = undefined;
  }

  flush(): void {
    if (this.pending !== undefined) this.inner.ack(this.pending);
    this.pending = undefined;
  }
}

/**
 * Bytes the session writes per record in steady state, minus the payload:
 * everything the PUBLISH adds (fixed header, topic or topic alias, packet
 * id, properties). The session drains `records` records of `payloadBytes`
 * bytes to the scripted broker (Receive Maximum 20, PUBACK at once) whose
 * CONNACK has Topic Alias Maximum `topicAliasMaximum` (0: none allowed,
 * the full topic in every PUBLISH); every PUBLISH after the first of the
 * connection is measured, and they must all be the same size.
 */
export function publishBytesPerRecord(topic: string, payloadBytes: number, topicAliasMaximum: number, records = 50): number {
  const source = new MemorySource(records, payloadBytes);
  const session = new MqttSession({ ...BASE_OPTIONS, topic }, source);
  const sizes: number[] = [];
  const broker = new (class extends FakeBroker {
    override feed(bytes: Uint8Array): Uint8Array[] {
      if (bytes[0] >> 4 === 3) sizes.push(bytes.length);
      return super.feed(bytes);
    }
  })();
  const link = new Link(session, broker);
  link.open({ receiveMaximum: 20, topicAliasMaximum, autoAck: () => 0 });
  if (source.ackedUpTo !== records - 1 || sizes.length !== records) throw new Error(`publishBytesPerRecord: ${sizes.length} PUBLISHes for ${records} records`);
  const steady = sizes.slice(1);
  if (steady.some((n) => n !== steady[0])) throw new Error(`publishBytesPerRecord: steady-state PUBLISH sizes differ: ${steady.join(',')}`);
  return steady[0] - payloadBytes;
}

const CLIENT_FOLDERS = ['firmware/protocol/mqtt', 'firmware/protocol/mqtt-session', 'firmware/protocol/mqtt-client'];

/** Minified and gzipped bytes of the es2021 bundle of `entries` (re-exported, so nothing is shaken off), as tools/xs/bundle.ts builds it. */
export async function bundleBytes(entries: readonly string[]): Promise<{ minified: number; gzipped: number }> {
  const contents = entries.map((e) => `export * from ${JSON.stringify(resolve(e))};`).join('\n');
  const result = await esbuild.build({
    stdin: { contents, resolveDir: resolve('.'), sourcefile: 'client-entry.ts', loader: 'ts' },
    bundle: true,
    write: false,
    format: 'iife',
    globalName: 'holdfastClient',
    platform: 'neutral',
    target: 'es2021',
    mainFields: ['module', 'main'],
    conditions: ['module', 'import'],
    minify: true,
    logLevel: 'silent',
  });
  const out = result.outputFiles[0].contents;
  return { minified: out.length, gzipped: gzipSync(out, { level: 9 }).length };
}

export const mqttWaBench: BenchGroup = {
  title: 'MQTT client: drain write amplification and bundle size',
  prefix: 'mqtt.client.',
  workload:
    `Drain: the storage W2 partition and passes (${SECTORS} sectors of 4 KiB, two passes of ${RECORDS.toLocaleString('en-US')} records of exactly 16, 64 or 256 bytes, the second measured), ` +
    'but the records leave through OutboxSource and MqttSession (MQTT 5, Receive Maximum 20, default outbox settings: acks ride on an append once 8 are waiting (ackRideFrom), flushed on their own past 16) ' +
    'to the in-memory broker of test/protocol/session-broker.ts, which PUBACKs each PUBLISH at once: every record is acknowledged, one by one, before the next append. ' +
    'Write amplification = bytes programmed ÷ record bytes, compared with W2 measured in the same run (target: within 10 %). ' +
    'Burst 10: ten appends, then the session drains them (PUBACKs still one by one). Sealed: 16/64/256-byte payloads through SealedOutbox (hmac-sha256, counter on its own flash), ' +
    'bytes programmed (outbox and counter) ÷ application payload bytes: the envelope\'s bytes per record included (format 2, key id 1: 22 bytes at the measured pass\'s counters, 20,001..40,000). ' +
    'Bundle: firmware/protocol/mqtt and mqtt-session (and mqtt-client once it exists), every export kept, esbuild es2021 IIFE as tools/xs/bundle.ts builds it, minified.',
  async run(progress) {
    const figures: Figure[] = [];
    for (const mode of MODES) {
      for (const size of SIZES) {
        progress(`  mqtt drain ${mode} ${size} B`);
        const w2 = steadyState(mode, size, true);
        const drain = drainSteadyState(mode, size, 1);
        const burst = drainSteadyState(mode, size, 10);
        const sealed = drainSteadyState(mode, size, 1, true);
        const batched = mode === 'plain' ? drainSteadyState(mode, size, 1, false, 10) : undefined;
        if (drain.published !== RECORDS || burst.published !== RECORDS || sealed.published !== RECORDS || (batched && batched.published !== RECORDS)) throw new Error(`drain ${mode} ${size}: not every record was published once`);
        const limit = round(w2.wa * WITHIN);
        figures.push(
          {
            name: `mqtt.client.drainWa.${mode}.${size}`,
            value: round(drain.wa),
            unit: '×',
            label: `drain write amplification, ${size}-byte records, ${mode}, each acknowledged as its PUBACK arrives (W2 in the same run: ${round(w2.wa)}; ratio ${round(drain.wa / w2.wa)})`,
            kind: 'count',
            target: `≤ W2 × 1.1 (${limit})`,
            limit,
            direction: 'max',
            anchor: `storage W2 ${round(w2.wa)} (outbox.wa.${mode}.${size}); with an ack flushed after every record: 1.76 plain / 3.02 strict at 16 B (issue 17); with an ack field on every append (ackRideFrom 1): 1.636 plain at 16 B`,
          },
          { name: `mqtt.client.drainErasesPerMiB.${mode}.${size}`, value: Math.round(drain.erasesPerMiB), unit: 'erases/MiB', label: `drain erases per MiB of records, ${size}-byte records, ${mode} (W2: ${Math.round(w2.erasesPerMiB)})`, kind: 'count' },
          { name: `mqtt.client.drainWaBurst10.${mode}.${size}`, value: round(burst.wa), unit: '×', label: `drain write amplification when records come in bursts of 10 and are then drained, PUBACKs one by one, ${size}-byte records, ${mode}`, kind: 'count' },
          ...(batched ? [{ name: `mqtt.client.drainWaAckEvery10.${mode}.${size}`, value: round(batched.wa), unit: '×', label: `for comparison: the same drain, the outbox acknowledged only every 10th PUBACK (bench-only AckBatchingSource, on top of ackRideFrom), ${size}-byte records, ${mode}`, kind: 'count' as const }] : []),
          { name: `mqtt.client.sealedDrainWa.${mode}.${size}`, value: round(sealed.wa), unit: '×', label: `sealed telemetry drained one PUBACK at a time: bytes programmed (outbox + counter) ÷ ${size}-byte application payloads (each record is the payload + its 22-byte envelope: format 2, key id 1, counters 20,001..40,000), ${mode}`, kind: 'count' },
        );
      }
    }
    for (const payloadBytes of [16, 69]) {
      const plain = publishBytesPerRecord(DEVICE_TOPIC, payloadBytes, 0);
      const aliased = publishBytesPerRecord(DEVICE_TOPIC, payloadBytes, 10);
      const what = payloadBytes === 69 ? '69-byte payloads (a 32-byte reading in the retired format 1\'s 37-byte envelope; format 2 envelopes are 20..31 bytes)' : `${payloadBytes}-byte payloads`;
      figures.push(
        { name: `mqtt.client.publishOverhead.noAlias.${payloadBytes}`, value: plain, unit: 'bytes', label: `bytes the session writes per record beyond the payload, steady state, MQTT 5 QoS 1 to ${DEVICE_TOPIC} (${DEVICE_TOPIC.length} bytes), broker allows no topic alias, ${what} (publishBytesPerRecord)`, kind: 'count' },
        { name: `mqtt.client.publishOverhead.topicAlias.${payloadBytes}`, value: aliased, unit: 'bytes', label: `the same with the broker's Topic Alias Maximum ≥ 1: the topic once per connection, then an empty topic and Topic Alias 1 (publishBytesPerRecord)`, kind: 'count' },
      );
    }
    progress('  mqtt client bundle');
    const folders = CLIENT_FOLDERS.filter((f) => existsSync(join(f, 'index.ts')));
    const client = await bundleBytes(folders.map((f) => join(f, 'index.ts')));
    const codecAndSession = await bundleBytes(CLIENT_FOLDERS.slice(0, 2).map((f) => join(f, 'index.ts')));
    const withTelemetry = await bundleBytes([...folders.map((f) => join(f, 'index.ts')), 'firmware/protocol/telemetry/index.ts', 'firmware/security/noble-crypto.ts', 'firmware/security/envelope-primitives.ts', 'firmware/security/envelope-keys.ts']);
    figures.push(
      { name: 'mqtt.client.bundleBytes', value: client.minified, unit: 'bytes', label: `minified es2021 bundle of ${folders.join(', ')} (JavaScript source, every export kept)`, kind: 'count', anchor: 'coreMQTT (MQTT 5, v5.0.0): 18.9 KB of ARM code at -Os (a different unit: machine code, not source)' },
      { name: 'mqtt.client.bundleBytes.codecAndSession', value: codecAndSession.minified, unit: 'bytes', label: 'minified es2021 bundle of firmware/protocol/mqtt and mqtt-session only (the codec and the flow-control core)', kind: 'count' },
      { name: 'mqtt.client.bundleGzipBytes', value: client.gzipped, unit: 'bytes', label: 'the same bundle gzipped (-9)', kind: 'count' },
      { name: 'mqtt.client.bundleBytes.withSealedTelemetry', value: withTelemetry.minified, unit: 'bytes', label: 'the client plus SealedOutbox with what it pulls in (outbox, counter, envelope, key derivation, the @noble HMAC, ChaCha20-Poly1305 and AES-GCM), minified', kind: 'count' },
    );
    return figures;
  },
};

function round(value: number): number {
  return Number(value.toFixed(4));
}
