/**
 * Split-party threshold signing (docs/ci-signing.md, "Signing in parts"): a
 * root rotation or an image manifest is signed by separate key holders,
 * each on their own machine with only their own private keys, and the parts
 * are combined into one envelope. A part is an ordinary envelope with fewer
 * signatures than the thresholds need; `cosign` adds the signatures of the
 * keys one directory holds, `combine` merges parts over the same body and
 * keeps the result only if a device would accept it.
 */
import { join } from 'node:path';
import { bytesToHex } from '../../firmware/security/verify.ts';
import { UpdateError } from '../../firmware/update/errors.ts';
import { decodeImageBody } from '../../firmware/update/manifest.ts';
import { decodeRootBody, rotateRoot, type TrustedRoot } from '../../firmware/update/root.ts';
import { decodeEnvelope, encodeEnvelope, MAX_ENVELOPE_LENGTH, MAX_SIGNATURES, MAX_U32, type SignedDocument } from '../../firmware/update/signed-document.ts';
import type { KeyEntry, SignatureEntry } from '../../firmware/security/verify.ts';
import { CliError } from '../cli/errors.ts';
import { readInput, writeFilesAtomically } from '../cli/files.ts';
import { verifyImage } from './image.ts';
import { finishRotation, loadRootChain, readSecretKey, rootFileName, type KeysJson } from './keystore.ts';
import { hostCrypto, keyIdHex, signEnvelope } from './signer.ts';

export interface Part {
  file: string;
  document: SignedDocument;
}

/** A signed document (root or manifest) from a file: bounded read, decoded, errors naming the file. */
export function readPart(file: string): Part {
  const bytes = readInput(file, 'a signed document (root or manifest)', MAX_ENVELOPE_LENGTH);
  try {
    return { file, document: decodeEnvelope(bytes) };
  } catch (error) {
    if (error instanceof UpdateError) throw new CliError(`${error.message}: expected a holdfast signed document (keys rotate --partial, sign --partial)`, { file, field: 'envelope', code: 'invalid-file' });
    throw error;
  }
}

interface Context {
  /** Keys whose signatures count for this document. */
  keys: KeyEntry[];
  /** Whether a device would accept these bytes; the refusal's message otherwise. */
  check(bytes: Uint8Array): Promise<{ ok: true; root?: TrustedRoot } | { ok: false; message: string }>;
  describe: string;
  roots: TrustedRoot[];
  version: number;
}

/** Which keys may sign `part` given the root chain in `dir`, and the device's check for it. */
function context(dir: string, part: Part): Context {
  const { roots, trusted } = loadRootChain(dir);
  const crypto = hostCrypto();
  try {
    if (part.document.kind === 'root') {
      const body = decodeRootBody(crypto, part.document.body);
      if (body.version !== trusted.version + 1) {
        throw new CliError(`is root ${body.version}: expected root ${trusted.version + 1}, the next one after ${join(dir, rootFileName(trusted.version))}`, { file: part.file, field: 'version', code: 'invalid-file' });
      }
      return {
        keys: [...trusted.root.keys, ...body.root.keys.filter((k) => !trusted.root.keys.some((o) => bytesToHex(o.keyId) === bytesToHex(k.keyId)))],
        check: async (bytes) => {
          const verdict = rotateRoot(crypto, trusted, bytes);
          return verdict.ok ? { ok: true, root: verdict.root } : { ok: false, message: `${verdict.reason}: ${verdict.message}` };
        },
        describe: `root ${body.version}`,
        roots,
        version: body.version,
      };
    }
    const manifest = decodeImageBody(part.document.body);
    return {
      keys: [...trusted.targets.keys],
      check: async (bytes) => {
        const verdict = await verifyImage({ length: manifest.imageLength, digest: async () => manifest.imageDigest }, bytes, { trusted, runningVersion: 0, securityFloor: 0, boardId: manifest.boardId, slotSize: MAX_U32 });
        return verdict.ok || verdict.reason === 'old-version' ? { ok: true } : { ok: false, message: `${verdict.reason}: ${verdict.message}` };
      },
      describe: `the manifest of image version ${manifest.imageVersion}`,
      roots,
      version: manifest.rootVersion,
    };
  } catch (error) {
    if (error instanceof UpdateError) throw new CliError(`${error.code}: ${error.message}`, { file: part.file, field: 'body', code: 'invalid-file' });
    throw error;
  }
}

/** The signature entries of `part` that verify under one of `keys`; any other is an error naming the part. */
function checkedSignatures(part: Part, keys: readonly KeyEntry[]): SignatureEntry[] {
  const crypto = hostCrypto();
  return part.document.signatures.map((entry, i) => {
    const key = keys.find((k) => bytesToHex(k.keyId) === bytesToHex(entry.keyId));
    if (key === undefined) throw new CliError(`signed by ${bytesToHex(entry.keyId)}: expected only keys that count for this document (${keys.map((k) => bytesToHex(k.keyId)).join(', ')})`, { file: part.file, field: `signatures[${i}]`, code: 'invalid-file' });
    if (!crypto.ed25519Verify(entry.signature, part.document.body, key.publicKey)) throw new CliError(`the signature of ${bytesToHex(entry.keyId)} does not verify: expected a signature over this document`, { file: part.file, field: `signatures[${i}]`, code: 'invalid-file' });
    return entry;
  });
}

function merge(entries: readonly SignatureEntry[], file: string): SignatureEntry[] {
  const out: SignatureEntry[] = [];
  for (const e of entries) if (!out.some((o) => bytesToHex(o.keyId) === bytesToHex(e.keyId))) out.push(e);
  if (out.length > MAX_SIGNATURES) throw new CliError(`${out.length} different signatures: expected at most ${MAX_SIGNATURES} in one envelope`, { file, field: 'signatures', code: 'invalid-file' });
  return out;
}

export interface CosignResult {
  file: string;
  document: string;
  added: string[];
  signers: string[];
  complete: boolean;
  missing: string | null;
}

/** Add the signatures of the keys `dir/private` holds (among those that count) to `documentFile`; write to `out`. */
export async function cosign(documentFile: string, dir: string, out: string): Promise<CosignResult> {
  const part = readPart(documentFile);
  const ctx = context(dir, part);
  const existing = checkedSignatures(part, ctx.keys);
  const have = new Set(existing.map((e) => bytesToHex(e.keyId)));
  const mine = ctx.keys.filter((k) => !have.has(bytesToHex(k.keyId))).map((k) => readSecretKey(dir, bytesToHex(k.keyId))).filter((k) => k !== undefined);
  if (mine.length === 0) throw new CliError(`holds none of the private keys that may still sign ${ctx.describe}: expected one of ${ctx.keys.filter((k) => !have.has(bytesToHex(k.keyId))).map((k) => bytesToHex(k.keyId)).join(', ') || '(none: every key signed)'}`, { file: join(dir, 'private'), code: 'not-found' });
  const added = decodeEnvelope(signEnvelope(part.document.body, mine)).signatures;
  const signatures = merge([...existing, ...added], documentFile);
  const bytes = encodeEnvelope(part.document.body, signatures);
  const verdict = await ctx.check(bytes);
  writeFilesAtomically([{ path: out, data: bytes, what: `the partly signed ${ctx.describe}` }]);
  return {
    file: out,
    document: ctx.describe,
    added: mine.map(keyIdHex),
    signers: signatures.map((s) => bytesToHex(s.keyId)),
    complete: verdict.ok,
    missing: verdict.ok ? null : verdict.message,
  };
}

export interface CombineResult {
  file: string;
  document: string;
  signers: string[];
  keys?: KeysJson;
}

/**
 * Merge parts over the same body into one envelope; written only if a device
 * would accept it: a root as `dir/root.<N+1>.bin` (then the key directory is
 * finished as after `keys rotate`), a manifest to `out`.
 */
export async function combine(files: readonly string[], dir: string, out: string | undefined): Promise<CombineResult> {
  const parts = files.map(readPart);
  const first = parts[0];
  for (const part of parts.slice(1)) {
    if (bytesToHex(part.document.body) !== bytesToHex(first.document.body)) throw new CliError(`signs another document than ${first.file}: expected parts of one document`, { file: part.file, field: 'body', code: 'invalid-file' });
  }
  const ctx = context(dir, first);
  const signatures = merge(parts.flatMap((p) => checkedSignatures(p, ctx.keys)), first.file);
  const bytes = encodeEnvelope(first.document.body, signatures);
  const verdict = await ctx.check(bytes);
  if (!verdict.ok) throw new CliError(`the combined signatures are not enough: ${verdict.message}; expected more parts (holdfast cosign)`, { file: files.join(', '), field: 'signatures', code: 'failed' });
  const signers = signatures.map((s) => bytesToHex(s.keyId));
  if (first.document.kind === 'root') {
    const file = out ?? join(dir, rootFileName(ctx.version));
    writeFilesAtomically([{ path: file, data: bytes, exclusive: true, what: ctx.describe }]);
    if (out !== undefined) return { file, document: ctx.describe, signers };
    const keys = finishRotation(dir, [...ctx.roots, verdict.root as TrustedRoot]);
    return { file, document: ctx.describe, signers, keys };
  }
  if (out === undefined) throw new CliError('is a manifest: expected --out <file> for the combined manifest', { file: first.file, field: '--out', code: 'usage', exitCode: 2 });
  writeFilesAtomically([{ path: out, data: bytes, what: ctx.describe }]);
  return { file: out, document: ctx.describe, signers };
}
