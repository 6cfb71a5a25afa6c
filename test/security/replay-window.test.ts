import { suite } from './replay-window.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./replay-window.cases.ts', import.meta.url).href);
