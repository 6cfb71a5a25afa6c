/**
 * A simulated device with a serial console (docs/spec/console.md): the
 * firmware's ConsoleServer over a ConsoleTarget backed by real storage on
 * one simulated flash: the persistent Counter, the Outbox, the AuditLog and
 * the otadata + two app slots the simulated ESP-IDF bootloader boots from.
 * So `status`, `outbox`, `counter`, `slots` and `audit tail` answer with
 * what is really on the flash, and `confirm`, `rollback`, `safe-mode` and
 * `reboot` change it the way the runtime will (otadata.ts `markValid` /
 * `markInvalid`, an audit entry, a fresh boot).
 *
 * A reboot builds every RAM object again from the flash (the console locks,
 * the challenge is gone, the counter resumes above its bound), as on a
 * device. Safe mode is RAM state here: a reboot leaves it (the runtime's
 * persistent safe mode is the runtime issue's).
 *
 * `createConsoleDevice` is the device without a port (any output);
 * `serveConsoleDevice` attaches it to a serial device, one end of a real
 * pty pair in the tests (`socat -d -d pty,raw,echo=0 pty,raw,echo=0`) and
 * the fleet simulator's `--console-pty PATH`. Host tool (Node).
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { SerialPort } from 'serialport';
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import type { MonotonicClock } from '../../firmware/hal/clock.ts';
import type { Entropy } from '../../firmware/hal/entropy.ts';
import type { SlotIndex } from '../../firmware/hal/boot-control.ts';
import { ConsoleServer, type ConsoleActionResult, type ConsoleFields, type ConsoleTarget } from '../../firmware/protocol/console/index.ts';
import { ConsoleUnlock } from '../../firmware/security/console-unlock.ts';
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { Counter } from '../../firmware/storage/counter.ts';
import { Outbox } from '../../firmware/storage/outbox.ts';
import { AuditLog, type AuditEvent } from '../../firmware/storage/audit-log.ts';
import { markInvalid, markValid, OtadataError, readOtadata, stateOfSlot } from '../../firmware/update/otadata.ts';
import { SimFlash } from './flash/sim-flash.ts';
import { PartitionView } from './flash/partition-view.ts';
import { buildAppImage, provisionDevice, SimBootloader, type BootDecision } from './bootloader.ts';

const BLOCK = 4096;
const COUNTER_BLOCKS = 2;
const OUTBOX_BLOCKS = 8;
const AUDIT_BLOCKS = 4;
const OTADATA_BLOCKS = 2;
const SLOT_BLOCKS = 4;

export interface ConsoleDeviceOptions {
  /** 1..64 characters of [A-Za-z0-9._-]. Default `sim-0001`. */
  readonly deviceId?: string;
  /** The fleet's console public key (32 bytes); absent: no key provisioned, every unlock refused. */
  readonly consolePublicKey?: Uint8Array;
  /** Image version of the app provisioned into ota_0 (default 1). */
  readonly imageVersion?: number;
  /** Default: the host's monotonic clock (performance.now). */
  readonly clock?: MonotonicClock;
  /** Default: node:crypto random bytes. */
  readonly entropy?: Entropy;
  readonly challengeTtlMs?: number;
  readonly unlockMs?: number;
  /** Where frames go (the serial port's write). */
  readonly output: (bytes: Uint8Array) => void;
}

/** What one boot holds in RAM (rebuilt by every reboot). */
interface Boot {
  readonly number: number;
  readonly decision: BootDecision;
  readonly counter: Counter;
  readonly outbox: Outbox;
  readonly audit: AuditLog;
  readonly server: ConsoleServer;
  readonly startedMs: number;
  safeMode: boolean;
}

export class ConsoleDevice {
  readonly deviceId: string;
  /** The whole chip: counter, outbox, audit, otadata, ota_0, ota_1 (in that order). */
  readonly flash: SimFlash;
  readonly partitions: { readonly counter: FlashPartition; readonly outbox: FlashPartition; readonly audit: FlashPartition; readonly otadata: FlashPartition; readonly slots: readonly [FlashPartition, FlashPartition] };
  readonly bootloader: SimBootloader;
  /** Reboots so far (a fresh device boots once at creation). */
  boots = 0;
  private readonly options: ConsoleDeviceOptions;
  private readonly clock: MonotonicClock;
  private readonly entropy: Entropy;
  private readonly auditKey: Uint8Array;
  private readonly crypto = createNobleCrypto();
  private current: Boot | undefined;

  constructor(options: ConsoleDeviceOptions) {
    this.options = options;
    this.deviceId = options.deviceId ?? 'sim-0001';
    this.clock = options.clock ?? { ticks: () => Math.floor(performance.now()) % 0x1_0000_0000 };
    this.entropy = options.entropy ?? { fill: (target) => target.set(randomBytes(target.length)) };
    this.auditKey = new Uint8Array(randomBytes(32));
    const blocks = COUNTER_BLOCKS + OUTBOX_BLOCKS + AUDIT_BLOCKS + OTADATA_BLOCKS + 2 * SLOT_BLOCKS;
    this.flash = new SimFlash({ blocks, blockLength: BLOCK });
    let at = 0;
    const view = (n: number): PartitionView => {
      const v = new PartitionView(this.flash, at, n);
      at += n;
      return v;
    };
    this.partitions = { counter: view(COUNTER_BLOCKS), outbox: view(OUTBOX_BLOCKS), audit: view(AUDIT_BLOCKS), otadata: view(OTADATA_BLOCKS), slots: [view(SLOT_BLOCKS), view(SLOT_BLOCKS)] };
    const createSha256 = () => this.crypto.createSha256();
    this.bootloader = new SimBootloader({ otadata: this.partitions.otadata, slots: this.partitions.slots, createSha256 });
    // The factory: blank counter and audit formatted, the app in ota_0.
    Counter.format(this.partitions.counter);
    AuditLog.format(this.partitions.audit);
    Outbox.format(this.partitions.outbox);
    provisionDevice(this.bootloader, buildAppImage({ imageVersion: options.imageVersion ?? 1, secureVersion: 1 }, 2000, createSha256));
  }

  /** Boot (the first time, or again after `reboot`): the bootloader decides, storage is recovered, the console says hello. */
  boot(): void {
    const decision = this.bootloader.boot();
    const counter = Counter.open(this.partitions.counter);
    const outbox = Outbox.open(this.partitions.outbox);
    const audit = AuditLog.open(this.partitions.audit, { crypto: this.crypto, key: this.auditKey, counter });
    const unlock = new ConsoleUnlock({
      crypto: this.crypto,
      entropy: this.entropy,
      clock: this.clock,
      deviceId: this.deviceId,
      consoleKey: this.options.consolePublicKey,
      numbers: counter,
      challengeTtlMs: this.options.challengeTtlMs,
      unlockMs: this.options.unlockMs,
    });
    const server = new ConsoleServer({ output: { write: (bytes) => (this.options.output(bytes), 4096) }, target: this.target(), unlock, deviceId: this.deviceId });
    this.boots++;
    this.current = { number: this.boots, decision, counter, outbox, audit, server, startedMs: this.clock.ticks(), safeMode: false };
    server.start();
    server.write('info', 'boot', 'booted', { boot: this.boots, slot: decision.slot, state: decision.state ?? 'none', version: decision.header.imageVersion ?? -1 });
  }

  /** Bytes that arrived on the console UART. */
  receive(bytes: Uint8Array): void {
    this.live().server.receive(bytes);
  }

  /** The running boot's console (for logs from the simulation: `device.console.write(...)`). */
  get console(): ConsoleServer {
    return this.live().server;
  }

  /** Queue `count` telemetry records of `length` bytes in the outbox (each durable when this returns). */
  appendRecords(count: number, length = 16): number[] {
    const boot = this.live();
    const seqs: number[] = [];
    for (let i = 0; i < count; i++) {
      const payload = new Uint8Array(length);
      payload.fill((boot.outbox.stats().nextSeq + i) & 0xff);
      seqs.push(boot.outbox.append(payload));
    }
    return seqs;
  }

  /** Take `count` values of the counter. */
  takeCounter(count: number): number {
    let last = 0;
    for (let i = 0; i < count; i++) last = this.live().counter.next();
    return last;
  }

  /** Every entry of the audit log (oldest first), decoded. */
  auditEvents(): { counter: number; event: AuditEvent | undefined }[] {
    return this.live().audit.read().records.map((r) => ({ counter: r.counter, event: r.event }));
  }

  /** The server's counters (what it skipped, refused, answered). */
  serverStats(): ReturnType<ConsoleServer['stats']> {
    return this.live().server.stats();
  }

  private live(): Boot {
    if (this.current === undefined) throw new Error('the console device has not booted: call boot()');
    return this.current;
  }

  private target(): ConsoleTarget {
    const device = this;
    const boot = (): Boot => device.live();
    return {
      status(): ConsoleFields {
        const b = boot();
        return {
          boot: b.number,
          'uptime-ms': (device.clock.ticks() - b.startedMs + 0x1_0000_0000) % 0x1_0000_0000,
          slot: b.decision.slot,
          'ota-state': b.decision.state ?? 'none',
          version: b.decision.header.imageVersion ?? null,
          'secure-version': b.decision.header.secureVersion,
          'safe-mode': b.safeMode,
        };
      },
      outbox(): ConsoleFields {
        const s = boot().outbox.stats();
        return { queued: s.queued, 'next-seq': s.nextSeq, 'ack-seq': s.ackSeq, dropped: s.dropped, corrupt: s.corrupt, lost: s.lost, torn: s.torn, 'unpersisted-acks': s.unpersistedAcks, sectors: s.sectors, 'used-sectors': s.usedSectors };
      },
      counter(): ConsoleFields {
        const s = boot().counter.stats();
        return { current: s.current ?? null, 'reserved-up-to': s.reservedUpTo, reserve: s.reserve, remaining: s.remaining };
      },
      slots(): readonly ConsoleFields[] {
        const b = boot();
        let readings: ReturnType<typeof readOtadata> | undefined;
        try {
          readings = readOtadata(device.partitions.otadata);
        } catch (error) {
          if (!(error instanceof OtadataError)) throw error;
        }
        return ([0, 1] as const).map((slot) => {
          const check = device.bootloader.checkSlot(slot);
          const state = readings === undefined ? 'unreadable' : (stateOfSlot(readings, slot) ?? 'none');
          return { slot, running: slot === b.decision.slot, state, verifies: check.verifies, 'secure-version': check.secureVersion ?? null };
        });
      },
      auditTail(max: number): readonly ConsoleFields[] {
        const records = boot().audit.read().records;
        return records.slice(Math.max(0, records.length - max)).map((r) => ({ counter: r.counter, kind: r.event?.kind ?? `unknown-0x${r.kind.toString(16)}`, ...eventFields(r.event), ...(r.decodeError ? { error: r.decodeError } : {}) }));
      },
      confirm(): ConsoleActionResult {
        const b = boot();
        if (b.decision.state !== 'pending-verify') return { ok: false, code: 'not-in-trial', message: `the running slot ${b.decision.slot} is ${b.decision.state ?? 'not in otadata'}, not on trial: nothing to confirm` };
        const write = markValid(device.partitions.otadata);
        return { ok: true, fields: { slot: b.decision.slot, state: 'valid', written: write !== undefined } };
      },
      rollback(): ConsoleActionResult {
        const b = boot();
        try {
          markInvalid(device.partitions.otadata, (slot) => device.bootloader.checkSlot(slot as SlotIndex).verifies);
        } catch (error) {
          if (error instanceof OtadataError) return { ok: false, code: error.code, message: error.message };
          throw error;
        }
        device.scheduleReboot();
        return { ok: true, fields: { slot: b.decision.slot, state: 'invalid', rebooting: true } };
      },
      setSafeMode(on: boolean): ConsoleActionResult {
        const b = boot();
        if (b.safeMode === on) return { ok: true, fields: { 'safe-mode': on, changed: false } };
        b.audit.append(on ? { kind: 'safe-mode-entered', reason: 'console' } : { kind: 'safe-mode-left', reason: 'console' });
        b.safeMode = on;
        return { ok: true, fields: { 'safe-mode': on, changed: true } };
      },
      reboot(): ConsoleActionResult {
        device.scheduleReboot();
        return { ok: true, fields: { rebooting: true } };
      },
      audit(event: AuditEvent): void {
        boot().audit.append(event);
      },
    };
  }

  /** The restart happens after the reply is written (the next turn of the event loop). */
  private scheduleReboot(): void {
    setImmediate(() => this.boot());
  }
}

function eventFields(event: AuditEvent | undefined): ConsoleFields {
  if (event === undefined) return {};
  const out: Record<string, string | number | boolean | null> = {};
  for (const [key, value] of Object.entries(event)) {
    if (key === 'kind') continue;
    // `op` is the reply's own field: an event's op is written as `command`.
    const wire = key === 'op' ? 'command' : key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
    out[wire] = typeof value === 'number' || typeof value === 'string' || typeof value === 'boolean' || value === null ? value : String(value);
  }
  return out;
}

/** Create a console device (not yet booted; call `boot()`). */
export function createConsoleDevice(options: ConsoleDeviceOptions): ConsoleDevice {
  return new ConsoleDevice(options);
}

export interface ServedConsoleDevice {
  readonly device: ConsoleDevice;
  readonly path: string;
  /** Raw bytes on the line, outside any frame (boot ROM noise, a glitch): the host must skip and count them. */
  writeRaw(bytes: Uint8Array): Promise<void>;
  /** Why the port closed, once it has ('' while open). */
  readonly closedReason: () => string;
  close(): Promise<void>;
  /** Bytes on the line now, without waiting for them to drain. */
  write(bytes: Uint8Array): void;
  /** Exceptions the simulated firmware threw while handling console input (faults, not answers: docs/spec/console.md). */
  readonly faults: readonly string[];
}

/**
 * Boot a console device on the serial device `path` (one end of a pty pair,
 * or the fleet simulator's `--console-pty PATH`): bytes read from the port
 * go to its console, its frames are written back.
 */
export interface ServeOptions extends Omit<ConsoleDeviceOptions, 'output'> {
  /** Sees each chunk from the host before the device does (tests inject line noise or pull the cable here); `false` keeps it from the device. */
  readonly onReceive?: (bytes: Uint8Array, served: ServedConsoleDevice) => boolean | void;
}

export async function serveConsoleDevice(path: string, options: ServeOptions = {}): Promise<ServedConsoleDevice> {
  const port = new SerialPort({ path, baudRate: 115200, autoOpen: false, hupcl: false });
  await new Promise<void>((resolve, reject) => port.open((error) => (error ? reject(error) : resolve())));
  let closed = '';
  const write = (bytes: Uint8Array): void => {
    if (port.isOpen) port.write(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  };
  const device = new ConsoleDevice({ ...options, output: write });
  const faults: string[] = [];
  port.on('data', (chunk: Buffer) => {
    const bytes = new Uint8Array(chunk);
    if (options.onReceive?.(bytes, served) === false) return;
    if (!port.isOpen) return;
    try {
      device.receive(bytes);
    } catch (error) {
      // A fault in the simulated firmware (not an answer): kept for the simulation to report; the port stays up.
      faults.push(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
    }
  });
  port.on('close', (error: Error | null) => {
    closed = error?.message ?? 'closed';
  });
  port.on('error', (error: Error) => {
    closed = error.message;
  });
  // A hung-up pty reads end-of-file for ever inside serialport without an event (tools/console/client.ts): its node vanishing is the sign.
  const watch = setInterval(() => {
    if (existsSync(path)) return;
    clearInterval(watch);
    closed = `${path} is gone`;
    if (port.isOpen) port.close(() => {});
  }, 200);
  watch.unref();
  device.boot();
  const served: ServedConsoleDevice = {
    device,
    path,
    writeRaw: (bytes) =>
      new Promise<void>((resolve) => {
        write(bytes);
        port.drain(() => resolve());
      }),
    closedReason: () => closed,
    faults,
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(watch);
        if (!port.isOpen) return resolve();
        port.close(() => resolve());
      }),
    write,
  };
  return served;
}
