/**
 * What the Moddable target runs around the runtime (docs/PORTING.md,
 * docs/spec/console.md): the update settings of the board (its chip, its
 * task watchdog, and the trial's link health checks with deadlines derived
 * from that watchdog), the serial console on the console UART (a
 * ConsoleServer over `runtimeConsoleTarget`, with a bounded output queue
 * that writes as the UART reports room), and the one Timer that services
 * the runtime's scheduler. Pure over the HAL and the Timer module: the
 * tests drive it with the emulated modules (tools/xs/moddable-emu/).
 */
import type { ByteStream } from '../../hal/stream.ts';
import type { Log, LogLevel } from '../../hal/log.ts';
import type { Runtime, RuntimeConfig, RuntimeUpdateConfig } from '../../runtime/main.ts';
import { consoleDeviceId, startRuntimeConsole } from '../../runtime/console-target.ts';
import type { ConsoleServer } from '../../protocol/console/index.ts';
import { ESP_CHIPS, type EspChip } from '../../update/esp-app-image.ts';
import type { ModdableHal } from './hal.ts';
import type { TimerModule } from './modules.ts';

/** The board's facts the device needs (mc/config's `holdfast`, written by `holdfast build` from board.json). */
export interface DeviceBoard {
  readonly board: string;
  readonly chip: string;
  /** The task watchdog timeout built into the image (board.json `watchdogTimeoutMs`). */
  readonly watchdogTimeoutMs: number;
}

/** Trial deadlines in task-watchdog periods: "broker reached" within 12 (60 s on a 5 s watchdog), "first record acknowledged" within 24 (120 s). */
export const BROKER_REACHED_WATCHDOG_PERIODS = 12;
export const FIRST_RECEIPT_WATCHDOG_PERIODS = 24;

/** The trial's link health checks for a board whose task watchdog times out after `watchdogTimeoutMs`. */
export function linkCheckDeadlines(watchdogTimeoutMs: number): { readonly brokerReachedMs: number; readonly firstReceiptMs: number } {
  if (!Number.isInteger(watchdogTimeoutMs) || watchdogTimeoutMs <= 0) throw new RangeError(`watchdog timeout ${String(watchdogTimeoutMs)} ms: expected a positive integer`);
  return Object.freeze({ brokerReachedMs: watchdogTimeoutMs * BROKER_REACHED_WATCHDOG_PERIODS, firstReceiptMs: watchdogTimeoutMs * FIRST_RECEIPT_WATCHDOG_PERIODS });
}

function chipOf(name: string): EspChip {
  const chip = (ESP_CHIPS as Readonly<Record<string, EspChip | undefined>>)[name];
  if (chip === undefined) throw new RangeError(`unknown chip ${JSON.stringify(name)}: expected one of ${Object.keys(ESP_CHIPS).join(', ')}`);
  return chip;
}

/**
 * The provisioning's config with the board's update settings: without an
 * `update` section, one for the board (its id, chip and watchdog); either
 * way the link health checks on (`linkChecks`, deadlines from the watchdog)
 * unless the config sets its own.
 */
export function withBoardUpdate(config: RuntimeConfig, board: DeviceBoard | undefined): RuntimeConfig {
  const given = config.update;
  if (given === undefined && board === undefined) return config;
  const update: RuntimeUpdateConfig = given ?? { boardId: board?.board ?? '', chip: chipOf(board?.chip ?? ''), watchdogTimeoutMs: board?.watchdogTimeoutMs ?? 0 };
  const linkChecks = update.linkChecks ?? linkCheckDeadlines(board?.watchdogTimeoutMs ?? update.watchdogTimeoutMs);
  return { ...config, update: { ...update, linkChecks } };
}

/** Bytes waiting for the UART at most (two frames): a frame that does not fit is dropped and counted. */
export const CONSOLE_OUTPUT_QUEUE = 1024;

/**
 * The console's output over the UART's `ByteStream`: frames go into a
 * bounded queue and out as the UART reports room (`onWritable`), so a
 * frame longer than the UART's buffer still goes out whole, in order; a
 * frame that does not fit in the queue is dropped (counted), never
 * blocking and never growing.
 */
export class ConsoleUartOutput {
  private readonly queue = new Uint8Array(CONSOLE_OUTPUT_QUEUE);
  private length = 0;
  private room = 0;
  private stream: ByteStream | undefined;
  dropped = 0;
  written = 0;

  attach(stream: ByteStream): void {
    this.stream = stream;
    this.flush();
  }

  /** ConsoleOutput: one whole frame. */
  write(frame: Uint8Array): number {
    if (this.length + frame.length > this.queue.length) {
      this.dropped++;
      return 0;
    }
    this.queue.set(frame, this.length);
    this.length += frame.length;
    this.flush();
    return this.queue.length - this.length;
  }

  /** The UART's `onWritable(count)`: room for `count` bytes now. */
  onWritable(count: number): void {
    this.room = count;
    this.flush();
  }

  get queued(): number {
    return this.length;
  }

  private flush(): void {
    const stream = this.stream;
    if (stream === undefined) return;
    while (this.length > 0 && this.room > 0) {
      const n = Math.min(this.room, this.length);
      this.room = stream.write(this.queue.subarray(0, n));
      this.queue.copyWithin(0, n, this.length);
      this.length -= n;
      this.written += n;
    }
  }
}

export interface DeviceConsoleOptions {
  readonly deviceId: Uint8Array;
  /** The fleet's console public key (32 bytes); absent: every unlock is refused `no-key`. */
  readonly consoleKey?: Uint8Array;
  readonly logLevel?: LogLevel;
  /** Told after the console handled input (the driver services the runtime then). */
  readonly onInput?: () => void;
}

export interface DeviceConsole {
  readonly server: ConsoleServer;
  readonly output: ConsoleUartOutput;
  readonly stream: ByteStream;
}

/** Open the console UART (`hal.openConsole`) and serve the runtime's console on it. */
export function startDeviceConsole(hal: ModdableHal, runtime: Runtime, options: DeviceConsoleOptions): DeviceConsole {
  const output = new ConsoleUartOutput();
  let server: ConsoleServer | undefined;
  let stream: ByteStream | undefined;
  stream = hal.openConsole({
    onReadable: (count) => {
      if (server === undefined || stream === undefined) return;
      server.readFrom(stream, count);
      options.onInput?.();
    },
    onWritable: (count) => output.onWritable(count),
    onError: (reason) => hal.log.write('error', 'console', 'console UART failed', { reason }),
  });
  output.attach(stream);
  server = startRuntimeConsole(runtime, {
    output,
    crypto: hal.crypto,
    entropy: hal.entropy,
    clock: hal.clock,
    deviceId: consoleDeviceId(options.deviceId),
    consoleKey: options.consoleKey,
    ...(options.logLevel === undefined ? {} : { logLevel: options.logLevel }),
  });
  return Object.freeze({ server, output, stream });
}

/** A Log that writes to `first` and, once set, to the console too (the runtime starts before its console exists). */
export class TeeLog implements Log {
  console: Log | undefined;
  constructor(private readonly first: Log) {}
  write(level: LogLevel, area: string, message: string, fields?: Readonly<Record<string, string | number | boolean>>): void {
    this.first.write(level, area, message, fields);
    this.console?.write(level, area, message, fields);
  }
}

/** Longest wait between two services (stream callbacks between timer turns are seen within it). */
export const IDLE_SERVICE_MS = 100;

export interface RuntimeDriver {
  /** Service at the next turn of the event loop (after a stream callback). */
  kick(): void;
  stop(): void;
}

/** Service the runtime from one Timer: again when `nextDueMs` says, at most `idleMs` later. */
export function driveRuntime(runtime: Runtime, timer: TimerModule, ticks: () => number, idleMs: number = IDLE_SERVICE_MS): RuntimeDriver {
  let id: unknown;
  let stopped = false;
  const arm = (delay: number): void => {
    if (id !== undefined) timer.clear(id);
    id = stopped ? undefined : timer.set(turn, delay);
  };
  const turn = (): void => {
    id = undefined;
    runtime.service(ticks());
    const due = runtime.nextDueMs(ticks());
    arm(due === undefined ? idleMs : Math.min(due, idleMs));
  };
  arm(0);
  return Object.freeze({
    kick: () => arm(0),
    stop: () => {
      stopped = true;
      arm(0);
    },
  });
}
