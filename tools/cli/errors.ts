/**
 * The CLI's errors (docs/cli.md, "Errors"): every failure reaches the user as
 * ONE line on stderr, `holdfast <command>: <file>: <field>: <what was expected>`,
 * and, under `--json`, as one JSON object on stdout. Node's own errors
 * (ENOENT, EISDIR, EACCES…) are turned into that form by `fromNodeError`
 * where the path is known; nothing prints a stack trace.
 */
import { ExitCode } from './exit-codes.ts';

/** Stable error codes of the JSON error object (docs/cli.md). */
export type ErrorCode =
  | 'usage'
  | 'environment'
  | 'interrupted'
  | 'not-found'
  | 'not-a-file'
  | 'not-a-directory'
  | 'too-large'
  | 'invalid-file'
  | 'permission'
  | 'exists'
  | 'io'
  | 'failed'
  | 'internal';

export interface CliErrorDetails {
  exitCode?: number;
  code?: ErrorCode;
  /** The file or directory the error is about. */
  file?: string;
  /** The field, flag or part of the file that is wrong. */
  field?: string;
}

/** A failure the CLI reports as one line (exit 1 unless said otherwise). */
export class CliError extends Error {
  readonly exitCode: number;
  readonly code: ErrorCode;
  readonly file: string | undefined;
  readonly field: string | undefined;

  /** `message` says what was found and what was expected; the file and field are prefixed here. */
  constructor(message: string, details: CliErrorDetails = {}) {
    const flagLike = details.field !== undefined && (details.field.startsWith('-') || details.field.startsWith('<'));
    // A flag the message already names is not repeated in front of it.
    const prefix = [details.file, details.field === undefined || (flagLike && message.includes(details.field)) ? undefined : flagLike ? details.field : `field ${details.field}`].filter((p) => p !== undefined).join(': ');
    super(oneLine(prefix === '' ? message : `${prefix}: ${message}`));
    this.name = 'CliError';
    this.exitCode = details.exitCode ?? ExitCode.FAILED;
    this.code = details.code ?? 'failed';
    this.file = details.file;
    this.field = details.field;
  }
}

/** Bad usage (exit 2): a flag's value, a missing or contradictory flag. */
export class UsageError extends CliError {
  constructor(message: string, details: Omit<CliErrorDetails, 'exitCode' | 'code'> = {}) {
    super(message, { ...details, exitCode: ExitCode.USAGE, code: 'usage' });
    this.name = 'UsageError';
  }
}

/** Something the machine lacks (a built XS engine, a tool): exit 3. */
export class EnvironmentError extends CliError {
  constructor(message: string, details: Omit<CliErrorDetails, 'exitCode' | 'code'> = {}) {
    super(message, { ...details, exitCode: ExitCode.ENVIRONMENT, code: 'environment' });
    this.name = 'EnvironmentError';
  }
}

interface NodeError extends Error {
  code?: string;
  path?: string;
  dest?: string;
  syscall?: string;
}

/** A Node system error (it has an `E…` code). */
export function isNodeError(error: unknown): error is NodeError {
  return error instanceof Error && typeof (error as NodeError).code === 'string' && /^E[A-Z]+$/.test((error as NodeError).code as string);
}

/**
 * One line for a Node file-system error on `path` where `expected` was
 * wanted ("a readable image file", "a key directory"): the path, what was
 * found, what was expected.
 */
export function fromNodeError(error: unknown, path: string | undefined, expected: string): CliError {
  if (error instanceof CliError) return error;
  if (!isNodeError(error)) return toCliError(error);
  const file = path ?? error.path;
  const found: Record<string, [ErrorCode, string]> = {
    ENOENT: ['not-found', 'does not exist'],
    EISDIR: ['not-a-file', 'is a directory'],
    ENOTDIR: ['not-a-directory', 'a part of the path is not a directory'],
    EACCES: ['permission', 'permission denied'],
    EPERM: ['permission', 'operation not permitted'],
    EEXIST: ['exists', 'already exists'],
    ENOSPC: ['io', 'no space left on the device'],
    EROFS: ['io', 'read-only file system'],
    ENAMETOOLONG: ['usage', 'the name is too long'],
    ELOOP: ['not-a-file', 'too many symbolic links'],
    EMFILE: ['io', 'too many open files'],
    EFBIG: ['too-large', 'file too large'],
    EINVAL: ['invalid-file', 'invalid argument'],
  };
  const [code, what] = found[error.code as string] ?? ['io', `${error.syscall ?? 'I/O'} failed (${error.code})`];
  return new CliError(`${what}: expected ${expected}`, { file, code, exitCode: code === 'usage' ? ExitCode.USAGE : ExitCode.FAILED });
}

/** Any thrown value as a CliError: Node errors by their path, stack overflows and others by their message only. */
export function toCliError(error: unknown): CliError {
  if (error instanceof CliError) return error;
  if (isNodeError(error)) return fromNodeError(error, error.path, 'a usable file or directory');
  if (error instanceof RangeError && /call stack/i.test(error.message)) return new CliError('input nested too deeply to process', { code: 'invalid-file' });
  // tools/xs/xsnap-worker.ts when `npm ci` did not build the engine (bench, any XS user).
  if (error instanceof Error && /xsnap-worker binary not found at (\S+?)\.? /.test(error.message)) {
    const file = /not found at (\S+?)\.? /.exec(error.message)?.[1];
    return new EnvironmentError('the XS engine (xsnap-worker) is not built: expected an executable there; run `npm ci` or `npm rebuild @agoric/xsnap`', file !== undefined ? { file } : {});
  }
  const message = error instanceof Error ? error.message : String(error);
  return new CliError(message, { code: error instanceof Error && message.startsWith('internal:') ? 'internal' : 'failed' });
}

/** Collapse whitespace runs (newlines included) so an error stays on one line. */
export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

/** The JSON error object printed on stdout under `--json` (docs/cli.md, "JSON"). */
export interface JsonError {
  ok: false;
  exitCode: number;
  error: { code: string; message: string; file: string | null; field: string | null };
}

export function jsonError(error: CliError): JsonError {
  return { ok: false, exitCode: error.exitCode, error: { code: error.code, message: error.message, file: error.file ?? null, field: error.field ?? null } };
}
