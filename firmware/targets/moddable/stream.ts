/**
 * `StreamConnector` / `ByteStream` (firmware/hal/stream.ts) over Moddable's
 * `socket` module (`Socket`, TCP by host name: lwIP resolves it) and, for
 * TLS, `securesocket` (`SecureSocket`, the same API plus `secure`).
 *
 * The socket's callback maps onto the HAL's:
 * - `connected` (1): the first `onWritable`, with the room `write()` reports;
 * - `readable` (2, value = bytes): `onReadable(value)`;
 * - `writable` (3, value = bytes): `onWritable(value)`;
 * - `disconnected` (-1) and `error` (-2): `onError('disconnected' | 'error')`,
 *   once; the socket is closed and no callback follows.
 * `read(target)` copies what the socket holds now (`read()` counts it,
 * `read(ArrayBuffer, n)` takes it). `write(data)` refuses more than the room
 * the socket reports (`TargetError('write-overflow')`: the socket would throw
 * "can't write all data") and returns the room left. Callbacks never run
 * inside `connect`, `read` or `write`: Moddable delivers them from its event
 * loop.
 */
import type { ByteStream, ByteStreamCallbacks, StreamConnector } from '../../hal/stream.ts';
import { TargetError } from './errors.ts';
import { SOCKET_MESSAGE, type SocketClass, type SocketInstance } from './modules.ts';

export interface ModdableStreamOptions {
  readonly Socket: SocketClass;
  /** `securesocket`'s SecureSocket; required with `tls`. */
  readonly SecureSocket?: SocketClass;
  /** Connect with TLS, passing this as SecureSocket's `secure` dictionary (protocolVersion, trustedCA, ...). */
  readonly tls?: Readonly<Record<string, unknown>>;
}

export function createModdableConnector(options: ModdableStreamOptions): StreamConnector {
  const { Socket, SecureSocket, tls } = options;
  return Object.freeze<StreamConnector>({
    connect(host: string, port: number, callbacks: ByteStreamCallbacks): ByteStream {
      if (typeof host !== 'string' || host.length === 0) throw new TypeError('host must be a non-empty string');
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`port ${String(port)} outside 1..65535`);
      if (tls !== undefined) {
        if (SecureSocket === undefined) throw new TargetError('no-tls', 'TLS asked but the build has no securesocket module');
        return new ModdableByteStream(new SecureSocket({ host, port, secure: tls }), callbacks);
      }
      return new ModdableByteStream(new Socket({ host, port }), callbacks);
    },
  });
}

export class ModdableByteStream implements ByteStream {
  private open = true;

  constructor(private readonly socket: SocketInstance, private readonly callbacks: ByteStreamCallbacks) {
    socket.callback = (message: number, value?: number) => this.onMessage(message, value);
  }

  read(target: Uint8Array): number {
    if (!(target instanceof Uint8Array)) throw new TypeError('target must be a Uint8Array');
    if (!this.open) throw new TargetError('closed', 'read on a closed stream');
    const available = this.socket.read();
    const count = Math.min(available, target.length);
    if (count <= 0) return 0;
    const bytes = new Uint8Array(this.socket.read(ArrayBuffer, count));
    target.set(bytes);
    return bytes.length;
  }

  write(data: Uint8Array): number {
    if (!(data instanceof Uint8Array)) throw new TypeError('data must be a Uint8Array');
    if (!this.open) throw new TargetError('closed', 'write on a closed stream');
    const room = this.socket.write();
    if (data.length > room) throw new TargetError('write-overflow', `write of ${data.length} bytes, the socket has room for ${room}`);
    if (data.length > 0) this.socket.write(data);
    return this.socket.write();
  }

  close(): void {
    if (!this.open) return;
    this.open = false;
    this.socket.close();
  }

  private onMessage(message: number, value: number | undefined): void {
    if (!this.open) return;
    switch (message) {
      case SOCKET_MESSAGE.connected:
        this.callbacks.onWritable(this.socket.write());
        return;
      case SOCKET_MESSAGE.readable:
        if (value !== undefined && value > 0) this.callbacks.onReadable(value);
        return;
      case SOCKET_MESSAGE.writable:
        if (value !== undefined) this.callbacks.onWritable(value);
        return;
      case SOCKET_MESSAGE.disconnected:
      case SOCKET_MESSAGE.error: {
        this.open = false;
        try {
          this.socket.close();
        } finally {
          this.callbacks.onError(message === SOCKET_MESSAGE.error ? 'error' : 'disconnected');
        }
        return;
      }
      default:
        return;
    }
  }
}
