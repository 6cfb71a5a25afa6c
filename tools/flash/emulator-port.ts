/**
 * The ROM loader emulator (rom-loader-emulator.ts) on a serial device: one
 * end of a pseudo-terminal pair in the tests (`socat -d -d pty,raw,echo=0
 * pty,raw,echo=0`), whose other end `holdfast flash` opens. Bytes read from
 * the device go to the emulator; its responses are written back.
 * CHANGE_BAUDRATE does not reconfigure the device (see below).
 *
 * Host tool (Node, serialport).
 */
import { SerialPort } from 'serialport';
import { RomLoaderEmulator, type RomLoaderEmulatorOptions } from './rom-loader-emulator.ts';

export interface EmulatorOnPort {
  readonly emulator: RomLoaderEmulator;
  /** Settles when every byte received so far has been handled. */
  idle(): Promise<void>;
  /** Why the device closed, once it has ('' while open). */
  readonly closedReason: () => string;
  close(): Promise<void>;
}

export async function serveRomLoader(path: string, options: Omit<RomLoaderEmulatorOptions, 'send'>): Promise<EmulatorOnPort> {
  const port = new SerialPort({ path, baudRate: 115200, autoOpen: false, hupcl: false });
  await new Promise<void>((resolve, reject) => port.open((error) => (error ? reject(error) : resolve())));
  let closed = '';
  let pending: Promise<void> = Promise.resolve();
  const emulator = new RomLoaderEmulator({
    ...options,
    send: (bytes) => {
      if (port.isOpen) port.write(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    },
    // A pseudo-terminal has no line speed: CHANGE_BAUDRATE is answered and
    // recorded, and the device is left as it is (reconfiguring it here could
    // race with bytes the host sends next).
  });
  port.on('data', (chunk: Buffer) => {
    pending = emulator.receive(new Uint8Array(chunk));
  });
  port.on('close', (error: Error | null) => {
    closed = error?.message ?? 'closed';
  });
  port.on('error', (error: Error) => {
    closed = error.message;
  });
  return {
    emulator,
    idle: () => pending,
    closedReason: () => closed,
    close: () =>
      new Promise<void>((resolve) => {
        if (!port.isOpen) return resolve();
        port.close(() => resolve());
      }),
  };
}
