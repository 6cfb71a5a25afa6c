/**
 * `holdfast fleet rotate`: the fleet authority's side of a device key
 * rotation (tools/fleet/rotate.ts, docs/spec/key-rotation.md). Three steps,
 * one command:
 *
 *   fleet rotate <device> --sign-with <seed> --counter <n>      the signed rotate-key command
 *   fleet rotate --request <file|-> --sign-with <seed> --counter <n>
 *                                                               verify the device's request, record
 *                                                               the new key, the signed confirmation
 *   fleet rotate <device> --key-id <k> --since <counter>        the new key's first counter: the old
 *                                                               key's untilCounter for the ingest
 *
 * `--sign-with` is the fleet command key's seed (the rotation authority);
 * `--counter` the command key's next counter value. The command goes to
 * `--out` (binary, to publish on holdfast/<device>/cmd).
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { readFileSync } from 'node:fs';
import { confirmRotation, recordKeyBound, rotateKeyCommand } from '../../fleet/rotate.ts';
import { readSeedFile } from '../../fleet/revoke.ts';
import { ROTATION_REQUEST_LENGTH } from '../../../firmware/security/key-rotation.ts';
import { parseInteger } from '../../keys/cli-options.ts';
import { checkOutputPath, readInput, writeFilesAtomically } from '../files.ts';
import { UsageError } from '../errors.ts';
import { ExitCode } from '../exit-codes.ts';
import { DB_HELP, onStore } from './fleet.ts';

function parseDeviceId(value: string): string {
  if (!/^[0-9a-f]{16}$/.test(value)) throw new InvalidArgumentError('expected a device id: 16 lowercase hex digits');
  return value;
}

interface RotateFlags {
  signWith?: string;
  counter?: number;
  request?: string;
  keyId?: number;
  since?: number;
  out: string;
  inventory: string;
  db?: string;
  json?: boolean;
}

/** The request bytes: a file, or stdin for '-' (the ingest's record payload after its type byte, binary). */
function readRequest(path: string): Uint8Array {
  if (path === '-') {
    const bytes = new Uint8Array(readFileSync(0));
    if (bytes.length !== ROTATION_REQUEST_LENGTH) throw new UsageError(`${bytes.length} bytes on stdin: expected a rotation request of ${ROTATION_REQUEST_LENGTH}`, { field: '--request' });
    return bytes;
  }
  return readInput(path, 'the rotation request', ROTATION_REQUEST_LENGTH);
}

export function registerFleetRotate(fleet: Command): void {
  fleet
    .command('rotate')
    .description("rotate a device's envelope key: the signed rotate-key command, then (--request) verify the device's request, record the new key and sign the confirmation, then (--since) bound the old key (docs/spec/key-rotation.md)")
    .argument('[device]', 'device id, 16 hex digits (not with --request)', parseDeviceId)
    .option('--request <file>', "the device's rotation request (192 bytes; - for stdin): verify, record, confirm")
    .option('--sign-with <file>', 'the fleet command key (the rotation authority): an Ed25519 seed, 64 hex digits (mode 0600)')
    .option('--counter <n>', "the command key's next counter value, 1..2^53-1", parseInteger(1, Number.MAX_SAFE_INTEGER))
    .option('--key-id <k>', 'with --since: the new key id', parseInteger(1, 0xffff_ffff))
    .option('--since <counter>', "with <device> and --key-id: the new key's first counter (its first record, or its key-rotated audit entry): the old key's untilCounter", parseInteger(1, Number.MAX_SAFE_INTEGER))
    .option('--out <file>', 'where to write the signed command', 'rotate-command.bin')
    .option('--inventory <file>', 'fleet inventory written by holdfast provision', 'fleet.json')
    .option('--db <url>', DB_HELP)
    .option('--json', 'print {ok, step, deviceId, ...}')
    .action(async (device: string | undefined, flags: RotateFlags, command: Command) => {
      if (flags.since !== undefined || flags.keyId !== undefined) {
        if (device === undefined || flags.since === undefined || flags.keyId === undefined) throw new UsageError('expected <device> with both --key-id and --since', { field: '--since' });
        if (flags.request !== undefined) throw new UsageError('expected --since or --request, not both', { field: '--since' });
        const since = flags.since;
        const keyId = flags.keyId;
        const bound = await onStore(flags, command, (store) => recordKeyBound(store, device, keyId, since));
        if (flags.json) console.log(JSON.stringify({ ok: true, step: 'bound', deviceId: device, keyId, ...bound }, null, 2));
        else console.log(`device ${device}: key ${bound.retiredKeyId} bounded at counter ${bound.untilCounter} (records of it at or above are refused): apply it with holdfast fleet export --format ingest`);
        process.exitCode = ExitCode.OK;
        return;
      }
      if (flags.signWith === undefined) throw new UsageError('expected the command key seed', { field: '--sign-with' });
      if (flags.counter === undefined) throw new UsageError("expected the command key's next counter value", { field: '--counter' });
      if ((device === undefined) === (flags.request === undefined)) throw new UsageError('expected <device> (start a rotation) or --request (confirm one)', { field: device === undefined ? '<device>' : '--request' });
      checkOutputPath(flags.out, 'the signed command');
      const seed = readSeedFile(flags.signWith);
      const authority = { seed, counter: flags.counter };
      try {
        if (flags.request !== undefined) {
          const request = readRequest(flags.request);
          const result = await onStore(flags, command, (store) => confirmRotation(store, request, authority));
          writeFilesAtomically([{ path: flags.out, data: result.command, mode: 0o644, what: 'the signed command' }]);
          const { command: _command, ...shown } = result;
          if (flags.json) console.log(JSON.stringify({ ok: true, step: 'confirm', ...shown, out: flags.out }, null, 2));
          else console.log(`device ${result.deviceId}: key ${result.oldKeyId} -> ${result.newKeyId} ${result.inventory === 'recorded' ? 'recorded' : 'already recorded'}; wrote ${flags.out}: confirm-key-rotation, publish it on holdfast/${result.deviceId}/cmd, then holdfast fleet export --format ingest`);
        } else {
          const target = device as string;
          const result = await onStore(flags, command, (store) => rotateKeyCommand(store, target, authority));
          writeFilesAtomically([{ path: flags.out, data: result.command, mode: 0o644, what: 'the signed command' }]);
          if (flags.json) console.log(JSON.stringify({ ok: true, step: 'start', deviceId: result.deviceId, keyId: result.keyId, out: flags.out }, null, 2));
          else console.log(`device ${result.deviceId}: wrote ${flags.out}: rotate-key to key ${result.keyId}, publish it on holdfast/${result.deviceId}/cmd; the device answers with a rotation request in its telemetry`);
        }
      } finally {
        seed.fill(0);
      }
      process.exitCode = ExitCode.OK;
    });
}
