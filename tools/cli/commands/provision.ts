/**
 * `holdfast provision`: per-device identity for one device or a production
 * batch: provisioning images for the board's hf_prov partition (0600, in a
 * 0700 folder), registered in the fleet inventory, the factory images of
 * the runtime's stores (the same for every device of the run), and a
 * manifest without secrets (tools/provision/provision.ts, docs/spec/provisioning.md).
 * Progress on stderr when it is a terminal; secrets are never printed.
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { provision, MAX_COUNT, type FlashEncryption, type ProvisionManifest } from '../../provision/provision.ts';
import { SUITE_NAMES, type SuiteName } from '../../ingest/inventory.ts';
import { parseInteger } from '../../keys/cli-options.ts';
import { readInput, readTextInput } from '../files.ts';
import { CliError, UsageError } from '../errors.ts';
import { BoardError, loadBoard } from '../../boards/board.ts';
import { ExitCode } from '../exit-codes.ts';
import { DB_HELP, onStore } from './fleet.ts';
import { MAX_ROOT_DOCUMENT_LENGTH } from '../../../firmware/security/provisioning.ts';
import { trustProvisionedRoot } from '../../../firmware/update/root.ts';
import { hostCrypto } from '../../keys/signer.ts';

interface ProvisionFlags {
  board: string;
  out: string;
  inventory: string;
  db?: string;
  count: number;
  commandKey: string;
  commandKeyId: number;
  consoleKey?: string;
  revocationKey?: string;
  root?: string;
  flashEncryption: FlashEncryption;
  broker?: { host: string; port: number };
  keyId: number;
  suite: SuiteName;
  cohort?: string;
  gateway?: string;
  json?: boolean;
}

/** `host:port`, host of A-Z a-z 0-9 . - (at most 253), port 1..65535. */
export function parseBroker(value: string): { host: string; port: number } {
  const m = /^([A-Za-z0-9.-]{1,253}):(\d{1,5})$/.exec(value);
  const port = m === null ? NaN : Number(m[2]);
  if (m === null || port < 1 || port > 65535) throw new InvalidArgumentError('expected host:port (a host name or IPv4 address, a port 1..65535)');
  return { host: m[1], port };
}

export function parseSuite(value: string): SuiteName {
  if (!Object.keys(SUITE_NAMES).includes(value)) throw new InvalidArgumentError('expected hmac-sha256, chacha20-poly1305 or aes-256-gcm');
  return value as SuiteName;
}

export function parseFlashEncryption(value: string): FlashEncryption {
  if (value !== 'off' && value !== 'on') throw new InvalidArgumentError('expected off or on');
  return value;
}

export function parseLabel(value: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/.test(value)) throw new InvalidArgumentError('expected 1..64 of A-Z a-z 0-9 . _ : - (starting with a letter or digit)');
  return value;
}

/** An Ed25519 public key file: 64 hex digits (and optional whitespace). */
export function readPublicKeyFile(path: string, what: string): Uint8Array {
  const text = readTextInput(path, what, 256).trim();
  if (!/^[0-9a-fA-F]{64}$/.test(text)) throw new CliError(`expected ${what}: 64 hex digits (an Ed25519 public key)`, { file: path, code: 'invalid-file' });
  return new Uint8Array(Buffer.from(text, 'hex'));
}

export function registerProvision(program: Command): void {
  program
    .command('provision')
    .description('make per-device identities (device id, secret, Ed25519 key pair) as provisioning images for the board\'s hf_prov partition, the factory images of the runtime\'s stores, register the devices in the fleet inventory and write a manifest (docs/spec/provisioning.md)')
    .requiredOption('--board <id>', 'board id (boards/<id>): gives the hf_prov partition\'s offset and size')
    .requiredOption('--out <dir>', 'folder for the images and manifest.json (created with mode 0700; an existing one must be 0700 and hold no manifest)')
    .requiredOption('--command-key <file>', 'the fleet command key\'s Ed25519 public key, 64 hex digits')
    .option('--inventory <file>', 'fleet inventory (created if missing, mode 0600)', 'fleet.json')
    .option('--db <url>', DB_HELP)
    .option('--count <n>', `devices to make, 1..${MAX_COUNT}`, parseInteger(1, MAX_COUNT), 1)
    .option('--command-key-id <n>', 'key id of the command key, 0..4294967295', parseInteger(0, 0xffff_ffff), 1)
    .option('--console-key <file>', 'the console unlock key\'s Ed25519 public key, 64 hex digits (without it the console stays locked)')
    .option('--revocation-key <file>', 'the fleet revocation-list key\'s Ed25519 public key, 64 hex digits (without it the device accepts no revocation list)')
    .option('--root <file>', 'a signed root document (root.1.bin of holdfast keys init): in the record and in the hf_trust factory image (without it the trust store is left erased and the device refuses every update)')
    .option('--flash-encryption <mode>', 'off or on: whether the devices run with ESP-IDF flash encryption, which sets the program unit the store images are formatted for (1 or 16 bytes; docs/spec/provisioning.md, "Factory data images")', parseFlashEncryption, 'off')
    .option('--broker <host:port>', 'MQTT broker the devices connect to', parseBroker)
    .option('--key-id <n>', 'envelope key id at manufacture, 0..4294967295', parseInteger(0, 0xffff_ffff), 1)
    .option('--suite <suite>', 'telemetry suite the ingest expects: hmac-sha256, chacha20-poly1305 or aes-256-gcm', parseSuite, 'hmac-sha256')
    .option('--cohort <name>', 'cohort recorded in the inventory (rollouts)', parseLabel)
    .option('--gateway <name>', 'gateway recorded in the inventory', parseLabel)
    .option('--json', 'print the manifest as JSON')
    .action(async (flags: ProvisionFlags, command: Command) => {
      try {
        loadBoard(flags.board);
      } catch (error) {
        if (error instanceof BoardError && error.code === 'unknown-board') throw new UsageError(error.message, { field: '--board' });
        throw error;
      }
      const commandKey = readPublicKeyFile(flags.commandKey, 'the command key');
      const consoleKey = flags.consoleKey === undefined ? undefined : readPublicKeyFile(flags.consoleKey, 'the console key');
      const revocationKey = flags.revocationKey === undefined ? undefined : readPublicKeyFile(flags.revocationKey, 'the revocation key');
      const rootDocument = flags.root === undefined ? undefined : readInput(flags.root, 'a signed root document', MAX_ROOT_DOCUMENT_LENGTH);
      if (rootDocument !== undefined) {
        // The device's own check (docs/spec/root.md): a root it would refuse is not provisioned.
        const verdict = trustProvisionedRoot(hostCrypto(), rootDocument);
        if (!verdict.ok) throw new CliError(`${verdict.reason}: ${verdict.message}: expected a signed root document a device accepts (root.1.bin of holdfast keys init)`, { file: flags.root, code: 'invalid-file' });
      }
      const tty = process.stderr.isTTY === true && flags.json !== true;
      let shown = -1;
      const manifest = await onStore(flags, command, (store) =>
        provision({
        boardId: flags.board,
        outDir: flags.out,
        inventoryPath: flags.inventory,
        count: flags.count,
        keyId: flags.keyId,
        suite: flags.suite,
        commandKey: { keyId: flags.commandKeyId, publicKey: commandKey },
        ...(consoleKey !== undefined ? { consoleKey } : {}),
        ...(revocationKey !== undefined ? { revocationKey } : {}),
        ...(rootDocument !== undefined ? { rootDocument } : {}),
        flashEncryption: flags.flashEncryption,
        ...(flags.broker !== undefined ? { broker: flags.broker } : {}),
        ...(flags.cohort !== undefined ? { cohort: flags.cohort } : {}),
        ...(flags.gateway !== undefined ? { gateway: flags.gateway } : {}),
        onProgress: (done, total) => {
          const percent = Math.floor((done * 100) / total);
          if (!tty || (percent === shown && done !== total)) return;
          shown = percent;
          process.stderr.write(`\rprovisioned ${done}/${total} (${percent}%)${done === total ? '\n' : ''}`);
        },
      }, store),
      );
      if (flags.json) console.log(JSON.stringify({ ok: true, ...manifest }, null, 2));
      else printSummary(manifest, flags.out);
      process.exitCode = ExitCode.OK;
    });
}

function printSummary(manifest: ProvisionManifest, out: string): void {
  const n = manifest.devices.length;
  console.log(`provisioned ${n} device${n === 1 ? '' : 's'} for ${manifest.board}: images in ${out} (mode 0600), flash each at ${manifest.partition.label} 0x${manifest.partition.offset.toString(16)} (0x${manifest.partition.size.toString(16)} bytes)`);
  for (const d of manifest.devices.slice(0, 10)) console.log(`  ${d.deviceId}  key ${d.keyId}  ${d.file}`);
  if (n > 10) console.log(`  … and ${n - 10} more (${out}/manifest.json)`);
  const f = manifest.factory;
  console.log(`factory images of the ${f.stores.length} stores (${f.stores.map((st) => st.label).join(', ')}) in ${out}, for ${f.writeUnit}-byte program units (flash encryption ${f.flashEncryption}); ${f.trustRoot === null ? 'hf_trust left erased (no --root): the devices refuse every update' : `hf_trust holds root ${f.trustRoot}`}`);
  console.log(`registered in ${manifest.inventory}; the manifest ${out}/manifest.json lists them (no secrets); flash a device with holdfast flash --factory ${out} --device <id>`);
}
