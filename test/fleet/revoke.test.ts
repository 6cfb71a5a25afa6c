/**
 * `holdfast fleet revoke` (tools/fleet/revoke.ts, docs/spec/revocation.md):
 * a device, a device key and a command key are revoked in the inventory and
 * each run writes the next signed list, which the firmware's opener accepts
 * under the revocation key, naming everything revoked so far; an older list
 * is refused once a newer one is held; the ingest export and the broker
 * config follow; a device's current key cannot be revoked alone; bad
 * targets are usage errors; the revocation key is never printed.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { batch, expectExit, jsonErrorOf } from '../cli/cli-harness.ts';
import { provision } from '../../tools/provision/provision.ts';
import { loadFleet, saveFleet } from '../../tools/fleet/inventory.ts';
import { brokerConfig, toIngest } from './revoke-helpers.ts';
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { isCommandKeyRevoked, isDeviceRevoked, openRevocationList, RevocationError } from '../../firmware/security/revocation.ts';
import { readProvisioning } from '../../firmware/security/provisioning.ts';
import { keyFromSeed } from '../../tools/keys/signer.ts';
import { KEY_2 } from '../security/provisioning.cases.ts';

const SEED_HEX = '3c'.repeat(32);
const FLEET_KEY = keyFromSeed(new Uint8Array(Buffer.from(SEED_HEX, 'hex'))).publicKey;

describe('holdfast fleet revoke', () => {
  let dir: string;
  let inv: string;
  let ids: string[];
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'holdfast-revoke-'));
    inv = join(dir, 'fleet.json');
    writeFileSync(join(dir, 'rev.key'), SEED_HEX, { mode: 0o600 });
    writeFileSync(join(dir, 'bad.key'), 'not hex', { mode: 0o600 });
    const manifest = await provision({ boardId: 'esp32-devkitc', outDir: join(dir, 'made'), inventoryPath: inv, count: 3, keyId: 1, suite: 'hmac-sha256', commandKey: { keyId: 5, publicKey: KEY_2 }, revocationKey: FLEET_KEY });
    ids = manifest.devices.map((d) => d.deviceId);
    // Give device 1 a retired key 0 (as a rotation will), so a single device key can be revoked.
    const fleet = loadFleet(inv);
    const d1 = fleet.devices.find((d) => d.deviceId === ids[1])!;
    d1.keys.unshift({ keyId: 0, publicKey: d1.keys[0].publicKey, status: 'retired', sinceCounter: 0, untilCounter: 100, changedAt: d1.provisionedAt });
    saveFleet(inv, fleet);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('device, device key, command key: three lists numbered 1..3, each naming everything revoked so far, opened under the provisioned key', async () => {
    const list = (n: number): string => join(dir, `rev${n}.bin`);
    const key = join(dir, 'rev.key');
    const runs = await batch([
      ['fleet', 'revoke', ids[0], '--sign-with', key, '--list', list(1), '--inventory', inv, '--reason', 'stolen', '--json'],
      ['fleet', 'revoke', `${ids[1]}/0`, '--sign-with', key, '--list', list(2), '--inventory', inv, '--json'],
      ['fleet', 'revoke', 'command/5', '--sign-with', key, '--list', list(3), '--inventory', inv, '--json'],
      ['fleet', 'revoke', ids[0], '--sign-with', key, '--list', list(4), '--inventory', inv, '--json'],
    ]);
    const results = runs.map((r, i) => JSON.parse(expectExit(r, 0, `revoke ${i}`).stdout));
    assert.deepEqual(results.map((r) => [r.number, r.entries, r.changed]), [[1, 1, true], [2, 2, true], [3, 3, true], [4, 3, false]]);
    assert.equal(results[0].signerPublicKey, Buffer.from(FLEET_KEY).toString('hex'));
    for (const r of runs) assert.ok(!(r.stdout + r.stderr).includes(SEED_HEX), 'the revocation key is never printed');

    // The device reads the revocation key from its provisioning record and opens the lists with it.
    const image = new Uint8Array(readFileSync(join(dir, 'made', `${ids[2]}.hf_prov.bin`)));
    const reading = readProvisioning(createNobleCrypto(), image);
    assert.ok(reading.state === 'provisioned' && reading.identity.revocationKey !== undefined);
    const trusted = reading.identity.revocationKey;
    const crypto = createNobleCrypto();
    const third = openRevocationList(crypto, new Uint8Array(readFileSync(list(3))), trusted, 2);
    assert.ok(isDeviceRevoked(third, Buffer.from(ids[0], 'hex')), 'device 0');
    assert.ok(isDeviceRevoked(third, Buffer.from(ids[1], 'hex'), 0), 'device 1 key 0');
    assert.ok(!isDeviceRevoked(third, Buffer.from(ids[1], 'hex'), 1), 'device 1 key 1 stands');
    assert.ok(isCommandKeyRevoked(third, 5), 'command key 5: the device refuses its commands');
    assert.throws(() => openRevocationList(crypto, new Uint8Array(readFileSync(list(1))), trusted, 3), (e: unknown) => e instanceof RevocationError && e.code === 'not-newer', 'an older list is refused once list 3 is held');

    const fleet = loadFleet(inv);
    assert.equal(fleet.revocation?.number, 4);
    assert.deepEqual(fleet.revocation?.commandKeys.map((c) => c.keyId), [5]);
    const exported = toIngest(fleet);
    assert.ok(!exported.some((e) => e.deviceId === ids[0]), 'the revoked device is not in the ingest\'s inventory');
    assert.deepEqual(exported.filter((e) => e.deviceId === ids[1]).map((e) => e.keyId), [1], 'the revoked key is not either');
    assert.ok(!brokerConfig(fleet).includes(ids[0]), 'no broker account for the revoked device');
  });

  it('refusals: the current key alone, an unknown key or device, a bad target, a bad seed file', async () => {
    const key = join(dir, 'rev.key');
    const out = join(dir, 'x.bin');
    const runs = await batch([
      ['fleet', 'revoke', `${ids[2]}/1`, '--sign-with', key, '--list', out, '--inventory', inv],
      ['fleet', 'revoke', `${ids[2]}/9`, '--sign-with', key, '--list', out, '--inventory', inv, '--json'],
      ['fleet', 'revoke', 'ffffffffffffffff', '--sign-with', key, '--list', out, '--inventory', inv],
      ['fleet', 'revoke', 'gateway/3', '--sign-with', key, '--list', out, '--inventory', inv],
      ['fleet', 'revoke', ids[2], '--list', out, '--inventory', inv],
      ['fleet', 'revoke', ids[2], '--sign-with', join(dir, 'bad.key'), '--list', out, '--inventory', inv],
    ]);
    expectExit(runs[0], 1, 'current key');
    assert.match(runs[0].stderr, /current key: revoke the device, or rotate its key first/);
    assert.equal(jsonErrorOf(expectExit(runs[1], 1, 'unknown key'), 'unknown key').error.code, 'not-found');
    expectExit(runs[2], 1, 'unknown device');
    expectExit(runs[3], 2, 'bad target');
    expectExit(runs[4], 2, 'no --sign-with');
    expectExit(runs[5], 1, 'bad seed');
    assert.match(runs[5].stderr, /bad\.key: expected the revocation key: 64 hex digits/);
    assert.equal(loadFleet(inv).revocation?.number, 4, 'refused runs issued no list');
    assert.equal(loadFleet(inv).devices.find((d) => d.deviceId === ids[2])!.state, 'active');
  });
});
