/**
 * Helpers for the scaled-out ingest (test/ingest/scale-out.test.ts,
 * bench/ingest-scale.bench.ts): ingest workers as real CLI processes
 * (`holdfast ingest run --db postgres://… --shared-group …`), each with its
 * own stable client id, and the exactly-once check over a PostgreSQL
 * store: every (device, key id, counter) a device sent is stored once,
 * with its payload, and nothing else.
 */
import assert from 'node:assert/strict';
import { LOOPBACK } from '../../tools/net/common.ts';
import { PostgresStore } from '../../tools/ingest/store-postgres.ts';
import { start } from '../cli/cli-harness.ts';
import { INGEST_ACCOUNT, payloadOf, PRIMITIVES, publishAll, seal, waitUntil, type TestBroker, type TestDevice } from './ingest-helpers.ts';
import { openReceipt } from '../../firmware/security/receipt.ts';
import type { MqttClient } from 'mqtt';
import type { ChildProcess } from 'node:child_process';

export interface WorkerProcess {
  readonly clientId: string;
  readonly child: ChildProcess;
  readonly done: Promise<{ status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
  stderr(): string;
}

/** One worker of `group`: `holdfast ingest run` as `clientId` (its persistent session), against the database `url`. */
export function launchWorker(broker: TestBroker, url: string, inventory: string, group: string, clientId: string, extra: readonly string[] = []): WorkerProcess {
  const args = [
    'ingest', 'run', '--broker', `mqtt://${LOOPBACK}:${broker.port}`, '--db', url, '--devices', inventory, '--username', INGEST_ACCOUNT.username,
    '--shared-group', group, '--client-id', clientId, '--progress-ms', '0', ...extra,
  ];
  const run = start(args, { env: { ...process.env, HOLDFAST_INGEST_PASSWORD: INGEST_ACCOUNT.password } });
  let stderr = '';
  run.child.stderr?.on('data', (d) => (stderr += String(d)));
  return { clientId, child: run.child, done: run.done as WorkerProcess['done'], stderr: () => stderr };
}

/** Waits until the worker logged its subscription (or died: then throws with its stderr). */
export async function subscribed(worker: WorkerProcess, timeoutMs = 120_000): Promise<void> {
  await waitUntil(() => worker.stderr().includes('subscribed to') || worker.child.exitCode !== null, timeoutMs, () => `${worker.clientId} did not subscribe: ${worker.stderr()}`);
  if (!worker.stderr().includes('subscribed to')) throw new Error(`${worker.clientId} exited before subscribing: ${worker.stderr()}`);
}

/** Records accepted so far, from the sender rows (cheap: never reads the records). */
export async function acceptedSoFar(store: PostgresStore): Promise<number> {
  const loaded = await store.load();
  return loaded.senders.reduce((n, s) => n + s.window.accepted, 0);
}

/**
 * Exactly once: the store holds each of `sent` (per device, counters 1..n)
 * once, with its payload, and nothing else; the sender rows agree.
 */
export async function assertExactlyOnce(store: PostgresStore, fleet: readonly TestDevice[], perDevice: number, what: string): Promise<void> {
  const records = await store.records();
  const seen = new Map<string, number>();
  for (const r of records) {
    const key = `${r.device}/${r.keyId}/${r.counter}`;
    seen.set(key, (seen.get(key) ?? 0) + 1);
  }
  const twice = [...seen.entries()].filter(([, n]) => n > 1);
  assert.deepEqual(twice, [], `${what}: no record twice`);
  assert.equal(records.length, fleet.length * perDevice, `${what}: every record sent is stored (${records.length} of ${fleet.length * perDevice})`);
  const byName = new Map(fleet.map((d) => [d.name, d]));
  for (const d of fleet) {
    const mine = records.filter((x) => x.device === d.name);
    assert.deepEqual(mine.map((x) => x.counter), Array.from({ length: perDevice }, (_, i) => i + 1), `${what}: ${d.name} counters 1..${perDevice}`);
    assert.ok(mine.every((x) => x.keyId === d.keyId), `${what}: ${d.name} key id`);
  }
  for (const r of records) assert.deepEqual(r.payload, payloadOf(byName.get(r.device) as TestDevice, r.counter), `${what}: payload of ${r.device}#${r.counter}`);
  const loaded = await store.load();
  for (const d of fleet) {
    const s = loaded.senders.find((x) => x.device === d.name && x.keyId === d.keyId);
    assert.ok(s, `${what}: a window for ${d.name}`);
    assert.equal(s.window.accepted, perDevice, `${what}: ${d.name} window counts ${perDevice} accepted`);
    assert.equal(s.window.highest, perDevice, `${what}: ${d.name} highest`);
    assert.equal(s.replays, 0, `${what}: ${d.name}: no record refused as stale`);
  }
}

/** SIGTERM every worker still running and wait for each (graceful: exit 0). */
export async function stopWorkers(workers: readonly WorkerProcess[]): Promise<{ clientId: string; status: number | null; json: Record<string, unknown> | undefined; stderr: string }[]> {
  for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGTERM');
  return Promise.all(
    workers.map(async (w) => {
      const r = await w.done;
      let json: Record<string, unknown> | undefined;
      try {
        json = JSON.parse(r.stdout) as Record<string, unknown>;
      } catch {
        json = undefined;
      }
      return { clientId: w.clientId, status: r.status, json, stderr: r.stderr };
    }),
  );
}

/**
 * What a device's receipt gate does (docs/spec/receipt.md), for test
 * devices that publish with mqtt.js: it subscribes to its receipt topic,
 * opens every receipt with its own keys (a receipt that does not open is
 * refused and counted), remembers every counter a receipt covered, and
 * `resend` publishes again every counter in 1..upto no receipt covered
 * yet (the same bytes: the outbox's sealed record). A record is released
 * only by a receipt, so a message the broker drops after its PUBACK is
 * sent again instead of lost.
 */
export class ReceiptGateStandIn {
  readonly covered = new Set<number>();
  refused = 0;
  resent = 0;

  private constructor(
    private readonly client: MqttClient,
    private readonly device: TestDevice,
    private readonly payload: Uint8Array | undefined,
  ) {}

  /** `payload`: the payload every record of this device carries (default: payloadOf(device, counter)). */
  static async attach(client: MqttClient, device: TestDevice, payload?: Uint8Array): Promise<ReceiptGateStandIn> {
    const gate = new ReceiptGateStandIn(client, device, payload);
    const topic = `holdfast/${device.name}/receipt`;
    client.on('message', (t, payload) => {
      if (t === topic) gate.onReceipt(new Uint8Array(payload));
    });
    await client.subscribeAsync(topic, { qos: 1 });
    return gate;
  }

  private onReceipt(bytes: Uint8Array): void {
    try {
      const r = openReceipt(bytes, this.device.keys, PRIMITIVES);
      for (let c = Math.max(1, r.highest - 1023); c <= r.highest; c++) if (r.covers(c)) this.covered.add(c);
    } catch {
      this.refused++;
    }
  }

  /** Counters 1..upto no receipt has covered. */
  unreceipted(upto: number): number[] {
    const out: number[] = [];
    for (let c = 1; c <= upto; c++) if (!this.covered.has(c)) out.push(c);
    return out;
  }

  async resend(upto: number, window = 25): Promise<number> {
    const missing = this.unreceipted(upto);
    this.resent += missing.length;
    await publishAll(this.client, this.device.topic, missing.map((c) => seal(this.device, c, this.payload ?? payloadOf(this.device, c))), window);
    return missing.length;
  }
}

/**
 * Until every device's counters 1..upto are covered by a receipt: wait while receipts make progress, and after
 * `quietMs` without any resend what is still unreceipted (as the gate does after its receipt timeout), at most
 * `rounds` times.
 */
export async function drainWithReceipts(gates: readonly ReceiptGateStandIn[], upto: number, quietMs: number, rounds: number): Promise<{ resent: number; rounds: number }> {
  for (let round = 0; ; round++) {
    // Wait while receipts keep coming: a resend is due only after `quietMs` without progress (the gate's receipt timeout).
    let seen = -1;
    let deadline = 0;
    while (gates.some((g) => g.unreceipted(upto).length > 0)) {
      const covered = gates.reduce((n, g) => n + g.covered.size, 0);
      if (covered !== seen) {
        seen = covered;
        deadline = Date.now() + quietMs;
      } else if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    if (gates.every((g) => g.unreceipted(upto).length === 0)) return { resent: gates.reduce((n, g) => n + g.resent, 0), rounds: round };
    if (round >= rounds) throw new Error(`records still unreceipted after ${rounds} resends: ${gates.reduce((n, g) => n + g.unreceipted(upto).length, 0)}`);
    await Promise.all(gates.map((g) => g.resend(upto)));
  }
}
