import { suite } from './key-store.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./key-store.cases.ts', import.meta.url).href);
