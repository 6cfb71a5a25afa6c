import { suite } from './boot.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./boot.cases.ts', import.meta.url).href);
