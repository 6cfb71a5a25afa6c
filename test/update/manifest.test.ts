import { suite } from './manifest.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./manifest.cases.ts', import.meta.url).href);
