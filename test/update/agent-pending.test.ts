import { suite } from './agent-pending.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./agent-pending.cases.ts', import.meta.url).href);
