import { suite } from './frame-log.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./frame-log.cases.ts', import.meta.url).href);
