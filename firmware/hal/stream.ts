/**
 * A connected byte stream (TCP, TLS or a serial link), event driven as in
 * ECMA-419's `embedded:io/socket/tcp`: the owner reads when told bytes are
 * readable, and writes while there is room.
 */
export interface ByteStreamCallbacks {
  /** `byteCount` bytes can be read now. */
  onReadable(byteCount: number): void;
  /** `byteCount` bytes can be written without blocking. */
  onWritable(byteCount: number): void;
  /** The stream failed or closed; no further callbacks follow. */
  onError(reason: string): void;
}

export interface ByteStream {
  /** Copy up to `target.length` readable bytes; returns how many. */
  read(target: Uint8Array): number;
  /** Queue bytes; returns how many more bytes fit (backpressure). */
  write(data: Uint8Array): number;
  close(): void;
}

export interface StreamConnector {
  connect(host: string, port: number, callbacks: ByteStreamCallbacks): ByteStream;
}
