/**
 * The ingest service (docs/spec/ingest.md): subscribe, verify each
 * envelope, apply the sender's window, commit a batch (records, windows,
 * counters) in one transaction, and only then PUBACK the batch's messages.
 *
 * Order per batch:
 *   1. take up to `batchMax` queued messages (whatever arrived while the
 *      previous batch committed, and while messages keep arriving up to
 *      `lingerMs` more: batches grow with load, stay small idle);
 *   2. classify each, in arrival order: refused before authentication
 *      (forgery: bad tag, wrong device, unknown key, malformed, bad topic),
 *      or authentic and then fresh / duplicate / stale by the window;
 *   3. commit records + changed windows + counters (one transaction);
 *   4. PUBACK every message of the batch, in arrival order.
 * With a shared store (PostgreSQL, several workers: store-postgres.ts),
 * steps 2 and 3 split: this process only authenticates; the store judges
 * the authentic deliveries against the windows it row-locks inside the
 * transaction and returns the windows it committed (the receipts' source).
 * A kill before 4 leaves the batch unacknowledged: the broker redelivers it
 * and whatever step 3 committed turns into duplicates. A commit that fails
 * stops the service (its windows in memory are no longer the database's):
 * nothing of that batch is acknowledged; a restart reloads the database.
 *
 * Host tool (Node).
 */
import { authenticateEnvelope, type AuthenticateOptions } from '../../firmware/security/envelope.ts';
import { EnvelopeError, peekHeader, TELEMETRY_SUITES } from '../../firmware/security/envelope-format.ts';
import type { EnvelopePrimitives } from '../../firmware/security/envelope-primitives.ts';
import type { Inventory, KnownKey } from './inventory.ts';
import { nodeEnvelopePrimitives } from './node-primitives.ts';
import { isShared, type IngestStore, type LoadedState, type RefusalCount, type RotatedDevice, type SenderState } from './store.ts';
import { judge, type Delivery, type KeyBounds } from './decide.ts';
import { Subscriber, type IncomingMessage } from './subscriber.ts';
import { IngestWindow } from './window.ts';
import { receiptMessages } from './receipts.ts';

export const DEFAULT_BATCH = 2000;
export const DEFAULT_TOPIC = 'holdfast/+/telemetry/#';
export const DEFAULT_CLIENT_ID = 'holdfast-ingest';
/** The subscriber stops reading from the broker while this many batches wait (memory bound). */
const QUEUE_BATCHES = 4;
/**
 * A batch smaller than `batchMax` waits while messages keep arriving: at most this long after the previous
 * commit ended (or after the first message, when idle) — each transaction has a fixed cost (measured: about
 * 2-5 ms of the store worker's CPU on PGlite), and without the wait a fast ingest commits whatever arrived during
 * the last commit, hundreds of small transactions a run.
 */
export const DEFAULT_LINGER_MS = 50;
/** ... and the wait ends as soon as no message arrived for this long (a broker holding back further deliveries until PUBACKs come, or a quiet network, costs this much, not the whole linger). */
const QUIET_MS = 2;

export interface IngestOptions {
  host: string;
  port: number;
  protocolVersion: 4 | 5;
  clientId?: string;
  username?: string;
  password?: string;
  topic?: string;
  store: IngestStore;
  /** What `store.load()` returned (the caller reports the restart cost). */
  loaded: LoadedState;
  inventory: Inventory;
  batchMax?: number;
  /** Longest wait for a batch to fill (DEFAULT_LINGER_MS; 0: commit whatever is queued at once). */
  lingerMs?: number;
  /** Stop (gracefully) once this many records were accepted by this run. */
  exitAfter?: number;
  onLog?(line: string): void;
}

export interface IngestCounts {
  accepted: number;
  duplicates: number;
  replays: number;
  forgeries: number;
  batches: number;
  messages: number;
  largestBatch: number;
  /** Receipts published (one per sender per committed batch, QoS 0, retained). */
  receipts: number;
  /** Authentic records under a retired key at or above its bound (refusal `retired-key`, docs/spec/key-rotation.md); set by the service (optional for callers that build counts themselves). */
  retired?: number;
}

interface Sender {
  readonly device: string;
  readonly keyId: number;
  readonly window: IngestWindow;
  duplicates: number;
  replays: number;
  version: number;
}

export class IngestService {
  readonly counts: IngestCounts = { accepted: 0, duplicates: 0, replays: 0, forgeries: 0, batches: 0, messages: 0, largestBatch: 0, receipts: 0, retired: 0 };
  /** Transactions run again after a deadlock or serialization failure (several workers on PostgreSQL). */
  retries = 0;
  /** performance.now() of the first message received and of the last commit. */
  firstMessageAt: number | undefined;
  lastCommitAt: number | undefined;
  private readonly senders = new Map<string, Sender>();
  /** Arrival time: wall-clock milliseconds since the epoch (metadata only, never used to decide). */
  private readonly queue: { message: IncomingMessage; arrivedAt: number }[] = [];
  /** Device ids (8 bytes) of the inventory's devices, by their hex form: decoded once, not per message. */
  private readonly deviceIds = new Map<string, Uint8Array>();
  /** authenticateEnvelope's options per inventory key, and per device for key ids it does not list (see openOptions). */
  private readonly keyOptions = new Map<KnownKey, AuthenticateOptions>();
  private readonly unknownKeyOptions = new Map<string, AuthenticateOptions>();
  private readonly subscriber: Subscriber;
  private readonly primitives: EnvelopePrimitives = nodeEnvelopePrimitives();
  private readonly batchMax: number;
  private readonly lingerMs: number;
  /** performance.now() of the last message received, and of the start of the current wait for a batch to fill. */
  private lastArrival = 0;
  private lingerSince: number | undefined;
  private lingerTimer: NodeJS.Timeout | undefined;
  private committing = false;
  private stopping = false;
  private paused = false;
  private finished = false;
  private resolveDone!: () => void;
  private rejectDone!: (error: Error) => void;
  /** Settles when the service has stopped: resolves after a graceful stop, rejects on a fatal error. */
  readonly done: Promise<void>;

  constructor(private readonly options: IngestOptions) {
    this.batchMax = options.batchMax ?? DEFAULT_BATCH;
    this.lingerMs = options.lingerMs ?? DEFAULT_LINGER_MS;
    // A shared store keeps the windows in the database only (several workers); the embedded one keeps them here too.
    if (!isShared(options.store)) for (const s of options.loaded.senders) {
      this.senders.set(`${s.device}/${s.keyId}`, { device: s.device, keyId: s.keyId, window: new IngestWindow(s.window), duplicates: s.duplicates, replays: s.replays, version: s.version });
    }
    this.done = new Promise((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    this.done.catch(() => undefined);
    this.subscriber = new Subscriber({
      host: options.host,
      port: options.port,
      protocolVersion: options.protocolVersion,
      clientId: options.clientId ?? DEFAULT_CLIENT_ID,
      ...(options.username !== undefined ? { username: options.username } : {}),
      ...(options.password !== undefined ? { password: options.password } : {}),
      topic: options.topic ?? DEFAULT_TOPIC,
      onMessage: (message) => this.receive(message),
      onFatal: (error) => this.fail(error),
      onLog: (line) => options.onLog?.(line),
    });
  }

  /** Connect and subscribe; resolves once the broker granted the subscription. */
  async start(): Promise<void> {
    this.subscriber.start();
    await Promise.race([this.subscriber.ready, this.done]);
  }

  /**
   * Verify with `inventory` from now on (an operator revoked a device or a key): every batch classified after this
   * resolves uses it. Resolves once a commit under way (classified with the old inventory) has ended, so from then
   * on no record the old inventory alone admits is accepted.
   */
  async reloadInventory(inventory: Inventory): Promise<void> {
    this.options.inventory = inventory;
    this.keyOptions.clear();
    this.unknownKeyOptions.clear();
    while (this.committing && !this.finished) await new Promise<void>((resolve) => setTimeout(resolve, 1));
  }

  /** Graceful: stop taking messages, commit and acknowledge what was queued, DISCONNECT. */
  async stop(): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      this.pump();
    }
    await this.done;
  }

  private receive(message: IncomingMessage): void {
    if (this.stopping || this.finished) return; // not acknowledged: the broker keeps it for the next run
    this.lastArrival = performance.now();
    this.firstMessageAt ??= this.lastArrival;
    this.queue.push({ message, arrivedAt: Date.now() });
    if (!this.paused && this.queue.length >= this.batchMax * QUEUE_BATCHES) {
      this.paused = true;
      this.subscriber.pause();
    }
    if (!this.committing && this.lingerTimer === undefined) queueMicrotask(() => this.pump());
  }

  private pump(): void {
    if (this.committing || this.finished) return;
    if (this.queue.length === 0) {
      if (this.stopping) void this.finish();
      return;
    }
    if (!this.stopping && this.queue.length < this.batchMax && this.lingerMs > 0) {
      const now = performance.now();
      this.lingerSince ??= now;
      const waited = now - this.lingerSince;
      if (now - this.lastArrival < QUIET_MS && waited < this.lingerMs) {
        this.lingerTimer ??= setTimeout(() => {
          this.lingerTimer = undefined;
          this.pump();
        }, Math.min(QUIET_MS, this.lingerMs - waited));
        return;
      }
    }
    this.lingerSince = undefined;
    clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    const batch = this.queue.splice(0, this.batchMax);
    if (this.paused && this.queue.length < this.batchMax) {
      this.paused = false;
      this.subscriber.resume();
    }
    this.committing = true;
    this.commitBatch(batch).then(
      () => {
        this.committing = false;
        if (this.options.exitAfter !== undefined && this.counts.accepted >= this.options.exitAfter) this.stopping = true;
        this.pump();
      },
      (error: unknown) => this.fail(error instanceof Error ? error : new Error(String(error))),
    );
  }

  private async commitBatch(batch: readonly { message: IncomingMessage; arrivedAt: number }[]): Promise<void> {
    const deliveries: Delivery[] = [];
    const refusals = new Map<string, number>();
    for (const { message, arrivedAt } of batch) {
      const verdict = this.classify(message);
      if (verdict.kind === 'refused') {
        const key = `${verdict.device}\u0000${verdict.reason}`;
        refusals.set(key, (refusals.get(key) ?? 0) + 1);
        continue;
      }
      deliveries.push({ device: verdict.device, keyId: verdict.keyId, counter: verdict.counter, payload: verdict.payload, arrivedAt });
    }
    const refusalRows: RefusalCount[] = [...refusals.entries()].map(([key, count]) => {
      const [device, reason] = key.split('\u0000');
      return { device, reason, count };
    });
    const store = this.options.store;
    let committed: { accepted: number; duplicates: number; replays: number; retired?: number; senders: readonly SenderState[] };
    if (isShared(store)) {
      // Several workers: the database judges the batch against the windows it holds, under row locks (store-postgres.ts).
      const decision = await store.decide({ deliveries, refusals: refusalRows, rotated: this.rotatedOf(deliveries) });
      this.retries += decision.attempts - 1;
      committed = decision;
    } else {
      committed = await this.judgeAndCommit(store, deliveries, refusalRows);
    }
    this.lastCommitAt = performance.now();
    this.subscriber.ack(batch.map((b) => b.message));
    // Only now, from the windows as committed: a receipt releases records from the devices' flash (docs/spec/receipt.md).
    for (const receipt of receiptMessages(committed.senders, this.options.inventory, this.primitives)) {
      if (this.subscriber.publish(receipt.topic, receipt.payload, true)) this.counts.receipts++;
    }
    const forgeries = refusalRows.reduce((n, r) => n + (r.reason === 'retired-key' ? 0 : r.count), 0);
    this.counts.accepted += committed.accepted;
    this.counts.duplicates += committed.duplicates;
    this.counts.replays += committed.replays;
    this.counts.forgeries += forgeries;
    this.counts.retired = (this.counts.retired ?? 0) + (committed.retired ?? 0);
    this.counts.batches++;
    this.counts.messages += batch.length;
    if (batch.length > this.counts.largestBatch) this.counts.largestBatch = batch.length;
  }

  /** One writer: judge against the windows kept in memory, commit with each window's version as read (a conflict stops the service). */
  private async judgeAndCommit(store: IngestStore, deliveries: readonly Delivery[], refusals: RefusalCount[]) {
    const inventory = this.options.inventory;
    const bounds: KeyBounds = {
      keyIdsOf: (device) => inventory.rotated.get(device),
      untilCounterOf: (device, keyId) => inventory.keys.get(`${device}/${keyId}`)?.untilCounter,
      firstOf: (device, keyId) => this.senders.get(`${device}/${keyId}`)?.window.first,
    };
    const judged = judge(
      deliveries,
      (device, keyId) => {
        const id = `${device}/${keyId}`;
        let sender = this.senders.get(id);
        if (!sender) {
          sender = { device, keyId, window: new IngestWindow(), duplicates: 0, replays: 0, version: 0 };
          this.senders.set(id, sender);
        }
        return sender;
      },
      bounds,
    );
    for (const [device, count] of judged.retired) refusals.push({ device, reason: 'retired-key', count });
    const retired = [...judged.retired.values()].reduce((n, c) => n + c, 0);
    const senders: SenderState[] = judged.touched.map((sender) => ({
      device: sender.device,
      keyId: sender.keyId,
      window: sender.window.state(),
      duplicates: sender.duplicates,
      replays: sender.replays,
      version: sender.version,
    }));
    await store.commit({ records: judged.records, senders, refusals });
    for (const sender of judged.touched) sender.version++;
    return { accepted: judged.records.length, duplicates: judged.duplicates, replays: judged.replays, retired, senders };
  }

  /** The batch's rotated devices (several key ids in the inventory), for a shared store's key bound. */
  private rotatedOf(deliveries: readonly Delivery[]): RotatedDevice[] {
    const inventory = this.options.inventory;
    const out = new Map<string, RotatedDevice>();
    for (const d of deliveries) {
      if (out.has(d.device)) continue;
      const keyIds = inventory.rotated.get(d.device);
      if (keyIds !== undefined) out.set(d.device, { device: d.device, keyIds, untilCounters: keyIds.map((k) => inventory.keys.get(`${d.device}/${k}`)?.untilCounter) });
    }
    return [...out.values()];
  }

  /** Authentication and identity: the topic names the device, the envelope must prove it. */
  private classify(message: IncomingMessage): { kind: 'refused'; device: string; reason: string } | { kind: 'authentic'; device: string; keyId: number; counter: number; payload: Uint8Array } {
    const topic = message.topic;
    // The second level of holdfast/<device>/...: what topic.split('/')[1] gives, without splitting.
    let topicDevice: string | undefined;
    if (topic.startsWith('holdfast/')) {
      const end = topic.indexOf('/', 9);
      topicDevice = end === -1 ? topic.slice(9) : topic.slice(9, end);
    }
    // Unknown names are pooled under '': a flood of invented topics adds no rows.
    if (topicDevice === undefined || !this.options.inventory.devices.has(topicDevice)) return { kind: 'refused', device: '', reason: topicDevice === undefined ? 'bad-topic' : 'unknown-device' };
    const bytes = new Uint8Array(message.payload.buffer, message.payload.byteOffset, message.payload.length);
    // The key id (a varint after version and suite) picks the suite this sender must use; the device id is not in the envelope: it is the topic's.
    const peeked = peekHeader(bytes);
    const known: KnownKey | undefined = peeked === undefined ? undefined : this.options.inventory.keys.get(`${topicDevice}/${peeked.keyId}`);
    try {
      const opened = authenticateEnvelope(bytes, this.openOptions(topicDevice, known));
      return { kind: 'authentic', device: topicDevice, keyId: opened.keyId, counter: opened.counter, payload: opened.payload };
    } catch (error) {
      return { kind: 'refused', device: topicDevice, reason: error instanceof EnvelopeError ? error.code : 'malformed' };
    }
  }

  /**
   * The options that open an envelope claimed by `device` (an inventory device) whose header names `known`'s key
   * (undefined: a key id the inventory does not list for it, or an unreadable header): only that key, only its
   * suite. Built once per key and per device, not per message.
   */
  private openOptions(device: string, known: KnownKey | undefined): AuthenticateOptions {
    const cached = known === undefined ? this.unknownKeyOptions.get(device) : this.keyOptions.get(known);
    if (cached !== undefined) return cached;
    let deviceId = this.deviceIds.get(device);
    if (deviceId === undefined) {
      deviceId = hexBytes(device);
      this.deviceIds.set(device, deviceId);
    }
    const claimed = deviceId;
    const options: AuthenticateOptions = {
      primitives: this.primitives,
      deviceId: claimed,
      suites: known ? [known.suite] : TELEMETRY_SUITES,
      keys: (id, keyId) => (known && known.keyId === keyId && sameBytes(id, claimed) ? known.keys : undefined),
    };
    if (known === undefined) this.unknownKeyOptions.set(device, options);
    else this.keyOptions.set(known, options);
    return options;
  }

  private async finish(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    try {
      await this.subscriber.stop();
      this.resolveDone();
    } catch (error) {
      this.rejectDone(error instanceof Error ? error : new Error(String(error)));
    }
  }

  private fail(error: Error): void {
    if (this.finished) return;
    this.finished = true;
    void this.subscriber.stop().finally(() => this.rejectDone(error));
  }
}

const HEX = /^[0-9a-f]{16}$/;
function hexBytes(hex: string): Uint8Array {
  if (!HEX.test(hex)) throw new Error(`internal: device ${hex} is not 16 hex digits`);
  return new Uint8Array(Buffer.from(hex, 'hex'));
}
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
