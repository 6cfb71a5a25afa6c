import { suite } from './floor-store.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./floor-store.cases.ts', import.meta.url).href);
