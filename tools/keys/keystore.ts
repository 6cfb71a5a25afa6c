/**
 * The key directory of `holdfast keys` (docs/spec/root.md, "Key directory"):
 *
 *   <dir>/keys.json            public keys, key ids, thresholds, history (readable)
 *   <dir>/root.<N>.bin         signed root documents, root.1.bin .. root.<N>.bin
 *   <dir>/private/<keyid>.key  one Ed25519 seed per file, hex, mode 0600 (dir 0700)
 *   <dir>/private/revoked/     keys replaced by a rotation
 *
 * The root files are the source of truth: `keys.json` is a readable mirror
 * and `sign`/`rotate` trust the chain root.1 -> root.N only after checking
 * it the way a device would. Private keys never leave their files: nothing
 * here prints, logs or puts a seed into an error message.
 */
import { chmodSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { bytesToHex, keyIdOf } from '../../firmware/security/verify.ts';
import { MAX_ENVELOPE_LENGTH, MAX_SIGNATURES } from '../../firmware/update/signed-document.ts';
import { encodeRootBody, MAX_ROLE_KEYS, rotateRoot, trustProvisionedRoot, type RootFields, type TrustedRoot } from '../../firmware/update/root.ts';
import type { Rejection } from '../../firmware/update/errors.ts';
import { CliError, fromNodeError, UsageError } from '../cli/errors.ts';
import { moveFile, readInput, readTextInput, writeFilesAtomically, type OutputFile } from '../cli/files.ts';
import { generateKey, hexToBytes, hostCrypto, keyFromSeed, keyIdHex, signEnvelope, type SecretKey } from './signer.ts';

export const KEYS_FILE = 'keys.json';
export const PRIVATE_DIR = 'private';
export const REVOKED_DIR = join(PRIVATE_DIR, 'revoked');
export const KEYS_JSON_FORMAT = 'holdfast-keys/1';

export type Role = 'root' | 'targets';

export interface KeysJson {
  format: string;
  note: string;
  rootVersion: number;
  root: RoleJson;
  targets: RoleJson;
  revoked: { keyId: string; publicKey: string; role: Role; revokedInRoot: number }[];
  roots: string[];
}

export interface RoleJson {
  threshold: number;
  keys: { keyId: string; publicKey: string }[];
}

export interface InitOptions {
  rootKeys: number;
  rootThreshold: number;
  targetsKeys: number;
  targetsThreshold: number;
}

/** A root chain that a device would refuse; carries the reason. */
export class TrustChainError extends Error {
  constructor(readonly rejection: Rejection, readonly file: string) {
    super(`${file}: ${rejection.reason}: ${rejection.message}`);
    this.name = 'TrustChainError';
  }
}

export function rootFileName(version: number): string {
  return `root.${version}.bin`;
}

/** keys.json stays small: 16 keys, a revocation history and the root file names. */
export const MAX_KEYS_JSON_BYTES = 1 << 20;
/** A private key file: 64 hex digits and a newline (some slack for whitespace). */
const MAX_KEY_FILE_BYTES = 256;

export function initKeyDir(dir: string, options: InitOptions): KeysJson {
  checkRoleOptions('root', options.rootKeys, options.rootThreshold);
  checkRoleOptions('targets', options.targetsKeys, options.targetsThreshold);
  const existing = statSync(dir, { throwIfNoEntry: false });
  if (existing !== undefined && !existing.isDirectory()) throw new CliError('is not a directory: expected a new key directory', { file: dir, code: 'not-a-directory' });
  for (const name of [KEYS_FILE, rootFileName(1)]) {
    if (statSync(join(dir, name), { throwIfNoEntry: false }) !== undefined) throw new CliError('already exists: refusing to overwrite a key directory', { file: join(dir, name), code: 'exists' });
  }
  const rootKeys = Array.from({ length: options.rootKeys }, generateKey);
  const targetsKeys = Array.from({ length: options.targetsKeys }, generateKey);
  const fields: RootFields = {
    version: 1,
    root: { threshold: options.rootThreshold, publicKeys: rootKeys.map((k) => k.publicKey) },
    targets: { threshold: options.targetsThreshold, publicKeys: targetsKeys.map((k) => k.publicKey) },
  };
  const envelope = signEnvelope(encodeRootBody(fields), rootKeys);
  const verdict = trustProvisionedRoot(hostCrypto(), envelope);
  if (!verdict.ok) throw new Error(`internal: the new root does not verify: ${verdict.reason}: ${verdict.message}`);
  const keys = describeKeys([verdict.root]);
  makePrivateDir(dir);
  // Private keys first, then the root, then keys.json: a prefix is a folder
  // `keys init` may be run on again (no root.1.bin, no keys.json yet).
  writeFilesAtomically([
    ...[...rootKeys, ...targetsKeys].map(secretKeyFile.bind(null, dir)),
    { path: join(dir, rootFileName(1)), data: envelope, exclusive: true, what: 'root 1' },
    keysJsonFile(dir, keys, true),
  ]);
  return keys;
}

/** A root file name: root.<N>.bin, N from 1, no leading zeros. */
const ROOT_FILE = /^root\.(\d+)\.bin$/;

/** root.1.bin .. root.N.bin from `dir`, checked as a device would: root 1 self-signed, each next one a valid rotation. */
export function loadRootChain(dir: string): { files: string[]; trusted: TrustedRoot; roots: TrustedRoot[] } {
  const stats = statSync(dir, { throwIfNoEntry: false });
  if (stats === undefined) throw new CliError('does not exist: expected a key directory (holdfast keys init)', { file: dir, code: 'not-found' });
  if (!stats.isDirectory()) throw new CliError('is not a directory: expected a key directory (holdfast keys init)', { file: dir, code: 'not-a-directory' });
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (error) {
    throw fromNodeError(error, dir, 'a readable key directory');
  }
  const versions: number[] = [];
  for (const name of names.sort()) {
    const m = ROOT_FILE.exec(name);
    if (m === null) continue;
    const version = Number(m[1]);
    if (m[1] !== String(version) || version === 0 || !Number.isSafeInteger(version)) {
      throw new CliError(`file name: expected root.<N>.bin with N from 1 and without leading zeros (${version >= 1 && Number.isSafeInteger(version) ? rootFileName(version) : 'root.1.bin'}): rename or remove it`, { file: join(dir, name), code: 'invalid-file' });
    }
    versions.push(version);
  }
  versions.sort((a, b) => a - b);
  if (versions.length === 0) throw new CliError(`no ${rootFileName(1)}: expected a key directory made by holdfast keys init`, { file: dir, code: 'not-found' });
  versions.forEach((v, i) => {
    if (v !== i + 1) throw new CliError(`has ${rootFileName(v)} but no ${rootFileName(i + 1)}: expected a complete root chain root.1.bin .. root.${versions[versions.length - 1]}.bin`, { file: dir, code: 'invalid-file' });
  });
  const files = versions.map((v) => join(dir, rootFileName(v)));
  const roots = trustRootChain(files);
  return { files, trusted: roots[roots.length - 1], roots };
}

/** Trust the first file as provisioned and apply the others as rotations, in order. */
export function trustRootFiles(files: readonly string[]): TrustedRoot {
  const roots = trustRootChain(files);
  return roots[roots.length - 1];
}

/** Every root of the chain `files` (the first trusted as provisioned, each next one a rotation). */
export function trustRootChain(files: readonly string[]): TrustedRoot[] {
  if (files.length === 0) throw new UsageError('no root files given', { field: '--root' });
  const read = (file: string) => readInput(file, 'a signed root document (root.<N>.bin)', MAX_ENVELOPE_LENGTH);
  const first = trustProvisionedRoot(hostCrypto(), read(files[0]));
  if (!first.ok) throw new TrustChainError(first, files[0]);
  const roots = [first.root];
  for (const file of files.slice(1)) {
    const next = rotateRoot(hostCrypto(), roots[roots.length - 1], read(file));
    if (!next.ok) throw new TrustChainError(next, file);
    roots.push(next.root);
  }
  return roots;
}

/** The private key `keyIdHex` from `dir/private`, or undefined if the file is absent. */
export function readSecretKey(dir: string, keyId: string, sub: string = PRIVATE_DIR): SecretKey | undefined {
  const path = join(dir, sub, `${keyId}.key`);
  const stats = statSync(path, { throwIfNoEntry: false });
  if (stats === undefined) return undefined;
  if (!stats.isFile()) throw new CliError('is not a regular file: expected a private key file (64 hex digits, mode 0600)', { file: path, code: 'not-a-file' });
  const mode = stats.mode & 0o777;
  if ((mode & 0o077) !== 0) throw new CliError(`is accessible to group or others (mode 0${mode.toString(8)}): expected mode 0600 (chmod 600 it)`, { file: path, code: 'permission' });
  const text = readTextInput(path, 'a private key file (64 hex digits)', MAX_KEY_FILE_BYTES).trim();
  if (!/^[0-9a-f]{64}$/i.test(text)) throw new CliError('does not hold a hex Ed25519 seed: expected 64 hex digits', { file: path, code: 'invalid-file' });
  const key = keyFromSeed(hexToBytes(text));
  if (keyIdHex(key) !== keyId) throw new CliError(`holds the key ${keyIdHex(key)}: expected the key ${keyId} its name says`, { file: path, code: 'invalid-file' });
  return key;
}

export interface RotateOptions {
  /** Key ids (or unique prefixes) of root keys to replace with new ones. */
  replaceRoot: readonly string[];
  /** Key ids (or unique prefixes) of targets keys to replace with new ones. */
  replaceTargets: readonly string[];
  /**
   * Split-party signing: sign with the root keys this directory holds (any
   * number), write the envelope to this file instead of root.<N+1>.bin, for
   * other key holders to `holdfast cosign` and `holdfast combine`.
   */
  partial?: string;
}

export interface RotateResult {
  keys: KeysJson;
  file: string;
  replaced: { role: Role; keyId: string; newKeyId: string }[];
  signers: string[];
  /** Partial rotations: what the envelope still lacks (undefined when complete). */
  missing?: string;
}

/**
 * Root N+1: requested keys replaced by new ones, signed by a threshold of N's
 * and of N+1's root keys. Everything is checked before anything is written
 * (keys.json, key ids, signers); then, in this order, each step atomic: the
 * new private keys, root.<N+1>.bin, the replaced private keys moved to
 * private/revoked/, keys.json. Every prefix leaves a directory whose root
 * chain is valid and whose private keys sign for it; keys.json is rebuilt
 * from the chain by the next rotation.
 */
export function rotateKeyDir(dir: string, options: RotateOptions): RotateResult {
  const { roots, trusted } = loadRootChain(dir);
  readKeysJson(dir);
  if (options.replaceRoot.length === 0 && options.replaceTargets.length === 0) {
    throw new UsageError(`nothing to replace: expected --replace-root-key or --replace-targets-key (root ${trusted.version + 1} would only repeat root ${trusted.version})`);
  }
  const version = trusted.version + 1;
  const replaced: RotateResult['replaced'] = [];
  const fresh: SecretKey[] = [];
  const replaceIn = (role: Role, wanted: readonly string[]): Uint8Array[] => {
    const keys = trusted[role].keys.map((k) => k.publicKey);
    const ids = trusted[role].keys.map((k) => bytesToHex(k.keyId));
    for (const prefix of wanted) {
      const index = resolveKeyId(ids, prefix.toLowerCase(), role);
      if (replaced.some((r) => r.role === role && r.keyId === ids[index])) continue;
      const key = generateKey();
      fresh.push(key);
      replaced.push({ role, keyId: ids[index], newKeyId: keyIdHex(key) });
      keys[index] = key.publicKey;
    }
    return keys;
  };
  const fields: RootFields = {
    version,
    root: { threshold: trusted.root.threshold, publicKeys: replaceIn('root', options.replaceRoot) },
    targets: { threshold: trusted.targets.threshold, publicKeys: replaceIn('targets', options.replaceTargets) },
  };
  const body = encodeRootBody(fields);
  const file = options.partial ?? join(dir, rootFileName(version));
  if (options.partial === undefined && statSync(file, { throwIfNoEntry: false }) !== undefined) {
    throw new CliError(`already exists: expected root ${version} not to be written yet`, { file, code: 'exists' });
  }
  const signers = options.partial === undefined ? chooseRotationSigners(dir, trusted, fields, fresh) : availableRootSigners(dir, trusted, fields, fresh);
  const envelope = signEnvelope(body, signers);
  const verdict = rotateRoot(hostCrypto(), trusted, envelope);
  if (options.partial === undefined && !verdict.ok) throw new Error(`internal: the new root does not verify: ${verdict.reason}: ${verdict.message}`);
  makePrivateDir(dir);
  const keyFiles = fresh.map(secretKeyFile.bind(null, dir));
  if (options.partial !== undefined) {
    writeFilesAtomically([...keyFiles, { path: file, data: envelope, what: `the partly signed root ${version}` }]);
    return { keys: describeKeys(roots), file, replaced, signers: signers.map(keyIdHex), missing: verdict.ok ? undefined : verdict.message };
  }
  // New keys before the root that lists them; the root before the moves and the mirror.
  writeFilesAtomically([...keyFiles, { path: file, data: envelope, exclusive: true, what: `root ${version}` }]);
  if (!verdict.ok) throw new Error('internal: unreachable');
  const keys = finishRotation(dir, [...roots, verdict.root]);
  return { keys, file, replaced, signers: signers.map(keyIdHex) };
}

/**
 * After root.<N>.bin is in place: move the private keys the chain revoked
 * into private/revoked/ (each move atomic, a rerun finishes what an
 * interrupted one left), then write keys.json from the chain.
 */
export function finishRotation(dir: string, roots: readonly TrustedRoot[]): KeysJson {
  const keys = describeKeys(roots);
  const current = new Set([...keys.root.keys, ...keys.targets.keys].map((k) => k.keyId));
  for (const r of keys.revoked) {
    if (current.has(r.keyId)) continue;
    const path = join(dir, PRIVATE_DIR, `${r.keyId}.key`);
    if (statSync(path, { throwIfNoEntry: false })?.isFile()) {
      try {
        mkdirSync(join(dir, REVOKED_DIR), { recursive: true, mode: 0o700 });
      } catch (error) {
        throw fromNodeError(error, join(dir, REVOKED_DIR), 'a folder for revoked keys');
      }
      moveFile(path, join(dir, REVOKED_DIR, `${r.keyId}.key`), 'a revoked private key');
    }
  }
  writeFilesAtomically([keysJsonFile(dir, keys, false)]);
  return keys;
}

/** Every root key of N or N+1 whose private key is here (added keys first), at most 8: a partial signature. */
function availableRootSigners(dir: string, trusted: TrustedRoot, fields: RootFields, fresh: readonly SecretKey[]): SecretKey[] {
  const newIds = fields.root.publicKeys.map((p) => bytesToHex(keyIdOf(hostCrypto(), p)));
  const oldIds = trusted.root.keys.map((k) => bytesToHex(k.keyId));
  const ids = [...newIds.filter((id) => !oldIds.includes(id)), ...oldIds];
  const keys = [...new Set(ids)].map((id) => fresh.find((k) => keyIdHex(k) === id) ?? readSecretKey(dir, id)).filter((k): k is SecretKey => k !== undefined);
  return keys.slice(0, MAX_SIGNATURES);
}
/**
 * Signers for a rotation (docs/spec/root.md, "Rotation"): a threshold of N's
 * root keys, a threshold of N+1's, and min(N+1's threshold, keys added) of
 * the keys N+1 adds. Added keys sign first (as many as the rule asks), then
 * kept keys (they count for both thresholds), then removed keys for what N's
 * threshold still lacks. An envelope holds at most 8 signatures.
 */
function chooseRotationSigners(dir: string, trusted: TrustedRoot, fields: RootFields, fresh: readonly SecretKey[]): SecretKey[] {
  const newIds = fields.root.publicKeys.map((p) => bytesToHex(keyIdOf(hostCrypto(), p)));
  const oldIds = trusted.root.keys.map((k) => bytesToHex(k.keyId));
  const load = (id: string): SecretKey | undefined => fresh.find((k) => keyIdHex(k) === id) ?? readSecretKey(dir, id);
  const available = (ids: readonly string[]) => ids.map(load).filter((k): k is SecretKey => k !== undefined);
  const addedIds = newIds.filter((id) => !oldIds.includes(id));
  const kept = available(oldIds.filter((id) => newIds.includes(id)));
  const removed = available(oldIds.filter((id) => !newIds.includes(id)));
  const added = available(addedIds);
  const oldThreshold = trusted.root.threshold;
  const newThreshold = fields.root.threshold;
  const addedNeeded = Math.min(newThreshold, addedIds.length);
  const next = trusted.version + 1;
  if (added.length < addedNeeded) throw missingKeys(dir, `root ${next} adds ${addedIds.length} root key(s) and ${addedNeeded} of them must sign it`);
  const keptSigners = kept.slice(0, Math.max(newThreshold - addedNeeded, oldThreshold));
  // Added keys beyond the rule's minimum only when kept keys are missing for N+1's threshold.
  const addedSigners = added.slice(0, Math.max(addedNeeded, newThreshold - keptSigners.length));
  if (addedSigners.length + keptSigners.length < newThreshold) throw missingKeys(dir, `root ${next} needs ${newThreshold} signatures from its own root keys`);
  const signers = [...addedSigners, ...keptSigners];
  const needOld = Math.max(0, oldThreshold - keptSigners.length);
  if (removed.length < needOld) throw missingKeys(dir, `root ${next} needs ${oldThreshold} signatures from root ${trusted.version}'s keys`);
  signers.push(...removed.slice(0, needOld));
  if (signers.length > MAX_SIGNATURES) throw new UsageError(`this rotation needs ${signers.length} signatures, an envelope holds ${MAX_SIGNATURES}: expected fewer root keys replaced at once`);
  return signers;
}

/** The private keys of the current targets role available in `dir` (at most 8). */
export function loadTargetsSigners(dir: string, trusted: TrustedRoot, partial = false): SecretKey[] {
  const keys = trusted.targets.keys
    .map((k) => readSecretKey(dir, bytesToHex(k.keyId)))
    .filter((k): k is SecretKey => k !== undefined)
    .slice(0, MAX_SIGNATURES);
  if (!partial && keys.length < trusted.targets.threshold) {
    throw missingKeys(dir, `root ${trusted.version} needs ${trusted.targets.threshold} targets signature(s), this directory holds ${keys.length} of its targets private keys`);
  }
  return keys;
}

/**
 * keys.json, checked field by field (it is a readable mirror of the root
 * chain, but a damaged one is refused before anything is written, so that
 * nobody commits it). Undefined when absent: it is rebuilt from the chain.
 */
export function readKeysJson(dir: string): KeysJson | undefined {
  const path = join(dir, KEYS_FILE);
  if (statSync(path, { throwIfNoEntry: false }) === undefined) return undefined;
  const text = readTextInput(path, 'keys.json (holdfast keys init)', MAX_KEYS_JSON_BYTES);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new CliError(`is not valid JSON (${error instanceof Error ? error.message : String(error)}): expected keys.json as holdfast keys wrote it; delete it to have it rebuilt from the root files`, { file: path, code: 'invalid-file' });
  }
  const fail = (field: string, expected: string, found: unknown): never => {
    throw new CliError(`expected ${expected}, found ${describeValue(found)}; fix it or delete keys.json to have it rebuilt from the root files`, { file: path, field, code: 'invalid-file' });
  };
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail('(top level)', 'a JSON object', value);
  const o = value as Record<string, unknown>;
  if (o.format !== KEYS_JSON_FORMAT) fail('format', JSON.stringify(KEYS_JSON_FORMAT), o.format);
  if (!Number.isSafeInteger(o.rootVersion) || (o.rootVersion as number) < 1) fail('rootVersion', 'a whole number from 1', o.rootVersion);
  const hex = (s: unknown, n: number) => typeof s === 'string' && new RegExp(`^[0-9a-f]{${n}}$`).test(s);
  for (const role of ['root', 'targets'] as const) {
    const r = o[role] as Record<string, unknown> | undefined;
    if (r === null || typeof r !== 'object' || Array.isArray(r)) fail(role, 'an object {threshold, keys}', r);
    const rr = r as Record<string, unknown>;
    if (!Number.isSafeInteger(rr.threshold) || (rr.threshold as number) < 1) fail(`${role}.threshold`, 'a whole number from 1', rr.threshold);
    if (!Array.isArray(rr.keys)) fail(`${role}.keys`, 'an array of {keyId, publicKey}', rr.keys);
    (rr.keys as unknown[]).forEach((k, i) => {
      const kk = k as Record<string, unknown>;
      if (kk === null || typeof kk !== 'object') fail(`${role}.keys[${i}]`, 'an object {keyId, publicKey}', k);
      if (!hex(kk.keyId, 16)) fail(`${role}.keys[${i}].keyId`, '16 hex digits', kk.keyId);
      if (!hex(kk.publicKey, 64)) fail(`${role}.keys[${i}].publicKey`, '64 hex digits', kk.publicKey);
    });
  }
  if (!Array.isArray(o.revoked)) fail('revoked', 'an array of revoked keys', o.revoked);
  (o.revoked as unknown[]).forEach((k, i) => {
    const kk = k as Record<string, unknown>;
    if (kk === null || typeof kk !== 'object' || Array.isArray(kk)) fail(`revoked[${i}]`, 'an object {keyId, publicKey, role, revokedInRoot}', k);
    if (!hex(kk.keyId, 16)) fail(`revoked[${i}].keyId`, '16 hex digits', kk.keyId);
    if (kk.role !== 'root' && kk.role !== 'targets') fail(`revoked[${i}].role`, '"root" or "targets"', kk.role);
  });
  if (!Array.isArray(o.roots) || !(o.roots as unknown[]).every((r) => typeof r === 'string')) fail('roots', 'an array of root file names', o.roots);
  return o as unknown as KeysJson;
}

function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  if (typeof value === 'object') return 'an object';
  return `the ${typeof value} ${String(value)}`;
}

/** keys.json for the chain `roots` (root 1 .. N): the current roles, and every key a rotation removed. */
export function describeKeys(roots: readonly TrustedRoot[]): KeysJson {
  const root = roots[roots.length - 1];
  const role = (r: TrustedRoot['root']): RoleJson => ({
    threshold: r.threshold,
    keys: r.keys.map((k) => ({ keyId: bytesToHex(k.keyId), publicKey: bytesToHex(k.publicKey) })),
  });
  const revoked: KeysJson['revoked'] = [];
  for (let i = 1; i < roots.length; i++) {
    for (const r of ['root', 'targets'] as const) {
      const next = new Set(roots[i][r].keys.map((k) => bytesToHex(k.keyId)));
      for (const k of roots[i - 1][r].keys) {
        if (!next.has(bytesToHex(k.keyId))) revoked.push({ keyId: bytesToHex(k.keyId), publicKey: bytesToHex(k.publicKey), role: r, revokedInRoot: roots[i].version });
      }
    }
  }
  return {
    format: KEYS_JSON_FORMAT,
    note: `Public data only, mirrored from ${rootFileName(root.version)}. Private keys: ${PRIVATE_DIR}/<keyId>.key (mode 0600); keep them in a secret store.`,
    rootVersion: root.version,
    root: role(root.root),
    targets: role(root.targets),
    revoked,
    roots: roots.map((r) => rootFileName(r.version)),
  };
}

function keysJsonFile(dir: string, keys: KeysJson, exclusive: boolean): OutputFile {
  return { path: join(dir, KEYS_FILE), data: `${JSON.stringify(keys, null, 2)}\n`, exclusive, what: 'keys.json' };
}

function makePrivateDir(dir: string): void {
  try {
    mkdirSync(join(dir, PRIVATE_DIR), { recursive: true, mode: 0o700 });
    chmodSync(join(dir, PRIVATE_DIR), 0o700);
  } catch (error) {
    throw fromNodeError(error, join(dir, PRIVATE_DIR), 'a folder for private keys');
  }
}

function secretKeyFile(dir: string, key: SecretKey): OutputFile {
  return { path: join(dir, PRIVATE_DIR, `${keyIdHex(key)}.key`), data: `${bytesToHex(key.seed)}\n`, mode: 0o600, exclusive: true, what: 'a private key' };
}

function resolveKeyId(ids: readonly string[], prefix: string, role: Role): number {
  if (!/^[0-9a-f]{4,16}$/.test(prefix)) throw new UsageError(`${JSON.stringify(prefix)} is not a key id (4 to 16 hex digits)`);
  const matches = ids.map((id, i) => (id.startsWith(prefix) ? i : -1)).filter((i) => i >= 0);
  if (matches.length === 0) throw new UsageError(`no ${role} key with id ${prefix} in the current root: expected one of ${ids.join(', ')}`, { field: `--replace-${role}-key` });
  if (matches.length > 1) throw new UsageError(`key id prefix ${prefix} matches ${matches.length} ${role} keys: expected more digits`, { field: `--replace-${role}-key` });
  return matches[0];
}

/** A key id argument that cannot name one key: bad usage. */
export class KeyIdError extends UsageError {}

function checkRoleOptions(role: Role, count: number, threshold: number): void {
  if (!Number.isInteger(count) || count < 1 || count > MAX_ROLE_KEYS) throw new UsageError(`expected 1..${MAX_ROLE_KEYS}, got ${count}`, { field: `--${role}-keys` });
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > count) throw new UsageError(`expected 1..${count} (the number of ${role} keys), got ${threshold}`, { field: `--${role}-threshold` });
}

/** Not enough private keys here for a complete signature: name the folder and the split-party route. */
function missingKeys(dir: string, need: string): CliError {
  return new CliError(`private keys missing: ${need}; expected them here, or sign in parts (--partial, holdfast cosign, holdfast combine: docs/ci-signing.md)`, { file: join(dir, PRIVATE_DIR), code: 'not-found' });
}
