import { suite } from './key-rotation.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./key-rotation.cases.ts', import.meta.url).href);
