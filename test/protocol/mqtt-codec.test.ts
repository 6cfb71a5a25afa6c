import { suite } from './mqtt-codec.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./mqtt-codec.cases.ts', import.meta.url).href);
