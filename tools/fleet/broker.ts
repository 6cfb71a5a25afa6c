/**
 * Broker credentials from the inventory (docs/design/fleet-identity.md,
 * "Broker"): mosquitto's password file and ACL file.
 *
 * Passwords: each device's is derived from its secret
 * (`deriveBrokerPassword`, docs/spec/provisioning.md), so the device and
 * this generator agree without a second secret. The password file holds
 * only mosquitto's salted PBKDF2-SHA512 hash of it, in the `$7$` format
 * mosquitto_passwd writes (mosquitto 2.0, apps/mosquitto_passwd): one line
 * `user:$7$<iterations>$<base64 12-byte salt>$<base64 64-byte hash>`, the
 * hash PBKDF2-HMAC-SHA512(password bytes, salt bytes, iterations, 64). It is
 * computed here (node:crypto) instead of one mosquitto_passwd run per
 * account.
 *
 * ACL: each device may publish only `holdfast/<id>/telemetry` and read only
 * its own receipt, command and update topics. Revoked devices get neither a
 * password line nor an ACL line (the broker refuses them at CONNECT).
 * Quarantined devices, by policy: `restrict` (default) keeps telemetry
 * (diagnostics, health), receipts and updates and drops the command topic;
 * `deny` treats them as revoked. Services (the ingest and the command and
 * update senders) get random passwords, returned once to be written to a
 * 0600 file.
 *
 * Host tool (Node).
 */
import { pbkdf2Sync, randomBytes } from 'node:crypto';
import { deriveBrokerPassword } from '../../firmware/security/provisioning.ts';
import { hostCrypto } from '../keys/signer.ts';
import type { Fleet, FleetDevice } from './inventory.ts';

/** mosquitto_passwd's default iteration count in mosquitto 2.0 (PW_DEFAULT_ITERATIONS). */
export const MOSQUITTO_DEFAULT_ITERATIONS = 101;
/** mosquitto_passwd's salt length (SALT_LEN). */
export const MOSQUITTO_SALT_BYTES = 12;
export const MOSQUITTO_HASH_BYTES = 64;
export const TOPIC_ROOT = 'holdfast';
/** Where the fleet publishes its signed revocation list, retained (the runtime's REVOCATION_TOPIC). */
export const REVOCATION_LIST_TOPIC = `${TOPIC_ROOT}/fleet/revocation`;

export type QuarantinePolicy = 'restrict' | 'deny';

/** One password file line's hash: `$7$<iterations>$<salt b64>$<hash b64>`. */
export function mosquittoPbkdf2Hash(password: string, iterations: number = MOSQUITTO_DEFAULT_ITERATIONS, salt: Uint8Array = new Uint8Array(randomBytes(MOSQUITTO_SALT_BYTES))): string {
  if (!Number.isInteger(iterations) || iterations < 1) throw new RangeError('iterations must be a positive integer');
  const hash = pbkdf2Sync(Buffer.from(password, 'utf8'), salt, iterations, MOSQUITTO_HASH_BYTES, 'sha512');
  return `$7$${iterations}$${Buffer.from(salt).toString('base64')}$${hash.toString('base64')}`;
}

/** Check a password against a `$7$` hash (for tests and `fleet broker-config --check`). */
export function verifyMosquittoHash(password: string, encoded: string): boolean {
  const m = /^\$7\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/.exec(encoded);
  if (m === null) return false;
  const salt = Buffer.from(m[2], 'base64');
  const expected = Buffer.from(m[3], 'base64');
  const actual = pbkdf2Sync(Buffer.from(password, 'utf8'), salt, Number(m[1]), expected.length, 'sha512');
  return actual.length === expected.length && actual.equals(expected);
}

export interface ServiceAccount {
  readonly username: string;
  readonly password: string;
  readonly read: readonly string[];
  readonly write: readonly string[];
}

/** The back end's accounts: the ingest reads telemetry and writes receipts; the fleet service writes commands and updates. */
export function defaultServices(names: readonly string[], random: (n: number) => Uint8Array = (n) => new Uint8Array(randomBytes(n))): ServiceAccount[] {
  return names.map((username) => ({
    username,
    password: Buffer.from(random(24)).toString('base64url'),
    read: [`${TOPIC_ROOT}/+/telemetry`],
    write: [`${TOPIC_ROOT}/+/receipt`, `${TOPIC_ROOT}/+/cmd`, `${TOPIC_ROOT}/+/update`, REVOCATION_LIST_TOPIC],
  }));
}

export interface BrokerConfig {
  /** mosquitto password_file content. */
  passwords: string;
  /** mosquitto acl_file content. */
  acl: string;
  /** Devices given an account, by state. */
  counts: { active: number; quarantined: number; revoked: number; excluded: number };
}

/** What a device may do at the broker under the policy: undefined = no account. */
export function deviceAcl(device: FleetDevice, policy: QuarantinePolicy): { read: string[]; write: string[] } | undefined {
  if (device.state === 'revoked') return undefined;
  if (device.state === 'quarantined' && policy === 'deny') return undefined;
  const base = `${TOPIC_ROOT}/${device.deviceId}`;
  // The fleet's signed revocation list, retained on one fleet-wide topic (docs/spec/device-topics.md): every device that may log in reads it.
  const read = [`${base}/receipt`, `${base}/update`, REVOCATION_LIST_TOPIC];
  if (device.state === 'active') read.splice(1, 0, `${base}/cmd`);
  return { read, write: [`${base}/telemetry`] };
}

export function brokerConfig(fleet: Fleet, options: { policy?: QuarantinePolicy; iterations?: number; services?: readonly ServiceAccount[]; onProgress?: (done: number, total: number) => void } = {}): BrokerConfig {
  const policy = options.policy ?? 'restrict';
  const iterations = options.iterations ?? MOSQUITTO_DEFAULT_ITERATIONS;
  const crypto = hostCrypto();
  const passwordLines: string[] = [];
  const aclLines = ['# generated by holdfast fleet broker-config from the fleet inventory: do not edit (docs/design/fleet-identity.md)', `# quarantine policy: ${policy}`, ''];
  const counts = { active: 0, quarantined: 0, revoked: 0, excluded: 0 };
  const devices = [...fleet.devices].sort((a, b) => (a.deviceId < b.deviceId ? -1 : 1));
  devices.forEach((device, i) => {
    counts[device.state] += 1;
    const acl = deviceAcl(device, policy);
    if (acl === undefined) {
      counts.excluded += 1;
    } else {
      const secret = new Uint8Array(Buffer.from(device.secret, 'hex'));
      const password = deriveBrokerPassword(crypto, secret, new Uint8Array(Buffer.from(device.deviceId, 'hex')));
      secret.fill(0);
      passwordLines.push(`${device.deviceId}:${mosquittoPbkdf2Hash(password, iterations)}`);
      aclLines.push(`user ${device.deviceId}`, ...acl.read.map((t) => `topic read ${t}`), ...acl.write.map((t) => `topic write ${t}`), '');
    }
    options.onProgress?.(i + 1, devices.length);
  });
  for (const s of options.services ?? []) {
    passwordLines.push(`${s.username}:${mosquittoPbkdf2Hash(s.password, iterations)}`);
    aclLines.push(`user ${s.username}`, ...s.read.map((t) => `topic read ${t}`), ...s.write.map((t) => `topic write ${t}`), '');
  }
  return { passwords: `${passwordLines.join('\n')}\n`, acl: `${aclLines.join('\n')}`, counts };
}

/** A mosquitto.conf fragment that uses the generated files (paths as given). */
export function mosquittoConfFragment(passwordFile: string, aclFile: string): string {
  return ['# generated by holdfast fleet broker-config', 'allow_anonymous false', `password_file ${passwordFile}`, `acl_file ${aclFile}`, ''].join('\n');
}
