/**
 * Emulated `embedded:io/serial` (Moddable SDK modules/io/serial/esp32):
 * pins as modules/io/serial/esp32/serial.c checks them (neither receive nor
 * transmit: "invalid"), `read(buffer)` fills the buffer from what arrived and returns the count,
 * `write(buffer)` beyond the room throws "output full"; the test delivers
 * bytes (`arrive`), room (`drain`) and errors (`fail`).
 */
import type { ModdableBuffer, SerialClass, SerialInstance, SerialOptions } from '../../../firmware/targets/moddable/modules.ts';
import { bytesOf } from './flash.ts';

export class EmuSerial implements SerialInstance {
  closed = false;
  readonly transmitted: number[] = [];
  private received: number[] = [];
  private roomLeft: number;

  constructor(readonly options: SerialOptions, initialRoom: number) {
    if (options.receive === undefined && options.transmit === undefined) throw new Error('invalid');
    this.roomLeft = initialRoom;
  }

  read(buffer: ModdableBuffer): number {
    if (this.closed) throw new Error('closed');
    const target = bytesOf(buffer);
    const n = Math.min(target.length, this.received.length);
    for (let i = 0; i < n; i++) target[i] = this.received[i];
    this.received = this.received.slice(n);
    return n;
  }

  write(buffer: ModdableBuffer): void {
    if (this.closed) throw new Error('closed');
    const bytes = bytesOf(buffer);
    if (bytes.length > this.roomLeft) throw new Error('output full');
    this.roomLeft -= bytes.length;
    for (const b of bytes) this.transmitted.push(b);
  }

  close(): void {
    this.closed = true;
  }

  arrive(bytes: readonly number[]): void {
    for (const b of bytes) this.received.push(b);
    this.options.onReadable?.(this.received.length);
  }
  drain(room: number): void {
    this.roomLeft = room;
    this.options.onWritable?.(room);
  }
  fail(): void {
    this.options.onError?.();
  }
}

export function createEmuSerial(initialRoom = 128): { Serial: SerialClass; ports: EmuSerial[] } {
  const ports: EmuSerial[] = [];
  const Serial = class {
    constructor(options: SerialOptions) {
      const port = new EmuSerial(options, initialRoom);
      ports.push(port);
      return port;
    }
  } as unknown as SerialClass;
  return { Serial, ports };
}
