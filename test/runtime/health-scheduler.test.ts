import { suite } from './health-scheduler.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./health-scheduler.cases.ts', import.meta.url).href);
