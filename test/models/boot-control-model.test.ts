/**
 * The boot-control models (docs/models/boot-control.md): spin checks the
 * correct model (safety and `[]<> goodRunning`) and every planted-bug
 * variant (the expected assertion fails, or the LTL claim has an acceptance
 * cycle); the stored traces are what spin makes today; and every stored
 * trace replays against the TypeScript in both flash modes.
 *
 * Without spin the spin tests skip with a message, except under CI (env CI
 * set), where they fail. The trace replays need no spin and always run.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { findSpin } from '../../tools/models/spin.ts';
import { CHECKS, judgeCheck, rerunSimulation, runCheck, SIMULATIONS, storedTraces, storesTrace } from '../../tools/models/boot-control-models.ts';
import { replayBootTrace } from '../../tools/models/boot-control-replay.ts';

const spin = findSpin();
/** CI is "set" when the variable exists, unless it says 0 or false. */
const inCi = process.env.CI !== undefined && !/^(0|false)$/i.test(process.env.CI);
const skip = spin.ok || inCi ? false : `${spin.reason}; CI installs it and fails without it`;
const stored = storedTraces();

function requireSpin(): void {
  if (!spin.ok) assert.fail(`CI is set and spin is missing: ${spin.reason}`);
}

describe('boot-control model checks (spin)', () => {
  for (const check of CHECKS) {
    const expectation = check.violates === undefined ? 'passes' : check.violates === 'acceptance cycle' ? 'has an acceptance cycle' : `fails with assertion violated ${check.violates}`;
    it(`${check.name} (${check.kind}) ${expectation}`, { skip }, (t) => {
      requireSpin();
      const result = runCheck(check);
      t.diagnostic(`states stored ${result.statesStored}, transitions ${result.transitions}, depth ${result.depthReached}, search ${result.searchSeconds} s, spin+gcc+pan ${result.totalSeconds.toFixed(2)} s`);
      const problem = judgeCheck(check, result);
      assert.equal(problem, undefined, `${check.model}: ${problem}\n${result.output.slice(0, 1500)}`);
      if (storesTrace(check)) {
        const trace = stored.find((s) => s.path.endsWith(`/${check.name}.trace`));
        assert.ok(trace, `no stored trace ${check.name}.trace: run node --import tsx tools/models/boot-control-check.ts --write-traces`);
        assert.deepEqual(result.trail, trace.trace.lines, `${trace.path} is not the counterexample spin finds today: regenerate the traces`);
      }
    });
  }

  it('stored simulation traces are what spin -n<seed> makes today', { skip }, () => {
    requireSpin();
    const sims = stored.filter((s) => s.trace.meta.kind === 'simulation');
    for (const config of SIMULATIONS) assert.ok(sims.some((s) => s.path.includes(`/${config.name}-seed`)), `no stored trace of ${config.name}`);
    for (const sim of sims) assert.deepEqual(rerunSimulation(sim), sim.trace.lines, `${sim.path} drifted from the model: regenerate the traces`);
  });
});

describe('boot-control traces replayed against the TypeScript', () => {
  it('the trace directory holds counterexamples and simulations', () => {
    assert.ok(stored.filter((s) => s.trace.meta.kind === 'counterexample').length >= CHECKS.filter(storesTrace).length, 'a counterexample per planted bug');
    assert.ok(stored.some((s) => s.trace.meta.kind === 'simulation'), 'simulations');
  });
  for (const trace of stored) {
    for (const flashMode of ['plain', 'strict'] as const) {
      const counterexample = trace.trace.meta.kind === 'counterexample';
      const what = counterexample ? `the TypeScript refuses to follow the bug (${trace.trace.meta.violates})` : 'the TypeScript boots, writes and raises as the model does';
      it(`${trace.path} (${flashMode} flash): ${what}`, (t) => {
        const report = replayBootTrace(trace.trace, { mode: counterexample ? 'counterexample' : 'conformance', flashMode });
        t.diagnostic(`boots ${report.boots}, otadata writes ${report.otadataWrites}, cuts ${report.cuts}, torn ${report.torn}, real calls ${report.realCalls}`);
        if (counterexample) {
          assert.ok(report.divergence, 'the TypeScript refused a step');
          t.diagnostic(`refused at event ${report.divergence.at + 1}: ${report.divergence.kind}: ${report.divergence.detail}`);
        }
      });
    }
  }
});
