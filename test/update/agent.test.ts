import { suite } from './agent.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./agent.cases.ts', import.meta.url).href);
