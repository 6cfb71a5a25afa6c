/**
 * holdfast CLI entry (bin/holdfast.js). Each command lives in its own module
 * under commands/ and registers itself on the commander program.
 */
import { Command, CommanderError } from 'commander';
import { ExitCode } from './exit-codes.ts';
import { registerVersion } from './commands/version.ts';
import { registerBuild } from './commands/build.ts';
import { registerCheck } from './commands/check.ts';
import { registerDemo } from './commands/demo.ts';
import { registerBench } from './commands/bench.ts';
import { registerKeys } from './commands/keys.ts';
import { registerSign } from './commands/sign.ts';
import { registerVerify } from './commands/verify.ts';
import { packageInfo } from './package-info.ts';

export function createProgram(): Command {
  const program = new Command('holdfast')
    .description('Offline-first firmware runtime for IIoT devices: build, simulate, measure')
    .version(packageInfo().version, '-V, --version', 'print the holdfast version')
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({ showGlobalOptions: true, subcommandTerm: (cmd) => `${cmd.name()} ${cmd.usage()}` })
    .exitOverride();
  for (const register of [registerVersion, registerBuild, registerCheck, registerDemo, registerBench, registerKeys, registerSign, registerVerify]) register(program);
  program.addHelpText('after', () => `\nCommand flags:\n${describeFlags(program)}`);
  program.addHelpText('after', '\nExit codes: 0 ok, 1 the command found a problem, 2 bad usage, 3 missing environment (see docs/cli.md).');
  for (const cmd of program.commands) cmd.exitOverride();
  return program;
}

/** Every command with its flags, for the top-level --help. */
function describeFlags(program: Command): string {
  return program.commands
    .filter((cmd) => cmd.name() !== 'help')
    .map((cmd) => {
      const flags = cmd.options.map((o) => `    ${o.flags.padEnd(24)} ${o.description}${o.defaultValue !== undefined && !String(o.defaultValue).startsWith('/') ? ` (default ${o.defaultValue})` : ''}`);
      return [`  ${cmd.name()} ${cmd.usage()}`, ...flags].join('\n');
    })
    .join('\n');
}

/** Runs the CLI; resolves to the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const program = createProgram();
  try {
    await program.parseAsync(argv as string[]);
    return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.OK;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help') return ExitCode.OK;
      return ExitCode.USAGE;
    }
    console.error(`holdfast: ${error instanceof Error ? error.message : String(error)}`);
    return error instanceof EnvironmentError ? ExitCode.ENVIRONMENT : ExitCode.FAILED;
  }
}

/** Something the machine lacks (a built XS engine, a tool); exit code 3. */
export class EnvironmentError extends Error {}
