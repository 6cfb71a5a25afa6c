/**
 * Bad input never crashes, hangs or over-allocates the MQTT decoders: random
 * bytes and mutated valid packets (both protocol versions) either decode or
 * fail with MqttDecodeError carrying a reason code from DecodeReason; the
 * stream decoder never holds more than the maximum packet size; and
 * anything the decoder accepts, the encoder re-encodes to bytes that decode
 * to the same packet (so a decoded packet is always a valid packet).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DecodeReason, decodePacket, encodePacket, MqttDecodeError, MqttStreamDecoder, type MqttPacket, type MqttVersion } from '../../firmware/protocol/mqtt/index.ts';
import { Rng } from '../../tools/sim/rng.ts';
import { concat, mutate } from './mqtt-mutate.ts';
import { anyPacket, normalize } from './mqtt-oracle.ts';

const REASONS = new Set<number>(Object.values(DecodeReason));
const RUNS = 300;

function options(version: MqttVersion, maximumPacketSize = 4096) {
  return { protocolVersion: version, maximumPacketSize, topicAliasMaximum: 10 };
}

/** Decodes `bytes` as one packet; returns the packet or the typed error, and fails the test on anything else. */
function decodeTyped(bytes: Uint8Array, version: MqttVersion, max?: number): MqttPacket | MqttDecodeError {
  try {
    return decodePacket(bytes, options(version, max));
  } catch (error) {
    assert.ok(error instanceof MqttDecodeError, `untyped failure: ${String(error)}`);
    assert.ok(REASONS.has(error.reasonCode), `reason code ${error.reasonCode}`);
    assert.ok(error.message.length > 0 && !error.message.includes('\n'), 'one-line cause');
    return error;
  }
}

/** A packet the decoder accepted re-encodes, and those bytes decode to the same packet. */
function checkReencodes(packet: MqttPacket, version: MqttVersion): void {
  const again = encodePacket(packet, { protocolVersion: version });
  assert.deepEqual(normalize(decodePacket(again, options(version, 1 << 20))), normalize(packet));
}

/** Feeds `stream` in chunks; checks the memory bound; returns packets and the error. */
function feed(bytes: Uint8Array, version: MqttVersion, max: number, rng: Rng): { packets: MqttPacket[]; error?: MqttDecodeError } {
  const decoder = new MqttStreamDecoder(options(version, max));
  const packets: MqttPacket[] = [];
  let at = 0;
  while (at < bytes.length) {
    const end = Math.min(bytes.length, at + rng.between(1, 64));
    const r = decoder.push(bytes.subarray(at, end));
    packets.push(...r.packets);
    assert.ok(decoder.bufferedBytes <= max - 2, `buffered ${decoder.bufferedBytes} > ${max - 2}`);
    if (r.error) {
      assert.ok(REASONS.has(r.error.reasonCode));
      assert.equal(decoder.push(new Uint8Array([0xc0, 0])).error, r.error, 'a failed stream stays failed');
      return { packets, error: r.error };
    }
    at = end;
  }
  assert.ok(decoder.maxBufferedBytes <= max - 2);
  return { packets };
}

for (const version of [5, 4] as const) {
  describe(`MQTT ${version === 5 ? '5.0' : '3.1.1'} decoders under bad input`, () => {
    it('random bytes: a packet or a typed error, never anything else', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 2, max: 300 }), (bytes, max) => {
          const result = decodeTyped(bytes, version, max);
          if (!(result instanceof MqttDecodeError)) checkReencodes(result, version);
        }),
        { numRuns: RUNS * 3 },
      );
    });

    it('random bytes with a plausible first byte (every packet type and flag)', () => {
      fc.assert(
        fc.property(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 60 }), (first, rest) => {
          const bytes = concat(new Uint8Array([first, rest.length]), rest);
          const result = decodeTyped(bytes, version);
          if (!(result instanceof MqttDecodeError)) checkReencodes(result, version);
        }),
        { numRuns: RUNS * 3 },
      );
    });

    it('mutated valid packets: a packet or a typed error; accepted packets re-encode', () => {
      fc.assert(
        fc.property(anyPacket(version), fc.integer(), (packet, seed) => {
          const rng = new Rng(seed);
          const bytes = mutate(encodePacket(packet, { protocolVersion: version }), rng);
          const result = decodeTyped(bytes, version, 1 << 16);
          if (!(result instanceof MqttDecodeError)) checkReencodes(result, version);
        }),
        { numRuns: RUNS * 2 },
      );
    });

    it('mutated streams of several packets, split at random: bounded buffer, typed errors, packets before the damage delivered', () => {
      fc.assert(
        fc.property(fc.array(anyPacket(version), { minLength: 1, maxLength: 5 }), fc.integer(), fc.integer({ min: 16, max: 512 }), (packets, seed, max) => {
          const rng = new Rng(seed);
          const clean = packets.map((p) => encodePacket(p, { protocolVersion: version }));
          const damaged = rng.below(clean.length);
          const stream = concat(...clean.map((b, i) => (i === damaged ? mutate(b, rng) : b)));
          const { packets: out } = feed(stream, version, max, rng);
          // Every packet before the damaged one arrives intact (unless it alone was too large).
          for (let i = 0; i < Math.min(damaged, out.length); i++) assert.deepEqual(normalize(out[i]), normalize(packets[i]));
          for (const p of out) checkReencodes(p, version);
        }),
        { numRuns: RUNS },
      );
    });

    it('a Remaining Length above the maximum fails with 0x95 before any body byte arrives', () => {
      fc.assert(
        fc.property(fc.integer({ min: 2, max: 100_000 }), fc.integer({ min: 0, max: 268_435_455 }), (max, remaining) => {
          const vbi: number[] = [];
          let rest = remaining;
          do {
            let b = rest % 128;
            rest = Math.floor(rest / 128);
            if (rest > 0) b |= 0x80;
            vbi.push(b);
          } while (rest > 0);
          const decoder = new MqttStreamDecoder(options(version, max));
          const r = decoder.push(new Uint8Array([0x30, ...vbi]));
          const total = 1 + vbi.length + remaining;
          if (total > max) {
            assert.equal(r.error?.reasonCode, DecodeReason.PACKET_TOO_LARGE, `total ${total} max ${max}`);
            assert.equal(decoder.maxBufferedBytes, 0, 'nothing allocated');
          } else if (remaining > 0) {
            assert.equal(r.error, undefined, 'waits for the body');
          } else {
            assert.equal(r.error?.reasonCode, DecodeReason.MALFORMED, 'a PUBLISH without a topic');
          }
        }),
        { numRuns: RUNS },
      );
    });
  });
}
