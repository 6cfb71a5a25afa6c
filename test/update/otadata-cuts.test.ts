import { suite } from './otadata.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./otadata.cases.ts', import.meta.url).href);
