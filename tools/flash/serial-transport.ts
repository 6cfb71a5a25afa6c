/**
 * esptool-js in Node. esptool-js 0.7.0 talks to a Web Serial `SerialPort`
 * (`open({baudRate})`, `close()`, `readable`/`writable` WHATWG streams,
 * `setSignals({dataTerminalReady, requestToSend, break})`, `getInfo()`;
 * optionally `setBaudRate(baud)` to change speed without reopening). Node
 * has no Web Serial, so `NodeSerialPort` gives that shape to a `serialport`
 * 13 port (prebuilt native binding), and `NodeTransport` is esptool-js's
 * Transport with one change: once the link is lost, reads fail at once
 * instead of polling out their timeout.
 *
 * Link loss (cable pulled, the far end of a pty closed) is `lost`: the
 * streams are errored and set to null as Web Serial does, pending and later
 * writes are refused, and `lostReason` says why. It is seen from
 * serialport's close and error events and, because those do not always
 * come, from the device node vanishing (checked every 200 ms, as
 * tools/console/client.ts does): a pty whose far end closed is removed from
 * /dev/pts and reads end-of-file for ever, which @serialport/bindings-cpp
 * 13 retries in a tight loop without any event; a USB adapter pulled out
 * loses its /dev/ttyUSB* node the same way. On loss the port is closed,
 * which ends that loop.
 *
 * A pseudo-terminal has no modem lines: DTR/RTS changes fail there with
 * ENOTTY, which is ignored (recorded in `signalsUnsupported`); on a real
 * USB-UART bridge they drive EN and GPIO0 for the reset into download mode.
 *
 * Host tool (Node).
 */
import { existsSync } from 'node:fs';
import { SerialPort } from 'serialport';
import { Transport } from 'esptool-js';

/** How often an open port checks that its device node still exists. */
const WATCH_MS = 200;

export class LinkLostError extends Error {
  constructor(readonly reason: string) {
    super(`the serial link was lost (${reason})`);
    this.name = 'LinkLostError';
  }
}

interface PendingWrite {
  reject: (error: Error) => void;
}

export class NodeSerialPort {
  readable: ReadableStream<Uint8Array> | null = null;
  writable: WritableStream<Uint8Array> | null = null;
  lost = false;
  lostReason = '';
  signalsUnsupported = false;
  private port: SerialPort | undefined;
  private readonly pending = new Set<PendingWrite>();
  private readonly lostListeners: (() => void)[] = [];
  private watch: NodeJS.Timeout | undefined;

  constructor(readonly path: string) {}

  getInfo(): { usbVendorId?: number; usbProductId?: number } {
    return {};
  }

  onLost(listener: () => void): void {
    if (this.lost) listener();
    else this.lostListeners.push(listener);
  }

  async open(options: { baudRate: number }): Promise<void> {
    if (this.port?.isOpen) throw new Error(`${this.path} is already open`);
    const port = new SerialPort({ path: this.path, baudRate: options.baudRate, autoOpen: false, hupcl: false });
    await new Promise<void>((resolve, reject) => port.open((error) => (error ? reject(error) : resolve())));
    this.port = port;
    let readController: ReadableStreamDefaultController<Uint8Array> | undefined;
    this.readable = new ReadableStream<Uint8Array>({
      start: (controller) => {
        readController = controller;
      },
    });
    port.on('data', (chunk: Buffer) => {
      try {
        readController?.enqueue(new Uint8Array(chunk));
      } catch {
        // stream cancelled by the reader: drop
      }
    });
    port.on('close', (error: (Error & { disconnected?: boolean }) | null) => {
      if (error?.disconnected || this.port === port) this.markLost(`the device closed${error ? `: ${error.message}` : ''}`);
      try {
        if (this.lost) readController?.error(new DOMException(`device has been lost: ${this.lostReason}`, 'NetworkError'));
        else readController?.close();
      } catch {
        // already closed or cancelled
      }
    });
    port.on('error', (error: Error) => this.markLost(error.message));
    clearInterval(this.watch);
    this.watch = setInterval(() => {
      if (!existsSync(this.path)) this.markLost(`${this.path} is gone`);
    }, WATCH_MS);
    this.watch.unref();
    this.writable = new WritableStream<Uint8Array>({
      write: (chunk) => this.writeChunk(port, chunk),
    });
  }

  private writeChunk(port: SerialPort, chunk: Uint8Array): Promise<void> {
    if (this.lost || !port.isOpen) return Promise.reject(new LinkLostError(this.lostReason || 'the port is closed'));
    return new Promise<void>((resolve, reject) => {
      const entry: PendingWrite = { reject };
      this.pending.add(entry);
      port.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength), (error) => {
        if (error) {
          this.pending.delete(entry);
          return reject(error);
        }
        port.drain((drainError) => {
          this.pending.delete(entry);
          if (drainError) reject(drainError);
          else resolve();
        });
      });
    });
  }

  private markLost(reason: string): void {
    if (this.lost) return;
    this.lost = true;
    this.lostReason = reason;
    clearInterval(this.watch);
    // Closing ends the binding's read loop on a vanished node (and errors the readable through the close event).
    const port = this.port;
    if (port?.isOpen) port.close(() => undefined);
    for (const entry of this.pending) entry.reject(new LinkLostError(reason));
    this.pending.clear();
    this.readable = null;
    this.writable = null;
    for (const listener of this.lostListeners.splice(0)) listener();
  }

  async setSignals(signals: { dataTerminalReady?: boolean; requestToSend?: boolean; break?: boolean }): Promise<void> {
    const port = this.port;
    if (!port?.isOpen || this.lost) throw new LinkLostError(this.lostReason || 'the port is closed');
    const flags: { dtr?: boolean; rts?: boolean; brk?: boolean } = {};
    if (signals.dataTerminalReady !== undefined) flags.dtr = signals.dataTerminalReady;
    if (signals.requestToSend !== undefined) flags.rts = signals.requestToSend;
    if (signals.break !== undefined) flags.brk = signals.break;
    await new Promise<void>((resolve, reject) =>
      port.set(flags, (error) => {
        if (error && /Inappropriate ioctl|ENOTTY/i.test(error.message)) {
          this.signalsUnsupported = true;
          return resolve();
        }
        return error ? reject(error) : resolve();
      }),
    );
  }

  async setBaudRate(baudRate: number): Promise<void> {
    const port = this.port;
    if (!port?.isOpen || this.lost) throw new LinkLostError(this.lostReason || 'the port is closed');
    await new Promise<void>((resolve, reject) => port.update({ baudRate }, (error) => (error ? reject(error) : resolve())));
  }

  async close(): Promise<void> {
    clearInterval(this.watch);
    const port = this.port;
    this.port = undefined;
    this.readable = null;
    this.writable = null;
    if (port?.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
  }
}

/**
 * esptool-js's Transport, failing reads at once after a link loss, with its
 * trace lines (which it prints with console.log even when tracing is off,
 * e.g. "readLoop exited") sent to `onTrace` instead of stdout.
 */
export class NodeTransport extends Transport {
  onTrace: (line: string) => void = () => {};

  constructor(readonly port: NodeSerialPort) {
    super(port as never, false, true);
    port.onLost(() => {
      // Ends a read that is polling for bytes: a non-SLIP byte makes it throw.
      (this as unknown as { buffer: Uint8Array }).buffer = Uint8Array.of(0);
    });
  }

  override trace(message: string): void {
    this.onTrace(message);
  }

  override async read(timeout: number): Promise<Uint8Array> {
    if (this.port.lost) throw new LinkLostError(this.port.lostReason);
    try {
      return await super.read(timeout);
    } catch (error) {
      if (this.port.lost) throw new LinkLostError(this.port.lostReason);
      throw error;
    }
  }

  override async write(data: Uint8Array): Promise<void> {
    if (this.port.lost) throw new LinkLostError(this.port.lostReason);
    try {
      await super.write(data);
    } catch (error) {
      if (this.port.lost) throw new LinkLostError(this.port.lostReason);
      throw error;
    }
  }
}
