import { suite } from './ed25519-verifier.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./ed25519-verifier.cases.ts', import.meta.url).href);
