/**
 * `holdfast fleet broker-config` against Debian's mosquitto 2.0
 * (tools/fleet/broker.ts, docs/design/fleet-identity.md "Broker"): the
 * `$7$` PBKDF2-SHA512 lines computed in Node are the format mosquitto_passwd
 * writes (a line it made verifies with our reader, and ours is accepted by
 * mosquitto itself); with the generated password and ACL files, a device
 * connects with the password derived from its secret, is refused with a
 * wrong one, cannot publish on another device's topic nor read another
 * device's command topic; a revoked device cannot connect; a quarantined
 * one (policy restrict) gets its updates but not its commands.
 *
 * Without mosquitto these tests skip with a message, except under CI.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findMosquitto, findMosquittoPasswd, requireComponents, skipUnless } from '../../tools/net/common.ts';
import { startMosquittoWithFiles, type MosquittoBroker } from '../../tools/net/mosquitto.ts';
import { brokerConfig, defaultServices, mosquittoPbkdf2Hash, verifyMosquittoHash } from '../../tools/fleet/broker.ts';
import { emptyFleet, type Fleet, type FleetDevice } from '../../tools/fleet/inventory.ts';
import { deriveBrokerPassword } from '../../firmware/security/provisioning.ts';
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { client, endAll, refusedConnect, subscriber } from '../net/net-helpers.ts';

const needs = [findMosquitto(), findMosquittoPasswd()];
const skip = skipUnless(needs);

function device(deviceId: string, state: FleetDevice['state'], secretByte: number): FleetDevice {
  return {
    deviceId,
    board: 'esp32-devkitc',
    suite: 'hmac-sha256',
    secret: secretByte.toString(16).padStart(2, '0').repeat(32),
    state,
    cohort: null,
    gateway: null,
    firmware: { version: null, securityFloor: null },
    keys: [{ keyId: 1, publicKey: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a', status: state === 'revoked' ? 'revoked' : 'current', sinceCounter: 0, untilCounter: null, changedAt: '2026-01-01T00:00:00.000Z' }],
    provisionedAt: '2026-01-01T00:00:00.000Z',
    history: [],
  };
}

const A = device('a0000000000000a1', 'active', 0x11);
const B = device('b0000000000000b2', 'active', 0x22);
const Q = device('c0000000000000c3', 'quarantined', 0x33);
const R = device('d0000000000000d4', 'revoked', 0x44);

function passwordOf(d: FleetDevice): string {
  return deriveBrokerPassword(createNobleCrypto(), new Uint8Array(Buffer.from(d.secret, 'hex')), new Uint8Array(Buffer.from(d.deviceId, 'hex')));
}

describe('the $7$ password hash', () => {
  it('matches mosquitto_passwd\'s format: $7$<iterations>$<base64 12-byte salt>$<base64 64-byte PBKDF2-SHA512>', { skip }, () => {
    requireComponents(needs);
    const passwd = findMosquittoPasswd();
    assert.ok(passwd.ok);
    const dir = mkdtempSync(join(tmpdir(), 'holdfast-passwd-'));
    try {
      const file = join(dir, 'p');
      writeFileSync(file, '');
      const run = spawnSync(passwd.path, ['-b', file, 'someone', 'the-password'], { encoding: 'utf8' });
      assert.equal(run.status, 0, run.stderr);
      const line = readFileSync(file, 'utf8').trim();
      const [user, hash] = line.split(':');
      assert.equal(user, 'someone');
      assert.match(hash, /^\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$/, 'mosquitto_passwd 2.0 writes 101 iterations, 12 salt bytes, 64 hash bytes');
      assert.ok(verifyMosquittoHash('the-password', hash), 'mosquitto_passwd\'s hash verifies with our PBKDF2');
      assert.ok(!verifyMosquittoHash('the-passwore', hash));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const ours = mosquittoPbkdf2Hash('x', 101, new Uint8Array(12));
    assert.match(ours, /^\$7\$101\$AAAAAAAAAAAAAAAA\$[A-Za-z0-9+/]{86}==$/);
    assert.ok(verifyMosquittoHash('x', ours));
  });
});

describe('mosquitto with the generated password and ACL files', { skip }, () => {
  let broker: MosquittoBroker;
  let dir: string;
  const services = defaultServices(['backend']);
  const backend = { username: services[0].username, password: services[0].password };

  before(async () => {
    requireComponents(needs);
    dir = mkdtempSync(join(tmpdir(), 'holdfast-broker-config-'));
    const fleet: Fleet = { ...emptyFleet(), devices: [A, B, Q, R] };
    const config = brokerConfig(fleet, { services });
    assert.deepEqual(config.counts, { active: 2, quarantined: 1, revoked: 1, excluded: 1 });
    assert.ok(!config.passwords.includes(R.deviceId), 'no password line for the revoked device');
    writeFileSync(join(dir, 'passwords'), config.passwords, { mode: 0o600 });
    writeFileSync(join(dir, 'acl'), config.acl);
    broker = await startMosquittoWithFiles({ passwordFile: join(dir, 'passwords'), aclFile: join(dir, 'acl') }, { debugLog: true });
  });
  after(async () => {
    await endAll();
    await broker?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('a device connects with the password derived from its secret, and is refused with a wrong one or as another device', async () => {
    const a = await client(broker.port, { protocolVersion: 5, clientId: 'a-ok', username: A.deviceId, password: passwordOf(A) });
    assert.ok(a.connected);
    const wrong = await refusedConnect(broker.port, { protocolVersion: 5, clientId: 'a-wrong', username: A.deviceId, password: `${passwordOf(A).slice(0, -1)}0` });
    assert.equal(wrong.code, 0x87, 'mosquitto 2.0.11 answers a wrong password with CONNACK 0x87');
    const swapped = await refusedConnect(broker.port, { protocolVersion: 5, clientId: 'a-as-b', username: B.deviceId, password: passwordOf(A) });
    assert.equal(swapped.code, 0x87, 'A\'s password is not B\'s');
  });

  it('a revoked device has no account: refused at CONNECT', async () => {
    const refused = await refusedConnect(broker.port, { protocolVersion: 5, clientId: 'r', username: R.deviceId, password: passwordOf(R) });
    assert.equal(refused.code, 0x87);
  });

  it('a device publishes its own telemetry; another device\'s topic gets PUBACK 0x87 and is not delivered', async () => {
    const sub = await subscriber(broker.port, { protocolVersion: 5, clientId: 'backend-t', ...backend }, 'holdfast/+/telemetry');
    const a = await client(broker.port, { protocolVersion: 5, clientId: 'a-pub', username: A.deviceId, password: passwordOf(A) });
    await assert.rejects(a.publishAsync(`holdfast/${B.deviceId}/telemetry`, 'forged', { qos: 1 }), (e: Error & { code?: number }) => e.code === 0x87);
    await assert.rejects(a.publishAsync(`holdfast/${A.deviceId}/receipt`, 'self-receipt', { qos: 1 }), (e: Error & { code?: number }) => e.code === 0x87);
    await a.publishAsync(`holdfast/${A.deviceId}/telemetry`, 'own', { qos: 1 });
    const got = await sub.waitFor(1);
    assert.deepEqual(got.map((g) => [g.topic, g.payload.toString()]), [[`holdfast/${A.deviceId}/telemetry`, 'own']]);
    assert.match(broker.log(), new RegExp(`Denied PUBLISH from a-pub .*'holdfast/${B.deviceId}/telemetry'`));
  });

  it('a device reads its own command topic, not another device\'s; a quarantined device gets updates, not commands', async () => {
    const a = await subscriber(broker.port, { protocolVersion: 5, clientId: 'a-sub', username: A.deviceId, password: passwordOf(A) }, `holdfast/${A.deviceId}/cmd`);
    await a.client.subscribeAsync(`holdfast/${B.deviceId}/cmd`, { qos: 1 });
    const q = await subscriber(broker.port, { protocolVersion: 5, clientId: 'q-sub', username: Q.deviceId, password: passwordOf(Q) }, `holdfast/${Q.deviceId}/cmd`);
    await q.client.subscribeAsync(`holdfast/${Q.deviceId}/update`, { qos: 1 });
    const sender = await client(broker.port, { protocolVersion: 5, clientId: 'backend-c', ...backend });
    await sender.publishAsync(`holdfast/${B.deviceId}/cmd`, 'for-b', { qos: 1 });
    await sender.publishAsync(`holdfast/${Q.deviceId}/cmd`, 'cmd-q', { qos: 1 });
    await sender.publishAsync(`holdfast/${Q.deviceId}/update`, 'update-q', { qos: 1 });
    await sender.publishAsync(`holdfast/${A.deviceId}/cmd`, 'for-a', { qos: 1 });
    // Each subscriber's last expected message comes after the ones it must not get (one publisher, in order).
    assert.deepEqual((await a.waitFor(1)).map((g) => g.payload.toString()), ['for-a'], 'A got its own command, not B\'s');
    assert.deepEqual((await q.waitFor(1)).map((g) => g.payload.toString()), ['update-q'], 'the quarantined device got its update, not its command');
  });

  it('the fleet-wide revocation list: the backend publishes it retained, every device with an account reads it (also after the fact), no device may publish it', async () => {
    const sender = await client(broker.port, { protocolVersion: 5, clientId: 'backend-r', ...backend });
    await sender.publishAsync('holdfast/fleet/revocation', 'list-1', { qos: 1, retain: true });
    const a = await subscriber(broker.port, { protocolVersion: 5, clientId: 'a-rev', username: A.deviceId, password: passwordOf(A) }, 'holdfast/fleet/revocation');
    const q = await subscriber(broker.port, { protocolVersion: 5, clientId: 'q-rev', username: Q.deviceId, password: passwordOf(Q) }, 'holdfast/fleet/revocation');
    assert.deepEqual((await a.waitFor(1)).map((g) => [g.topic, g.payload.toString()]), [['holdfast/fleet/revocation', 'list-1']], 'A got the retained list');
    assert.deepEqual((await q.waitFor(1)).map((g) => g.payload.toString()), ['list-1'], 'the quarantined device too');
    await assert.rejects(a.client.publishAsync('holdfast/fleet/revocation', 'forged', { qos: 1, retain: true }), (e: Error & { code?: number }) => e.code === 0x87);
  });
});
