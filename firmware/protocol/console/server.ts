/**
 * The device side of the serial console (docs/spec/console.md): reads
 * command frames from the console UART, answers them from a ConsoleTarget,
 * and writes log frames (it is a HAL `Log`).
 *
 * The UART is a HAL ByteStream (ECMA-419 `embedded:io/serial` has the same
 * read/write/onReadable shape as the TCP socket): the runtime calls
 * `readFrom(stream, byteCount)` from the stream's `onReadable`, or hands
 * bytes to `receive`. Output goes to `output.write`, one whole frame per
 * call; the server keeps no output queue.
 *
 * Commands that change state (`confirm`, `rollback`, `safe-mode`,
 * `reboot`) need the console unlocked (security/console-unlock.ts); every
 * unlock, every refusal of an unlock or of a locked command, and every
 * accepted state-changing command is given to `target.audit` before the
 * reply is written. An audit sink that throws StorageError makes the
 * command refused (fail closed).
 *
 * Failures: a target reports what it knows went wrong by throwing
 * StorageError (a store that is damaged, full, exhausted), answered as an
 * `err` frame, or by an action's `{ ok: false }`. Anything else thrown is a
 * fault, not an answer (a power cut in the simulator stops the CPU, a bug)
 * and propagates out of `receive`: nothing after it runs.
 */
import type { Log, LogLevel } from '../../hal/log.ts';
import type { AuditEvent } from '../../storage/audit-log.ts';
import type { ConsoleUnlock } from '../../security/console-unlock.ts';
import { StorageError } from '../../storage/errors.ts';
import { ConsoleDecoder, ConsoleEncodeError, CONSOLE_PROTOCOL_VERSION, encodeConsoleFrame, type ConsoleDecoderStats, type ConsoleFields, type ConsoleFrame } from './frame.ts';

/** The result of an action: done (with fields for the reply) or refused by the target (a token code and a message). */
export type ConsoleActionResult = { readonly ok: true; readonly fields?: ConsoleFields } | { readonly ok: false; readonly code: string; readonly message: string };

/**
 * What the console shows and does; the runtime implements it (the
 * simulator's is tools/sim/console-device.ts). Getters must not change
 * state. Actions run when the console is unlocked; `reboot` schedules the
 * restart and returns, so the reply goes out first.
 */
export interface ConsoleTarget {
  /** Firmware and runtime state: image version, running slot, safe mode, uptime, … */
  status(): ConsoleFields;
  /** The outbox's figures (queued, nextSeq, ackSeq, dropped, …). */
  outbox(): ConsoleFields;
  /** The persistent counter (current, reservedUpTo, remaining, …). */
  counter(): ConsoleFields;
  /** One entry per app slot (slot, state, imageVersion, running, …). */
  slots(): readonly ConsoleFields[];
  /** The newest `max` audit entries, oldest first (counter, kind, the event's fields). */
  auditTail(max: number): readonly ConsoleFields[];
  /** Confirm the running trial image (mark it valid). */
  confirm(): ConsoleActionResult;
  /** Roll back to the other slot. */
  rollback(): ConsoleActionResult;
  setSafeMode(on: boolean): ConsoleActionResult;
  /** Schedule a restart. */
  reboot(): ConsoleActionResult;
  /** Append an event to the audit log (durable when it returns); throws StorageError when it cannot. */
  audit(event: AuditEvent): void;
}

/** Where frames go: a ByteStream (its `write`) fits. */
export interface ConsoleOutput {
  write(data: Uint8Array): number;
}

export interface ConsoleServerOptions {
  readonly output: ConsoleOutput;
  readonly target: ConsoleTarget;
  readonly unlock: ConsoleUnlock;
  readonly deviceId: string;
  /** Lowest level written as a log frame (default `info`). */
  readonly logLevel?: LogLevel;
}

export interface ConsoleServerStats {
  readonly rx: Readonly<ConsoleDecoderStats>;
  /** Command frames answered. */
  readonly commands: number;
  /** Frames of another kind than `cmd` received (ignored). */
  readonly unexpected: number;
  /** Commands refused because the console was locked. */
  readonly lockedRefusals: number;
  /** Frames that could not be encoded (too long) and were replaced or left out. */
  readonly encodeFailures: number;
  readonly logFrames: number;
}

/** Most entries `audit-tail` returns. */
export const CONSOLE_MAX_AUDIT_TAIL = 32;
/** Default entries of `audit-tail`. */
export const CONSOLE_DEFAULT_AUDIT_TAIL = 10;

/** Operations, in the order `help` lists them; `true` for those that need the console unlocked. */
export const CONSOLE_OPS: Readonly<Record<string, boolean>> = Object.freeze({
  help: false,
  status: false,
  outbox: false,
  counter: false,
  slots: false,
  'audit-tail': false,
  unlock: false,
  'unlock-response': false,
  lock: false,
  confirm: true,
  rollback: true,
  'safe-mode': true,
  reboot: true,
});

const LEVELS: readonly LogLevel[] = Object.freeze(['debug', 'info', 'warn', 'error'] as const);
const RESERVED_LOG_KEYS: readonly string[] = Object.freeze(['lvl', 'area', 'msg']);
const KEY = /^[a-z][a-z0-9._-]{0,15}$/;
const READ_CHUNK = 64;

export class ConsoleServer implements Log {
  private readonly output: ConsoleOutput;
  private readonly target: ConsoleTarget;
  private readonly unlock: ConsoleUnlock;
  private readonly deviceId: string;
  private readonly minLevel: number;
  private readonly decoder = new ConsoleDecoder();
  private readonly scratch = new Uint8Array(READ_CHUNK);
  private commands = 0;
  private unexpected = 0;
  private lockedRefusals = 0;
  private encodeFailures = 0;
  private logFrames = 0;

  constructor(options: ConsoleServerOptions) {
    this.output = options.output;
    this.target = options.target;
    this.unlock = options.unlock;
    this.deviceId = options.deviceId;
    const level = LEVELS.indexOf(options.logLevel ?? 'info');
    if (level < 0) throw new RangeError(`unknown log level ${String(options.logLevel)}`);
    this.minLevel = level;
  }

  /** Announce the console (after boot): `HF1 hello proto=1 device=<id> locked=true`. */
  start(): void {
    this.send('hello', { proto: CONSOLE_PROTOCOL_VERSION, device: this.deviceId, locked: !this.unlock.unlocked() });
  }

  /** Bytes from the UART, in any chunks. */
  receive(bytes: Uint8Array): void {
    this.decoder.push(bytes, (frame) => this.handle(frame));
  }

  /** Read what `stream` has (its `onReadable(byteCount)`), in small chunks, and handle it. */
  readFrom(stream: { read(target: Uint8Array): number }, byteCount: number): void {
    let left = byteCount;
    while (left > 0) {
      const n = stream.read(left < READ_CHUNK ? this.scratch.subarray(0, left) : this.scratch);
      if (n <= 0) break;
      this.decoder.push(this.scratch, (frame) => this.handle(frame), undefined, 0, n);
      left -= n;
    }
  }

  /** HAL Log: one `log` frame (below the server's level: nothing). Never throws for its input. */
  write(level: LogLevel, area: string, message: string, fields?: Readonly<Record<string, string | number | boolean>>): void {
    const rank = LEVELS.indexOf(level);
    if (rank < 0 || rank < this.minLevel) return;
    const all: Record<string, string | number | boolean> = { lvl: level, area: String(area), msg: String(message) };
    if (fields !== undefined) {
      for (const key of Object.keys(fields)) if (KEY.test(key) && RESERVED_LOG_KEYS.indexOf(key) < 0) all[key] = fields[key];
    }
    this.logFrames++;
    this.send('log', all, { lvl: all.lvl, area: String(all.area).slice(0, 32), msg: 'log line too long for a frame' });
  }

  stats(): ConsoleServerStats {
    return { rx: { ...this.decoder.stats }, commands: this.commands, unexpected: this.unexpected, lockedRefusals: this.lockedRefusals, encodeFailures: this.encodeFailures, logFrames: this.logFrames };
  }

  // ---------------------------------------------------------------- commands

  private handle(frame: ConsoleFrame): void {
    if (frame.kind !== 'cmd') {
      this.unexpected++;
      return;
    }
    this.commands++;
    const f = frame.fields;
    const id = f.id !== undefined && /^[0-9]{1,9}$/.test(f.id) ? f.id : '-';
    const op = f.op ?? '';
    if (!Object.prototype.hasOwnProperty.call(CONSOLE_OPS, op)) {
      this.error(id, op === '' ? '-' : op, 'unknown-op', `unknown command ${JSON.stringify(op)}: expected one of ${Object.keys(CONSOLE_OPS).join(', ')}`);
      return;
    }
    if (CONSOLE_OPS[op] && !this.unlock.unlocked()) {
      this.lockedRefusals++;
      this.refuse(id, op, 'locked', `${op} needs the console unlocked (unlock with the fleet's console key)`);
      return;
    }
    try {
      this.run(id, op, f);
    } catch (error) {
      if (!(error instanceof StorageError)) throw error;
      this.error(id, op, 'failed', describe(error));
    }
  }

  private run(id: string, op: string, f: Readonly<Record<string, string>>): void {
    const t = this.target;
    switch (op) {
      case 'help':
        this.ok(id, op, { ops: Object.keys(CONSOLE_OPS).join(',') });
        return;
      case 'status': {
        const rx = this.decoder.stats;
        this.ok(id, op, merge({ device: this.deviceId, locked: !this.unlock.unlocked(), 'unlock-ms': this.unlock.remainingMs(), 'rx-frames': rx.frames, 'rx-skipped': rx.skippedBytes, 'rx-bad': rx.badCrc + rx.malformed + rx.overlong + rx.interrupted }, t.status()));
        return;
      }
      case 'outbox':
        this.ok(id, op, t.outbox());
        return;
      case 'counter':
        this.ok(id, op, t.counter());
        return;
      case 'slots':
        this.items(id, op, t.slots());
        return;
      case 'audit-tail': {
        const n = f.n === undefined ? CONSOLE_DEFAULT_AUDIT_TAIL : /^[0-9]{1,3}$/.test(f.n) ? Number(f.n) : -1;
        if (n < 1 || n > CONSOLE_MAX_AUDIT_TAIL) {
          this.error(id, op, 'bad-args', `n must be 1..${CONSOLE_MAX_AUDIT_TAIL}, got ${JSON.stringify(f.n)}`);
          return;
        }
        this.items(id, op, t.auditTail(n));
        return;
      }
      case 'unlock': {
        if (!this.unlock.provisioned) {
          this.refuse(id, op, 'no-key', 'no console key is provisioned: this device cannot be unlocked');
          return;
        }
        const c = this.unlock.challenge();
        this.ok(id, op, { device: this.deviceId, number: c.number, challenge: hex(c.bytes), 'ttl-ms': c.ttlMs });
        return;
      }
      case 'unlock-response': {
        const number = f.number !== undefined && /^[0-9]{1,16}$/.test(f.number) ? Number(f.number) : -1;
        const signature = f.sig !== undefined ? unhex(f.sig) : undefined;
        const result = this.unlock.respond(number, signature ?? new Uint8Array(0));
        if (!result.ok) {
          this.refuse(id, 'unlock', result.reason, refusalText(result.reason));
          return;
        }
        try {
          t.audit({ kind: 'console-unlocked', keyId: result.keyId, counter: result.number });
        } catch (error) {
          this.unlock.lock();
          if (!(error instanceof StorageError)) throw error;
          this.error(id, op, 'audit-failed', `the unlock could not be audited, so it is refused: ${describe(error)}`);
          return;
        }
        this.ok(id, op, { unlocked: true, 'unlock-ms': result.unlockMs, number: result.number });
        return;
      }
      case 'lock':
        this.unlock.lock();
        this.ok(id, op, { locked: true });
        return;
      case 'safe-mode': {
        const mode = f.mode;
        if (mode !== 'on' && mode !== 'off') {
          this.error(id, op, 'bad-args', `mode must be on or off, got ${JSON.stringify(mode)}`);
          return;
        }
        this.act(id, op, () => t.setSafeMode(mode === 'on'));
        return;
      }
      case 'confirm':
        this.act(id, op, () => t.confirm());
        return;
      case 'rollback':
        this.act(id, op, () => t.rollback());
        return;
      case 'reboot':
        this.act(id, op, () => t.reboot());
        return;
    }
  }

  /** A state-changing command: audited first (refused when that fails), then run. */
  private act(id: string, op: string, action: () => ConsoleActionResult): void {
    try {
      this.target.audit({ kind: 'console-command', op });
    } catch (error) {
      if (!(error instanceof StorageError)) throw error;
      this.error(id, op, 'audit-failed', `the command could not be audited, so it is refused: ${describe(error)}`);
      return;
    }
    const result = action();
    if (result.ok) this.ok(id, op, result.fields ?? {});
    else this.error(id, op, result.code, result.message);
  }

  /** A refusal the audit log keeps. */
  private refuse(id: string, op: string, reason: string, message: string): void {
    let audited = true;
    try {
      this.target.audit({ kind: 'console-refused', op, reason });
    } catch (error) {
      if (!(error instanceof StorageError)) throw error;
      audited = false;
    }
    this.send('err', { id, op, code: reason, audited, msg: message }, { id, op, code: reason, audited });
  }

  private items(id: string, op: string, list: readonly ConsoleFields[]): void {
    for (let i = 0; i < list.length; i++) this.send('item', merge({ id, op, i }, list[i]), { id, op, i, error: 'item too long for a frame' });
    this.ok(id, op, { count: list.length });
  }

  private ok(id: string, op: string, fields: ConsoleFields): void {
    this.send('ok', merge({ id, op }, fields), { id, op, error: 'reply too long for a frame' });
  }

  private error(id: string, op: string, code: string, message: string): void {
    this.send('err', { id, op, code, msg: message }, { id, op, code });
  }

  /** Write a frame; when it cannot be encoded, the fallback instead. */
  private send(kind: string, fields: ConsoleFields, fallback?: ConsoleFields): void {
    let bytes: Uint8Array;
    try {
      bytes = encodeConsoleFrame(kind, fields);
    } catch (error) {
      if (!(error instanceof ConsoleEncodeError) || fallback === undefined) throw error;
      this.encodeFailures++;
      bytes = encodeConsoleFrame(kind, fallback);
    }
    this.output.write(bytes);
  }
}

/** The reply's own fields first; a target field with the same key (or an invalid key) is left out. */
function merge(own: ConsoleFields, fields: ConsoleFields): ConsoleFields {
  const out: Record<string, string | number | boolean | null> = { ...own };
  for (const key of Object.keys(fields)) if (!Object.prototype.hasOwnProperty.call(own, key) && KEY.test(key)) out[key] = fields[key];
  return out;
}

function refusalText(reason: string): string {
  switch (reason) {
    case 'no-key':
      return 'no console key is provisioned: this device cannot be unlocked';
    case 'no-challenge':
      return 'no challenge is outstanding (each challenge answers once): ask for a new one';
    case 'wrong-challenge':
      return 'the response names another challenge than the outstanding one';
    case 'stale-challenge':
      return 'the challenge expired: ask for a new one';
    default:
      return 'the signature does not verify under the console key';
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

function hex(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16);
  return out;
}

function unhex(text: string): Uint8Array | undefined {
  if (text.length % 2 !== 0 || text.length > 256 || !/^[0-9a-f]*$/.test(text)) return undefined;
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}
