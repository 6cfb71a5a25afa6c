/**
 * `holdfast console --port PATH [--baud N] [--json] [--unlock-key FILE]
 * [--command "..."]`: talk to a device's serial console (docs/spec/console.md).
 *
 * - Interactive (no --command): device log lines as they come (coloured on
 *   a terminal), a prompt for commands; with stdin not a terminal, one
 *   command per line of stdin, then exit at its end.
 * - `--command "status"`: run one command, print its reply, exit 0 when the
 *   device did it, 1 when it refused (scriptable).
 * - `--json`: every parsed event as one JSON object per line on stdout
 *   (hello, log, item, reply, noise, dropped, unlock, end; errors too).
 * - `--unlock-key FILE`: first unlock the console by challenge–response
 *   with the fleet's console key (the device holds only its public key).
 */
import { statSync } from 'node:fs';
import { createInterface, type Interface } from 'node:readline';
import type { Command } from 'commander';
import { parseInteger } from '../../keys/cli-options.ts';
import type { SecretKey } from '../../keys/signer.ts';
import { CliError, EnvironmentError, jsonError, toCliError, UsageError } from '../errors.ts';
import { ExitCode } from '../exit-codes.ts';
import { parseCommand, readConsoleKey, unlockConsole, UnlockRefused, type ParsedCommand } from '../../console/commands.ts';
import { formatEvent, formatReply, jsonEvent, styleFor } from '../../console/render.ts';
import type { ConsoleClient, ConsoleEvent, ConsoleReply } from '../../console/client.ts';

interface ConsoleFlags {
  port: string;
  baud: number;
  json?: boolean;
  unlockKey?: string;
  command?: string;
  timeoutMs: number;
}

/** The ESP32 console UART's usual speed (ESP-IDF's CONFIG_ESP_CONSOLE_UART_BAUDRATE default). */
export const CONSOLE_BAUD = 115200;

export function registerConsole(program: Command): void {
  program
    .command('console')
    .description("talk to a device's serial console: its log lines (coloured on a terminal), commands at a prompt or one with --command; --json streams parsed events")
    .requiredOption('--port <path>', 'serial device of the board (e.g. /dev/ttyUSB0)')
    .option('--baud <n>', 'baud rate, 9600..3000000', parseInteger(9600, 3_000_000), CONSOLE_BAUD)
    .option('--command <text>', 'run one command ("status", "outbox", "counter", "slots", "audit tail 5", "confirm", "rollback", "safe-mode on", "reboot", …), print its reply and exit')
    .option('--unlock-key <file>', 'console key file (64 hex digits, mode 0600): unlock the console by challenge-response first')
    .option('--timeout-ms <ms>', 'how long to wait for each reply, 100..600000', parseInteger(100, 600_000), 5000)
    .option('--json', 'print every parsed event as one JSON object per line (errors too)')
    .action(async (flags: ConsoleFlags) => {
      try {
        await runConsole(flags);
      } catch (error) {
        const failure = toCliError(error);
        if (!flags.json) throw failure;
        // One JSON object per line, the error too (not main's indented object).
        console.error(`holdfast console: ${failure.message}`);
        console.log(JSON.stringify({ event: 'error', ...jsonError(failure) }));
        process.exitCode = failure.exitCode;
      }
    });
}

async function runConsole(flags: ConsoleFlags): Promise<void> {
  let command: ParsedCommand | undefined;
  if (flags.command !== undefined) {
    const parsed = parseCommand(flags.command);
    if (typeof parsed === 'string') throw new UsageError(parsed, { field: '--command' });
    if (parsed.op === 'unlock' && flags.unlockKey === undefined) throw new UsageError('unlock needs --unlock-key FILE (the console key)', { field: '--command' });
    command = parsed;
  }
  const key = flags.unlockKey === undefined ? undefined : readConsoleKey(flags.unlockKey);
  const port = statSync(flags.port, { throwIfNoEntry: false });
  if (port === undefined) throw new CliError('does not exist: expected the serial device of the board (--port)', { file: flags.port, code: 'not-found' });
  if (port.isDirectory()) throw new CliError('is a directory: expected the serial device of the board (--port)', { file: flags.port, code: 'not-a-file' });
  // Loaded only here: serialport's native binding costs every other command nothing.
  let clientModule: typeof import('../../console/client.ts');
  try {
    clientModule = await import('../../console/client.ts');
  } catch (error) {
    throw new EnvironmentError(`the serial console does not load (${(error instanceof Error ? error.message : String(error)).split('\n')[0]}): expected serialport's prebuilt binding for ${process.platform}-${process.arch}; run npm ci`);
  }
  let client: ConsoleClient;
  try {
    client = await clientModule.ConsoleClient.open(flags.port, flags.baud);
  } catch (error) {
    const message = (error instanceof Error ? error.message : String(error)).replace(/^(Error: )+/, '');
    const code = /EACCES|Permission/i.test(message) ? 'permission' : /ENOENT|No such file/i.test(message) ? 'not-found' : 'io';
    throw new CliError(`cannot open (${message}): expected a serial device this user may open${code === 'permission' ? ' (on Debian: add yourself to the dialout group)' : ''}`, { file: flags.port, code });
  }
  const session = new Session(client, flags, clientModule);
  try {
    if (key !== undefined) await session.unlock(key);
    if (command !== undefined) await session.runOne(command, key);
    else await session.interactive(key);
  } finally {
    await client.close();
  }
}

class Session {
  private readonly outStyle = styleFor(process.stdout);
  private readonly errStyle = styleFor(process.stderr);
  private rl: Interface | undefined;
  private refused = 0;
  private readonly lost: Promise<never>;

  constructor(
    private readonly client: ConsoleClient,
    private readonly flags: ConsoleFlags,
    private readonly module: typeof import('../../console/client.ts'),
  ) {
    client.on((event) => this.show(event));
    this.lost = new Promise<never>((_, reject) => client.onLost((error) => reject(error)));
    this.lost.catch(() => {});
  }

  /** Unlock with the key; a refusal or a link loss is an error (exit 1). */
  async unlock(key: SecretKey): Promise<void> {
    try {
      const outcome = await unlockConsole(this.client, key, this.flags.timeoutMs);
      if (this.flags.json) this.line(JSON.stringify({ event: 'unlock', ok: true, number: outcome.number, unlockMs: outcome.unlockMs, keyId: outcome.keyId }));
      else this.note(`console unlocked with key ${outcome.keyId} for ${Math.round(outcome.unlockMs / 1000)} s (challenge ${outcome.number})`);
    } catch (error) {
      throw this.failure(error, 'unlock');
    }
  }

  async runOne(command: ParsedCommand, key: SecretKey | undefined): Promise<void> {
    if (command.op === 'unlock') {
      // Already unlocked above (unlock needs --unlock-key).
      if (key === undefined) throw new UsageError('unlock needs --unlock-key FILE', { field: '--command' });
    } else {
      const reply = await this.request(command);
      if (!this.flags.json) console.log(formatReply(reply, this.outStyle));
      if (!reply.ok) {
        // Under --json the reply event (ok: false) and the error event say it: no end event.
        throw new CliError(`${reply.op} refused by the device: ${reply.code}${reply.msg ? ` (${reply.msg})` : ''}`, { file: this.flags.port, code: 'failed' });
      }
    }
    this.end(ExitCode.OK);
    process.exitCode = ExitCode.OK;
  }

  async interactive(key: SecretKey | undefined): Promise<void> {
    const tty = process.stdin.isTTY === true;
    this.note(`connected to ${this.flags.port} at ${this.flags.baud} baud; ${tty ? 'type a command (help lists them, quit leaves)' : 'reading commands from stdin'}`);
    const rl = createInterface({ input: process.stdin, output: tty ? process.stdout : undefined, prompt: 'holdfast> ', terminal: tty });
    this.rl = rl;
    if (tty) rl.on('SIGINT', () => process.kill(process.pid, 'SIGINT'));
    const lines = (async () => {
      if (tty) rl.prompt();
      for await (const raw of rl) {
        const text = raw.trim();
        if (text === 'quit' || text === 'exit') break;
        if (text !== '' && !text.startsWith('#')) await this.typed(text, key);
        if (tty) rl.prompt();
      }
    })();
    try {
      await Promise.race([lines, this.lost]);
    } catch (error) {
      throw this.failure(error, 'console');
    } finally {
      rl.close();
      this.rl = undefined;
    }
    const exitCode = this.refused > 0 ? ExitCode.FAILED : ExitCode.OK;
    this.end(exitCode);
    process.exitCode = exitCode;
  }

  /** One typed command: a bad one is reported and the session goes on. */
  private async typed(text: string, key: SecretKey | undefined): Promise<void> {
    const parsed = parseCommand(text);
    if (typeof parsed === 'string') {
      this.problem('usage', parsed);
      return;
    }
    if (parsed.op === 'unlock') {
      if (key === undefined) {
        this.problem('usage', 'unlock needs the console key: start holdfast console with --unlock-key FILE');
        return;
      }
      try {
        await this.unlock(key);
      } catch (error) {
        if (error instanceof this.module.LinkLostError || (error instanceof CliError && error.code === 'io')) throw error;
        this.refused++;
        this.problem('failed', error instanceof Error ? error.message : String(error));
      }
      return;
    }
    const reply = await this.request(parsed);
    if (!reply.ok) this.refused++;
    if (!this.flags.json) this.line(formatReply(reply, this.outStyle));
  }

  private async request(command: ParsedCommand): Promise<ConsoleReply> {
    try {
      return await this.client.request(command.op, command.fields, this.flags.timeoutMs);
    } catch (error) {
      throw this.failure(error, command.op);
    }
  }

  /** Link loss and timeouts as CLI errors naming the port. */
  private failure(error: unknown, op: string): Error {
    if (error instanceof this.module.LinkLostError) return new CliError(`${op}: ${error.message}`, { file: this.flags.port, code: 'io' });
    if (error instanceof this.module.ReplyTimeoutError) return new CliError(error.message, { file: this.flags.port, code: 'failed' });
    if (error instanceof UnlockRefused) return new CliError(`unlock refused: ${error.message}`, { file: this.flags.port, code: 'failed' });
    return error instanceof Error ? error : new Error(String(error));
  }

  private show(event: ConsoleEvent): void {
    if (this.flags.json) {
      this.line(jsonEvent(event));
      return;
    }
    // With --command, stdout is the reply only: what the device says meanwhile goes to stderr.
    const toStderr = this.flags.command !== undefined;
    const text = formatEvent(event, toStderr ? this.errStyle : this.outStyle);
    if (text === undefined) return;
    if (toStderr) process.stderr.write(`${text}\n`);
    else this.line(text);
  }

  private end(exitCode: number): void {
    if (this.flags.json) this.line(JSON.stringify({ event: 'end', ok: exitCode === ExitCode.OK, exitCode, rx: this.client.stats }));
  }

  private problem(code: string, message: string): void {
    if (this.flags.json) this.line(JSON.stringify({ event: 'problem', code, message }));
    else process.stderr.write(`holdfast console: ${message}\n`);
  }

  private note(text: string): void {
    if (!this.flags.json) process.stderr.write(`${text}\n`);
  }

  /** A line on stdout that does not break the prompt being typed. */
  private line(text: string): void {
    const rl = this.rl;
    if (rl !== undefined && process.stdin.isTTY === true && process.stdout.isTTY === true) {
      process.stdout.write(`\r\x1b[2K${text}\n`);
      rl.prompt(true);
    } else {
      process.stdout.write(`${text}\n`);
    }
  }
}
