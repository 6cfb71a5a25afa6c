/**
 * The root of trust (docs/spec/root.md): which keys may sign roots and
 * images, and how a device moves from root N to root N+1. TUF's root role
 * (TUF specification 5.3) without its expiry times: freeze and rollback are
 * prevented by monotonic versions only, never by a wall clock.
 *
 * ROOT body, little-endian, inside the signed envelope of signed-document.ts:
 *
 *   0     1     2          6     7     8     9     10           10+32R        10+32(R+T)
 *   +-----+-----+----------+-----+-----+-----+-----+------------+-------------+
 *   |0x01 | fmt | version  | Rt  | R   | Tt  | T   | R root keys| T targets   |
 *   +-----+-----+----------+-----+-----+-----+-----+------------+-------------+
 *
 * Rules:
 * - a provisioned root (version 1 at the factory, or any root a tool is told
 *   to trust) must be signed by a threshold of its own root keys;
 * - a rotation N -> N+1 is accepted only with version exactly N+1, signed by
 *   a threshold of N's root keys AND a threshold of N+1's root keys AND, when
 *   N+1 adds root keys, by min(N+1's threshold, number added) of the added
 *   keys themselves (kept keys cannot vouch for keys nobody has shown to hold);
 * - an image manifest is accepted only with a threshold of the current
 *   root's targets keys (manifest.ts, `checkManifest`).
 */
import type { Crypto } from '../hal/crypto.ts';
import { constantTimeEqual } from '../security/_ct.ts';
import { ed25519PublicKeyProblem } from '../security/ed25519-key.ts';
import { keyIdOf, PUBLIC_KEY_LENGTH, SignatureTally, type KeyEntry } from '../security/verify.ts';
import { reject, UpdateError, type Rejection } from './errors.ts';
import { checkBodyKind, checkU32, decodeDocument, DOCUMENT_KIND, rejectSignatures, SIGNED_DOCUMENT_FORMAT_VERSION, type SignedDocument } from './signed-document.ts';

/** ROOT body bytes before the keys. */
export const ROOT_FIXED_LENGTH = 10;
/** Keys per role: a threshold must be reachable with the 8 signatures an envelope holds. */
export const MAX_ROLE_KEYS = 8;

export interface RoleKeys {
  readonly threshold: number;
  /** Distinct keys, in document order. */
  readonly keys: readonly KeyEntry[];
}

export interface RootBody {
  readonly version: number;
  /** Keys that sign roots. */
  readonly root: RoleKeys;
  /** Keys that sign image manifests. */
  readonly targets: RoleKeys;
}

/** A root this device trusts: only `trustProvisionedRoot` and `rotateRoot` make one. */
export interface TrustedRoot extends RootBody {
  /** The signed envelope exactly as received, for persistence and forwarding. */
  readonly bytes: Uint8Array;
}

export interface RootFields {
  readonly version: number;
  readonly root: { readonly threshold: number; readonly publicKeys: readonly Uint8Array[] };
  readonly targets: { readonly threshold: number; readonly publicKeys: readonly Uint8Array[] };
}

export type RootVerdict = { readonly ok: true; readonly root: TrustedRoot } | Rejection;

/** A chain stopped at `index`; `root` is the last root it reached. */
export type RootChainVerdict = { readonly ok: true; readonly root: TrustedRoot } | (Rejection & { readonly root: TrustedRoot; readonly index: number });

export function encodeRootBody(fields: RootFields): Uint8Array {
  checkU32(fields.version, 'version', 1);
  const roles = [fields.root, fields.targets];
  const names = ['root', 'targets'];
  roles.forEach((role, i) => {
    const n = role.publicKeys.length;
    if (n < 1 || n > MAX_ROLE_KEYS) throw new RangeError(`${names[i]} role needs 1..${MAX_ROLE_KEYS} keys, got ${n}`);
    if (!Number.isInteger(role.threshold) || role.threshold < 1 || role.threshold > n) throw new RangeError(`${names[i]} threshold must be 1..${n}, got ${role.threshold}`);
    role.publicKeys.forEach((key, k) => {
      if (!(key instanceof Uint8Array) || key.length !== PUBLIC_KEY_LENGTH) throw new RangeError(`${names[i]} key ${k} must be ${PUBLIC_KEY_LENGTH} bytes`);
      const problem = ed25519PublicKeyProblem(key);
      if (problem !== undefined) throw new RangeError(`${names[i]} key ${k} may not be listed in a root: ${problem}`);
      for (let j = 0; j < k; j++) if (constantTimeEqual(role.publicKeys[j], key)) throw new RangeError(`${names[i]} key ${k} repeats key ${j}`);
    });
  });
  const out = new Uint8Array(ROOT_FIXED_LENGTH + PUBLIC_KEY_LENGTH * (fields.root.publicKeys.length + fields.targets.publicKeys.length));
  out[0] = DOCUMENT_KIND.root;
  out[1] = SIGNED_DOCUMENT_FORMAT_VERSION;
  new DataView(out.buffer).setUint32(2, fields.version, true);
  out[6] = fields.root.threshold;
  out[7] = fields.root.publicKeys.length;
  out[8] = fields.targets.threshold;
  out[9] = fields.targets.publicKeys.length;
  let at = ROOT_FIXED_LENGTH;
  for (const key of [...fields.root.publicKeys, ...fields.targets.publicKeys]) {
    out.set(key, at);
    at += PUBLIC_KEY_LENGTH;
  }
  return out;
}

/**
 * Decode a ROOT body. Throws UpdateError: 'unknown-format' for an unknown
 * kind or format byte, 'wrong-kind' for an IMAGE body, 'malformed' otherwise.
 */
export function decodeRootBody(crypto: Crypto, body: Uint8Array): RootBody {
  checkBodyKind(body, 'root');
  if (body.length < ROOT_FIXED_LENGTH) throw new UpdateError('malformed', `root body of ${body.length} bytes, at least ${ROOT_FIXED_LENGTH}`);
  const version = new DataView(body.buffer, body.byteOffset, body.byteLength).getUint32(2, true);
  if (version === 0) throw new UpdateError('malformed', 'root version 0 (versions start at 1)');
  const rootThreshold = body[6];
  const rootCount = body[7];
  const targetsThreshold = body[8];
  const targetsCount = body[9];
  checkRole('root', rootThreshold, rootCount);
  checkRole('targets', targetsThreshold, targetsCount);
  const expected = ROOT_FIXED_LENGTH + PUBLIC_KEY_LENGTH * (rootCount + targetsCount);
  if (body.length !== expected) throw new UpdateError('malformed', `root body is ${body.length} bytes, its ${rootCount} + ${targetsCount} keys make ${expected}`);
  const root = readRole(crypto, 'root', body, ROOT_FIXED_LENGTH, rootCount, rootThreshold);
  const targets = readRole(crypto, 'targets', body, ROOT_FIXED_LENGTH + PUBLIC_KEY_LENGTH * rootCount, targetsCount, targetsThreshold);
  return Object.freeze({ version, root, targets });
}

/** Decode a root envelope without trusting it. Throws UpdateError. */
export function decodeRoot(crypto: Crypto, bytes: Uint8Array): { document: SignedDocument; root: RootBody } {
  const document = decodeDocument(bytes, 'root');
  return { document, root: decodeRootBody(crypto, document.body) };
}

/**
 * A root given as the starting point of trust (factory provisioning, or the
 * `--root` of a tool): it must at least be signed by a threshold of its own
 * root keys. Where it came from is the caller's trust decision.
 */
export function trustProvisionedRoot(crypto: Crypto, bytes: Uint8Array): RootVerdict {
  const decoded = decodeOrReject(crypto, bytes);
  if (!decoded.ok) return decoded;
  const { document, root } = decoded;
  const tally = new SignatureTally(crypto, document.body, document.signatures).count(root.root.keys, root.root.threshold);
  if (!tally.met) return rejectSignatures(tally, document.signatures.length, `root keys of root ${root.version}`);
  return { ok: true, root: trusted(root, bytes) };
}

/** Root rotation N -> N+1 (docs/spec/root.md, "Rotation"). */
export function rotateRoot(crypto: Crypto, current: TrustedRoot, bytes: Uint8Array): RootVerdict {
  const decoded = decodeOrReject(crypto, bytes);
  if (!decoded.ok) return decoded;
  const { document, root } = decoded;
  const n = current.version;
  if (root.version <= n) return reject('root-not-sequential', `root version ${root.version} is not newer than the trusted root ${n}`);
  if (root.version !== n + 1) return reject('root-not-sequential', `root version ${root.version} skips from ${n}: rotations go one version at a time`);
  const signatures = new SignatureTally(crypto, document.body, document.signatures);
  const old = signatures.count(current.root.keys, current.root.threshold);
  const own = signatures.count(root.root.keys, root.root.threshold);
  if (!old.met && !own.met) return rejectSignatures(old, document.signatures.length, `root keys of root ${n}`);
  if (!old.met || !own.met) {
    return reject(
      'root-not-cross-signed',
      `root ${root.version} has ${old.valid}/${old.threshold} signatures of root ${n}'s keys and ${own.valid}/${own.threshold} of its own: both thresholds are required`,
    );
  }
  const added = addedKeys(current.root.keys, root.root.keys);
  if (added.length > 0) {
    const required = Math.min(root.root.threshold, added.length);
    const fresh = signatures.count(added, required);
    if (!fresh.met) {
      return reject(
        'root-not-cross-signed',
        `root ${root.version} adds ${added.length} root key(s) and ${fresh.valid} of them signed it, ${required} required: kept keys cannot vouch for added ones`,
      );
    }
  }
  return { ok: true, root: trusted(root, bytes) };
}

/** Root keys of the new root that the old root does not list (compared by public key). */
function addedKeys(old: readonly KeyEntry[], next: readonly KeyEntry[]): KeyEntry[] {
  return next.filter((k) => !old.some((o) => constantTimeEqual(o.publicKey, k.publicKey)));
}

/** Apply rotations in order; stops at the first refusal and says where. */
export function applyRootChain(crypto: Crypto, current: TrustedRoot, chain: readonly Uint8Array[]): RootChainVerdict {
  let root = current;
  for (let index = 0; index < chain.length; index++) {
    const verdict = rotateRoot(crypto, root, chain[index]);
    if (!verdict.ok) return { ...verdict, root, index };
    root = verdict.root;
  }
  return { ok: true, root };
}

function decodeOrReject(crypto: Crypto, bytes: Uint8Array): ({ ok: true } & ReturnType<typeof decodeRoot>) | Rejection {
  try {
    return { ok: true, ...decodeRoot(crypto, bytes) };
  } catch (error) {
    if (error instanceof UpdateError) return reject(error.code, error.message);
    throw error;
  }
}

function trusted(root: RootBody, bytes: Uint8Array): TrustedRoot {
  return Object.freeze({ ...root, bytes: bytes.slice() });
}

function checkRole(name: string, threshold: number, count: number): void {
  if (count < 1 || count > MAX_ROLE_KEYS) throw new UpdateError('malformed', `${name} role has ${count} keys, 1..${MAX_ROLE_KEYS} allowed`);
  if (threshold < 1 || threshold > count) throw new UpdateError('malformed', `${name} threshold ${threshold} outside 1..${count}`);
}

function readRole(crypto: Crypto, name: string, body: Uint8Array, start: number, count: number, threshold: number): RoleKeys {
  const keys: KeyEntry[] = [];
  for (let k = 0; k < count; k++) {
    const publicKey = body.slice(start + k * PUBLIC_KEY_LENGTH, start + (k + 1) * PUBLIC_KEY_LENGTH);
    // Refused here, not only at verification: other verifiers of this root may accept forgeries under such a key.
    const problem = ed25519PublicKeyProblem(publicKey);
    if (problem !== undefined) throw new UpdateError('malformed', `${name} key ${k}: ${problem}`);
    const keyId = keyIdOf(crypto, publicKey);
    for (const other of keys) {
      // Equal key ids from distinct keys (a 64-bit SHA-256 prefix collision) would make a signature ambiguous.
      if (constantTimeEqual(other.keyId, keyId)) throw new UpdateError('malformed', `${name} key ${k} repeats a key id of the role`);
    }
    keys.push(Object.freeze({ keyId, publicKey }));
  }
  return Object.freeze({ threshold, keys: Object.freeze(keys) });
}
