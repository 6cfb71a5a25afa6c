/**
 * `holdfast fleet`: the fleet inventory (tools/fleet/inventory.ts,
 * docs/design/fleet-identity.md): list and show devices (never their
 * secrets), export the ingest's inventory, generate the broker's password
 * and ACL files, change a device's state (quarantine, release, revoke),
 * re-enroll a repaired device, and import a file inventory into PostgreSQL.
 * Every command works on the file (`--inventory`) or on PostgreSQL (`--db`,
 * tools/fleet/store.ts).
 */
import type { Command } from 'commander';
import { fileFleetStore, openFleetStore, withFleetStore, type FleetStore } from '../../fleet/store.ts';
import type { PostgresFleetStore } from '../../fleet/store-postgres.ts';
import { join } from 'node:path';
import { DEVICE_STATES, currentKey, findDevice, nowIso, publicView, toIngestInventory, type DeviceState, type FleetDevice } from '../../fleet/inventory.ts';
import { brokerConfig, defaultServices, mosquittoConfFragment, MOSQUITTO_DEFAULT_ITERATIONS, type QuarantinePolicy } from '../../fleet/broker.ts';
import { parseInventory } from '../../ingest/inventory.ts';
import { secretFolder } from '../../provision/provision.ts';
import { parseRevokeTarget, readSeedFile, revoke, targetUsage, type RevokeTarget } from '../../fleet/revoke.ts';
import { reenroll } from '../../fleet/reenroll.ts';
import { registerFleetRotate } from './fleet-rotate.ts';
import { parseBroker, readPublicKeyFile } from './provision.ts';
import { MAX_ROOT_DOCUMENT_LENGTH } from '../../../firmware/security/provisioning.ts';
import { parseInteger, collect } from '../../keys/cli-options.ts';
import { checkOutputPath, readInput, writeFilesAtomically } from '../files.ts';
import { CliError, UsageError } from '../errors.ts';
import { ExitCode } from '../exit-codes.ts';
import { InvalidArgumentError } from 'commander';

const INVENTORY_HELP = 'fleet inventory written by holdfast provision';
const DEFAULT_INVENTORY = 'fleet.json';
export const DB_HELP = 'the inventory in a PostgreSQL database instead of a file: postgres://user[:password]@host[:port]/database (not with --inventory)';

/** The inventory the flags name (`--db` or `--inventory`), open for `run`, closed afterwards. */
export function onStore<T>(flags: { inventory: string; db?: string }, command: Command, run: (store: FleetStore) => Promise<T>): Promise<T> {
  const source = command.getOptionValueSource('inventory');
  return withFleetStore(flags, source !== undefined && source !== 'default', run);
}

function oneOf<T extends string>(values: readonly T[]): (value: string) => T {
  return (value: string) => {
    if (!(values as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected ${values.join(', ')}`);
    return value as T;
  };
}

function parseDeviceId(value: string): string {
  if (!/^[0-9a-f]{16}$/.test(value)) throw new InvalidArgumentError('expected a device id: 16 lowercase hex digits');
  return value;
}

/** A label, or '-' (clear it: commander cannot carry a null from a parser). */
function parseLabelOrClear(value: string): string {
  if (value === '-') return value;
  if (!/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/.test(value)) throw new InvalidArgumentError('expected 1..64 of A-Z a-z 0-9 . _ : - (starting with a letter or digit), or - to clear');
  return value;
}

function parseServiceName(value: string, previous: string[]): string[] {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(value) || /^[0-9a-f]{16}$/.test(value)) throw new InvalidArgumentError('expected a service account name: 1..64 of A-Z a-z 0-9 . _ - (not a 16-hex-digit device id)');
  return collect(value, previous);
}

function row(d: FleetDevice): Record<string, unknown> {
  const key = currentKey(d);
  return { deviceId: d.deviceId, board: d.board, state: d.state, keyId: key?.keyId ?? null, firmware: d.firmware.version, securityFloor: d.firmware.securityFloor, cohort: d.cohort, gateway: d.gateway, provisionedAt: d.provisionedAt };
}

export function registerFleet(program: Command): void {
  const fleet = program.command('fleet').description('the fleet inventory: list, show, export for the ingest, broker credentials, quarantine and revoke (docs/design/fleet-identity.md)');
  registerFleetRotate(fleet);

  fleet
    .command('ls')
    .description('list the devices of the inventory (no secrets)')
    .option('--inventory <file>', INVENTORY_HELP, DEFAULT_INVENTORY)
    .option('--db <url>', DB_HELP)
    .option('--state <state>', 'only devices in this state: active, quarantined or revoked', oneOf(DEVICE_STATES))
    .option('--json', 'print the devices as JSON')
    .action(async (flags: { inventory: string; db?: string; state?: DeviceState; json?: boolean }, command: Command) => {
      const devices = (await onStore(flags, command, (store) => store.read())).devices.filter((d) => flags.state === undefined || d.state === flags.state);
      if (flags.json) console.log(JSON.stringify({ ok: true, count: devices.length, devices: devices.map(row) }, null, 2));
      else {
        const widths = [16, 11, 10, 10, 10, 16, 16];
        const line = (cells: string[]): string => cells.map((c, i) => (i < widths.length ? c.padEnd(widths[i]) : c)).join('  ').trimEnd();
        console.log(line(['device', 'state', 'key', 'firmware', 'floor', 'cohort', 'gateway', 'board']));
        for (const d of devices) {
          const r = row(d);
          console.log(line([d.deviceId, d.state, String(r.keyId ?? '-'), String(r.firmware ?? '-'), String(r.securityFloor ?? '-'), d.cohort ?? '-', d.gateway ?? '-', d.board]));
        }
        console.log(`${devices.length} device${devices.length === 1 ? '' : 's'}`);
      }
      process.exitCode = ExitCode.OK;
    });

  fleet
    .command('show')
    .description('one device: keys (current, retired, revoked, with the counter at each change), firmware, cohort, gateway, state and history (no secret)')
    .argument('<device>', 'device id, 16 hex digits', parseDeviceId)
    .option('--inventory <file>', INVENTORY_HELP, DEFAULT_INVENTORY)
    .option('--db <url>', DB_HELP)
    .option('--json', 'print the device as JSON')
    .action(async (device: string, flags: { inventory: string; db?: string; json?: boolean }, command: Command) => {
      const d = findDevice(await onStore(flags, command, (store) => store.read()), device);
      const view = publicView(d);
      if (flags.json) console.log(JSON.stringify({ ok: true, device: view }, null, 2));
      else {
        console.log(`device ${d.deviceId}: ${d.state}, board ${d.board}, suite ${d.suite}, provisioned ${d.provisionedAt}`);
        console.log(`firmware ${d.firmware.version ?? '-'}, security floor ${d.firmware.securityFloor ?? '-'}, cohort ${d.cohort ?? '-'}, gateway ${d.gateway ?? '-'}`);
        for (const k of d.keys) console.log(`key ${k.keyId} ${k.status}: counters ${k.sinceCounter}..${k.untilCounter ?? ''} public ${k.publicKey}`);
        for (const e of d.history) console.log(`${e.at} ${e.event}${e.detail !== undefined ? `: ${e.detail}` : ''}`);
      }
      process.exitCode = ExitCode.OK;
    });

  fleet
    .command('export')
    .description('write the inventory in another format: ingest (the ingest\'s --devices file, with secrets, mode 0600) or public (no secrets)')
    .requiredOption('--format <format>', 'ingest (the ingest\'s --devices file, with secrets) or public (no secrets)', oneOf(['ingest', 'public'] as const))
    .requiredOption('--out <file>', 'file to write')
    .option('--inventory <file>', INVENTORY_HELP, DEFAULT_INVENTORY)
    .option('--db <url>', DB_HELP)
    .option('--json', 'print {ok, format, file, entries}')
    .action(async (flags: { format: 'ingest' | 'public'; out: string; inventory: string; db?: string; json?: boolean }, command: Command) => {
      checkOutputPath(flags.out, 'the export');
      const data = await onStore(flags, command, (store) => store.read());
      let text: string;
      let entries: number;
      if (flags.format === 'ingest') {
        const inventory = toIngestInventory(data);
        text = `${JSON.stringify(inventory, null, 1)}\n`;
        // The ingest's own parser must take what we write: a check, not a promise.
        parseInventory(text);
        entries = inventory.devices.length;
      } else {
        text = `${JSON.stringify({ format: data.format, devices: data.devices.map(publicView) }, null, 1)}\n`;
        entries = data.devices.length;
      }
      writeFilesAtomically([{ path: flags.out, data: text, mode: flags.format === 'ingest' ? 0o600 : 0o644, what: 'the export' }]);
      if (flags.json) console.log(JSON.stringify({ ok: true, format: flags.format, file: flags.out, entries }, null, 2));
      else console.log(`wrote ${flags.out}: ${entries} ${flags.format === 'ingest' ? '(device, key) entries for holdfast ingest --devices (mode 0600: it holds secrets)' : 'devices, no secrets'}`);
      process.exitCode = ExitCode.OK;
    });

  fleet
    .command('broker-config')
    .description('write mosquitto\'s password file (PBKDF2-SHA512 $7$ hashes of each device\'s derived password), ACL file and a mosquitto.conf fragment from the inventory (docs/design/fleet-identity.md, "Broker")')
    .requiredOption('--out <dir>', 'folder for passwords, acl, mosquitto.conf and services.json (created 0700)')
    .option('--inventory <file>', INVENTORY_HELP, DEFAULT_INVENTORY)
    .option('--db <url>', DB_HELP)
    .option('--quarantine <policy>', 'quarantined devices: restrict (telemetry, receipts and updates; no commands) or deny (no account)', oneOf(['restrict', 'deny'] as const), 'restrict')
    .option('--service <name>', 'a back-end account (ingest, command and update sender) with a random password written to services.json (repeatable)', parseServiceName, [])
    .option('--iterations <n>', 'PBKDF2 iterations per hash, 1..1000000', parseInteger(1, 1_000_000), MOSQUITTO_DEFAULT_ITERATIONS)
    .option('--json', 'print {ok, dir, files, counts}')
    .action(async (flags: { out: string; inventory: string; db?: string; quarantine: QuarantinePolicy; service: string[]; iterations: number; json?: boolean }, command: Command) => {
      const data = await onStore(flags, command, (store) => store.read());
      if (new Set(flags.service).size !== flags.service.length) throw new UsageError('a service name is given twice: expected unique names', { field: '--service' });
      secretFolder(flags.out);
      const services = defaultServices(flags.service);
      const tty = process.stderr.isTTY === true && flags.json !== true;
      const config = brokerConfig(data, {
        policy: flags.quarantine,
        iterations: flags.iterations,
        services,
        onProgress: (done, total) => {
          if (tty && (done % 500 === 0 || done === total)) process.stderr.write(`\rhashed ${done}/${total}${done === total ? '\n' : ''}`);
        },
      });
      const files = { passwords: join(flags.out, 'passwords'), acl: join(flags.out, 'acl'), conf: join(flags.out, 'mosquitto.conf'), services: join(flags.out, 'services.json') };
      writeFilesAtomically([
        { path: files.passwords, data: config.passwords, mode: 0o600, what: 'the password file' },
        { path: files.acl, data: config.acl, mode: 0o644, what: 'the ACL file' },
        { path: files.conf, data: mosquittoConfFragment(files.passwords, files.acl), mode: 0o644, what: 'the mosquitto.conf fragment' },
        ...(services.length > 0 ? [{ path: files.services, data: `${JSON.stringify({ services: services.map((s) => ({ username: s.username, password: s.password, read: s.read, write: s.write })) }, null, 2)}\n`, mode: 0o600, what: 'the service passwords' }] : []),
      ]);
      const written = services.length > 0 ? files : { passwords: files.passwords, acl: files.acl, conf: files.conf };
      if (flags.json) console.log(JSON.stringify({ ok: true, dir: flags.out, files: written, counts: config.counts, services: services.map((s) => s.username) }, null, 2));
      else console.log(`wrote ${Object.values(written).join(', ')}: ${config.counts.active} active, ${config.counts.quarantined} quarantined (${flags.quarantine}), ${config.counts.revoked} revoked; ${config.counts.excluded} without an account`);
      process.exitCode = ExitCode.OK;
    });

  fleet
    .command('set')
    .description('set a device\'s cohort, gateway, reported firmware version or security floor (recorded in its history)')
    .argument('<device>', 'device id, 16 hex digits', parseDeviceId)
    .option('--cohort <name>', 'cohort (rollouts); "-" clears it', parseLabelOrClear)
    .option('--gateway <name>', 'gateway; "-" clears it', parseLabelOrClear)
    .option('--firmware <version>', 'firmware version the device runs, 0..4294967295', parseInteger(0, 0xffff_ffff))
    .option('--floor <n>', 'security floor the device reported, 0..4294967295', parseInteger(0, 0xffff_ffff))
    .option('--inventory <file>', INVENTORY_HELP, DEFAULT_INVENTORY)
    .option('--db <url>', DB_HELP)
    .option('--json', 'print {ok, device: {deviceId, cohort, gateway, firmware}}')
    .action(async (device: string, flags: { cohort?: string; gateway?: string; firmware?: number; floor?: number; inventory: string; db?: string; json?: boolean }, command: Command) => {
      const cohort = flags.cohort === '-' ? null : flags.cohort;
      const gateway = flags.gateway === '-' ? null : flags.gateway;
      if (flags.cohort === undefined && flags.gateway === undefined && flags.firmware === undefined && flags.floor === undefined) throw new UsageError('nothing to set: expected --cohort, --gateway, --firmware or --floor', { field: '<device>' });
      const updated = await onStore(flags, command, (store) => store.withLock(async (lock) => {
        const data = await lock.load(false);
        const d = findDevice(data, device);
        const at = nowIso();
        const changes: string[] = [];
        if (cohort !== undefined && cohort !== d.cohort) (changes.push(`cohort ${d.cohort ?? '-'} -> ${cohort ?? '-'}`), (d.cohort = cohort));
        if (gateway !== undefined && gateway !== d.gateway) (changes.push(`gateway ${d.gateway ?? '-'} -> ${gateway ?? '-'}`), (d.gateway = gateway));
        if (flags.firmware !== undefined && flags.firmware !== d.firmware.version) (changes.push(`firmware ${d.firmware.version ?? '-'} -> ${flags.firmware}`), (d.firmware.version = flags.firmware));
        if (flags.floor !== undefined && flags.floor !== d.firmware.securityFloor) {
          if (d.firmware.securityFloor !== null && flags.floor < d.firmware.securityFloor) throw new CliError(`security floor ${flags.floor} is below the recorded ${d.firmware.securityFloor}: a floor never goes down`, { field: '--floor' });
          changes.push(`floor ${d.firmware.securityFloor ?? '-'} -> ${flags.floor}`);
          d.firmware.securityFloor = flags.floor;
        }
        if (changes.length > 0) {
          d.history.push({ at, event: 'changed', detail: changes.join(', ').slice(0, 200) });
          await lock.save(data);
        }
        return d;
      }));
      const view = { deviceId: updated.deviceId, cohort: updated.cohort, gateway: updated.gateway, firmware: updated.firmware };
      if (flags.json) console.log(JSON.stringify({ ok: true, device: view }, null, 2));
      else console.log(`device ${device}: cohort ${view.cohort ?? '-'}, gateway ${view.gateway ?? '-'}, firmware ${view.firmware.version ?? '-'}, floor ${view.firmware.securityFloor ?? '-'}`);
      process.exitCode = ExitCode.OK;
    });

  const stateChange = (name: 'quarantine' | 'release', description: string, to: DeviceState, event: 'quarantined' | 'released'): void => {
    fleet
      .command(name)
      .description(description)
      .argument('<device>', 'device id, 16 hex digits', parseDeviceId)
      .option('--inventory <file>', INVENTORY_HELP, DEFAULT_INVENTORY)
      .option('--db <url>', DB_HELP)
      .option('--reason <text>', 'recorded in the device\'s history')
      .option('--json', 'print {ok, device, from, to}')
      .action(async (device: string, flags: { inventory: string; db?: string; reason?: string; json?: boolean }, command: Command) => {
        if (flags.reason !== undefined && (flags.reason.length > 200 || /[\u0000-\u001f]/.test(flags.reason))) throw new UsageError('expected at most 200 printable characters', { field: '--reason' });
        const from = await onStore(flags, command, (store) => store.withLock(async (lock) => {
          const data = await lock.load(false);
          const d = findDevice(data, device);
          const was = d.state;
          if (was === 'revoked') throw new CliError(`device ${device} is revoked: a revoked identity stays revoked (re-enroll the device with a new identity)`, { field: '<device>' });
          if (name === 'release' && was !== 'quarantined') throw new CliError(`device ${device} is ${was}: expected a quarantined device`, { field: '<device>' });
          if (name === 'quarantine' && was === 'quarantined') return was;
          const at = nowIso();
          d.state = to;
          d.history.push({ at, event, ...(flags.reason !== undefined ? { detail: flags.reason } : {}) });
          await lock.save(data);
          return was;
        }));
        if (flags.json) console.log(JSON.stringify({ ok: true, device, from, to }, null, 2));
        else console.log(`device ${device}: ${from} -> ${to}; run holdfast fleet broker-config and fleet export --format ingest to apply it at the broker and the ingest`);
        process.exitCode = ExitCode.OK;
      });
  };
  stateChange('quarantine', 'quarantine a device: at the broker it keeps telemetry, receipts and updates, not commands (policy restrict)', 'quarantined', 'quarantined');
  stateChange('release', 'return a quarantined device to active', 'active', 'released');

  fleet
    .command('revoke')
    .description('revoke a device (every key, for good), one device key (<device>/<keyId>) or a fleet command key (command/<keyId>) in the inventory, and write the next signed revocation list (docs/spec/revocation.md)')
    .argument('<target>', '<device> (16 hex digits), <device>/<keyId> or command/<keyId>', (value: string) => parseRevokeTarget(value) ?? targetUsage(value))
    .requiredOption('--sign-with <file>', 'the fleet revocation key: an Ed25519 seed, 64 hex digits (mode 0600)')
    .option('--list <file>', 'where to write the signed revocation list', 'revocations.bin')
    .option('--inventory <file>', INVENTORY_HELP, DEFAULT_INVENTORY)
    .option('--db <url>', DB_HELP)
    .option('--reason <text>', 'recorded in the device\'s history')
    .option('--json', 'print {ok, target, changed, number, entries, list, signerPublicKey}')
    .action(async (target: RevokeTarget, flags: { signWith: string; list: string; inventory: string; db?: string; reason?: string; json?: boolean }, command: Command) => {
      if (flags.reason !== undefined && (flags.reason.length > 200 || /[\u0000-\u001f]/.test(flags.reason))) throw new UsageError('expected at most 200 printable characters', { field: '--reason' });
      checkOutputPath(flags.list, 'the revocation list');
      const seed = readSeedFile(flags.signWith);
      let result;
      try {
        result = await onStore(flags, command, (store) => revoke({ store, target, seed, listPath: flags.list, ...(flags.reason !== undefined ? { reason: flags.reason } : {}) }));
      } finally {
        seed.fill(0);
      }
      if (flags.json) console.log(JSON.stringify({ ok: true, ...result }, null, 2));
      else {
        const what = target.kind === 'device' ? `device ${target.deviceId}` : target.kind === 'device-key' ? `key ${target.keyId} of device ${target.deviceId}` : `command key ${target.keyId}`;
        console.log(`${what}: ${result.changed ? 'revoked' : 'already revoked'}; wrote ${result.list}: revocation list ${result.number}, ${result.entries} entries, signed by ${result.signerPublicKey.slice(0, 16)}…`);
        console.log('apply it: holdfast fleet broker-config and fleet export --format ingest, then publish the list to the devices');
      }
      process.exitCode = ExitCode.OK;
    });

  fleet
    .command('import')
    .description('move a file inventory and the rollouts beside it into a PostgreSQL database, as one transaction (the database must hold no inventory yet); the file is left as it was')
    .requiredOption('--from <file>', 'the holdfast-fleet/1 inventory file (its rollouts are read from <file>.rollouts/)')
    .requiredOption('--db <url>', 'the PostgreSQL database to import into: postgres://user[:password]@host[:port]/database')
    .option('--json', 'print {ok, db, devices, rollouts}')
    .action(async (flags: { from: string; db: string; json?: boolean }) => {
      const file = fileFleetStore(flags.from);
      const store = await openFleetStore({ inventory: flags.from, db: flags.db }, false);
      let fleetData;
      let ids: string[] = [];
      try {
        // Under the file's lock: no run changes the file or its rollouts while they are copied.
        fleetData = await file.withLock(async (tx) => {
          const data = await tx.load(false);
          ids = await file.rollouts.list();
          const rollouts = [];
          for (const id of ids) rollouts.push(await file.rollouts.load(id));
          await (store as PostgresFleetStore).importInventory(data, rollouts);
          return data;
        });
      } finally {
        await store.close();
      }
      if (flags.json) console.log(JSON.stringify({ ok: true, db: store.where, devices: fleetData.devices.length, rollouts: ids }, null, 2));
      else console.log(`imported ${flags.from} into ${store.where}: ${fleetData.devices.length} device(s), ${ids.length} rollout(s)${ids.length > 0 ? ` (${ids.join(', ')})` : ''}; use --db from now on (the file is unchanged: retire it)`);
      process.exitCode = ExitCode.OK;
    });

  fleet
    .command('re-enroll')
    .description('give a repaired device a new identity (new device id, secret and keys; its provisioning image in --out) registered as replacing the old one, revoke the old identity in the same inventory change, and write the next signed revocation list naming it (docs/design/fleet-identity.md, "Re-enrollment")')
    .argument('<device>', 'the old device id, 16 hex digits (not revoked)', parseDeviceId)
    .requiredOption('--out <dir>', 'folder for the new provisioning image and re-enroll.json (created with mode 0700; an existing one must be 0700 and hold no re-enroll.json)')
    .requiredOption('--sign-with <file>', 'the fleet revocation key: an Ed25519 seed, 64 hex digits (mode 0600)')
    .requiredOption('--command-key <file>', "the fleet command key's Ed25519 public key, 64 hex digits (as holdfast provision)")
    .option('--command-key-id <n>', 'key id of the command key, 0..4294967295', parseInteger(0, 0xffff_ffff), 1)
    .option('--console-key <file>', "the console unlock key's Ed25519 public key, 64 hex digits (without it the console stays locked)")
    .option('--revocation-key <file>', "the fleet revocation-list key's Ed25519 public key, 64 hex digits (without it the device accepts no revocation list)")
    .option('--root <file>', 'a signed root document (root.1.bin of holdfast keys init) for the provisioning record')
    .option('--broker <host:port>', 'MQTT broker the device connects to', parseBroker)
    .option('--key-id <n>', 'envelope key id of the new identity, 0..4294967295', parseInteger(0, 0xffff_ffff), 1)
    .option('--list <file>', 'where to write the signed revocation list', 'revocations.bin')
    .option('--inventory <file>', INVENTORY_HELP, DEFAULT_INVENTORY)
    .option('--db <url>', DB_HELP)
    .option('--reason <text>', "recorded in the old device's history")
    .option('--json', 'print {ok, old, device, keyId, publicKey, board, file, sha256, partition, list, number, entries, signerPublicKey}')
    .action(async (device: string, flags: { out: string; signWith: string; commandKey: string; commandKeyId: number; consoleKey?: string; revocationKey?: string; root?: string; broker?: { host: string; port: number }; keyId: number; list: string; inventory: string; db?: string; reason?: string; json?: boolean }, command: Command) => {
      if (flags.reason !== undefined && (flags.reason.length > 200 || /[\u0000-\u001f]/.test(flags.reason))) throw new UsageError('expected at most 200 printable characters', { field: '--reason' });
      checkOutputPath(flags.list, 'the revocation list');
      const commandKey = readPublicKeyFile(flags.commandKey, 'the command key');
      const consoleKey = flags.consoleKey === undefined ? undefined : readPublicKeyFile(flags.consoleKey, 'the console key');
      const revocationKey = flags.revocationKey === undefined ? undefined : readPublicKeyFile(flags.revocationKey, 'the revocation key');
      const rootDocument = flags.root === undefined ? undefined : readInput(flags.root, 'a signed root document', MAX_ROOT_DOCUMENT_LENGTH);
      const seed = readSeedFile(flags.signWith);
      let result;
      try {
        result = await onStore(flags, command, (store) =>
          reenroll({
            store,
            oldDeviceId: device,
            outDir: flags.out,
            seed,
            listPath: flags.list,
            keyId: flags.keyId,
            commandKey: { keyId: flags.commandKeyId, publicKey: commandKey },
            ...(consoleKey !== undefined ? { consoleKey } : {}),
            ...(revocationKey !== undefined ? { revocationKey } : {}),
            ...(rootDocument !== undefined ? { rootDocument } : {}),
            ...(flags.broker !== undefined ? { broker: flags.broker } : {}),
            ...(flags.reason !== undefined ? { reason: flags.reason } : {}),
          }),
        );
      } finally {
        seed.fill(0);
      }
      if (flags.json) console.log(JSON.stringify({ ok: true, ...result }, null, 2));
      else {
        console.log(`device ${result.old} re-enrolled as ${result.device}: ${join(flags.out, result.file)} (mode 0600), flash it at ${result.partition.label} 0x${result.partition.offset.toString(16)}; ${result.old} revoked; wrote ${result.list}: revocation list ${result.number}, ${result.entries} entries`);
        console.log('apply it: holdfast fleet broker-config and fleet export --format ingest, then publish the list to the devices');
      }
      process.exitCode = ExitCode.OK;
    });
}
