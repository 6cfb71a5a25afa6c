import { suite } from './mqtt-commands.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./mqtt-commands.cases.ts', import.meta.url).href);
