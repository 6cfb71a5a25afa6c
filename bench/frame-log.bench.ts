/**
 * The frame log (the foundation's demonstration module): flash traffic per
 * record on plain and strict flash, and XS compute per append. A baseline for
 * the outbox, which must do better (it also wraps and acknowledges).
 */
import { FrameLog } from '../firmware/storage/frame-log.ts';
import { SimFlash, type FlashMode } from '../tools/sim/flash/sim-flash.ts';
import type { BenchGroup, Figure } from './figures.ts';
import { openGuest } from './xs-guest.ts';

const BLOCKS = 64;

function fill(mode: FlashMode, recordBytes: number): { wa: number; erases: number; records: number } {
  const flash = new SimFlash({ blocks: BLOCKS, mode });
  const log = new FrameLog(flash);
  log.format();
  flash.resetCounters();
  const record = new Uint8Array(recordBytes).fill(0x5a);
  let records = 0;
  try {
    for (;;) {
      log.append(record);
      records++;
    }
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
  }
  return { wa: flash.counters.bytesProgrammed / (records * recordBytes), erases: flash.counters.erases, records };
}

export const frameLogBench: BenchGroup = {
  title: 'Frame log (foundation baseline)',
  prefix: 'frameLog.',
  workload:
    'One pass filling a 64-sector (256 KiB) partition with records of 16, 64 and 256 bytes (no wrap, no acks): ' +
    'write amplification is bytes programmed ÷ payload bytes. XS compute per append is the difference between ' +
    '1,000 and 100 appends through the real XS engine, with the flash on the Node side of the bridge.',
  async run() {
    const figures: Figure[] = [];
    for (const mode of ['plain', 'strict'] as const) {
      for (const size of [16, 64, 256]) {
        const r = fill(mode, size);
        figures.push({ name: `frameLog.wa.${mode}.${size}`, value: Number(r.wa.toFixed(4)), unit: '×', label: `write amplification, ${size}-byte records, ${mode}`, kind: 'count' });
      }
    }
    const guest = await openGuest('tools/demo/guest.ts', 'serveDemo');
    try {
      guest.call({ step: 'boot', blocks: BLOCKS });
      const small = guest.call({ step: 'append', count: 100 }).meter;
      const large = guest.call({ step: 'append', count: 1000 }).meter;
      figures.push({ name: 'frameLog.xs.computePerAppend', value: Math.round((large.compute - small.compute) / 900), unit: 'compute', label: 'XS compute per append (firmware plus bridge marshalling)', kind: 'count' });
      figures.push({ name: 'frameLog.xs.heapAfter1100', value: large.currentHeapCount, unit: 'slots', label: 'XS heap slots after 1,100 appends', kind: 'count' });
    } finally {
      guest.close();
    }
    return figures;
  },
};
