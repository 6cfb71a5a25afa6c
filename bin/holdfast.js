#!/usr/bin/env node
// The holdfast CLI. The tools are TypeScript run through tsx, so a checkout
// needs no separate compile step before `npx holdfast …` works.
import { register } from 'tsx/esm/api';

// `holdfast --help | head` closes our stdout early: that is not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
}
register();
const { main } = await import('../tools/cli/main.ts');
process.exitCode = await main(process.argv);
