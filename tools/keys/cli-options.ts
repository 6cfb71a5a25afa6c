/**
 * Option parsing shared by every holdfast command: commander argParsers, so a
 * bad value is bad usage (exit 2, the flag named) before any work starts.
 */
import { InvalidArgumentError, type Command } from 'commander';
import { UsageError } from '../cli/errors.ts';

export interface IntegerFormat {
  /** Also accept 0x-prefixed hexadecimal (sizes and offsets, as in partition tables). */
  hex?: boolean;
}

/** Parser for an integer in [min, max]: decimal digits, or `0x…` hex when `format.hex`. */
export function parseInteger(min: number, max: number, format: IntegerFormat = {}): (value: string) => number {
  const expected = `expected a whole number ${min}..${max}${format.hex ? ' (decimal, or hex with 0x)' : ''}`;
  return (value: string) => {
    const decimal = /^\d{1,16}$/.test(value);
    const hex = format.hex === true && /^0[xX][0-9a-fA-F]{1,14}$/.test(value);
    if (!decimal && !hex) throw new InvalidArgumentError(expected);
    const n = hex ? parseInt(value.slice(2), 16) : Number(value);
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(expected);
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

/** Report bad usage (exit code 2); `field` is the flag or argument at fault. */
export function usageError(_command: Command, message: string, field?: string): never {
  throw new UsageError(message, field !== undefined ? { field } : {});
}
