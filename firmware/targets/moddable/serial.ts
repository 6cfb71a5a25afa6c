/**
 * The console UART as a `ByteStream` (firmware/hal/stream.ts) over
 * ECMA-419's `embedded:io/serial`: a thin byte pipe; the console's line
 * protocol is built on top of it elsewhere (firmware/protocol/console/).
 * `onReadable(count)` and `onWritable(count)` pass through; `read(target)`
 * fills the caller's buffer (`read(buffer)` returns the count); `write`
 * refuses more than the room last reported (`write-overflow`: the module
 * throws "output full") and returns the room left; the module's `onError`
 * becomes `onError('error')`, once.
 */
import type { ByteStream, ByteStreamCallbacks } from '../../hal/stream.ts';
import { TargetError } from './errors.ts';
import type { SerialClass, SerialInstance } from './modules.ts';

export interface ConsoleUartOptions {
  readonly baud: number;
  /** UART number; the module's default (0) when absent. ESP-IDF refuses a UART whose driver is installed ("port in use"). */
  readonly port?: number;
  /** GPIO of RX and TX: ESP32's serial module needs the pins (it throws "invalid" without them). */
  readonly receive: number;
  readonly transmit: number;
}

export function openConsoleUart(Serial: SerialClass, options: ConsoleUartOptions, callbacks: ByteStreamCallbacks): ByteStream {
  if (!Number.isInteger(options.baud) || options.baud <= 0) throw new RangeError(`baud ${String(options.baud)}: expected a positive integer`);
  if (!Number.isInteger(options.receive) || options.receive < 0 || !Number.isInteger(options.transmit) || options.transmit < 0) {
    throw new RangeError(`console UART pins receive ${String(options.receive)}, transmit ${String(options.transmit)}: expected GPIO numbers`);
  }
  let open = true;
  let room = 0;
  const serial: SerialInstance = new Serial({
    ...(options.port === undefined ? {} : { port: options.port }),
    receive: options.receive,
    transmit: options.transmit,
    baud: options.baud,
    format: 'buffer',
    onReadable: (count: number) => {
      if (open && count > 0) callbacks.onReadable(count);
    },
    onWritable: (count: number) => {
      if (!open) return;
      room = count;
      callbacks.onWritable(count);
    },
    onError: () => {
      if (!open) return;
      open = false;
      callbacks.onError('error');
    },
  });
  return Object.freeze<ByteStream>({
    read(target: Uint8Array): number {
      if (!(target instanceof Uint8Array)) throw new TypeError('target must be a Uint8Array');
      if (!open) throw new TargetError('closed', 'read on a closed serial port');
      if (target.length === 0) return 0;
      return serial.read(target);
    },
    write(data: Uint8Array): number {
      if (!(data instanceof Uint8Array)) throw new TypeError('data must be a Uint8Array');
      if (!open) throw new TargetError('closed', 'write on a closed serial port');
      if (data.length > room) throw new TargetError('write-overflow', `write of ${data.length} bytes, the UART has room for ${room}`);
      if (data.length > 0) serial.write(data);
      room -= data.length;
      return room;
    },
    close(): void {
      if (!open) return;
      open = false;
      serial.close();
    },
  });
}
