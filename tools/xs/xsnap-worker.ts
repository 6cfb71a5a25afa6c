// Synchronous driver for the real Moddable XS engine (the `xsnap-worker`
// binary built by @agoric/xsnap). See docs/design/xs-harness.md.
//
// We drive the binary directly instead of using @agoric/xsnap's JS API: that
// API needs @endo/init (which locks down the whole Node realm with SES) and
// its async netstring streams manage only ~13k issueCommand round trips/s.
// A blocking host side over FIFOs is several times faster and lets an
// issueCommand handler be an ordinary synchronous function.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';

export interface XsMeter {
  /** Deterministic work count of the last crank. */
  compute: number;
  /** Heap slots in use after the crank. */
  currentHeapCount: number;
  allocate?: number;
  [k: string]: unknown;
}

export interface XsReply {
  /** The ArrayBuffer returned by the evaluation / handleCommand (or its `.result`); empty otherwise. */
  reply: Uint8Array;
  meter: XsMeter;
}

/** Answers XS's `issueCommand(ArrayBuffer)` synchronously. */
export type XsCommandHandler = (request: Uint8Array) => Uint8Array;

export interface XsWorkerOptions {
  /** Compute limit per crank (`-l`); exceeding it kills the worker with exit code 17. Default: none. */
  meteringLimit?: number;
  onCommand?: XsCommandHandler;
  build?: 'release' | 'debug';
  /** Where XS's `print(...)` output goes. Default: 'inherit'. */
  stdout?: 'inherit' | 'ignore' | 'stderr';
}

/** XS threw an exception that the evaluated code did not catch. The worker stays usable. */
export class XsUncaughtError extends Error {
  override name = 'XsUncaughtError';
}

/** The worker process is gone (crashed, killed, or hit a limit). The worker is unusable afterwards. */
export class XsExitError extends Error {
  override name = 'XsExitError';
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly signal: string | null,
  ) {
    super(message);
  }
}

// ExitCode enum in xsnap-worker.c (plus what the wrapping shell may report).
const EXIT_MEANINGS: Record<number, string> = {
  1: 'bad usage (invalid command-line flags)',
  2: 'I/O error on the host pipes',
  11: 'not enough memory',
  12: 'stack overflow',
  15: 'unhandled exception',
  16: 'no more keys (XS symbol table full)',
  17: 'too much computation (metering limit)',
  126: 'worker binary not executable',
  127: 'worker binary not found',
  255: 'unknown XS error',
};

export function describeExit(exitCode: number | null, signal: string | null): string {
  if (signal !== null) return `killed by ${signal}`;
  if (exitCode === null) return 'exit status unknown';
  const meaning = EXIT_MEANINGS[exitCode];
  return meaning ? `exit code ${exitCode}: ${meaning}` : `exit code ${exitCode}`;
}

export function xsnapWorkerPath(build: 'release' | 'debug' = 'release'): string {
  const require = createRequire(import.meta.url);
  const pkgDir = path.dirname(require.resolve('@agoric/xsnap/package.json'));
  const platformDir = process.platform === 'darwin' ? 'mac' : 'lin';
  return path.join(pkgDir, 'xsnap-native', 'xsnap', 'build', 'bin', platformDir, build, 'xsnap-worker');
}

// The shell opens the FIFOs (fd 3 first, then fd 4: the host opens them in the
// same order, so neither side deadlocks) and stays around to record the
// worker's exit status in a file. Node only reaps children from its event loop,
// which never runs while we block, so the status file is how a synchronous
// host learns why the worker died.
const LAUNCHER = '"$0" "$@" 3<"$XS_IN" 4>"$XS_OUT" 2>"$XS_STDERR"; echo $? >"$XS_STATUS.tmp"; mv "$XS_STATUS.tmp" "$XS_STATUS"';

const EXIT_WAIT_MS = 5000;
const READ_CHUNK = 64 * 1024;
const COMMA = 0x2c;
const COLON = 0x3a;
const SEP = 0x01;
const QUERY = 0x3f; // '?'
const OK = 0x2e; // '.'
const ERROR = 0x21; // '!'

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

// Cleanups of workers not yet closed: a forgotten worker must neither
// outlive the host nor leak its temp dir.
const unclosed = new Set<() => void>();
let exitHookInstalled = false;
function trackUnclosed(cleanup: () => void): void {
  unclosed.add(cleanup);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const cleanup of unclosed) cleanup();
    });
  }
}

export class XsWorker {
  #pid: number;
  #dir: string;
  #toWorker: number | null;
  #fromWorker: number | null;
  #onCommand: XsCommandHandler | null;
  #buf = Buffer.allocUnsafe(READ_CHUNK);
  #start = 0;
  #end = 0;
  #dead: XsExitError | null = null;
  #closed = false;
  #busy = false;
  #abandonOnExit = (): void => this.#abandon();

  private constructor(pid: number, dir: string, toWorker: number, fromWorker: number, onCommand: XsCommandHandler | null) {
    this.#pid = pid;
    this.#dir = dir;
    this.#toWorker = toWorker;
    this.#fromWorker = fromWorker;
    this.#onCommand = onCommand;
    trackUnclosed(this.#abandonOnExit);
  }

  static spawn(options: XsWorkerOptions = {}): XsWorker {
    const bin = xsnapWorkerPath(options.build);
    if (!fs.existsSync(bin)) {
      throw new Error(
        `xsnap-worker binary not found at ${bin}. It is compiled when @agoric/xsnap is installed; ` +
          'run `npm ci` (or `npm rebuild @agoric/xsnap`).',
      );
    }
    const args = ['holdfast-xs'];
    if (options.meteringLimit !== undefined) {
      // The worker parses it with atoi() into a C int.
      if (!Number.isInteger(options.meteringLimit) || options.meteringLimit <= 0 || options.meteringLimit > 0x7fffffff) {
        throw new RangeError(`meteringLimit must be an integer in 1..2^31-1, got ${options.meteringLimit}`);
      }
      args.push('-l', String(options.meteringLimit));
    }

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'holdfast-xs-'));
    const files = {
      XS_IN: path.join(dir, 'in'),
      XS_OUT: path.join(dir, 'out'),
      XS_STDERR: path.join(dir, 'stderr'),
      XS_STATUS: path.join(dir, 'status'),
    };
    let child: ChildProcess | null = null;
    try {
      mkfifo(files.XS_IN, files.XS_OUT);
      const stdout = options.stdout ?? 'inherit';
      child = spawn('/bin/sh', ['-c', LAUNCHER, bin, ...args], {
        env: { ...process.env, ...files },
        stdio: ['ignore', stdout === 'stderr' ? 2 : stdout, 'inherit'],
        // Own process group, so a stuck worker can be killed together with its shell.
        detached: true,
      });
      const pid = child.pid;
      if (pid === undefined) throw new Error('could not start /bin/sh for xsnap-worker');
      child.unref();
      // Each open blocks until the shell opens the other end; if the worker
      // cannot start, the shell still opens both before the exec fails.
      const toWorker = fs.openSync(files.XS_IN, 'w');
      const fromWorker = fs.openSync(files.XS_OUT, 'r');
      return new XsWorker(pid, dir, toWorker, fromWorker, options.onCommand ?? null);
    } catch (err) {
      if (child?.pid !== undefined) killGroup(child.pid);
      fs.rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Evaluates a script in XS's global scope (indirect eval); pending promise jobs run before it returns. */
  evaluate(code: string): XsReply {
    return this.#run('e', Buffer.from(code, 'utf8'));
  }

  /** Calls the global `handleCommand(ArrayBuffer)` that previously evaluated code defined. */
  command(request: Uint8Array): XsReply {
    return this.#run('?', request);
  }

  setCommandHandler(handler: XsCommandHandler): void {
    this.#onCommand = handler;
  }

  /** The temp directory holding the FIFOs (removed by close()). */
  get tempDir(): string {
    return this.#dir;
  }

  /** Asks the worker to quit, waits for it and removes the temp files. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#assertIdle();
    this.#closed = true;
    unclosed.delete(this.#abandonOnExit);
    if (this.#dead === null) {
      try {
        this.#send('q', new Uint8Array(0));
      } catch {
        // already gone; the status wait below copes
      }
    }
    this.#closeFds();
    if (this.#waitStatus() === null) killGroup(this.#pid);
    fs.rmSync(this.#dir, { recursive: true, force: true });
  }

  /** Last-resort cleanup (host exit, protocol error): no waiting. */
  #abandon(): void {
    if (this.#closed) return;
    this.#closed = true;
    unclosed.delete(this.#abandonOnExit);
    this.#closeFds();
    killGroup(this.#pid);
    fs.rmSync(this.#dir, { recursive: true, force: true });
  }

  #assertIdle(): void {
    // A command handler calling back into its own worker would interleave
    // messages inside an unfinished exchange.
    if (this.#busy) throw new Error('XsWorker is busy: do not call evaluate/command/close from its command handler');
  }

  #run(prefix: string, payload: Uint8Array): XsReply {
    if (this.#closed) throw new Error('XsWorker is closed');
    this.#assertIdle();
    if (this.#dead) throw this.#dead;
    this.#busy = true;
    try {
      return this.#exchange(prefix, payload);
    } finally {
      this.#busy = false;
    }
  }

  #exchange(prefix: string, payload: Uint8Array): XsReply {
    this.#send(prefix, payload);
    let handlerError: { error: unknown } | null = null;
    for (;;) {
      // [start, end) is the payload after the tag byte, valid until the next #receive.
      const { tag, start, end } = this.#receive();
      if (tag === QUERY) {
        // issueCommand: XS blocks until we answer, so we must always answer.
        let answer: Uint8Array | null = null;
        if (handlerError === null) {
          try {
            if (!this.#onCommand) throw new Error('XS called issueCommand but no command handler is set');
            answer = this.#onCommand(copyOut(this.#buf, start, end));
          } catch (error) {
            handlerError = { error };
          }
        }
        // Anything but '/' makes XS's issueCommand throw, unwinding the XS code.
        if (answer === null) this.#send('!', Buffer.from('host command handler failed'));
        else this.#send('/', answer);
        continue;
      }
      if (handlerError !== null) throw handlerError.error;
      if (tag === ERROR) throw new XsUncaughtError(this.#buf.toString('utf8', start, end));
      if (tag !== OK) throw this.#protocolError(`unexpected message tag ${tag}`);
      const sep = this.#buf.subarray(start, end).indexOf(SEP);
      if (sep < 0) throw this.#protocolError('reply without meter separator');
      const meter = JSON.parse(this.#buf.toString('utf8', start, start + sep)) as XsMeter;
      return { reply: copyOut(this.#buf, start + sep + 1, end), meter };
    }
  }

  #send(prefix: string, payload: Uint8Array): void {
    const fd = this.#toWorker;
    if (fd === null) throw this.#died();
    const header = Buffer.from(`${payload.length + prefix.length}:${prefix}`, 'latin1');
    const frame = Buffer.allocUnsafe(header.length + payload.length + 1);
    header.copy(frame, 0);
    frame.set(payload, header.length);
    frame[frame.length - 1] = COMMA;
    try {
      let off = 0;
      while (off < frame.length) off += fs.writeSync(fd, frame, off);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EPIPE') throw this.#died();
      throw err;
    }
  }

  /** Locates the next netstring from the worker in #buf; throws XsExitError at EOF. */
  #receive(): { tag: number; start: number; end: number } {
    for (;;) {
      const have = this.#end - this.#start;
      const colon = this.#buf.subarray(this.#start, this.#start + Math.min(have, 11)).indexOf(COLON);
      if (colon < 0) {
        if (have >= 11) throw this.#protocolError('netstring length prefix too long');
        this.#fill(READ_CHUNK);
        continue;
      }
      const lenText = this.#buf.toString('latin1', this.#start, this.#start + colon);
      if (!/^\d+$/.test(lenText)) throw this.#protocolError(`bad netstring length ${JSON.stringify(lenText)}`);
      const frameLength = colon + 1 + Number(lenText) + 1;
      if (have < frameLength) {
        this.#fill(frameLength);
        continue;
      }
      const bodyStart = this.#start + colon + 1;
      const bodyEnd = this.#start + frameLength - 1;
      if (this.#buf[bodyEnd] !== COMMA) throw this.#protocolError('netstring missing trailing comma');
      if (bodyEnd === bodyStart) throw this.#protocolError('empty message');
      this.#start += frameLength;
      return { tag: this.#buf[bodyStart]!, start: bodyStart + 1, end: bodyEnd };
    }
  }

  /** Reads more bytes, first making room for a frame of `frameLength` bytes starting at #start. */
  #fill(frameLength: number): void {
    const have = this.#end - this.#start;
    if (this.#start + frameLength > this.#buf.length) {
      const target = frameLength > this.#buf.length ? Buffer.allocUnsafe(Math.max(frameLength, this.#buf.length * 2)) : this.#buf;
      this.#buf.copy(target, 0, this.#start, this.#end);
      this.#buf = target;
      this.#start = 0;
      this.#end = have;
    }
    const fd = this.#fromWorker;
    if (fd === null) throw this.#died();
    const n = fs.readSync(fd, this.#buf, this.#end, this.#buf.length - this.#end, null);
    if (n === 0) throw this.#died();
    this.#end += n;
  }

  #protocolError(what: string): Error {
    this.#abandon();
    return new Error(`xsnap-worker protocol error: ${what}`);
  }

  /** The worker is gone: learn why, remember it, and hand back the error to throw. */
  #died(): XsExitError {
    if (this.#dead) return this.#dead;
    this.#closeFds();
    const status = this.#waitStatus();
    let exitCode: number | null = null;
    let signal: string | null = null;
    if (status === null) {
      killGroup(this.#pid);
    } else if (status > 128 && status < 128 + 64) {
      signal = signalName(status - 128);
    } else {
      exitCode = status;
    }
    let stderr = '';
    try {
      stderr = fs.readFileSync(path.join(this.#dir, 'stderr'), 'utf8').trim().slice(-2000);
    } catch {
      // temp dir already removed
    }
    const how = status === null ? `did not exit within ${EXIT_WAIT_MS} ms after closing its pipe; killed` : describeExit(exitCode, signal);
    this.#dead = new XsExitError(`xsnap-worker died (${how})${stderr ? `; stderr: ${stderr}` : ''}`, exitCode, signal);
    return this.#dead;
  }

  /** Waits for the launcher's status file; null if the worker did not exit in time. */
  #waitStatus(): number | null {
    const file = path.join(this.#dir, 'status');
    const deadline = Date.now() + EXIT_WAIT_MS;
    for (let pause = 1; ; pause = Math.min(pause * 2, 50)) {
      try {
        const text = fs.readFileSync(file, 'utf8').trim();
        return Number(text);
      } catch {
        if (Date.now() > deadline) return null;
        sleepSync(pause);
      }
    }
  }

  #closeFds(): void {
    for (const fd of [this.#toWorker, this.#fromWorker]) {
      if (fd !== null) fs.closeSync(fd);
    }
    this.#toWorker = null;
    this.#fromWorker = null;
  }
}

/** A copy with its own ArrayBuffer (the read buffer is reused, and callers may use `.buffer`). */
function copyOut(buf: Buffer, start: number, end: number): Uint8Array {
  const out = new Uint8Array(end - start);
  out.set(buf.subarray(start, end));
  return out;
}

function mkfifo(...paths: string[]): void {
  // Node has no mkfifo binding; the mkfifo(1) utility is POSIX.
  execFileSync('mkfifo', ['-m', '600', ...paths], { stdio: ['ignore', 'ignore', 'pipe'] });
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function signalName(num: number): string {
  for (const [name, n] of Object.entries(os.constants.signals)) if (n === num) return name;
  return `signal ${num}`;
}
