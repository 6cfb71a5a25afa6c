import type { Command } from 'commander';
import { join } from 'node:path';
import type { Violation } from '../../check/firmware-rules.ts';
import { REPO_ROOT } from '../package-info.ts';
import { ExitCode } from '../exit-codes.ts';

export function registerCheck(program: Command): void {
  program
    .command('check')
    .description('check that firmware/ stays engine-neutral and layered (docs/design/firmware-rules.md)')
    .argument('[firmwareDir]', 'firmware tree to check', join(REPO_ROOT, 'firmware'))
    .option('--json', 'print the violations as a JSON array')
    .action(async (firmwareDir: string, options: { json?: boolean }) => {
      // The check loads the TypeScript compiler: only when it runs.
      const { checkFirmware } = await import('../../check/firmware-rules.ts');
      const violations = checkFirmware(firmwareDir);
      printViolations(violations, options.json === true);
      process.exitCode = violations.length === 0 ? ExitCode.OK : ExitCode.FAILED;
    });
}

export function printViolations(violations: readonly Violation[], json: boolean): void {
  if (json) {
    console.log(JSON.stringify(violations, null, 2));
    return;
  }
  for (const v of violations) console.log(`firmware/${v.file}:${v.line}:${v.column} ${v.rule} ${v.message}`);
  if (violations.length === 0) console.log('firmware rules: no violations');
}
