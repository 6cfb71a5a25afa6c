import { suite } from './outbox.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./outbox.cases.ts', import.meta.url).href);
