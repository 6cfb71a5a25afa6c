/**
 * Shared pieces of the real-components harness (docs/design/test-network.md):
 * the broker handle both brokers return, free loopback ports, device-id rules,
 * looking up system tools (mosquitto, openssl) with a reason when missing, and
 * the CI policy for a missing component (fail under CI, skip otherwise, as
 * test/models/model-suite.ts does for spin).
 *
 * Host tool (Node).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect, createServer } from 'node:net';

export const LOOPBACK = '127.0.0.1';

/** What a started broker (mosquitto or aedes) offers the tests. */
export interface BrokerHandle {
  readonly kind: 'mosquitto' | 'aedes';
  readonly host: string;
  /** Plain MQTT listener (password authentication). */
  readonly port: number;
  /** MQTT protocol levels the broker accepts (5 = MQTT 5, 4 = 3.1.1). */
  readonly protocolVersions: readonly number[];
  /** Stop, then start again on the same port with the same persistence. */
  restart(): Promise<void>;
  /** Stop and remove everything it made (temp dir, listeners). Idempotent. */
  stop(): Promise<void>;
  /** Whether the broker is accepting connections right now (false during a restart). */
  readonly running: boolean;
}

/** One device's broker credentials: its username is its device id. */
export interface DeviceCredential {
  readonly deviceId: string;
  readonly password: string;
}

/** An extra non-device account (an ingest service, a test observer). */
export interface ServiceAccount {
  readonly username: string;
  readonly password: string;
  /** Topic filters it may read (subscribe to); default holdfast/#. */
  readonly read?: readonly string[];
  /** Topic filters it may write (publish to); default none. */
  readonly write?: readonly string[];
}

/** Topic prefix every device publishes under: holdfast/<deviceId>/... */
export const TOPIC_ROOT = 'holdfast';

export function deviceTopicFilter(deviceId: string): string {
  return `${TOPIC_ROOT}/${deviceId}/#`;
}

/**
 * Device ids become usernames, certificate CNs, ACL lines and topic levels, so
 * they are restricted to a set that is safe in all four.
 */
export function checkDeviceId(deviceId: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(deviceId)) {
    throw new Error(`bad device id ${JSON.stringify(deviceId)}: use 1-64 of [A-Za-z0-9._-], starting with a letter or digit`);
  }
}

/** True when `topic` lies under holdfast/<deviceId>/ (or is holdfast/<deviceId>). */
export function topicBelongsTo(topic: string, deviceId: string): boolean {
  const own = `${TOPIC_ROOT}/${deviceId}`;
  return topic === own || topic.startsWith(`${own}/`);
}

/** MQTT topic-filter match (+ and #), for the embedded broker's ACL. */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/** A port nobody listens on right now (the OS picks; small race accepted, callers retry). */
export async function freePort(host = LOOPBACK): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** One TCP connect attempt: resolves true when something accepted it. */
export function canConnect(port: number, host = LOOPBACK, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export type Found = { ok: true; path: string; version: string } | { ok: false; reason: string };

/** A command on the PATH or in `dirs` that prints a version, or why not (naming the Debian package). */
export function findTool(name: string, versionArgs: string[], apt: string, dirs: string[]): Found {
  const candidates = [name, ...dirs.map((d) => `${d}/${name}`).filter((p) => existsSync(p))];
  let last = '';
  for (const candidate of candidates) {
    const run = spawnSync(candidate, versionArgs, { encoding: 'utf8' });
    if (run.error) {
      last = run.error.message;
      continue;
    }
    const text = `${run.stdout}\n${run.stderr}`;
    const version = /(\d+\.\d+\.\d+)/.exec(text)?.[1];
    if (version) return { ok: true, path: candidate, version };
    last = text.trim().slice(0, 200);
  }
  return { ok: false, reason: `${name} is not installed (apt-get install ${apt}): ${last || 'not found on PATH'}` };
}

/** Debian's mosquitto broker (in /usr/sbin, which a non-root PATH may lack). */
export function findMosquitto(): Found {
  // `mosquitto -h` prints its version and exits 3.
  return findTool('mosquitto', ['-h'], 'mosquitto', ['/usr/sbin', '/usr/local/sbin']);
}

/** mosquitto_passwd (same Debian package as the broker). */
export function findMosquittoPasswd(): Found {
  const path = ['mosquitto_passwd', '/usr/bin/mosquitto_passwd'].find((p) => !spawnSync(p, ['-h']).error);
  return path ? { ok: true, path, version: '' } : { ok: false, reason: 'mosquitto_passwd is not installed (apt-get install mosquitto)' };
}

export function findOpenssl(): Found {
  return findTool('openssl', ['version'], 'openssl', ['/usr/bin']);
}

/** CI is "set" when the variable exists, unless it says 0 or false (same rule as test/models). */
export function inCi(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.CI !== undefined && !/^(0|false)$/i.test(env.CI);
}

/**
 * The node:test `skip` value for tests that need these components: false when
 * all are present or when CI is set (the test then fails in `requireComponents`),
 * otherwise a message naming what is missing.
 */
export function skipUnless(found: readonly Found[]): false | string {
  const missing = found.filter((f): f is { ok: false; reason: string } => !f.ok).map((f) => f.reason);
  if (missing.length === 0 || inCi()) return false;
  return `${missing.join('; ')}; CI installs it and fails without it`;
}

/** Throws (so the test fails) naming every missing component. */
export function requireComponents(found: readonly Found[]): void {
  const missing = found.filter((f): f is { ok: false; reason: string } => !f.ok).map((f) => f.reason);
  if (missing.length) throw new Error(`CI is set and a component is missing: ${missing.join('; ')}`);
}
