/**
 * `holdfast ingest run` / `holdfast ingest report` as the CLI contract
 * (docs/cli.md): help, usage errors (exit 2 naming the flag), inventory
 * errors (exit 1 naming the file and field, never a secret), the database
 * lock, a report of a missing database, JSON error objects; and the Node
 * primitives agree with the portable ones (the ingest verifies with them).
 * No broker needed.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { batch, expectExit, assertOneLineError, jsonErrorOf, transcript } from '../cli/cli-harness.ts';
import { envelopePrimitives } from '../../firmware/security/envelope-primitives.ts';
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { EnvelopeSuite } from '../../firmware/security/envelope-format.ts';
import { nodeEnvelopePrimitives } from '../../tools/ingest/node-primitives.ts';
import { Rng } from '../../tools/sim/rng.ts';
import { inventoryJson, makeFleet, tempDir } from './ingest-helpers.ts';

const t = tempDir();
after(() => t.cleanup());

describe('holdfast ingest: CLI contract', () => {
  it('help, usage errors, inventory errors without secrets, missing database, lock', async () => {
    const fleet = makeFleet(2);
    const good = join(t.dir, 'devices.json');
    writeFileSync(good, inventoryJson(fleet));
    const badSecret = join(t.dir, 'bad-secret.json');
    const secretShort = fleet[0].secretHex.slice(0, 60);
    writeFileSync(badSecret, JSON.stringify({ format: 1, devices: [{ deviceId: fleet[0].name, keyId: 1, secret: secretShort, suite: 'hmac-sha256' }] }));
    const twice = join(t.dir, 'twice.json');
    writeFileSync(twice, JSON.stringify({ format: 1, devices: [0, 0].map(() => ({ deviceId: fleet[0].name, keyId: 1, secret: fleet[0].secretHex, suite: 'hmac-sha256' })) }));
    const notJson = join(t.dir, 'not.json');
    writeFileSync(notJson, `{"format": 1, "devices": [{"secret": "${fleet[1].secretHex}" oops`);
    const extra = join(t.dir, 'extra.json');
    writeFileSync(extra, JSON.stringify({ format: 1, devices: [{ deviceId: fleet[0].name, keyId: 1, secret: fleet[0].secretHex, suite: 'hmac-sha256', note: fleet[1].secretHex }] }));
    const locked = join(t.dir, 'locked');
    mkdirSync(locked);
    // A live process (this test's parent's child) holds the lock.
    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    writeFileSync(join(locked, 'lock'), `${holder.pid}\n`);
    mkdirSync(join(locked, 'pg'));
    const base = ['--broker', 'mqtt://127.0.0.1:1', '--db', join(t.dir, 'db')];
    try {
      const runs = await batch([
        ['ingest', '--help'],
        ['ingest', 'run', '--help'],
        ['ingest', 'report', '--help'],
        ['ingest', ...base],
        ['ingest', 'run', '--broker', 'http://x:1', '--db', join(t.dir, 'db'), '--devices', good],
        ['ingest', 'run', ...base, '--devices', good, '--batch', '0', '--json'],
        ['ingest', 'run', ...base, '--devices', badSecret],
        ['ingest', 'run', ...base, '--devices', twice, '--json'],
        ['ingest', 'run', ...base, '--devices', notJson],
        ['ingest', 'run', ...base, '--devices', extra],
        ['ingest', 'run', ...base, '--devices', join(t.dir, 'missing.json')],
        ['ingest', 'report', '--db', join(t.dir, 'nothing-here'), '--json'],
        ['ingest', 'report', '--db', locked],
      ]);
      const [help, runHelp, reportHelp, noDevices, badBroker, badBatch, short, dup, broken, unknownField, missing, noDb, held] = runs;
      assert.match(expectExit(help, 0, 'ingest --help').stdout, /run \[options\][\s\S]*report \[options\]/);
      assert.match(expectExit(runHelp, 0, 'ingest run --help').stdout, /--broker <url>[\s\S]*--devices <file>[\s\S]*--batch <n>/);
      assert.match(expectExit(reportHelp, 0, 'ingest report --help').stdout, /--db <dir-or-url>/);
      assert.match(runHelp.stdout, /--db <dir-or-url>[\s\S]*--shared-group <name>[\s\S]*--linger-ms <ms>/);
      expectExit(noDevices, 2, 'a required flag missing');
      assert.match(noDevices.stderr, /--devices/);
      expectExit(badBroker, 2, 'a broker that is not mqtt://host:port');
      assert.match(assertOneLineError(badBroker, 'ingest run', 'bad broker'), /--broker.*mqtt:\/\/host:port/);
      expectExit(badBatch, 2, '--batch 0');
      assert.equal(jsonErrorOf(badBatch, '--batch 0').error.field, '--batch');
      expectExit(short, 1, 'a short secret');
      const line = assertOneLineError(short, 'ingest run', 'short secret');
      assert.ok(line.includes(badSecret) && line.includes('devices[0].secret') && line.includes('64..128'), line);
      expectExit(dup, 1, 'a key listed twice');
      const dupError = jsonErrorOf(dup, 'twice');
      assert.equal(dupError.error.code, 'invalid-file');
      assert.equal(dupError.error.field, 'devices[1]');
      expectExit(broken, 1, 'not JSON');
      assert.match(assertOneLineError(broken, 'ingest run', 'not JSON'), /not JSON \(at byte \d+\)/);
      expectExit(unknownField, 1, 'unknown field');
      assert.match(assertOneLineError(unknownField, 'ingest run', 'unknown field'), /unknown field\(s\) note/);
      expectExit(missing, 1, 'a missing inventory');
      assert.match(assertOneLineError(missing, 'ingest run', 'missing'), /missing\.json: does not exist/);
      expectExit(noDb, 1, 'report of a folder without a database');
      assert.equal(jsonErrorOf(noDb, 'no db').error.code, 'not-found');
      expectExit(held, 1, 'report while another process holds the lock');
      assert.match(assertOneLineError(held, 'ingest report', 'locked'), new RegExp(`in use by process ${holder.pid}`));
      for (const secret of [...fleet.map((d) => d.secretHex), secretShort]) {
        assert.ok(!transcript.some((text) => text.includes(secret)), 'no secret is ever printed');
      }
    } finally {
      holder.kill('SIGKILL');
    }
  });
});

describe('holdfast ingest: CLI contract of the scaled-out ingest (no server needed)', () => {
  it('--shared-group, --db postgres://, --linger-ms: usage errors name the flag; an unreachable server is one line without its password', async () => {
    const fleet = makeFleet(1);
    const good = join(t.dir, 'devices-pg.json');
    writeFileSync(good, inventoryJson(fleet));
    const broker = ['--broker', 'mqtt://127.0.0.1:1', '--devices', good];
    const pgUrl = 'postgres://holdfast:s3cretpw@127.0.0.1:1/ingest';
    const runs = await batch([
      ['ingest', 'run', ...broker, '--db', join(t.dir, 'folder'), '--shared-group', 'g', '--client-id', 'w1', '--json'],
      ['ingest', 'run', ...broker, '--db', pgUrl, '--shared-group', 'g', '--json'],
      ['ingest', 'run', ...broker, '--db', pgUrl, '--shared-group', 'a/b', '--client-id', 'w1'],
      ['ingest', 'run', ...broker, '--db', pgUrl, '--shared-group', 'g', '--client-id', 'w1', '--protocol-version', '4'],
      ['ingest', 'run', ...broker, '--db', 'postgres://', '--json'],
      ['ingest', 'run', ...broker, '--db', join(t.dir, 'folder'), '--linger-ms', '10001', '--json'],
      ['ingest', 'run', ...broker, '--db', pgUrl, '--shared-group', 'g', '--client-id', 'w1', '--json'],
      ['ingest', 'report', '--db', pgUrl],
    ]);
    const [folder, noClientId, badGroup, v4, badUrl, badLinger, unreachable, reportUnreachable] = runs;
    expectExit(folder, 2, '--shared-group on a folder');
    assert.equal(jsonErrorOf(folder, 'folder').error.field, '--shared-group');
    expectExit(noClientId, 2, '--shared-group without --client-id');
    assert.match(jsonErrorOf(noClientId, 'client id').error.message, /--client-id/);
    expectExit(badGroup, 2, 'a group with a slash');
    assert.match(assertOneLineError(badGroup, 'ingest run', 'bad group'), /--shared-group/);
    expectExit(v4, 2, 'shared subscriptions on MQTT 3.1.1');
    expectExit(badUrl, 2, 'postgres:// without a host');
    assert.equal(jsonErrorOf(badUrl, 'bad url').error.field, '--db');
    expectExit(badLinger, 2, '--linger-ms out of range');
    assert.equal(jsonErrorOf(badLinger, 'linger').error.field, '--linger-ms');
    expectExit(unreachable, 1, 'a server that does not answer');
    const error = jsonErrorOf(unreachable, 'unreachable').error;
    assert.equal(error.code, 'io');
    assert.match(error.message, /cannot open the PostgreSQL database postgres:\/\/holdfast:\*\*\*@127\.0\.0\.1:1\/ingest/);
    expectExit(reportUnreachable, 1, 'report of a server that does not answer');
    assertOneLineError(reportUnreachable, 'ingest report', 'report unreachable');
    assert.ok(!transcript.some((text) => text.includes('s3cretpw')), 'the database password is never printed');
  });
});

describe('Node envelope primitives agree with the portable ones', () => {
  it('HMAC-SHA-256, ChaCha20-Poly1305 and AES-256-GCM: same bytes, same refusals', () => {
    const node = nodeEnvelopePrimitives();
    const noble = envelopePrimitives(createNobleCrypto());
    const rng = new Rng(99);
    for (let i = 0; i < 200; i++) {
      const key = new Uint8Array(32);
      rng.fill(key);
      const nonce = new Uint8Array(12);
      rng.fill(nonce);
      const data = new Uint8Array(rng.below(300));
      rng.fill(data);
      const aad = new Uint8Array(21);
      rng.fill(aad);
      assert.deepEqual(node.hmacSha256(key, data), noble.hmacSha256(key, data));
      for (const suite of [EnvelopeSuite.chacha20Poly1305, EnvelopeSuite.aes256Gcm] as const) {
        const sealed = node.aeadSeal(suite, key, nonce, data, aad);
        assert.deepEqual(sealed, noble.aeadSeal(suite, key, nonce, data, aad));
        assert.deepEqual(node.aeadOpen(suite, key, nonce, sealed, aad), data);
        const bad = sealed.slice();
        bad[rng.below(bad.length)] ^= 1 << rng.below(8);
        assert.equal(node.aeadOpen(suite, key, nonce, bad, aad), undefined);
        assert.equal(noble.aeadOpen(suite, key, nonce, bad, aad), undefined);
      }
    }
  });
});
