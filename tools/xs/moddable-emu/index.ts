/**
 * Emulated Moddable modules for the target's tests (docs/PORTING.md, "The
 * Moddable adapters"): the same shapes as the SDK's `embedded:storage/flash`,
 * `time`, `timer`, `socket`, `securesocket`, `crypt`, `embedded:io/serial`
 * and holdfast's `holdfast-native`, backed by simulated flash. Engine-neutral:
 * bundled with the cases into XS, so the adapters run there unchanged.
 */
import type { ModdableModules } from '../../../firmware/targets/moddable/modules.ts';
import { EmuFlashModule, type EmuPartition } from './flash.ts';
import { EmuNative, type EmuNativeOptions } from './native.ts';
import { EmuTime, EmuTimer } from './time.ts';
import { createEmuSockets, type EmuSocketModule } from './socket.ts';
import { createEmuDigest, type EmuDigestStats } from './crypt.ts';
import { createEmuSerial, type EmuSerial } from './serial.ts';

export { EmuFlashModule, keystreamByte, bytesOf, type EmuPartition } from './flash.ts';
export { EmuNative, EmuReset } from './native.ts';
export { EmuTime, EmuTimer } from './time.ts';
export { EmuSocket, createEmuSockets } from './socket.ts';
export { createEmuDigest } from './crypt.ts';
export { EmuSerial, createEmuSerial } from './serial.ts';

export interface EmuModdable {
  readonly modules: ModdableModules;
  readonly flash: EmuFlashModule;
  readonly native: EmuNative;
  readonly time: EmuTime;
  readonly timer: EmuTimer;
  readonly sockets: EmuSocketModule;
  readonly digest: EmuDigestStats;
  readonly serialPorts: EmuSerial[];
}

export interface EmuModdableOptions extends Omit<EmuNativeOptions, 'flash'> {
  readonly partitions: Readonly<Record<string, EmuPartition>>;
  readonly startMs?: number;
  /** No `crypt` module (undefined) or one whose Digest throws ('failing'). */
  readonly digest?: 'native' | 'failing' | 'absent';
}

export function createEmuModdable(options: EmuModdableOptions): EmuModdable {
  const running = options.runningPartition ?? 'ota_0';
  const flash = new EmuFlashModule({ partitions: options.partitions, ...(running === 'ota_0' || running === 'ota_1' ? { runningSlot: running === 'ota_0' ? 0 : 1 } : {}) });
  const native = new EmuNative({ ...options, flash });
  const time = new EmuTime(options.startMs ?? 0);
  const timer = new EmuTimer(time);
  const sockets = createEmuSockets();
  const digest = createEmuDigest({ failing: options.digest === 'failing' });
  const serial = createEmuSerial();
  const modules: ModdableModules = {
    flash,
    time,
    timer,
    Socket: sockets.Socket,
    SecureSocket: sockets.SecureSocket,
    ...(options.digest === 'absent' ? {} : { Digest: digest.Digest }),
    Serial: serial.Serial,
    native,
  };
  return { modules, flash, native, time, timer, sockets, digest: digest.stats, serialPorts: serial.ports };
}
