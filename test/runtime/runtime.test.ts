import { suite } from './runtime.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./runtime.cases.ts', import.meta.url).href);
