/**
 * Debian's mosquitto (2.0.x) as the MQTT 5 broker of the tests
 * (docs/design/test-network.md): a generated config in a temp dir, a
 * loopback listener on a free port, per-device credentials (a password file
 * made with mosquitto_passwd), an ACL that lets each device publish only
 * under holdfast/<deviceId>/, persistence on or off, max_inflight_messages,
 * max_packet_size, and optionally a TLS listener that requires a client
 * certificate and takes the certificate's CN as the username (so the same
 * ACL binds to the device identity). Certificates come from a throwaway CA
 * made with openssl at start (tools/net/pki.ts).
 *
 * stop() sends SIGTERM, then SIGKILL after a bound, and removes the temp dir;
 * restart() keeps the port, the temp dir and so the persistence file.
 *
 * Host tool (Node).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import {
  canConnect, checkDeviceId, deviceTopicFilter, findMosquitto, findMosquittoPasswd, freePort, LOOPBACK, sleep,
  TOPIC_ROOT, type BrokerHandle, type DeviceCredential, type ServiceAccount,
} from './common.ts';
import { makePki, type Pki } from './pki.ts';
import { mosquittoPbkdf2Hash } from '../fleet/broker.ts';

export interface MosquittoOptions {
  devices: readonly DeviceCredential[];
  /** Non-device accounts (ingest, observers). */
  services?: readonly ServiceAccount[];
  /** Keep sessions and queued messages in a file across restarts (default false). */
  persistence?: boolean;
  /** mosquitto's max_inflight_messages: advertised as Receive Maximum in CONNACK; 2.0.11 neither enforces it on incoming QoS 1 nor keeps it as a strict window toward subscribers (docs/design/test-network.md). */
  maxInflightMessages?: number;
  /** mosquitto's max_packet_size: the Maximum Packet Size it advertises in CONNACK and enforces. */
  maxPacketSize?: number;
  /** mosquitto's max_queued_messages (its default 1000; 0 = no limit): QoS 1 messages queued per session beyond it are dropped, so an exactly-once ingest test sets 0. */
  maxQueuedMessages?: number;
  /** Open the ACL on purpose: every device may publish anywhere under holdfast/ (to test that ingest still refuses forgeries). */
  openAcl?: boolean;
  /** Fleet-wide topics every device may also read (the retained revocation list, holdfast/fleet/revocation). */
  deviceRead?: readonly string[];
  /** Add a TLS listener with require_certificate and use_identity_as_username; device certs are made for every device and service. */
  tls?: boolean;
  /** Fixed plain port (default: a free one). */
  port?: number;
  /** log_type all (debug lines such as "Denied PUBLISH"); default: error, warning, notice, information. */
  debugLog?: boolean;
  /** SIGTERM→SIGKILL bound in ms (default 2000). */
  stopTimeoutMs?: number;
}

export interface MosquittoBroker extends BrokerHandle {
  readonly kind: 'mosquitto';
  readonly dir: string;
  /** TLS listener port, when `tls` was asked for. */
  readonly tlsPort: number | undefined;
  /** The throwaway CA and per-identity client certificates, when `tls`. */
  readonly pki: Pki | undefined;
  /** Everything mosquitto wrote to stderr (its log) since the first start. */
  log(): string;
  /** ms from spawn until a TCP connect succeeded, for each start (first, then each restart). */
  readonly startTimesMs: readonly number[];
  readonly pid: number | undefined;
  readonly version: string;
}

export async function startMosquitto(options: MosquittoOptions): Promise<MosquittoBroker> {
  const mosquitto = findMosquitto();
  if (!mosquitto.ok) throw new Error(mosquitto.reason);
  const passwd = findMosquittoPasswd();
  if (!passwd.ok) throw new Error(passwd.reason);
  for (const d of options.devices) checkDeviceId(d.deviceId);
  for (const s of options.services ?? []) checkDeviceId(s.username);

  const dir = mkdtempSync(join(tmpdir(), 'holdfast-mosquitto-'));
  try {
    const pki = options.tls ? makePki(join(dir, 'pki'), [...options.devices.map((d) => d.deviceId), ...(options.services ?? []).map((s) => s.username)]) : undefined;
    writePasswords(passwd.path, dir, options);
    writeFileSync(join(dir, 'acl'), aclText(options));
    const broker = new Mosquitto(mosquitto.path, mosquitto.version, dir, options, pki);
    await broker.firstStart();
    return broker;
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Debian's mosquitto over a password file and an ACL file made elsewhere
 * (`holdfast fleet broker-config`, tools/fleet/broker.ts): both copied into
 * the broker's temp dir unchanged; mosquitto_passwd is not run.
 */
export async function startMosquittoWithFiles(files: { passwordFile: string; aclFile: string }, options: Omit<MosquittoOptions, 'devices' | 'services' | 'openAcl' | 'tls'> = {}): Promise<MosquittoBroker> {
  const mosquitto = findMosquitto();
  if (!mosquitto.ok) throw new Error(mosquitto.reason);
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-mosquitto-'));
  try {
    copyFileSync(files.passwordFile, join(dir, 'passwords'));
    copyFileSync(files.aclFile, join(dir, 'acl'));
    const broker = new Mosquitto(mosquitto.path, mosquitto.version, dir, { ...options, devices: [] }, undefined);
    await broker.firstStart();
    return broker;
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

function writePasswords(_passwdPath: string, dir: string, options: MosquittoOptions): void {
  const accounts = [...options.devices.map((d) => [d.deviceId, d.password]), ...(options.services ?? []).map((s) => [s.username, s.password])];
  // mosquitto's own PBKDF2-SHA512 lines, computed here (tools/fleet/broker.ts: a line mosquitto_passwd wrote verifies
  // with it, and mosquitto accepts ours) instead of one mosquitto_passwd process per account: 43 s of start-up at
  // 500 simulated devices before, milliseconds now.
  writeFileSync(join(dir, 'passwords'), accounts.map(([user, password]) => `${user}:${mosquittoPbkdf2Hash(password)}\n`).join(''));
}

/** The ACL file: each device reads and writes only holdfast/<id>/#; services as configured. */
export function aclText(options: Pick<MosquittoOptions, 'devices' | 'services' | 'openAcl' | 'deviceRead'>): string {
  const lines = ['# generated by tools/net/mosquitto.ts'];
  for (const d of options.devices) {
    lines.push(`user ${d.deviceId}`);
    lines.push(`topic readwrite ${deviceTopicFilter(d.deviceId)}`);
    for (const f of options.deviceRead ?? []) lines.push(`topic read ${f}`);
    if (options.openAcl) lines.push(`topic write ${TOPIC_ROOT}/#`);
  }
  for (const s of options.services ?? []) {
    lines.push(`user ${s.username}`);
    for (const f of s.read ?? [`${TOPIC_ROOT}/#`]) lines.push(`topic read ${f}`);
    for (const f of s.write ?? []) lines.push(`topic write ${f}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Brokers still running: killed and cleaned up synchronously if the process exits without stop() (a crashed test). */
const live = new Set<Mosquitto>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const broker of live) broker.killNow();
  });
}

class Mosquitto implements MosquittoBroker {
  readonly kind = 'mosquitto' as const;
  readonly host = LOOPBACK;
  readonly protocolVersions = [5, 4, 3] as const;
  port = 0;
  tlsPort: number | undefined;
  readonly startTimesMs: number[] = [];
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private output = '';
  private stopped = false;

  constructor(
    private readonly binary: string,
    readonly version: string,
    readonly dir: string,
    private readonly options: MosquittoOptions,
    readonly pki: Pki | undefined,
  ) {}

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  log(): string {
    return this.output;
  }

  /** Synchronous last resort (process exit): SIGKILL and remove the temp dir. */
  killNow(): void {
    if (this.running) this.child?.kill('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }

  async firstStart(): Promise<void> {
    installExitHook();
    live.add(this);
    // A free port can be taken between the probe and mosquitto's bind: retry with another.
    for (let attempt = 0; ; attempt++) {
      this.port = this.options.port ?? (await freePort());
      this.tlsPort = this.options.tls ? await freePort() : undefined;
      try {
        await this.spawnAndWait();
        return;
      } catch (error) {
        if (this.options.port !== undefined || attempt >= 2 || !/Address already in use/.test(String(error))) {
          await this.stop();
          throw error;
        }
      }
    }
  }

  private config(): string {
    const o = this.options;
    const lines = [
      '# generated by tools/net/mosquitto.ts',
      'per_listener_settings false',
      'allow_anonymous false',
      `password_file ${join(this.dir, 'passwords')}`,
      `acl_file ${join(this.dir, 'acl')}`,
      'log_dest stderr',
      ...(o.debugLog ? ['log_type all'] : ['log_type error', 'log_type warning', 'log_type notice', 'log_type information']),
      'connection_messages true',
      'log_timestamp true',
      'log_timestamp_format %H:%M:%S',
      `persistence ${o.persistence ? 'true' : 'false'}`,
    ];
    // As root, mosquitto 2.0 drops privileges to user "mosquitto", which could not read this temp dir.
    if (process.getuid?.() === 0) lines.push(`user ${userInfo().username}`);
    if (o.persistence) lines.push(`persistence_location ${this.dir}/`, 'persistence_file mosquitto.db', 'autosave_interval 0');
    if (o.maxInflightMessages !== undefined) lines.push(`max_inflight_messages ${o.maxInflightMessages}`);
    if (o.maxPacketSize !== undefined) lines.push(`max_packet_size ${o.maxPacketSize}`);
    if (o.maxQueuedMessages !== undefined) lines.push(`max_queued_messages ${o.maxQueuedMessages}`);
    lines.push(`listener ${this.port} ${LOOPBACK}`, 'protocol mqtt');
    if (this.tlsPort !== undefined && this.pki) {
      lines.push(
        `listener ${this.tlsPort} ${LOOPBACK}`,
        'protocol mqtt',
        `cafile ${this.pki.caCert}`,
        `certfile ${this.pki.serverCert}`,
        `keyfile ${this.pki.serverKey}`,
        'require_certificate true',
        'use_identity_as_username true',
      );
    }
    return `${lines.join('\n')}\n`;
  }

  private async spawnAndWait(): Promise<void> {
    const configPath = join(this.dir, 'mosquitto.conf');
    writeFileSync(configPath, this.config());
    const started = performance.now();
    const child = spawn(this.binary, ['-c', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout?.on('data', (b: Buffer) => (this.output += b.toString()));
    child.stderr?.on('data', (b: Buffer) => (this.output += b.toString()));
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.once('error', (e) => (this.output += `spawn error: ${e.message}\n`));
    const deadline = started + 5000;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`mosquitto exited at start (code ${child.exitCode}, signal ${child.signalCode}):\n${this.output.slice(-2000)}`);
      }
      const ready = (await canConnect(this.port, LOOPBACK, 200)) && (this.tlsPort === undefined || (await canConnect(this.tlsPort, LOOPBACK, 200)));
      if (ready) break;
      if (performance.now() > deadline) throw new Error(`mosquitto did not accept connections on ${LOOPBACK}:${this.port} within 5 s:\n${this.output.slice(-2000)}`);
      await sleep(2);
    }
    this.startTimesMs.push(performance.now() - started);
  }

  private async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const bound = this.options.stopTimeoutMs ?? 2000;
    const timedOut = await Promise.race([this.exited.then(() => false), sleep(bound).then(() => true)]);
    if (timedOut) {
      this.output += `harness: no exit ${bound} ms after SIGTERM, sending SIGKILL\n`;
      child.kill('SIGKILL');
      await this.exited;
    }
  }

  async restart(): Promise<void> {
    if (this.stopped) throw new Error('mosquitto was stopped; start a new one');
    await this.kill();
    // mosquitto binds with SO_REUSEADDR, so the same port is free again at once.
    await this.spawnAndWait();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.kill();
    live.delete(this);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
