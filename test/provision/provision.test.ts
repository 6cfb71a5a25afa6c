/**
 * `holdfast provision` end to end (tools/provision/provision.ts,
 * docs/spec/provisioning.md): a batch makes one image per device, each the
 * size of the board's hf_prov partition, mode 0600 in a 0700 folder; each
 * image reads back (firmware reader) to the identity the inventory holds
 * (device id, secret, public key, key id, command key, broker); the
 * manifest and everything printed hold no secret; device ids are unique
 * across runs sharing an inventory; bad usage is exit 2, a refused input
 * exit 1, each one line (and a JSON error under --json); progress shows on
 * a terminal only.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, chmodSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { assertOneLineError, batch, BIN, expectExit, jsonErrorOf } from '../cli/cli-harness.ts';
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { readProvisioning } from '../../firmware/security/provisioning.ts';
import { loadFleet } from '../../tools/fleet/inventory.ts';
import { loadBoard } from '../../tools/boards/board.ts';
import { KEY_2, KEY_3 } from '../security/provisioning.cases.ts';
import { initKeyDir } from '../../tools/keys/keystore.ts';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('holdfast provision', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'holdfast-provision-'));
    writeFileSync(join(dir, 'command.pub'), `${hex(KEY_2)}\n`);
    writeFileSync(join(dir, 'console.pub'), hex(KEY_3));
    writeFileSync(join(dir, 'bad.pub'), '00'.repeat(32));
    writeFileSync(join(dir, 'bogus-root.bin'), Buffer.from([1, 2, 3, 4]));
    initKeyDir(join(dir, 'keys'), { rootKeys: 1, rootThreshold: 1, targetsKeys: 1, targetsThreshold: 1 });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a batch: images of the partition size, 0600 in a 0700 folder, each reading back to its inventory entry; no secret printed or in the manifest', async () => {
    const board = loadBoard('esp32-s3-devkitc-1');
    const partition = board.partitions.find((p) => p.name === 'hf_prov')!;
    const inv = join(dir, 'fleet.json');
    const [run, again] = await batch(
      [
        ['provision', '--board', board.id, '--out', join(dir, 'batch1'), '--inventory', inv, '--count', '7', '--command-key', join(dir, 'command.pub'), '--command-key-id', '9', '--console-key', join(dir, 'console.pub'), '--root', join(dir, 'keys', 'root.1.bin'), '--broker', 'broker.local:8883', '--cohort', 'canary', '--gateway', 'gw-1', '--json'],
        ['provision', '--board', board.id, '--out', join(dir, 'batch2'), '--inventory', inv, '--count', '3', '--command-key', join(dir, 'command.pub')],
      ],
    );
    expectExit(run, 0, 'provision --count 7');
    expectExit(again, 0, 'provision --count 3');
    assert.equal(run.stderr, '', 'no progress when stderr is not a terminal');
    const manifest = JSON.parse(run.stdout);
    assert.equal(manifest.ok, true);
    assert.equal(manifest.devices.length, 7);
    assert.deepEqual(manifest.partition, { label: 'hf_prov', offset: partition.offset, size: partition.size });
    assert.equal(statSync(join(dir, 'batch1')).mode & 0o777, 0o700, 'folder 0700');
    assert.equal(statSync(inv).mode & 0o777, 0o600, 'inventory 0600');
    const fleet = loadFleet(inv);
    assert.equal(fleet.devices.length, 10, 'both runs registered');
    assert.equal(new Set(fleet.devices.map((d) => d.deviceId)).size, 10, 'unique device ids');
    const crypto = createNobleCrypto();
    const printed = run.stdout + run.stderr + again.stdout + again.stderr + readFileSync(join(dir, 'batch1', 'manifest.json'), 'utf8');
    for (const m of manifest.devices) {
      const file = join(dir, 'batch1', m.file);
      assert.equal(statSync(file).mode & 0o777, 0o600, `${m.file} is 0600`);
      const image = new Uint8Array(readFileSync(file));
      assert.equal(image.length, partition.size);
      const reading = readProvisioning(crypto, image);
      assert.equal(reading.state, 'provisioned');
      if (reading.state !== 'provisioned') continue;
      const id = reading.identity;
      const entry = fleet.devices.find((d) => d.deviceId === m.deviceId)!;
      assert.equal(hex(id.deviceId), m.deviceId);
      assert.equal(hex(id.deviceSecret), entry.secret, 'the inventory holds the image\'s secret');
      assert.equal(hex(id.devicePublicKey), entry.keys[0].publicKey);
      assert.equal(id.keyId, 1);
      assert.equal(id.boardId, board.id);
      assert.deepEqual([id.commandKey.keyId, hex(id.commandKey.publicKey)], [9, hex(KEY_2)]);
      assert.equal(hex(id.consoleKey!), hex(KEY_3));
      assert.deepEqual([...id.rootDocument!], [...readFileSync(join(dir, 'keys', 'root.1.bin'))], 'the root document as keys init wrote it');
      assert.deepEqual([id.brokerHost, id.brokerPort], ['broker.local', 8883]);
      assert.deepEqual([entry.cohort, entry.gateway, entry.state, entry.keys[0].status, entry.keys[0].sinceCounter], ['canary', 'gw-1', 'active', 'current', 0]);
      assert.ok(!printed.includes(entry.secret), 'the secret is never printed nor in the manifest');
      assert.ok(!printed.includes(hex(id.deviceSeed)), 'the private key is never printed nor in the manifest');
    }
    const storeFiles = manifest.factory.stores.map((st: { file: string }) => st.file);
    assert.deepEqual(readdirSync(join(dir, 'batch1')).sort(), [...manifest.devices.map((d: { file: string }) => d.file), ...storeFiles, 'manifest.json'].sort(), 'seven images, the store images (factory-boot.test.ts checks them) and the manifest, no temporary files left');
  });

  it('refusals: unknown board and bad values are usage (2), a missing or bad key file, a reused --out, a folder others can read or a root the device would refuse are 1; one line each, JSON under --json', async () => {
    const key = join(dir, 'command.pub');
    mkdirSync(join(dir, 'open'), { mode: 0o755 });
    chmodSync(join(dir, 'open'), 0o755);
    const runs = await batch(
      [
        ['provision', '--board', 'no-such-board', '--out', join(dir, 'x'), '--command-key', key],
        ['provision', '--board', 'esp32-devkitc', '--out', join(dir, 'x'), '--command-key', key, '--count', '0'],
        ['provision', '--board', 'esp32-devkitc', '--out', join(dir, 'x'), '--command-key', key, '--broker', 'nohost'],
        ['provision', '--board', 'esp32-devkitc', '--out', join(dir, 'x')],
        ['provision', '--board', 'esp32-devkitc', '--out', join(dir, 'x'), '--command-key', join(dir, 'missing.pub'), '--json'],
        ['provision', '--board', 'esp32-devkitc', '--out', join(dir, 'x'), '--command-key', join(dir, 'bad.pub')],
        ['provision', '--board', 'esp32-devkitc', '--out', join(dir, 'open'), '--command-key', key],
        ['provision', '--board', 'esp32-devkitc', '--out', join(dir, 'batch1'), '--command-key', key, '--inventory', join(dir, 'fleet.json')],
        ['provision', '--board', 'esp32-devkitc', '--out', join(dir, 'y'), '--command-key', key, '--root', join(dir, 'bogus-root.bin'), '--inventory', join(dir, 'fleet.json'), '--json'],
      ],
    );
    for (const i of [0, 1, 2, 3]) {
      expectExit(runs[i], 2, `usage ${i}`);
      assertOneLineError(runs[i], 'provision', `usage ${i}`);
    }
    expectExit(runs[4], 1, 'missing key file');
    assert.equal(jsonErrorOf(runs[4], 'missing key').error.code, 'not-found');
    expectExit(runs[5], 1, 'small-order key');
    assert.match(runs[5].stderr, /--command-key.*not a usable Ed25519 public key/);
    expectExit(runs[6], 1, 'a folder others can open');
    assert.match(runs[6].stderr, /has mode 755: expected a folder only its owner can open/);
    expectExit(runs[7], 1, 'reused --out');
    assert.match(runs[7].stderr, /manifest\.json: already exists/);
    expectExit(runs[8], 1, 'a root the device would refuse');
    assert.equal(jsonErrorOf(runs[8], 'bogus root').error.code, 'invalid-file');
    assert.match(runs[8].stderr, /bogus-root\.bin: malformed: .*expected a signed root document a device accepts/);
    assert.equal(loadFleet(join(dir, 'fleet.json')).devices.length, 10, 'refused runs registered nothing');
  });

  it('on a terminal, progress goes to stderr and ends with the total', () => {
    // `script` gives the command a pseudo-terminal (util-linux); the typescript file is not kept.
    const out = join(dir, 'tty');
    const command = [process.execPath, BIN, 'provision', '--board', 'esp32-devkitc', '--out', out, '--inventory', join(dir, 'tty.json'), '--count', '20', '--command-key', join(dir, 'command.pub')].map((a) => `'${a}'`).join(' ');
    const run = spawnSync('script', ['-qec', command, '/dev/null'], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /\rprovisioned 20\/20 \(100%\)/);
    assert.match(run.stdout, /provisioned 20 devices for esp32-devkitc/);
  });
});
