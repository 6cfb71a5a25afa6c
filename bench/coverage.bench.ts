/**
 * How much fault injection the firmware suites do: every `*.cases.ts` suite
 * that cuts power or damages flash runs here in Node, and its case reports
 * are summed: power-cut runs by tear mode, runs with a second cut in the
 * recovery boot, and damage cases (recovered or refused). The same cases run
 * in XS under `npm test`; the counts are deterministic and equal there.
 */
import { SimFlash } from '../tools/sim/flash/sim-flash.ts';
import type { CaseEnv, CaseSuite } from '../test/support/cases.ts';
import type { BenchGroup, Figure } from './figures.ts';

/** The suites that write flash, by the store they prove. */
const SUITES: readonly { key: string; load: () => Promise<CaseSuite> }[] = [
  { key: 'twoBlockLog', load: async () => (await import('../test/base/two-block-log.cases.ts')).suite },
  { key: 'counter', load: async () => (await import('../test/storage/counter.cases.ts')).suite },
  { key: 'floorStore', load: async () => (await import('../test/update/floor-store.cases.ts')).suite },
  { key: 'replayStore', load: async () => (await import('../test/security/replay-window.cases.ts')).suite },
  { key: 'envelope', load: async () => (await import('../test/security/envelope.cases.ts')).suite },
  { key: 'outbox', load: async () => (await import('../test/storage/outbox.cases.ts')).suite },
  { key: 'outboxDefects', load: async () => (await import('../test/storage/outbox-defects.cases.ts')).suite },
  { key: 'outboxDamage', load: async () => (await import('../test/storage/outbox-damage.cases.ts')).suite },
  { key: 'frameLog', load: async () => (await import('../test/storage/frame-log.cases.ts')).suite },
  { key: 'otadata', load: async () => (await import('../test/update/otadata.cases.ts')).suite },
  { key: 'staging', load: async () => (await import('../test/update/staging.cases.ts')).suite },
  { key: 'trustStore', load: async () => (await import('../test/update/root-store.cases.ts')).suite },
  { key: 'agent', load: async () => (await import('../test/update/agent.cases.ts')).suite },
  { key: 'agentFailClosed', load: async () => (await import('../test/update/agent-fail-closed.cases.ts')).suite },
  { key: 'agentDamage', load: async () => (await import('../test/update/agent-damage.cases.ts')).suite },
];

const COUNTED = ['runs', 'prefixRuns', 'bitSubsetRuns', 'doubleCutRuns', 'cases', 'recovered', 'refused'] as const;
type Counted = (typeof COUNTED)[number];

const ENV: CaseEnv = Object.freeze<CaseEnv>({ engine: 'node', createFlash: (options) => new SimFlash(options), saveFailureImage: () => undefined });

/** Sum the counted fields of every case report of `suite` (each case run once, in Node). */
function tally(suite: CaseSuite): Record<Counted, number> {
  const sums = Object.fromEntries(COUNTED.map((k) => [k, 0])) as Record<Counted, number>;
  for (const c of suite.cases) {
    const report = c.run(ENV) ?? {};
    for (const key of COUNTED) {
      const value = report[key];
      if (typeof value === 'number') sums[key] += value;
    }
  }
  return sums;
}

const LABELS: Readonly<Record<Counted, string>> = {
  runs: 'power-cut runs (each a scenario run to the end through its cuts and reboots)',
  prefixRuns: 'runs whose first cut tore as a prefix',
  bitSubsetRuns: 'runs whose first cut tore as any subset of the bit changes',
  doubleCutRuns: 'runs cut again during the recovery boot (double faults)',
  cases: 'damage cases (one bit, one 16-byte unit, one entry or one block damaged, then recovery)',
  recovered: 'damage cases that recovered with nothing read lower',
  refused: 'damage cases refused with a typed error',
};

/** Damage figures count cases, power-cut figures count runs. */
function unitOf(field: Counted): string {
  return field === 'cases' || field === 'recovered' || field === 'refused' ? 'cases' : 'runs';
}

export const coverageBench: BenchGroup = {
  title: 'Fault-injection coverage',
  prefix: 'coverage.',
  workload:
    'Every flash-writing firmware suite (`test/**/*.cases.ts`) run once in Node, its case reports summed. A power-cut run cuts at one operation ' +
    '(prefix or bit-subset tear), reboots and finishes, checking the store\'s invariants at every recovery; a double-cut run also cuts during the recovery boot. ' +
    'A damage case damages a populated image (test/support/damage.ts) and recovers it. `npm test` runs the same cases in XS with the same counts.',
  async run(progress) {
    const figures: Figure[] = [];
    const total = Object.fromEntries(COUNTED.map((k) => [k, 0])) as Record<Counted, number>;
    for (const { key, load } of SUITES) {
      progress(`coverage: ${key}`);
      const sums = tally(await load());
      for (const field of COUNTED) {
        total[field] += sums[field];
        if (sums[field] === 0 || field === 'prefixRuns') continue;
        figures.push({ name: `coverage.${key}.${field}`, value: sums[field], unit: unitOf(field), label: `${key}: ${LABELS[field]}`, kind: 'count' });
      }
    }
    for (const field of COUNTED) {
      figures.push({ name: `coverage.total.${field}`, value: total[field], unit: unitOf(field), label: `all suites: ${LABELS[field]}`, kind: 'count' });
    }
    return figures;
  },
};
