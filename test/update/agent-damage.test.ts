import { suite } from './agent-damage.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./agent-damage.cases.ts', import.meta.url).href);
