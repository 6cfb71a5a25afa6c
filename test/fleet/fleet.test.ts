/**
 * The fleet inventory and `holdfast fleet` (tools/fleet/inventory.ts,
 * tools/cli/commands/fleet.ts): ls and show never print a secret;
 * quarantine, release and revoke change the state and history (a revoked
 * device stays revoked); `export --format ingest` is the ingest's own
 * format, loads with its parser and derives the same envelope keys as the
 * device's provisioning image, leaving revoked devices out; a damaged
 * inventory is refused naming the device and field, never a secret; a held
 * lock is refused; broker-config writes 0600 passwords and per-device ACLs
 * and, at thousands of devices, reports its time (a figure, no threshold).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { batch, expectExit, jsonErrorOf } from '../cli/cli-harness.ts';
import { provision } from '../../tools/provision/provision.ts';
import { brokerConfig } from '../../tools/fleet/broker.ts';
import { emptyFleet, fleetText, loadFleet, parseFleet, type FleetDevice } from '../../tools/fleet/inventory.ts';
import { parseInventory } from '../../tools/ingest/inventory.ts';
import { readProvisioning } from '../../firmware/security/provisioning.ts';
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { deriveDeviceKeys } from '../../firmware/security/envelope-keys.ts';
import { KEY_2 } from '../security/provisioning.cases.ts';

describe('holdfast fleet', () => {
  let dir: string;
  let inv: string;
  let ids: string[];
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'holdfast-fleet-'));
    inv = join(dir, 'fleet.json');
    writeFileSync(join(dir, 'revocation.key'), `${'5a'.repeat(32)}\n`, { mode: 0o600 });
    const manifest = await provision({ boardId: 'esp32-devkitc', outDir: join(dir, 'made'), inventoryPath: inv, count: 4, keyId: 3, suite: 'chacha20-poly1305', commandKey: { keyId: 1, publicKey: KEY_2 }, cohort: 'c1', gateway: 'gw-7' });
    ids = manifest.devices.map((d) => d.deviceId);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('ls, show, quarantine, release, revoke: states and history change, secrets never printed, a revoked device stays revoked', async () => {
    const secrets = loadFleet(inv).devices.map((d) => d.secret);
    const [q, rel, q2, rev, relRevoked, qRevoked, ls, show, lsRevoked, unknown] = await batch([
      ['fleet', 'quarantine', ids[0], '--inventory', inv, '--reason', 'tamper switch', '--json'],
      ['fleet', 'release', ids[0], '--inventory', inv],
      ['fleet', 'quarantine', ids[1], '--inventory', inv],
      ['fleet', 'revoke', ids[2], '--inventory', inv, '--sign-with', join(dir, 'revocation.key'), '--list', join(dir, 'revocations.bin')],
      ['fleet', 'release', ids[2], '--inventory', inv],
      ['fleet', 'quarantine', ids[2], '--inventory', inv, '--json'],
      ['fleet', 'ls', '--inventory', inv, '--json'],
      ['fleet', 'show', ids[0], '--inventory', inv, '--json'],
      ['fleet', 'ls', '--inventory', inv, '--state', 'revoked'],
      ['fleet', 'show', '0123456789abcdef', '--inventory', inv, '--json'],
    ]);
    assert.deepEqual(JSON.parse(expectExit(q, 0, 'quarantine').stdout), { ok: true, device: ids[0], from: 'active', to: 'quarantined' });
    expectExit(rel, 0, 'release');
    expectExit(q2, 0, 'quarantine 2');
    assert.match(expectExit(rev, 0, 'revoke').stdout, new RegExp(`device ${ids[2]}: revoked; wrote .*revocations\\.bin: revocation list 1, 1 entries`));
    expectExit(relRevoked, 1, 'release a revoked device');
    assert.match(relRevoked.stderr, /is revoked: a revoked identity stays revoked/);
    assert.equal(jsonErrorOf(expectExit(qRevoked, 1, 'quarantine a revoked device'), 'quarantine revoked').ok, false);
    const listed = JSON.parse(expectExit(ls, 0, 'ls').stdout);
    assert.equal(listed.count, 4);
    const states = Object.fromEntries(listed.devices.map((d: { deviceId: string; state: string }) => [d.deviceId, d.state]));
    assert.deepEqual([states[ids[0]], states[ids[1]], states[ids[2]], states[ids[3]]], ['active', 'quarantined', 'revoked', 'active']);
    const shown = JSON.parse(expectExit(show, 0, 'show').stdout).device;
    assert.equal(shown.secret, undefined, 'show has no secret field');
    assert.deepEqual(shown.history.map((e: { event: string }) => e.event), ['provisioned', 'quarantined', 'released']);
    assert.equal(shown.history[1].detail, 'tamper switch');
    assert.deepEqual([shown.cohort, shown.gateway, shown.suite, shown.keys[0].keyId, shown.keys[0].status], ['c1', 'gw-7', 'chacha20-poly1305', 3, 'current']);
    assert.match(expectExit(lsRevoked, 0, 'ls --state revoked').stdout, new RegExp(`${ids[2]}\\s+revoked`));
    assert.equal(jsonErrorOf(expectExit(unknown, 1, 'unknown device'), 'unknown').error.code, 'not-found');
    const revoked = loadFleet(inv).devices.find((d) => d.deviceId === ids[2])!;
    assert.deepEqual(revoked.keys.map((k) => k.status), ['revoked']);
    const printed = [q, rel, q2, rev, relRevoked, qRevoked, ls, show, lsRevoked, unknown].map((r) => r.stdout + r.stderr).join('');
    for (const s of secrets) assert.ok(!printed.includes(s), 'no secret printed');
  });

  it('set: cohort, gateway, firmware and floor recorded with history; a floor never goes down; nothing to set is usage', async () => {
    const [set, lower, none, show] = await batch([
      ['fleet', 'set', ids[3], '--cohort', 'wave-2', '--gateway', '-', '--firmware', '7', '--floor', '3', '--inventory', inv, '--json'],
      ['fleet', 'set', ids[3], '--floor', '2', '--inventory', inv],
      ['fleet', 'set', ids[3], '--inventory', inv],
      ['fleet', 'show', ids[3], '--inventory', inv, '--json'],
    ]);
    assert.deepEqual(JSON.parse(expectExit(set, 0, 'set').stdout).device, { deviceId: ids[3], cohort: 'wave-2', gateway: null, firmware: { version: 7, securityFloor: 3 } });
    expectExit(lower, 1, 'lower floor');
    assert.match(lower.stderr, /a floor never goes down/);
    expectExit(none, 2, 'nothing to set');
    const shown = JSON.parse(expectExit(show, 0, 'show').stdout).device;
    assert.equal(shown.history.at(-1).event, 'changed');
    assert.equal(shown.history.at(-1).detail, 'cohort c1 -> wave-2, gateway gw-7 -> -, firmware - -> 7, floor - -> 3');
  });

  it('export --format ingest: the ingest\'s format (0600), its parser derives the keys the image\'s secret gives; revoked devices left out; public has no secrets', async () => {
    const out = join(dir, 'ingest.json');
    const pub = join(dir, 'public.json');
    const [ing, pb, bad] = await batch([
      ['fleet', 'export', '--format', 'ingest', '--out', out, '--inventory', inv, '--json'],
      ['fleet', 'export', '--format', 'public', '--out', pub, '--inventory', inv],
      ['fleet', 'export', '--format', 'csv', '--out', pub, '--inventory', inv],
    ]);
    const fleet = loadFleet(inv);
    const live = fleet.devices.filter((d) => d.state !== 'revoked');
    assert.deepEqual(JSON.parse(expectExit(ing, 0, 'export ingest').stdout), { ok: true, format: 'ingest', file: out, entries: live.length });
    assert.equal(statSync(out).mode & 0o777, 0o600);
    const inventory = parseInventory(readFileSync(out, 'utf8'));
    assert.deepEqual([...inventory.devices].sort(), live.map((d) => d.deviceId).sort(), 'the revoked device is left out');
    const crypto = createNobleCrypto();
    for (const d of live) {
      const image = new Uint8Array(readFileSync(join(dir, 'made', `${d.deviceId}.hf_prov.bin`)));
      const reading = readProvisioning(crypto, image);
      assert.ok(reading.state === 'provisioned');
      const fromImage = deriveDeviceKeys(crypto, reading.identity.deviceSecret, reading.identity.deviceId, reading.identity.keyId);
      const known = inventory.keys.get(`${d.deviceId}/3`);
      assert.ok(known !== undefined, `${d.deviceId} key 3 known to the ingest`);
      assert.deepEqual([...known.keys.upChacha20Poly1305], [...fromImage.upChacha20Poly1305], 'the ingest derives the device\'s own key');
    }
    expectExit(pb, 0, 'export public');
    const publicText = readFileSync(pub, 'utf8');
    for (const d of fleet.devices) assert.ok(!publicText.includes(d.secret), 'public export has no secret');
    expectExit(bad, 2, 'unknown format');
  });

  it('a damaged inventory is refused naming the device and field, never the secret; a held lock is refused', async () => {
    const good = loadFleet(inv);
    const secret = good.devices[0].secret;
    const damaged = join(dir, 'damaged.json');
    writeFileSync(damaged, fleetText(good).replace(`"secret":"${secret}"`, `"secret":"${secret.slice(0, -1)}Z"`));
    const dup = join(dir, 'dup.json');
    writeFileSync(dup, fleetText({ ...good, devices: [good.devices[0], good.devices[0]] }));
    writeFileSync(`${inv}.lock`, '12345\n');
    const [d1, d2, locked] = await batch([
      ['fleet', 'ls', '--inventory', damaged],
      ['fleet', 'ls', '--inventory', dup, '--json'],
      ['fleet', 'revoke', ids[3], '--inventory', inv, '--sign-with', join(dir, 'revocation.key'), '--list', join(dir, 'locked.bin')],
    ]);
    rmSync(`${inv}.lock`);
    expectExit(d1, 1, 'damaged');
    assert.match(d1.stderr, /field devices\[\d\]\.secret: expected 64\.\.128 lowercase hex digits/);
    assert.ok(!d1.stderr.includes(secret.slice(0, 20)), 'the secret is not in the error');
    assert.match(jsonErrorOf(expectExit(d2, 1, 'duplicate'), 'duplicate').error.message, /listed twice/);
    expectExit(locked, 1, 'locked');
    assert.match(locked.stderr, /fleet\.json\.lock: is held by another holdfast run/);
    assert.equal(loadFleet(inv).devices.find((d) => d.deviceId === ids[3])!.state, 'active', 'nothing changed under a held lock');
    assert.throws(() => parseFleet('{"format":"holdfast-fleet/2","devices":[]}', 'x.json'), /format: expected "holdfast-fleet\/1"/);
  });

  it('broker-config from the CLI: 0600 passwords, an ACL per device (quarantine policy), services; a figure at 5,000 devices', async (t) => {
    const out = join(dir, 'broker');
    const [run, deny] = await batch([
      ['fleet', 'broker-config', '--out', out, '--inventory', inv, '--service', 'ingest', '--json'],
      ['fleet', 'broker-config', '--out', join(dir, 'broker-deny'), '--inventory', inv, '--quarantine', 'deny'],
    ]);
    const result = JSON.parse(expectExit(run, 0, 'broker-config').stdout);
    assert.deepEqual(result.counts, { active: 2, quarantined: 1, revoked: 1, excluded: 1 });
    assert.equal(statSync(join(out, 'passwords')).mode & 0o777, 0o600);
    assert.equal(statSync(join(out, 'services.json')).mode & 0o777, 0o600);
    assert.equal(statSync(out).mode & 0o777, 0o700);
    const acl = readFileSync(join(out, 'acl'), 'utf8');
    const fleet = loadFleet(inv);
    const quarantined = fleet.devices.find((d) => d.state === 'quarantined')!.deviceId;
    assert.match(acl, new RegExp(`user ${quarantined}\\ntopic read holdfast/${quarantined}/receipt\\ntopic read holdfast/${quarantined}/update\\ntopic read holdfast/fleet/revocation\\ntopic write holdfast/${quarantined}/telemetry\\n`));
    assert.match(readFileSync(join(out, 'mosquitto.conf'), 'utf8'), /allow_anonymous false/);
    expectExit(deny, 0, 'deny policy');
    assert.ok(!readFileSync(join(dir, 'broker-deny', 'passwords'), 'utf8').includes(quarantined), 'deny: no account for the quarantined device');

    const many: FleetDevice[] = Array.from({ length: 5000 }, (_, i) => ({ ...fleet.devices[0], deviceId: i.toString(16).padStart(16, '0'), state: 'active' as const }));
    const started = process.hrtime.bigint();
    const config = brokerConfig({ ...emptyFleet(), devices: many });
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    assert.equal(config.passwords.trim().split('\n').length, 5000);
    t.diagnostic(`broker-config: 5000 devices hashed (PBKDF2-SHA512, 101 iterations) and ACL written in ${ms.toFixed(0)} ms`);
  });
});
