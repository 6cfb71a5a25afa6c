import { suite } from './receipt-gate.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./receipt-gate.cases.ts', import.meta.url).href);
