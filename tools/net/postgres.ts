/**
 * A throwaway PostgreSQL cluster for tests and benchmarks (Debian's
 * `postgresql` package: initdb, pg_ctl and postgres in
 * /usr/lib/postgresql/<major>/bin): `initdb` in a temp folder, `pg_ctl
 * start` on a free loopback port (TCP on 127.0.0.1 only, the unix socket
 * in the temp folder, trust authentication for the one local superuser
 * `holdfast`), and `stop()` stops it and deletes the folder. A process
 * that exits without stop() (a crashed test) stops it synchronously.
 *
 * Root: `initdb` refuses to run as root ("cannot be run as root"), and so
 * does the server. Run as root (CI and the sessions here are), every
 * PostgreSQL program is started through `runuser -u postgres --` (the
 * system account Debian's package creates; util-linux's runuser needs no
 * password or PAM session when root calls it), and the temp folder is
 * given to that account. Not root: the programs run as the caller.
 *
 * Host tool (Node).
 */
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort, LOOPBACK, type Found } from './common.ts';

/** The account the server runs as when the caller is root. */
export const POSTGRES_SYSTEM_USER = 'postgres';
/** The cluster's superuser (trust authentication on loopback and the socket). */
export const POSTGRES_SUPERUSER = 'holdfast';

/** Debian's PostgreSQL server programs (the newest major installed). */
export function findPostgres(): Found {
  const root = '/usr/lib/postgresql';
  const majors = existsSync(root) ? readdirSync(root).filter((m) => /^\d+$/.test(m) && existsSync(join(root, m, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a)) : [];
  if (majors.length === 0) return { ok: false, reason: 'PostgreSQL is not installed (apt-get install postgresql)' };
  if (isRoot() && spawnSync('id', ['-u', POSTGRES_SYSTEM_USER]).status !== 0) return { ok: false, reason: `running as root needs the ${POSTGRES_SYSTEM_USER} account (apt-get install postgresql creates it)` };
  if (isRoot() && spawnSync(runuserPath(), ['--help']).error) return { ok: false, reason: 'running as root needs runuser (util-linux) to start PostgreSQL as the postgres account' };
  return { ok: true, path: join(root, majors[0], 'bin'), version: majors[0] };
}

/** util-linux's runuser: in /usr/sbin on Debian, which a root PATH may lack. */
function runuserPath(): string {
  return ['/usr/sbin/runuser', '/sbin/runuser', '/usr/bin/runuser'].find((p) => existsSync(p)) ?? 'runuser';
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

export interface PostgresOptions {
  /** fsync and synchronous_commit (default true: a COMMIT is on disk when it returns). Tests that do not crash the server turn them off for speed. */
  fsync?: boolean;
  /** max_connections (default 50). */
  maxConnections?: number;
  /** shared_buffers, e.g. '128MB' (default PostgreSQL's). */
  sharedBuffers?: string;
}

export interface PostgresCluster {
  /** postgres://holdfast@127.0.0.1:<port>/postgres */
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  readonly version: string;
  /** The server's log so far. */
  log(): string;
  /** CREATE DATABASE `name` (letters, digits, _); resolves to its URL. */
  createDatabase(name: string): Promise<string>;
  /** pg_ctl stop -m fast, then delete the folder. */
  stop(): Promise<void>;
}

const live = new Set<Cluster>();
let exitHookInstalled = false;

export async function startPostgres(options: PostgresOptions = {}): Promise<PostgresCluster> {
  const found = findPostgres();
  if (!found.ok) throw new Error(found.reason);
  // As root the folder goes to the postgres account, which must be able to reach it: /tmp, not a TMPDIR under /root.
  const dir = mkdtempSync(join(isRoot() && existsSync('/tmp') ? '/tmp' : tmpdir(), 'holdfast-postgres-'));
  const cluster = new Cluster(found.path, found.version, dir);
  try {
    await cluster.start(options);
  } catch (error) {
    cluster.removeNow();
    throw error;
  }
  return cluster;
}

class Cluster implements PostgresCluster {
  port = 0;
  private stopped = false;

  constructor(
    private readonly bin: string,
    readonly version: string,
    readonly dir: string,
  ) {}

  get url(): string {
    return `postgres://${POSTGRES_SUPERUSER}@${LOOPBACK}:${this.port}/postgres`;
  }

  async createDatabase(name: string): Promise<string> {
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new RangeError(`database name ${JSON.stringify(name)}: expected a-z, 0-9, _`);
    const client = new pg.Client({ connectionString: this.url });
    await client.connect();
    try {
      await client.query(`CREATE DATABASE ${name}`);
    } finally {
      await client.end();
    }
    return `postgres://${POSTGRES_SUPERUSER}@${LOOPBACK}:${this.port}/${name}`;
  }

  private get data(): string {
    return join(this.dir, 'data');
  }

  log(): string {
    try {
      return readFileSync(join(this.dir, 'server.log'), 'utf8');
    } catch {
      return '';
    }
  }

  /** argv to run a PostgreSQL program as the account that may run it. */
  private command(program: string, args: string[]): [string, string[]] {
    const path = join(this.bin, program);
    return isRoot() ? [runuserPath(), ['-u', POSTGRES_SYSTEM_USER, '--', path, ...args]] : [path, args];
  }

  private run(program: string, args: string[], timeoutMs: number): Promise<void> {
    const [file, argv] = this.command(program, args);
    return new Promise((resolve, reject) => {
      const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (b: Buffer) => (output += b.toString()));
      child.stderr.on('data', (b: Buffer) => (output += b.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.once('error', (e) => {
        clearTimeout(timer);
        reject(new Error(`${program}: ${e.message}`));
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        if (code === 0) resolve();
        else reject(new Error(`${program} failed (code ${code}, signal ${signal}): ${output.trim().slice(-1500)}`));
      });
    });
  }

  async start(options: PostgresOptions): Promise<void> {
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.on('exit', () => {
        for (const c of live) c.killNow();
      });
    }
    live.add(this);
    if (isRoot()) chownSync(this.dir, Number(spawnSync('id', ['-u', POSTGRES_SYSTEM_USER], { encoding: 'utf8' }).stdout.trim()), Number(spawnSync('id', ['-g', POSTGRES_SYSTEM_USER], { encoding: 'utf8' }).stdout.trim()));
    await this.run('initdb', ['-D', this.data, '-U', POSTGRES_SUPERUSER, '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-instructions'], 120_000);
    const fsync = options.fsync ?? true;
    // A free port can be taken between the probe and the server's bind: retry with another.
    for (let attempt = 0; ; attempt++) {
      this.port = await freePort();
      const settings = [
        `-c listen_addresses=${LOOPBACK}`,
        `-p ${this.port}`,
        `-c unix_socket_directories=${this.dir}`,
        `-c max_connections=${options.maxConnections ?? 50}`,
        `-c fsync=${fsync ? 'on' : 'off'}`,
        `-c synchronous_commit=${fsync ? 'on' : 'off'}`,
        `-c full_page_writes=${fsync ? 'on' : 'off'}`,
        ...(options.sharedBuffers ? [`-c shared_buffers=${options.sharedBuffers}`] : []),
      ].join(' ');
      try {
        await this.run('pg_ctl', ['start', '-w', '-t', '60', '-D', this.data, '-l', join(this.dir, 'server.log'), '-o', settings], 90_000);
        return;
      } catch (error) {
        if (attempt >= 2 || !/already in use|could not bind/i.test(`${String(error)}\n${this.log()}`)) throw new Error(`${String(error)}\n${this.log().slice(-1500)}`);
      }
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    try {
      await this.run('pg_ctl', ['stop', '-w', '-t', '30', '-m', 'fast', '-D', this.data], 40_000);
    } catch {
      this.killNow();
    }
    live.delete(this);
    this.removeNow();
  }

  /** Synchronous last resort (process exit): immediate shutdown, then the folder is removed. */
  killNow(): void {
    if (existsSync(join(this.data, 'postmaster.pid'))) {
      const [file, argv] = this.command('pg_ctl', ['stop', '-w', '-t', '10', '-m', 'immediate', '-D', this.data]);
      spawnSync(file, argv, { stdio: 'ignore', timeout: 15_000 });
    }
    this.removeNow();
  }

  removeNow(): void {
    live.delete(this);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
