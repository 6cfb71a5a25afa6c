/**
 * The Moddable SDK modules the target imports, declared as the SDK defines
 * them (checked against the Moddable SDK sources of June 2026, 8.2.x):
 * only the members holdfast calls. `device.ts` is the one file that imports
 * these specifiers; the adapters take the module objects as arguments
 * (`modules.ts`), so their logic runs in tests against emulated modules of
 * the same shape (tools/xs/moddable-emu/). Why not `@moddable/typings`: see
 * docs/PORTING.md, "Moddable modules and typings".
 */

/** modules/io/flash/esp32/flash-esp32.js (ECMA-419 flash storage). */
declare module 'embedded:storage/flash' {
  interface FlashStatus {
    readonly size: number;
    readonly blockLength: number;
    readonly blocks: number;
  }
  interface FlashStorage {
    /** With a buffer (ArrayBuffer or view): fills it and returns its byteLength; with a number: a new ArrayBuffer. */
    read(buffer: ArrayBufferLike | ArrayBufferView, byteOffset: number): number;
    read(byteLength: number, byteOffset: number): ArrayBuffer;
    write(buffer: ArrayBufferLike | ArrayBufferView, byteOffset: number): void;
    /** Erases blocks [start, end) (end defaults to start + 1). */
    eraseBlock(start: number, end?: number): void;
    status(): FlashStatus;
    close(): void;
  }
  const Flash: {
    /** `path`: a data partition's label, or "running" / "nextota" (app partitions); mode "r" or "r+". */
    open(options: { path: string; mode?: 'r' | 'r+' }): FlashStorage;
  };
  export default Flash;
}

/** modules/io/serial/esp32/serial.js (ECMA-419 serial). */
declare module 'embedded:io/serial' {
  interface SerialOptions {
    receive?: number;
    transmit?: number;
    port?: number;
    baud: number;
    format?: 'buffer';
    onReadable?: (this: Serial, count: number) => void;
    onWritable?: (this: Serial, count: number) => void;
    onError?: (this: Serial) => void;
  }
  class Serial {
    constructor(options: SerialOptions);
    /** With a buffer: fills it, returns the byte count; with a count or nothing: a new ArrayBuffer. */
    read(buffer: ArrayBufferLike | ArrayBufferView): number;
    read(count?: number): ArrayBuffer | undefined;
    /** Throws "output full" when the buffer exceeds the room last reported by onWritable. */
    write(buffer: ArrayBufferLike | ArrayBufferView): void;
    close(): void;
  }
  export default Serial;
}

/** modules/base/time/time.js: `ticks` is modMilliseconds() through xsmcSetInteger, a signed 32-bit value. */
declare module 'time' {
  const Time: {
    readonly ticks: number;
  };
  export default Time;
}

/** modules/base/timer/timer.js. */
declare module 'timer' {
  const Timer: {
    set(callback: (id: unknown) => void, delay?: number, repeat?: number): unknown;
    schedule(id: unknown, delay?: number, repeat?: number): void;
    clear(id: unknown): void;
  };
  export default Timer;
}

/** modules/network/socket/socket.js (lwip/modSocket.c on ESP32). */
declare module 'socket' {
  interface SocketOptions {
    host?: string;
    address?: string;
    port: number;
    kind?: 'TCP';
    noDelay?: boolean;
  }
  class Socket {
    constructor(options: SocketOptions);
    /** No argument: bytes readable now; `(ArrayBuffer, count)`: up to count bytes. */
    read(): number;
    read(type: typeof ArrayBuffer, count?: number): ArrayBuffer;
    /** No argument: bytes writable now; with data: throws "can't write all data" beyond that. */
    write(): number;
    write(data: ArrayBufferLike | ArrayBufferView): void;
    close(): void;
    /** 1 connected, 2 readable (value: bytes), 3 writable (value: bytes), -1 disconnected, -2 error. */
    callback: (message: number, value?: number) => void;
    static readonly connected: 1;
    static readonly readable: 2;
    static readonly writable: 3;
    static readonly disconnected: -1;
    static readonly error: -2;
  }
  export { Socket };
}

/** modules/crypt/securesocket/securesocket.js: its own class with the socket's API (callback messages, read, write) over TLS. */
declare module 'securesocket' {
  class SecureSocket {
    constructor(options: { host?: string; address?: string; port: number; secure?: Readonly<Record<string, unknown>> });
    read(): number;
    read(type: typeof ArrayBuffer, count?: number): ArrayBuffer;
    write(): number;
    write(data: ArrayBufferLike | ArrayBufferView): void;
    close(): void;
    callback: (message: number, value?: number) => void;
  }
  export default SecureSocket;
}

/** modules/crypt/digest/crypt.js. */
declare module 'crypt' {
  class Digest {
    constructor(type: 'SHA256' | 'SHA1' | 'SHA384' | 'SHA512' | 'MD5');
    write(data: ArrayBufferLike | ArrayBufferView): void;
    close(): ArrayBuffer;
    reset(): void;
  }
  export { Digest };
}

/** tools/boards/moddable/holdfast-native.js (+ .c): holdfast's own glue, copied into every project. */
declare module 'holdfast-native' {
  export function resetReason(): string;
  export function restart(): void;
  export function feedWatchdog(): void;
  export function watchdogTimeout(): number;
  export function runningPartition(): string;
  export function secureVersion(): number;
  export function raiseSecureVersion(version: number): void;
  export function imageSecureVersion(): number;
  export function expireWatchdog(): void;
  export function fillRandom(buffer: ArrayBufferLike | ArrayBufferView): void;
  export function partitionEncrypted(name: string): boolean;
  export function readPartitionRaw(name: string, byteOffset: number, buffer: ArrayBufferLike | ArrayBufferView): void;
}
