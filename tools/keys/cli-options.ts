/** Option parsing shared by `holdfast keys`, `sign` and `verify`: bad values are usage errors (exit 2). */
import { InvalidArgumentError, type Command } from 'commander';

/** Parser for a decimal integer in [min, max]. */
export function parseInteger(min: number, max: number): (value: string) => number {
  return (value: string) => {
    if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`expected a whole number ${min}..${max}`);
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected a whole number ${min}..${max}`);
    return n;
  };
}

/** Repeatable option: each use appends. */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Repeatable key id option: 4..16 hex digits (a unique prefix of a key id). */
export function collectKeyId(value: string, previous: string[]): string[] {
  if (!/^[0-9a-fA-F]{4,16}$/.test(value)) throw new InvalidArgumentError('expected a key id: 4 to 16 hex digits (keys.json lists them)');
  return [...previous, value.toLowerCase()];
}

/** Report bad usage on `command` (exit code 2 through main's CommanderError handling). */
export function usageError(command: Command, message: string): never {
  command.error(`error: ${message}`, { exitCode: 2, code: 'holdfast.usage' });
}
