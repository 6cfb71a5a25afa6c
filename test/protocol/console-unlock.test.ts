import { suite } from './console-unlock.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./console-unlock.cases.ts', import.meta.url).href);
