/**
 * `holdfast build`: type-check firmware/ (without Node's types), enforce the
 * firmware rules, and bundle the runtime twice: an ES module for a Moddable
 * SDK build (mcrun compiles it into the device image) and an IIFE script for
 * the host XS engine. Both use target es2021 and strict mode (docs/design/xs-harness.md).
 *
 * With `--board <id>` it also writes a complete Moddable project for that
 * board into the output folder (tools/boards/moddable-project.ts): manifest.json,
 * partitions.csv, sdkconfig/sdkconfig.defaults, the device entry and the
 * native glue. With MODDABLE set and mcconfig on PATH it then runs
 * `mcconfig -d -m -p <platform> <out>/manifest.json`; otherwise it prints
 * that command.
 */
import type { Command } from 'commander';
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdirSync, statSync } from 'node:fs';
import { delimiter, join, relative, resolve } from 'node:path';
import { REPO_ROOT } from '../package-info.ts';
import { ExitCode } from '../exit-codes.ts';
import { printViolations } from './check.ts';
import { checkOutputDir, writeFilesAtomically, type OutputFile } from '../files.ts';
import { CliError, EnvironmentError, fromNodeError, UsageError } from '../errors.ts';
import { parseInteger } from '../../keys/cli-options.ts';
import { type Board, BoardError, loadBoard } from '../../boards/board.ts';
import { BUNDLE_PATH, DEVICE_ENTRY, MODDABLE_EXTERNALS, mcconfigArgs, projectFiles, shellCommand } from '../../boards/moddable-project.ts';

export const FIRMWARE_ENTRY = join(REPO_ROOT, 'firmware/runtime/main.ts');

interface BuildOptions {
  out: string;
  board?: string;
  secureVersion?: number;
  json?: boolean;
}

interface Output {
  kind: string;
  path: string;
  bytes: number;
}

/** What build did about mcconfig: ran it, or why not, and the command either way. */
interface McconfigReport {
  command: string;
  argv: string[];
  ran: boolean;
  reason?: string;
  status?: number;
}

export function registerBuild(program: Command): void {
  program
    .command('build')
    .description('type-check firmware/, check the firmware rules, and bundle it for Moddable (ESM) and for host XS (IIFE); with --board, write a complete Moddable project for that board and run (or print) mcconfig')
    .option('--out <dir>', 'output directory (relative to the current directory)', 'dist')
    .option('--board <id>', 'board id (boards/<id>/board.json): also write the Moddable project (manifest.json, partitions.csv, sdkconfig) for it')
    .option('--secure-version <n>', 'with --board: turn on anti-rollback with this secure version, 0..32 on ESP32, 0..16 on S3/C3 (burns eFuses on the device: bootloader-config/README.md)', parseInteger(0, 32))
    .option('--json', 'machine-readable summary')
    .action(async (options: BuildOptions) => {
      if (options.secureVersion !== undefined && options.board === undefined) throw new UsageError('expected --board with it', { field: '--secure-version' });
      const board = options.board === undefined ? undefined : boardFor(options.board);
      if (board !== undefined && options.secureVersion !== undefined && options.secureVersion > board.antiRollbackBits) {
        throw new UsageError(`${options.secureVersion}: expected 0..${board.antiRollbackBits} (the ${board.antiRollbackBits}-bit secure-version eFuse field of ${board.chip})`, { field: '--secure-version' });
      }
      checkOutputDir(options.out, 'the build output folder');
      const { checkFirmware } = await import('../../check/firmware-rules.ts');
      const diagnostics = await typeCheckFirmware();
      const violations = checkFirmware(join(REPO_ROOT, 'firmware'));
      if (diagnostics.length > 0 || violations.length > 0) {
        if (options.json) console.log(JSON.stringify({ ok: false, typeErrors: diagnostics, violations }, null, 2));
        else {
          for (const d of diagnostics) console.error(d);
          printViolations(violations, false);
        }
        process.exitCode = ExitCode.FAILED;
        return;
      }
      const bundles = await bundles_(options.out);
      const project = board === undefined ? [] : projectOutputs(board, options.out, options.secureVersion);
      for (const dir of new Set([...bundles, ...project].map((f) => join(f.path, '..')))) {
        try {
          mkdirSync(dir, { recursive: true });
        } catch (error) {
          throw fromNodeError(error, dir, 'a folder for the build output');
        }
      }
      // The manifest is renamed last: a folder with a manifest.json has every file it names.
      writeFilesAtomically([...bundles, ...project]);
      const outputs: Output[] = [...bundles, ...project].map((f) => ({ kind: f.kind, path: f.path, bytes: Buffer.byteLength(f.data) }));
      if (board === undefined) {
        if (options.json) console.log(JSON.stringify({ ok: true, outputs }, null, 2));
        else for (const o of outputs) console.log(`wrote ${relative(process.cwd(), o.path)} (${o.bytes} bytes, ${o.kind})`);
        return;
      }
      const manifest = resolve(options.out, 'manifest.json');
      const argv = mcconfigArgs(board, manifest);
      const mcconfig: McconfigReport = { command: shellCommand(['mcconfig', ...argv]), argv: ['mcconfig', ...argv], ran: false };
      const missing = missingForMcconfig();
      if (!options.json) for (const o of outputs) console.log(`wrote ${relative(process.cwd(), o.path)} (${o.bytes} bytes, ${o.kind})`);
      if (missing !== undefined) {
        mcconfig.reason = missing;
        if (options.json) console.log(JSON.stringify({ ok: true, outputs, board: boardSummary(board), project: resolve(options.out), mcconfig }, null, 2));
        else {
          console.log(`${missing}: to build the device image and flash it with the Moddable SDK and ESP-IDF, run`);
          console.log(`  ${mcconfig.command}`);
        }
        return;
      }
      if (!options.json) console.log(`running ${mcconfig.command}`);
      const status = await runMcconfig(argv, resolve(options.out));
      mcconfig.ran = true;
      mcconfig.status = status;
      if (status !== 0) throw new CliError(`exited with status ${status}: expected a successful Moddable build (its output is above)`, { file: 'mcconfig', code: 'failed' });
      if (options.json) console.log(JSON.stringify({ ok: true, outputs, board: boardSummary(board), project: resolve(options.out), mcconfig }, null, 2));
    });
}

/** The board, or a one-line error: an unknown id is bad usage (exit 2), a broken board.json a failure (exit 1). */
function boardFor(id: string): Board {
  try {
    return loadBoard(id);
  } catch (error) {
    if (!(error instanceof BoardError)) throw error;
    if (error.code === 'unknown-board') throw new UsageError(error.message, { field: '--board' });
    throw new CliError(error.message, { code: 'invalid-file' });
  }
}

function boardSummary(board: Board): Record<string, unknown> {
  return { id: board.id, name: board.name, chip: board.chip, moddablePlatform: board.moddablePlatform, flashSize: board.flashSize };
}

function projectOutputs(board: Board, outDir: string, secureVersion: number | undefined): (OutputFile & { kind: string; data: string })[] {
  return projectFiles(board, secureVersion === undefined ? {} : { secureVersion }).map((f) => ({ path: join(outDir, ...f.path.split('/')), data: f.data, what: `the ${f.kind} (${f.path})`, kind: f.kind }));
}

/** Why mcconfig cannot run here (MODDABLE unset, mcconfig not on PATH), or undefined when it can. */
export function missingForMcconfig(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.MODDABLE === undefined || env.MODDABLE === '') return 'MODDABLE is not set';
  return findOnPath('mcconfig', env) === undefined ? 'mcconfig is not on PATH' : undefined;
}

function findOnPath(name: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      if (!statSync(candidate).isFile()) continue;
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not there, or not executable
    }
  }
  return undefined;
}

/** mcconfig with its output on stderr (stdout stays the command's own), in the project folder. */
function runMcconfig(argv: readonly string[], cwd: string): Promise<number> {
  return new Promise((resolveStatus, reject) => {
    const child = spawn('mcconfig', argv, { cwd, stdio: ['inherit', 2, 2] });
    child.on('error', (error) => reject(new EnvironmentError(`cannot start mcconfig (${(error as NodeJS.ErrnoException).code ?? error.message}): expected the Moddable SDK's mcconfig on PATH`, { file: 'mcconfig' })));
    child.on('close', (status, signal) => resolveStatus(status ?? (signal !== null ? 128 : 1)));
  });
}

/** Diagnostics of `tsc -p firmware/tsconfig.json`, one formatted line each. */
export async function typeCheckFirmware(): Promise<string[]> {
  // TypeScript and esbuild load only when a build runs: --help and other commands start fast.
  const { default: ts } = await import('typescript');
  const configPath = join(REPO_ROOT, 'firmware/tsconfig.json');
  const config = ts.getParsedCommandLineOfConfigFile(configPath, {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} });
  if (!config) return [`cannot read ${configPath}`];
  const program = ts.createProgram({ rootNames: config.fileNames, options: config.options });
  return ts.getPreEmitDiagnostics(program).map((d) => ts.formatDiagnostic(d, { getCanonicalFileName: (f) => f, getCurrentDirectory: () => REPO_ROOT, getNewLine: () => '\n' }).trim());
}

/** Bundles the firmware and writes it under `outDir` (moddable/holdfast.js, xs/holdfast.js). */
export async function bundleFirmware(outDir: string): Promise<Output[]> {
  const files = await bundles_(outDir);
  for (const sub of ['moddable', 'xs']) {
    try {
      mkdirSync(join(outDir, sub), { recursive: true });
    } catch (error) {
      throw fromNodeError(error, join(outDir, sub), 'a folder for the bundles');
    }
  }
  writeFilesAtomically(files);
  return files.map((f) => ({ kind: f.kind, path: f.path, bytes: Buffer.byteLength(f.data) }));
}

/** The two bundles, not yet written. */
async function bundles_(outDir: string): Promise<(OutputFile & { kind: string; data: string })[]> {
  const { bundleForModdable, bundleForXs } = await import('../../xs/bundle.ts');
  // The Moddable bundle is the device entry (runtime + target adapters); the SDK's module names stay imports.
  const esm = await bundleForModdable(DEVICE_ENTRY, MODDABLE_EXTERNALS);
  const iife = await bundleForXs(FIRMWARE_ENTRY, { globalName: 'holdfast' });
  return [
    { path: join(outDir, ...BUNDLE_PATH.split('/')), data: esm.text, what: 'the Moddable bundle', kind: 'moddable esm module' },
    { path: join(outDir, 'xs/holdfast.js'), data: iife, what: 'the host XS bundle', kind: 'host XS script' },
  ];
}
