import { suite } from './counter.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./counter.cases.ts', import.meta.url).href);
