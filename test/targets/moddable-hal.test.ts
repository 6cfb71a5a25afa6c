import { suite } from './moddable-hal.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./moddable-hal.cases.ts', import.meta.url).href);
