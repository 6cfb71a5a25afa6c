/**
 * The power-cut runner's engine-facing parts, in Node and in XS: a cut plan
 * (seed and tear mode) tears the flash identically whichever engine armed it
 * (in XS the plan crosses tools/xs/wire.ts to a SimFlash on the Node side),
 * and double-cut runs count the recovery boot's operations the same way
 * through either flash.
 */
import { effectiveSecondCuts, exhaustiveTier, runExhaustive, TEAR_MODES, type CutScenario } from '../../tools/sim/power-cut.ts';
import { SimFlash, type FlashMode } from '../../tools/sim/flash/sim-flash.ts';
import { isPowerCut } from '../../tools/sim/flash/errors.ts';
import { Rng } from '../../tools/sim/rng.ts';
import { bytesEqual, equal, ok } from '../support/check.ts';
import type { CaseSuite } from '../support/cases.ts';

const SLOT = 16;

/** Eight 16-byte slots, each value written whole and checked by a sum byte; recovery skips a bad slot. */
function slotLog(mode: FlashMode): CutScenario<{ formatted: boolean; durable: number }> {
  return {
    name: `runner-engines/${mode}`,
    flash: { blocks: 1, blockLength: 256, mode },
    createState: () => ({ formatted: false, durable: 0 }),
    boot(flash, state) {
      if (!state.formatted) {
        flash.eraseBlock(0);
        state.formatted = true;
      }
      const slot = new Uint8Array(SLOT);
      let good = 0;
      let next = 0;
      for (; next < 256 / SLOT; next++) {
        flash.read(next * SLOT, slot);
        if (slot.every((b) => b === 0xff)) break;
        if (slot.subarray(0, 15).reduce((a, b) => (a + b) & 0xff, 0) === slot[15] && slot[0] === good) good++;
      }
      ok(good === state.durable || good === state.durable + 1, `recovered ${good} values, ${state.durable} were durable`);
      state.durable = good;
      while (state.durable < 5) {
        const bytes = new Uint8Array(SLOT);
        bytes[0] = state.durable;
        for (let i = 1; i < 15; i++) bytes[i] = (state.durable * 13 + i) & 0x7f;
        bytes[15] = bytes.subarray(0, 15).reduce((a, b) => (a + b) & 0xff, 0);
        flash.write(next * SLOT, bytes);
        state.durable++;
        next++;
      }
    },
  };
}

export const suite: CaseSuite = {
  name: 'power-cut runner across engines',
  cases: [
    {
      // Read by test/sim/power-cut-runner-engines.test.ts, which sets the host's flag both ways.
      name: 'the exhaustive tier as this engine sees it',
      run: () => ({ tier: exhaustiveTier(), secondCuts: JSON.stringify(effectiveSecondCuts({ secondCuts: { sample: 2 } })) }),
    },
    {
      name: 'a cut plan tears the same bytes through this engine as through a local SimFlash, in both tear modes',
      run(env) {
        let compared = 0;
        for (const mode of ['plain', 'strict'] as const) {
          for (const tear of TEAR_MODES) {
            for (let seed = 1; seed <= 12; seed++) {
              const data = new Uint8Array(64);
              new Rng(seed).fill(data);
              const remote = env.createFlash({ blocks: 1, blockLength: 256, mode });
              const local = new SimFlash({ blocks: 1, blockLength: 256, mode });
              for (const flash of [remote, local]) {
                flash.armCut({ atOperation: 0, seed, tear });
                try {
                  flash.write(32, data);
                  ok(false, 'the cut did not strike');
                } catch (error) {
                  ok(isPowerCut(error), `expected a PowerCut, got ${String(error)}`);
                }
                flash.powerOn();
              }
              const a = remote.snapshot();
              const b = local.snapshot();
              bytesEqual(a.data, b.data, `${mode} ${tear} seed ${seed}: bytes`);
              bytesEqual(a.unitProgrammed, b.unitProgrammed, `${mode} ${tear} seed ${seed}: unit map`);
              compared++;
            }
          }
        }
        return { compared };
      },
    },
    {
      name: 'double cuts count and cut the recovery boot the same through this engine as through a local SimFlash',
      run(env) {
        const report: Record<string, number | string> = {};
        for (const mode of ['plain', 'strict'] as const) {
          const options = { variants: 2, secondCuts: 'every' as const, exhaustive: false };
          const here = runExhaustive(slotLog(mode), { ...options, createFlash: env.createFlash });
          const local = runExhaustive(slotLog(mode), { ...options, createFlash: (o) => new SimFlash(o) });
          equal(JSON.stringify(here), JSON.stringify(local), `${mode}: report`);
          ok(here.doubleCutRuns > 0, `${mode}: no double-cut run`);
          ok(here.bitSubsetRuns > 0 && here.prefixRuns > 0, `${mode}: both tear modes`);
          Object.assign(report, { [`${mode}Runs`]: here.runs, [`${mode}DoubleCutRuns`]: here.doubleCutRuns });
        }
        return report;
      },
    },
  ],
};
