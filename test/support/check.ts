import { setErrorName } from '../../firmware/base/error-name.ts';

/**
 * Engine-neutral assertions for cases that run in Node and in XS (node:assert
 * does not exist in XS). Each failure throws CheckFailure with both sides.
 */
export class CheckFailure extends Error {
  constructor(message: string) {
    super(message);
    setErrorName(this, 'CheckFailure');
  }
}

export function ok(value: unknown, message: string): asserts value {
  if (!value) throw new CheckFailure(message);
}

export function equal<T>(actual: T, expected: T, message: string): void {
  if (!Object.is(actual, expected)) throw new CheckFailure(`${message}: expected ${show(expected)}, got ${show(actual)}`);
}

export function bytesEqual(actual: Uint8Array, expected: Uint8Array, message: string): void {
  if (actual.length !== expected.length) throw new CheckFailure(`${message}: length ${actual.length}, expected ${expected.length}`);
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i]) throw new CheckFailure(`${message}: byte ${i} is ${actual[i]}, expected ${expected[i]}`);
  }
}

/** `run` must throw an error whose name is `errorName` (and whose message contains `fragment`). */
export function throws(run: () => unknown, errorName: string, message: string, fragment?: string): Error {
  try {
    run();
  } catch (error) {
    if (!(error instanceof Error)) throw new CheckFailure(`${message}: threw a non-Error ${show(error)}`);
    if (error.name !== errorName) throw new CheckFailure(`${message}: threw ${error.name} (${error.message}), expected ${errorName}`);
    if (fragment !== undefined && !error.message.includes(fragment)) {
      throw new CheckFailure(`${message}: message ${show(error.message)} lacks ${show(fragment)}`);
    }
    return error;
  }
  throw new CheckFailure(`${message}: did not throw (expected ${errorName})`);
}

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value instanceof Uint8Array) return `Uint8Array(${value.length})`;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
