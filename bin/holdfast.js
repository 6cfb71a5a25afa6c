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
// An interrupted command exits through process.exit, whose 'exit' hooks
// remove what it created (temporary files, XS workers and their pipe
// folders): one line on stderr, 128 + the signal number.
let cli;
for (const [signal, number] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]]) {
  process.once(signal, () => {
    const args = process.argv.slice(2);
    const name = cli ? cli.commandNameOf(args) : '';
    const message = `interrupted by ${signal}; temporary files removed`;
    process.stderr.write(`holdfast${name ? ` ${name}` : ''}: ${message}\n`);
    if (cli && cli.wantsJson(args)) process.stdout.write(`${JSON.stringify({ ok: false, exitCode: 128 + number, error: { code: 'interrupted', message, file: null, field: null } }, null, 2)}\n`);
    process.exit(128 + number);
  });
}
register();
cli = await import('../tools/cli/main.ts');
process.exitCode = await cli.main(process.argv);
