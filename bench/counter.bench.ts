/**
 * The monotonic counter (docs/spec/counter.md) with its default K on an
 * ESP32-shaped partition (two 4096-byte sectors): flash bytes per increment,
 * erases, recovery reads, and XS compute per `next()`.
 */
import { Counter, DEFAULT_COUNTER_RESERVE } from '../firmware/storage/counter.ts';
import { LOG_PAIR_LENGTH } from '../firmware/base/two-block-log.ts';
import { SimFlash } from '../tools/sim/flash/sim-flash.ts';
import type { BenchGroup, Figure } from './figures.ts';
import { openGuest } from './xs-guest.ts';

const BYTES_RUN = 1_000_000;
const WEAR_RUN = 100_000_000;
const BLOCK_LENGTH = 4096;
/** Records between rotations: a block's pairs less its header and handoff (docs/spec/two-block-log.md). */
const RECORDS_PER_BLOCK = BLOCK_LENGTH / LOG_PAIR_LENGTH - 2;

/** `increments` values on a fresh two-sector partition, without reboots. */
function run(increments: number): { flash: SimFlash; counter: Counter } {
  const flash = new SimFlash({ blocks: 2, blockLength: BLOCK_LENGTH, mode: 'plain', onBitSet: 'throw' });
  Counter.format(flash);
  flash.resetCounters();
  const counter = Counter.open(flash);
  for (let i = 0; i < increments; i++) counter.next();
  return { flash, counter };
}

export const counterBench: BenchGroup = {
  title: 'Monotonic counter',
  prefix: 'counter.',
  workload:
    `Default K = ${DEFAULT_COUNTER_RESERVE} on a plain two-sector partition (2 × ${BLOCK_LENGTH} bytes): ` +
    `bytes programmed per increment over ${BYTES_RUN.toLocaleString('en-US')} increments from a freshly formatted partition; ` +
    `erases per million increments over ${WEAR_RUN.toLocaleString('en-US')} increments (${Math.floor(WEAR_RUN / DEFAULT_COUNTER_RESERVE / RECORDS_PER_BLOCK)} rotations; each bound is a record of two 16-byte copies), ` +
    'then the bytes `Counter.open` reads to recover. XS compute per `next()` is the difference between 32,768 and 4,096 ' +
    'increments through the real XS engine (each run crosses whole reservations, so the bound writes are amortized), with the flash on the Node side of the bridge.',
  async run() {
    const figures: Figure[] = [];
    const small = run(BYTES_RUN);
    figures.push({
      name: 'counter.bytesPerIncrement',
      value: Number((small.flash.counters.bytesProgrammed / BYTES_RUN).toFixed(5)),
      unit: 'B',
      label: `bytes programmed per increment, default K, plain flash (${small.counter.stats().recordsWritten} records of two copies)`,
      kind: 'count',
      target: '≤ 0.01',
      limit: 0.01,
      direction: 'max',
      anchor: `RFC 8613 B.1.1: (bytes per persisted bound) ÷ K = ${LOG_PAIR_LENGTH} ÷ ${DEFAULT_COUNTER_RESERVE} = ${(LOG_PAIR_LENGTH / DEFAULT_COUNTER_RESERVE).toFixed(5)} (format 1, one copy: 0.0039)`,
    });
    const long = run(WEAR_RUN);
    figures.push({
      name: 'counter.erasesPerMillion',
      value: Number(((long.flash.counters.erases * 1_000_000) / WEAR_RUN).toFixed(4)),
      unit: 'erases',
      label: `sector erases per million increments, default K (${long.flash.counters.erases} over ${WEAR_RUN.toLocaleString('en-US')})`,
      kind: 'count',
      target: `one per ${(RECORDS_PER_BLOCK * DEFAULT_COUNTER_RESERVE).toLocaleString('en-US')} increments (${(1_000_000 / (RECORDS_PER_BLOCK * DEFAULT_COUNTER_RESERVE)).toFixed(3)})`,
      limit: 1_000_000 / (RECORDS_PER_BLOCK * DEFAULT_COUNTER_RESERVE),
      anchor: 'format 1 (one copy per bound, no header or handoff): 0.954',
      direction: 'max',
    });
    const before = long.flash.counters.bytesRead;
    Counter.open(long.flash);
    figures.push({
      name: 'counter.recoveryReadBytes',
      value: long.flash.counters.bytesRead - before,
      unit: 'B',
      label: `bytes read by Counter.open after ${long.flash.counters.erases} rotations`,
      kind: 'count',
      target: '≤ 8,192 (two sectors)',
      limit: 2 * BLOCK_LENGTH,
      direction: 'max',
    });
    const guest = await openGuest('bench/counter-guest.ts', 'serveCounterBench');
    try {
      guest.call({ step: 'open', blocks: 2 });
      const first = guest.call({ step: 'next', count: DEFAULT_COUNTER_RESERVE }).meter;
      const second = guest.call({ step: 'next', count: 8 * DEFAULT_COUNTER_RESERVE }).meter;
      figures.push({
        name: 'counter.xs.computePerIncrement',
        value: Math.round((second.compute - first.compute) / (7 * DEFAULT_COUNTER_RESERVE)),
        unit: 'compute',
        label: 'XS compute per next(), bound writes amortized (firmware plus bridge marshalling)',
        kind: 'count',
      });
    } finally {
      guest.close();
    }
    return figures;
  },
};
