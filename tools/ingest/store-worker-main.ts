/**
 * Worker side of WorkerStore (./store-worker.ts): one PgliteStore, one
 * request at a time, in order.
 *
 * Host tool (Node).
 */
import { parentPort } from 'node:worker_threads';
import { PgliteStore } from './store-pglite.ts';

let store: PgliteStore | undefined;
let chain: Promise<void> = Promise.resolve();

parentPort?.on('message', (request: { id: number; op: string; arg: unknown }) => {
  chain = chain.then(async () => {
    try {
      let value: unknown;
      switch (request.op) {
        case 'open':
          store = await PgliteStore.open(request.arg as string);
          break;
        case 'load':
          value = await need().load();
          break;
        case 'commit':
          await need().commitColumns(request.arg as Parameters<PgliteStore['commitColumns']>[0]);
          break;
        case 'recordKeys':
          value = await need().recordKeys();
          break;
        case 'close':
          await store?.close();
          store = undefined;
          break;
        default:
          throw new Error(`internal: unknown store request ${request.op}`);
      }
      parentPort?.postMessage({ id: request.id, ok: true, value });
    } catch (error) {
      const e = error instanceof Error ? error : new Error(String(error));
      parentPort?.postMessage({ id: request.id, ok: false, error: e.message, name: e.name });
    }
  });
});

function need(): PgliteStore {
  if (!store) throw new Error('internal: the store is not open');
  return store;
}
