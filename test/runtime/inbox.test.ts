import { suite } from './inbox.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./inbox.cases.ts', import.meta.url).href);
