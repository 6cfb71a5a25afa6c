import { suite } from './quarantine.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./quarantine.cases.ts', import.meta.url).href);
