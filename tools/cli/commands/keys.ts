/**
 * `holdfast keys init` and `holdfast keys rotate`: Ed25519 keys and signed
 * root documents in a key directory (docs/spec/root.md, "Key directory").
 * Output names public keys and key ids only; private keys stay in their
 * 0600 files.
 */
import type { Command } from 'commander';
import { Option } from 'commander';
import { initKeyDir, rootFileName, rotateKeyDir, type KeysJson } from '../../keys/keystore.ts';
import { checkOutputPath } from '../files.ts';
import { ExitCode } from '../exit-codes.ts';
import { collectKeyId, parseInteger, usageError } from '../../keys/cli-options.ts';

interface InitFlags {
  dir: string;
  rootKeys: number;
  rootThreshold: number;
  targetsKeys: number;
  targetsThreshold: number;
  json?: boolean;
}

interface RotateFlags {
  dir: string;
  replaceRootKey: string[];
  replaceTargetsKey: string[];
  partial?: string;
  json?: boolean;
}

export function registerKeys(program: Command): void {
  const keys = program
    .command('keys')
    .description('create and rotate Ed25519 signing keys and signed root documents (docs/spec/root.md)');

  keys
    .command('init')
    .description('generate root and targets keys and write root.1.bin (signed by the root keys) and keys.json')
    .requiredOption('--dir <dir>', 'key directory to create (must not hold keys yet)')
    .option('--root-keys <n>', 'number of root keys, 1..8', parseInteger(1, 8), 1)
    .option('--root-threshold <t>', 'root signatures required, 1..root keys', parseInteger(1, 8), 1)
    .option('--targets-keys <m>', 'number of targets (image signing) keys, 1..8', parseInteger(1, 8), 1)
    .option('--targets-threshold <u>', 'targets signatures required, 1..targets keys', parseInteger(1, 8), 1)
    .option('--json', 'print keys.json')
    .action((flags: InitFlags, command: Command) => {
      if (flags.rootThreshold > flags.rootKeys) usageError(command, `${flags.rootThreshold} exceeds --root-keys ${flags.rootKeys}: expected at most the number of root keys`, '--root-threshold');
      if (flags.targetsThreshold > flags.targetsKeys) usageError(command, `${flags.targetsThreshold} exceeds --targets-keys ${flags.targetsKeys}: expected at most the number of targets keys`, '--targets-threshold');
      const result = initKeyDir(flags.dir, {
        rootKeys: flags.rootKeys,
        rootThreshold: flags.rootThreshold,
        targetsKeys: flags.targetsKeys,
        targetsThreshold: flags.targetsThreshold,
      });
      if (flags.json) console.log(JSON.stringify(result, null, 2));
      else {
        console.log(`wrote ${flags.dir}/${rootFileName(1)}, ${flags.dir}/keys.json and ${result.root.keys.length + result.targets.keys.length} private keys (mode 0600) in ${flags.dir}/private/`);
        printRoles(result);
        console.log('keep the private root keys offline; give CI only the targets keys it needs (docs/ci-signing.md)');
      }
      process.exitCode = ExitCode.OK;
    });

  keys
    .command('rotate')
    .description('write root.<N+1>.bin: replace keys (the old ones are revoked), signed by a threshold of the old and of the new root keys, and by the added root keys (docs/spec/root.md)')
    .requiredOption('--dir <dir>', 'key directory made by keys init')
    .addOption(new Option('--replace-root-key <keyid>', 'root key to replace with a new one (repeatable; a unique prefix will do)').argParser(collectKeyId).default([]))
    .addOption(new Option('--replace-targets-key <keyid>', 'targets key to replace with a new one (repeatable)').argParser(collectKeyId).default([]))
    .option('--partial <file>', 'split-party signing: sign with the root keys held here (any number) and write the envelope to <file>, not root.<N+1>.bin; other holders add theirs (holdfast cosign), holdfast combine finishes')
    .option('--json', 'print the result as JSON')
    .action((flags: RotateFlags) => {
      if (flags.partial !== undefined) checkOutputPath(flags.partial, 'the partly signed root');
      const result = rotateKeyDir(flags.dir, { replaceRoot: flags.replaceRootKey, replaceTargets: flags.replaceTargetsKey, ...(flags.partial !== undefined ? { partial: flags.partial } : {}) });
      if (flags.json) console.log(JSON.stringify({ file: result.file, complete: result.missing === undefined, missing: result.missing ?? null, replaced: result.replaced, signers: result.signers, keys: result.keys }, null, 2));
      else {
        console.log(`wrote ${result.file}, signed by ${result.signers.join(', ') || 'no key yet'}`);
        if (result.missing !== undefined) console.log(`partial: ${result.missing}; the other root key holders run holdfast cosign, then holdfast combine --dir ${flags.dir}`);
        for (const r of result.replaced) console.log(`${r.role} key ${r.keyId} revoked, replaced by ${r.newKeyId}`);
        printRoles(result.keys);
      }
      process.exitCode = ExitCode.OK;
    });
}

function printRoles(keys: KeysJson): void {
  for (const role of ['root', 'targets'] as const) {
    const r = keys[role];
    console.log(`root ${keys.rootVersion} ${role}: threshold ${r.threshold} of ${r.keys.length}: ${r.keys.map((k) => k.keyId).join(', ')}`);
  }
}
