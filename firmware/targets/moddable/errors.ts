/**
 * Why a Moddable adapter refused: stable codes (docs/PORTING.md, "The
 * Moddable adapters"). Wrong argument types throw TypeError and
 * out-of-range arguments RangeError, as elsewhere in the firmware.
 */
import { setErrorName } from '../../base/error-name.ts';

export type TargetErrorCode =
  /** A partition's geometry the HAL cannot describe (size not whole blocks, zero blocks). */
  | 'bad-geometry'
  /** The running partition is not ota_0 or ota_1 (a factory app, or an unknown label). */
  | 'unknown-running-partition'
  /** otadata holds no copy for the running slot, or a state this firmware does not know. */
  | 'boot-state-unknown'
  /** Confirming or rejecting while the active otadata copy names the other slot. */
  | 'not-active'
  /** A stream write larger than the room the socket last reported. */
  | 'write-overflow'
  /** A stream used after close or after its error. */
  | 'closed'
  /** A TLS connection asked of a build without `securesocket`. */
  | 'no-tls'
  /** An effect asked of a build without an actuator. */
  | 'no-actuator'
  /** The native restart returned. */
  | 'restart-returned';

export class TargetError extends Error {
  readonly code: TargetErrorCode;

  constructor(code: TargetErrorCode, message: string) {
    super(message);
    setErrorName(this, 'TargetError');
    this.code = code;
  }
}
