#!/usr/bin/env node
// The holdfast CLI. The tools are TypeScript run through tsx, so a checkout
// needs no separate compile step before `npx holdfast …` works.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../tools/cli/main.ts');
process.exitCode = await main(process.argv);
