import { suite } from './moddable-flash.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./moddable-flash.cases.ts', import.meta.url).href);
