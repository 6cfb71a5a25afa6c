/**
 * Inside XS: devices running the firmware runtime (SimRuntimeDevice,
 * runtime-device.ts) on flashes the host holds (RemoteFlash, so the host
 * arms the power cuts), with the host's sockets (RemoteStreamConnector).
 * Several devices share one XS machine, each with its own runtime
 * instances, flash, streams, virtual clock and watchdog (the firmware keeps
 * nothing at module level). Host commands are JSON, each with `device`
 * (default 0): `{boot: {init, nowMs}}`, `{append: hex}`, `{status: true}`,
 * `{powerOff: true}`, `{stop: true}`, `{signedTime: wallMs}`; and for the
 * whole machine `{statusAll: true}` and `{setTimeAll: ms}` (time moves for
 * every device, each does what is due; replies with every status).
 */
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { RemoteFlash } from '../xs/guest/remote-flash.ts';
import { BridgeClock, handleBridgeCommand, hostEntropy, RemoteStreamConnector, type BridgeApp } from '../xs/guest/remote-stream.ts';
import { fromUtf8, utf8 } from '../xs/wire.ts';
import { hexBytes } from './hex.ts';
import { memoEd25519 } from './memo-ed25519.ts';
import { SimRuntimeDevice, type RuntimeDeviceInit, type RuntimeDeviceStatus } from './runtime-device.ts';

export interface XsRuntimeBoot {
  readonly init: RuntimeDeviceInit;
  readonly flashHandle: number;
  readonly nowMs: number;
}

interface Request {
  device?: number;
  boot?: XsRuntimeBoot;
  append?: string;
  status?: boolean;
  stop?: boolean;
  powerOff?: boolean;
  signedTime?: number;
  statusAll?: boolean;
  setTimeAll?: number;
  debug?: boolean;
}

function serve(): void {
  const clock = new BridgeClock();
  const connector = new RemoteStreamConnector();
  const crypto = memoEd25519(createNobleCrypto());
  const devices = new Map<number, SimRuntimeDevice>();
  const all = (): Record<string, RuntimeDeviceStatus> => {
    const out: Record<string, RuntimeDeviceStatus> = {};
    for (const [n, d] of devices) out[String(n)] = d.status();
    return out;
  };
  const app: BridgeApp = {
    service: () => {
      for (const d of devices.values()) d.service();
    },
    nextDueMs: () => undefined,
    command(request) {
      const m = JSON.parse(fromUtf8(request)) as Request;
      if (m.statusAll) return utf8(JSON.stringify(all()));
      if (m.setTimeAll !== undefined) {
        for (const d of devices.values()) d.setTime(m.setTimeAll);
        return utf8(JSON.stringify(all()));
      }
      const n = m.device ?? 0;
      if (m.boot) {
        let d = devices.get(n);
        if (d === undefined) {
          d = new SimRuntimeDevice(RemoteFlash.attach(m.boot.flashHandle), connector, hostEntropy, crypto, m.boot.init);
          devices.set(n, d);
        }
        d.boot(m.boot.nowMs);
        return utf8(JSON.stringify(d.status()));
      }
      const d = devices.get(n);
      if (d === undefined) return utf8(JSON.stringify({ alive: false }));
      if (m.debug) return utf8(JSON.stringify(d.debug()));
      if (m.append !== undefined) return utf8(JSON.stringify(d.append(hexBytes(m.append))));
      if (m.signedTime !== undefined) d.noteSignedTime(m.signedTime);
      if (m.powerOff) d.powerOff();
      if (m.stop) d.stop();
      return utf8(JSON.stringify(d.status()));
    },
  };
  (globalThis as { handleCommand?: (request: ArrayBuffer) => ArrayBuffer }).handleCommand = (request) => {
    const reply = handleBridgeCommand(new Uint8Array(request), connector, clock, app);
    return reply.buffer.slice(reply.byteOffset, reply.byteOffset + reply.byteLength) as ArrayBuffer;
  };
}

serve();
