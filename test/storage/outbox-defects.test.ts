import { suite } from './outbox-defects.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./outbox-defects.cases.ts', import.meta.url).href);
