/**
 * `holdfast fleet rotate` (tools/fleet/rotate.ts, docs/spec/key-rotation.md,
 * "The authority"): the rotate-key command, a request verified against the
 * inventory's current key and recorded (old key retired, new key current
 * with the secret the device computes too), the confirmation for the
 * device, a repeated request confirmed again without a change, refusals
 * (a forged or stale request, another device), the bound, the ingest
 * export, and the CLI's three steps with --json.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { ed25519PublicKeyOf } from '../../firmware/security/key-ed25519.ts';
import { deviceRotationSecret, signRotationRequest } from '../../firmware/security/key-rotation.ts';
import { openCommand } from '../../firmware/security/envelope-command.ts';
import { envelopePrimitives } from '../../firmware/security/envelope-primitives.ts';
import { commandKeyId } from '../../firmware/security/envelope-command.ts';
import { decodeCommandPayload, COMMAND_POLICY } from '../../firmware/runtime/commands.ts';
import { emptyFleet, fleetText, loadFleet, toIngestInventory, type FleetDevice } from '../../tools/fleet/inventory.ts';
import { fileFleetStore } from '../../tools/fleet/store.ts';
import { confirmRotation, recordKeyBound, rotateKeyCommand } from '../../tools/fleet/rotate.ts';
import { parseInventory } from '../../tools/ingest/inventory.ts';

const BIN = fileURLToPath(new URL('../../bin/holdfast.js', import.meta.url));
const crypto = createNobleCrypto();
const AUTHORITY = new Uint8Array(32).fill(0x5c);
const DEVICE_SEED = new Uint8Array(32).fill(0x3e);
const NEW_SEED = new Uint8Array(32).fill(0x71);
const DEVICE = 'd10000000000000a';
/** Every counter fresh: the test checks signatures and payloads, not freshness. */
const ANY_FRESH = { check: () => 'fresh' as const, accept: () => undefined };
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const idBytes = new Uint8Array(Buffer.from(DEVICE, 'hex'));

function device(): FleetDevice {
  return {
    deviceId: DEVICE,
    board: 'esp32-devkitc',
    suite: 'hmac-sha256',
    secret: '11'.repeat(32),
    state: 'active',
    cohort: null,
    gateway: null,
    firmware: { version: null, securityFloor: null },
    keys: [{ keyId: 1, publicKey: hex(ed25519PublicKeyOf(DEVICE_SEED)), status: 'current', sinceCounter: 0, untilCounter: null, changedAt: '2026-01-01T00:00:00Z' }],
    provisionedAt: '2026-01-01T00:00:00Z',
    history: [],
  };
}

function setup(): { dir: string; path: string } {
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-rotate-'));
  const path = join(dir, 'fleet.json');
  writeFileSync(path, fleetText({ ...emptyFleet(), devices: [device()] }));
  return { dir, path };
}

function request(oldSeed = DEVICE_SEED, oldKeyId = 1, counter = 41): Uint8Array {
  return signRotationRequest(crypto, { deviceId: idBytes, oldKeyId, newKeyId: oldKeyId + 1, requestCounter: counter, newPublicKey: ed25519PublicKeyOf(NEW_SEED) }, oldSeed, NEW_SEED);
}

describe('fleet rotate', () => {
  it('records a verified request, confirms it with a signed command the device opens, repeats, refuses forgeries, bounds the old key', async () => {
    const { dir, path } = setup();
    try {
      const store = fileFleetStore(path);
      const start = await rotateKeyCommand(store, DEVICE, { seed: AUTHORITY, counter: 7 });
      assert.equal(start.keyId, 2);
      const commandKey = { keyId: commandKeyId(crypto, ed25519PublicKeyOf(AUTHORITY)), publicKey: ed25519PublicKeyOf(AUTHORITY) };
      const opened = openCommand(start.command, { primitives: envelopePrimitives(crypto), deviceId: idBytes, commandKeys: [commandKey], replay: ANY_FRESH });
      const payload = decodeCommandPayload(COMMAND_POLICY, opened.payload);
      assert.ok(payload.ok && payload.command.row.name === 'rotate-key' && payload.command.parameters.keyId === 2);

      // A request signed by another key than the inventory's current one is refused, nothing recorded.
      await assert.rejects(confirmRotation(store, request(new Uint8Array(32).fill(9)), { seed: AUTHORITY, counter: 8 }), /old key did not sign/);
      assert.equal(loadFleet(path).devices[0].keys.length, 1);
      await assert.rejects(confirmRotation(store, request(DEVICE_SEED, 5), { seed: AUTHORITY, counter: 8 }), /rotates key 5/);

      const confirmed = await confirmRotation(store, request(), { seed: AUTHORITY, counter: 8 });
      assert.equal(confirmed.inventory, 'recorded');
      assert.equal(confirmed.newKeyId, 2);
      const confirm = decodeCommandPayload(COMMAND_POLICY, openCommand(confirmed.command, { primitives: envelopePrimitives(crypto), deviceId: idBytes, commandKeys: [commandKey], replay: ANY_FRESH }).payload);
      assert.ok(confirm.ok && confirm.command.row.name === 'confirm-key-rotation');
      assert.equal(confirm.ok ? confirm.command.parameters.keyId : 0, 2);
      const fleet = loadFleet(path);
      const keys = fleet.devices[0].keys;
      assert.deepEqual(keys.map((k) => [k.keyId, k.status]), [[1, 'retired'], [2, 'current']]);
      // The secret the inventory holds is the one the device derives itself.
      assert.equal(keys[1].secret, hex(deviceRotationSecret(crypto, NEW_SEED, ed25519PublicKeyOf(AUTHORITY), idBytes, 2)));
      assert.ok(fleet.devices[0].history.some((e) => e.event === 'key-rotated'));

      // The same request again: confirmed again, nothing changes.
      const again = await confirmRotation(store, request(), { seed: AUTHORITY, counter: 9 });
      assert.equal(again.inventory, 'already');
      assert.equal(loadFleet(path).devices[0].keys.length, 2);

      // Both keys reach the ingest, each with its secret; the bound once known.
      let ingest = parseInventory(JSON.stringify(toIngestInventory(loadFleet(path))));
      assert.deepEqual(ingest.rotated.get(DEVICE), [1, 2]);
      assert.equal(ingest.keys.get(`${DEVICE}/1`)?.untilCounter, undefined);
      const bound = await recordKeyBound(store, DEVICE, 2, 43);
      assert.deepEqual(bound, { retiredKeyId: 1, untilCounter: 43 });
      ingest = parseInventory(JSON.stringify(toIngestInventory(loadFleet(path))));
      assert.equal(ingest.keys.get(`${DEVICE}/1`)?.untilCounter, 43);
      await assert.rejects(recordKeyBound(store, DEVICE, 2, 44), /already bounded/);
      // fleet show never prints a key's secret.
      const shown = execFileSync(process.execPath, [BIN, 'fleet', 'show', DEVICE, '--inventory', path, '--json'], { encoding: 'utf8' });
      assert.ok(!shown.includes(keys[1].secret as string), 'no key secret in fleet show');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the CLI: start, confirm (--request, also from stdin), bound, with --json; bad usage exits 2', () => {
    const { dir, path } = setup();
    try {
      const seedFile = join(dir, 'command.seed');
      writeFileSync(seedFile, hex(AUTHORITY), { mode: 0o600 });
      const run = (args: string[], input?: Uint8Array) => spawnSync(process.execPath, [BIN, 'fleet', 'rotate', ...args, '--inventory', path, '--json'], { encoding: 'utf8', ...(input ? { input } : {}) });
      const start = run([DEVICE, '--sign-with', seedFile, '--counter', '3', '--out', join(dir, 'start.bin')]);
      assert.equal(start.status, 0, start.stderr);
      assert.equal(JSON.parse(start.stdout).keyId, 2);
      const requestFile = join(dir, 'request.bin');
      writeFileSync(requestFile, request());
      const confirm = run(['--request', requestFile, '--sign-with', seedFile, '--counter', '4', '--out', join(dir, 'confirm.bin')]);
      assert.equal(confirm.status, 0, confirm.stderr);
      assert.equal(JSON.parse(confirm.stdout).inventory, 'recorded');
      assert.ok(readFileSync(join(dir, 'confirm.bin')).length > 64);
      const fromStdin = run(['--request', '-', '--sign-with', seedFile, '--counter', '5', '--out', join(dir, 'confirm2.bin')], request());
      assert.equal(fromStdin.status, 0, fromStdin.stderr);
      assert.equal(JSON.parse(fromStdin.stdout).inventory, 'already');
      const bound = run([DEVICE, '--key-id', '2', '--since', '42']);
      assert.equal(bound.status, 0, bound.stderr);
      assert.equal(JSON.parse(bound.stdout).untilCounter, 42);
      const both = run([DEVICE, '--request', requestFile, '--sign-with', seedFile, '--counter', '6']);
      assert.equal(both.status, 2);
      assert.equal(JSON.parse(both.stdout).ok, false);
      const forged = request(new Uint8Array(32).fill(3));
      const bad = run(['--request', '-', '--sign-with', seedFile, '--counter', '7'], forged);
      assert.equal(bad.status, 1);
      assert.equal(bad.stderr.split('\n').filter((l) => l.length > 0).length <= 1, true, 'one line');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
