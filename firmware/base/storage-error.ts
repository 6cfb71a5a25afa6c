/**
 * Storage errors with stable codes (docs/spec/two-block-log.md,
 * docs/spec/outbox.md, docs/spec/counter.md). Wrong argument types throw
 * TypeError and out-of-range arguments RangeError; everything about the
 * flash contents is a StorageError with a code the runtime can act on (each
 * code but 'full' and 'exhausted' means: refuse, report, go to safe mode).
 *
 * It lives in base so that every store, in any area, throws the same type.
 */
import { setErrorName } from './error-name.ts';
export type StorageErrorCode =
  /** The partition holds a newer format version than this firmware reads; nothing was changed. */
  | 'format-too-new'
  /** The partition holds something that is not this format (and is not blank); nothing was changed. */
  | 'not-formatted'
  /** The partition is blank (all 0xFF): never provisioned, or wiped. Never read as an empty store. */
  | 'blank'
  /** The partition is this format, but damage destroyed evidence a value may depend on; nothing was changed. */
  | 'damaged'
  /** The partition holds values for more keys (senders) than configured; nothing was changed. */
  | 'too-many-keys'
  /** The partition geometry cannot hold this format. */
  | 'bad-geometry'
  /** The outbox is full and its policy is `reject`. */
  | 'full'
  /** The counter reached its documented bound (2^53 - 1). */
  | 'exhausted';

export class StorageError extends Error {
  constructor(readonly code: StorageErrorCode, message: string) {
    super(message);
    setErrorName(this, 'StorageError');
  }
}
