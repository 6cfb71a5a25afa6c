/**
 * The Promela models under spin: states stored and seconds at the bounds the
 * test suite checks, and at larger bounds. Skipped (with a note) when spin
 * is not installed; CI installs it.
 */
import { join } from 'node:path';
import { findSpin, verify, type Defines } from '../tools/models/spin.ts';
import { REPO_ROOT as MODELS_ROOT } from '../tools/models/model-check.ts';
import type { BenchGroup, Figure } from './figures.ts';

interface Bound {
  name: string;
  model: string;
  defines: Defines;
  ltl?: string;
  label: string;
}

const BOUNDS: readonly Bound[] = [
  { name: 'replayWindow.ci', model: 'docs/models/replay-window.pml', defines: {}, label: 'replay window, CI bounds (counters 1..9, W 4, R 3, 2 restarts)' },
  { name: 'replayWindow.large', model: 'docs/models/replay-window.pml', defines: { N: 10 }, label: 'replay window, counters 1..10' },
  { name: 'bootControl.ci', model: 'docs/models/boot-control.pml', defines: {}, label: 'boot control, CI bounds (3 cuts, 3 update offers)' },
  { name: 'bootControl.ltl.ci', model: 'docs/models/boot-control.pml', defines: { LTL: 1 }, ltl: 'live', label: 'boot control, []<> goodRunning, CI bounds' },
  { name: 'bootControl.large', model: 'docs/models/boot-control.pml', defines: { MAXCUTS: 4, MAXUPDATES: 4 }, label: 'boot control, 4 cuts, 4 update offers' },
];

export const modelsBench: BenchGroup = {
  title: 'Models (spin)',
  prefix: 'models.',
  workload: 'Exhaustive verification of the correct Promela models with spin 6.5 (gcc -O1; safety with -DSAFETY, LTL with pan -a), at the bounds of the test suite and at larger bounds.',
  async run(progress) {
    if (!findSpin().ok) {
      progress('  models: spin is not installed (apt-get install spin): skipped');
      return [];
    }
    const figures: Figure[] = [];
    for (const bound of BOUNDS) {
      progress(`  models: ${bound.label}`);
      const result = verify({ model: join(MODELS_ROOT, bound.model), defines: bound.defines, ...(bound.ltl ? { ltl: bound.ltl } : {}) });
      if (result.errors !== 0) throw new Error(`${bound.name}: the correct model reported ${result.errors} errors`);
      figures.push(
        { name: `models.${bound.name}.states`, value: result.statesStored, unit: 'states', label: `${bound.label}: states stored`, kind: 'count' },
        { name: `models.${bound.name}.seconds`, value: Number(result.totalSeconds.toFixed(2)), unit: 's', label: `${bound.label}: spin + gcc + pan`, kind: 'timing' },
        { name: `models.${bound.name}.memoryMb`, value: result.memoryMb, unit: 'MB', label: `${bound.label}: pan memory`, kind: 'count' },
      );
    }
    return figures;
  },
};
