/**
 * `holdfast build`: type-check firmware/ (without Node's types), enforce the
 * firmware rules, and bundle the runtime twice: an ES module for a Moddable
 * SDK build (mcrun compiles it into the device image) and an IIFE script for
 * the host XS engine. Both use target es2021 and strict mode (docs/design/xs-harness.md).
 */
import type { Command } from 'commander';
import { mkdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { REPO_ROOT } from '../package-info.ts';
import { ExitCode } from '../exit-codes.ts';
import { printViolations } from './check.ts';
import { checkOutputDir, writeFilesAtomically } from '../files.ts';
import { fromNodeError } from '../errors.ts';

export const FIRMWARE_ENTRY = join(REPO_ROOT, 'firmware/runtime/main.ts');

interface BuildOptions {
  out: string;
  json?: boolean;
}

export function registerBuild(program: Command): void {
  program
    .command('build')
    .description('type-check firmware/, check the firmware rules, and bundle it for Moddable (ESM) and for host XS (IIFE)')
    .option('--out <dir>', 'output directory (relative to the current directory)', 'dist')
    .option('--json', 'machine-readable summary')
    .action(async (options: BuildOptions) => {
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
      const outputs = await bundleFirmware(options.out);
      if (options.json) console.log(JSON.stringify({ ok: true, outputs }, null, 2));
      else for (const o of outputs) console.log(`wrote ${relative(process.cwd(), o.path)} (${o.bytes} bytes, ${o.kind})`);
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

export async function bundleFirmware(outDir: string): Promise<{ kind: string; path: string; bytes: number }[]> {
  const esbuild = await import('esbuild');
  const { bundleForXs } = await import('../../xs/bundle.ts');
  for (const sub of ['moddable', 'xs']) {
    try {
      mkdirSync(join(outDir, sub), { recursive: true });
    } catch (error) {
      throw fromNodeError(error, join(outDir, sub), 'a folder for the bundles');
    }
  }
  const esm = await esbuild.build({
    entryPoints: [FIRMWARE_ENTRY],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'neutral',
    target: 'es2021',
    mainFields: ['module', 'main'],
    conditions: ['module', 'import'],
    logLevel: 'silent',
  });
  const esmPath = join(outDir, 'moddable/holdfast.js');
  const iife = await bundleForXs(FIRMWARE_ENTRY, { globalName: 'holdfast' });
  const iifePath = join(outDir, 'xs/holdfast.js');
  writeFilesAtomically([
    { path: esmPath, data: esm.outputFiles[0].text, what: 'the Moddable bundle' },
    { path: iifePath, data: iife, what: 'the host XS bundle' },
  ]);
  return [
    { kind: 'moddable esm module', path: esmPath, bytes: esm.outputFiles[0].contents.length },
    { kind: 'host XS script', path: iifePath, bytes: Buffer.byteLength(iife) },
  ];
}
