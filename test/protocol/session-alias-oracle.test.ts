/**
 * The session's topic aliases checked with mqtt-packet 9.0.2 as an
 * independent decoder (Node only: mqtt-packet needs Buffer). Every byte the
 * session writes to the scripted broker (session-broker.ts) is parsed by
 * mqtt-packet, and the aliases are resolved here as a broker does, one
 * mapping per connection (MQTT 5 §3.3.2.3.4): the first PUBLISH of each
 * connection (a DUP resend after a reconnect included) carries the topic and
 * Topic Alias 1, every later one an empty topic and Topic Alias 1, and every
 * PUBLISH resolves to the configured topic. With Topic Alias Maximum 0 no
 * PUBLISH carries an alias.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import mqttPacket from 'mqtt-packet';
import { MqttSession } from '../../firmware/protocol/mqtt-session/index.ts';
import { BASE_OPTIONS, FakeBroker, Link, MemorySource } from './session-broker.ts';

const TOPIC = 'holdfast/00112233445566aa/telemetry';

interface OraclePublish {
  topic: string;
  dup: boolean;
  messageId: number;
  payload: Buffer;
  properties?: { topicAlias?: number };
}

/** A FakeBroker that also hands every chunk the client writes to mqtt-packet's parser. */
class RecordingBroker extends FakeBroker {
  /** mqtt-packet's PUBLISHes per connection (a new list at each `reset`). */
  readonly connections: OraclePublish[][] = [];
  private parser = newParser(this.connections);

  override reset(config: Parameters<FakeBroker['reset']>[0]): void {
    super.reset(config);
    this.connections.push([]);
    this.parser = newParser(this.connections);
  }

  override feed(bytes: Uint8Array): Uint8Array[] {
    this.parser.parse(Buffer.from(bytes));
    return super.feed(bytes);
  }
}

function newParser(connections: OraclePublish[][]): ReturnType<typeof mqttPacket.parser> {
  const parser = mqttPacket.parser({ protocolVersion: 5 });
  parser.on('packet', (p) => {
    if (p.cmd === 'publish') connections[connections.length - 1].push(p as unknown as OraclePublish);
  });
  parser.on('error', (e: Error) => assert.fail(`mqtt-packet refused what the session wrote: ${e.message}`));
  return parser;
}

/** Resolves aliases per connection as a broker does; fails on an alias used before it is mapped. */
function resolve(connection: OraclePublish[]): string[] {
  const aliases = new Map<number, string>();
  return connection.map((p) => {
    const alias = p.properties?.topicAlias;
    if (alias === undefined) return p.topic;
    if (p.topic !== '') {
      aliases.set(alias, p.topic);
      return p.topic;
    }
    const topic = aliases.get(alias);
    assert.ok(topic !== undefined, `alias ${alias} used before it was mapped on this connection`);
    return topic;
  });
}

function setup(records: number): { link: Link; broker: RecordingBroker; source: MemorySource } {
  const source = new MemorySource(records, 16);
  const broker = new RecordingBroker();
  const link = new Link(new MqttSession({ ...BASE_OPTIONS, topic: TOPIC }, source), broker);
  return { link, broker, source };
}

describe('session topic aliases, decoded with mqtt-packet', () => {
  it('Topic Alias Maximum 10: topic + alias once per connection, alias alone after; reset and re-established (by a DUP resend) after a reconnect', () => {
    const { link, broker, source } = setup(30);
    link.open({ receiveMaximum: 4, topicAliasMaximum: 10 });
    for (let i = 0; i < 3; i++) link.deliver(broker.release(0));
    link.close();
    link.open({ receiveMaximum: 4, topicAliasMaximum: 10, sessionPresent: true });
    link.drain();
    link.close();
    link.open({ receiveMaximum: 4, topicAliasMaximum: 10, sessionPresent: true });
    assert.equal(source.ackedUpTo, 29, 'every record delivered');

    const [first, second] = broker.connections;
    assert.equal(first.length, 7, 'first connection: 4, then 3 more as PUBACKs came');
    assert.ok(second.length >= 27, 'second connection: the 4 in flight again, then the rest');
    for (const [n, connection] of [first, second].entries()) {
      assert.equal(connection[0].topic, TOPIC, `connection ${n}: first PUBLISH carries the topic`);
      assert.equal(connection[0].properties?.topicAlias, 1, `connection ${n}: and alias 1`);
      for (const p of connection.slice(1)) {
        assert.equal(p.topic, '', `connection ${n}: later PUBLISH has an empty topic`);
        assert.equal(p.properties?.topicAlias, 1, `connection ${n}: and alias 1`);
      }
      assert.deepEqual(resolve(connection), connection.map(() => TOPIC), `connection ${n}: every PUBLISH resolves to the topic`);
    }
    assert.equal(second[0].dup, true, 'the PUBLISH that maps the alias on the new connection is a DUP resend');
    assert.equal(second[0].messageId, first[3].messageId, 'with its original packet id');
    assert.equal(second[0].payload[0], first[3].payload[0], 'of the oldest unacknowledged record');
    assert.equal(broker.connections[2].length, 0, 'nothing left for the third connection');
  });

  it('Topic Alias Maximum 0: no alias property, the full topic in every PUBLISH', () => {
    const { link, broker, source } = setup(10);
    link.open({ receiveMaximum: 4, topicAliasMaximum: 0 });
    link.drain();
    assert.equal(source.ackedUpTo, 9);
    const [connection] = broker.connections;
    assert.equal(connection.length, 10);
    for (const p of connection) {
      assert.equal(p.topic, TOPIC);
      assert.equal(p.properties?.topicAlias, undefined);
    }
  });
});
