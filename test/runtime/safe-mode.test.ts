import { suite } from './safe-mode.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./safe-mode.cases.ts', import.meta.url).href);
