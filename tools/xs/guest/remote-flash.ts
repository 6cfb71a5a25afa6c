/**
 * Inside XS: a flash partition whose bytes live in a SimFlash on the Node
 * side, reached through `issueCommand`. The firmware under test sees an
 * ordinary FlashPartition; XS's meter then counts firmware work, not the
 * simulator's. Power cuts and misuse come back as the same error classes.
 */
import { FlashMisuse, PowerCut } from '../../sim/flash/errors.ts';
import { decodeImage } from '../../sim/flash/image-codec.ts';
import type { CutPlan, FlashCounters, SimFlashOptions, SimFlashSnapshot } from '../../sim/flash/sim-flash.ts';
import type { CuttableFlash } from '../../sim/power-cut.ts';
import type { FlashStatus } from '../../../firmware/hal/flash.ts';
import { encodeFlashRequest, encodeTearMode, FlashOp, fromUtf8, ReplyStatus, utf8 } from '../wire.ts';
import { callHost } from './host-call.ts';

export class RemoteFlash implements CuttableFlash {
  private readonly geometry: FlashStatus;

  private constructor(private readonly handle: number) {
    this.geometry = JSON.parse(fromUtf8(this.call(FlashOp.STATUS, []))) as FlashStatus;
  }

  static create(options: SimFlashOptions): RemoteFlash {
    const reply = flashCall(FlashOp.CREATE, 0, [], utf8(JSON.stringify(options)));
    return new RemoteFlash(new DataView(reply.buffer, reply.byteOffset).getUint32(0, true));
  }

  /** A flash the host already holds (it outlives XS workers: a reboot keeps the flash). */
  static attach(handle: number): RemoteFlash {
    return new RemoteFlash(handle);
  }

  get id(): number {
    return this.handle;
  }

  status(): FlashStatus {
    return this.geometry;
  }

  read(byteOffset: number, target: Uint8Array): void {
    target.set(this.call(FlashOp.READ, [byteOffset, target.length]));
  }

  write(byteOffset: number, data: Uint8Array): void {
    this.call(FlashOp.WRITE, [byteOffset], data);
  }

  eraseBlock(block: number): void {
    this.call(FlashOp.ERASE, [block]);
  }

  armCut(plan: CutPlan): void {
    // The tear mode travels too, so a plan tears identically in Node and in XS.
    this.call(FlashOp.ARM_CUT, [plan.atOperation, plan.seed >>> 0, encodeTearMode(plan.tear)]);
  }

  disarmCut(): void {
    this.call(FlashOp.DISARM_CUT, []);
  }

  powerOn(): void {
    this.call(FlashOp.POWER_ON, []);
  }

  get counters(): FlashCounters {
    return JSON.parse(fromUtf8(this.call(FlashOp.COUNTERS, []))) as FlashCounters;
  }

  snapshot(): SimFlashSnapshot {
    return decodeImage(this.call(FlashOp.SNAPSHOT, [])).snapshot();
  }

  private call(op: number, operands: readonly number[], body?: Uint8Array): Uint8Array {
    return flashCall(op, this.handle, operands, body);
  }
}

function flashCall(op: number, handle: number, operands: readonly number[], body?: Uint8Array): Uint8Array {
  const reply = callHost(encodeFlashRequest(op, handle, operands, body));
  const status = reply[0];
  if (status === ReplyStatus.OK) return reply.subarray(1);
  if (status === ReplyStatus.POWER_CUT) throw new PowerCut(new DataView(reply.buffer, reply.byteOffset + 1).getUint32(0, true));
  const text = fromUtf8(reply.subarray(1));
  if (status === ReplyStatus.MISUSE) throw new FlashMisuse(text);
  throw new Error(`host flash error: ${text}`);
}
