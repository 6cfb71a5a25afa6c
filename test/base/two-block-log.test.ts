import { suite } from './two-block-log.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./two-block-log.cases.ts', import.meta.url).href);
