import { setErrorName } from '../../../firmware/base/error-name.ts';

/**
 * Thrown by the simulated flash when the power cut it was armed with strikes,
 * and by every flash call after it until `powerOn()`. Firmware must let it
 * propagate: it models the CPU stopping, so nothing after it may run.
 */
export class PowerCut extends Error {
  constructor(readonly operation: number) {
    super(`power cut at flash operation ${operation}`);
    setErrorName(this, 'PowerCut');
  }
}

/**
 * A use of the flash that real hardware would not accept or that would
 * silently corrupt data (out of range, misaligned, re-programming a
 * write-once unit): a firmware bug, never a recoverable condition.
 */
export class FlashMisuse extends Error {
  constructor(message: string) {
    super(message);
    setErrorName(this, 'FlashMisuse');
  }
}

export function isPowerCut(error: unknown): error is PowerCut {
  return error instanceof Error && error.name === 'PowerCut';
}
