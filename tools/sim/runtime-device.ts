/**
 * A simulated device running the firmware runtime (`startRuntime`,
 * firmware/runtime/main.ts), engine-neutral (no Node APIs): the Node engine
 * of the fleet uses it directly, the XS engine inside an xsnap worker
 * (xs-runtime-device.ts). One flash carries every partition the runtime
 * opens (PARTITION_LABELS) plus otadata and two app slots; each boot goes
 * through the simulated ESP-IDF bootloader (bootloader.ts), which picks the
 * slot; the device has its own virtual clock and watchdog (clock.ts,
 * watchdog.ts), moved only by `setTime` (the fleet's simulated time).
 *
 * A simulated image says how it behaves in its esp_app_desc_t project name
 * (docs/design/fleet-sim.md, "Images"): `holdfast-sim-hang` stops feeding
 * the watchdog once booted (the CPU never returns to the scheduler),
 * `holdfast-sim-bad` fails its self-test in the trial boot; anything else
 * behaves. A reset (watchdog, the runtime's own restart, a power cut) makes
 * the device dark until the host boots it again (`pendingReset` says why).
 */
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import type { Crypto } from '../../firmware/hal/crypto.ts';
import type { Entropy } from '../../firmware/hal/entropy.ts';
import type { ByteStream, ByteStreamCallbacks, StreamConnector } from '../../firmware/hal/stream.ts';
import type { ResetReason } from '../../firmware/hal/system.ts';
import type { SlotIndex } from '../../firmware/hal/boot-control.ts';
import { PARTITION_LABELS, type PartitionKey } from '../../firmware/runtime/boot.ts';
import { startRuntime, type Runtime } from '../../firmware/runtime/main.ts';
import { consoleDeviceId, startRuntimeConsole } from '../../firmware/runtime/console-target.ts';
import type { ConsoleServer } from '../../firmware/protocol/console/index.ts';
import { runtimeStarted, selfTest } from '../../firmware/update/health.ts';
import { ESP_CHIPS } from '../../firmware/update/esp-app-image.ts';
import { commandKeyId } from '../../firmware/security/envelope-command.ts';
import { isCommandKeyRevoked, type RevocationList } from '../../firmware/security/revocation.ts';
import { PartitionView } from './flash/partition-view.ts';
import { isPowerCut } from './flash/errors.ts';
import { SimBootloader } from './bootloader.ts';
import { VirtualClock } from './clock.ts';
import { SimWatchdog, DeviceReset } from './watchdog.ts';
import { simulatedLinkSettings, type SimulatedDeviceLink } from './telemetry-link-settings.ts';
import { hexBytes } from './hex.ts';

export const RUNTIME_BLOCK = 4096;

/** Project names that declare a simulated image's behaviour (anything else behaves). */
export const IMAGE_BEHAVIOURS = Object.freeze({ hang: 'holdfast-sim-hang', failChecks: 'holdfast-sim-bad', failChecksRevB: 'holdfast-sim-bad-rev-b' });
/** `fail-checks-rev-b`: fails its self-test only on boards of hardware revision `rev-b` (a rollout's bad image: docs/design/fleet-sim.md). */
export type ImageBehaviour = 'good' | 'hang' | 'fail-checks' | 'fail-checks-rev-b';

export function behaviourOf(projectName: string): ImageBehaviour {
  if (projectName === IMAGE_BEHAVIOURS.hang) return 'hang';
  if (projectName === IMAGE_BEHAVIOURS.failChecks) return 'fail-checks';
  if (projectName === IMAGE_BEHAVIOURS.failChecksRevB) return 'fail-checks-rev-b';
  return 'good';
}

/** Blocks per partition, in flash order; slots and the progress log are sized by the run (the largest image). */
export interface RuntimeLayout {
  readonly slotBlocks: number;
  readonly outboxBlocks: number;
}

const STORE_BLOCKS: readonly (readonly [PartitionKey, number])[] = [
  ['counter', 2],
  ['replay', 2],
  ['journal', 2],
  ['floor', 2],
  ['safeMode', 2],
  ['trust', 2],
  ['audit', 4],
  // Two slots, each room for the largest list (spec/revocation.md, "The store").
  ['revocation', 4],
];

/** Every partition by key: [first block, blocks]. */
export function layoutOf(l: RuntimeLayout): Record<PartitionKey, readonly [number, number]> {
  const out: Partial<Record<PartitionKey, readonly [number, number]>> = {};
  let first = 0;
  const add = (key: PartitionKey, blocks: number): void => {
    out[key] = [first, blocks];
    first += blocks;
  };
  for (const [key, blocks] of STORE_BLOCKS) add(key, blocks);
  add('outbox', l.outboxBlocks);
  add('progress', Math.max(2, Math.ceil(l.slotBlocks / 8) * 2));
  add('otadata', 2);
  add('ota0', l.slotBlocks);
  add('ota1', l.slotBlocks);
  // A store the runtime gained since this layout was written: two blank blocks (the factory in fleet-firmware.ts formats only the stores it knows).
  for (const key of Object.keys(PARTITION_LABELS) as PartitionKey[]) if (out[key] === undefined) add(key, 2);
  return out as Record<PartitionKey, readonly [number, number]>;
}

export function layoutBlocks(l: RuntimeLayout): number {
  let n = 0;
  for (const [, [, blocks]] of Object.entries(layoutOf(l))) n += blocks;
  return n;
}

/** Partition table: key → [first block, blocks]. */
export type PartitionTable = Readonly<Record<PartitionKey, readonly [number, number]>>;

/** Views of `flash` by partition key, from a layout or from a table the host computed (the XS guest gets the host's, so both always agree). */
export function partitionsOf(flash: FlashPartition, l: RuntimeLayout | PartitionTable): Record<PartitionKey, FlashPartition> {
  const table: PartitionTable = 'slotBlocks' in l ? layoutOf(l as RuntimeLayout) : (l as PartitionTable);
  const out: Partial<Record<PartitionKey, FlashPartition>> = {};
  for (const [key, [first, blocks]] of Object.entries(table) as [PartitionKey, readonly [number, number]][]) out[key] = new PartitionView(flash, first, blocks);
  return out as Record<PartitionKey, FlashPartition>;
}

/** What a boot needs (JSON-safe: it crosses into XS as is). */
export interface RuntimeDeviceInit extends SimulatedDeviceLink {
  readonly receiptTimeoutMs: number;
  readonly commandPublicKeyHex: string;
  /** The fleet's revocation-list key (absent: the runtime holds no list and subscribes to none). */
  readonly revocationPublicKeyHex?: string;
  readonly boardId: string;
  /** The partition table (layoutOf on the host: the guest never computes its own). */
  readonly table: PartitionTable;
  readonly watchdogTimeoutMs: number;
  readonly brokerReachedMs: number;
  readonly firstReceiptMs: number;
  readonly healthPeriodMs: number;
  readonly auditPublishPeriodMs: number;
  readonly requestRetryMs: number;
  readonly counterReserve: number;
  /** The MQTT session's response timeout and keep-alive scale with device time (fleet: its timeScale; 1 elsewhere). */
  readonly sessionTimeScale: number;
  /** The board's hardware revision (a fleet label: an image declared `fail-checks-rev-b` fails on `rev-b`). */
  readonly hardwareRevision?: string;
}

/** A trial that ended, with its cause (the simulator's view, across boots). */
export interface UpdateEvent {
  readonly kind: 'committed' | 'rolled-back';
  /** Device ms (the device's own clock). */
  readonly t: number;
  readonly imageVersion: number | undefined;
  readonly cause: string;
}

export type RuntimeAppendReply = { readonly ok: true; readonly counter: number } | { readonly ok: false; readonly why: 'dark' | 'cut' | 'full' | 'refused' };

export interface RuntimeDeviceStatus {
  readonly alive: boolean;
  readonly unreceipted: number | undefined;
  readonly awaitingReceipt: boolean | undefined;
  /** A download is under way (a block asked for, or a cut one waiting for its manifest). */
  readonly downloading: boolean;
  /** Manifest messages the update path took in this boot. */
  readonly manifests: number;
  readonly imageVersion: number | undefined;
  readonly trial: string;
  readonly safeMode: boolean;
  /** The safe-mode cause the runtime holds ('none' while it never left normal mode). */
  readonly safeModeCause: string;
  /** The revocation list the runtime holds (undefined: no revocation key, or the store did not open). */
  readonly revocation: { readonly number: number; readonly commandKeyRevoked: boolean; readonly deviceRevoked: boolean; readonly sinceMs: number | undefined } | undefined;
  readonly clockJumps: number;
  readonly boots: number;
  readonly powerCuts: number;
  /** Why the device is dark waiting for the host to boot it (a reset), if it is. */
  readonly pendingReset: ResetReason | undefined;
  /** A boot failed for good (no bootable slot, a bug): the device is bricked. */
  readonly bricked: string | undefined;
  readonly events: readonly UpdateEvent[];
  /** Boot failures the runtime named in its last boot (codes). */
  readonly failures: readonly string[];
  /** Bytes the link read and wrote in this boot: the runner sees the network move (docs/design/fleet-sim.md, "Time"). */
  readonly io: number;
  /** Device ms until the runtime has timed work (a reconnect backoff, a receipt timeout, a response deadline, a period); undefined when none. */
  readonly nextDueMs: number | undefined;
}

function linkOf(init: RuntimeDeviceInit) {
  const settings = simulatedLinkSettings({ deviceHex: init.deviceIdHex, protocolVersion: init.protocolVersion, password: ascii(init.password), receiptTimeoutMs: init.receiptTimeoutMs });
  const k = init.sessionTimeScale;
  return {
    host: init.host,
    port: init.port,
    ...settings,
    session: { ...settings.session, responseTimeoutMs: settings.session.responseTimeoutMs * k, keepAliveSec: Math.min(0xffff, settings.session.keepAliveSec * k) },
  };
}

function ascii(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0x7f;
  return out;
}

function isReset(error: unknown): error is DeviceReset {
  return error instanceof Error && error.name === 'DeviceReset';
}

/** The link's receipt gate, which the runtime does not expose (see the report: a wanted runtime accessor). */
function awaitingReceiptOf(runtime: Runtime): boolean | undefined {
  const link = (runtime as unknown as { link?: { gate?: { oldest(): unknown } } }).link;
  if (link?.gate === undefined) return undefined;
  return link.gate.oldest() !== undefined;
}

/** Bytes the link's client read and wrote (its counters, read without copying its stats: this runs on every poll). */
function linkBytesOf(runtime: Runtime): number | undefined {
  const counters = (runtime as unknown as { link?: { client?: { counters?: { bytesRead: number; bytesWritten: number } } } }).link?.client?.counters;
  return counters === undefined ? undefined : counters.bytesRead + counters.bytesWritten;
}

export class SimRuntimeDevice {
  readonly clock = new VirtualClock(0);
  private readonly watchdog = new SimWatchdog(this.clock);
  private runtime: Runtime | undefined;
  private hung = false;
  private boots = 0;
  private powerCuts = 0;
  private streams: ByteStream[] = [];
  private pendingReset: ResetReason | undefined;
  private bricked: string | undefined;
  private readonly events: UpdateEvent[] = [];
  /** The boot before this one was a trial of this version on this slot (undefined: not a trial, or it ended). */
  private trial: { slot: SlotIndex; version: number | undefined } | undefined;
  private trialEnd = '';
  private committedThisBoot = false;
  /** The image this device last committed (slot, version), until it leaves it. */
  private committed: { slot: number; version: number | undefined } | undefined;
  private failures: string[] = [];
  /** The newest revocation list number the runtime was seen holding, and when (device ms). */
  private listSeen: { number: number; atMs: number } | undefined;
  /** The serial console (docs/spec/console.md), when the host attached one: a ConsoleServer per boot over the running runtime. */
  private console: { output: (bytes: Uint8Array) => void; key: Uint8Array | undefined; server: ConsoleServer | undefined } | undefined;

  constructor(
    private readonly flash: FlashPartition,
    private readonly connector: StreamConnector,
    private readonly entropy: Entropy,
    private readonly crypto: Crypto,
    private readonly init: RuntimeDeviceInit,
  ) {}

  get alive(): boolean {
    return this.runtime !== undefined;
  }

  /** The CPU stops: streams drop without a word, RAM is gone. */
  private die(reason: ResetReason | undefined, why: string): void {
    this.runtime = undefined;
    if (this.console !== undefined) this.console.server = undefined;
    this.hung = false;
    this.watchdog.disarm();
    for (const s of this.streams) s.close();
    this.streams = [];
    if (this.trial !== undefined && this.trialEnd === '') this.trialEnd = why;
    this.pendingReset = reason;
  }

  /** Run firmware code: a power cut makes the device dark, a reset (watchdog, restart) too, with its reason kept for the next boot. */
  private run(work: () => void): 'ok' | 'cut' | 'reset' {
    try {
      work();
      return 'ok';
    } catch (error) {
      if (isPowerCut(error)) {
        this.powerCuts++;
        this.die(undefined, 'power cut');
        return 'cut';
      }
      if (isReset(error)) {
        this.die(error.reason, error.reason === 'watchdog' ? 'watchdog reset (the image stopped feeding it)' : error.message.replace(/^device reset \(software\): /, ''));
        return 'reset';
      }
      throw error;
    }
  }

  /** Power on (or come out of a reset): bootloader, then the runtime over the slot it picked. */
  boot(nowMs: number): void {
    if (this.bricked !== undefined) return;
    if (this.runtime !== undefined) this.die(undefined, 'power cycled');
    this.moveClock(nowMs);
    const resetReason: ResetReason = this.pendingReset ?? 'power-on';
    this.pendingReset = undefined;
    this.boots++;
    const boot = this.boots;
    const init = this.init;
    const parts = partitionsOf(this.flash, init.table);
    let decision;
    try {
      decision = new SimBootloader({ otadata: parts.otadata, slots: [parts.ota0, parts.ota1], createSha256: () => this.crypto.createSha256(), chip: ESP_CHIPS.esp32 }).boot();
    } catch (error) {
      if (isPowerCut(error)) {
        this.powerCuts++;
        return;
      }
      this.bricked = error instanceof Error ? error.message : String(error);
      return;
    }
    const version = decision.header.imageVersion;
    // The previous boot's trial: it ended without a commit if this boot runs the other slot.
    if (this.trial !== undefined) {
      if (decision.slot !== this.trial.slot) this.events.push({ kind: 'rolled-back', t: this.clock.elapsed, imageVersion: this.trial.version, cause: this.trialEnd || 'reset during the trial' });
      else if (decision.state !== 'pending-verify') this.trial = undefined;
    }
    const onTrial = decision.state === 'pending-verify';
    // A committed image left for the other slot without a trial: a commanded roll-back (roll-back-update).
    if (this.committed !== undefined && decision.slot !== this.committed.slot) {
      if (!onTrial) this.events.push({ kind: 'rolled-back', t: this.clock.elapsed, imageVersion: this.committed.version, cause: 'commanded roll-back' });
      this.committed = undefined;
    }
    if (onTrial) {
      if (this.trial === undefined || this.trial.slot !== decision.slot) this.trialEnd = '';
      this.trial = { slot: decision.slot, version };
    } else this.trial = undefined;
    this.committedThisBoot = false;
    const behaviour = behaviourOf(decision.header.desc.projectName);
    const live = (): boolean => this.runtime !== undefined && this.boots === boot && !this.hung;
    const guarded: StreamConnector = {
      connect: (host: string, port: number, callbacks: ByteStreamCallbacks): ByteStream => {
        const stream = this.connector.connect(host, port, {
          onReadable: (n) => {
            if (live()) this.run(() => callbacks.onReadable(n));
          },
          onWritable: (n) => {
            if (live()) this.run(() => callbacks.onWritable(n));
          },
          onError: (reason) => {
            if (live()) this.run(() => callbacks.onError(reason));
          },
        });
        this.streams.push(stream);
        return stream;
      },
    };
    const byLabel = new Map<string, FlashPartition>();
    for (const [key, part] of Object.entries(parts) as [PartitionKey, FlashPartition][]) byLabel.set(PARTITION_LABELS[key], part);
    const commandPublicKey = hexBytes(init.commandPublicKeyHex);
    const deviceId = hexBytes(init.deviceIdHex);
    this.run(() => {
      const runtime = startRuntime(
        {
          system: {
            lastResetReason: () => resetReason,
            restart: (why: string): never => {
              throw new DeviceReset('software', why);
            },
          },
          log: { write: () => undefined },
          clock: this.clock,
          entropy: this.entropy,
          watchdog: this.watchdog,
          crypto: this.crypto,
          connector: guarded,
          actuator: { apply: () => undefined },
          bootControl: {
            runningSlot: () => decision.slot,
            runningState: () => (decision.state === undefined || decision.state === 'unrecognized' ? 'undefined' : decision.state),
            requestTrial: () => undefined,
            confirmRunning: () => undefined,
            rejectRunning: () => undefined,
          },
          partition: (label) => byLabel.get(label),
        },
        {
          deviceId,
          deviceSecret: hexBytes(init.secretHex),
          keyId: init.keyId,
          commandKey: { keyId: commandKeyId(this.crypto, commandPublicKey), publicKey: commandPublicKey },
          ...(init.revocationPublicKeyHex !== undefined ? { revocationKey: hexBytes(init.revocationPublicKeyHex) } : {}),
          link: linkOf(init),
          counterReserve: init.counterReserve,
          outbox: { policy: 'reject' },
          healthPeriodMs: init.healthPeriodMs,
          auditPublishPeriodMs: init.auditPublishPeriodMs,
          update: {
            boardId: init.boardId,
            chip: ESP_CHIPS.esp32,
            watchdogTimeoutMs: init.watchdogTimeoutMs,
            stepMs: init.watchdogTimeoutMs / 4,
            ...(behaviour === 'fail-checks' || (behaviour === 'fail-checks-rev-b' && init.hardwareRevision === 'rev-b') ? { checks: [runtimeStarted(), selfTest(() => false)] } : {}),
            linkChecks: { brokerReachedMs: init.brokerReachedMs, firstReceiptMs: init.firstReceiptMs },
            requestRetryMs: init.requestRetryMs,
          },
        },
      );
      this.runtime = runtime;
      this.failures = runtime.status().failures.map((f) => f.code);
      const c = this.console;
      if (c !== undefined) {
        const output = c.output;
        c.server = startRuntimeConsole(runtime, { output: { write: (bytes: Uint8Array): number => (output(bytes), bytes.length) }, crypto: this.crypto, entropy: this.entropy, clock: this.clock, deviceId: consoleDeviceId(deviceId), consoleKey: c.key });
      }
      this.seen = undefined;
      // A hanging image: the CPU never comes back to the scheduler; the watchdog armed by the trial resets it.
      if (behaviour === 'hang') this.hung = true;
      else runtime.service(this.clock.ticks());
    });
    this.noteTrial();
  }

  /** The runtime's status as of the last simulated second (reading it reads otadata: not on every poll). */
  private seen: { imageVersion: number | undefined; trial: string; safeMode: boolean; safeModeCause: string; clockJumps: number } | undefined;

  /**
   * The list the runtime holds, read on every status (cheap: the store's RAM copy; the list arrives from the network
   * at any poll), and when the host first saw each number (device ms, across boots): how long revocation took.
   */
  private revocationOf(runtime: Runtime): RuntimeDeviceStatus['revocation'] {
    const r = runtime as unknown as { revocations?: { holding(): { number: number; list: RevocationList | undefined } }; deviceRevoked?: boolean; config?: { commandKey?: { keyId: number } } };
    const held = r.revocations?.holding();
    if (held === undefined) return undefined;
    if (held.number > (this.listSeen?.number ?? 0)) this.listSeen = { number: held.number, atMs: this.clock.elapsed };
    const keyId = r.config?.commandKey?.keyId;
    return {
      number: held.number,
      commandKeyRevoked: held.list !== undefined && keyId !== undefined && isCommandKeyRevoked(held.list, keyId),
      deviceRevoked: r.deviceRevoked === true,
      sinceMs: this.listSeen?.number === held.number ? this.listSeen.atMs : undefined,
    };
  }

  private noteTrial(): void {
    const runtime = this.runtime;
    if (runtime === undefined) return;
    const st = runtime.status();
    this.seen = { imageVersion: st.imageVersion ?? undefined, trial: st.trial, safeMode: st.mode === 'safe', safeModeCause: st.safeMode.cause, clockJumps: st.clockJumps };
    if (this.trial === undefined || this.committedThisBoot) return;
    if (st.trial === 'committed') {
      this.committedThisBoot = true;
      this.committed = { slot: this.trial.slot, version: this.trial.version };
      this.events.push({ kind: 'committed', t: this.clock.elapsed, imageVersion: this.trial.version, cause: 'every health check passed' });
      this.trial = undefined;
    }
  }

  private moveClock(nowMs: number): 'ok' | 'cut' | 'reset' {
    const by = nowMs - this.clock.elapsed;
    if (by <= 0) return 'ok';
    return this.run(() => this.clock.advance(by));
  }

  /** Simulated time moves to `nowMs`: timers (the watchdog) fire, then the runtime does what is due. */
  setTime(nowMs: number): void {
    if (this.moveClock(nowMs) !== 'ok') return;
    const runtime = this.runtime;
    if (runtime === undefined || this.hung) return;
    this.run(() => runtime.service(this.clock.ticks()));
    this.noteTrial();
  }

  /** Let the runtime do what is due at the current time (after network events). */
  service(): void {
    const runtime = this.runtime;
    if (runtime === undefined || this.hung) return;
    this.run(() => runtime.service(this.clock.ticks()));
  }

  append(payload: Uint8Array): RuntimeAppendReply {
    const runtime = this.runtime;
    if (runtime === undefined || this.hung) return { ok: false, why: 'dark' };
    let reply: RuntimeAppendReply = { ok: false, why: 'dark' };
    const outcome = this.run(() => {
      const r = runtime.append(payload);
      reply = r.accepted ? { ok: true, counter: r.counter } : { ok: false, why: r.reason === 'full' ? 'full' : 'refused' };
    });
    if (outcome === 'cut') return { ok: false, why: 'cut' };
    if (outcome === 'reset') return reply;
    this.service();
    return reply;
  }

  /** A time carried by a signed message (wall-clock ms): the runtime compares and audits it. */
  noteSignedTime(wallMs: number): void {
    const runtime = this.runtime;
    if (runtime === undefined || this.hung) return;
    this.run(() => runtime.noteSignedTime(wallMs, this.clock.ticks()));
  }

  /** Power off now (between flash operations). */
  powerOff(): void {
    if (this.runtime !== undefined) {
      this.powerCuts++;
      this.die(undefined, 'power cut');
    } else this.pendingReset = undefined;
  }

  stop(): void {
    this.die(undefined, 'stopped');
  }

  /** Attach a serial console: every boot from now on serves one on `output` (the fleet's console key: absent, every unlock is refused). */
  attachConsole(output: (bytes: Uint8Array) => void, consoleKey?: Uint8Array): void {
    this.console = { output, key: consoleKey, server: undefined };
  }

  /** Bytes from the console's UART (a hung or dark device reads nothing; an action may reset it). */
  consoleReceive(bytes: Uint8Array): void {
    const server = this.console?.server;
    if (server === undefined || this.runtime === undefined || this.hung) return;
    this.run(() => server.receive(bytes));
  }

  /** What the link is doing (a stuck quiescence says it). */
  debug(): Record<string, unknown> {
    const runtime = this.runtime;
    if (runtime === undefined) return { alive: false };
    const link = (runtime as unknown as { link?: { gate?: { oldest(): unknown } } }).link;
    const stats = runtime.linkStats();
    const g = link?.gate as unknown as Record<string, unknown> | undefined;
    const best = g?.best as { highest?: number } | undefined;
    const la = g?.lookahead as { seq?: number } | undefined;
    const client = (link as unknown as { client?: Record<string, unknown> } | undefined)?.client;
    const session = client?.session as Record<string, unknown> | undefined;
    const entries = (session?.entries as { seq: number; state: string; packetId: number }[] | undefined)?.map((e) => `${e.seq}:${e.state}:${e.packetId}`);
    const internals = { head: g?.head, held: g?.held, sendSeq: g?.sendSeq, highWater: g?.highWater, cursorOk: g?.cursorOk, lookahead: la?.seq, best: best?.highest, floor: g?.floor, waitingSince: g?.waitingSince, phase: client?.current, sessionState: session?.current, nextSeq: session?.nextSeq, quota: session?.quota, halted: session?.halted, entries, outbox: (runtime as unknown as { outbox?: { stats(): unknown } }).outbox?.stats() };
    return { clock: this.clock.elapsed, hung: this.hung, oldest: link?.gate?.oldest(), gate: stats?.gate, connects: stats?.client.connects, connacks: stats?.client.connacks, session: stats?.client.session, unreceipted: stats?.unreceipted, next: runtime.nextDueMs(this.clock.ticks()), internals };
  }

  status(): RuntimeDeviceStatus {
    const runtime = this.runtime;
    if (runtime !== undefined && this.seen === undefined) this.noteTrial();
    const s = runtime === undefined ? undefined : this.seen;
    const u = runtime?.updateStats();
    const client = runtime === undefined ? undefined : linkBytesOf(runtime);
    return {
      alive: runtime !== undefined,
      unreceipted: runtime?.outboxStats()?.queued,
      awaitingReceipt: runtime === undefined ? undefined : this.hung ? false : awaitingReceiptOf(runtime),
      downloading: u !== undefined && (u.wanted !== undefined || u.resumeTag !== undefined),
      manifests: (u?.manifests ?? 0) + (u?.ignored ?? 0) + (u?.refused ?? 0) + (u?.malformed ?? 0),
      imageVersion: s?.imageVersion,
      trial: s?.trial ?? 'none',
      safeMode: s?.safeMode ?? false,
      safeModeCause: s?.safeModeCause ?? 'none',
      revocation: runtime === undefined ? undefined : this.revocationOf(runtime),
      clockJumps: s?.clockJumps ?? 0,
      boots: this.boots,
      powerCuts: this.powerCuts,
      pendingReset: this.pendingReset,
      bricked: this.bricked,
      events: this.events.slice(),
      failures: this.failures.slice(),
      io: client ?? 0,
      nextDueMs: runtime === undefined || this.hung ? undefined : runtime.nextDueMs(this.clock.ticks()),
    };
  }
}
