/**
 * Node side of the XS harness: answers the guest's `issueCommand` calls
 * (tools/xs/wire.ts). Holds the simulated flashes the firmware in XS uses,
 * writes failure images, and prints the guest's log lines.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { FlashMisuse, isPowerCut } from '../sim/flash/errors.ts';
import { encodeImage } from '../sim/flash/image-codec.ts';
import { SimFlash, type SimFlashOptions } from '../sim/flash/sim-flash.ts';
import { concatBytes, decodeTearMode, FLASH_HEADER_LENGTH, FlashOp, fromUtf8, ReplyStatus, Service, utf8 } from './wire.ts';

export const FAILURE_IMAGE_DIR = '.holdfast/failures';

export class HostServices {
  readonly flashes = new Map<number, SimFlash>();
  private nextHandle = 1;
  /** Services added by other host modules (the stream bridge: STREAM, ENTROPY), by service byte. */
  private readonly extra = new Map<number, (request: Uint8Array) => Uint8Array>();

  constructor(private readonly imageDir = FAILURE_IMAGE_DIR, private readonly log: (line: string) => void = (l) => console.error(l)) {}

  handle = (request: Uint8Array): Uint8Array => {
    switch (request[0]) {
      case Service.FLASH:
        return this.flash(request);
      case Service.SAVE_IMAGE:
        return this.saveImage(request.subarray(1));
      case Service.LOG:
        this.log(fromUtf8(request.subarray(1)));
        return Uint8Array.of(ReplyStatus.OK);
      default: {
        const extra = this.extra.get(request[0]);
        return extra ? extra(request) : errorReply(new Error(`unknown service ${request[0]}`));
      }
    }
  };

  /** Answer requests whose first byte is `service` with `handler` (the built-in services cannot be replaced). */
  register(service: number, handler: (request: Uint8Array) => Uint8Array): void {
    if (service === Service.FLASH || service === Service.SAVE_IMAGE || service === Service.LOG) throw new Error(`service ${service} is built in`);
    this.extra.set(service, handler);
  }

  private flash(request: Uint8Array): Uint8Array {
    const view = new DataView(request.buffer, request.byteOffset, request.byteLength);
    const op = request[1];
    const operand = (i: number): number => view.getUint32(FLASH_HEADER_LENGTH + i * 4, true);
    try {
      if (op === FlashOp.CREATE) return ok(u32(this.create(JSON.parse(fromUtf8(request.subarray(FLASH_HEADER_LENGTH))) as SimFlashOptions)));
      const flash = this.flashes.get(view.getUint32(2, true));
      if (!flash) throw new Error(`no flash with handle ${view.getUint32(2, true)}`);
      switch (op) {
        case FlashOp.READ: {
          const target = new Uint8Array(operand(1));
          flash.read(operand(0), target);
          return ok(target);
        }
        case FlashOp.WRITE:
          flash.write(operand(0), request.subarray(FLASH_HEADER_LENGTH + 4));
          return ok();
        case FlashOp.ERASE:
          flash.eraseBlock(operand(0));
          return ok();
        case FlashOp.STATUS:
          return ok(utf8(JSON.stringify(flash.status())));
        case FlashOp.ARM_CUT:
          flash.armCut({ atOperation: operand(0), seed: operand(1), tear: decodeTearMode(request.length > FLASH_HEADER_LENGTH + 8 ? operand(2) : undefined) });
          return ok();
        case FlashOp.DISARM_CUT:
          flash.disarmCut();
          return ok();
        case FlashOp.POWER_ON:
          flash.powerOn();
          return ok();
        case FlashOp.COUNTERS:
          return ok(utf8(JSON.stringify(flash.counters)));
        case FlashOp.SNAPSHOT:
          return ok(encodeImage(flash));
        default:
          throw new Error(`unknown flash op ${op}`);
      }
    } catch (error) {
      return errorReply(error);
    }
  }

  private create(options: SimFlashOptions): number {
    const handle = this.nextHandle++;
    this.flashes.set(handle, new SimFlash(options));
    return handle;
  }

  private saveImage(body: Uint8Array): Uint8Array {
    const split = body.indexOf(0);
    const name = fromUtf8(body.subarray(0, split)).replace(/[^\w.-]+/g, '_');
    mkdirSync(this.imageDir, { recursive: true });
    const path = resolve(join(this.imageDir, `${name}.hfimg`));
    writeFileSync(path, body.subarray(split + 1));
    return ok(utf8(path));
  }
}

export function ok(body?: Uint8Array): Uint8Array {
  return body ? concatBytes(Uint8Array.of(ReplyStatus.OK), body) : Uint8Array.of(ReplyStatus.OK);
}

function u32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value, true);
  return out;
}

export function errorReply(error: unknown): Uint8Array {
  if (isPowerCut(error)) return concatBytes(Uint8Array.of(ReplyStatus.POWER_CUT), u32(error.operation));
  if (error instanceof FlashMisuse) return concatBytes(Uint8Array.of(ReplyStatus.MISUSE), utf8(error.message));
  const e = error instanceof Error ? error : new Error(String(error));
  return concatBytes(Uint8Array.of(ReplyStatus.ERROR), utf8(`${e.name}: ${e.message}`));
}
