/**
 * `holdfast ingest [run]` and `holdfast ingest report` (docs/cli.md,
 * docs/spec/ingest.md): the exactly-once ingest service and its report.
 *
 * `run` is the one command that does not exit 128 + n on SIGINT/SIGTERM:
 * it takes the signals over from bin/holdfast.js while it runs, stops
 * taking messages, commits and acknowledges what it holds, disconnects and
 * exits 0 (a second signal exits at once, 128 + n; nothing unacknowledged
 * is lost, the broker redelivers it).
 */
import type { Command } from 'commander';
import { parseInteger, usageError } from '../../keys/cli-options.ts';
import { CliError, fromNodeError } from '../errors.ts';
import { readTextInput, checkOutputDir } from '../files.ts';
import { ExitCode } from '../exit-codes.ts';
import { INVENTORY_MAX_BYTES, InventoryError, parseInventory, type Inventory } from '../../ingest/inventory.ts';
import { DEFAULT_BATCH, DEFAULT_CLIENT_ID, DEFAULT_LINGER_MS, DEFAULT_TOPIC, IngestService } from '../../ingest/ingest.ts';
import { isPostgresUrl, PostgresStore, redactUrl } from '../../ingest/store-postgres.ts';
import { acquireLock, LockedError } from '../../ingest/lock.ts';
import { PgliteStore } from '../../ingest/store-pglite.ts';
import { WorkerStore } from '../../ingest/store-worker.ts';
import type { IngestStore } from '../../ingest/store.ts';
import { buildReport, formatReport } from '../../ingest/report.ts';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

interface RunFlags {
  broker: string;
  db: string;
  sharedGroup?: string;
  lingerMs: number;
  devices: string;
  topic: string;
  clientId: string;
  username?: string;
  password?: string;
  protocolVersion: number;
  batch: number;
  exitAfter?: number;
  progressMs: number;
  json?: boolean;
}

/** Password from the environment when --password is not given (keeps it out of `ps`). */
export const PASSWORD_ENV = 'HOLDFAST_INGEST_PASSWORD';

export function registerIngest(program: Command): void {
  const ingest = program.command('ingest').description('exactly-once telemetry ingest: verify envelopes, apply per-device windows, store records (docs/spec/ingest.md)');
  ingest
    .command('run', { isDefault: true })
    .description('subscribe and ingest until SIGINT/SIGTERM (then commit, acknowledge, exit 0); `holdfast ingest` without a subcommand is `ingest run`')
    .requiredOption('--broker <url>', 'broker as mqtt://host:port')
    .requiredOption('--db <dir-or-url>', 'database folder (embedded PGlite, created if missing), or a PostgreSQL server as postgres://user[:password]@host:port/database')
    .requiredOption('--devices <file>', 'device inventory JSON (docs/spec/ingest.md, "Inventory")')
    .option('--topic <filter>', 'topic filter, subscribed at QoS 1', DEFAULT_TOPIC)
    .option('--shared-group <name>', 'one of several workers: subscribe to $share/<name>/<filter> (MQTT 5 shared subscription); needs a postgres:// --db and a --client-id of its own')
    .option('--client-id <id>', 'MQTT client id: the persistent session is bound to it (with --shared-group: a stable name per worker slot)', DEFAULT_CLIENT_ID)
    .option('--username <name>', 'broker user name')
    .option('--password <password>', `broker password (else $${PASSWORD_ENV})`)
    .option('--protocol-version <v>', 'MQTT protocol level: 5 (MQTT 5) or 4 (3.1.1)', parseInteger(4, 5), 5)
    .option('--batch <n>', 'most messages per transaction, 1..50000', parseInteger(1, 50_000), DEFAULT_BATCH)
    .option('--linger-ms <ms>', 'longest wait for a batch to fill while messages keep arriving, 0..10000 (0: commit what is queued at once)', parseInteger(0, 10_000), DEFAULT_LINGER_MS)
    .option('--exit-after <n>', 'stop gracefully once this many records were accepted (benchmarks, tests)', parseInteger(1, Number.MAX_SAFE_INTEGER))
    .option('--progress-ms <ms>', 'progress line on stderr every <ms>, 0 for none', parseInteger(0, 3_600_000), 5000)
    .option('--json', 'print {ok, store, sharedGroup, accepted, duplicates, replays, forgeries, messages, batches, largestBatch, receipts, retries, elapsedMs, firstMessageAt, lastCommitAt, recordsPerSecond, restart: {rowsRead, openMs}} when stopped')
    .action(async (flags: RunFlags, command: Command) => run(flags, command));
  ingest
    .command('report')
    .description('per-device counts: accepted, duplicates dropped, replays rejected, forgeries rejected, gaps (docs/spec/ingest.md, "Report")')
    .requiredOption('--db <dir-or-url>', 'database folder written by ingest run, or its postgres:// server')
    .option('--json', 'print {devices: [{device, keyIds, accepted, duplicatesDropped, replaysRejected, forgeriesRejected, gaps, highest, forgeriesByReason}], totals, rowsRead}')
    .action(async (flags: { db: string; json?: boolean }, command: Command) => report(flags, command));
}

function parseBroker(url: string, command: Command): { host: string; port: number } {
  const m = /^mqtt:\/\/([A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\]):(\d{1,5})\/?$/.exec(url);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) usageError(command, `expected mqtt://host:port (port 1..65535), got ${JSON.stringify(url.slice(0, 100))}`, '--broker');
  return { host: m[1].replace(/^\[|\]$/g, ''), port };
}

function loadInventory(file: string): Inventory {
  const text = readTextInput(file, 'a device inventory (JSON)', INVENTORY_MAX_BYTES);
  try {
    return parseInventory(text);
  } catch (error) {
    if (error instanceof InventoryError) throw new CliError(error.message.slice(error.field.length + 2), { file, field: error.field, code: 'invalid-file' });
    throw error;
  }
}

function checkDbUrl(db: string, command: Command): void {
  let url: URL | undefined;
  try {
    url = new URL(db);
  } catch {
    url = undefined;
  }
  if (url === undefined || url.hostname === '' || url.search !== '' || url.hash !== '') {
    usageError(command, `expected postgres://user[:password]@host[:port]/database, got ${JSON.stringify(redactUrl(db).slice(0, 100))}`, '--db');
  }
}

async function openStore(db: string, inWorker: boolean, command: Command): Promise<{ store: IngestStore; release: () => void; kind: 'pglite' | 'postgres' }> {
  if (isPostgresUrl(db)) {
    checkDbUrl(db, command);
    try {
      // Several processes share a server: no lock file; the database decides (store-postgres.ts).
      return { store: await PostgresStore.open(db), release: () => undefined, kind: 'postgres' };
    } catch (error) {
      // Only the message (never the URL's password, never parameters).
      throw new CliError(`cannot open the PostgreSQL database ${redactUrl(db)}: ${error instanceof Error ? error.message : String(error)}`, { code: 'io' });
    }
  }
  checkOutputDir(db, 'the ingest database folder');
  let release: () => void;
  try {
    release = acquireLock(db);
  } catch (error) {
    if (error instanceof LockedError) throw new CliError(error.message, { file: db, code: 'failed' });
    throw fromNodeError(error, db, 'a writable database folder');
  }
  try {
    // The service commits from a worker thread so that the MQTT socket keeps being read during a commit (tools/ingest/store-worker.ts).
    return { store: inWorker ? await WorkerStore.open(db) : await PgliteStore.open(db), release, kind: 'pglite' };
  } catch (error) {
    release();
    if (error instanceof CliError) throw error;
    // Database errors carry their parameters (payloads): only the message is shown.
    throw new CliError(`cannot open the database: ${error instanceof Error ? error.message : String(error)}`, { file: db, code: 'io' });
  }
}

/** $share/<group>/<filter> (MQTT 5 §4.8.2): the group is one topic level without wildcards. */
function sharedTopic(flags: RunFlags, command: Command): string {
  const group = flags.sharedGroup as string;
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(group)) usageError(command, `expected 1..64 of A-Z a-z 0-9 _ . - (no /, + or #), got ${JSON.stringify(group.slice(0, 100))}`, '--shared-group');
  if (!isPostgresUrl(flags.db)) usageError(command, 'several workers share one database: needs --db postgres://… (the embedded database is one process)', '--shared-group');
  if (flags.protocolVersion !== 5) usageError(command, 'shared subscriptions are MQTT 5: needs --protocol-version 5', '--shared-group');
  if (command.getOptionValueSource('clientId') !== 'cli') usageError(command, 'each worker needs its own stable --client-id (its persistent session holds its in-flight messages until it comes back)', '--shared-group');
  if (flags.topic.startsWith('$share/')) usageError(command, 'give the plain filter; --shared-group adds $share/<name>/', '--topic');
  return `$share/${group}/${flags.topic}`;
}

async function run(flags: RunFlags, command: Command): Promise<void> {
  const broker = parseBroker(flags.broker, command);
  const topic = flags.sharedGroup !== undefined ? sharedTopic(flags, command) : flags.topic;
  const inventory = loadInventory(flags.devices);
  const password = flags.password ?? process.env[PASSWORD_ENV];
  const log = (line: string) => process.stderr.write(`holdfast ingest: ${line}\n`);
  const openedAt = performance.now();
  const { store, release, kind } = await openStore(flags.db, true, command);
  const dbName = kind === 'postgres' ? redactUrl(flags.db) : flags.db;
  let service: IngestService | undefined;
  let progress: NodeJS.Timeout | undefined;
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  const previous = new Map(signals.map((s) => [s, process.listeners(s)] as const));
  try {
    const loaded = await store.load();
    const openMs = Math.round(performance.now() - openedAt);
    log(`database ${dbName} open in ${openMs} ms, ${loaded.rowsRead} rows read (${loaded.senders.length} senders); ${inventory.keys.size} device keys`);
    service = new IngestService({
      host: broker.host,
      port: broker.port,
      protocolVersion: flags.protocolVersion as 4 | 5,
      clientId: flags.clientId,
      ...(flags.username !== undefined ? { username: flags.username } : {}),
      ...(password !== undefined ? { password } : {}),
      topic,
      store,
      loaded,
      inventory,
      batchMax: flags.batch,
      lingerMs: flags.lingerMs,
      ...(flags.exitAfter !== undefined ? { exitAfter: flags.exitAfter } : {}),
      onLog: log,
    });
    // Signals: graceful stop (commit, acknowledge, disconnect, exit 0); a second one exits at once.
    const running = service;
    for (const s of signals) process.removeAllListeners(s);
    let stops = 0;
    for (const [s, n] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]] as const) {
      process.on(s, () => {
        if (++stops > 1) {
          log(`second ${s}: exiting without waiting (unacknowledged messages stay with the broker)`);
          process.exit(128 + n);
        }
        log(`${s}: committing and acknowledging what is held, then exiting`);
        void running.stop().catch(() => undefined);
      });
    }
    let lastAccepted = 0;
    let lastAt = performance.now();
    if (flags.progressMs > 0) {
      progress = setInterval(() => {
        const c = running.counts;
        const now = performance.now();
        const rate = Math.round(((c.accepted - lastAccepted) * 1000) / (now - lastAt));
        lastAccepted = c.accepted;
        lastAt = now;
        log(`${c.accepted} accepted (${rate}/s), ${c.duplicates} duplicates, ${c.replays} replays, ${c.forgeries} forgeries, ${c.batches} batches${running.retries > 0 ? `, ${running.retries} transactions retried` : ''}`);
      }, flags.progressMs);
      progress.unref();
    }
    await service.start();
    log(`subscribed to ${topic} on ${broker.host}:${broker.port} as ${flags.clientId} (MQTT ${flags.protocolVersion === 5 ? '5' : '3.1.1'})`);
    await service.done;
    const c = service.counts;
    const elapsedMs = service.firstMessageAt !== undefined && service.lastCommitAt !== undefined ? service.lastCommitAt - service.firstMessageAt : 0;
    const summary = {
      ok: true,
      store: kind,
      sharedGroup: flags.sharedGroup ?? null,
      ...c,
      retries: service.retries,
      elapsedMs: Math.round(elapsedMs),
      // Wall clock (ms since the epoch) of this run's first message and last commit, so that several workers' runs can be put on one time line.
      firstMessageAt: service.firstMessageAt !== undefined ? Math.round(performance.timeOrigin + service.firstMessageAt) : null,
      lastCommitAt: service.lastCommitAt !== undefined ? Math.round(performance.timeOrigin + service.lastCommitAt) : null,
      recordsPerSecond: elapsedMs > 0 ? Math.round((c.accepted * 1000) / elapsedMs) : 0,
      restart: { rowsRead: loaded.rowsRead, openMs },
    };
    if (flags.json) console.log(JSON.stringify(summary, null, 2));
    else console.log(`stopped: ${c.accepted} accepted, ${c.duplicates} duplicates dropped, ${c.replays} replays rejected, ${c.forgeries} forgeries rejected, in ${c.batches} batches`);
    process.exitCode = ExitCode.OK;
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw new CliError(error instanceof Error ? error.message : String(error), { code: 'failed' });
  } finally {
    clearInterval(progress);
    await store.close().catch(() => undefined);
    release();
    for (const s of signals) {
      process.removeAllListeners(s);
      for (const l of previous.get(s) ?? []) process.on(s, l as () => void);
    }
  }
}

async function report(flags: { db: string; json?: boolean }, command: Command): Promise<void> {
  if (!isPostgresUrl(flags.db) && !existsSync(join(flags.db, 'pg'))) throw new CliError('holds no ingest database: expected a folder written by holdfast ingest run', { file: flags.db, code: 'not-found' });
  const { store, release } = await openStore(flags.db, false, command);
  try {
    const loaded = await store.load();
    const r = buildReport(loaded);
    if (flags.json) console.log(JSON.stringify({ ok: true, ...r, rowsRead: loaded.rowsRead }, null, 2));
    else console.log(formatReport(r));
  } finally {
    await store.close().catch(() => undefined);
    release();
  }
}
