/**
 * One device of the fleet, in either engine: the Node-engine
 * TelemetryDevice (../telemetry-device.ts) or the XS one
 * (../xs-device-host.ts, firmware in an xsnap worker), behind one
 * interface that keeps the books the invariants are checked against:
 * every append that returned (durable, by counter), every append a cut
 * interrupted (uncertain), counter regressions, and whether the device
 * ever failed to boot (bricked).
 *
 * Host tool (Node).
 */
import type { SimFlash } from '../flash/sim-flash.ts';
import { TelemetryDevice } from '../telemetry-device.ts';
import { XsTelemetryDevice, type XsDeviceMachine } from '../xs-device-host.ts';
import { deriveSeed, Rng } from '../rng.ts';
import type { CutPlan } from './schedule.ts';
import { FLEET_CONSTANTS, type Engine } from './scenario.ts';

export interface FleetDeviceOptions {
  readonly index: number;
  readonly engine: Engine;
  readonly seed: number;
  readonly deviceId: Uint8Array;
  readonly secret: Uint8Array;
  readonly host: string;
  readonly port: number;
  readonly protocolVersion: 4 | 5;
  readonly password: string;
  /** XS engine: the machine this device shares (FLEET_CONSTANTS.xsDevicesPerMachine devices each). */
  readonly machine?: XsDeviceMachine;
}

export interface DeviceState {
  readonly alive: boolean;
  /** Records in flash not yet released by a receipt (undefined while dark). */
  readonly queued: number | undefined;
  /** A record the device can deliver waits for its receipt (a torn one it can never send does not count; undefined while dark). */
  readonly awaitingReceipt: boolean | undefined;
}

export type AppendOutcome = 'durable' | 'cut' | 'dark' | 'full';

/** What the fleet needs of a device in either engine. */
interface EngineDevice {
  readonly flash: SimFlash;
  readonly durable: ReadonlyMap<number, Uint8Array>;
  readonly uncertain: readonly Uint8Array[];
  boot(): void;
  append(payload: Uint8Array): boolean;
  powerOff(): void;
  service(): void;
  shutdown(): void;
  armCut(afterOperations: number, seed: number, tear: CutPlan['tear']): void;
}

export class FleetDevice {
  readonly index: number;
  readonly hexId: string;
  /** Why the device could not boot (then it stays dark): a bricked device. */
  bricked: string | undefined;
  /** Appends that returned a counter not above one returned before (or the same one twice). */
  counterRegressions = 0;
  powerCuts = 0;
  /** Power cuts that tore an append (the rest struck right after one returned). */
  tornAppends = 0;
  private highest = -1;
  private alive = false;

  private constructor(
    private readonly device: EngineDevice,
    private readonly xs: XsTelemetryDevice | undefined,
    private readonly node: TelemetryDevice | undefined,
    options: FleetDeviceOptions,
    private readonly machine?: XsDeviceMachine,
  ) {
    this.index = options.index;
    this.hexId = Buffer.from(options.deviceId).toString('hex');
  }

  static async open(o: FleetDeviceOptions): Promise<FleetDevice> {
    const flashMode = o.index % 2 === 0 ? 'plain' : 'strict';
    const common = { deviceId: o.deviceId, secret: o.secret, keyId: 1, host: o.host, port: o.port, protocolVersion: o.protocolVersion, password: o.password, flashMode, outboxBlocks: FLEET_CONSTANTS.outboxBlocks, receiptTimeoutMs: FLEET_CONSTANTS.receiptTimeoutMs } as const;
    if (o.engine === 'xs') {
      const xs = await XsTelemetryDevice.open({ ...common, handle: 100 + o.index }, o.machine);
      return new FleetDevice(xs, xs, undefined, o, o.machine);
    }
    const node = new TelemetryDevice({ ...common, seed: deriveSeed(o.seed, 3, o.index) });
    return new FleetDevice(node, undefined, node, o);
  }

  get flash(): SimFlash {
    return this.device.flash;
  }

  get durable(): ReadonlyMap<number, Uint8Array> {
    return this.device.durable;
  }

  get uncertain(): readonly Uint8Array[] {
    return this.device.uncertain;
  }

  get isAlive(): boolean {
    return this.alive;
  }

  /** Power on (first boot or after a dark spell): recover from flash. A failure other than a cut bricks the device. */
  boot(): void {
    if (this.bricked !== undefined) return;
    try {
      this.device.flash.disarmCut();
      if (this.node) {
        if (this.node.alive) this.node.powerOff();
        this.node.boot();
        this.alive = this.node.alive;
      } else {
        this.device.boot();
        this.alive = this.xs!.state().alive;
      }
      if (!this.alive) this.bricked = 'a boot ended dark with no power cut armed';
    } catch (error) {
      this.alive = false;
      this.bricked = error instanceof Error ? error.message.split('\n')[0] : String(error);
    }
  }

  /**
   * Append a record. With `cut`, the power fails at the append's
   * `atOperation`-th flash operation, or right after the append returned
   * when it had fewer: either way the device is dark afterwards.
   */
  append(payload: Uint8Array, cut?: CutPlan): AppendOutcome {
    if (!this.alive) return 'dark';
    const before = this.device.durable.size;
    if (cut) this.device.armCut(cut.atOperation, cut.seed, cut.tear);
    let ok: boolean;
    try {
      ok = this.device.append(payload);
    } finally {
      if (cut) this.device.flash.disarmCut();
    }
    if (ok) this.noteCounter(before);
    if (cut) {
      this.powerCuts++;
      if (ok) this.device.powerOff();
      else this.tornAppends++;
      this.alive = false;
      return ok ? 'durable' : 'cut';
    }
    if (!ok) {
      this.alive = this.node ? this.node.alive : this.xs!.state().alive;
      return this.alive ? 'full' : 'cut';
    }
    return 'durable';
  }

  /** The state of every device in `devices`, in order: one call per XS machine instead of one per device. */
  static states(devices: readonly FleetDevice[]): DeviceState[] {
    const byMachine = new Map<XsDeviceMachine, ReadonlyMap<number, { alive: boolean; unreceipted: number | undefined; awaitingReceipt: boolean | undefined }>>();
    return devices.map((d) => {
      if (d.xs === undefined || d.machine === undefined || d.bricked !== undefined) return d.state();
      let states = byMachine.get(d.machine);
      if (states === undefined) {
        states = d.machine.states();
        byMachine.set(d.machine, states);
      }
      const mine = states.get(d.xs.slot);
      return { alive: mine?.alive ?? false, queued: mine?.unreceipted, awaitingReceipt: mine?.awaitingReceipt };
    });
  }

  /** Alive, the records not yet released by a receipt, and whether one it can deliver is among them. */
  state(): DeviceState {
    if (this.node) return { alive: this.node.alive, queued: this.node.queued, awaitingReceipt: this.node.awaitingReceipt };
    if (this.bricked !== undefined) return { alive: false, queued: undefined, awaitingReceipt: undefined };
    return this.xs!.state();
  }

  /** Let the firmware do what is due (the Node engine; the XS bridge ticks its guest itself). */
  service(): void {
    if (this.alive) this.device.service();
  }

  shutdown(): void {
    try {
      this.device.shutdown();
    } catch {
      // A device that failed (bricked, bridge gone) has nothing left to stop.
    }
  }

  private noteCounter(sizeBefore: number): void {
    const durable = this.device.durable;
    if (durable.size === sizeBefore) {
      // The counter an append returned was already taken by an earlier one.
      this.counterRegressions++;
      return;
    }
    let last = -1;
    for (const key of durable.keys()) last = key;
    if (last <= this.highest) this.counterRegressions++;
    else this.highest = last;
  }
}

/** The device's 8-byte id: seeded, with its index in the first bytes so ids never collide. */
export function fleetDeviceId(index: number, seed: number, salt: number): Uint8Array {
  const id = new Uint8Array(8);
  new Rng(deriveSeed(seed, 1, index, salt)).fill(id);
  id[0] = (index >>> 16) & 0xff;
  id[1] = (index >>> 8) & 0xff;
  id[2] = index & 0xff;
  return id;
}

/** The device's 32-byte secret (the inventory the ingest verifies with holds the same). */
export function fleetDeviceSecret(index: number, seed: number, salt: number): Uint8Array {
  const bytes = new Uint8Array(32);
  new Rng(deriveSeed(seed, 2, index, salt)).fill(bytes);
  return bytes;
}
