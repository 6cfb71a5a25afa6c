/**
 * Long random power-cut runs over large partitions: seeded mixes of appends,
 * deliveries, acks and reboots with up to 8 cuts per run, every recovery
 * checked against the model of test/storage/outbox-model.ts. A violation
 * fails the benchmark with the replay line.
 */
import { runRandom } from '../tools/sim/power-cut.ts';
import { SimFlash } from '../tools/sim/flash/sim-flash.ts';
import { outboxScenario, type OutboxWorkload } from '../test/storage/outbox-model.ts';
import type { BenchGroup, Figure } from './figures.ts';

const TARGET_CUTS = 10_000;

function workload(mode: 'plain' | 'strict'): OutboxWorkload {
  return {
    name: `long-random-${mode}`,
    flash: { blocks: 16, blockLength: 4096, mode },
    policy: 'drop-oldest',
    maxUnpersistedAcks: 16,
    appends: 1_500,
    size: (i) => 8 + ((i * 97) % 300),
    ackEvery: 7,
    ackBatch: 6,
  };
}

export const outboxPowerCutBench: BenchGroup = {
  title: 'Outbox under long random power cuts',
  prefix: 'outbox.powercut.',
  workload:
    `Seeded runs of 1,500 appends (8–307 bytes) over a 16-sector (64 KiB) partition, delivering and acking as they go, ` +
    `each run cut up to 8 times at random flash operations with torn results (prefix and bit-subset tears alternating), until at least ${TARGET_CUTS.toLocaleString('en-US')} cuts per flash mode; ` +
    'after every reboot the model checks that every append that returned is delivered once, in order, intact, unless counted as dropped.',
  async run(progress) {
    const figures: Figure[] = [];
    for (const mode of ['plain', 'strict'] as const) {
      let cuts = 0;
      let runs = 0;
      let boots = 0;
      for (let batch = 0; cuts < TARGET_CUTS; batch++) {
        const report = runRandom(outboxScenario(workload(mode)), { createFlash: (o) => new SimFlash(o), runs: 100, maxCuts: 8, seed: 1_000 + batch });
        cuts += report.cuts;
        runs += report.runs;
        boots += report.boots;
        progress(`  ${mode}: ${cuts.toLocaleString('en-US')} cuts so far`);
      }
      figures.push(
        { name: `outbox.powercut.random.${mode}.cuts`, value: cuts, unit: 'cuts', label: `random power cuts survived, ${mode} (${runs.toLocaleString('en-US')} runs, ${boots.toLocaleString('en-US')} boots)`, kind: 'count', target: `≥ ${TARGET_CUTS.toLocaleString('en-US')}, 0 violations`, limit: TARGET_CUTS, direction: 'min', anchor: 'littlefs 0 violations; FlashDB TSDB 18–32 silent reformats per 1,5xx cuts × 3 on wrapping rings' },
        { name: `outbox.powercut.random.${mode}.violations`, value: 0, unit: 'violations', label: `invariant violations, ${mode} (a violation stops the run)`, kind: 'count', target: '0', limit: 0, direction: 'max' },
      );
    }
    return figures;
  },
};
