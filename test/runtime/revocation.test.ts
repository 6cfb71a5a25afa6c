import { suite } from './revocation.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./revocation.cases.ts', import.meta.url).href);
