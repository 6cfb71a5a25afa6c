/**
 * Inside XS: devices' telemetry firmware (persistent counter, sealed
 * outbox, receipt gate, MQTT client: `TelemetryLink`) on a flash the host
 * holds (RemoteFlash, so the host arms the power cuts), with the host's
 * sockets (RemoteStreamConnector). A power cut striking anywhere (an append,
 * a receipt releasing records) turns the device dark: its streams are
 * closed, its RAM is gone, and it stays dark until the host boots it again.
 * Host commands are JSON: `{boot}`, `{append: hex}`, `{status: true}`,
 * `{powerOff: true}`, `{stop: true}`, each with `device` (default 0), and
 * `{statusAll: true}` (every device's status in one call):
 * several devices can share one XS machine, each with its own firmware
 * instances (the firmware keeps nothing at module level), flash and
 * streams, as parsing the firmware costs about a second per machine.
 */
import { Counter } from '../../firmware/storage/counter.ts';
import { Outbox } from '../../firmware/storage/outbox.ts';
import { StorageError } from '../../firmware/storage/errors.ts';
import { TelemetryLink } from '../../firmware/protocol/telemetry/index.ts';
import { deriveDeviceKeys } from '../../firmware/security/envelope-keys.ts';
import { envelopePrimitives } from '../../firmware/security/envelope-primitives.ts';
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import type { ByteStream, ByteStreamCallbacks, StreamConnector } from '../../firmware/hal/stream.ts';
import { isPowerCut } from './flash/errors.ts';
import { PartitionView } from './flash/partition-view.ts';
import { RemoteFlash } from '../xs/guest/remote-flash.ts';
import { BridgeClock, handleBridgeCommand, hostEntropy, RemoteStreamConnector, type BridgeApp } from '../xs/guest/remote-stream.ts';
import { fromUtf8, utf8 } from '../xs/wire.ts';
import { simulatedLinkSettings, type SimulatedDeviceLink } from './telemetry-link-settings.ts';
import { hexBytes } from './hex.ts';

export interface XsDeviceBoot extends SimulatedDeviceLink {
  readonly now: number;
  readonly flashHandle: number;
  /** Blocks 0..1 hold the counter, the rest the outbox. */
  readonly outboxBlocks: number;
  readonly counterReserve: number;
  /** Receipt timeout (ms) before unreceipted records are sent again (default: telemetry-link-settings.ts). */
  readonly receiptTimeoutMs?: number;
}

export type XsAppendReply = { readonly ok: true; readonly counter: number } | { readonly ok: false; readonly why: 'dark' | 'cut' | 'full' };

export interface XsDeviceStatus {
  readonly alive: boolean;
  readonly unreceipted: number | undefined;
  /** A record the device can deliver waits for its receipt (a torn record it can never send does not count). */
  readonly awaitingReceipt: boolean | undefined;
  readonly boots: number;
  readonly powerCuts: number;
}

interface Request {
  /** Which device of this XS machine (default 0). */
  device?: number;
  boot?: XsDeviceBoot;
  append?: string;
  status?: boolean;
  stop?: boolean;
  powerOff?: boolean;
  /** The status of every device on this machine, by device number. */
  statusAll?: boolean;
}

/** One device's RAM: what a boot builds and a power cut loses (plus the counts the host reads). */
interface DeviceSlot {
  link: TelemetryLink | undefined;
  outbox: Outbox | undefined;
  boots: number;
  powerCuts: number;
  streams: ByteStream[];
}

function serve(): void {
  const clock = new BridgeClock();
  const connector = new RemoteStreamConnector();
  /** Devices by number: each its own firmware instances, flash and streams; they share this XS machine, its clock and the host's sockets. */
  const slots = new Map<number, DeviceSlot>();

  const slotOf = (device: number): DeviceSlot => {
    let slot = slots.get(device);
    if (slot === undefined) {
      slot = { link: undefined, outbox: undefined, boots: 0, powerCuts: 0, streams: [] };
      slots.set(device, slot);
    }
    return slot;
  };

  /** The CPU stops: the streams drop, RAM is gone. */
  const die = (slot: DeviceSlot): void => {
    slot.link = undefined;
    slot.outbox = undefined;
    slot.powerCuts++;
    for (const stream of slot.streams) stream.close();
    slot.streams = [];
  };
  /** Firmware code runs here; a power cut turns the device dark instead of failing the bridge. */
  const run = (slot: DeviceSlot, work: () => void): void => {
    try {
      work();
    } catch (error) {
      if (!isPowerCut(error)) throw error;
      die(slot);
    }
  };
  /** Callbacks of a boot that is over are dropped, as a reset drops them. */
  const guarded = (slot: DeviceSlot, boot: number): StreamConnector => ({
    connect(host: string, port: number, callbacks: ByteStreamCallbacks): ByteStream {
      const live = (): boolean => slot.link !== undefined && slot.boots === boot;
      const stream = connector.connect(host, port, {
        onReadable: (n) => {
          if (live()) run(slot, () => callbacks.onReadable(n));
        },
        onWritable: (n) => {
          if (live()) run(slot, () => callbacks.onWritable(n));
        },
        onError: (reason) => {
          if (live()) run(slot, () => callbacks.onError(reason));
        },
      });
      slot.streams.push(stream);
      return stream;
    },
  });

  const bootDevice = (slot: DeviceSlot, init: XsDeviceBoot): void => {
    clock.now = init.now;
    slot.boots++;
    const flash = RemoteFlash.attach(init.flashHandle);
    const crypto = createNobleCrypto();
    const deviceId = hexBytes(init.deviceIdHex);
    run(slot, () => {
      const counter = Counter.open(new PartitionView(flash, 0, 2), { reserve: init.counterReserve });
      const outbox = Outbox.open(new PartitionView(flash, 2, init.outboxBlocks), { policy: 'reject' });
      slot.outbox = outbox;
      const link = new TelemetryLink(
        {
          outbox,
          counter,
          keys: deriveDeviceKeys(crypto, hexBytes(init.secretHex), deviceId, init.keyId),
          primitives: envelopePrimitives(crypto),
          host: init.host,
          port: init.port,
          ...simulatedLinkSettings({ deviceHex: init.deviceIdHex, protocolVersion: init.protocolVersion, password: utf8(init.password), receiptTimeoutMs: init.receiptTimeoutMs }),
        },
        { connector: guarded(slot, slot.boots), clock, entropy: hostEntropy },
      );
      slot.link = link;
      link.start(clock.now);
    });
  };

  const append = (slot: DeviceSlot, hex: string): XsAppendReply => {
    const current = slot.link;
    if (current === undefined) return { ok: false, why: 'dark' };
    try {
      const record = current.append(hexBytes(hex));
      run(slot, () => current.service(clock.now));
      return { ok: true, counter: record.counter };
    } catch (error) {
      if (isPowerCut(error)) {
        die(slot);
        return { ok: false, why: 'cut' };
      }
      if (error instanceof StorageError && error.code === 'full') return { ok: false, why: 'full' };
      throw error;
    }
  };

  const statusOf = (slot: DeviceSlot): XsDeviceStatus => ({
    alive: slot.link !== undefined,
    unreceipted: slot.outbox?.stats().queued,
    awaitingReceipt: slot.link === undefined ? undefined : slot.link.gate.oldest() !== undefined,
    boots: slot.boots,
    powerCuts: slot.powerCuts,
  });

  const app: BridgeApp = {
    service: (now) => {
      for (const slot of slots.values()) {
        const current = slot.link;
        if (current !== undefined) run(slot, () => current.service(now));
      }
    },
    nextDueMs: (now) => {
      let due: number | undefined;
      for (const slot of slots.values()) {
        const mine = slot.link?.nextDueMs(now);
        if (mine !== undefined && (due === undefined || mine < due)) due = mine;
      }
      return due;
    },
    command(request) {
      const message = JSON.parse(fromUtf8(request)) as Request;
      if (message.statusAll) {
        const all: Record<string, XsDeviceStatus> = {};
        for (const [device, slot] of slots) all[String(device)] = statusOf(slot);
        return utf8(JSON.stringify(all));
      }
      const slot = slotOf(message.device ?? 0);
      if (message.boot) {
        if (slot.link !== undefined) die(slot);
        bootDevice(slot, message.boot);
        return utf8('{}');
      }
      if (message.append !== undefined) return utf8(JSON.stringify(append(slot, message.append)));
      // Power off between flash operations: the CPU stops, as after a cut.
      if (message.powerOff && slot.link !== undefined) die(slot);
      if (message.stop) {
        slot.link?.stop();
        slot.link = undefined;
      }
      return utf8(JSON.stringify(statusOf(slot)));
    },
  };
  (globalThis as { handleCommand?: (request: ArrayBuffer) => ArrayBuffer }).handleCommand = (request) => {
    const reply = handleBridgeCommand(new Uint8Array(request), connector, clock, app);
    return reply.buffer.slice(reply.byteOffset, reply.byteOffset + reply.byteLength) as ArrayBuffer;
  };
}

serve();
