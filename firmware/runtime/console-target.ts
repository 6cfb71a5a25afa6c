/**
 * The serial console's view of the running runtime (docs/spec/console.md,
 * "Transport and the runtime's part"): `runtimeConsoleTarget(runtime)` is
 * the ConsoleTarget a ConsoleServer answers from.
 *
 * Getters read the runtime's real state (status, the outbox's and the
 * counter's figures, the two app slots, the audit log's tail) and change
 * nothing. Actions go through the runtime's own methods, which follow the
 * safe-mode state table (docs/spec/safe-mode.md) and audit their effect:
 * `confirm` commits a running trial whose checks all pass (the update
 * agent's commit), `rollback` falls back to the other slot by the agent's
 * rule and schedules the restart, `safe-mode on|off` enters or leaves safe
 * mode with cause `console` (persisted; a leave is refused while a cause
 * of this boot stands), `reboot` schedules a restart through the system
 * HAL. The server audits `console-command` before each action runs.
 *
 * A store the runtime could not open makes its getter throw StorageError
 * (the server answers `failed`), never an empty or zero reading.
 */
import { StorageError } from '../base/storage-error.ts';
import type { Crypto } from '../hal/crypto.ts';
import type { Entropy } from '../hal/entropy.ts';
import type { MonotonicClock } from '../hal/clock.ts';
import type { LogLevel } from '../hal/log.ts';
import type { AuditEvent } from '../storage/audit-log.ts';
import { ConsoleUnlock } from '../security/console-unlock.ts';
import { ConsoleServer, type ConsoleActionResult, type ConsoleFields, type ConsoleOutput, type ConsoleTarget } from '../protocol/console/index.ts';
import { storageCode, type Runtime, type RuntimeActionResult } from './main.ts';

/** The StorageError for a store the runtime does not have: the boot failure's cause when it is a storage code. */
function unavailable(runtime: Runtime, failure: string, what: string): StorageError {
  const f = runtime.status().failures.find((x) => x.code === failure);
  return new StorageError(storageCode(f?.cause), `${what} unavailable${f === undefined ? '' : ` (${f.code}: ${f.message})`}`);
}

function action(result: RuntimeActionResult): ConsoleActionResult {
  return result.ok ? { ok: true, fields: result.fields } : { ok: false, code: result.code, message: result.message };
}

/** An audit event's fields on the console: camelCase keys as kebab-case, the event's `op` as `command` (the reply's own field). */
export function auditEventFields(event: AuditEvent | undefined): ConsoleFields {
  if (event === undefined) return {};
  const out: Record<string, string | number | boolean | null> = {};
  const source = event as unknown as Readonly<Record<string, unknown>>;
  for (const key of Object.keys(source)) {
    if (key === 'kind') continue;
    const value = source[key];
    let wire = '';
    if (key === 'op') wire = 'command';
    else for (let i = 0; i < key.length; i++) {
      const c = key.charAt(i);
      wire += c >= 'A' && c <= 'Z' ? `-${c.toLowerCase()}` : c;
    }
    out[wire] = typeof value === 'number' || typeof value === 'string' || typeof value === 'boolean' || value === null ? value : String(value);
  }
  return out;
}

export function runtimeConsoleTarget(runtime: Runtime): ConsoleTarget {
  return Object.freeze<ConsoleTarget>({
    status(): ConsoleFields {
      const s = runtime.status();
      const running = s.runningSlot;
      const otaState = running === null ? null : (s.slotStates[running] ?? 'none');
      return {
        version: s.imageVersion,
        slot: running,
        'ota-state': otaState,
        trial: s.trial,
        'safe-mode': s.mode === 'safe',
        'safe-cause': s.safeMode.cause,
        'uptime-ms': s.uptimeMs,
        'reset-reason': s.resetReason,
        failures: s.failures.length === 0 ? null : s.failures.map((f) => f.code).join(','),
        'security-floor': s.securityFloor,
        link: s.linkConnected,
        replays: s.replayRejections,
        forgeries: s.forgeryRejections,
        'clock-jumps': s.clockJumps,
        'audit-lost': s.auditLost,
        'inbox-dropped': s.inboxDropped,
        restart: runtime.restartPending() ?? null,
      };
    },
    outbox(): ConsoleFields {
      const s = runtime.outboxStats();
      if (s === undefined) throw unavailable(runtime, 'outbox-unreadable', 'the outbox');
      return { queued: s.queued, 'next-seq': s.nextSeq, 'ack-seq': s.ackSeq, dropped: s.dropped, corrupt: s.corrupt, lost: s.lost, torn: s.torn, 'unpersisted-acks': s.unpersistedAcks, sectors: s.sectors, 'used-sectors': s.usedSectors, 'damaged-sectors': s.damagedSectors };
    },
    counter(): ConsoleFields {
      const s = runtime.counterStats();
      if (s === undefined) throw unavailable(runtime, 'counter-unreadable', 'the counter');
      return { current: s.current ?? null, 'reserved-up-to': s.reservedUpTo, reserve: s.reserve, remaining: s.remaining };
    },
    slots(): readonly ConsoleFields[] {
      return runtime.slots().map((v) => ({ slot: v.slot, running: v.running, state: v.state, verifies: v.verifies, 'secure-version': v.secureVersion, version: v.imageVersion }));
    },
    auditTail(max: number): readonly ConsoleFields[] {
      if (runtime.auditStats() === undefined) throw unavailable(runtime, 'audit-unreadable', 'the audit log');
      return runtime.auditTail(max).map((r) => ({ counter: r.counter, kind: r.event?.kind ?? `unknown-0x${r.kind.toString(16)}`, ...auditEventFields(r.event), ...(r.decodeError === undefined ? {} : { error: r.decodeError }) }));
    },
    confirm: () => action(runtime.confirmTrial()),
    rollback: () => action(runtime.rollBack('console')),
    setSafeMode: (on: boolean) => action(runtime.setSafeMode(on, 'console')),
    reboot(): ConsoleActionResult {
      runtime.requestRestart('console reboot');
      return { ok: true, fields: { rebooting: true } };
    },
    audit(event: AuditEvent): void {
      runtime.appendAudit(event);
    },
  });
}

/** The console's device id for an 8-byte runtime device id: its 16 lower-case hex digits. */
export function consoleDeviceId(deviceId: Uint8Array): string {
  let out = '';
  for (let i = 0; i < deviceId.length; i++) out += (deviceId[i] < 16 ? '0' : '') + deviceId[i].toString(16);
  return out;
}

export interface RuntimeConsoleOptions {
  /** Where frames go: the console UART (a ByteStream's write fits). */
  readonly output: ConsoleOutput;
  readonly crypto: Crypto;
  readonly entropy: Entropy;
  readonly clock: MonotonicClock;
  /** The id the console shows and challenges carry ([A-Za-z0-9._-], 1..64; `consoleDeviceId(config.deviceId)`). */
  readonly deviceId: string;
  /** The fleet's console public key (32 bytes); absent: every unlock is refused `no-key`. */
  readonly consoleKey: Uint8Array | undefined;
  readonly challengeTtlMs?: number;
  readonly unlockMs?: number;
  readonly logLevel?: LogLevel;
}

/**
 * The console of one boot (docs/spec/console.md): a ConsoleUnlock whose
 * challenge numbers are the runtime's persistent counter, a ConsoleServer
 * over `runtimeConsoleTarget(runtime)`, started (its `hello` written).
 * Feed it the UART's bytes (`receive`, or `readFrom(stream, n)` from
 * `onReadable`); it is a HAL Log too.
 */
export function startRuntimeConsole(runtime: Runtime, options: RuntimeConsoleOptions): ConsoleServer {
  const unlock = new ConsoleUnlock({
    crypto: options.crypto,
    entropy: options.entropy,
    clock: options.clock,
    deviceId: options.deviceId,
    consoleKey: options.consoleKey,
    numbers: runtime.counterValues(),
    ...(options.challengeTtlMs === undefined ? {} : { challengeTtlMs: options.challengeTtlMs }),
    ...(options.unlockMs === undefined ? {} : { unlockMs: options.unlockMs }),
  });
  const server = new ConsoleServer({ output: options.output, target: runtimeConsoleTarget(runtime), unlock, deviceId: options.deviceId, ...(options.logLevel === undefined ? {} : { logLevel: options.logLevel }) });
  server.start();
  return server;
}
