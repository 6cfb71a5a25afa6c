/**
 * Node's side of a device whose telemetry firmware runs in XS
 * (xs-telemetry-device.ts): it holds the device's flash (so it arms the
 * power cuts), owns the sockets through the XS stream bridge, and keeps
 * the same books as TelemetryDevice (tools/sim/telemetry-device.ts), so one
 * end-to-end scenario drives either engine.
 */
import { fileURLToPath } from 'node:url';
import { SimFlash, type FlashMode, type TearMode } from './flash/sim-flash.ts';
import { PartitionView } from './flash/partition-view.ts';
import { Counter } from '../../firmware/storage/counter.ts';
import { Outbox } from '../../firmware/storage/outbox.ts';
import { HostServices } from '../xs/host-services.ts';
import { XsStreamBridge } from '../xs/stream-bridge.ts';
import { nodeClock } from '../net/node-stream.ts';
import type { XsAppendReply, XsDeviceBoot, XsDeviceStatus } from './xs-telemetry-device.ts';

const ENTRY = fileURLToPath(new URL('./xs-telemetry-device.ts', import.meta.url));
const COUNTER_BLOCKS = 2;

export interface XsDeviceOptions {
  readonly deviceId: Uint8Array;
  readonly secret: Uint8Array;
  readonly keyId: number;
  readonly host: string;
  readonly port: number;
  readonly protocolVersion: 4 | 5;
  readonly password: string;
  readonly flashMode: FlashMode;
  readonly outboxBlocks: number;
  /** Flash handle in the host services (unique per device). */
  readonly handle: number;
  /** Receipt timeout (ms) before unreceipted records are sent again (default: telemetry-link-settings.ts). */
  readonly receiptTimeoutMs?: number;
  /** The bridge ticks the guest at least this often (ms, default 20). */
  readonly pollMs?: number;
}

/**
 * One XS machine (an xsnap worker running xs-telemetry-device.ts) that
 * several devices share; `XsTelemetryDevice.open` without one makes a
 * machine of its own.
 */
export class XsDeviceMachine {
  private users = 0;
  private constructor(readonly bridge: XsStreamBridge) {}

  /** `entry`: the guest program (default xs-telemetry-device.ts; the fleet runs xs-runtime-device.ts). */
  static async open(options: { pollMs?: number; entry?: string } = {}): Promise<XsDeviceMachine> {
    const bridge = await XsStreamBridge.open(options.entry ?? ENTRY, { services: new HostServices(), pollMs: options.pollMs ?? 20 });
    return new XsDeviceMachine(bridge);
  }

  /** The status of every device on this machine, by device number (one call to the guest). */
  states(): ReadonlyMap<number, XsDeviceStatus> {
    return this.statesOf<XsDeviceStatus>({ statusAll: true });
  }

  /** A machine-wide command whose reply is every device's status by device number. */
  statesOf<T>(message: object): ReadonlyMap<number, T> {
    if (this.bridge.failure) throw this.bridge.failure;
    const all = this.bridge.callJson(message) as Record<string, T>;
    return new Map(Object.entries(all).map(([k, v]) => [Number(k), v]));
  }

  /** A device joins: its number on this machine. */
  join(): number {
    return this.users++;
  }

  /** Close the worker (every device on it goes with it). */
  close(): void {
    this.bridge.close();
  }
}

export class XsTelemetryDevice {
  readonly flash: SimFlash;
  readonly hexId: string;
  readonly durable = new Map<number, Uint8Array>();
  readonly uncertain: Uint8Array[] = [];
  readonly stats = { boots: 0, powerCuts: 0, appended: 0, cutAppends: 0, refusedFull: 0 };

  private constructor(
    private readonly options: XsDeviceOptions,
    private readonly bridge: XsStreamBridge,
    /** This device's number on its XS machine. */
    readonly slot: number,
    /** The machine is this device's own (closed with it). */
    private readonly ownsMachine: boolean,
  ) {
    this.hexId = Buffer.from(options.deviceId).toString('hex');
    this.flash = bridge.services.flashes.get(options.handle) as SimFlash;
  }

  /** A device on `machine` (shared; `options.handle` must be unique on it), or on a machine of its own. */
  static async open(options: XsDeviceOptions, machine?: XsDeviceMachine): Promise<XsTelemetryDevice> {
    const host = machine ?? (await XsDeviceMachine.open({ pollMs: options.pollMs }));
    const services = host.bridge.services;
    if (services.flashes.has(options.handle)) throw new Error(`flash handle ${options.handle} is taken on this XS machine`);
    const flash = new SimFlash({ blocks: COUNTER_BLOCKS + options.outboxBlocks, mode: options.flashMode });
    // Provisioning, before the first boot.
    Counter.format(new PartitionView(flash, 0, COUNTER_BLOCKS));
    Outbox.format(new PartitionView(flash, COUNTER_BLOCKS, options.outboxBlocks));
    services.flashes.set(options.handle, flash);
    return new XsTelemetryDevice(options, host.bridge, host.join(), machine === undefined);
  }

  get alive(): boolean {
    return this.status().alive;
  }

  get queued(): number | undefined {
    return this.status().unreceipted;
  }

  boot(): void {
    this.flash.disarmCut();
    this.flash.powerOn();
    const boot: XsDeviceBoot = {
      now: nodeClock.ticks(),
      flashHandle: this.options.handle,
      outboxBlocks: this.options.outboxBlocks,
      deviceIdHex: this.hexId,
      secretHex: Buffer.from(this.options.secret).toString('hex'),
      keyId: this.options.keyId,
      host: this.options.host,
      port: this.options.port,
      protocolVersion: this.options.protocolVersion,
      password: this.options.password,
      counterReserve: 64,
      ...(this.options.receiptTimeoutMs !== undefined ? { receiptTimeoutMs: this.options.receiptTimeoutMs } : {}),
    };
    this.call({ boot });
    this.stats.boots++;
  }

  reboot(): void {
    this.boot();
  }

  append(payload: Uint8Array): boolean {
    const reply = this.call({ append: Buffer.from(payload).toString('hex') }) as XsAppendReply;
    if (reply.ok) {
      this.durable.set(reply.counter, payload);
      this.stats.appended++;
      return true;
    }
    if (reply.why === 'cut') {
      this.uncertain.push(payload);
      this.stats.cutAppends++;
    }
    if (reply.why === 'full') this.stats.refusedFull++;
    return false;
  }

  /** The bridge ticks the guest from Node's event loop; nothing to do here but surface a guest failure. */
  service(): void {
    if (this.bridge.failure) throw this.bridge.failure;
  }

  /** Power off now (between flash operations): the device goes dark until `reboot()`. */
  powerOff(): void {
    this.status();
    this.call({ powerOff: true });
    this.status();
  }

  /** Alive and records not yet released by a receipt, in one call to the guest. */
  state(): { alive: boolean; queued: number | undefined; awaitingReceipt: boolean | undefined } {
    const status = this.status();
    return { alive: status.alive, queued: status.unreceipted, awaitingReceipt: status.awaitingReceipt };
  }

  armCut(afterOperations: number, seed: number, tear: TearMode = 'prefix'): void {
    this.flash.armCut({ atOperation: afterOperations, seed, tear });
  }

  shutdown(): void {
    try {
      if (!this.bridge.failure) this.call({ stop: true });
    } finally {
      if (this.ownsMachine) this.bridge.close();
    }
  }

  private call(message: object): unknown {
    return this.bridge.callJson({ device: this.slot, ...message });
  }

  private status(): XsDeviceStatus {
    if (this.bridge.failure) throw this.bridge.failure;
    const status = this.call({ status: true }) as XsDeviceStatus;
    this.stats.powerCuts = status.powerCuts;
    return status;
  }
}
