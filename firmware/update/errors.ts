/**
 * Why a signed document, a root rotation or an image was refused: stable
 * reason codes (docs/spec/image-manifest.md, "Reason codes"; docs/spec/root.md).
 * The codes are API: the update agent, the audit log and `holdfast verify`
 * report them, so never rename one; add new ones instead.
 *
 * Decoders throw UpdateError (and only UpdateError) for bad bytes; the check
 * functions return a Rejection instead of throwing. Wrong argument types
 * throw TypeError and out-of-range arguments RangeError: those are bugs in
 * the caller, not bad input.
 */
import { setErrorName } from '../base/error-name.ts';
export type UpdateReason =
  /** The bytes are not a well-formed document: bad magic, lengths, bounds, reserved values, trailing bytes, erased flash. */
  | 'malformed'
  /** A format version or document kind this firmware does not know. */
  | 'unknown-format'
  /** A well-formed document of the other kind (a root where a manifest was expected, or the reverse). */
  | 'wrong-kind'
  /** No signature comes from a key of the required role. */
  | 'wrong-key'
  /** Fewer distinct keys of the role signed validly than its threshold (no invalid signature among them). */
  | 'too-few-signatures'
  /** A signature naming a key of the role does not verify, and the threshold is not met. */
  | 'bad-signature'
  /** A root whose version is not exactly the trusted version + 1. */
  | 'root-not-sequential'
  /** A root rotation that lacks a threshold of the old root keys or of the new root keys. */
  | 'root-not-cross-signed'
  /** A manifest signed under a root newer than the one this device trusts: apply the root chain first. */
  | 'unknown-root'
  /** The manifest is for another board. */
  | 'wrong-board'
  /** The image version is not strictly above the running one (this covers replayed manifests). */
  | 'old-version'
  /** The security version is below the persisted anti-rollback floor. */
  | 'below-security-floor'
  /** The declared image length exceeds the slot. */
  | 'too-large'
  /** A staged rollout that does not include this device yet. */
  | 'not-in-rollout'
  /** The image's SHA-256 differs from the manifest's, or it is longer than declared. */
  | 'tampered'
  /** The image is shorter than declared. */
  | 'truncated'
  /** The running image's version cannot be read (its slot header does not decode): no offer is checked against "unknown". */
  | 'running-version-unknown'
  /** The trusted root could not be loaded (the trust store's StorageError code is in the message: format-too-new, not-formatted, …, or never provisioned). */
  | 'trust-unavailable'
  /** The staging progress log cannot be read (format-too-new or not-formatted): its trial count is unknown. */
  | 'progress-unreadable';

/** Every reason code with its one-line meaning (for docs, CLI help and tests). */
export const UPDATE_REASONS: Readonly<Record<UpdateReason, string>> = Object.freeze({
  malformed: 'not a well-formed signed document',
  'unknown-format': 'format version or document kind unknown to this firmware',
  'wrong-kind': 'a valid document of the other kind',
  'wrong-key': 'no signature from a key of the required role',
  'too-few-signatures': 'fewer valid signatures from distinct keys than the threshold',
  'bad-signature': 'a signature from a key of the role does not verify',
  'root-not-sequential': 'root version is not exactly the trusted version + 1',
  'root-not-cross-signed': 'root rotation not signed by a threshold of both the old and the new root keys',
  'unknown-root': 'manifest signed under a root newer than the trusted one',
  'wrong-board': 'manifest is for another board',
  'old-version': 'image version not above the running version',
  'below-security-floor': 'security version below the anti-rollback floor',
  'too-large': 'declared image length exceeds the slot',
  'not-in-rollout': 'staged rollout does not include this device',
  tampered: 'image digest or length does not match the manifest',
  truncated: 'image shorter than the manifest declares',
  'running-version-unknown': 'the running image version cannot be read',
  'trust-unavailable': 'no trusted root could be loaded from the trust store',
  'progress-unreadable': 'the staging progress log cannot be read (its trial count is unknown)',
});

export class UpdateError extends Error {
  constructor(readonly code: UpdateReason, message: string) {
    super(message);
    setErrorName(this, 'UpdateError');
  }
}

/** A refusal: the stable code and a one-line message for logs and the CLI. */
export interface Rejection {
  readonly ok: false;
  readonly reason: UpdateReason;
  readonly message: string;
}

export function reject(reason: UpdateReason, message: string): Rejection {
  return { ok: false, reason, message };
}
