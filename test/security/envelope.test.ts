import { suite } from './envelope.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./envelope.cases.ts', import.meta.url).href);
