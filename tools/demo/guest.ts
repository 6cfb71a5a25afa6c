/**
 * Inside XS, for `holdfast demo`: the frame log on a flash held by the host.
 * Each worker is one boot; the host kills it to take the RAM away.
 */
import { FrameLog } from '../../firmware/storage/frame-log.ts';
import { isPowerCut } from '../sim/flash/errors.ts';
import { RemoteFlash } from '../xs/guest/remote-flash.ts';
import { fromUtf8, utf8 } from '../xs/wire.ts';

interface DemoRequest {
  step: 'boot' | 'append';
  handle?: number;
  count?: number;
  /** Blocks of a new partition (default 4). */
  blocks?: number;
}

interface Boot {
  flash: RemoteFlash;
  log: FrameLog;
  next: number;
}

export function serveDemo(): void {
  const boots: Boot[] = [];
  (globalThis as { handleCommand?: (r: ArrayBuffer) => ArrayBuffer }).handleCommand = (request) => {
    const message = JSON.parse(fromUtf8(new Uint8Array(request))) as DemoRequest;
    const reply = message.step === 'boot' ? boot(boots, message.handle, message.blocks ?? 4) : append(boots[0], message.count ?? 0);
    return utf8(JSON.stringify(reply)).buffer as ArrayBuffer;
  };
}

function boot(boots: Boot[], handle: number | undefined, blocks: number) {
  const flash = handle === undefined ? RemoteFlash.create({ blocks }) : RemoteFlash.attach(handle);
  const log = new FrameLog(flash);
  const readings: number[] = [];
  const mount = log.mount((payload) => readings.push(JSON.parse(fromUtf8(payload)).n as number));
  boots.splice(0, boots.length, { flash, log, next: readings.length });
  return { handle: flash.id, frames: mount.frames, damagedBlocks: mount.damagedBlocks, readings };
}

function append(state: Boot, count: number) {
  let appended = 0;
  try {
    for (; appended < count; appended++) {
      state.log.append(utf8(JSON.stringify({ n: state.next, sensor: 'demo', value: (state.next * 7) % 100 })));
      state.next++;
    }
    return { appended, cut: false };
  } catch (error) {
    if (!isPowerCut(error)) throw error;
    return { appended, cut: true, operation: error.operation };
  }
}
