/**
 * `holdfast sign <image>`: write `<image>.manifest`, an IMAGE document
 * (docs/spec/image-manifest.md) signed by the current targets keys of the
 * key directory's root chain; only for an image the board's devices would
 * install: a valid ESP-IDF app image (docs/spec/esp-app-image.md) for the
 * board's chip whose esp_app_desc_t carries --version and --security-version.
 */
import type { Command } from 'commander';
import { MAX_BOARD_ID_LENGTH } from '../../../firmware/update/manifest.ts';
import { MAX_U32 } from '../../../firmware/update/signed-document.ts';
import { parseInteger, usageError } from '../../keys/cli-options.ts';
import { boardForFlag, checkImageFile, chipOf, imageFile, manifestJson, signImage } from '../../keys/image.ts';
import type { AppImageVerdict } from '../../../firmware/update/esp-app-image.ts';
import type { Board } from '../../boards/board.ts';
import { ExitCode } from '../exit-codes.ts';
import { CliError } from '../errors.ts';
import { checkOutputPath, writeFilesAtomically } from '../files.ts';

interface SignFlags {
  version: number;
  securityVersion: number;
  board: string;
  dir: string;
  rollout?: number;
  cohort?: number;
  out?: string;
  partial?: boolean;
  json?: boolean;
}

export function registerSign(program: Command): void {
  // `sign --version V` must reach this command, not the program's -V/--version:
  // program options are then recognised only before the command name.
  program.enablePositionalOptions();
  program
    .command('sign')
    .description('sign an image: write <image>.manifest with its SHA-256, length, versions and board, signed by the current targets keys')
    .argument('<image>', 'image file (the app binary to install)')
    .requiredOption('--version <v>', 'image version, 0..2^32-1; devices install only versions above the running one', parseInteger(0, MAX_U32))
    .requiredOption('--security-version <s>', 'security version, 0..2^32-1; devices refuse images below their anti-rollback floor', parseInteger(0, MAX_U32))
    .requiredOption('--board <id>', `board id, a folder of boards/ (its chip must be the image's), 1..${MAX_BOARD_ID_LENGTH} characters`)
    .option('--dir <dir>', 'key directory (holdfast keys init)', 'keys')
    .option('--rollout <percent>', 'staged rollout: share of devices 0..100', parseInteger(0, 100))
    .option('--cohort <n>', 'rollout cohort (salt of the device buckets), 0..2^32-1', parseInteger(0, MAX_U32))
    .option('--out <file>', 'manifest path (default <image>.manifest)')
    .option('--partial', 'sign with the targets keys this directory holds, even below the threshold: other holders add theirs (holdfast cosign, holdfast combine)')
    .option('--json', 'print the manifest fields as JSON')
    .action(async (image: string, flags: SignFlags, command: Command) => {
      if (!/^[\x21-\x7e]{1,32}$/.test(flags.board)) usageError(command, `expected 1..${MAX_BOARD_ID_LENGTH} printable ASCII characters without spaces`, '--board');
      if (flags.cohort !== undefined && flags.rollout === undefined) usageError(command, 'expected --rollout with it', '--cohort');
      const board = boardForFlag(flags.board);
      const out = flags.out ?? `${image}.manifest`;
      const source = imageFile(image);
      checkOutputPath(out, 'the manifest');
      checkInstallable(image, source.length, board, () => checkImageFile(source, chipOf(board), { imageVersion: flags.version, securityVersion: flags.securityVersion }), flags);
      const signed = await signImage(flags.dir, source, {
        imageVersion: flags.version,
        securityVersion: flags.securityVersion,
        boardId: flags.board,
        ...(flags.rollout !== undefined ? { rollout: { percent: flags.rollout, cohort: flags.cohort ?? 0 } } : {}),
      }, flags.partial === true);
      writeFilesAtomically([{ path: out, data: signed.bytes, what: 'the manifest' }]);
      if (flags.json) console.log(JSON.stringify({ manifest: out, bytes: signed.bytes.length, signers: signed.signers, complete: signed.complete, ...manifestJson(signed.manifest) }, null, 2));
      else {
        const m = signed.manifest;
        console.log(`wrote ${out} (${signed.bytes.length} bytes): version ${m.imageVersion}, security ${m.securityVersion}, board ${m.boardId}, ${m.imageLength} bytes, root ${m.rootVersion}, signed by ${signed.signers.join(', ') || 'no key yet'}${signed.complete ? '' : ' (partial: other targets key holders add theirs with holdfast cosign or combine)'}`);
      }
      process.exitCode = ExitCode.OK;
    });
}

/** The smallest app slot (ota_*) of the board: an update goes to either. */
function smallestSlot(board: Board): number | undefined {
  const sizes = board.partitions.filter((p) => /^ota_\d+$/.test(p.name)).map((p) => p.size);
  return sizes.length > 0 ? Math.min(...sizes) : undefined;
}

/** Refuse, in one line, an image the board's devices would not install. */
function checkInstallable(image: string, length: number, board: Board, check: () => AppImageVerdict, flags: SignFlags): void {
  const slot = smallestSlot(board);
  if (slot !== undefined && length > slot) throw new CliError(`is ${length} bytes: expected at most ${slot}, the app slot of ${board.id}`, { file: image, code: 'invalid-file' });
  const verdict = check();
  if (!verdict.ok) {
    if (verdict.what === 'secure-version') {
      throw new CliError(`--security-version ${flags.securityVersion} differs from the image's secure_version ${verdict.desc?.secureVersion} (esp_app_desc_t): devices would refuse it`, { file: image, field: '--security-version', code: 'invalid-file' });
    }
    if (verdict.what === 'version') {
      throw new CliError(`--version ${flags.version} differs from the image's version ${JSON.stringify(verdict.desc?.version)} (esp_app_desc_t.version, decimal for holdfast): devices would refuse it`, { file: image, field: '--version', code: 'invalid-file' });
    }
    const chip = verdict.reason === 'wrong-chip' ? ` (board ${board.id} is ${board.chip})` : '';
    throw new CliError(`${verdict.message}${chip}`, { file: image, code: 'invalid-file' });
  }
}
