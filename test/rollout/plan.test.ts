/**
 * Rollout plans (tools/rollout/plan.ts, docs/spec/rollout.md "Plan"): a
 * valid plan reads back as written; each rule refuses with the field named;
 * and no input, however malformed, gets anything but a RolloutPlanError.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parsePlan, RolloutPlanError, ROLLOUT_PLAN_MAX_BYTES } from '../../tools/rollout/plan.ts';
import { examplePlan } from './rollout-fixtures.ts';

const bytes = (x: unknown) => new TextEncoder().encode(typeof x === 'string' ? x : JSON.stringify(x));

function refusal(json: unknown): string {
  try {
    parsePlan(bytes(json));
  } catch (error) {
    assert.ok(error instanceof RolloutPlanError, String(error));
    return error.message;
  }
  assert.fail('the plan was accepted');
}

describe('rollout plan', () => {
  it('reads a valid plan as written', () => {
    assert.deepEqual(parsePlan(bytes(examplePlan())), examplePlan());
  });

  it('refuses a newer format, naming the field', () => {
    assert.match(refusal({ ...examplePlan(), format: 2 }), /^format: expected 1 \(a newer plan format/);
  });

  it('refuses stages that do not grow, a duplicate stage name, a fraction finer than 0.01 %', () => {
    const plan = examplePlan();
    assert.match(refusal({ ...plan, stages: [plan.stages[1], plan.stages[0]] }), /^stages\.1\.percent: 1 is not above the stage before \(10\)/);
    assert.match(refusal({ ...plan, stages: [plan.stages[0], { ...plan.stages[1], name: plan.stages[0]!.name }] }), /^stages\.1\.name: "canary" is used twice/);
    assert.match(refusal({ ...plan, stages: [{ ...plan.stages[0], percent: 0.001 }] }), /^stages\.0\.percent: expected a percentage in steps of 0\.01/);
  });

  it('refuses unknown fields, a missing halt rule, a bad id, not JSON, and an oversize file', () => {
    assert.match(refusal({ ...examplePlan(), extra: 1 }), /extra/);
    const { halt: _halt, ...noHalt } = examplePlan();
    assert.match(refusal(noHalt), /^halt: /);
    assert.match(refusal({ ...examplePlan(), id: 'Bad Id' }), /^id: expected a rollout id/);
    assert.match(refusal('{"format":'), /^not a JSON plan/);
    assert.match(refusal(' '.repeat(ROLLOUT_PLAN_MAX_BYTES + 1)), /more than 65536/);
  });

  it('any bytes: a plan or a RolloutPlanError, nothing else', () => {
    const mutated = fc.record({ key: fc.constantFrom('format', 'id', 'target', 'stages', 'halt', 'timeouts', 'onHalt', 'select'), value: fc.jsonValue() }).map(({ key, value }) => ({ ...examplePlan(), [key]: value }));
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), mutated.map(bytes), fc.jsonValue().map(bytes)), (input) => {
        try {
          parsePlan(input);
        } catch (error) {
          assert.ok(error instanceof RolloutPlanError, String(error));
        }
      }),
      { numRuns: 500 },
    );
  });
});
