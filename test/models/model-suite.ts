/**
 * The tests every Promela model gets (docs/models/), from its description
 * (tools/models/model-check.ts): spin checks the correct model and every
 * planted-bug variant (the expected assertion fails, or the LTL claim has an
 * acceptance cycle); each stored counterexample and simulation trace is what
 * spin makes today; and every stored trace replays against the TypeScript in
 * both flash modes (a conformance trace step by step, a counterexample
 * refused at the bug's step).
 *
 * spin is a Debian package that CI installs (.ci/run). Without it, the spin
 * tests skip with a message, except under CI (env CI set), where they fail.
 * The trace replays need no spin and always run.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { findSpin } from '../../tools/models/spin.ts';
import { CHECK_COMMAND, FLASH_MODES, judgeCheck, replayModeOf, rerunSimulation, runCheck, storedTraces, storesTrace, type AnyModel } from '../../tools/models/model-check.ts';

const spin = findSpin();
/** CI is "set" when the variable exists, unless it says 0 or false. */
const inCi = process.env.CI !== undefined && !/^(0|false)$/i.test(process.env.CI);
const skip = spin.ok || inCi ? false : `${spin.reason}; CI installs it and fails without it`;

function requireSpin(): void {
  if (!spin.ok) assert.fail(`CI is set and spin is missing: ${spin.reason}`);
}

export function describeModel(model: AnyModel): void {
  const stored = storedTraces(model);
  const regenerate = `${CHECK_COMMAND} ${model.name} --write-traces`;

  describe(`${model.name} model checks (spin)`, () => {
    for (const check of model.checks) {
      const expectation = check.violates === undefined ? 'passes' : check.violates === 'acceptance cycle' ? 'has an acceptance cycle' : `fails with assertion violated ${check.violates}`;
      it(`${check.name} (${check.kind ?? 'safety'}) ${expectation}`, { skip }, (t) => {
        requireSpin();
        const result = runCheck(check);
        t.diagnostic(`states stored ${result.statesStored}, transitions ${result.transitions}, depth ${result.depthReached}, search ${result.searchSeconds} s, spin+gcc+pan ${result.totalSeconds.toFixed(2)} s`);
        const problem = judgeCheck(check, result);
        assert.equal(problem, undefined, `${check.model}: ${problem}\n${result.output.slice(0, 1500)}`);
        if (storesTrace(check)) {
          const trace = stored.find((s) => s.path.endsWith(`/${check.name}.trace`));
          assert.ok(trace, `no stored trace ${check.name}.trace: run ${regenerate}`);
          assert.deepEqual(result.trail, trace.trace.lines, `${trace.path} is not the counterexample spin finds today: run ${regenerate}`);
        }
      });
    }

    it('stored simulation traces are what spin -n<seed> makes today', { skip }, () => {
      requireSpin();
      const sims = stored.filter((s) => s.trace.meta.kind === 'simulation');
      for (const config of model.simulations) assert.ok(sims.some((s) => s.path.includes(`/${config.name}-seed`)), `no stored trace of ${config.name}`);
      for (const sim of sims) assert.deepEqual(rerunSimulation(sim), sim.trace.lines, `${sim.path} drifted from the model: run ${regenerate}`);
    });
  });

  describe(`${model.name} traces replayed against the TypeScript`, () => {
    it('the trace directory holds counterexamples and simulations', () => {
      assert.ok(stored.filter((s) => s.trace.meta.kind === 'counterexample').length >= model.checks.filter(storesTrace).length, 'a counterexample per planted bug');
      assert.ok(stored.some((s) => s.trace.meta.kind === 'simulation'), 'simulations');
    });
    for (const trace of stored) {
      for (const flashMode of FLASH_MODES) {
        const mode = replayModeOf(trace);
        const what = mode === 'counterexample' ? `the TypeScript refuses to follow the bug (${trace.trace.meta.violates})` : `the TypeScript ${model.conformance}`;
        it(`${trace.path} (${flashMode} flash): ${what}`, (t) => {
          const report = model.replay(trace.trace, { mode, flashMode });
          t.diagnostic(model.summarize(report));
          if (mode === 'counterexample') {
            const refusal = model.refusal(report);
            assert.ok(refusal, 'the TypeScript refused the step where the buggy model broke its property');
            t.diagnostic(refusal);
          }
        });
      }
    }
  });
}
