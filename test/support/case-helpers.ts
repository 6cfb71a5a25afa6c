/**
 * Small helpers the firmware case suites share (engine-neutral: they run in
 * XS too): seeded garbage, runner options from a case's environment, typed
 * refusals, and the check that a planted bug is caught by an invariant.
 */
import { PowerCutFailure, runExhaustive, type CutScenario, type RunnerOptions } from '../../tools/sim/power-cut.ts';
import { Rng } from '../../tools/sim/rng.ts';
import { CheckFailure, equal, ok, throws } from './check.ts';
import type { CaseEnv, FirmwareCase } from './cases.ts';

/** `length` seeded random bytes: foreign contents that replay exactly. */
export function garbage(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  new Rng(0x5eed + seed).fill(bytes);
  return bytes;
}

/** Runner options for a case: the environment's flash and failure images, plus `extra`. */
export function runnerOptions(env: CaseEnv, extra: Partial<RunnerOptions> = {}): RunnerOptions {
  return { createFlash: env.createFlash, saveFailureImage: env.saveFailureImage, ...extra };
}

/** `run` must throw an error named `errorName` whose `code` is `code`. */
export function throwsCode<E extends Error & { readonly code: string }>(run: () => unknown, errorName: string, code: E['code'], message: string): E {
  const error = throws(run, errorName, message) as E;
  equal(error.code, code, `${message}: code (${error.message})`);
  return error;
}

/**
 * A planted bug must fail an invariant (a CheckFailure whose message matches
 * `pattern`) under the single cuts `run` makes; returns the failure.
 */
export function caughtByInvariant(run: () => unknown, pattern: RegExp, what: string): PowerCutFailure {
  let caught: PowerCutFailure | undefined;
  try {
    run();
  } catch (error) {
    if (!(error instanceof PowerCutFailure)) throw error;
    caught = error;
  }
  ok(caught, `${what} passed every power cut`);
  ok(caught.failure instanceof CheckFailure, `failure should be an invariant violation, was ${String(caught.failure)}`);
  ok(pattern.test(caught.failure.message), `the invariant ${pattern} should fail, got: ${caught.failure.message}`);
  return caught;
}

/** A case that cuts `scenario` at every operation (with `extra` runner options) and reports the runner's counts. */
export function exhaustiveCase<S>(name: string, scenario: CutScenario<S>, extra: Partial<RunnerOptions> = {}): FirmwareCase {
  return { name, run: (env) => ({ ...runExhaustive(scenario, runnerOptions(env, extra)) }) };
}
