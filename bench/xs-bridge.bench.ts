/**
 * The XS harness itself: how fast the synchronous issueCommand bridge is and
 * what a worker costs. Timings: compared as ratios, never asserted in tests.
 */
import { performance } from 'node:perf_hooks';
import { XsWorker } from '../tools/xs/xsnap-worker.ts';
import type { BenchGroup, Figure } from './figures.ts';

const ROUND_TRIPS = 20_000;

function roundTripsPerSecond(payloadBytes: number): number {
  const worker = XsWorker.spawn({ onCommand: (request) => request });
  try {
    const started = performance.now();
    worker.evaluate(`{ const b = new ArrayBuffer(${payloadBytes}); for (let i = 0; i < ${ROUND_TRIPS}; i++) issueCommand(b); }`);
    return ROUND_TRIPS / ((performance.now() - started) / 1000);
  } finally {
    worker.close();
  }
}

function spawnMs(): number {
  const started = performance.now();
  const runs = 10;
  for (let i = 0; i < runs; i++) XsWorker.spawn().close();
  return (performance.now() - started) / runs;
}

export const xsBridgeBench: BenchGroup = {
  title: 'XS harness',
  prefix: 'xs.',
  workload: `${ROUND_TRIPS.toLocaleString('en-US')} synchronous issueCommand round trips from XS to Node (echo), and spawning plus closing a worker ten times.`,
  async run() {
    const figures: Figure[] = [
      { name: 'xs.bridge.roundTripsPerSecond.16B', value: Math.round(roundTripsPerSecond(16)), unit: '/s', label: 'issueCommand round trips, 16-byte payload', kind: 'timing', anchor: '80,000–90,000/s measured for ../shared/DESIGN.md; @agoric/xsnap API ~13,000/s' },
      { name: 'xs.bridge.roundTripsPerSecond.4KiB', value: Math.round(roundTripsPerSecond(4096)), unit: '/s', label: 'issueCommand round trips, 4 KiB payload', kind: 'timing' },
      { name: 'xs.worker.spawnMs', value: Number(spawnMs().toFixed(1)), unit: 'ms', label: 'spawn + close an xsnap worker', kind: 'timing', anchor: '23–32 ms (../shared/DESIGN.md)' },
    ];
    return figures;
  },
};
