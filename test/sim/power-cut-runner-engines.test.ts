import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { suite } from './power-cut-runner.cases.ts';
import { testInBothEngines } from '../support/engines.ts';
import { XsSuiteRunner } from '../../tools/xs/suite-runner.ts';

const casesUrl = new URL('./power-cut-runner.cases.ts', import.meta.url).href;
testInBothEngines(suite, casesUrl);

describe('HOLDFAST_EXHAUSTIVE reaches the runner inside XS (XS has no environment)', () => {
  let runner: XsSuiteRunner | undefined;
  before(async () => {
    runner = await XsSuiteRunner.open(fileURLToPath(casesUrl));
  });
  after(() => runner?.close());
  for (const [flag, tier] of [['1', true], ['', false], ['0', false]] as const) {
    it(`HOLDFAST_EXHAUSTIVE=${JSON.stringify(flag)} on the host: tier ${tier} in XS`, () => {
      const saved = process.env.HOLDFAST_EXHAUSTIVE;
      process.env.HOLDFAST_EXHAUSTIVE = flag;
      try {
        const result = runner!.runCase('the exhaustive tier as this engine sees it');
        assert.ok(result.ok, result.error);
        assert.equal(result.report?.tier, tier);
        assert.equal(result.report?.secondCuts, tier ? '"every"' : '{"sample":2}');
      } finally {
        if (saved === undefined) delete process.env.HOLDFAST_EXHAUSTIVE;
        else process.env.HOLDFAST_EXHAUSTIVE = saved;
      }
    });
  }
});
