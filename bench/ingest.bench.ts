/**
 * The ingest's throughput with durable exactly-once, broker included
 * (docs/spec/ingest.md, "Measured"): mosquitto (MQTT 5, persistence on),
 * DEVICES publisher connections in this process publishing pre-sealed
 * HMAC envelopes at QoS 1, and `holdfast ingest` in its own process
 * (PGlite store; a record counts once its transaction committed, and its
 * PUBACK leaves only after that). Records per second are measured by the
 * ingest from its first message to its last commit. Then the cost of a
 * restart: the rows the next run reads before it subscribes (sender windows
 * and refusal counters, never the records), and its open time.
 *
 * All on one 2-core machine: broker, publishers and ingest share it.
 */
import { join } from 'node:path';
import { findMosquitto } from '../tools/net/common.ts';
import { LOOPBACK } from '../tools/net/common.ts';
import { start, type Run } from '../test/cli/cli-harness.ts';
import { deviceClient, INGEST_ACCOUNT, makeFleet, publishAll, seal, startBroker, tempDir, waitUntil } from '../test/ingest/ingest-helpers.ts';
import type { BenchGroup, Figure } from './figures.ts';

const DEVICES = 8;
const PER_DEVICE = 12_500;
/** Records per device queued while the ingest is stopped (after a reboot skip of 4,095). */
const BACKLOG = 5_000;
const BATCH = 5000;
const PAYLOAD_BYTES = 32;

interface RunSummary {
  accepted: number;
  duplicates: number;
  replays: number;
  forgeries: number;
  batches: number;
  largestBatch: number;
  elapsedMs: number;
  recordsPerSecond: number;
  restart: { rowsRead: number; openMs: number };
}

export async function runIngestBench(progress: (line: string) => void): Promise<{ first: RunSummary; restart: RunSummary }> {
  const found = findMosquitto();
  if (!found.ok) throw new Error(found.reason);
  const fleet = makeFleet(DEVICES, 900, ['hmac-sha256']);
  const t = tempDir('holdfast-ingest-bench-');
  const broker = await startBroker('mosquitto', fleet);
  try {
    const { writeInventory } = await import('../test/ingest/ingest-helpers.ts');
    const inventory = writeInventory(t.dir, fleet);
    const db = join(t.dir, 'db');
    const env = { ...process.env, HOLDFAST_INGEST_PASSWORD: INGEST_ACCOUNT.password };
    const args = (exitAfter: number) => ['ingest', '--broker', `mqtt://${LOOPBACK}:${broker.port}`, '--db', db, '--devices', inventory, '--username', INGEST_ACCOUNT.username, '--batch', String(BATCH), '--exit-after', String(exitAfter), '--json', '--progress-ms', '0'];
    const launch = async (exitAfter: number) => {
      const run = start(args(exitAfter), { env });
      let stderr = '';
      run.child.stderr?.on('data', (d) => (stderr += String(d)));
      await waitUntil(() => stderr.includes('subscribed to') || run.child.exitCode !== null, 300_000, () => `ingest did not subscribe: ${stderr}`);
      if (!stderr.includes('subscribed to')) throw new Error(`ingest exited: ${stderr}`);
      return run;
    };
    const summary = (run: Run): RunSummary => {
      if (run.status !== 0) throw new Error(`ingest exited ${run.status}: ${run.stderr}`);
      return JSON.parse(run.stdout) as RunSummary;
    };
    const payload = new Uint8Array(PAYLOAD_BYTES).fill(0x5a);
    progress(`ingest: sealing ${DEVICES * PER_DEVICE} records`);
    const envelopes = fleet.map((d) => Array.from({ length: PER_DEVICE }, (_, i) => seal(d, i + 1, payload)));
    const clients = await Promise.all(fleet.map((d) => deviceClient(broker, d)));
    try {
      const total = DEVICES * PER_DEVICE;
      const first = await launch(total);
      progress(`ingest: publishing ${total} records from ${DEVICES} devices`);
      await Promise.all(fleet.map((d, i) => publishAll(clients[i], d.topic, envelopes[i], 2000)));
      const one = summary(await first.done);
      progress(`ingest: ${one.accepted} accepted in ${one.elapsedMs} ms (${one.recordsPerSecond}/s), largest batch ${one.largestBatch}`);
      // Restart with a backlog: the devices publish BACKLOG more records each while no ingest runs (the broker
      // queues them in the ingest's persistent session); the next run reads its windows, subscribes and drains.
      const backlog = fleet.map((d) => Array.from({ length: BACKLOG }, (_, i) => seal(d, PER_DEVICE + 4096 + i, payload)));
      progress(`ingest: ${DEVICES * BACKLOG} records queued at the broker while the ingest is stopped`);
      await Promise.all(fleet.map((d, i) => publishAll(clients[i], d.topic, backlog[i], 2000)));
      const second = await launch(DEVICES * BACKLOG);
      const two = summary(await second.done);
      progress(`ingest: restart read ${two.restart.rowsRead} rows, opened in ${two.restart.openMs} ms; drained ${two.accepted} in ${two.elapsedMs} ms (${two.recordsPerSecond}/s)`);
      return { first: one, restart: two };
    } finally {
      await Promise.all(clients.map((c) => c.endAsync(true)));
    }
  } finally {
    await broker.stop();
    t.cleanup();
  }
}

export const ingestBench: BenchGroup = {
  title: 'Ingest: durable exactly-once throughput and restart cost',
  prefix: 'ingest.',
  workload:
    `mosquitto 2.0 (MQTT 5, persistence on) on loopback; ${DEVICES} device connections publish ${PER_DEVICE.toLocaleString('en-US')} HMAC-SHA-256 envelopes each ` +
    `(${PAYLOAD_BYTES}-byte payloads, QoS 1, up to 2,000 in flight per device); \`holdfast ingest\` in its own process with the PGlite store, batches of at most ${BATCH}: ` +
    'each batch is one transaction (records, sender windows, counters) and its PUBACKs leave only after the commit. ' +
    'Rate = records accepted / (last commit − first message), measured by the ingest. Restart = a second run on the same database after ' + `${(DEVICES * BACKLOG).toLocaleString('en-US')} more records were queued at the broker while no ingest ran: rows read before subscribing, open time, and the drain rate of that backlog. ` +
    'Broker, publishers and ingest share the 2-core machine.',
  async run(progress) {
    const { first, restart } = await runIngestBench(progress);
    const figures: Figure[] = [
      { name: 'ingest.recordsPerSecond', value: first.recordsPerSecond, unit: 'records/s', label: 'records accepted per second, durable exactly-once, broker included', kind: 'timing', target: '≥ 20,000/s', limit: 20_000, direction: 'min' },
      { name: 'ingest.accepted', value: first.accepted, unit: 'records', label: 'records accepted (each once)', kind: 'count', target: `= ${DEVICES * PER_DEVICE}`, limit: DEVICES * PER_DEVICE, direction: 'min' },
      { name: 'ingest.refused', value: first.duplicates + first.replays + first.forgeries, unit: 'records', label: 'genuine records refused or counted as duplicates', kind: 'count', target: '0', limit: 0, direction: 'max' },
      { name: 'ingest.largestBatch', value: first.largestBatch, unit: 'messages', label: 'largest batch committed in one transaction', kind: 'timing' },
      { name: 'ingest.batches', value: first.batches, unit: 'transactions', label: 'transactions for the run', kind: 'timing' },
      { name: 'ingest.restart.rowsRead', value: restart.restart.rowsRead, unit: 'rows', label: `rows a restart reads (one per sender window and refusal counter; ${DEVICES} senders, never the records)`, kind: 'count', target: `≤ ${DEVICES} (one per sender)`, limit: DEVICES, direction: 'max' },
      { name: 'ingest.restart.openMs', value: restart.restart.openMs, unit: 'ms', label: 'open the database and read the windows at a restart', kind: 'timing' },
      { name: 'ingest.restart.drainRecordsPerSecond', value: restart.recordsPerSecond, unit: 'records/s', label: `backlog of ${(DEVICES * BACKLOG).toLocaleString('en-US')} queued at the broker drained after the restart (no publishers competing)`, kind: 'timing' },
      { name: 'ingest.restart.accepted', value: restart.accepted, unit: 'records', label: 'backlog records accepted after the restart (each once)', kind: 'count', target: `= ${DEVICES * BACKLOG}`, limit: DEVICES * BACKLOG, direction: 'min' },
    ];
    return figures;
  },
};
