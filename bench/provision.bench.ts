/**
 * A provisioning burst (issue 20): `holdfast provision --count 1000` in its
 * own process (identities, hf_prov images, inventory, manifest), then every
 * image checked against the inventory (a device whose image does not read
 * back to its inventory entry, or that is missing from either, is a lost
 * enrollment); `holdfast fleet broker-config` for the 1,000 devices; then
 * Debian's mosquitto with the generated files and all 1,000 devices
 * connecting at once with the passwords derived from their images (a
 * refused or failed connection is a lost enrollment too).
 *
 * All on one 2-core machine: the CLI, the broker and the 1,000 clients.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { holdfast } from '../test/cli/cli-harness.ts';
import { findMosquitto, LOOPBACK } from '../tools/net/common.ts';
import { startMosquittoWithFiles } from '../tools/net/mosquitto.ts';
import { loadFleet } from '../tools/fleet/inventory.ts';
import { createNobleCrypto } from '../firmware/security/noble-crypto.ts';
import { deriveBrokerPassword, readProvisioning } from '../firmware/security/provisioning.ts';
import { keyFromSeed } from '../tools/keys/signer.ts';
import type { BenchGroup, Figure } from './figures.ts';

const DEVICES = 1000;
const BOARD = 'esp32-devkitc';

export interface BurstResult {
  provisionSeconds: number;
  lost: number;
  brokerConfigSeconds: number;
  connectSeconds: number;
  connectLost: number;
}

export async function runProvisionBurst(progress: (line: string) => void, devices = DEVICES): Promise<BurstResult> {
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-provision-bench-'));
  try {
    writeFileSync(join(dir, 'command.pub'), Buffer.from(keyFromSeed(new Uint8Array(32).fill(7)).publicKey).toString('hex'));
    const inventory = join(dir, 'fleet.json');
    const out = join(dir, 'images');
    progress(`provisioning ${devices} devices`);
    let started = process.hrtime.bigint();
    const made = await holdfast(['provision', '--board', BOARD, '--out', out, '--inventory', inventory, '--count', String(devices), '--command-key', join(dir, 'command.pub'), '--broker', `${LOOPBACK}:1883`, '--json'], { timeout: 600_000 });
    const provisionSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (made.status !== 0) throw new Error(`provision failed: ${made.stderr}`);
    const manifest = JSON.parse(made.stdout) as { devices: { deviceId: string; file: string }[] };
    const fleet = loadFleet(inventory);
    const byId = new Map(fleet.devices.map((d) => [d.deviceId, d]));
    const crypto = createNobleCrypto();
    const passwords = new Map<string, string>();
    for (const m of manifest.devices) {
      const entry = byId.get(m.deviceId);
      const reading = readProvisioning(crypto, new Uint8Array(readFileSync(join(out, m.file))));
      if (entry === undefined || reading.state !== 'provisioned' || Buffer.from(reading.identity.deviceSecret).toString('hex') !== entry.secret) continue;
      passwords.set(m.deviceId, deriveBrokerPassword(crypto, reading.identity.deviceSecret, reading.identity.deviceId));
    }
    const lost = devices - passwords.size + Math.abs(fleet.devices.length - devices);

    progress('broker-config');
    started = process.hrtime.bigint();
    const config = await holdfast(['fleet', 'broker-config', '--out', join(dir, 'broker'), '--inventory', inventory, '--json']);
    const brokerConfigSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (config.status !== 0) throw new Error(`broker-config failed: ${config.stderr}`);

    progress(`${devices} devices connect at once`);
    const broker = await startMosquittoWithFiles({ passwordFile: join(dir, 'broker', 'passwords'), aclFile: join(dir, 'broker', 'acl') });
    let connectLost = devices - passwords.size;
    started = process.hrtime.bigint();
    const clients: mqtt.MqttClient[] = [];
    try {
      const results = await Promise.allSettled(
        [...passwords].map(async ([deviceId, password]) => {
          const c = await mqtt.connectAsync({ host: LOOPBACK, port: broker.port, protocolVersion: 5, clientId: deviceId, username: deviceId, password, reconnectPeriod: 0, connectTimeout: 60_000 });
          clients.push(c);
        }),
      );
      connectLost += results.filter((r) => r.status === 'rejected').length;
    } finally {
      await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
      await broker.stop();
    }
    const connectSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    return { provisionSeconds, lost, brokerConfigSeconds, connectSeconds, connectLost };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const provisionBench: BenchGroup = {
  title: 'Provisioning burst',
  prefix: 'provision.',
  workload:
    `\`holdfast provision --board ${BOARD} --count ${DEVICES.toLocaleString('en-US')}\` in its own process (device id, secret and Ed25519 key pair per device from node:crypto, ` +
    'a 4 KiB hf_prov image each, 0600, registered in the inventory in steps of 250 before the images are written, manifest), then every image read back with the firmware reader and compared with its inventory entry; ' +
    '`holdfast fleet broker-config` (PBKDF2-SHA512, 101 iterations, per device); then Debian\'s mosquitto 2.0 with the generated files and all devices connecting at once (MQTT 5) with the password derived from their image. ' +
    'A lost enrollment is a device missing from the inventory or the manifest, an image that does not read back to its entry, or a refused connection. CLI, broker and clients share the 2-core machine.',
  async run(progress) {
    if (!findMosquitto().ok) throw new Error('mosquitto is not installed (apt-get install mosquitto)');
    const r = await runProvisionBurst(progress);
    const figures: Figure[] = [
      { name: 'provision.burst.seconds', value: Number(r.provisionSeconds.toFixed(2)), unit: 's', label: `holdfast provision --count ${DEVICES}, wall time including the CLI start`, kind: 'timing' },
      { name: 'provision.burst.lost', value: r.lost, unit: 'devices', label: 'enrollments lost: missing from inventory or manifest, or an image that does not match its entry', kind: 'count', target: '0', limit: 0, direction: 'max' },
      { name: 'provision.brokerConfig.seconds', value: Number(r.brokerConfigSeconds.toFixed(2)), unit: 's', label: `holdfast fleet broker-config for ${DEVICES} devices, wall time including the CLI start`, kind: 'timing', anchor: 'mosquitto_passwd once per account: 43 s at 500 devices' },
      { name: 'provision.burst.connectSeconds', value: Number(r.connectSeconds.toFixed(2)), unit: 's', label: `${DEVICES} devices connecting at once to mosquitto with the generated credentials`, kind: 'timing' },
      { name: 'provision.burst.connectLost', value: r.connectLost, unit: 'devices', label: 'devices refused or failing to connect', kind: 'count', target: '0', limit: 0, direction: 'max' },
    ];
    return figures;
  },
};
