/**
 * The MQTT codec fuzzed (docs/spec/mqtt-codec.md): at least 10^6 mutated
 * packets, each decoded whole (decodePacket) and through the stream decoder
 * in random chunks, MQTT 5.0 and 3.1.1 alternating. Seeds are valid packets
 * from the property tests' arbitraries (fast-check, fixed seed); mutations
 * are test/protocol/mqtt-mutate.ts's, from a fixed Rng seed, so every count
 * repeats exactly. One input in ten is random bytes behind a random first
 * byte instead.
 *
 * A crash is any failure other than MqttDecodeError (or a reason code
 * outside DecodeReason). A round-trip failure is an accepted packet that
 * does not re-encode to bytes decoding to the same packet. A hang is one
 * input taking more than HANG_MS. Memory is the stream decoder's largest
 * body buffer, which must stay below the configured maximum packet size.
 */
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { DecodeReason, decodePacket, encodePacket, MqttDecodeError, MqttStreamDecoder, type MqttPacket, type MqttVersion } from '../firmware/protocol/mqtt/index.ts';
import { Rng } from '../tools/sim/rng.ts';
import { concat, mutate } from '../test/protocol/mqtt-mutate.ts';
import { anyPacket, normalize } from '../test/protocol/mqtt-oracle.ts';
import type { BenchGroup, Figure } from './figures.ts';

export const FUZZ_EXECUTIONS = 1_000_000;
const MAX_PACKET_SIZE = 4096;
/** Wall-clock bound per input: far above a GC pause on a loaded 2-core host (the slowest input measured ~100 ms under load, ~15 ms idle). */
const HANG_MS = 1000;
const SEEDS_PER_VERSION = 400;
const REASONS = new Set<number>(Object.values(DecodeReason));

export interface FuzzReport {
  executions: number;
  accepted: number;
  refused: number;
  crashes: number;
  roundTripFailures: number;
  hangs: number;
  maxBufferedBytes: number;
  slowestMs: number;
  elapsedMs: number;
  byReason: Map<number, number>;
  firstCrash?: string;
  firstRoundTripFailure?: string;
}

function corpus(version: MqttVersion): Uint8Array[] {
  return fc.sample(anyPacket(version), { numRuns: SEEDS_PER_VERSION, seed: 0x4d515454 + version }).map((p) => encodePacket(p, { protocolVersion: version }));
}

function sameAfterReencode(packet: MqttPacket, version: MqttVersion): boolean {
  try {
    const again = decodePacket(encodePacket(packet, { protocolVersion: version }), { protocolVersion: version, maximumPacketSize: 1 << 20, topicAliasMaximum: 0xffff });
    return isDeepStrictEqual(normalize(again), normalize(packet));
  } catch {
    return false;
  }
}

/** Runs `executions` mutated decodes (each whole and streamed); deterministic apart from the timings. */
export function runMqttFuzz(executions: number, progress: (line: string) => void = () => {}): FuzzReport {
  const seeds = { 5: corpus(5), 4: corpus(4) };
  const rng = new Rng(0x0f0220);
  const report: FuzzReport = { executions: 0, accepted: 0, refused: 0, crashes: 0, roundTripFailures: 0, hangs: 0, maxBufferedBytes: 0, slowestMs: 0, elapsedMs: 0, byReason: new Map() };
  const started = performance.now();
  for (let i = 0; i < executions; i++) {
    const version: MqttVersion = i % 2 === 0 ? 5 : 4;
    const options = { protocolVersion: version, maximumPacketSize: MAX_PACKET_SIZE, topicAliasMaximum: 16 };
    let input: Uint8Array;
    if (i % 10 === 9) {
      const rest = new Uint8Array(rng.below(64));
      rng.fill(rest);
      input = concat(new Uint8Array([rng.below(256), rest.length]), rest);
    } else {
      const list = seeds[version];
      input = mutate(list[rng.below(list.length)], rng);
    }
    const t0 = performance.now();
    let whole: MqttPacket | undefined;
    try {
      whole = decodePacket(input, options);
      report.accepted++;
      if (!sameAfterReencode(whole, version)) {
        report.roundTripFailures++;
        report.firstRoundTripFailure ??= `v${version} ${Array.from(input).join(',')}`;
      }
    } catch (error) {
      if (error instanceof MqttDecodeError && REASONS.has(error.reasonCode)) {
        report.refused++;
        report.byReason.set(error.reasonCode, (report.byReason.get(error.reasonCode) ?? 0) + 1);
      } else {
        report.crashes++;
        report.firstCrash ??= `${String(error)} on ${Array.from(input).join(',')}`;
      }
    }
    try {
      const decoder = new MqttStreamDecoder(options);
      let at = 0;
      while (at < input.length) {
        const end = Math.min(input.length, at + 1 + rng.below(32));
        if (decoder.push(input.subarray(at, end)).error) break;
        at = end;
      }
      if (decoder.maxBufferedBytes > report.maxBufferedBytes) report.maxBufferedBytes = decoder.maxBufferedBytes;
    } catch (error) {
      report.crashes++;
      report.firstCrash ??= `stream: ${String(error)} on ${Array.from(input).join(',')}`;
    }
    const ms = performance.now() - t0;
    if (ms > report.slowestMs) report.slowestMs = ms;
    if (ms > HANG_MS) report.hangs++;
    report.executions++;
    if ((i + 1) % 100_000 === 0) progress(`mqtt fuzz: ${i + 1} executions, ${report.crashes} crashes`);
  }
  report.elapsedMs = performance.now() - started;
  return report;
}

export const mqttFuzzBench: BenchGroup = {
  title: 'MQTT codec fuzzing',
  prefix: 'mqtt.fuzz.',
  workload:
    `${FUZZ_EXECUTIONS.toLocaleString('en-US')} inputs, MQTT 5.0 and 3.1.1 alternating: nine in ten are valid packets (${SEEDS_PER_VERSION} seeds per version from the property tests' arbitraries) ` +
    'with 1–4 mutations (bit flips, interesting bytes, length nudges, insertions, deletions, duplicated ranges, truncation), one in ten random bytes behind a random first byte. ' +
    `Each is decoded whole and through the stream decoder in random 1–32-byte chunks, maximum packet size ${MAX_PACKET_SIZE}. ` +
    'A crash is any failure but a typed MqttDecodeError; an accepted packet must re-encode to bytes that decode to the same packet; ' +
    `a hang is one input above ${HANG_MS} ms. Counts repeat exactly (fixed seeds); the rate is a timing.`,
  async run(progress) {
    const r = runMqttFuzz(FUZZ_EXECUTIONS, progress);
    if (r.firstCrash) progress(`mqtt fuzz: first crash: ${r.firstCrash}`);
    if (r.firstRoundTripFailure) progress(`mqtt fuzz: first round-trip failure: ${r.firstRoundTripFailure}`);
    const figures: Figure[] = [
      { name: 'mqtt.fuzz.executions', value: r.executions, unit: 'inputs', label: 'mutated or random inputs decoded (whole and streamed)', kind: 'count', target: '≥ 10^6', limit: 1_000_000, direction: 'min' },
      { name: 'mqtt.fuzz.crashes', value: r.crashes, unit: 'inputs', label: 'inputs that failed with anything but a typed MqttDecodeError', kind: 'count', target: '0', limit: 0, direction: 'max' },
      { name: 'mqtt.fuzz.roundTripFailures', value: r.roundTripFailures, unit: 'inputs', label: 'accepted packets that did not re-encode to themselves', kind: 'count', target: '0', limit: 0, direction: 'max' },
      { name: 'mqtt.fuzz.hangs', value: r.hangs, unit: 'inputs', label: `inputs above ${HANG_MS} ms`, kind: 'count', target: '0', limit: 0, direction: 'max' },
      {
        name: 'mqtt.fuzz.maxBufferedBytes',
        value: r.maxBufferedBytes,
        unit: 'bytes',
        label: `largest stream-decoder buffer (maximum packet size ${MAX_PACKET_SIZE})`,
        kind: 'count',
        target: `≤ ${MAX_PACKET_SIZE - 2} (max packet size - fixed header)`,
        limit: MAX_PACKET_SIZE - 2,
        direction: 'max',
      },
      { name: 'mqtt.fuzz.accepted', value: r.accepted, unit: 'inputs', label: 'inputs that decoded to a valid packet', kind: 'count' },
      { name: 'mqtt.fuzz.refused', value: r.refused, unit: 'inputs', label: 'inputs refused with a typed error', kind: 'count' },
    ];
    for (const [reason, count] of [...r.byReason.entries()].sort((a, b) => a[0] - b[0])) {
      const code = `0x${reason.toString(16)}`;
      figures.push({ name: `mqtt.fuzz.refused.${code}`, value: count, unit: 'inputs', label: `refused with reason code ${code}`, kind: 'count' });
    }
    figures.push({ name: 'mqtt.fuzz.slowestMs', value: Math.round(r.slowestMs * 1000) / 1000, unit: 'ms', label: 'slowest single input (whole + streamed)', kind: 'timing' });
    figures.push({ name: 'mqtt.fuzz.rate', value: Math.round(r.executions / (r.elapsedMs / 1000)), unit: 'inputs/s', label: 'inputs per second (Node, whole + streamed decode each)', kind: 'timing' });
    return figures;
  },
};
