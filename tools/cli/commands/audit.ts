/**
 * `holdfast audit verify <input> --key <hex|file>`: check an audit log
 * (docs/spec/audit-log.md, "Verification"), from a flash image of the audit
 * partition (.hfimg) or an export (HFAUDEX1): format, CRC, tags under the
 * audit key, the hash chain and increasing counters; names the first break.
 * Exit 0 when every entry checks; 1 when the log is broken (the finding on
 * stdout, as `verify` does: a broken log is a result, not an error) or the
 * input cannot be read; 2 for bad usage.
 */
import type { Command } from 'commander';
import { CliError, UsageError } from '../errors.ts';
import { readInput } from '../files.ts';
import { ExitCode } from '../exit-codes.ts';
import { MAX_FLASH_IMAGE_BYTES } from './inspect.ts';

/** Key files are tiny: 64 raw bytes or 128 hex digits plus whitespace. */
const MAX_KEY_FILE_BYTES = 256;
const MIN_KEY_BYTES = 16;
const MAX_KEY_BYTES = 64;

interface AuditVerifyFlags {
  key: string;
  json?: boolean;
}

export function registerAudit(program: Command): void {
  const audit = program.command('audit').description("check the device's audit log (docs/spec/audit-log.md)");
  audit
    .command('verify')
    .description('check an audit log (flash image of the audit partition, or an export): format, tags, hash chain, counters; name the first break')
    .argument('<input>', 'flash image (.hfimg) of the audit partition, or an audit export (HFAUDEX1)')
    .requiredOption('--key <key>', 'audit key: 32..128 hex digits, or a file holding them or the raw key (16..64 bytes)')
    .option('--json', 'print {ok, source, entries, firstCounter, lastCounter, start, firstBreak, problems, notes, events}')
    .action(async (input: string, flags: AuditVerifyFlags) => {
      const key = readKey(flags.key);
      const bytes = readInput(input, 'a flash image (.hfimg) or an audit export', MAX_FLASH_IMAGE_BYTES);
      const { verifyExport, verifyFlash, describeFinding } = await import('../../audit/verify.ts');
      const { isExport } = await import('../../audit/export.ts');
      const { createNobleCrypto } = await import('../../../firmware/security/noble-crypto.ts');
      const crypto = createNobleCrypto();
      let result;
      if (isExport(bytes)) result = verifyExport(crypto, key, bytes);
      else {
        const { decodeImage } = await import('../../sim/flash/image-codec.ts');
        let flash;
        try {
          flash = decodeImage(bytes);
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          throw new CliError(`${message.replace(/^flash image header field \w+: /, '')}: expected a holdfast flash image (.hfimg) or an audit export (HFAUDEX1)`, { file: input, field: /header field (\w+)/.exec(message)?.[1] ?? 'header', code: 'invalid-file' });
        }
        result = verifyFlash(crypto, key, flash);
      }
      key.fill(0);
      if (flags.json) console.log(JSON.stringify({ file: input, ...result }, null, 2));
      else {
        const range = result.firstCounter === null ? 'no entries' : `${result.entries} entries, counters ${result.firstCounter}..${result.lastCounter}, chain from ${result.start === 'genesis' ? 'genesis' : `dropped entries (prevHash ${result.start?.slice(0, 16)}…)`}`;
        console.log(result.ok ? `ok: ${input}: ${range}` : `broken: ${input}: ${describeFinding(result.firstBreak as NonNullable<typeof result.firstBreak>)}`);
        if (!result.ok) {
          console.log(`  ${range}; ${result.problems.length} problem(s)`);
          for (const p of result.problems.slice(1, 10)) console.log(`  then ${describeFinding(p)}`);
        }
        for (const note of result.notes) console.log(`  note: ${note}`);
      }
      process.exitCode = result.ok ? ExitCode.OK : ExitCode.FAILED;
    });
}

/** The key from hex digits on the command line, or from a file (hex text or raw bytes). */
function readKey(value: string): Uint8Array {
  const hexKey = parseHex(value.trim());
  if (hexKey !== undefined) return hexKey;
  if (/^[0-9a-fA-F]+$/.test(value)) throw new UsageError(`expected ${MIN_KEY_BYTES * 2}..${MAX_KEY_BYTES * 2} hex digits (an even number), found ${value.length}`, { field: '--key' });
  const bytes = readInput(value, `an audit key file (${MIN_KEY_BYTES}..${MAX_KEY_BYTES} raw bytes, or hex digits)`, MAX_KEY_FILE_BYTES);
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes).trim();
  const fromText = parseHex(text);
  if (fromText !== undefined) return fromText;
  if (bytes.length >= MIN_KEY_BYTES && bytes.length <= MAX_KEY_BYTES) return bytes.slice();
  throw new CliError(`holds ${bytes.length} bytes that are not hex digits: expected an audit key (${MIN_KEY_BYTES}..${MAX_KEY_BYTES} raw bytes, or ${MIN_KEY_BYTES * 2}..${MAX_KEY_BYTES * 2} hex digits)`, { file: value, field: '--key', code: 'invalid-file' });
}

function parseHex(text: string): Uint8Array | undefined {
  if (!/^[0-9a-fA-F]+$/.test(text) || text.length % 2 !== 0 || text.length < MIN_KEY_BYTES * 2 || text.length > MAX_KEY_BYTES * 2) return undefined;
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}
