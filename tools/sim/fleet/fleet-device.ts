/**
 * One device of the fleet, in either engine: the firmware runtime
 * (../runtime-device.ts, `startRuntime` over its own flash, booted through
 * the simulated bootloader) run directly in Node, or in an xsnap worker
 * (../xs-runtime-device.ts, ten devices per XS machine). One interface
 * keeps the books the invariants are checked against: every append that
 * returned (durable, by counter), every append a cut interrupted
 * (uncertain), counter regressions, and whether the device ever failed to
 * boot (bricked); and it reports the device's update events (commits and
 * rollbacks with their causes).
 *
 * Host tool (Node).
 */
import { SimFlash } from '../flash/sim-flash.ts';
import { NodeStreamConnector } from '../../net/node-stream.ts';
import { createNobleCrypto } from '../../../firmware/security/noble-crypto.ts';
import { XsDeviceMachine } from '../xs-device-host.ts';
import { memoEd25519 } from '../memo-ed25519.ts';
import { SimRuntimeDevice, layoutBlocks, layoutOf, type RuntimeAppendReply, type RuntimeDeviceInit, type RuntimeDeviceStatus, type UpdateEvent } from '../runtime-device.ts';
import type { XsRuntimeBoot } from '../xs-runtime-device.ts';
import { deriveSeed, Rng } from '../rng.ts';
import type { CutPlan } from './schedule.ts';
import { provisionRuntimeFlash, type FleetFirmware } from './fleet-firmware.ts';
import { FLEET_CONSTANTS, type Engine } from './scenario.ts';

export const XS_RUNTIME_ENTRY = new URL('../xs-runtime-device.ts', import.meta.url).pathname;

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
  readonly firmware: FleetFirmware;
  /** XS engine: the machine this device shares (FLEET_CONSTANTS.xsDevicesPerMachine devices each). */
  readonly machine?: XsDeviceMachine;
  /** The board's hardware revision (--rollout: an image may fail on one revision). */
  readonly hardwareRevision?: string;
}

export interface DeviceState {
  readonly alive: boolean;
  /** Records in flash not yet released by a receipt (undefined while dark). */
  readonly queued: number | undefined;
  /** A record the device can deliver waits for its receipt (a torn one it can never send does not count; undefined while dark). */
  readonly awaitingReceipt: boolean | undefined;
  readonly status: RuntimeDeviceStatus | undefined;
}

export type AppendOutcome = 'durable' | 'cut' | 'dark' | 'full';

const K = FLEET_CONSTANTS.timeScale;

/** The runtime settings of every simulated device, in device ms (simulated ms × timeScale): each a whole number of simulated seconds. */
export const RUNTIME_SETTINGS = Object.freeze({
  /** 8 simulated s, a multiple of 4: the trial's steps (a quarter) fall on whole simulated seconds. */
  watchdogTimeoutMs: 8_000 * K,
  brokerReachedMs: 90_000 * K,
  firstReceiptMs: 120_000 * K,
  healthPeriodMs: 60_000 * K,
  auditPublishPeriodMs: 10_000 * K,
  requestRetryMs: 30_000 * K,
  counterReserve: 64,
  sessionTimeScale: K,
});

/** One memoised crypto for the Node-engine devices of this process (as one per XS machine). */
let nodeCrypto: ReturnType<typeof memoEd25519> | undefined;

export class FleetDevice {
  readonly index: number;
  readonly hexId: string;
  readonly flash: SimFlash;
  /** Counter → payload of every append that returned. */
  readonly durable = new Map<number, Uint8Array>();
  /** Payloads of appends a cut interrupted. */
  readonly uncertain: Uint8Array[] = [];
  /** Why the device could not boot (then it stays dark): a bricked device. */
  bricked: string | undefined;
  counterRegressions = 0;
  powerCuts = 0;
  tornAppends = 0;
  /** The last status read (XS: from the machine's last reply). */
  last: RuntimeDeviceStatus | undefined;
  private highest = -1;
  private readonly init: RuntimeDeviceInit;
  private readonly node: { device: SimRuntimeDevice; connector: NodeStreamConnector } | undefined;
  private readonly slot: number;

  private constructor(
    options: FleetDeviceOptions,
    private readonly machine: XsDeviceMachine | undefined,
  ) {
    this.index = options.index;
    this.hexId = Buffer.from(options.deviceId).toString('hex');
    const fw = options.firmware;
    this.flash = new SimFlash({ blocks: layoutBlocks(fw.layout), mode: options.index % 2 === 0 ? 'plain' : 'strict' });
    provisionRuntimeFlash(this.flash, fw);
    this.init = {
      deviceIdHex: this.hexId,
      secretHex: Buffer.from(options.secret).toString('hex'),
      keyId: 1,
      host: options.host,
      port: options.port,
      protocolVersion: options.protocolVersion,
      password: options.password,
      receiptTimeoutMs: FLEET_CONSTANTS.receiptTimeoutMs,
      commandPublicKeyHex: Buffer.from(fw.commandPublicKey).toString('hex'),
      revocationPublicKeyHex: Buffer.from(fw.revocationPublicKey).toString('hex'),
      boardId: fw.boardId,
      table: layoutOf(fw.layout),
      ...RUNTIME_SETTINGS,
      ...(options.hardwareRevision === undefined ? {} : { hardwareRevision: options.hardwareRevision }),
    };
    if (machine === undefined) {
      const rng = new Rng(deriveSeed(options.seed, 3, options.index));
      const connector = new NodeStreamConnector();
      this.node = { device: new SimRuntimeDevice(this.flash, connector, { fill: (t) => rng.fill(t) }, (nodeCrypto ??= memoEd25519(createNobleCrypto())), this.init), connector };
      this.slot = -1;
    } else {
      this.node = undefined;
      this.slot = machine.join();
      machine.bridge.services.flashes.set(this.handle, this.flash);
    }
  }

  static open(o: FleetDeviceOptions): FleetDevice {
    if (o.engine === 'xs' && o.machine === undefined) throw new Error('an XS fleet device needs its machine');
    return new FleetDevice(o, o.engine === 'xs' ? o.machine : undefined);
  }

  private get handle(): number {
    return 100 + this.index;
  }

  get isAlive(): boolean {
    return this.last?.alive === true;
  }

  get events(): readonly UpdateEvent[] {
    return this.last?.events ?? [];
  }

  private call(message: object): unknown {
    return this.machine!.bridge.callJson({ device: this.slot, ...message });
  }

  /** Power on (first boot, after a dark spell or a reset) at simulated `simMs`: bootloader, runtime, recovery from flash. */
  boot(simMs: number): void {
    const nowMs = simMs * K;
    if (this.bricked !== undefined) return;
    try {
      this.flash.disarmCut();
      this.flash.powerOn();
      if (this.node) {
        this.node.device.boot(nowMs);
        this.last = this.node.device.status();
      } else {
        const boot: XsRuntimeBoot = { init: this.init, flashHandle: this.handle, nowMs };
        this.last = this.call({ boot }) as RuntimeDeviceStatus;
      }
      if (this.last.bricked !== undefined) this.bricked = this.last.bricked;
      else if (!this.last.alive && this.last.pendingReset === undefined) this.bricked = 'a boot ended dark with no power cut armed';
    } catch (error) {
      this.bricked = error instanceof Error ? error.message.split('\n')[0] : String(error);
    }
  }

  /**
   * Append a reading. With `cut`, the power fails at the append's
   * `atOperation`-th flash operation, or right after the append returned
   * when it had fewer: either way the device is dark afterwards.
   */
  append(payload: Uint8Array, cut?: CutPlan): AppendOutcome {
    if (!this.isAlive) return 'dark';
    if (cut) this.flash.armCut({ atOperation: cut.atOperation, seed: cut.seed, tear: cut.tear });
    let reply: RuntimeAppendReply;
    try {
      reply = this.node ? this.node.device.append(payload) : (this.call({ append: Buffer.from(payload).toString('hex') }) as RuntimeAppendReply);
    } finally {
      if (cut) this.flash.disarmCut();
    }
    if (reply.ok) this.noteCounter(reply.counter, payload);
    else if (reply.why === 'cut') this.uncertain.push(payload);
    if (cut) {
      this.powerCuts++;
      if (reply.ok) this.powerOff();
      else this.tornAppends++;
      this.refresh();
      return reply.ok ? 'durable' : 'cut';
    }
    this.refresh();
    if (reply.ok) return 'durable';
    return reply.why === 'cut' ? 'cut' : reply.why === 'dark' ? 'dark' : 'full';
  }

  /**
   * Serve this device's serial console on a serial device (one end of a pty
   * pair): frames both ways, a ConsoleServer per boot over the running
   * runtime. Node engine only (the runtime must be in this process).
   * Returns a function that closes the port.
   */
  async openConsole(path: string): Promise<() => Promise<void>> {
    if (this.node === undefined) throw new Error('the serial console needs the Node engine (--engine node)');
    const { SerialPort } = await import('serialport');
    const port = new SerialPort({ path, baudRate: 115200, autoOpen: false, hupcl: false });
    await new Promise<void>((resolve, reject) => port.open((error) => (error ? reject(error) : resolve())));
    const device = this.node.device;
    device.attachConsole((bytes) => {
      if (port.isOpen) port.write(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    });
    port.on('data', (chunk: Buffer) => device.consoleReceive(new Uint8Array(chunk)));
    port.on('error', () => undefined);
    return () => new Promise<void>((resolve) => (port.isOpen ? port.close(() => resolve()) : resolve()));
  }

  /** The link's state, for a note when a window does not quiesce. */
  debug(): Record<string, unknown> {
    if (this.bricked !== undefined) return { bricked: this.bricked };
    return this.node ? this.node.device.debug() : (this.call({ debug: true }) as Record<string, unknown>);
  }

  noteSignedTime(wallMs: number): void {
    if (!this.isAlive) return;
    if (this.node) this.node.device.noteSignedTime(wallMs);
    else this.call({ signedTime: wallMs });
  }

  private powerOff(): void {
    if (this.node) this.node.device.powerOff();
    else this.call({ powerOff: true });
  }

  private refresh(): void {
    this.last = this.node ? this.node.device.status() : (this.call({ status: true }) as RuntimeDeviceStatus);
  }

  /** Simulated time moves to `simMs` for every device (one call per XS machine); each does what is due. */
  static setTime(devices: readonly FleetDevice[], simMs: number): void {
    FleetDevice.setDeviceTime(devices, simMs * K);
  }

  /** The devices' own clocks move to `nowMs` (device ms: the slack at a window's end). */
  static setDeviceTime(devices: readonly FleetDevice[], nowMs: number): void {
    const machines = new Map<XsDeviceMachine, ReadonlyMap<number, RuntimeDeviceStatus>>();
    for (const d of devices) {
      if (d.bricked !== undefined) continue;
      if (d.node) {
        d.node.device.setTime(nowMs);
        d.last = d.node.device.status();
        continue;
      }
      let states = machines.get(d.machine!);
      if (states === undefined) {
        states = d.machine!.statesOf<RuntimeDeviceStatus>({ setTimeAll: nowMs });
        machines.set(d.machine!, states);
      }
      d.last = states.get(d.slot) ?? d.last;
    }
  }

  /** The state of every device in `devices`, in order: one call per XS machine instead of one per device. */
  static states(devices: readonly FleetDevice[]): DeviceState[] {
    const byMachine = new Map<XsDeviceMachine, ReadonlyMap<number, RuntimeDeviceStatus>>();
    return devices.map((d) => {
      if (d.bricked === undefined) {
        if (d.node) {
          d.node.device.service();
          d.last = d.node.device.status();
        } else {
          let states = byMachine.get(d.machine!);
          if (states === undefined) {
            states = d.machine!.statesOf<RuntimeDeviceStatus>({ statusAll: true });
            byMachine.set(d.machine!, states);
          }
          d.last = states.get(d.slot) ?? d.last;
        }
      }
      const s = d.last;
      if (s === undefined || d.bricked !== undefined) return { alive: false, queued: undefined, awaitingReceipt: undefined, status: s };
      return { alive: s.alive, queued: s.unreceipted, awaitingReceipt: s.awaitingReceipt, status: s };
    });
  }

  /** A reset (watchdog, the runtime's restart) left the device dark: it boots again at once. */
  get resetPending(): boolean {
    return this.bricked === undefined && this.last !== undefined && !this.last.alive && this.last.pendingReset !== undefined;
  }

  shutdown(): void {
    try {
      if (this.node) {
        this.node.device.stop();
        this.node.connector.closeAll();
      } else if (!this.machine!.bridge.failure) this.call({ stop: true });
    } catch {
      // A device that failed (bricked, bridge gone) has nothing left to stop.
    }
  }

  private noteCounter(counter: number, payload: Uint8Array): void {
    if (this.durable.has(counter) || counter <= this.highest) this.counterRegressions++;
    else this.highest = counter;
    this.durable.set(counter, payload);
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
