import { suite } from './telemetry.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./telemetry.cases.ts', import.meta.url).href);
