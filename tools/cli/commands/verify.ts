/**
 * `holdfast verify <image> <manifest>`: the checks a device runs before and
 * after streaming an update (checkManifest, checkImageDigest, and the
 * agent's ESP-IDF image check for the board's chip), against a root chain.
 * Exit 0 only when the device would install it; 1 with `<reason>: <message>`
 * otherwise; 2 for a board with no boards/<id>.
 */
import type { Command } from 'commander';
import { MAX_U32 } from '../../../firmware/update/signed-document.ts';
import { parseInteger, usageError } from '../../keys/cli-options.ts';
import { boardForFlag, chipOf, imageFile, manifestJson, verifyImage, type VerifyImageResult } from '../../keys/image.ts';
import { MAX_ENVELOPE_LENGTH } from '../../../firmware/update/signed-document.ts';
import { readInput, statInput } from '../files.ts';
import { loadRootChain, TrustChainError, trustRootFiles } from '../../keys/keystore.ts';
import type { TrustedRoot } from '../../../firmware/update/root.ts';
import { ExitCode } from '../exit-codes.ts';

interface VerifyFlags {
  dir?: string;
  root?: string[];
  runningVersion: number;
  floor: number;
  board?: string;
  slotSize?: number;
  json?: boolean;
}

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('check an image and its manifest as a device would: signatures, root chain, board, versions, size, SHA-256')
    .argument('<image>', 'image file')
    .argument('<manifest>', 'manifest file (holdfast sign)')
    .option('--dir <dir>', 'trust the root chain root.1.bin .. root.N.bin of this key directory')
    .option('--root <files...>', 'trust the first root file (as provisioned) and apply the others as rotations, in order')
    .option('--running-version <v>', 'version the device runs; the image must be above it', parseInteger(0, MAX_U32), 0)
    .option('--floor <s>', 'anti-rollback floor; the security version must not be below it', parseInteger(0, MAX_U32), 0)
    .option('--board <id>', "device's board id, a folder of boards/ (default: the manifest's own)")
    .option('--slot-size <bytes>', "app slot size, decimal or 0x hex (default: the board's from boards/, else no limit)", parseInteger(0, MAX_U32, { hex: true }))
    .option('--json', 'print {ok, reason, message, manifest, authenticated}')
    .action(async (image: string, manifestFile: string, flags: VerifyFlags, command: Command) => {
      if ((flags.dir === undefined) === (flags.root === undefined)) usageError(command, 'expected exactly one of --dir <dir> or --root <root.N.bin...>', '--dir');
      // Sizes first: a manifest is at most one envelope; the image is only stat'ed here and hashed as a stream.
      if (flags.board !== undefined) boardForFlag(flags.board);
      const source = imageFile(image);
      const manifestSize = statInput(manifestFile, 'a manifest (holdfast sign)').size;
      const chain = trustChain(flags);
      const manifestBytes = chain.ok && manifestSize <= MAX_ENVELOPE_LENGTH ? readInput(manifestFile, 'a manifest (holdfast sign)', MAX_ENVELOPE_LENGTH) : undefined;
      const result: VerifyImageResult = !chain.ok
        ? chain.result
        : manifestBytes === undefined
          ? { ok: false, reason: 'malformed', message: `${manifestFile} is ${manifestSize} bytes, a manifest envelope is at most ${MAX_ENVELOPE_LENGTH} (not read)`, manifest: undefined, authenticated: false }
          : await verifyImage(source, manifestBytes, {
            trusted: chain.trusted,
            runningVersion: flags.runningVersion,
            securityFloor: flags.floor,
            ...(flags.board !== undefined ? { boardId: flags.board } : {}),
            ...(flags.slotSize !== undefined ? { slotSize: flags.slotSize } : {}),
            // The chip comes from the device's board: --board, else the board the (authenticated) manifest names, which must exist too.
            chipFor: (boardId: string) => chipOf(boardForFlag(boardId, '--board')),
          });
      report(result, chain.ok ? chain.trusted : undefined, flags.json === true);
      process.exitCode = result.ok ? ExitCode.OK : ExitCode.FAILED;
    });
}

function trustChain(flags: VerifyFlags): { ok: true; trusted: TrustedRoot } | { ok: false; result: VerifyImageResult } {
  try {
    return { ok: true, trusted: flags.dir !== undefined ? loadRootChain(flags.dir).trusted : trustRootFiles(flags.root ?? []) };
  } catch (error) {
    if (!(error instanceof TrustChainError)) throw error;
    return { ok: false, result: { ok: false, reason: error.rejection.reason, message: `root chain: ${error.file}: ${error.rejection.message}`, manifest: undefined, authenticated: false } };
  }
}

function report(result: VerifyImageResult, trusted: TrustedRoot | undefined, json: boolean): void {
  if (json) {
    console.log(
      JSON.stringify(
        {
          ok: result.ok,
          reason: result.ok ? null : result.reason,
          message: result.ok ? describeOk(result, trusted) : result.message,
          manifest: result.manifest ? manifestJson(result.manifest) : null,
          authenticated: result.ok || result.authenticated,
        },
        null,
        2,
      ),
    );
    return;
  }
  console.log(result.ok ? `ok: ${describeOk(result, trusted)}` : `${result.reason}: ${result.message}`);
}

function describeOk(result: Extract<VerifyImageResult, { ok: true }>, trusted: TrustedRoot | undefined): string {
  const m = result.manifest;
  return `image version ${m.imageVersion} (security ${m.securityVersion}) for ${m.boardId}, ${m.imageLength} bytes, signed by ${result.signers} targets key(s) of root ${trusted?.version}`;
}
