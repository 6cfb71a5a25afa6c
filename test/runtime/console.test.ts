import { suite } from './console.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./console.cases.ts', import.meta.url).href);
