/**
 * The ingest scaled out (docs/design/scale-out.md): accepted records per
 * second with 1, 2 and 4 workers against PostgreSQL (MQTT 5 shared
 * subscription on mosquitto, each worker a `holdfast ingest run` process),
 * beside the single embedded process (PGlite) on the same workload; then a
 * reconnect storm: 500 device connections, the broker restarted, every
 * device reconnecting at once and sending on; time to drain and loss.
 *
 * Throughput is measured on a backlog, so that publishers do not compete
 * with the workers for the machine's 2 cores: the workers subscribe once
 * (their persistent sessions join the group) and stop; the devices publish
 * BACKLOG records, which mosquitto queues in the workers' sessions in turn;
 * the workers start again and drain. Rate = records accepted / (last
 * commit − first message over all workers), from the workers' own
 * wall-clock stamps (`--json` firstMessageAt, lastCommitAt). Exactly once
 * is checked every time (rows per (device, key id, counter) = 1, all there).
 *
 * PostgreSQL runs with its defaults for durability (fsync and
 * synchronous_commit on): a COMMIT returned is on disk.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { findMosquitto, LOOPBACK } from '../tools/net/common.ts';
import { findPostgres, startPostgres, type PostgresCluster } from '../tools/net/postgres.ts';
import { PostgresStore } from '../tools/ingest/store-postgres.ts';
import type { MosquittoBroker } from '../tools/net/mosquitto.ts';
import { start } from '../test/cli/cli-harness.ts';
import { deviceClient, INGEST_ACCOUNT, makeFleet, publishAll, seal, startBroker, tempDir, waitUntil, writeInventory, type TestBroker, type TestDevice } from '../test/ingest/ingest-helpers.ts';
import { acceptedSoFar, drainWithReceipts, launchWorker, ReceiptGateStandIn, stopWorkers, subscribed, type WorkerProcess } from '../test/ingest/scale-helpers.ts';
import type { MqttClient } from 'mqtt';
import type { BenchGroup, Figure } from './figures.ts';

/**
 * Many devices with fewer than W = 1024 records each: a device's receipt gate never has more than W − 1 counter
 * values in flight (docs/spec/receipt.md, "Hold-back"), and a backlog dealt round-robin to the workers' sessions is
 * drained in any order across them (measured: with 2 workers and 2,000 records per device, the second worker's
 * half arrived after the first had moved H by 2,000: 2,451 of them stale). Under W, no order makes a record stale.
 */
const DEVICES = 100;
const PER_DEVICE = 800;
const BACKLOG = DEVICES * PER_DEVICE;
const BATCH = 2000;
const PAYLOAD_BYTES = 32;
const STORM_DEVICES = 500;
/** Records each storm device sends before the restart, and after it. */
const STORM_BEFORE = 10;
const STORM_AFTER = 10;

/** Linux reports process times in clock ticks of 1/100 s (getconf CLK_TCK). */
const TICK_MS = 10;

/** utime + stime of a live process in ms (0 once it is gone). */
function cpuMsOf(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
  } catch {
    return 0;
  }
}

/** The server's CPU: the postmaster and every process it started (a backend per worker connection, the WAL writer, the checkpointer, ...). */
function postgresCpuMs(cluster: PostgresCluster): number {
  const postmaster = Number(readFileSync(join(cluster.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
  let total = cpuMsOf(postmaster);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === postmaster) total += cpuMsOf(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

interface WorkerSummary {
  accepted: number;
  duplicates: number;
  batches: number;
  largestBatch: number;
  retries: number;
  firstMessageAt: number | null;
  lastCommitAt: number | null;
}

export interface ScaleRun {
  label: string;
  workers: number;
  accepted: number;
  duplicates: number;
  recordsPerSecond: number;
  batches: number;
  retries: number;
  exactlyOnce: boolean;
  /** CPU ms per 1,000 records accepted, from each worker's subscription to the end of the drain (PostgreSQL runs only). */
  cpuPer1k?: { workers: number; broker: number; database: number };
}

function summaries(results: Awaited<ReturnType<typeof stopWorkers>>): WorkerSummary[] {
  return results.map((r) => {
    if (r.status !== 0 || r.json === undefined) throw new Error(`${r.clientId} exited ${r.status}: ${r.stderr.slice(-800)}`);
    return r.json as unknown as WorkerSummary;
  });
}

function rateOf(runs: readonly WorkerSummary[], accepted: number): number {
  const first = Math.min(...runs.map((r) => r.firstMessageAt ?? Infinity));
  const last = Math.max(...runs.map((r) => r.lastCommitAt ?? -Infinity));
  return last > first ? Math.round((accepted * 1000) / (last - first)) : 0;
}

/** Counters 1..PER_DEVICE of every device, each once. */
function exactlyOnce(keys: readonly { device: string; counter: number }[], fleet: readonly TestDevice[], perDevice: number): boolean {
  if (keys.length !== fleet.length * perDevice) return false;
  const seen = new Set(keys.map((k) => `${k.device}/${k.counter}`));
  return seen.size === keys.length && fleet.every((d) => Array.from({ length: perDevice }, (_, i) => seen.has(`${d.name}/${i + 1}`)).every(Boolean));
}

async function publishBacklog(broker: TestBroker, fleet: readonly TestDevice[], envelopes: readonly Uint8Array[][]): Promise<void> {
  const clients = await Promise.all(fleet.map((d) => deviceClient(broker, d)));
  try {
    await Promise.all(fleet.map((d, i) => publishAll(clients[i], d.topic, envelopes[i], 1000)));
  } finally {
    await Promise.all(clients.map((c) => c.endAsync(true)));
  }
}

/** N workers on PostgreSQL drain a backlog queued in their sessions. */
async function postgresRun(cluster: PostgresCluster, workers: number, fleet: readonly TestDevice[], envelopes: readonly Uint8Array[][], dir: string, progress: (line: string) => void): Promise<ScaleRun> {
  const url = await cluster.createDatabase(`scale_${workers}`);
  const inventory = writeInventory(dir, fleet);
  const broker = await startBroker('mosquitto', fleet);
  const all: WorkerProcess[] = [];
  try {
    const launch = () => Array.from({ length: workers }, (_, i) => launchWorker(broker, url, inventory, 'bench', `bench-w${i + 1}`, ['--batch', String(BATCH), '--json', '--progress-ms', '10000']));
    // Join the group (persistent sessions), then stop: the backlog is queued in the sessions.
    const joined = launch();
    all.push(...joined);
    await Promise.all(joined.map((w) => subscribed(w)));
    await stopWorkers(joined);
    progress(`ingest-scale: ${workers} worker(s): publishing a backlog of ${BACKLOG.toLocaleString('en-US')} records`);
    await publishBacklog(broker, fleet, envelopes);
    const pool = launch();
    all.push(...pool);
    // CPU from the moment each worker subscribed (its start-up, mostly loading TypeScript, left out) to the end of the drain.
    let brokerFrom = -1;
    let databaseFrom = -1;
    const workerFrom = await Promise.all(
      pool.map(async (w) => {
        await subscribed(w);
        if (brokerFrom < 0) {
          brokerFrom = cpuMsOf((broker as MosquittoBroker).pid);
          databaseFrom = postgresCpuMs(cluster);
        }
        return cpuMsOf(w.child.pid);
      }),
    );
    const store = await PostgresStore.open(url);
    try {
      await waitUntil(async () => (await acceptedSoFar(store)) >= BACKLOG, 300_000, () => `${workers} workers did not drain: ${pool.map((w) => w.stderr().slice(-300)).join(' | ')}`, 200);
      const workerCpu = pool.reduce((n, w, i) => n + cpuMsOf(w.child.pid) - workerFrom[i], 0);
      const brokerCpu = cpuMsOf((broker as MosquittoBroker).pid) - brokerFrom;
      const databaseCpu = postgresCpuMs(cluster) - databaseFrom;
      const runs = summaries(await stopWorkers(pool));
      const keys = await store.recordKeys();
      const accepted = runs.reduce((n, r) => n + r.accepted, 0);
      const run: ScaleRun = {
        label: `${workers} worker(s), PostgreSQL`,
        workers,
        accepted,
        duplicates: runs.reduce((n, r) => n + r.duplicates, 0),
        recordsPerSecond: rateOf(runs, accepted),
        batches: runs.reduce((n, r) => n + r.batches, 0),
        retries: runs.reduce((n, r) => n + r.retries, 0),
        exactlyOnce: exactlyOnce(keys, fleet, PER_DEVICE),
        cpuPer1k: { workers: Math.round((workerCpu * 1000) / accepted), broker: Math.round((brokerCpu * 1000) / accepted), database: Math.round((databaseCpu * 1000) / accepted) },
      };
      progress(`ingest-scale: ${run.label}: ${run.accepted} accepted at ${run.recordsPerSecond}/s in ${run.batches} transactions (${run.retries} retried), exactly once: ${run.exactlyOnce}; CPU ms per 1,000 records: workers ${run.cpuPer1k?.workers}, broker ${run.cpuPer1k?.broker}, database ${run.cpuPer1k?.database}`);
      return run;
    } finally {
      await store.close();
    }
  } finally {
    for (const w of all) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
    await broker.stop();
  }
}

/** The single embedded process (PGlite) on the same backlog. */
async function embeddedRun(fleet: readonly TestDevice[], envelopes: readonly Uint8Array[][], dir: string, progress: (line: string) => void): Promise<ScaleRun> {
  const inventory = writeInventory(dir, fleet);
  const db = join(dir, 'embedded');
  const broker = await startBroker('mosquitto', fleet);
  try {
    const env = { ...process.env, HOLDFAST_INGEST_PASSWORD: INGEST_ACCOUNT.password };
    const args = (exitAfter: number) => ['ingest', 'run', '--broker', `mqtt://${LOOPBACK}:${broker.port}`, '--db', db, '--devices', inventory, '--username', INGEST_ACCOUNT.username, '--batch', String(BATCH), '--exit-after', String(exitAfter), '--json', '--progress-ms', '0'];
    // Join (one record makes the first run stop by itself), then the backlog, then drain it.
    const first = start(args(1), { env });
    let stderr = '';
    first.child.stderr?.on('data', (d) => (stderr += String(d)));
    await waitUntil(() => stderr.includes('subscribed to') || first.child.exitCode !== null, 300_000, () => `embedded ingest did not subscribe: ${stderr}`);
    await publishBacklog(broker, fleet.slice(0, 1), [envelopes[0].slice(0, 1)]);
    const joined = await first.done;
    if (joined.status !== 0) throw new Error(`embedded ingest exited ${joined.status}: ${joined.stderr}`);
    progress(`ingest-scale: embedded: publishing a backlog of ${BACKLOG.toLocaleString('en-US')} records`);
    await publishBacklog(broker, fleet, envelopes.map((e, i) => (i === 0 ? e.slice(1) : e)));
    const drain = await start(args(BACKLOG - 1), { env }).done;
    if (drain.status !== 0) throw new Error(`embedded ingest exited ${drain.status}: ${drain.stderr}`);
    const r = JSON.parse(drain.stdout) as WorkerSummary & { recordsPerSecond: number };
    const run: ScaleRun = { label: 'embedded (PGlite), 1 process', workers: 1, accepted: r.accepted + 1, duplicates: r.duplicates, recordsPerSecond: r.recordsPerSecond, batches: r.batches, retries: 0, exactlyOnce: r.accepted === BACKLOG - 1 && r.duplicates === 0 };
    progress(`ingest-scale: ${run.label}: ${run.accepted} accepted at ${run.recordsPerSecond}/s in ${run.batches} transactions`);
    return run;
  } finally {
    await broker.stop();
  }
}

export interface StormRun {
  devices: number;
  sent: number;
  accepted: number;
  rows: number;
  /** Records never stored after the devices' resends. */
  lost: number;
  /** Records the devices sent again because no receipt covered them (the broker dropped them after its PUBACK). */
  resent: number;
  drainMs: number;
  reconnectMs: number;
}

/**
 * 500 device connections (mqtt.js, the devices' own accounts) and 2 workers; each device sends STORM_BEFORE records,
 * the broker is restarted (persistence on: sessions and queued messages kept), every device reconnects at once
 * (100 ms reconnect period) and sends STORM_AFTER more, resending whatever the restart cut off.
 */
async function reconnectStorm(cluster: PostgresCluster, dir: string, progress: (line: string) => void): Promise<StormRun> {
  const fleet = makeFleet(STORM_DEVICES, 77, ['hmac-sha256']);
  const url = await cluster.createDatabase('storm');
  const inventory = writeInventory(dir, fleet);
  progress(`ingest-scale: storm: a broker with ${STORM_DEVICES} device accounts`);
  const broker = await startBroker('mosquitto', fleet);
  const pool: WorkerProcess[] = [];
  try {
    for (let i = 0; i < 2; i++) pool.push(launchWorker(broker, url, inventory, 'storm', `storm-w${i + 1}`, ['--json']));
    await Promise.all(pool.map((w) => subscribed(w)));
    const payload = new Uint8Array(PAYLOAD_BYTES).fill(0x33);
    const clients: MqttClient[] = [];
    for (let i = 0; i < fleet.length; i += 50) clients.push(...(await Promise.all(fleet.slice(i, i + 50).map((d) => deviceClient(broker, d)))));
    try {
      // Each device keeps its records until a receipt covers them, and resends the rest (docs/spec/receipt.md).
      const gates: ReceiptGateStandIn[] = [];
      for (let i = 0; i < fleet.length; i += 50) gates.push(...(await Promise.all(fleet.slice(i, i + 50).map((d, k) => ReceiptGateStandIn.attach(clients[i + k], d, payload)))));
      await Promise.all(fleet.map((d, i) => publishAll(clients[i], d.topic, Array.from({ length: STORM_BEFORE }, (_, k) => seal(d, k + 1, payload)), STORM_BEFORE)));
      const store = await PostgresStore.open(url);
      try {
        progress(`ingest-scale: storm: ${STORM_DEVICES * STORM_BEFORE} records sent; restarting the broker`);
        const restartAt = performance.now();
        await broker.restart();
        // Every device sends on as soon as it can: publishAll resends what the restart cut off (same bytes, as the outbox would).
        const after = Promise.all(fleet.map((d, i) => publishAll(clients[i], d.topic, Array.from({ length: STORM_AFTER }, (_, k) => seal(d, STORM_BEFORE + k + 1, payload)), STORM_AFTER)));
        await waitUntil(() => clients.every((c) => c.connected), 300_000, () => `${clients.filter((c) => !c.connected).length} devices not reconnected`, 10);
        const reconnectMs = performance.now() - restartAt;
        await after;
        const total = STORM_DEVICES * (STORM_BEFORE + STORM_AFTER);
        // Drained = every record receipted (2 s without a receipt before a resend: the gate's timeout, shortened).
        const { resent } = await drainWithReceipts(gates, STORM_BEFORE + STORM_AFTER, 2000, 20);
        const drainMs = performance.now() - restartAt;
        const keys = await store.recordKeys();
        const distinct = new Set(keys.map((k) => `${k.device}/${k.counter}`)).size;
        const accepted = await acceptedSoFar(store);
        const run: StormRun = { devices: STORM_DEVICES, sent: total, accepted, rows: keys.length, lost: total - distinct, resent, drainMs: Math.round(drainMs), reconnectMs: Math.round(reconnectMs) };
        progress(`ingest-scale: storm: all ${STORM_DEVICES} reconnected in ${run.reconnectMs} ms; every record receipted ${run.drainMs} ms after the restart began (${run.resent} sent again for want of a receipt); ${run.accepted} of ${total} accepted, ${run.rows} rows, ${run.lost} lost`);
        return run;
      } finally {
        await store.close();
      }
    } finally {
      await Promise.all(clients.map((c) => c.endAsync(true)));
    }
  } finally {
    await stopWorkers(pool).catch(() => undefined);
    await broker.stop();
  }
}

export async function runIngestScaleBench(progress: (line: string) => void): Promise<{ runs: ScaleRun[]; storm: StormRun }> {
  for (const found of [findMosquitto(), findPostgres()]) if (!found.ok) throw new Error(found.reason);
  const fleet = makeFleet(DEVICES, 901, ['hmac-sha256']);
  const payload = new Uint8Array(PAYLOAD_BYTES).fill(0x5a);
  progress(`ingest-scale: sealing ${BACKLOG.toLocaleString('en-US')} records`);
  const envelopes = fleet.map((d) => Array.from({ length: PER_DEVICE }, (_, i) => seal(d, i + 1, payload)));
  const t = tempDir('holdfast-ingest-scale-');
  const cluster = await startPostgres();
  try {
    const runs = [await embeddedRun(fleet, envelopes, t.dir, progress)];
    for (const workers of [1, 2, 4]) runs.push(await postgresRun(cluster, workers, fleet, envelopes, t.dir, progress));
    const storm = await reconnectStorm(cluster, t.dir, progress);
    return { runs, storm };
  } finally {
    await cluster.stop();
    t.cleanup();
  }
}

export const ingestScaleBench: BenchGroup = {
  title: 'Ingest scaled out: workers on PostgreSQL behind a shared subscription, and a reconnect storm',
  prefix: 'ingestScale.',
  workload:
    `mosquitto 2.0 (MQTT 5, persistence on) and a throwaway PostgreSQL cluster (Debian's, fsync and synchronous_commit on) on loopback. ` +
    `A backlog of ${BACKLOG.toLocaleString('en-US')} HMAC-SHA-256 envelopes (${DEVICES} devices × ${PER_DEVICE.toLocaleString('en-US')}, ${PAYLOAD_BYTES}-byte payloads) is queued at the broker while the workers are stopped, ` +
    `then drained by 1, 2 or 4 \`holdfast ingest run --db postgres://… --shared-group\` processes ($share/bench/…; mosquitto deals the messages to the workers in turn), ` +
    `and, beside them, by one embedded process (PGlite) on a plain subscription. Batches of at most ${BATCH}. Rate = records accepted / (last commit − first message over all workers). ` +
    `Exactly once is checked each time. Storm: ${STORM_DEVICES} device connections, 2 workers; each device sends ${STORM_BEFORE} records, the broker restarts, every device reconnects at once and sends ${STORM_AFTER} more; ` +
    'each device keeps its records until a receipt covers them and resends the rest after 2 s without one; drain = from the restart until every record is receipted. Broker, database, workers and publishers share the 2-core machine.',
  async run(progress) {
    const { runs, storm } = await runIngestScaleBench(progress);
    const [embedded, ...pg] = runs;
    const one = pg.find((r) => r.workers === 1) as ScaleRun;
    const figures: Figure[] = [
      { name: 'ingestScale.embedded.recordsPerSecond', value: embedded.recordsPerSecond, unit: 'records/s', label: 'one embedded process (PGlite) drains the backlog', kind: 'timing' },
      ...pg.map((r): Figure => ({ name: `ingestScale.postgres.${r.workers}.recordsPerSecond`, value: r.recordsPerSecond, unit: 'records/s', label: `${r.workers} worker(s) on PostgreSQL drain the backlog (shared subscription)`, kind: 'timing', anchor: 'EMQX 5: about 30k msg/s QoS 1 with shared subscriptions on 4 vCPUs; mosquitto: about 40k msg/s on 16 cores' })),
      ...pg.map((r): Figure => ({ name: `ingestScale.postgres.${r.workers}.speedup`, value: Math.round((r.recordsPerSecond / Math.max(1, one.recordsPerSecond)) * 100) / 100, unit: '×', label: `${r.workers} worker(s) against 1 worker`, kind: 'timing' })),
      ...pg.flatMap((r): Figure[] => [
        { name: `ingestScale.postgres.${r.workers}.cpuPer1k.workers`, value: r.cpuPer1k?.workers ?? 0, unit: 'CPU ms / 1,000 records', label: `${r.workers} worker(s): the workers' CPU (verification, MQTT, SQL client)`, kind: 'timing' },
        { name: `ingestScale.postgres.${r.workers}.cpuPer1k.broker`, value: r.cpuPer1k?.broker ?? 0, unit: 'CPU ms / 1,000 records', label: `${r.workers} worker(s): mosquitto's CPU`, kind: 'timing' },
        { name: `ingestScale.postgres.${r.workers}.cpuPer1k.database`, value: r.cpuPer1k?.database ?? 0, unit: 'CPU ms / 1,000 records', label: `${r.workers} worker(s): PostgreSQL's CPU (all its processes)`, kind: 'timing' },
      ]),
      { name: 'ingestScale.retries', value: pg.reduce((n, r) => n + r.retries, 0), unit: 'transactions', label: 'transactions run again after a deadlock (all runs)', kind: 'timing' },
      { name: 'ingestScale.notExactlyOnce', value: runs.filter((r) => !r.exactlyOnce).length, unit: 'runs', label: 'runs whose store did not hold every record exactly once', kind: 'count', target: '0', limit: 0, direction: 'max' },
      { name: 'ingestScale.storm.drainMs', value: storm.drainMs, unit: 'ms', label: `${storm.devices} devices reconnect after a broker restart: restart to every record accepted`, kind: 'timing' },
      { name: 'ingestScale.storm.reconnectMs', value: storm.reconnectMs, unit: 'ms', label: `restart to all ${storm.devices} devices connected again`, kind: 'timing' },
      { name: 'ingestScale.storm.resent', value: storm.resent, unit: 'records', label: 'records the devices sent again for want of a receipt (dropped by the broker after its PUBACK: mosquitto 2.0.11 does not restore shared subscriptions at a restart)', kind: 'timing' },
      { name: 'ingestScale.storm.lost', value: storm.lost, unit: 'records', label: `records sent and never stored (of ${storm.sent.toLocaleString('en-US')})`, kind: 'count', target: '0', limit: 0, direction: 'max' },
      { name: 'ingestScale.storm.doubled', value: storm.rows - (storm.sent - storm.lost), unit: 'rows', label: 'rows beyond one per record', kind: 'count', target: '0', limit: 0, direction: 'max' },
    ];
    return figures;
  },
};
