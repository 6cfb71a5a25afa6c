import { suite } from './console-power-cut.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./console-power-cut.cases.ts', import.meta.url).href);
