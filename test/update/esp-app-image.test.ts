import { suite } from './esp-app-image.cases.ts';
import { testInBothEngines } from '../support/engines.ts';

testInBothEngines(suite, new URL('./esp-app-image.cases.ts', import.meta.url).href);
