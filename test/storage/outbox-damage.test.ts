import { suite } from './outbox-damage.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./outbox-damage.cases.ts', import.meta.url).href);
