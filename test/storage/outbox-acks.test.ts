import { suite } from './outbox-acks.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./outbox-acks.cases.ts', import.meta.url).href);
