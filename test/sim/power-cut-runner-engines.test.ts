import { suite } from './power-cut-runner.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./power-cut-runner.cases.ts', import.meta.url).href);
