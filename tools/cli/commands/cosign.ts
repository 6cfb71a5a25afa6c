/**
 * `holdfast cosign` and `holdfast combine`: threshold signatures made by
 * separate key holders (docs/ci-signing.md, "Signing in parts"), so that no
 * directory ever needs all root keys.
 */
import type { Command } from 'commander';
import { combine, cosign } from '../../keys/threshold.ts';
import { ExitCode } from '../exit-codes.ts';
import { checkOutputPath } from '../files.ts';
import { UsageError } from '../errors.ts';

export function registerCosign(program: Command): void {
  program
    .command('cosign')
    .description('add the signatures of the private keys in --dir to a partly signed root (keys rotate --partial) or manifest (sign --partial)')
    .argument('<document>', 'partly signed root or manifest')
    .option('--dir <dir>', 'key directory holding this signer\'s private keys and the root chain', 'keys')
    .option('--out <file>', 'where to write the document with the added signatures (default <document>, replaced atomically)')
    .option('--json', 'print {file, document, added, signers, complete, missing}')
    .action(async (document: string, flags: { dir: string; out?: string; json?: boolean }) => {
      const out = flags.out ?? document;
      checkOutputPath(out, 'the cosigned document');
      const result = await cosign(document, flags.dir, out);
      if (flags.json) console.log(JSON.stringify(result, null, 2));
      else {
        console.log(`wrote ${result.file}: ${result.document}, added ${result.added.join(', ')}; signed by ${result.signers.join(', ')}`);
        console.log(result.complete ? 'complete: a device accepts it (holdfast combine writes it in place)' : `still partial: ${result.missing}`);
      }
      process.exitCode = ExitCode.OK;
    });
}

export function registerCombine(program: Command): void {
  program
    .command('combine')
    .description('merge partly signed copies of one root or manifest into one envelope, kept only if a device accepts it; a root goes to <dir>/root.<N+1>.bin')
    .argument('<parts...>', 'partly signed copies of the same document (holdfast cosign)')
    .option('--dir <dir>', 'key directory with the root chain (root.1.bin .. root.N.bin)', 'keys')
    .option('--out <file>', 'output file (required for a manifest; a root goes to <dir>/root.<N+1>.bin)')
    .option('--json', 'print {file, document, signers, keys}')
    .action(async (parts: string[], flags: { dir: string; out?: string; json?: boolean }) => {
      if (parts.length === 0) throw new UsageError('expected at least one part', { field: '<parts...>' });
      if (flags.out !== undefined) checkOutputPath(flags.out, 'the combined document');
      const result = await combine(parts, flags.dir, flags.out);
      if (flags.json) console.log(JSON.stringify(result, null, 2));
      else console.log(`wrote ${result.file}: ${result.document}, signed by ${result.signers.join(', ')}; a device accepts it`);
      process.exitCode = ExitCode.OK;
    });
}
