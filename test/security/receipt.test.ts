import { suite } from './receipt.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./receipt.cases.ts', import.meta.url).href);
