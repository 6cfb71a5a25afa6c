/**
 * Console commands as a person types them (`status`, `audit tail 5`,
 * `safe-mode on`) to the wire's op and fields (docs/spec/console.md,
 * "Commands"), and the unlock exchange with a console key file.
 *
 * Host tool (Node).
 */
import { statSync } from 'node:fs';
import * as ed from '@noble/ed25519';
import { configureEd25519 } from '../../firmware/security/noble-crypto.ts';
import { decodeConsoleChallenge } from '../../firmware/security/console-unlock.ts';
import { bytesToHex } from '../../firmware/security/verify.ts';
import { CONSOLE_MAX_AUDIT_TAIL } from '../../firmware/protocol/console/index.ts';
import { keyFromSeed, hexToBytes, keyIdHex, type SecretKey } from '../keys/signer.ts';
import { readTextInput } from '../cli/files.ts';
import { CliError } from '../cli/errors.ts';
import type { ConsoleClient } from './client.ts';

export interface ParsedCommand {
  /** The wire op, or `unlock` (done by the host with the key file). */
  readonly op: string;
  readonly fields: Record<string, string>;
}

/** The commands a person can type, for help and error messages. */
export const COMMAND_SYNTAX = ['status', 'outbox', 'counter', 'slots', `audit tail [1..${CONSOLE_MAX_AUDIT_TAIL}]`, 'confirm', 'rollback', 'safe-mode on|off', 'reboot', 'unlock', 'lock', 'help'] as const;

/** A typed command to op + fields; a one-line reason (string) when it is not one. */
export function parseCommand(line: string): ParsedCommand | string {
  const words = line.trim().split(/\s+/).filter((w) => w !== '');
  const expected = `expected one of: ${COMMAND_SYNTAX.join(', ')}`;
  if (words.length === 0) return `empty command: ${expected}`;
  const [first, ...rest] = words;
  const noArgs = (op: string): ParsedCommand | string => (rest.length === 0 ? { op, fields: {} } : `${op} takes no arguments, got ${JSON.stringify(rest.join(' '))}`);
  switch (first) {
    case 'status':
    case 'outbox':
    case 'counter':
    case 'slots':
    case 'confirm':
    case 'rollback':
    case 'reboot':
    case 'unlock':
    case 'lock':
    case 'help':
      return noArgs(first);
    case 'audit':
    case 'audit-tail': {
      const args = first === 'audit' ? rest : ['tail', ...rest];
      if (args[0] !== 'tail' || args.length > 2) return `expected audit tail [1..${CONSOLE_MAX_AUDIT_TAIL}], got ${JSON.stringify(line.trim())}`;
      if (args.length === 1) return { op: 'audit-tail', fields: {} };
      const n = /^\d{1,3}$/.test(args[1]) ? Number(args[1]) : NaN;
      if (!(n >= 1 && n <= CONSOLE_MAX_AUDIT_TAIL)) return `audit tail takes a count 1..${CONSOLE_MAX_AUDIT_TAIL}, got ${JSON.stringify(args[1])}`;
      return { op: 'audit-tail', fields: { n: String(n) } };
    }
    case 'safe-mode':
      if (rest.length !== 1 || (rest[0] !== 'on' && rest[0] !== 'off')) return `expected safe-mode on|off, got ${JSON.stringify(line.trim())}`;
      return { op: 'safe-mode', fields: { mode: rest[0] } };
    default:
      return `unknown command ${JSON.stringify(first)}: ${expected}`;
  }
}

/** A console key file is at most this long (64 hex digits and a newline, with slack). */
const MAX_KEY_FILE_BYTES = 256;

/**
 * The fleet's console key from a key file as `holdfast keys` writes private
 * keys (`private/<keyid>.key`: 64 hex digits, the Ed25519 seed; mode 0600).
 * Never printed; errors name the file, not its contents.
 */
export function readConsoleKey(path: string): SecretKey {
  const stats = statSync(path, { throwIfNoEntry: false });
  if (stats === undefined) throw new CliError('does not exist: expected a console key file (64 hex digits, mode 0600) for --unlock-key', { file: path, code: 'not-found' });
  if (!stats.isFile()) throw new CliError('is not a regular file: expected a console key file (64 hex digits, mode 0600)', { file: path, code: 'not-a-file' });
  const mode = stats.mode & 0o777;
  if ((mode & 0o077) !== 0) throw new CliError(`is accessible to group or others (mode 0${mode.toString(8)}): expected mode 0600 (chmod 600 it)`, { file: path, code: 'permission' });
  const text = readTextInput(path, 'a console key file (64 hex digits)', MAX_KEY_FILE_BYTES).trim();
  if (!/^[0-9a-f]{64}$/i.test(text)) throw new CliError('does not hold a hex Ed25519 seed: expected 64 hex digits', { file: path, code: 'invalid-file' });
  return keyFromSeed(hexToBytes(text.toLowerCase()));
}

/** Why an unlock did not happen: the device's refusal code, or a challenge the host would not sign. */
export class UnlockRefused extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = 'UnlockRefused';
  }
}

export interface UnlockOutcome {
  readonly number: number;
  readonly unlockMs: number;
  readonly keyId: string;
}

/**
 * Ask for a challenge, check it is a holdfast console challenge for the
 * device that sent it (so the key signs nothing else), sign it, answer it.
 */
export async function unlockConsole(client: ConsoleClient, key: SecretKey, timeoutMs: number): Promise<UnlockOutcome> {
  const challenge = await client.request('unlock', {}, timeoutMs);
  if (!challenge.ok) throw new UnlockRefused(challenge.code ?? 'unknown', `the device refused to issue a challenge: ${challenge.code}${challenge.msg ? ` (${challenge.msg})` : ''}`);
  const hex = challenge.fields.challenge ?? '';
  const bytes = /^(?:[0-9a-f]{2})+$/.test(hex) ? hexToBytes(hex) : new Uint8Array(0);
  const decoded = decodeConsoleChallenge(bytes);
  if (decoded === undefined) throw new UnlockRefused('bad-challenge', 'the device sent something that is not a version-1 console challenge (HFCU): not signed');
  if (decoded.deviceId !== challenge.fields.device || String(decoded.number) !== challenge.fields.number) {
    throw new UnlockRefused('bad-challenge', `the challenge names device ${decoded.deviceId} and number ${decoded.number}, the reply ${challenge.fields.device} and ${challenge.fields.number}: not signed`);
  }
  configureEd25519();
  const signature = ed.sign(bytes, key.seed);
  const response = await client.request('unlock-response', { number: String(decoded.number), sig: bytesToHex(signature) }, timeoutMs);
  if (!response.ok) throw new UnlockRefused(response.code ?? 'unknown', `the device refused the unlock: ${response.code}${response.msg ? ` (${response.msg})` : ''}`);
  return { number: decoded.number, unlockMs: Number(response.fields['unlock-ms'] ?? 0), keyId: keyIdHex(key) };
}
