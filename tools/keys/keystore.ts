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
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bytesToHex, keyIdOf } from '../../firmware/security/verify.ts';
import { MAX_SIGNATURES } from '../../firmware/update/signed-document.ts';
import { encodeRootBody, MAX_ROLE_KEYS, rotateRoot, trustProvisionedRoot, type RootFields, type TrustedRoot } from '../../firmware/update/root.ts';
import type { Rejection } from '../../firmware/update/errors.ts';
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

export function initKeyDir(dir: string, options: InitOptions): KeysJson {
  checkRoleOptions('root', options.rootKeys, options.rootThreshold);
  checkRoleOptions('targets', options.targetsKeys, options.targetsThreshold);
  for (const name of [KEYS_FILE, rootFileName(1)]) {
    if (existsSync(join(dir, name))) throw new Error(`${join(dir, name)} already exists: refusing to overwrite a key directory`);
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
  makePrivateDir(dir);
  for (const key of [...rootKeys, ...targetsKeys]) writeSecretKey(dir, key);
  writeFileSync(join(dir, rootFileName(1)), envelope, { flag: 'wx' });
  const keys = describeKeys(verdict.root, [], [rootFileName(1)]);
  writeKeysJson(dir, keys);
  return keys;
}

/** root.1.bin .. root.N.bin from `dir`, checked as a device would: root 1 self-signed, each next one a valid rotation. */
export function loadRootChain(dir: string): { files: string[]; trusted: TrustedRoot } {
  const versions = readdirSync(dir)
    .map((name) => /^root\.(\d+)\.bin$/.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
  if (versions.length === 0) throw new Error(`no ${rootFileName(1)} in ${dir}: run holdfast keys init first`);
  versions.forEach((v, i) => {
    if (v !== i + 1) throw new Error(`${dir} has ${rootFileName(v)} but no ${rootFileName(i + 1)}: the root chain must be complete`);
  });
  const files = versions.map((v) => join(dir, rootFileName(v)));
  return { files, trusted: trustRootFiles(files) };
}

/** Trust the first file as provisioned and apply the others as rotations, in order. */
export function trustRootFiles(files: readonly string[]): TrustedRoot {
  if (files.length === 0) throw new Error('no root files given');
  const first = trustProvisionedRoot(hostCrypto(), readFileSync(files[0]));
  if (!first.ok) throw new TrustChainError(first, files[0]);
  let trusted = first.root;
  for (const file of files.slice(1)) {
    const next = rotateRoot(hostCrypto(), trusted, readFileSync(file));
    if (!next.ok) throw new TrustChainError(next, file);
    trusted = next.root;
  }
  return trusted;
}

/** The private key `keyIdHex` from `dir/private`, or undefined if the file is absent. */
export function readSecretKey(dir: string, keyId: string, sub: string = PRIVATE_DIR): SecretKey | undefined {
  const path = join(dir, sub, `${keyId}.key`);
  if (!existsSync(path)) return undefined;
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0) throw new Error(`${path} is accessible to group or others (mode 0${mode.toString(8)}): chmod 600 it`);
  const text = readFileSync(path, 'utf8').trim();
  if (!/^[0-9a-f]{64}$/i.test(text)) throw new Error(`${path} does not hold a hex Ed25519 seed (64 hex digits)`);
  const key = keyFromSeed(hexToBytes(text));
  if (keyIdHex(key) !== keyId) throw new Error(`${path} holds the key ${keyIdHex(key)}, not ${keyId}`);
  return key;
}

export interface RotateOptions {
  /** Key ids (or unique prefixes) of root keys to replace with new ones. */
  replaceRoot: readonly string[];
  /** Key ids (or unique prefixes) of targets keys to replace with new ones. */
  replaceTargets: readonly string[];
}

export interface RotateResult {
  keys: KeysJson;
  file: string;
  replaced: { role: Role; keyId: string; newKeyId: string }[];
  signers: string[];
}

/** Root N+1: requested keys replaced by new ones, signed by a threshold of N's and of N+1's root keys. */
export function rotateKeyDir(dir: string, options: RotateOptions): RotateResult {
  const { files, trusted } = loadRootChain(dir);
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
  const signers = chooseRotationSigners(dir, trusted, fields, fresh);
  const envelope = signEnvelope(body, signers);
  const verdict = rotateRoot(hostCrypto(), trusted, envelope);
  if (!verdict.ok) throw new Error(`internal: the new root does not verify: ${verdict.reason}: ${verdict.message}`);
  makePrivateDir(dir);
  for (const key of fresh) writeSecretKey(dir, key);
  const file = join(dir, rootFileName(version));
  writeFileSync(file, envelope, { flag: 'wx' });
  const previous = readKeysJson(dir);
  const revoked = [...(previous?.revoked ?? [])];
  for (const r of replaced) {
    const old = trusted[r.role].keys.find((k) => bytesToHex(k.keyId) === r.keyId);
    revoked.push({ keyId: r.keyId, publicKey: old ? bytesToHex(old.publicKey) : '', role: r.role, revokedInRoot: version });
    const path = join(dir, PRIVATE_DIR, `${r.keyId}.key`);
    const stillUsed = verdict.root.root.keys.concat(verdict.root.targets.keys).some((k) => bytesToHex(k.keyId) === r.keyId);
    if (existsSync(path) && !stillUsed) {
      mkdirSync(join(dir, REVOKED_DIR), { recursive: true, mode: 0o700 });
      renameSync(path, join(dir, REVOKED_DIR, `${r.keyId}.key`));
    }
  }
  const keys = describeKeys(verdict.root, revoked, [...files.map((f) => f.slice(dir.length + 1)), rootFileName(version)]);
  writeKeysJson(dir, keys);
  return { keys, file, replaced, signers: signers.map(keyIdHex) };
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
  if (added.length < addedNeeded) throw new Error(`root ${next} adds ${addedIds.length} root key(s), ${addedNeeded} of them must sign it: private keys missing in ${join(dir, PRIVATE_DIR)}`);
  const keptSigners = kept.slice(0, Math.max(newThreshold - addedNeeded, oldThreshold));
  // Added keys beyond the rule's minimum only when kept keys are missing for N+1's threshold.
  const addedSigners = added.slice(0, Math.max(addedNeeded, newThreshold - keptSigners.length));
  if (addedSigners.length + keptSigners.length < newThreshold) throw new Error(`root ${next} needs ${newThreshold} signatures from its own root keys: private keys missing in ${join(dir, PRIVATE_DIR)}`);
  const signers = [...addedSigners, ...keptSigners];
  const needOld = Math.max(0, oldThreshold - keptSigners.length);
  if (removed.length < needOld) throw new Error(`root ${next} needs ${oldThreshold} signatures from root ${trusted.version}'s keys: private keys missing in ${join(dir, PRIVATE_DIR)}`);
  signers.push(...removed.slice(0, needOld));
  if (signers.length > MAX_SIGNATURES) throw new Error(`this rotation needs ${signers.length} signatures, an envelope holds ${MAX_SIGNATURES}: replace fewer root keys at once`);
  return signers;
}

/** The private keys of the current targets role available in `dir` (at most 8). */
export function loadTargetsSigners(dir: string, trusted: TrustedRoot): SecretKey[] {
  const keys = trusted.targets.keys
    .map((k) => readSecretKey(dir, bytesToHex(k.keyId)))
    .filter((k): k is SecretKey => k !== undefined)
    .slice(0, MAX_SIGNATURES);
  if (keys.length < trusted.targets.threshold) {
    throw new Error(`root ${trusted.version} needs ${trusted.targets.threshold} targets signature(s), ${keys.length} targets private key(s) in ${join(dir, PRIVATE_DIR)}`);
  }
  return keys;
}

export function readKeysJson(dir: string): KeysJson | undefined {
  const path = join(dir, KEYS_FILE);
  if (!existsSync(path)) return undefined;
  return JSON.parse(readFileSync(path, 'utf8')) as KeysJson;
}

function describeKeys(root: TrustedRoot, revoked: KeysJson['revoked'], roots: string[]): KeysJson {
  const role = (r: TrustedRoot['root']): RoleJson => ({
    threshold: r.threshold,
    keys: r.keys.map((k) => ({ keyId: bytesToHex(k.keyId), publicKey: bytesToHex(k.publicKey) })),
  });
  return {
    format: KEYS_JSON_FORMAT,
    note: `Public data only, mirrored from ${rootFileName(root.version)}. Private keys: ${PRIVATE_DIR}/<keyId>.key (mode 0600); keep them in a secret store.`,
    rootVersion: root.version,
    root: role(root.root),
    targets: role(root.targets),
    revoked,
    roots,
  };
}

function writeKeysJson(dir: string, keys: KeysJson): void {
  writeFileSync(join(dir, KEYS_FILE), `${JSON.stringify(keys, null, 2)}\n`);
}

function makePrivateDir(dir: string): void {
  mkdirSync(join(dir, PRIVATE_DIR), { recursive: true, mode: 0o700 });
  chmodSync(join(dir, PRIVATE_DIR), 0o700);
}

function writeSecretKey(dir: string, key: SecretKey): void {
  const path = join(dir, PRIVATE_DIR, `${keyIdHex(key)}.key`);
  writeFileSync(path, `${bytesToHex(key.seed)}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(path, 0o600);
}

function resolveKeyId(ids: readonly string[], prefix: string, role: Role): number {
  if (!/^[0-9a-f]{4,16}$/.test(prefix)) throw new KeyIdError(`${JSON.stringify(prefix)} is not a key id (4 to 16 hex digits)`);
  const matches = ids.map((id, i) => (id.startsWith(prefix) ? i : -1)).filter((i) => i >= 0);
  if (matches.length === 0) throw new Error(`no ${role} key with id ${prefix} in the current root (${ids.join(', ')})`);
  if (matches.length > 1) throw new KeyIdError(`key id prefix ${prefix} matches ${matches.length} ${role} keys: give more digits`);
  return matches[0];
}

/** A key id argument that cannot name one key: bad usage. */
export class KeyIdError extends Error {}

function checkRoleOptions(role: Role, count: number, threshold: number): void {
  if (!Number.isInteger(count) || count < 1 || count > MAX_ROLE_KEYS) throw new RangeError(`--${role}-keys must be 1..${MAX_ROLE_KEYS}, got ${count}`);
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > count) throw new RangeError(`--${role}-threshold must be 1..${count} (the number of ${role} keys), got ${threshold}`);
}
