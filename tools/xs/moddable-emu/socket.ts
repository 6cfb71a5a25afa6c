/**
 * Emulated `socket` (`Socket`) and `securesocket` (`SecureSocket`) of the
 * Moddable SDK, scripted by the test: each constructed socket is an
 * `EmuSocket` the test drives (`connected`, `receive`, `room`, `disconnect`,
 * `fail`), delivering the module's callback messages (1 connected,
 * 2 readable with the bytes readable, 3 writable with the room, -1
 * disconnected, -2 error) synchronously when told, as Moddable's event loop
 * would between turns. Reads and writes follow lwip/modSocket.c: `read()`
 * counts what is buffered, `read(ArrayBuffer, n)` takes up to n bytes and
 * throws "nothing to read" when empty, `write()` tells the room and
 * `write(data)` beyond it throws "can't write all data".
 */
import type { ModdableBuffer, SocketClass, SocketInstance } from '../../../firmware/targets/moddable/modules.ts';
import { bytesOf } from './flash.ts';

export class EmuSocket implements SocketInstance {
  callback: (message: number, value?: number) => void = () => {};
  closed = false;
  /** Bytes the firmware wrote, in order. */
  readonly written: number[] = [];
  private inbound: number[] = [];
  private writable: number;

  constructor(readonly options: { host: string; port: number; secure?: Readonly<Record<string, unknown>> }, readonly tls: boolean, initialRoom: number) {
    this.writable = initialRoom;
  }

  read(): number;
  read(type: typeof ArrayBuffer, count?: number): ArrayBuffer;
  read(type?: typeof ArrayBuffer, count?: number): number | ArrayBuffer {
    if (this.closed) throw new Error('read on closed socket');
    if (type === undefined) return this.inbound.length;
    if (this.inbound.length === 0) throw new Error('nothing to read');
    const n = count === undefined ? this.inbound.length : Math.min(count, this.inbound.length);
    const out = new Uint8Array(this.inbound.slice(0, n));
    this.inbound = this.inbound.slice(n);
    return out.buffer;
  }

  write(): number;
  write(data: ModdableBuffer): void;
  write(data?: ModdableBuffer): number | void {
    if (data === undefined) return this.closed ? 0 : this.writable;
    if (this.closed) throw new Error('write on closed socket');
    const bytes = bytesOf(data);
    if (bytes.length > this.writable) throw new Error("can't write all data");
    this.writable -= bytes.length;
    for (const b of bytes) this.written.push(b);
  }

  close(): void {
    this.closed = true;
  }

  // ---- the test's side

  connected(): void {
    this.callback(1);
  }
  receive(bytes: readonly number[]): void {
    for (const b of bytes) this.inbound.push(b);
    this.callback(2, this.inbound.length);
  }
  room(bytes: number): void {
    this.writable = bytes;
    this.callback(3, bytes);
  }
  disconnect(): void {
    this.callback(-1);
  }
  fail(): void {
    this.callback(-2);
  }
}

export interface EmuSocketModule {
  readonly Socket: SocketClass;
  readonly SecureSocket: SocketClass;
  /** Every socket constructed, in order. */
  readonly sockets: EmuSocket[];
}

export function createEmuSockets(initialRoom = 1460): EmuSocketModule {
  const sockets: EmuSocket[] = [];
  const make = (tls: boolean): SocketClass =>
    class {
      constructor(options: { host: string; port: number; secure?: Readonly<Record<string, unknown>> }) {
        const socket = new EmuSocket(options, tls, initialRoom);
        sockets.push(socket);
        return socket;
      }
    } as unknown as SocketClass;
  return { Socket: make(false), SecureSocket: make(true), sockets };
}
