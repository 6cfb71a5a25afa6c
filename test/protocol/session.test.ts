import { suite } from './session.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./session.cases.ts', import.meta.url).href);
