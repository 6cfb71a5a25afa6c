/**
 * A staged rollout over 10,000 devices (issue 20, docs/spec/rollout.md):
 * the example plan (canary 1 %, 10 %, 50 %, 100 %; soak 600 s each), every
 * offered device committing 120 s after its offer and reporting every
 * minute after, one step a simulated minute until the rollout completes.
 * Each step is what `holdfast rollout step` does after reading the ingest:
 * observe the signals, decide, append the decisions to the trail and
 * replace the state (fsync, rename) in `<inventory>.rollouts/<id>/`.
 *
 * Counts (steps, decisions, offers, trail and state bytes) are
 * deterministic; steps per second is a timing on this machine.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rollout, type Decision } from '../tools/rollout/engine.ts';
import { commitRollout, createRollout, loadRollout } from '../tools/rollout/store.ts';
import { parsePlan } from '../tools/rollout/plan.ts';
import { exampleFleet, examplePlan, TARGET } from '../test/rollout/rollout-fixtures.ts';
import type { BenchGroup, Figure } from './figures.ts';

const DEVICES = 10_000;

export interface RolloutBenchResult {
  steps: number;
  decisions: number;
  offered: number;
  committed: number;
  trailBytes: number;
  stateBytes: number;
  seconds: number;
}

export function runRolloutBench(devices = DEVICES, progress: (line: string) => void = () => undefined): RolloutBenchResult {
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-rollout-bench-'));
  try {
    const inventory = join(dir, 'fleet.json');
    const fleet = exampleFleet(devices);
    const planBytes = new TextEncoder().encode(JSON.stringify(examplePlan()));
    const plan = parsePlan(planBytes);
    const started = Rollout.start(plan, fleet, 0);
    createRollout(inventory, { planBytes, plan, manifest: new Uint8Array(64), rollout: started.rollout, decisions: started.decisions, now: 0 });
    const offeredAt = new Map<string, number>();
    const note = (ds: readonly Decision[]) => {
      for (const d of ds) if (d.kind === 'offered') for (const device of d.devices) offeredAt.set(device, d.at);
    };
    note(started.decisions);
    let decisions = started.decisions.length;
    let steps = 0;
    const t0 = process.hrtime.bigint();
    for (let minute = 1; minute <= 24 * 60; minute++) {
      const now = minute * 60;
      const loaded = loadRollout(inventory, plan.id);
      for (const [device, at] of offeredAt) {
        if (now - at === 120) loaded.rollout.observe({ kind: 'committed', device, at: now, imageVersion: TARGET });
        else if (now - at > 120) loaded.rollout.observe({ kind: 'seen', device, at: now });
      }
      const ds = loaded.rollout.step(fleet, now);
      commitRollout(loaded, { clock: now, cursor: loaded.state.cursor, badTags: 0 }, ds);
      note(ds);
      decisions += ds.length;
      steps++;
      if (ds.length > 0) progress(`minute ${minute}: ${ds.map((d) => d.kind).join(', ')}`);
      if (loaded.rollout.status !== 'running') break;
    }
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const final = loadRollout(inventory, plan.id);
    const counts = final.rollout.counts();
    const folder = join(`${inventory}.rollouts`, plan.id);
    return { steps, decisions, offered: counts.offered, committed: counts.committed, trailBytes: statSync(join(folder, 'trail.jsonl')).size, stateBytes: statSync(join(folder, 'state.json')).size, seconds };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const rolloutBench: BenchGroup = {
  title: 'Staged rollout',
  prefix: 'rollout.',
  workload:
    `The example plan (canary 1 %, 10 %, 50 %, 100 %, soak 600 s per stage, halt at 20 % failures) over ${DEVICES.toLocaleString('en-US')} devices; every offered device commits 120 s after its offer and reports each minute after. ` +
    'One step per simulated minute, each as `holdfast rollout step` does it after reading the ingest: load state, plan, manifest and trail (trail chain verified), observe, decide, append the decisions to the trail and replace the state (fsync, rename).',
  run(progress) {
    const r = runRolloutBench(DEVICES, progress);
    const figures: Figure[] = [
      { name: 'rollout.steps', value: r.steps, unit: 'steps', label: `steps (simulated minutes) until the rollout of ${DEVICES} devices completed`, kind: 'count' },
      { name: 'rollout.decisions', value: r.decisions, unit: 'decisions', label: 'decisions in the trail', kind: 'count' },
      { name: 'rollout.committed', value: r.committed, unit: 'devices', label: 'devices counted as updated (each on its own signed commit)', kind: 'count' },
      { name: 'rollout.trailBytes', value: r.trailBytes, unit: 'bytes', label: 'trail.jsonl at the end', kind: 'count' },
      { name: 'rollout.stateBytes', value: r.stateBytes, unit: 'bytes', label: 'state.json at the end', kind: 'count' },
      { name: 'rollout.stepsPerSecond', value: Number((r.steps / r.seconds).toFixed(1)), unit: 'steps/s', label: `steps per second over ${DEVICES} devices, each loading, verifying and committing state and trail`, kind: 'timing' },
    ];
    return Promise.resolve(figures);
  },
};
