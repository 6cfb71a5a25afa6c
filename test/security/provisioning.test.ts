import { suite } from './provisioning.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./provisioning.cases.ts', import.meta.url).href);
