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
}

export class XsTelemetryDevice {
  readonly flash: SimFlash;
  readonly hexId: string;
  readonly durable = new Map<number, Uint8Array>();
  readonly uncertain: Uint8Array[] = [];
  readonly stats = { boots: 0, powerCuts: 0, appended: 0, cutAppends: 0, refusedFull: 0 };

  private constructor(private readonly options: XsDeviceOptions, private readonly bridge: XsStreamBridge) {
    this.hexId = Buffer.from(options.deviceId).toString('hex');
    this.flash = bridge.services.flashes.get(options.handle) as SimFlash;
  }

  static async open(options: XsDeviceOptions): Promise<XsTelemetryDevice> {
    const services = new HostServices();
    const flash = new SimFlash({ blocks: COUNTER_BLOCKS + options.outboxBlocks, mode: options.flashMode });
    // Provisioning, before the first boot.
    Counter.format(new PartitionView(flash, 0, COUNTER_BLOCKS));
    Outbox.format(new PartitionView(flash, COUNTER_BLOCKS, options.outboxBlocks));
    services.flashes.set(options.handle, flash);
    const bridge = await XsStreamBridge.open(ENTRY, { services, pollMs: 20 });
    return new XsTelemetryDevice(options, bridge);
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
    };
    this.bridge.callJson({ boot });
    this.stats.boots++;
  }

  reboot(): void {
    this.boot();
  }

  append(payload: Uint8Array): boolean {
    const reply = this.bridge.callJson({ append: Buffer.from(payload).toString('hex') }) as XsAppendReply;
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

  armCut(afterOperations: number, seed: number, tear: TearMode = 'prefix'): void {
    this.flash.armCut({ atOperation: afterOperations, seed, tear });
  }

  shutdown(): void {
    try {
      if (!this.bridge.failure) this.bridge.callJson({ stop: true });
    } finally {
      this.bridge.close();
    }
  }

  private status(): XsDeviceStatus {
    if (this.bridge.failure) throw this.bridge.failure;
    const status = this.bridge.callJson({ status: true }) as XsDeviceStatus;
    this.stats.powerCuts = status.powerCuts;
    return status;
  }
}
