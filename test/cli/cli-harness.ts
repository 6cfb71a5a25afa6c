/**
 * Running the real CLI from tests: `holdfast` starts bin/holdfast.js in a
 * child process (the real entry point, exit status and signals); `batch`
 * runs several commands through the CLI's `main` in ONE child process (each
 * with a fresh program and its stdout/stderr captured) to save the ~1 s a
 * CLI start costs. HOLDFAST_CLI_ROOT points both at another checkout (used
 * to check that a test fails on an older tree).
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
export const CLI_ROOT = process.env.HOLDFAST_CLI_ROOT ?? REPO;
export const BIN = join(CLI_ROOT, 'bin/holdfast.js');
const MAIN = pathToFileURL(join(CLI_ROOT, 'tools/cli/main.ts')).href;
export const BOARD = 'esp32-wroom-32e-4mb';

export interface Run {
  status: number | null;
  signal?: string | null;
  stdout: string;
  stderr: string;
}

/** Everything any command printed (tests check it for private key material). */
export const transcript: string[] = [];

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeout?: number;
  /** Node flags before the script (e.g. --require a fault injector). */
  nodeArgs?: string[];
}

/** bin/holdfast.js in a child process. */
export function holdfast(args: readonly string[], options: RunOptions = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...(options.nodeArgs ?? []), BIN, ...args],
      { cwd: options.cwd ?? REPO, env: options.env ?? process.env, encoding: 'utf8', timeout: options.timeout ?? 120_000, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        transcript.push(stdout, stderr);
        const status = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
        resolve({ status, signal: error?.signal ?? null, stdout, stderr });
      },
    );
  });
}

/** bin/holdfast.js started in the background (for signals). */
export function start(args: readonly string[], options: RunOptions = {}): { child: ChildProcess; done: Promise<Run> } {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), BIN, ...args], { cwd: options.cwd ?? REPO, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d) => (stdout += String(d)));
  child.stderr?.on('data', (d) => (stderr += String(d)));
  const done = new Promise<Run>((resolve) => child.on('close', (status, signal) => resolve({ status, signal, stdout, stderr })));
  return { child, done };
}

const BATCH_DRIVER = `
const { main } = await import(process.env.HOLDFAST_BATCH_MAIN);
const results = [];
for (const args of JSON.parse(process.argv[1])) {
  let stdout = '', stderr = '';
  const write = { out: process.stdout.write, err: process.stderr.write };
  process.stdout.write = (chunk) => ((stdout += String(chunk)), true);
  process.stderr.write = (chunk) => ((stderr += String(chunk)), true);
  process.exitCode = undefined;
  let status;
  try {
    status = await main(['node', 'holdfast', ...args]);
  } catch (error) {
    stderr += 'UNCAUGHT ' + String(error && error.stack);
    status = 99;
  } finally {
    process.stdout.write = write.out;
    process.stderr.write = write.err;
  }
  results.push({ status, stdout, stderr });
}
process.exitCode = 0;
process.stdout.write(JSON.stringify(results));
`;

/** Several commands through `main` in one child process (paths absolute). */
export function batch(jobs: readonly (readonly string[])[], options: { cwd?: string } = {}): Promise<Run[]> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', BATCH_DRIVER, JSON.stringify(jobs)],
      { cwd: options.cwd ?? REPO, env: { ...process.env, HOLDFAST_BATCH_MAIN: MAIN }, encoding: 'utf8', timeout: 600_000, maxBuffer: 256 * 1024 * 1024 },
      (error, stdout, stderr) => {
        transcript.push(stdout, stderr);
        if (error) return reject(new Error(`batch driver failed: ${error.message}\n${stderr}`));
        resolve(JSON.parse(stdout) as Run[]);
      },
    );
  });
}

export function expectExit(run: Run, code: number, what: string): Run {
  assert.equal(run.status, code, `${what}: exit ${run.status}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
  return run;
}

/** No stack trace anywhere ("    at f (file:1:2)", "node:internal", an uncaught error's caret). */
export function assertNoStack(run: Run, what: string): void {
  const all = run.stdout + run.stderr;
  assert.ok(!/^\s+at .+[:(]\d+:\d+\)?$/m.test(all) && !all.includes('node:internal') && !all.includes('UNCAUGHT'), `${what}: a stack trace:\n${all}`);
}

/** A failure: exactly one stderr line `holdfast <command>: …`, no stack trace. */
export function assertOneLineError(run: Run, command: string, what: string): string {
  assertNoStack(run, what);
  const lines = run.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `${what}: one stderr line, got:\n${run.stderr}`);
  assert.ok(lines[0].startsWith(`holdfast ${command}: `), `${what}: the line names the command: ${lines[0]}`);
  return lines[0];
}

/** Under --json, a failure prints one JSON error object on stdout. */
export function jsonErrorOf(run: Run, what: string): { ok: false; exitCode: number; error: { code: string; message: string; file: string | null; field: string | null } } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(run.stdout);
  } catch {
    assert.fail(`${what}: stdout is not JSON:\n${run.stdout}\nstderr: ${run.stderr}`);
  }
  const o = parsed as { ok: boolean; exitCode: number; error: { code: string; message: string; file: string | null; field: string | null } };
  assert.equal(o.ok, false, `${what}: ok false`);
  assert.equal(o.exitCode, run.status, `${what}: exitCode matches the exit status`);
  assert.equal(typeof o.error?.code, 'string', `${what}: error.code`);
  assert.equal(typeof o.error?.message, 'string', `${what}: error.message`);
  return o as never;
}
