/**
 * Command line for the firmware rules (tools/check/firmware-rules.ts).
 *
 *   node --import tsx tools/check/check-firmware.ts [firmwareDir] [--json]
 *
 * Prints one line per violation, `file:line:col rule message`, or with
 * `--json` a JSON array of violations. Exit status: 0 clean, 1 violations,
 * 2 usage error or unreadable directory.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkFirmware } from './firmware-rules.ts';

const DEFAULT_FIRMWARE_DIR = fileURLToPath(new URL('../../firmware/', import.meta.url));

function main(argv: readonly string[]): number {
  const json = argv.includes('--json');
  const positional = argv.filter((arg) => arg !== '--json');
  if (positional.length > 1 || positional.some((arg) => arg.startsWith('-'))) {
    process.stderr.write('usage: check-firmware [firmwareDir] [--json]\n');
    return 2;
  }
  const firmwareDir = path.resolve(positional[0] ?? DEFAULT_FIRMWARE_DIR);
  if (!existsSync(firmwareDir) || !statSync(firmwareDir).isDirectory()) {
    process.stderr.write(`check-firmware: not a directory: ${firmwareDir}\n`);
    return 2;
  }

  const violations = checkFirmware(firmwareDir);
  if (json) {
    process.stdout.write(`${JSON.stringify(violations, null, 2)}\n`);
  } else {
    for (const v of violations) process.stdout.write(`${v.file}:${v.line}:${v.column} ${v.rule} ${v.message}\n`);
  }
  return violations.length > 0 ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
