import { suite } from './commands.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./commands.cases.ts', import.meta.url).href);
