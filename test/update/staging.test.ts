import { suite } from './staging.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./staging.cases.ts', import.meta.url).href);
