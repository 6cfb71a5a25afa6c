/**
 * A simulated device on the Node engine with the firmware's telemetry path:
 * the persistent counter and the outbox on one simulated flash (so one
 * power cut strikes either), `SealedOutbox` sealing each record when it is
 * appended, and the firmware `MqttClient` draining the outbox over a real
 * TCP (or TLS) socket. A power cut can be armed at any flash operation; it
 * then strikes wherever that operation runs (an append, an ack written as a
 * PUBACK arrives), the device goes dark (its socket dropped without a
 * DISCONNECT, as a dead CPU leaves it) until `reboot()`, which recovers
 * everything from flash with fresh instances, as a reset does.
 *
 * Used by the end-to-end messaging suite and, later, the fleet simulator.
 * Host tool (Node).
 */
import { Counter } from '../../firmware/storage/counter.ts';
import { Outbox } from '../../firmware/storage/outbox.ts';
import { StorageError } from '../../firmware/storage/errors.ts';
import { TelemetryLink, type TelemetryLinkEvent } from '../../firmware/protocol/telemetry/index.ts';
import { deriveDeviceKeys } from '../../firmware/security/envelope-keys.ts';
import { envelopePrimitives } from '../../firmware/security/envelope-primitives.ts';
import { EnvelopeSuite, type TelemetrySuite } from '../../firmware/security/envelope-format.ts';
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import type { ByteStreamCallbacks, StreamConnector } from '../../firmware/hal/stream.ts';
import type { Entropy } from '../../firmware/hal/entropy.ts';
import { NodeStreamConnector, nodeClock, type NodeTlsOptions } from '../net/node-stream.ts';
import { isPowerCut } from './flash/errors.ts';
import { PartitionView } from './flash/partition-view.ts';
import { SimFlash, type FlashMode, type TearMode } from './flash/sim-flash.ts';
import { Rng } from './rng.ts';
import { simulatedLinkSettings } from './telemetry-link-settings.ts';

/** Counter blocks at the start of the device's flash; the outbox takes the rest. */
const COUNTER_BLOCKS = 2;

export interface TelemetryDeviceOptions {
  /** 8 bytes; its hex is the MQTT client id, user name and topic level. */
  readonly deviceId: Uint8Array;
  readonly secret: Uint8Array;
  readonly keyId: number;
  readonly suite?: TelemetrySuite;
  readonly host: string;
  readonly port: number;
  readonly protocolVersion: 4 | 5;
  readonly password?: string;
  readonly tls?: NodeTlsOptions;
  readonly flashMode: FlashMode;
  /** Outbox sectors (4 KiB each). */
  readonly outboxBlocks: number;
  /** Seeds the backoff jitter (the device's entropy) and nothing else. */
  readonly seed: number;
  /** Counter values reserved per flash write (the counter's `reserve`). */
  readonly counterReserve?: number;
  readonly maxInFlight?: number;
  readonly keepAliveSec?: number;
  readonly onEvent?: (event: TelemetryLinkEvent) => void;
  /** Receipt timeout (ms) before unreceipted records are sent again (default 2000: above the ingest's batch latency). */
  readonly receiptTimeoutMs?: number;
}

export interface TelemetryDeviceStats {
  boots: number;
  powerCuts: number;
  /** Appends that returned: durable records. */
  appended: number;
  /** Appends a power cut interrupted: each may or may not have landed. */
  cutAppends: number;
  /** Appends refused because the outbox was full (reject policy). */
  refusedFull: number;
}

/** What the device holds in RAM between boots: nothing of the firmware's, only the instances a boot builds. */
interface Firmware {
  readonly outbox: Outbox;
  readonly link: TelemetryLink;
  readonly connector: NodeStreamConnector;
}

export class TelemetryDevice {
  readonly flash: SimFlash;
  readonly hexId: string;
  readonly topic: string;
  /** Counter value → payload, for every append that returned (the promise: each reaches the ingest exactly once). */
  readonly durable = new Map<number, Uint8Array>();
  /** Payloads of appends a cut interrupted (each may arrive once, or never). */
  readonly uncertain: Uint8Array[] = [];
  readonly stats: TelemetryDeviceStats = { boots: 0, powerCuts: 0, appended: 0, cutAppends: 0, refusedFull: 0 };
  private firmware: Firmware | undefined;
  private readonly entropy: Entropy;
  private readonly counterView: PartitionView;
  private readonly outboxView: PartitionView;

  constructor(private readonly options: TelemetryDeviceOptions) {
    this.hexId = Buffer.from(options.deviceId).toString('hex');
    this.topic = `holdfast/${this.hexId}/telemetry`;
    this.flash = new SimFlash({ blocks: COUNTER_BLOCKS + options.outboxBlocks, mode: options.flashMode });
    this.counterView = new PartitionView(this.flash, 0, COUNTER_BLOCKS);
    this.outboxView = new PartitionView(this.flash, COUNTER_BLOCKS, options.outboxBlocks);
    const rng = new Rng(options.seed);
    this.entropy = { fill: (target) => rng.fill(target) };
    // Provisioning, before the first boot.
    Counter.format(this.counterView);
    Outbox.format(this.outboxView);
  }

  /** Running (booted and not struck by a cut since). */
  get alive(): boolean {
    return this.firmware !== undefined;
  }

  /** Records in flash not yet released by an ingest receipt (undefined while dark). */
  get queued(): number | undefined {
    return this.firmware?.outbox.stats().queued;
  }

  /**
   * Whether a record the device can deliver still waits for its receipt
   * (the receipt gate's oldest record; undefined while dark). Unlike
   * `queued`, a torn record at the end of the outbox, which can never be
   * sent, does not count.
   */
  get awaitingReceipt(): boolean | undefined {
    return this.firmware === undefined ? undefined : this.firmware.link.gate.oldest() !== undefined;
  }

  /** Power on: recover the counter and the outbox from flash and start the client. */
  boot(): void {
    if (this.firmware !== undefined) throw new Error(`${this.hexId} is already running`);
    this.flash.powerOn();
    this.stats.boots++;
    const crypto = createNobleCrypto();
    const counter = Counter.open(this.counterView, { reserve: this.options.counterReserve ?? 64 });
    const outbox = Outbox.open(this.outboxView, { policy: 'reject' });
    const keys = deriveDeviceKeys(crypto, this.options.secret, this.options.deviceId, this.options.keyId);
    const connector = new NodeStreamConnector(this.options.tls ? { tls: this.options.tls } : {});
    const link = new TelemetryLink(
      {
        outbox,
        counter,
        keys,
        primitives: envelopePrimitives(crypto),
        suite: this.options.suite ?? EnvelopeSuite.hmacSha256,
        host: this.options.host,
        port: this.options.port,
        ...simulatedLinkSettings({
          deviceHex: this.hexId,
          protocolVersion: this.options.protocolVersion,
          ...(this.options.password !== undefined ? { password: new TextEncoder().encode(this.options.password) } : {}),
          keepAliveSec: this.options.keepAliveSec,
          maxInFlight: this.options.maxInFlight,
          receiptTimeoutMs: this.options.receiptTimeoutMs,
        }),
      },
      { connector: this.guard(connector), clock: nodeClock, entropy: this.entropy, onEvent: (e) => this.options.onEvent?.(e) },
    );
    this.firmware = { outbox, link, connector };
    this.run(() => link.start());
  }

  /**
   * Append a payload the way the application does. Returns true when the
   * append returned (durable), false when the device is dark, a cut struck
   * during it, or the outbox is full.
   */
  append(payload: Uint8Array): boolean {
    const firmware = this.firmware;
    if (firmware === undefined) return false;
    try {
      const record = firmware.link.append(payload);
      this.durable.set(record.counter, payload);
      this.stats.appended++;
      // New records for the session to send now.
      this.run(() => firmware.link.service());
      return true;
    } catch (error) {
      if (isPowerCut(error)) {
        this.uncertain.push(payload);
        this.stats.cutAppends++;
        this.die();
        return false;
      }
      if (error instanceof StorageError && error.code === 'full') {
        this.stats.refusedFull++;
        return false;
      }
      throw error;
    }
  }

  /** The runtime's loop: let the client do what is due. */
  service(): void {
    const firmware = this.firmware;
    if (firmware !== undefined) this.run(() => firmware.link.service());
  }

  /** Strike a cut at the `afterOperations`-th flash operation from now (0: the next one). */
  armCut(afterOperations: number, seed: number, tear: TearMode = 'prefix'): void {
    this.flash.armCut({ atOperation: afterOperations, seed, tear });
  }

  /** Power off now (between flash operations). */
  powerOff(): void {
    if (this.firmware !== undefined) this.die();
  }

  /** Reset after a cut or a power-off: fresh instances recover from flash. */
  reboot(): void {
    if (this.firmware !== undefined) this.die();
    this.flash.disarmCut();
    this.boot();
  }

  /** Stop for good (test cleanup): the client says DISCONNECT when it can. */
  shutdown(): void {
    const firmware = this.firmware;
    if (firmware === undefined) return;
    this.firmware = undefined;
    try {
      firmware.link.stop();
    } catch (error) {
      if (!isPowerCut(error)) throw error;
    }
    firmware.connector.closeAll();
  }

  /** The CPU stops: sockets drop without a word, RAM is gone. */
  private die(): void {
    const firmware = this.firmware;
    this.firmware = undefined;
    this.stats.powerCuts++;
    firmware?.connector.closeAll();
  }

  /** Run firmware code; a power cut inside it turns the device dark instead of escaping into Node's event loop. */
  private run(work: () => void): void {
    try {
      work();
    } catch (error) {
      if (!isPowerCut(error)) throw error;
      this.die();
    }
  }

  /** Stream callbacks run firmware code too (a PUBACK acknowledges flash records): guard them, and drop those of a dead boot. */
  private guard(connector: StreamConnector): StreamConnector {
    return {
      connect: (host, port, callbacks) => {
        const boots = this.stats.boots;
        const live = (): boolean => this.firmware !== undefined && this.stats.boots === boots;
        const guarded: ByteStreamCallbacks = {
          onReadable: (n) => live() && this.run(() => callbacks.onReadable(n)),
          onWritable: (n) => live() && this.run(() => callbacks.onWritable(n)),
          onError: (reason) => live() && this.run(() => callbacks.onError(reason)),
        };
        return connector.connect(host, port, guarded);
      },
    };
  }
}
