import { suite } from './client.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./client.cases.ts', import.meta.url).href);
