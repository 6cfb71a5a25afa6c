/**
 * Inside XS: one device's telemetry firmware (persistent counter, sealed
 * outbox, receipt gate, MQTT client: `TelemetryLink`) on a flash the host
 * holds (RemoteFlash, so the host arms the power cuts), with the host's
 * sockets (RemoteStreamConnector). A power cut striking anywhere (an append,
 * a receipt releasing records) turns the device dark: its streams are
 * closed, its RAM is gone, and it stays dark until the host boots it again.
 * Host commands are JSON: `{boot}`, `{append: hex}`, `{status: true}`,
 * `{stop: true}`.
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
import { simulatedLinkSettings } from './telemetry-link-settings.ts';

export interface XsDeviceBoot {
  readonly now: number;
  readonly flashHandle: number;
  /** Blocks 0..1 hold the counter, the rest the outbox. */
  readonly outboxBlocks: number;
  readonly deviceIdHex: string;
  readonly secretHex: string;
  readonly keyId: number;
  readonly host: string;
  readonly port: number;
  readonly protocolVersion: 4 | 5;
  readonly password: string;
  readonly counterReserve: number;
}

export type XsAppendReply = { readonly ok: true; readonly counter: number } | { readonly ok: false; readonly why: 'dark' | 'cut' | 'full' };

export interface XsDeviceStatus {
  readonly alive: boolean;
  readonly unreceipted: number | undefined;
  readonly boots: number;
  readonly powerCuts: number;
}

interface Request {
  boot?: XsDeviceBoot;
  append?: string;
  status?: boolean;
  stop?: boolean;
}

function hexBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function serve(): void {
  const clock = new BridgeClock();
  const connector = new RemoteStreamConnector();
  let link: TelemetryLink | undefined;
  let outbox: Outbox | undefined;
  let boots = 0;
  let powerCuts = 0;
  let streams: ByteStream[] = [];

  /** The CPU stops: the streams drop, RAM is gone. */
  const die = (): void => {
    link = undefined;
    outbox = undefined;
    powerCuts++;
    for (const stream of streams) stream.close();
    streams = [];
  };
  /** Firmware code runs here; a power cut turns the device dark instead of failing the bridge. */
  const run = (work: () => void): void => {
    try {
      work();
    } catch (error) {
      if (!isPowerCut(error)) throw error;
      die();
    }
  };
  /** Callbacks of a boot that is over are dropped, as a reset drops them. */
  const guarded = (boot: number): StreamConnector => ({
    connect(host: string, port: number, callbacks: ByteStreamCallbacks): ByteStream {
      const live = (): boolean => link !== undefined && boots === boot;
      const stream = connector.connect(host, port, {
        onReadable: (n) => {
          if (live()) run(() => callbacks.onReadable(n));
        },
        onWritable: (n) => {
          if (live()) run(() => callbacks.onWritable(n));
        },
        onError: (reason) => {
          if (live()) run(() => callbacks.onError(reason));
        },
      });
      streams.push(stream);
      return stream;
    },
  });

  const bootDevice = (init: XsDeviceBoot): void => {
    clock.now = init.now;
    boots++;
    const flash = RemoteFlash.attach(init.flashHandle);
    const crypto = createNobleCrypto();
    const deviceId = hexBytes(init.deviceIdHex);
    run(() => {
      const counter = Counter.open(new PartitionView(flash, 0, 2), { reserve: init.counterReserve });
      outbox = Outbox.open(new PartitionView(flash, 2, init.outboxBlocks), { policy: 'reject' });
      link = new TelemetryLink(
        {
          outbox,
          counter,
          keys: deriveDeviceKeys(crypto, hexBytes(init.secretHex), deviceId, init.keyId),
          primitives: envelopePrimitives(crypto),
          host: init.host,
          port: init.port,
          ...simulatedLinkSettings({ deviceHex: init.deviceIdHex, protocolVersion: init.protocolVersion, password: utf8(init.password) }),
        },
        { connector: guarded(boots), clock, entropy: hostEntropy },
      );
      link.start(clock.now);
    });
  };

  const append = (hex: string): XsAppendReply => {
    const current = link;
    if (current === undefined) return { ok: false, why: 'dark' };
    try {
      const record = current.append(hexBytes(hex));
      run(() => current.service(clock.now));
      return { ok: true, counter: record.counter };
    } catch (error) {
      if (isPowerCut(error)) {
        die();
        return { ok: false, why: 'cut' };
      }
      if (error instanceof StorageError && error.code === 'full') return { ok: false, why: 'full' };
      throw error;
    }
  };

  const app: BridgeApp = {
    service: (now) => {
      const current = link;
      if (current !== undefined) run(() => current.service(now));
    },
    nextDueMs: (now) => link?.nextDueMs(now),
    command(request) {
      const message = JSON.parse(fromUtf8(request)) as Request;
      if (message.boot) {
        if (link !== undefined) die();
        bootDevice(message.boot);
        return utf8('{}');
      }
      if (message.append !== undefined) return utf8(JSON.stringify(append(message.append)));
      if (message.stop) {
        link?.stop();
        link = undefined;
      }
      const status: XsDeviceStatus = { alive: link !== undefined, unreceipted: outbox?.stats().queued, boots, powerCuts };
      return utf8(JSON.stringify(status));
    },
  };
  (globalThis as { handleCommand?: (request: ArrayBuffer) => ArrayBuffer }).handleCommand = (request) => {
    const reply = handleBridgeCommand(new Uint8Array(request), connector, clock, app);
    return reply.buffer.slice(reply.byteOffset, reply.byteOffset + reply.byteLength) as ArrayBuffer;
  };
}

serve();
