/**
 * The hostile gateway (docs/design/test-network.md): a TCP proxy on loopback
 * between devices and the broker that understands MQTT framing (fixed header +
 * remaining length; packets decoded and generated with mqtt-packet) and, by a
 * seeded schedule, misbehaves on packet boundaries: cut a connection
 * mid-packet, stall mid-packet, delay, drop, duplicate, reorder across
 * reconnects, flip bits, inject captured-and-replayed PUBLISHes, inject forged
 * ones, answer CONNECT with "unsupported protocol version", restart the broker.
 *
 * Determinism: whether a rule fires on a packet, and every parameter of what
 * it does (cut offset, flipped bit, forged bytes), comes from
 * `new Rng(deriveSeed(seed, ruleIndex, ordinal))`, where `ordinal` counts the
 * packets that rule has matched so far (direction, packet type and optional
 * client id). So the same seed and the same traffic give the same actions
 * however connections interleave; every action is logged with its seed, rule,
 * ordinal and packet index, and `formatEvent` prints the line that replays it.
 * Never Math.random.
 *
 * The gateway sees plain MQTT only: a TLS connection through it would be
 * opaque bytes (the TLS tests talk to mosquitto directly).
 *
 * Host tool (Node).
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import mqttPacket from 'mqtt-packet';
import { deriveSeed, Rng } from '../sim/rng.ts';
import { LOOPBACK, sleep, type BrokerHandle } from './common.ts';

/** up: device → broker; down: broker → device. */
export type Direction = 'up' | 'down';

/** mqtt-packet command names, by MQTT control packet type (1..15). */
export const PACKET_TYPES = ['reserved', 'connect', 'connack', 'publish', 'puback', 'pubrec', 'pubrel', 'pubcomp', 'subscribe', 'suback', 'unsubscribe', 'unsuback', 'pingreq', 'pingresp', 'disconnect', 'auth'] as const;
export type PacketType = (typeof PACKET_TYPES)[number];

export interface RuleSelector {
  /** Default 'up'. Every action may be aimed either way, except refuseConnect (the device's CONNECT, always up). */
  dir?: Direction;
  /** Packet type the rule matches; default 'publish' ('connect' for refuseConnect). */
  type?: PacketType;
  /** Only packets on connections whose CONNECT carried this client id. */
  clientId?: string;
  /** Fire on these ordinals (0-based) among the packets this rule matches. */
  nth?: readonly number[];
  /** Fire with this probability (seeded per ordinal); combined with `nth` both must hold. */
  probability?: number;
  /** At most this many firings. */
  limit?: number;
}

export type RuleAction =
  /** Forward a seeded prefix (1..len-1 bytes) of the packet, then close both sides. `mid: false` closes before the packet instead. */
  | { action: 'cut'; mid?: boolean }
  /** Forward a seeded prefix, hold the rest (and everything behind it) `ms`, then go on. */
  | { action: 'stall'; ms: number }
  /** Hold the whole packet (and everything behind it in that direction) `ms`. */
  | { action: 'delay'; ms: number }
  /** Swallow the packet. */
  | { action: 'drop' }
  /** Forward the packet 1 + `copies` times (default 1 copy). */
  | { action: 'duplicate'; copies?: number }
  /** Flip `bits` seeded bits (default 1): in a PUBLISH's payload (`region` 'payload', default) or anywhere after the first byte ('any'). */
  | { action: 'flip'; bits?: number; region?: 'payload' | 'any' }
  /** Withhold the PUBLISH, cut the connection, and inject it on the same client's next connection after that connection's `releaseAfterPublishes`-th forwarded PUBLISH (default 1) or `releaseAfterMs` after its CONNACK (default 100), whichever comes first. */
  | { action: 'reorder'; releaseAfterPublishes?: number; releaseAfterMs?: number }
  /** Forward the packet, keep its bytes, and inject them again `afterMs` later (default 0) `times` times (default 1); with `nextConnection` (or when this connection is gone by then), on the client's next connection, released as `reorder` releases. */
  | { action: 'replay'; afterMs?: number; times?: number; nextConnection?: boolean; releaseAfterPublishes?: number; releaseAfterMs?: number }
  /** Forward the packet, then inject a forged PUBLISH on the same connection: `topic` (default the packet's), `payload` (default seeded random bytes of the packet's payload length), same QoS. */
  | { action: 'forge'; topic?: string; payload?: Uint8Array }
  /** Answer CONNECT with "unsupported protocol version" (MQTT 5: CONNACK reason 0x84; 3.1.1/3.1: return code 0x01) and close; nothing reaches the broker. */
  | { action: 'refuseConnect' }
  /** Forward the packet, then restart the broker (BrokerHandle.restart). */
  | { action: 'restartBroker' };

export type Rule = RuleSelector & RuleAction;

export interface Schedule {
  seed: number;
  rules: readonly Rule[];
}

export interface GatewayEvent {
  readonly seed: number;
  /** Index of the rule in the schedule. */
  readonly rule: number;
  readonly action: RuleAction['action'];
  readonly dir: Direction;
  /** Packet type of the packet that triggered the action. */
  readonly type: PacketType;
  readonly clientId: string;
  /** Ordinal of the packet among those the rule matched (the replay key with seed and rule). */
  readonly ordinal: number;
  /** Index of the packet among all packets in this direction through the gateway. */
  readonly packetIndex: number;
  /** Connection number (0-based, in accept order). */
  readonly conn: number;
  readonly detail: string;
}

export function formatEvent(e: GatewayEvent): string {
  return `seed=${e.seed} rule=${e.rule} ordinal=${e.ordinal} packet=${e.dir}#${e.packetIndex} conn=${e.conn} client=${e.clientId || '-'} ${e.type} ${e.action}${e.detail ? ` ${e.detail}` : ''}`;
}

export interface GatewayOptions extends Schedule {
  upstream: { host?: string; port: number };
  /** Needed by restartBroker rules. */
  broker?: BrokerHandle;
  /** Listening port (default: a free one). */
  port?: number;
  /** Larger packets (by remaining length) are not framed: the connection then passes bytes through untouched (logged). Default 16 MiB. */
  maxPacketBytes?: number;
  onEvent?: (event: GatewayEvent) => void;
}

interface Held {
  bytes: Buffer;
  qos: number;
  messageId: number | undefined;
  rule: number;
  ordinal: number;
  /** On a later connection: inject after this many forwarded PUBLISHes... */
  releaseAfterPublishes: number;
  /** ...or this long after its CONNACK, whichever comes first. */
  releaseAfterMs: number;
}

interface Frame {
  bytes: Buffer;
  type: PacketType;
  /** Offset of the variable header (after the remaining-length bytes). */
  body: number;
}

type DecodedPacket = mqttPacket.Packet & { [key: string]: any };

/** Split one whole MQTT packet off the front of `buffer`: the frame, 'more' (incomplete), or 'bad' (remaining length over 4 bytes or over the bound). */
export function takeFrame(buffer: Buffer, maxBytes: number): Frame | 'more' | 'bad' {
  if (buffer.length < 2) return 'more';
  let length = 0;
  let multiplier = 1;
  let i = 1;
  for (;;) {
    if (i >= buffer.length) return 'more';
    const byte = buffer[i++];
    length += (byte & 0x7f) * multiplier;
    if ((byte & 0x80) === 0) break;
    multiplier *= 128;
    if (i > 4) return 'bad';
  }
  if (length > maxBytes) return 'bad';
  if (buffer.length < i + length) return 'more';
  return { bytes: buffer.subarray(0, i + length), type: PACKET_TYPES[buffer[0] >> 4], body: i };
}

export function decodePacket(bytes: Buffer, protocolVersion: number): DecodedPacket | undefined {
  const parser = mqttPacket.parser({ protocolVersion });
  let out: DecodedPacket | undefined;
  parser.on('packet', (p) => (out = p as DecodedPacket));
  parser.on('error', () => (out = undefined));
  parser.parse(bytes);
  return out;
}

export function encodePacket(packet: object, protocolVersion: number): Buffer {
  return mqttPacket.generate(packet as mqttPacket.Packet, { protocolVersion });
}

class Link {
  clientId = '';
  protocolVersion = 4;
  connacked = false;
  closed = false;
  /** Set by a cut, a reorder or a refusal: later bytes (even in the same TCP chunk) are neither counted nor forwarded. */
  halted = false;
  framed = true;
  readonly buffers: Record<Direction, Buffer> = { up: Buffer.alloc(0), down: Buffer.alloc(0) };
  readonly chains: Record<Direction, Promise<void>> = { up: Promise.resolve(), down: Promise.resolve() };
  /** Acks (by packet id) to swallow in a direction, because the gateway injected the packet they answer. */
  readonly swallow: Record<Direction, Map<number, number>> = { up: new Map(), down: new Map() };
  forgedId = 0xffff;
  /** MQTT 5 Topic Alias mappings seen per direction on this connection (they exist only within one, §3.3.2.3.4). */
  readonly aliases: Record<Direction, Map<number, string>> = { up: new Map(), down: new Map() };
  publishesSinceConnack = 0;
  releaseTimer: NodeJS.Timeout | undefined;

  constructor(readonly id: number, readonly down: Socket, readonly up: Socket) {}

  socket(dir: Direction): Socket {
    return dir === 'up' ? this.up : this.down;
  }
}

export class HostileGateway {
  readonly host = LOOPBACK;
  port = 0;
  readonly seed: number;
  readonly events: GatewayEvent[] = [];
  /** Connections accepted so far. */
  connections = 0;
  /** Non-action notes (passthrough, upstream failures), for diagnosis. */
  readonly notes: string[] = [];
  private server: Server | undefined;
  private readonly links = new Set<Link>();
  private readonly ordinals: number[];
  private readonly firings: number[];
  private readonly packetIndex: Record<Direction, number> = { up: 0, down: 0 };
  /** Packets withheld or captured, per client id, waiting for its next connection. */
  private readonly pending = new Map<string, Held[]>();
  private readonly maxPacketBytes: number;
  private restarts: Promise<void> = Promise.resolve();

  constructor(private readonly options: GatewayOptions) {
    this.seed = options.seed >>> 0;
    this.ordinals = options.rules.map(() => 0);
    this.firings = options.rules.map(() => 0);
    this.maxPacketBytes = options.maxPacketBytes ?? 16 * 1024 * 1024;
    options.rules.forEach((rule, i) => {
      if (rule.action === 'restartBroker' && !options.broker) throw new Error(`rule ${i}: restartBroker needs the gateway's broker option`);
      if (rule.action === 'refuseConnect' && (rule.dir ?? 'up') !== 'up') throw new Error(`rule ${i}: refuseConnect acts on the device's CONNECT (dir up)`);
      if (rule.probability !== undefined && !(rule.probability >= 0 && rule.probability <= 1)) throw new Error(`rule ${i}: probability must be in [0, 1]`);
    });
  }

  async listen(): Promise<void> {
    const server = createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port ?? 0, LOOPBACK, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address();
    this.port = typeof address === 'object' && address ? address.port : 0;
    this.server = server;
  }

  /** Events of one rule, by ordinal: independent of how connections interleaved. */
  eventsOf(rule: number): GatewayEvent[] {
    return this.events.filter((e) => e.rule === rule).sort((a, b) => a.ordinal - b.ordinal);
  }

  /** Resolves when `predicate` holds for the event log (polling), or rejects after `timeoutMs`. */
  async waitFor(predicate: (events: readonly GatewayEvent[]) => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this.events)) {
      if (Date.now() > deadline) throw new Error(`gateway: condition not met within ${timeoutMs} ms; events:\n${this.events.map(formatEvent).join('\n')}`);
      await sleep(5);
    }
  }

  /** Pending broker restarts triggered by restartBroker rules. */
  brokerRestarts(): Promise<void> {
    return this.restarts;
  }

  /** Close every proxied connection (both sides) now. */
  dropAll(): void {
    for (const link of this.links) this.close(link);
  }

  async stop(): Promise<void> {
    this.dropAll();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    await this.restarts.catch(() => undefined);
  }

  private accept(down: Socket): void {
    const id = this.connections++;
    const up = connect({ host: this.options.upstream.host ?? LOOPBACK, port: this.options.upstream.port });
    const link = new Link(id, down, up);
    this.links.add(link);
    down.setNoDelay(true);
    up.setNoDelay(true);
    up.on('error', (e) => {
      this.notes.push(`conn ${id}: upstream ${e.message}`);
      this.close(link);
    });
    down.on('error', () => this.close(link));
    up.on('close', () => this.close(link));
    down.on('close', () => this.close(link));
    down.on('data', (chunk: Buffer) => this.receive(link, 'up', chunk));
    up.on('data', (chunk: Buffer) => this.receive(link, 'down', chunk));
  }

  private close(link: Link): void {
    if (link.closed) return;
    link.closed = true;
    clearTimeout(link.releaseTimer);
    link.down.destroy();
    link.up.destroy();
    this.links.delete(link);
  }

  private enqueue(link: Link, dir: Direction, task: () => void | Promise<void>): void {
    link.chains[dir] = link.chains[dir].then(async () => {
      if (!link.closed) await task();
    }).catch((e) => {
      this.notes.push(`conn ${link.id}: ${String(e)}`);
    });
  }

  private write(link: Link, dir: Direction, bytes: Buffer): void {
    this.enqueue(link, dir, () => {
      link.socket(dir).write(bytes);
    });
  }

  private receive(link: Link, dir: Direction, chunk: Buffer): void {
    if (link.closed || link.halted) return;
    if (!link.framed) return this.write(link, dir, chunk);
    link.buffers[dir] = link.buffers[dir].length ? Buffer.concat([link.buffers[dir], chunk]) : chunk;
    for (;;) {
      const frame = takeFrame(link.buffers[dir], this.maxPacketBytes);
      if (frame === 'more') return;
      if (frame === 'bad') {
        // Not MQTT we can frame (or over the bound): pass both directions through untouched from here on.
        this.notes.push(`conn ${link.id}: ${dir} stream not framable; passing bytes through`);
        link.framed = false;
        for (const d of ['up', 'down'] as const) {
          if (link.buffers[d].length) this.write(link, d, link.buffers[d]);
          link.buffers[d] = Buffer.alloc(0);
        }
        return;
      }
      link.buffers[dir] = link.buffers[dir].subarray(frame.bytes.length);
      this.packet(link, dir, Buffer.from(frame.bytes), frame);
      if (link.closed || link.halted) return;
    }
  }

  private packet(link: Link, dir: Direction, bytes: Buffer, frame: Frame): void {
    const index = this.packetIndex[dir]++;
    let decoded: DecodedPacket | undefined;
    if (dir === 'up' && frame.type === 'connect') {
      decoded = decodePacket(bytes, 4);
      if (decoded) {
        link.clientId = decoded.clientId ?? '';
        link.protocolVersion = decoded.protocolVersion ?? 4;
      }
    }
    if (frame.type === 'publish' && link.protocolVersion === 5) decoded = this.noteAlias(link, dir, bytes);
    // Swallow the acknowledgement of a packet the gateway injected.
    if (frame.type === 'puback' || frame.type === 'pubrec') {
      const swallow = link.swallow[dir];
      if (swallow.size) {
        const id = bytes.readUInt16BE(frame.body);
        const count = swallow.get(id);
        if (count) {
          if (count === 1) swallow.delete(id);
          else swallow.set(id, count - 1);
          return;
        }
      }
    }

    // The first rule that fires takes the packet; every matching rule counts its ordinal.
    let fired: { rule: Rule; index: number; ordinal: number; rng: Rng } | undefined;
    this.options.rules.forEach((rule, i) => {
      const type = rule.type ?? (rule.action === 'refuseConnect' ? 'connect' : 'publish');
      if ((rule.dir ?? 'up') !== dir || type !== frame.type) return;
      if (rule.clientId !== undefined && rule.clientId !== link.clientId) return;
      const ordinal = this.ordinals[i]++;
      if (fired) return;
      if (rule.nth && !rule.nth.includes(ordinal)) return;
      if (rule.limit !== undefined && this.firings[i] >= rule.limit) return;
      const rng = new Rng(deriveSeed(this.seed, i, ordinal));
      if (rule.probability !== undefined && !rng.chance(rule.probability)) return;
      this.firings[i]++;
      fired = { rule, index: i, ordinal, rng };
    });

    if (!fired) {
      this.forward(link, dir, bytes, frame);
      return;
    }
    const { rule, index: ruleIndex, ordinal, rng } = fired;
    const log = (detail: string) => {
      const event: GatewayEvent = { seed: this.seed, rule: ruleIndex, action: rule.action, dir, type: frame.type, clientId: link.clientId, ordinal, packetIndex: index, conn: link.id, detail };
      this.events.push(event);
      this.options.onEvent?.(event);
    };
    const other: Direction = dir === 'up' ? 'down' : 'up';
    const publishOf = () => decoded ?? (frame.type === 'publish' ? decodePacket(bytes, link.protocolVersion) : undefined);

    switch (rule.action) {
      case 'cut': {
        if (rule.mid === false) {
          log('before the packet');
        } else {
          const keep = rng.between(1, bytes.length - 1);
          log(`after ${keep} of ${bytes.length} bytes`);
          this.write(link, dir, bytes.subarray(0, keep));
        }
        this.enqueue(link, dir, () => this.close(link));
        // Nothing after this packet may pass, in either direction.
        this.stopReading(link);
        return;
      }
      case 'stall': {
        const keep = rng.between(1, bytes.length - 1);
        log(`${keep} of ${bytes.length} bytes, then ${rule.ms} ms`);
        this.write(link, dir, bytes.subarray(0, keep));
        this.enqueue(link, dir, () => sleep(rule.ms));
        this.write(link, dir, bytes.subarray(keep));
        return;
      }
      case 'delay':
        log(`${rule.ms} ms`);
        this.enqueue(link, dir, () => sleep(rule.ms));
        this.forward(link, dir, bytes, frame);
        return;
      case 'drop':
        log(`${bytes.length} bytes`);
        return;
      case 'duplicate': {
        const copies = rule.copies ?? 1;
        const p = frame.type === 'publish' ? publishOf() : undefined;
        log(`${copies} extra cop${copies === 1 ? 'y' : 'ies'}${p?.messageId !== undefined ? ` of id ${p.messageId}` : ''}`);
        this.forward(link, dir, bytes, frame);
        for (let c = 0; c < copies; c++) {
          if (p && p.qos > 0 && p.messageId !== undefined) this.swallowAck(link, other, p.messageId);
          this.write(link, dir, bytes);
        }
        return;
      }
      case 'flip': {
        const copy = Buffer.from(bytes);
        const p = rule.region !== 'any' && frame.type === 'publish' ? publishOf() : undefined;
        const payloadLength = p ? Buffer.byteLength(p.payload as Buffer) : 0;
        const start = payloadLength > 0 ? copy.length - payloadLength : 1;
        const where: string[] = [];
        for (let b = 0; b < (rule.bits ?? 1); b++) {
          const offset = rng.between(start, copy.length - 1);
          const bit = rng.below(8);
          copy[offset] ^= 1 << bit;
          where.push(`byte ${offset} bit ${bit}`);
        }
        log(`${payloadLength > 0 ? 'payload' : 'packet'}: ${where.join(', ')}`);
        this.write(link, dir, copy);
        return;
      }
      case 'reorder': {
        const p = publishOf();
        log(`withheld${p?.messageId !== undefined ? ` id ${p.messageId}` : ''}; connection cut; injected on ${link.clientId || 'the client'}'s next connection`);
        this.hold(link.clientId, { bytes: this.standalone(link, dir, bytes, p), qos: p?.qos ?? 0, messageId: p?.messageId, rule: ruleIndex, ordinal, releaseAfterPublishes: rule.releaseAfterPublishes ?? 1, releaseAfterMs: rule.releaseAfterMs ?? 100 });
        this.enqueue(link, dir, () => this.close(link));
        this.stopReading(link);
        return;
      }
      case 'replay': {
        const p = publishOf();
        const times = rule.times ?? 1;
        const afterMs = rule.afterMs ?? 0;
        log(`captured ${bytes.length} bytes${p?.messageId !== undefined ? ` id ${p.messageId}` : ''}; replayed ${times}× ${rule.nextConnection ? 'on the next connection' : `after ${afterMs} ms`}`);
        this.forward(link, dir, bytes, frame);
        // On the next connection the alias is not mapped: the capture travels with its topic.
        const held: Held = { bytes: rule.nextConnection ? this.standalone(link, dir, bytes, p) : bytes, qos: p?.qos ?? 0, messageId: p?.messageId, rule: ruleIndex, ordinal, releaseAfterPublishes: rule.releaseAfterPublishes ?? 1, releaseAfterMs: rule.releaseAfterMs ?? 100 };
        for (let t = 0; t < times; t++) {
          if (rule.nextConnection) {
            this.hold(link.clientId, held);
          } else {
            this.enqueue(link, dir, () => sleep(afterMs));
            this.enqueue(link, dir, () => this.inject(link, dir, held));
          }
        }
        return;
      }
      case 'forge': {
        const p = publishOf();
        if (!p) {
          log('not a PUBLISH: forwarded, nothing forged');
          this.forward(link, dir, bytes, frame);
          return;
        }
        const original = p.payload as Buffer;
        const payload = rule.payload ? Buffer.from(rule.payload) : Buffer.alloc(original.length);
        if (!rule.payload) rng.fill(payload);
        const qos = p.qos ?? 0;
        const messageId = qos > 0 ? link.forgedId-- : undefined;
        // The forged PUBLISH names its topic in full (never an alias), so the broker routes it as the device's.
        const topic = rule.topic ?? this.topicOf(link, dir, p);
        const forged = encodePacket({ cmd: 'publish', topic, payload, qos, dup: false, retain: false, messageId, ...(link.protocolVersion === 5 ? { properties: {} } : {}) }, link.protocolVersion);
        log(`forged ${topic} ${payload.length} bytes qos ${qos}${messageId !== undefined ? ` id ${messageId}` : ''}`);
        this.forward(link, dir, bytes, frame);
        if (messageId !== undefined) this.swallowAck(link, other, messageId);
        this.write(link, dir, forged);
        return;
      }
      case 'refuseConnect': {
        const v = link.protocolVersion;
        const connack = v === 5 ? { cmd: 'connack', reasonCode: 0x84, sessionPresent: false } : { cmd: 'connack', returnCode: 0x01, sessionPresent: false };
        log(v === 5 ? 'CONNACK reason 0x84 (unsupported protocol version)' : `CONNACK return code 0x01 (unacceptable protocol version, level ${v})`);
        link.up.destroy();
        this.stopReading(link);
        this.enqueue(link, 'down', () => new Promise<void>((resolve) => link.down.end(encodePacket(connack, v === 5 ? 5 : 4), () => resolve())));
        return;
      }
      case 'restartBroker': {
        const broker = this.options.broker!;
        log(`restarting ${broker.kind}`);
        this.forward(link, dir, bytes, frame);
        this.enqueue(link, dir, () => {
          this.restarts = this.restarts.then(() => broker.restart()).catch((e) => {
            this.notes.push(`broker restart failed: ${String(e)}`);
          });
        });
        return;
      }
    }
  }

  /** Forward a packet unchanged, watching CONNACK and PUBLISH for withheld packets to release. */
  private forward(link: Link, dir: Direction, bytes: Buffer, frame: Frame): void {
    this.write(link, dir, bytes);
    if (dir === 'down' && frame.type === 'connack' && !link.connacked) {
      link.connacked = true;
      const held = this.pending.get(link.clientId);
      if (held?.length) {
        const after = Math.min(...held.map((h) => h.releaseAfterMs));
        link.releaseTimer = setTimeout(() => this.release(link), after);
      }
    }
    if (dir === 'up' && frame.type === 'publish' && link.connacked) {
      link.publishesSinceConnack++;
      const held = this.pending.get(link.clientId);
      if (held?.length) {
        const needed = Math.min(...held.map((h) => h.releaseAfterPublishes));
        if (link.publishesSinceConnack >= needed) this.release(link);
      }
    }
  }

  /** Decode an MQTT 5 PUBLISH and record the Topic Alias mapping it sets, if any. */
  private noteAlias(link: Link, dir: Direction, bytes: Buffer): DecodedPacket | undefined {
    const p = decodePacket(bytes, 5);
    const alias = p?.properties?.topicAlias;
    if (p && typeof alias === 'number' && typeof p.topic === 'string' && p.topic.length > 0) link.aliases[dir].set(alias, p.topic);
    return p;
  }

  /** The PUBLISH's topic: its own, or the one its Topic Alias maps to on this connection ('' when unmapped). */
  private topicOf(link: Link, dir: Direction, p: DecodedPacket): string {
    if (typeof p.topic === 'string' && p.topic.length > 0) return p.topic;
    const alias = p.properties?.topicAlias;
    return typeof alias === 'number' ? (link.aliases[dir].get(alias) ?? '') : '';
  }

  /** The PUBLISH as it must travel on another connection: with its topic in full and no Topic Alias. */
  private standalone(link: Link, dir: Direction, bytes: Buffer, p: DecodedPacket | undefined): Buffer {
    if (!p || p.cmd !== 'publish' || p.properties?.topicAlias === undefined) return bytes;
    const { topicAlias: _dropped, ...properties } = p.properties as Record<string, unknown>;
    return encodePacket({ cmd: 'publish', topic: this.topicOf(link, dir, p), payload: p.payload, qos: p.qos, dup: p.dup, retain: p.retain, messageId: p.messageId, properties }, 5);
  }

  private hold(clientId: string, held: Held): void {
    const list = this.pending.get(clientId) ?? [];
    list.push(held);
    this.pending.set(clientId, list);
  }

  private release(link: Link): void {
    clearTimeout(link.releaseTimer);
    const held = this.pending.get(link.clientId);
    if (!held?.length || link.closed) return;
    this.pending.delete(link.clientId);
    for (const h of held) this.enqueue(link, 'up', () => this.inject(link, 'up', h));
  }

  private inject(link: Link, dir: Direction, held: Held): void {
    if (link.closed) {
      this.hold(link.clientId, held);
      return;
    }
    if (held.qos > 0 && held.messageId !== undefined) this.swallowAck(link, dir === 'up' ? 'down' : 'up', held.messageId);
    link.socket(dir).write(held.bytes);
  }

  private swallowAck(link: Link, dir: Direction, messageId: number): void {
    link.swallow[dir].set(messageId, (link.swallow[dir].get(messageId) ?? 0) + 1);
  }

  /** After a cut: no more bytes from either side are read or forwarded. */
  private stopReading(link: Link): void {
    link.halted = true;
    link.down.removeAllListeners('data');
    link.up.removeAllListeners('data');
    link.down.pause();
    link.up.pause();
  }
}

export async function startGateway(options: GatewayOptions): Promise<HostileGateway> {
  const gateway = new HostileGateway(options);
  await gateway.listen();
  return gateway;
}
