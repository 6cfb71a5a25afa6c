/**
 * Inside XS, for the outbox benchmark: one outbox on a flash held by the
 * host. Each command does a batch of work so the reply's meter measures it.
 */
import { Outbox } from '../firmware/storage/outbox.ts';
import { RemoteFlash } from '../tools/xs/guest/remote-flash.ts';
import { fromUtf8, utf8 } from '../tools/xs/wire.ts';

interface BenchRequest {
  op: 'open' | 'append' | 'ack' | 'heap';
  blocks?: number;
  count?: number;
}

declare const gc: () => void;

export function serveOutboxBench(): void {
  const state: { outbox?: Outbox; record: Uint8Array } = { record: new Uint8Array(64).fill(0x42) };
  (globalThis as { handleCommand?: (r: ArrayBuffer) => ArrayBuffer }).handleCommand = (request) => {
    const message = JSON.parse(fromUtf8(new Uint8Array(request))) as BenchRequest;
    if (message.op === 'open') state.outbox = Outbox.open(RemoteFlash.create({ blocks: message.blocks ?? 64 }));
    const outbox = state.outbox!;
    if (message.op === 'append') for (let i = 0; i < (message.count ?? 0); i++) outbox.append(state.record);
    if (message.op === 'ack') {
      const first = outbox.stats().ackSeq;
      for (let i = 0; i < (message.count ?? 0); i++) outbox.ack(first + i);
    }
    if (message.op === 'heap') gc();
    return utf8(JSON.stringify(outbox.stats())).buffer as ArrayBuffer;
  };
}
