/** Storage errors (firmware/base/storage-error.ts), re-exported where the stores live. */
export { StorageError, type StorageErrorCode } from '../base/storage-error.ts';
