/**
 * The device's telemetry path in one object (docs/spec/receipt.md,
 * "Wiring"): `SealedOutbox` (seal at append), `ReceiptGate` (release from
 * flash on the ingest's receipt only) and `MqttClient` (the socket loop),
 * wired so that
 *
 * - the session publishes the gate's records to the telemetry topic and
 *   subscribes (QoS 1) to the receipt topic after every CONNACK;
 * - every `message` on the receipt topic goes to `gate.onReceipt`;
 * - further device topics (`subscriptions`: the command and update topics)
 *   are subscribed with it, and their messages go to `deps.onMessage`;
 * - every new connection makes the gate send everything unreceipted again;
 * - `service()` ticks the gate (the receipt timeout) and the client.
 *
 * No timers of its own, like the client: the runtime calls `service()` from
 * its loop, after appends, and whenever `nextDueMs()` comes due (0 after a
 * receipt released records, so the session takes what hold-back kept).
 */
import type { Entropy } from '../../hal/entropy.ts';
import type { MonotonicClock } from '../../hal/clock.ts';
import type { StreamConnector } from '../../hal/stream.ts';
import type { Counter } from '../../storage/counter.ts';
import type { Outbox } from '../../storage/outbox.ts';
import type { TelemetrySuite } from '../../security/envelope-format.ts';
import type { DeviceKeys } from '../../security/envelope-keys.ts';
import type { EnvelopePrimitives } from '../../security/envelope-primitives.ts';
import { MqttClient, type ClientEvent, type ClientStats, type MqttClientOptions } from '../mqtt-client/index.ts';
import type { SessionOptions } from '../mqtt-session/index.ts';
import { ReceiptGate, type ReceiptGateEvent, type ReceiptGateStats, type UnreceiptedPolicy } from './receipt-gate.ts';
import { SealedOutbox, type SealedRecord } from './sealed-outbox.ts';

export type TelemetryLinkEvent = ClientEvent | ReceiptGateEvent;

export interface TelemetryLinkOptions {
  /** The telemetry outbox: only the link appends to it and only its gate acknowledges it. */
  readonly outbox: Outbox;
  /** The persistent counter of this device and key id (docs/spec/envelope.md, "Nonce"). */
  readonly counter: Counter;
  /** This device's keys for the key id in use (deriveDeviceKeys): seal, and verify receipts. */
  readonly keys: DeviceKeys;
  readonly primitives: EnvelopePrimitives;
  /** Default hmac-sha256. */
  readonly suite?: TelemetrySuite;
  readonly host: string;
  readonly port: number;
  /** The session's options; `topic` defaults to `holdfast/<device id hex>/telemetry`. `startSeq` and `subscriptions` are the link's. */
  readonly session: Omit<SessionOptions, 'startSeq' | 'subscriptions' | 'topic'> & { readonly topic?: string };
  /** Default `holdfast/<device id hex>/receipt`. */
  readonly receiptTopic?: string;
  /** Further topic filters subscribed (QoS 1) after every CONNACK, after the receipt topic; their messages go to `deps.onMessage`. */
  readonly subscriptions?: readonly string[];
  /** Client options besides host, port and session (buffers, backoff, connect timeout, fallbackTo311). */
  readonly client?: Omit<MqttClientOptions, 'host' | 'port' | 'session'>;
  readonly receiptTimeoutMs?: number;
  readonly maxResends?: number;
  readonly unreceiptedPolicy?: UnreceiptedPolicy;
}

export interface TelemetryLinkDeps {
  readonly connector: StreamConnector;
  readonly clock: MonotonicClock;
  readonly entropy: Entropy;
  readonly onEvent?: (event: TelemetryLinkEvent) => void;
  /** A message on a topic other than the receipt topic (the `subscriptions`): called from `service()` or a stream callback. */
  readonly onMessage?: (topic: string, payload: Uint8Array) => void;
}

export interface TelemetryLinkStats {
  readonly client: ClientStats;
  readonly gate: ReceiptGateStats;
  /** Records in flash not yet released by a receipt. */
  readonly unreceipted: number;
}

/** `holdfast/<16 hex digits>/<leaf>`: the per-device topics the broker's ACL allows. */
export function deviceTopic(deviceId: Uint8Array, leaf: string): string {
  let hex = '';
  for (let i = 0; i < deviceId.length; i++) hex += (deviceId[i] < 16 ? '0' : '') + deviceId[i].toString(16);
  return `holdfast/${hex}/${leaf}`;
}

export class TelemetryLink {
  readonly sealed: SealedOutbox;
  readonly gate: ReceiptGate;
  readonly client: MqttClient;
  readonly telemetryTopic: string;
  readonly receiptTopic: string;
  private readonly outbox: Outbox;
  private readonly clock: MonotonicClock;
  private readonly onEvent: (event: TelemetryLinkEvent) => void;
  private readonly onMessage: ((topic: string, payload: Uint8Array) => void) | undefined;
  /** Something changed that the session should look at now (an append, records released). */
  private pending = false;

  constructor(options: TelemetryLinkOptions, deps: TelemetryLinkDeps) {
    if (typeof options !== 'object' || options === null) throw new TypeError('telemetry link options must be an object');
    if (typeof deps !== 'object' || deps === null) throw new TypeError('telemetry link deps must be an object');
    this.outbox = options.outbox;
    this.clock = deps.clock;
    const onEvent = deps.onEvent;
    this.onEvent = onEvent === undefined ? () => undefined : (event) => onEvent(event);
    const onMessage = deps.onMessage;
    this.onMessage = onMessage === undefined ? undefined : (topic, payload) => onMessage(topic, payload);
    this.sealed = new SealedOutbox({ outbox: options.outbox, counter: options.counter, primitives: options.primitives, keys: options.keys, suite: options.suite });
    this.telemetryTopic = options.session.topic ?? deviceTopic(options.keys.deviceId, 'telemetry');
    this.receiptTopic = options.receiptTopic ?? deviceTopic(options.keys.deviceId, 'receipt');
    this.gate = new ReceiptGate({
      outbox: options.outbox,
      keys: options.keys,
      mac: options.primitives,
      receiptTimeoutMs: options.receiptTimeoutMs,
      maxResends: options.maxResends,
      unreceiptedPolicy: options.unreceiptedPolicy,
      onEvent: (event) => this.onEvent(event),
    });
    const session: SessionOptions = { ...options.session, topic: this.telemetryTopic, startSeq: 0, subscriptions: [this.receiptTopic, ...(options.subscriptions ?? [])] };
    this.client = new MqttClient(
      { ...options.client, host: options.host, port: options.port, session },
      { connector: deps.connector, clock: deps.clock, entropy: deps.entropy, source: this.gate, onEvent: (event) => this.onClientEvent(event) },
    );
  }

  /** Open the first connection now. */
  start(now: number = this.clock.ticks()): void {
    this.client.start(now);
  }

  /** Close the connection for good (DISCONNECT when possible). */
  stop(): void {
    this.client.stop();
  }

  /** Seal and append a reading (SealedOutbox.append); returns once it is durable. Call `service()` to send it. */
  append(payload: Uint8Array): SealedRecord {
    const record = this.sealed.append(payload);
    this.pending = true;
    return record;
  }

  /** The runtime's turn: the gate's receipt timeout, then the client (reconnects, deadlines, new records). */
  service(now: number = this.clock.ticks()): void {
    this.pending = false;
    this.gate.tick(now);
    this.client.service(now);
  }

  /** Milliseconds until `service` has something to do (0: now); undefined when only stream callbacks or appends can need it. */
  nextDueMs(now: number = this.clock.ticks()): number | undefined {
    if (this.pending) return 0;
    const client = this.client.nextDueMs(now);
    const gate = this.gate.nextDueMs(now);
    if (client === undefined) return gate;
    if (gate === undefined) return client;
    return Math.min(client, gate);
  }

  stats(): TelemetryLinkStats {
    return { client: this.client.stats(), gate: this.gate.stats(), unreceipted: this.outbox.stats().queued };
  }

  private onClientEvent(event: ClientEvent): void {
    if (event.kind === 'transport-open') this.gate.connectionOpened();
    this.onEvent(event);
    if (event.kind !== 'message') return;
    if (event.topic === this.receiptTopic) {
      if (this.gate.onReceipt(event.payload) > 0) this.pending = true;
    } else if (this.onMessage !== undefined) {
      this.onMessage(event.topic, event.payload);
      // What the handler appended (a command's answer) goes out in this turn.
      this.pending = true;
    }
  }
}
