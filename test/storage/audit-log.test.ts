import { suite } from './audit-log.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./audit-log.cases.ts', import.meta.url).href);
