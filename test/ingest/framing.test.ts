/**
 * The subscriber's read path (tools/ingest/subscriber.ts, docs/spec/ingest.md
 * "Acknowledgement order"): the Framer splits the broker's byte stream into
 * whole packets, a QoS 1 PUBLISH without properties is read in place
 * (fastPublish) and every other packet goes to mqtt-packet's parser. Checked
 * against mqtt-packet's parser alone (fast-check): the same messages (topic,
 * payload bytes, packet id, dup) and the same other packets, in the same
 * order, whatever the chunk boundaries, for MQTT 3.1.1 and 5; a Remaining
 * Length of more than 4 bytes is refused. The batched PUBACKs are
 * byte-identical to mqtt-packet's.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import mqttPacket from 'mqtt-packet';
import { fastPublish, Framer, Subscriber } from '../../tools/ingest/subscriber.ts';

type Seen = { cmd: string; topic?: string; payload?: string; messageId?: number; dup?: boolean; qos?: number };

function packetArb(v5: boolean): fc.Arbitrary<mqttPacket.Packet> {
  const topic = fc.stringMatching(/^holdfast\/[0-9a-f]{16}\/telemetry(\/[a-zé]{0,5})?$/);
  const payload = fc.uint8Array({ minLength: 0, maxLength: 300 });
  const publish = fc.record({
    topic,
    payload,
    qos: fc.constantFrom(0, 1, 1, 1),
    dup: fc.boolean(),
    retain: fc.boolean(),
    messageId: fc.integer({ min: 1, max: 0xffff }),
    withProps: fc.boolean(),
  }).map(({ topic, payload, qos, dup, retain, messageId, withProps }) => ({
    cmd: 'publish', topic, payload: Buffer.from(payload), qos, dup: qos === 0 ? false : dup, retain,
    ...(qos > 0 ? { messageId } : {}),
    ...(v5 && withProps ? { properties: { userProperties: { a: 'b' }, payloadFormatIndicator: true } } : {}),
  }) as mqttPacket.Packet);
  const others = fc.oneof(
    fc.integer({ min: 1, max: 0xffff }).map((messageId) => ({ cmd: 'suback', messageId, granted: [1] }) as unknown as mqttPacket.Packet),
    fc.integer({ min: 1, max: 0xffff }).map((messageId) => ({ cmd: 'pubrel', messageId }) as mqttPacket.Packet),
    fc.constant({ cmd: 'pingresp' } as mqttPacket.Packet),
    fc.constant({ cmd: 'connack', sessionPresent: true, ...(v5 ? { reasonCode: 0 } : { returnCode: 0 }) } as mqttPacket.Packet),
  );
  return fc.oneof({ weight: 4, arbitrary: publish }, { weight: 1, arbitrary: others });
}

function seen(p: Record<string, unknown>): Seen {
  if (p.cmd === 'publish') {
    return { cmd: 'publish', topic: p.topic as string, payload: Buffer.from(p.payload as Uint8Array).toString('hex'), messageId: p.messageId as number | undefined, dup: p.dup === true, qos: p.qos as number };
  }
  return { cmd: p.cmd as string, messageId: p.messageId as number | undefined };
}

/** What mqtt-packet's parser alone reads from the stream. */
function reference(stream: Buffer, version: 4 | 5): Seen[] {
  const out: Seen[] = [];
  const parser = mqttPacket.parser({ protocolVersion: version });
  parser.on('packet', (p) => out.push(seen(p as unknown as Record<string, unknown>)));
  parser.on('error', (e) => assert.fail(`reference parser: ${e.message}`));
  parser.parse(stream);
  return out;
}

/** What the subscriber's path reads from the stream cut into `chunks`. */
function framed(chunks: readonly Buffer[], version: 4 | 5): { out: Seen[]; fast: number; errors: string[] } {
  const out: Seen[] = [];
  const errors: string[] = [];
  let fast = 0;
  const parser = mqttPacket.parser({ protocolVersion: version });
  parser.on('packet', (p) => out.push(seen(p as unknown as Record<string, unknown>)));
  parser.on('error', (e) => errors.push(e.message));
  const framer = new Framer((frame) => {
    const m = fastPublish(frame, version === 5, 1);
    if (m === undefined) parser.parse(frame);
    else {
      fast++;
      out.push({ cmd: 'publish', topic: m.topic, payload: m.payload.toString('hex'), messageId: m.messageId, dup: m.dup, qos: m.qos });
    }
  }, (reason) => errors.push(reason));
  for (const c of chunks) framer.push(c);
  return { out, fast, errors };
}

function cut(stream: Buffer, cuts: readonly number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const c of [...at, stream.length]) {
    if (c > from) chunks.push(Buffer.from(stream.subarray(from, c)));
    from = Math.max(from, c);
  }
  return chunks;
}

describe('ingest subscriber: framing and the PUBLISH fast path', () => {
  for (const version of [4, 5] as const) {
    it(`reads what mqtt-packet reads, whatever the chunk boundaries (MQTT ${version === 5 ? '5' : '3.1.1'})`, () => {
      let fastSeen = 0;
      fc.assert(
        fc.property(fc.array(packetArb(version === 5), { minLength: 1, maxLength: 40 }), fc.array(fc.nat(), { maxLength: 30 }), (packets, cuts) => {
          const stream = Buffer.concat(packets.map((p) => mqttPacket.generate(p, { protocolVersion: version })));
          const expected = reference(stream, version);
          assert.equal(expected.length, packets.length);
          const got = framed(cut(stream, cuts), version);
          assert.deepEqual(got.errors, []);
          assert.deepEqual(got.out, expected);
          fastSeen += got.fast;
        }),
        { numRuns: 300 },
      );
      assert.ok(fastSeen > 0, 'the fast path was taken');
    });
  }

  it('takes the fast path only for QoS 1 without properties', () => {
    const v5 = (p: Record<string, unknown>) => mqttPacket.generate({ cmd: 'publish', topic: 'holdfast/0123456789abcdef/telemetry', payload: Buffer.from([1, 2, 3]), qos: 1, dup: false, retain: false, messageId: 7, ...p } as mqttPacket.Packet, { protocolVersion: 5 });
    assert.notEqual(fastPublish(v5({}), true, 1), undefined);
    assert.equal(fastPublish(v5({ qos: 0, messageId: undefined }), true, 1), undefined);
    assert.equal(fastPublish(v5({ properties: { topicAlias: 3 } }), true, 1), undefined);
    const m = fastPublish(v5({ dup: true }), true, 9);
    assert.deepEqual({ ...m, payload: [...(m?.payload ?? [])] }, { topic: 'holdfast/0123456789abcdef/telemetry', payload: [1, 2, 3], qos: 1, messageId: 7, dup: true, connection: 9 });
  });

  it('refuses a Remaining Length of more than 4 bytes', () => {
    const errors: string[] = [];
    const frames: Buffer[] = [];
    const framer = new Framer((f) => frames.push(f), (r) => errors.push(r));
    framer.push(Buffer.from([0x32, 0xff, 0xff, 0xff, 0xff, 0x01]));
    assert.equal(frames.length, 0);
    assert.equal(errors.length, 1);
  });

  it('batched PUBACKs are the bytes mqtt-packet writes', () => {
    for (const version of [4, 5] as const) {
      const written: Buffer[] = [];
      const subscriber = new Subscriber({ host: '127.0.0.1', port: 1, clientId: 'x', protocolVersion: version, topic: 't', onMessage() {}, onFatal() {} });
      // A connected socket stand-in: ack() only writes.
      Object.assign(subscriber as unknown as Record<string, unknown>, { socket: { write: (b: Buffer) => written.push(Buffer.from(b)) }, connected: true, connection: 3 });
      const ids = [1, 255, 256, 0xffff, 0x1234];
      const sent = subscriber.ack([...ids.map((messageId) => ({ topic: 't', payload: Buffer.alloc(0), qos: 1, messageId, dup: false, connection: 3 })), { topic: 't', payload: Buffer.alloc(0), qos: 1, messageId: 9, dup: false, connection: 2 }]);
      assert.equal(sent, ids.length, 'a message of an older connection is not acknowledged');
      const expected = Buffer.concat(ids.map((messageId) => mqttPacket.generate({ cmd: 'puback', messageId, ...(version === 5 ? { reasonCode: 0 } : {}) } as mqttPacket.Packet, { protocolVersion: version })));
      assert.deepEqual(Buffer.concat(written), expected);
    }
  });
});
