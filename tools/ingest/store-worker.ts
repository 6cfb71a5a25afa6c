/**
 * The PGlite store in a worker thread (docs/spec/ingest.md, "Batching").
 * PGlite runs PostgreSQL as WASM on the thread that calls it: a commit
 * blocks that thread's event loop for its whole duration, so on the main
 * thread the MQTT socket is not read while a batch commits and the next
 * batch can only be what the kernel's socket buffer held (measured: about
 * 590 messages, whatever --batch says). In a worker the main thread keeps
 * reading and verifying while the worker commits, and batches grow with
 * the load.
 *
 * `WorkerStore` implements IngestStore by messages ({id, op, arg} →
 * {id, ok, value | error}); the worker owns one PgliteStore. Errors come
 * back as their message only (database errors carry parameters, i.e.
 * payloads).
 *
 * Host tool (Node).
 */
import { Worker } from 'node:worker_threads';
import { columnBuffers, recordColumns, StoreConflictError, type Batch, type ColumnBatch, type IngestStore, type LoadedState } from './store.ts';

const WORKER_MAIN = new URL('./store-worker-main.ts', import.meta.url).href;
// The worker loads TypeScript through tsx, as bin/holdfast.js does for the main thread.
const BOOT = `
const { workerData } = await import('node:worker_threads');
const { register } = await import('tsx/esm/api');
register();
await import(workerData.main);
`;

type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string; name: string };

export class WorkerStore implements IngestStore {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private dead: Error | undefined;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (reply: Reply) => {
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      if (reply.ok) p.resolve(reply.value);
      else p.reject(reply.name === 'StoreConflictError' ? new StoreConflictError(reply.error) : new Error(reply.error));
    });
    const die = (error: Error) => {
      this.dead ??= error;
      for (const p of this.pending.values()) p.reject(error);
      this.pending.clear();
    };
    worker.on('error', (e) => die(e instanceof Error ? e : new Error(String(e))));
    worker.on('exit', (code) => die(new Error(`the store worker exited (code ${code})`)));
  }

  /** Start the worker and open the store in `<dir>/pg`. */
  static async open(dir: string): Promise<WorkerStore> {
    const worker = new Worker(BOOT, { eval: true, workerData: { main: WORKER_MAIN } });
    const store = new WorkerStore(worker);
    try {
      await store.call('open', dir);
    } catch (error) {
      await worker.terminate();
      throw error;
    }
    return store;
  }

  private call(op: string, arg?: unknown, transfer: ArrayBuffer[] = []): Promise<unknown> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, op, arg }, transfer);
    });
  }

  load(): Promise<LoadedState> {
    return this.call('load') as Promise<LoadedState>;
  }

  /** One message per batch: the records as columns in transferred buffers (./store.ts RecordColumns), not one cloned object each. */
  async commit(batch: Batch): Promise<void> {
    const records = recordColumns(batch.records);
    const columns: ColumnBatch = { records, senders: batch.senders, refusals: batch.refusals };
    await this.call('commit', columns, columnBuffers(records));
  }

  recordKeys(): Promise<{ device: string; keyId: number; counter: number }[]> {
    return this.call('recordKeys') as Promise<{ device: string; keyId: number; counter: number }[]>;
  }

  async close(): Promise<void> {
    if (!this.dead) await this.call('close').catch(() => undefined);
    await this.worker.terminate();
  }
}
