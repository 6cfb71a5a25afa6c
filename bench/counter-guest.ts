/**
 * Inside XS, for bench/counter.bench.ts: the counter on a flash held by the
 * Node side, so XS's meter counts the counter's work (and the bridge
 * marshalling of its few flash calls), not the simulator's.
 */
import { Counter } from '../firmware/storage/counter.ts';
import { RemoteFlash } from '../tools/xs/guest/remote-flash.ts';
import { fromUtf8, utf8 } from '../tools/xs/wire.ts';

interface CounterBenchRequest {
  step: 'open' | 'next';
  blocks?: number;
  reserve?: number;
  count?: number;
}

export function serveCounterBench(): void {
  const session: { counter?: Counter } = {};
  (globalThis as { handleCommand?: (r: ArrayBuffer) => ArrayBuffer }).handleCommand = (request) => {
    const message = JSON.parse(fromUtf8(new Uint8Array(request))) as CounterBenchRequest;
    let reply: Record<string, unknown>;
    if (message.step === 'open') {
      const flash = RemoteFlash.create({ blocks: message.blocks ?? 2 });
      Counter.format(flash);
      session.counter = Counter.open(flash, message.reserve === undefined ? undefined : { reserve: message.reserve });
      reply = { reservedUpTo: session.counter.stats().reservedUpTo };
    } else {
      const counter = session.counter;
      if (!counter) throw new Error('open first');
      let last = 0;
      for (let i = 0; i < (message.count ?? 0); i++) last = counter.next();
      reply = { last, recordsWritten: counter.stats().recordsWritten };
    }
    return utf8(JSON.stringify(reply)).buffer as ArrayBuffer;
  };
}
