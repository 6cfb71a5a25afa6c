/**
 * Structured evidence of what the update path did. The agent emits these
 * through a sink; the runtime persists them in the hash-chained audit log.
 */
export type UpdateAuditEvent =
  | { readonly kind: 'update-rejected'; readonly reason: string; readonly message: string }
  | { readonly kind: 'update-staged'; readonly imageVersion: number; readonly securityVersion: number; readonly slot: number; readonly resumedAtChunk: number }
  | { readonly kind: 'trial-started'; readonly imageVersion: number | undefined; readonly slot: number }
  | { readonly kind: 'update-committed'; readonly imageVersion: number; readonly securityVersion: number; readonly slot: number }
  | { readonly kind: 'update-rolled-back'; readonly imageVersion: number; readonly reason: string }
  /** A failed trial could not be rolled back (ESP-IDF's rule: no other slot verifies at or above the floor); nothing was written. */
  | { readonly kind: 'rollback-impossible'; readonly imageVersion: number | undefined; readonly reason: string; readonly message: string }
  /** The running image reads VALID in otadata but this agent never confirmed it (a torn otadata write): it runs as a trial. */
  | { readonly kind: 'unconfirmed-valid'; readonly imageVersion: number; readonly slot: number }
  /** The agent could not read one of its stores and refuses to act on it (StorageError code in `code`). */
  | { readonly kind: 'store-unreadable'; readonly store: 'staging-progress' | 'trust'; readonly code: string; readonly message: string }
  | { readonly kind: 'root-rotated'; readonly fromVersion: number; readonly toVersion: number }
  | { readonly kind: 'root-rejected'; readonly reason: string; readonly message: string };

export interface AuditSink {
  emit(event: UpdateAuditEvent): void;
}
