import { suite } from './roll-back.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./roll-back.cases.ts', import.meta.url).href);
