/**
 * The host end of the serial console (docs/spec/console.md): a `serialport`
 * 13 port, the firmware's own frame decoder (firmware/protocol/console), and
 * requests matched to their replies by id. Every frame becomes a
 * ConsoleEvent; bytes outside frames are counted (`noise` events) and bad
 * frames reported (`dropped`), never shown as data.
 *
 * Link loss (cable pulled, the far end of a pty closed) fails every pending
 * request with LinkLostError, saying whether a frame was cut mid-line. It
 * is seen from serialport's close and error events and, because those do
 * not always come, from the device node vanishing (checked every 200 ms):
 * a pty whose far end closed is removed from /dev/pts and reads end-of-file
 * for ever, which @serialport/bindings-cpp 13's `unixRead` retries in a
 * tight loop (a busy CPU and a growing heap) without any event; a USB
 * adapter pulled out loses its /dev/ttyUSB* node the same way. On loss the
 * port is closed, which ends that loop.
 *
 * Host tool (Node).
 */
import { existsSync } from 'node:fs';
import { SerialPort } from 'serialport';
import { ConsoleDecoder, encodeConsoleFrame, type ConsoleDecoderStats, type ConsoleDropReason, type ConsoleFrame } from '../../firmware/protocol/console/index.ts';

export type ConsoleEvent =
  | { readonly event: 'hello'; readonly fields: Readonly<Record<string, string>> }
  | { readonly event: 'log'; readonly level: string; readonly area: string; readonly msg: string; readonly fields: Readonly<Record<string, string>> }
  | { readonly event: 'item'; readonly id: string; readonly op: string; readonly fields: Readonly<Record<string, string>> }
  | { readonly event: 'reply'; readonly id: string; readonly op: string; readonly ok: boolean; readonly code?: string; readonly msg?: string; readonly fields: Readonly<Record<string, string>> }
  | { readonly event: 'frame'; readonly kind: string; readonly fields: Readonly<Record<string, string>> }
  | { readonly event: 'dropped'; readonly reason: ConsoleDropReason }
  | { readonly event: 'noise'; readonly bytes: number; readonly total: number };

export interface ConsoleReply {
  readonly ok: boolean;
  readonly op: string;
  readonly code: string | undefined;
  readonly msg: string | undefined;
  readonly fields: Readonly<Record<string, string>>;
  readonly items: readonly Readonly<Record<string, string>>[];
}

export class LinkLostError extends Error {
  constructor(readonly reason: string, readonly midFrame: number) {
    super(`the serial link was lost (${reason})${midFrame > 0 ? `, ${midFrame} bytes into an unfinished frame (dropped)` : ''}`);
    this.name = 'LinkLostError';
  }
}

export class ReplyTimeoutError extends Error {
  constructor(readonly op: string, readonly timeoutMs: number) {
    super(`no reply to ${op} within ${timeoutMs} ms: is a holdfast device on this port, at this baud rate?`);
    this.name = 'ReplyTimeoutError';
  }
}

/** How often the device node is checked (link loss without an event). */
const WATCH_MS = 200;

interface Pending {
  readonly op: string;
  readonly items: Record<string, string>[];
  readonly resolve: (reply: ConsoleReply) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** Fields of a reply or item without the envelope keys. */
function strip(fields: Readonly<Record<string, string>>, keys: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(fields)) if (!keys.includes(k)) out[k] = v;
  return out;
}

export class ConsoleClient {
  readonly decoder = new ConsoleDecoder();
  private readonly listeners: ((event: ConsoleEvent) => void)[] = [];
  private readonly pending = new Map<string, Pending>();
  private nextId = 1;
  private lostError: LinkLostError | undefined;
  private readonly lostListeners: ((error: LinkLostError) => void)[] = [];
  private closing = false;
  private readonly watch: NodeJS.Timeout;

  private constructor(private readonly port: SerialPort, path: string) {
    port.on('data', (chunk: Buffer) => this.receive(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)));
    port.on('close', (error: Error | null) => {
      if (!this.closing) this.markLost(error?.message ?? 'the port closed');
    });
    port.on('error', (error: Error) => this.markLost(error.message));
    this.watch = setInterval(() => {
      if (!existsSync(path)) this.markLost(`${path} is gone`);
    }, WATCH_MS);
    this.watch.unref();
  }

  /** Open `path` at `baud` (8N1, no flow control). Rejects with serialport's open error. */
  static async open(path: string, baud: number): Promise<ConsoleClient> {
    const port = new SerialPort({ path, baudRate: baud, autoOpen: false, hupcl: false });
    await new Promise<void>((resolve, reject) => port.open((error) => (error ? reject(error) : resolve())));
    return new ConsoleClient(port, path);
  }

  on(listener: (event: ConsoleEvent) => void): void {
    this.listeners.push(listener);
  }

  /** Called once when the link is lost (at once if it already was). */
  onLost(listener: (error: LinkLostError) => void): void {
    if (this.lostError) listener(this.lostError);
    else this.lostListeners.push(listener);
  }

  get stats(): Readonly<ConsoleDecoderStats> {
    return { ...this.decoder.stats };
  }

  /** Send `op` with `fields`; resolves with the reply (and the items before it), rejects on timeout or link loss. */
  request(op: string, fields: Record<string, string>, timeoutMs: number): Promise<ConsoleReply> {
    if (this.lostError) return Promise.reject(this.lostError);
    const id = String(this.nextId++);
    const frame = encodeConsoleFrame('cmd', { id, op, ...fields });
    return new Promise<ConsoleReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ReplyTimeoutError(op, timeoutMs));
      }, timeoutMs);
      this.pending.set(id, { op, items: [], resolve, reject, timer });
      this.port.write(Buffer.from(frame), (error) => {
        if (error) this.markLost(error.message);
      });
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.watch);
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    if (this.port.isOpen) await new Promise<void>((resolve) => this.port.close(() => resolve()));
  }

  private receive(bytes: Uint8Array): void {
    const skippedBefore = this.decoder.stats.skippedBytes;
    this.decoder.push(
      bytes,
      (frame) => this.handle(frame),
      (reason) => this.emit({ event: 'dropped', reason }),
    );
    const skipped = this.decoder.stats.skippedBytes - skippedBefore;
    if (skipped > 0) this.emit({ event: 'noise', bytes: skipped, total: this.decoder.stats.skippedBytes });
  }

  private handle(frame: ConsoleFrame): void {
    const f = frame.fields;
    switch (frame.kind) {
      case 'hello':
        this.emit({ event: 'hello', fields: f });
        return;
      case 'log':
        this.emit({ event: 'log', level: f.lvl ?? 'info', area: f.area ?? '', msg: f.msg ?? '', fields: strip(f, ['lvl', 'area', 'msg']) });
        return;
      case 'item': {
        const fields = strip(f, ['id', 'op', 'i']);
        this.emit({ event: 'item', id: f.id ?? '-', op: f.op ?? '', fields });
        this.pending.get(f.id ?? '')?.items.push(fields);
        return;
      }
      case 'ok':
      case 'err': {
        const ok = frame.kind === 'ok';
        const fields = strip(f, ok ? ['id', 'op'] : ['id', 'op', 'code', 'msg']);
        this.emit({ event: 'reply', id: f.id ?? '-', op: f.op ?? '', ok, ...(ok ? {} : { code: f.code ?? 'unknown', msg: f.msg ?? '' }), fields });
        const pending = this.pending.get(f.id ?? '');
        if (pending) {
          this.pending.delete(f.id);
          clearTimeout(pending.timer);
          pending.resolve({ ok, op: f.op ?? pending.op, code: ok ? undefined : (f.code ?? 'unknown'), msg: ok ? undefined : f.msg, fields, items: pending.items });
        }
        return;
      }
      default:
        this.emit({ event: 'frame', kind: frame.kind, fields: f });
    }
  }

  private emit(event: ConsoleEvent): void {
    for (const l of this.listeners) l(event);
  }

  private markLost(reason: string): void {
    if (this.lostError || this.closing) return;
    // Fewer than 4 pending bytes are a partial "HF1 " marker, not a frame yet.
    this.lostError = new LinkLostError(reason, this.decoder.pending >= 4 ? this.decoder.pending : 0);
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(this.lostError);
    }
    this.pending.clear();
    for (const l of this.lostListeners.splice(0)) l(this.lostError);
    clearInterval(this.watch);
    // Ends serialport's read loop on a hung-up device (see the header).
    if (this.port.isOpen) this.port.close(() => {});
  }
}
