import { suite } from './root-store.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./root-store.cases.ts', import.meta.url).href);
