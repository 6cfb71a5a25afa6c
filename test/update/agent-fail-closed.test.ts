import { suite } from './agent-fail-closed.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./agent-fail-closed.cases.ts', import.meta.url).href);
