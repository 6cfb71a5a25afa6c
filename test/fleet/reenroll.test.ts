/**
 * `holdfast fleet re-enroll` (tools/fleet/reenroll.ts,
 * docs/design/fleet-identity.md "Re-enrollment"), on the file inventory and
 * on PostgreSQL: the repaired device gets a new identity (its image opens
 * as a provisioning record of the new id, under the same revocation key),
 * registered with `replaces`; the old identity is revoked with `replacedBy`
 * and stays refused everywhere: a record sealed with it does not
 * authenticate against the exported ingest inventory (unknown-key) while
 * the new one's does, the broker has no account for it, and the signed
 * revocation list names it. Re-enrolling a revoked or unknown device is
 * refused with one line; a run killed right after the inventory change
 * leaves a registered identity without an image (never an image of an
 * unregistered device), and the documented recovery works.
 *
 * Without PostgreSQL the PostgreSQL case skips; with CI set it fails.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { batch, expectExit, jsonErrorOf, start } from '../cli/cli-harness.ts';
import { provision } from '../../tools/provision/provision.ts';
import { loadFleet, type Fleet } from '../../tools/fleet/inventory.ts';
import { parseInventory } from '../../tools/ingest/inventory.ts';
import { nodeEnvelopePrimitives } from '../../tools/ingest/node-primitives.ts';
import { authenticateEnvelope, sealWithCounter } from '../../firmware/security/envelope.ts';
import { EnvelopeError } from '../../firmware/security/envelope-format.ts';
import { deriveDeviceKeys } from '../../firmware/security/envelope-keys.ts';
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { readProvisioning } from '../../firmware/security/provisioning.ts';
import { isDeviceRevoked, openRevocationList } from '../../firmware/security/revocation.ts';
import { keyFromSeed } from '../../tools/keys/signer.ts';
import { requireComponents, skipUnless } from '../../tools/net/common.ts';
import { findPostgres, startPostgres, type PostgresCluster } from '../../tools/net/postgres.ts';
import { KEY_2 } from '../security/provisioning.cases.ts';

const SEED_HEX = '3c'.repeat(32);
const FLEET_KEY = keyFromSeed(new Uint8Array(Buffer.from(SEED_HEX, 'hex'))).publicKey;
const hexOf = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Does a record sealed with `device`'s key (from `secretHex`) authenticate against the ingest inventory `text`? */
function ingestAccepts(text: string, device: string, secretHex: string, keyId: number): boolean | string {
  const inventory = parseInventory(text);
  const primitives = nodeEnvelopePrimitives();
  const deviceId = new Uint8Array(Buffer.from(device, 'hex'));
  const keys = deriveDeviceKeys(createNobleCrypto(), new Uint8Array(Buffer.from(secretHex, 'hex')), deviceId, keyId);
  const known = [...inventory.keys.values()][0]!;
  const sealed = sealWithCounter(primitives, keys, known.suite, 7, new TextEncoder().encode('after repair'));
  try {
    authenticateEnvelope(sealed, { primitives, deviceId, keys: (d, k) => inventory.keys.get(`${hexOf(d)}/${k}`)?.keys });
    return true;
  } catch (error) {
    if (error instanceof EnvelopeError) return error.code;
    throw error;
  }
}

describe('holdfast fleet re-enroll', () => {
  let dir: string;
  let cluster: PostgresCluster | undefined;
  const needs = [findPostgres()];

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'holdfast-reenroll-'));
    writeFileSync(join(dir, 'rev.key'), SEED_HEX, { mode: 0o600 });
    writeFileSync(join(dir, 'command.pub'), hexOf(KEY_2));
    writeFileSync(join(dir, 'revocation.pub'), hexOf(FLEET_KEY));
  });
  after(async () => {
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Provision 3 devices into `name`/fleet.json; `where` gives the inventory flags (the file, or a database the file was imported into). */
  async function flow(name: string, where: (inv: string) => Promise<string[]>, read: (flags: string[]) => Promise<Fleet>): Promise<void> {
    const base = join(dir, name);
    const inv = join(base, 'fleet.json');
    const manifest = await provision({ boardId: 'esp32-devkitc', outDir: join(base, 'made'), inventoryPath: inv, count: 3, keyId: 1, suite: 'chacha20-poly1305', commandKey: { keyId: 1, publicKey: KEY_2 }, revocationKey: FLEET_KEY, cohort: 'line-a', gateway: 'gw-2' });
    const ids = manifest.devices.map((d) => d.deviceId);
    const oldSecret = loadFleet(inv).devices.find((d) => d.deviceId === ids[0])!.secret;
    const flags = await where(inv);
    const common = ['--sign-with', join(dir, 'rev.key'), '--command-key', join(dir, 'command.pub'), '--revocation-key', join(dir, 'revocation.pub')];
    const [re, again, unknown, exported, broker] = await batch([
      ['fleet', 're-enroll', ids[0], '--out', join(base, 'repaired'), '--list', join(base, 'rev1.bin'), ...common, ...flags, '--reason', 'board swapped', '--json'],
      ['fleet', 're-enroll', ids[0], '--out', join(base, 'again'), '--list', join(base, 'rev2.bin'), ...common, ...flags, '--json'],
      ['fleet', 're-enroll', 'ffffffffffffffff', '--out', join(base, 'unknown'), '--list', join(base, 'rev3.bin'), ...common, ...flags],
      ['fleet', 'export', '--format', 'ingest', '--out', join(base, 'ingest.json'), ...flags],
      ['fleet', 'broker-config', '--out', join(base, 'broker'), '--iterations', '1', ...flags],
    ]);
    const result = JSON.parse(expectExit(re!, 0, `${name}: re-enroll`).stdout);
    assert.equal(result.old, ids[0]);
    assert.notEqual(result.device, ids[0]);
    assert.equal(result.number, 1);
    // Refusals: one line each, nothing written.
    const refused = jsonErrorOf(expectExit(again!, 1, `${name}: re-enroll a revoked device`), 'again').error.message;
    assert.match(refused, new RegExp(`device ${ids[0]} is revoked \\(re-enrolled as ${result.device}\\)`));
    expectExit(unknown!, 1, `${name}: unknown device`);
    assert.match(unknown!.stderr, /no device ffffffffffffffff/);
    assert.equal(unknown!.stderr.trim().split('\n').length, 1, 'one line');
    assert.ok(!existsSync(join(base, 'rev2.bin')) && !existsSync(join(base, 'rev3.bin')), 'refused runs issue no list');

    // The inventory: one change made the new identity and revoked the old.
    const fleet = await read(flags);
    const old = fleet.devices.find((d) => d.deviceId === ids[0])!;
    const neu = fleet.devices.find((d) => d.deviceId === result.device)!;
    assert.equal(old.state, 'revoked');
    assert.equal(old.replacedBy, result.device);
    assert.ok(old.keys.every((k) => k.status === 'revoked'));
    assert.match(old.history.at(-1)!.detail!, /^re-enrolled: replaced by [0-9a-f]{16}: board swapped$/);
    assert.deepEqual([neu.state, neu.replaces, neu.cohort, neu.gateway, neu.board, neu.suite], ['active', ids[0], 'line-a', 'gw-2', 'esp32-devkitc', 'chacha20-poly1305']);
    assert.equal(fleet.devices.length, 4);

    // The image: the new identity, mode 0600, the revocation key the lists are signed with.
    const imagePath = join(base, 'repaired', result.file);
    assert.equal(statSync(imagePath).mode & 0o777, 0o600);
    const reading = readProvisioning(createNobleCrypto(), new Uint8Array(readFileSync(imagePath)));
    assert.ok(reading.state === 'provisioned');
    assert.equal(hexOf(reading.identity.deviceId), result.device);
    assert.equal(hexOf(reading.identity.deviceSecret), neu.secret);
    assert.deepEqual(reading.identity.revocationKey, FLEET_KEY);
    assert.ok(!readFileSync(join(base, 'repaired', 're-enroll.json'), 'utf8').includes(neu.secret), 'the manifest holds no secret');

    // Refused everywhere: the ingest, the broker, the devices.
    expectExit(exported!, 0, `${name}: export`);
    const ingestText = readFileSync(join(base, 'ingest.json'), 'utf8');
    assert.equal(ingestAccepts(ingestText, ids[0], oldSecret, 1), 'unknown-key', 'a record sealed with the old identity is refused');
    assert.equal(ingestAccepts(ingestText, result.device, neu.secret, 1), true, 'the new identity is accepted');
    expectExit(broker!, 0, `${name}: broker-config`);
    const passwords = readFileSync(join(base, 'broker', 'passwords'), 'utf8');
    assert.doesNotMatch(passwords, new RegExp(`^${ids[0]}:`, 'm'), 'no broker account for the old identity');
    assert.match(passwords, new RegExp(`^${result.device}:`, 'm'), 'an account for the new one');
    const list = openRevocationList(createNobleCrypto(), new Uint8Array(readFileSync(join(base, 'rev1.bin'))), FLEET_KEY, 0);
    assert.ok(isDeviceRevoked(list, Buffer.from(ids[0], 'hex')), 'the list names the old device');
    assert.ok(!isDeviceRevoked(list, Buffer.from(result.device, 'hex')), 'not the new one');
  }

  it('on the file inventory', async () => {
    await flow('file', async (inv) => ['--inventory', inv], async (flags) => loadFleet(flags[1]!));
  });

  it('on PostgreSQL', { skip: skipUnless(needs) }, async () => {
    requireComponents(needs);
    cluster = await startPostgres({ fsync: false });
    const url = await cluster.createDatabase('reenroll');
    await flow(
      'postgres',
      async (inv) => {
        expectExit((await batch([['fleet', 'import', '--from', inv, '--db', url]]))[0]!, 0, 'import');
        return ['--db', url];
      },
      async () => {
        const { PostgresFleetStore } = await import('../../tools/fleet/store-postgres.ts');
        const store = await PostgresFleetStore.open(url);
        try {
          return await store.read();
        } finally {
          await store.close();
        }
      },
    );
  });

  it('killed right after the inventory change: a registered identity without an image, and the documented recovery', async () => {
    const base = join(dir, 'crash');
    const inv = join(base, 'fleet.json');
    const ids = (await provision({ boardId: 'esp32-devkitc', outDir: join(base, 'made'), inventoryPath: inv, count: 2, keyId: 1, suite: 'hmac-sha256', commandKey: { keyId: 1, publicKey: KEY_2 }, revocationKey: FLEET_KEY })).devices.map((d) => d.deviceId);
    // SIGKILL at the first write of the revocation list: the inventory change is saved, nothing after it exists.
    const injector = join(base, 'kill.cjs');
    writeFileSync(injector, `const fs = require('node:fs'); const real = fs.openSync; fs.openSync = function (p, ...rest) { if (/rev-crash/.test(String(p))) process.kill(process.pid, 'SIGKILL'); return real.call(this, p, ...rest); }; require('node:module').syncBuiltinESMExports();`);
    const common = ['--sign-with', join(dir, 'rev.key'), '--command-key', join(dir, 'command.pub'), '--inventory', inv];
    const killed = await start(['fleet', 're-enroll', ids[0], '--out', join(base, 'out'), '--list', join(base, 'rev-crash.bin'), ...common], { nodeArgs: ['--require', injector] }).done;
    assert.equal(killed.signal, 'SIGKILL', `killed: ${killed.status} ${killed.stderr}`);
    const fleet = loadFleet(inv);
    const neu = fleet.devices.find((d) => d.replaces === ids[0]);
    assert.ok(neu !== undefined, 'the new identity is registered');
    assert.equal(fleet.devices.find((d) => d.deviceId === ids[0])!.state, 'revoked');
    assert.equal(fleet.revocation?.number, 1, 'the list number was taken');
    assert.ok(!existsSync(join(base, 'rev-crash.bin')), 'no list');
    assert.deepEqual(existsSync(join(base, 'out')) ? readdirSync(join(base, 'out')).filter((f) => f.endsWith('.bin')) : [], [], 'no image: never an image of an unregistered device, here none at all');
    // The killed run's lock is reported, never broken silently: the operator (here the test) removes it.
    assert.ok(existsSync(`${inv}.lock`), 'the lock of the killed run is left');
    unlinkSync(`${inv}.lock`);
    // Recovery (docs): the list again with fleet revoke <old>; the hardware gets another identity from the unflashed one.
    const [list, again] = await batch([
      ['fleet', 'revoke', ids[0], '--sign-with', join(dir, 'rev.key'), '--list', join(base, 'rev2.bin'), '--inventory', inv, '--json'],
      ['fleet', 're-enroll', neu.deviceId, '--out', join(base, 'out2'), '--list', join(base, 'rev3.bin'), ...common, '--json'],
    ]);
    assert.deepEqual([JSON.parse(expectExit(list!, 0, 'revoke again').stdout).number, JSON.parse(list!.stdout).changed], [2, false]);
    const second = JSON.parse(expectExit(again!, 0, 're-enroll the unflashed identity').stdout);
    const after = loadFleet(inv);
    assert.equal(after.devices.find((d) => d.deviceId === neu.deviceId)!.state, 'revoked');
    assert.equal(after.devices.find((d) => d.deviceId === second.device)!.replaces, neu.deviceId);
    assert.equal(second.number, 3);
  });
});
