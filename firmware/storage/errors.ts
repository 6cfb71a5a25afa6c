/**
 * Storage errors with stable codes (docs/spec/outbox.md, docs/spec/counter.md).
 * Wrong argument types throw TypeError and out-of-range arguments RangeError;
 * everything about the flash contents is a StorageError with a code.
 */
export type StorageErrorCode =
  /** The partition holds a newer format version than this firmware reads; nothing was changed. */
  | 'format-too-new'
  /** The partition holds something that is not this format (and is not blank); nothing was changed. */
  | 'not-formatted'
  /** The partition geometry cannot hold this format. */
  | 'bad-geometry'
  /** The outbox is full and its policy is `reject`. */
  | 'full'
  /** The counter reached its documented bound (2^53 - 1). */
  | 'exhausted';

export class StorageError extends Error {
  constructor(readonly code: StorageErrorCode, message: string) {
    super(message);
    this.name = 'StorageError';
  }
}
