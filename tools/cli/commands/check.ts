import type { Command } from 'commander';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Violation } from '../../check/firmware-rules.ts';
import { REPO_ROOT } from '../package-info.ts';
import { ExitCode } from '../exit-codes.ts';
import { CliError, fromNodeError } from '../errors.ts';

export function registerCheck(program: Command): void {
  program
    .command('check')
    .description('check that firmware/ stays engine-neutral and layered (docs/design/firmware-rules.md)')
    .argument('[firmwareDir]', 'firmware tree to check', join(REPO_ROOT, 'firmware'))
    .option('--json', 'print the violations as a JSON array')
    .action(async (firmwareDir: string, options: { json?: boolean }) => {
      const stats = statSync(firmwareDir, { throwIfNoEntry: false });
      if (stats === undefined) throw new CliError('does not exist: expected a firmware source folder', { file: firmwareDir, code: 'not-found' });
      if (!stats.isDirectory()) throw new CliError('is not a directory: expected a firmware source folder', { file: firmwareDir, code: 'not-a-directory' });
      // The check loads the TypeScript compiler: only when it runs.
      const { checkFirmware, checkSource } = await import('../../check/firmware-rules.ts');
      let violations: Violation[];
      try {
        violations = checkFirmware(firmwareDir);
      } catch (error) {
        if (error instanceof RangeError && /call stack/i.test(error.message)) throw tooDeep(firmwareDir, checkSource);
        throw fromNodeError(error, firmwareDir, 'a readable firmware source folder');
      }
      printViolations(violations, options.json === true);
      process.exitCode = violations.length === 0 ? ExitCode.OK : ExitCode.FAILED;
    });
}

/** Which file overflowed the checker's recursion: checked one at a time to name it. */
function tooDeep(firmwareDir: string, checkSource: (file: string, text: string) => Violation[]): CliError {
  const files = (readdirSync(firmwareDir, { recursive: true }) as string[]).filter((f) => /\.[cm]?[jt]s$/.test(f)).sort();
  for (const file of files) {
    try {
      checkSource(file.split('\\').join('/'), readFileSync(join(firmwareDir, file), 'utf8'));
    } catch (error) {
      if (error instanceof RangeError && /call stack/i.test(error.message)) {
        return new CliError('nested too deeply for the rule checker (its syntax tree overflowed the stack): expected source nested at most a few thousand levels deep', { file: join(firmwareDir, file), code: 'invalid-file' });
      }
    }
  }
  return new CliError('a source file is nested too deeply for the rule checker', { file: firmwareDir, code: 'invalid-file' });
}

export function printViolations(violations: readonly Violation[], json: boolean): void {
  if (json) {
    console.log(JSON.stringify(violations, null, 2));
    return;
  }
  for (const v of violations) console.log(`firmware/${v.file}:${v.line}:${v.column} ${v.rule} ${v.message}`);
  if (violations.length === 0) console.log('firmware rules: no violations');
}
