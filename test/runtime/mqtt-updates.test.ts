import { suite } from './mqtt-updates.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./mqtt-updates.cases.ts', import.meta.url).href);
