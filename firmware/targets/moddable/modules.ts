/**
 * The shapes of the Moddable modules the adapters use, as arguments: the
 * adapters never import a Moddable specifier themselves, `device.ts` does
 * and hands the real modules in (and the type checker proves they fit these
 * shapes there); the tests hand in emulated modules of the same names
 * (tools/xs/moddable-emu/) and run the same adapter code in Node and XS.
 * Declarations of the real modules: moddable-sdk.d.ts.
 */

/** A buffer argument Moddable's host functions accept (xsmcGetBufferReadable/Writable). */
export type ModdableBuffer = ArrayBufferLike | ArrayBufferView;

/** `embedded:storage/flash` (the default export). */
export interface FlashModule {
  open(options: { path: string; mode?: 'r' | 'r+' }): FlashStorage;
}

/** An open flash partition of `embedded:storage/flash`. */
export interface FlashStorage {
  read(buffer: ModdableBuffer, byteOffset: number): number;
  write(buffer: ModdableBuffer, byteOffset: number): void;
  eraseBlock(start: number, end?: number): void;
  status(): { readonly size: number; readonly blockLength: number; readonly blocks: number };
  close(): void;
}

/** `time` (the default export, the `Time` class). */
export interface TimeModule {
  readonly ticks: number;
}

/** `timer` (the default export, the `Timer` class); ids are opaque. */
export interface TimerModule {
  set(callback: () => void, delay: number): unknown;
  schedule(id: unknown, delay: number): void;
  clear(id: unknown): void;
}

/** An instance of `socket`'s `Socket` (or `securesocket`'s `SecureSocket`). */
export interface SocketInstance {
  read(): number;
  read(type: typeof ArrayBuffer, count?: number): ArrayBuffer;
  write(): number;
  write(data: ModdableBuffer): void;
  close(): void;
  callback: (message: number, value?: number) => void;
}

/** The `Socket` class of `socket`, or `SecureSocket` of `securesocket` (which also takes `secure`). */
export interface SocketClass {
  new (options: { host: string; port: number; secure?: Readonly<Record<string, unknown>> }): SocketInstance;
}

/** The message codes of the socket callback (socket.js: Socket.connected ... Socket.error). */
export const SOCKET_MESSAGE = Object.freeze({ connected: 1, readable: 2, writable: 3, disconnected: -1, error: -2 } as const);

/** `crypt`'s `Digest`. */
export interface DigestInstance {
  write(data: ModdableBuffer): void;
  close(): ArrayBuffer;
}
export interface DigestClass {
  new (type: 'SHA256'): DigestInstance;
}

/** `embedded:io/serial` (the default export). */
export interface SerialInstance {
  read(buffer: ModdableBuffer): number;
  write(buffer: ModdableBuffer): void;
  close(): void;
}
export interface SerialOptions {
  receive?: number;
  transmit?: number;
  port?: number;
  baud: number;
  format?: 'buffer';
  onReadable?: (count: number) => void;
  onWritable?: (count: number) => void;
  onError?: () => void;
}
export interface SerialClass {
  new (options: SerialOptions): SerialInstance;
}

/** holdfast's glue (`holdfast-native`, tools/boards/moddable/holdfast-native.js + .c). */
export interface HoldfastNative {
  resetReason(): string;
  restart(): void;
  feedWatchdog(): void;
  watchdogTimeout(): number;
  runningPartition(): string;
  secureVersion(): number;
  raiseSecureVersion(version: number): void;
  imageSecureVersion(): number;
  expireWatchdog(): void;
  fillRandom(buffer: ModdableBuffer): void;
  partitionEncrypted(name: string): boolean;
  readPartitionRaw(name: string, byteOffset: number, buffer: ModdableBuffer): void;
}

/** Everything `createModdableHal` needs from the platform. */
export interface ModdableModules {
  readonly flash: FlashModule;
  readonly time: TimeModule;
  readonly timer: TimerModule;
  readonly Socket: SocketClass;
  /** Absent when the build has no TLS: then a `tls` connector refuses to connect. */
  readonly SecureSocket?: SocketClass;
  /** Absent, or failing to construct: the pure-JavaScript SHA-256 is used. */
  readonly Digest?: DigestClass;
  readonly Serial?: SerialClass;
  readonly native: HoldfastNative;
}
