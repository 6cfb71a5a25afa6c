/**
 * holdfast CLI entry (bin/holdfast.js). Each command lives in its own module
 * under commands/ and registers itself on the commander program. Every
 * failure is one line on stderr (`holdfast <command>: …`) and, under
 * `--json`, one JSON error object on stdout (docs/cli.md, "Errors").
 */
import { Command, CommanderError } from 'commander';
import { ExitCode } from './exit-codes.ts';
import { CliError, EnvironmentError, jsonError, oneLine, toCliError, UsageError } from './errors.ts';
import { registerVersion } from './commands/version.ts';
import { registerBuild } from './commands/build.ts';
import { registerCheck } from './commands/check.ts';
import { registerDemo } from './commands/demo.ts';
import { registerBench } from './commands/bench.ts';
import { registerKeys } from './commands/keys.ts';
import { registerSign } from './commands/sign.ts';
import { registerVerify } from './commands/verify.ts';
import { registerCosign, registerCombine } from './commands/cosign.ts';
import { registerInspect } from './commands/inspect.ts';
import { registerIngest } from './commands/ingest.ts';
import { registerAudit } from './commands/audit.ts';
import { registerFlash } from './commands/flash.ts';
import { registerSim } from './commands/sim.ts';
import { registerConsole } from './commands/console.ts';
import { registerProvision } from './commands/provision.ts';
import { registerFleet } from './commands/fleet.ts';
import { registerRollout } from './commands/rollout.ts';
import { packageInfo } from './package-info.ts';

export { EnvironmentError };

export const EXIT_CODES_HELP = 'Exit codes: 0 ok, 1 the command found a problem, 2 bad usage, 3 the machine lacks something (the XS engine), 4 a simulated fleet broke a promise (sim), 130 interrupted (see docs/cli.md).';

export function createProgram(commandName = ''): Command {
  const program = new Command('holdfast')
    .description('Offline-first firmware runtime for IIoT devices: build, simulate, measure, sign')
    .version(packageInfo().version, '-V, --version', 'print the holdfast version')
    .configureHelp({ showGlobalOptions: true, subcommandTerm: (cmd) => `${cmd.name()} ${cmd.usage()}` })
    // Usage errors: one line, naming the command and where its help is.
    .configureOutput({ outputError: (text, write) => write(`holdfast${commandName ? ` ${commandName}` : ''}: ${oneLine(text)} (see holdfast ${commandName ? `${commandName} ` : ''}--help)\n`) })
    .exitOverride();
  for (const register of [registerVersion, registerBuild, registerCheck, registerDemo, registerSim, registerBench, registerKeys, registerSign, registerCosign, registerCombine, registerVerify, registerInspect, registerIngest, registerFlash, registerConsole, registerAudit, registerProvision, registerFleet, registerRollout]) register(program);
  program.addHelpText('after', () => `\nCommand flags:\n${describeFlags(program)}`);
  program.addHelpText('after', `\n${EXIT_CODES_HELP}`);
  const override = (cmd: Command): void => {
    cmd.exitOverride();
    cmd.commands.forEach(override);
  };
  override(program);
  return program;
}

/** Every command with its flags, for the top-level --help. */
function describeFlags(program: Command): string {
  return leafCommands(program)
    .map(({ name, cmd }) => {
      const flags = cmd.options.map((o) => `    ${o.flags.padEnd(24)} ${o.description}${o.defaultValue !== undefined && !String(o.defaultValue).startsWith('/') && !(Array.isArray(o.defaultValue) && o.defaultValue.length === 0) ? ` (default ${o.defaultValue})` : ''}`);
      return [`  ${name} ${cmd.usage()}`, ...flags].join('\n');
    })
    .join('\n');
}

/** Every runnable command with its full name ("keys rotate"). */
export function leafCommands(program: Command): { name: string; cmd: Command }[] {
  const out: { name: string; cmd: Command }[] = [];
  const walk = (cmd: Command, prefix: string): void => {
    for (const sub of cmd.commands) {
      if (sub.name() === 'help') continue;
      const name = prefix ? `${prefix} ${sub.name()}` : sub.name();
      if (sub.commands.length > 0) walk(sub, name);
      else out.push({ name, cmd: sub });
    }
  };
  walk(program, '');
  return out;
}

/** `--json` among the arguments (before a `--`). */
export function wantsJson(args: readonly string[]): boolean {
  const end = args.indexOf('--');
  return (end === -1 ? args : args.slice(0, end)).includes('--json');
}

/** The command named by `args` (after node and the script): "keys rotate", "sign", or '' */
export function commandNameOf(args: readonly string[]): string {
  const names = new Set(['version', 'build', 'check', 'demo', 'sim', 'bench', 'keys', 'sign', 'cosign', 'combine', 'verify', 'inspect', 'ingest', 'flash', 'console', 'audit', 'provision', 'fleet', 'rollout']);
  const first = args.find((a) => !a.startsWith('-'));
  if (first === undefined || !names.has(first)) return '';
  const sub = args[args.indexOf(first) + 1];
  if (first === 'audit') return sub === 'verify' ? 'audit verify' : 'audit';
  if (first === 'fleet') return sub !== undefined && ['ls', 'show', 'set', 'export', 'broker-config', 'quarantine', 'release', 'revoke'].includes(sub) ? `fleet ${sub}` : 'fleet';
  if (first === 'rollout') return sub !== undefined && ['start', 'step', 'status', 'halt', 'trail'].includes(sub) ? `rollout ${sub}` : 'rollout';
  if (first === 'ingest') return sub === 'report' || sub === 'run' ? `ingest ${sub}` : 'ingest';
  if (first !== 'keys') return first;
  return sub === 'init' || sub === 'rotate' ? `keys ${sub}` : 'keys';
}

/** Runs the CLI; resolves to the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const args = argv.slice(2);
  const name = commandNameOf(args);
  const json = wantsJson(args);
  const program = createProgram(name);
  try {
    await program.parseAsync(argv as string[]);
    return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.OK;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help') return ExitCode.OK;
      // commander has written the one-line message on stderr (configureOutput above).
      if (json) {
        const field = /option '([^' ]+)/.exec(error.message)?.[1] ?? /argument '([^']+)'/.exec(error.message)?.[1];
        printJson(new UsageError(oneLine(error.message).replace(/^error: /, ''), field !== undefined ? { field } : {}));
      }
      return ExitCode.USAGE;
    }
    const failure = toCliError(error);
    report(name, failure, json);
    return failure.exitCode;
  }
}

/** The one stderr line (and the JSON object under --json) for a failure. */
export function report(name: string, failure: CliError, json: boolean): void {
  console.error(`holdfast${name ? ` ${name}` : ''}: ${failure.message}`);
  if (json) printJson(failure);
}

function printJson(failure: CliError): void {
  console.log(JSON.stringify(jsonError(failure), null, 2));
}
