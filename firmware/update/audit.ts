/**
 * Structured evidence of what the update path did. The agent emits these
 * through a sink; the runtime persists them in the hash-chained audit log.
 */
export type UpdateAuditEvent =
  | { readonly kind: 'update-rejected'; readonly reason: string; readonly message: string }
  | { readonly kind: 'update-staged'; readonly imageVersion: number; readonly securityVersion: number; readonly slot: number; readonly resumedAtChunk: number }
  | { readonly kind: 'trial-started'; readonly imageVersion: number; readonly slot: number }
  | { readonly kind: 'update-committed'; readonly imageVersion: number; readonly securityVersion: number; readonly slot: number }
  | { readonly kind: 'update-rolled-back'; readonly imageVersion: number; readonly reason: string }
  | { readonly kind: 'root-rotated'; readonly fromVersion: number; readonly toVersion: number }
  | { readonly kind: 'root-rejected'; readonly reason: string; readonly message: string };

export interface AuditSink {
  emit(event: UpdateAuditEvent): void;
}
