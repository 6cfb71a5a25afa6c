/**
 * The device's identity at boot (docs/spec/provisioning.md, "Reading";
 * docs/spec/boot-sequence.md, "Provisioning"): the target reads the
 * `hf_prov` partition with `readProvisioning` before the runtime starts and
 * fails closed.
 *
 * - all 0xFF: `not-provisioned`, a named state: logged, no runtime, no
 *   network, nothing written;
 * - a ProvisioningError (foreign, damaged, newer format, ...): the named boot
 *   failure `provisioning-unreadable` (its health bit in the log line), safe
 *   mode entered and persisted with cause `storage` (boot table row 14); the
 *   audit log does not open (its key derives from the device secret the
 *   record holds), no runtime, no network;
 * - a record: the RuntimeConfig (device id, secret, key id, command key,
 *   revocation key, broker host and port, user name = device id hex,
 *   password derived from the secret), and the console key for the target.
 *
 * Pure over the HAL's partitions and crypto: tests drive it with the
 * emulated Moddable modules (tools/xs/moddable-emu/).
 */
import type { Crypto } from '../../hal/crypto.ts';
import type { FlashPartition } from '../../hal/flash.ts';
import type { Log } from '../../hal/log.ts';
import { deriveBrokerPassword, PROVISIONING_MAX_RECORD, PROVISIONING_PARTITION_LABEL, ProvisioningError, readProvisioning, type ProvisioningErrorCode, type ProvisioningIdentity } from '../../security/provisioning.ts';
import { StorageError } from '../../base/storage-error.ts';
import { failureBit, failureRow, PARTITION_LABELS, type BootFailure } from '../../runtime/boot.ts';
import type { RuntimeConfig } from '../../runtime/main.ts';
import { SafeModeStore, type SafeModeState } from '../../runtime/safe-mode.ts';

/** MQTT settings of a provisioned device (the broker's own limits: docs/spec/mqtt-session.md). */
export const DEVICE_SESSION = Object.freeze({
  protocolVersion: 5 as const,
  keepAliveSec: 60,
  sessionExpirySec: 86_400,
  maximumPacketSize: 4096,
  maxInFlight: 4,
  responseTimeoutMs: 10_000,
});

export interface ProvisionedDevice {
  readonly state: 'provisioned';
  readonly config: RuntimeConfig;
  /** The console unlock key, or undefined (the console stays locked). */
  readonly consoleKey: Uint8Array | undefined;
  /** The revocation-list key, or undefined (the device accepts no list). */
  readonly revocationKey: Uint8Array | undefined;
  readonly boardId: string;
}

export interface UnprovisionedDevice {
  readonly state: 'not-provisioned';
}

export interface ProvisioningFailed {
  readonly state: 'failed';
  /** The boot failure (`provisioning-unreadable`, stage storage, cause = the ProvisioningError's code or `partition-missing`). */
  readonly failure: BootFailure;
  readonly code: ProvisioningErrorCode | 'partition-missing' | 'unreadable';
  /** The health record's bootFailures bits this boot (the failure's bit). */
  readonly bootFailureBits: number;
  /** The safe-mode state after the failure (entered and persisted, or already safe). */
  readonly safeMode: SafeModeState | undefined;
}

export type DeviceProvisioning = ProvisionedDevice | UnprovisionedDevice | ProvisioningFailed;

function hex(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16);
  return out;
}

function ascii(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0x7f;
  return out;
}

/** The runtime's configuration from a provisioned identity: keys, broker, user name (device id hex) and derived password. */
export function runtimeConfigOf(crypto: Crypto, identity: ProvisioningIdentity): RuntimeConfig {
  const id = hex(identity.deviceId);
  return {
    deviceId: identity.deviceId,
    deviceSecret: identity.deviceSecret,
    keyId: identity.keyId,
    // Signs the old half of a key rotation (docs/spec/key-rotation.md); the command key is the authority.
    deviceKeySeed: identity.deviceSeed,
    commandKey: { keyId: identity.commandKey.keyId, publicKey: identity.commandKey.publicKey },
    link: {
      host: identity.brokerHost,
      port: identity.brokerPort,
      session: { ...DEVICE_SESSION, clientId: id, username: id, password: ascii(deriveBrokerPassword(crypto, identity.deviceSecret, identity.deviceId)) },
    },
    ...(identity.revocationKey === undefined ? {} : { revocationKey: identity.revocationKey }),
  };
}

export interface ProvisioningHal {
  readonly crypto: Crypto;
  readonly log: Log;
  partition(label: string): FlashPartition | undefined;
}

/**
 * Read `hf_prov` and decide: provisioned (a config), not provisioned, or
 * the boot failure (safe mode persisted). A provisioned record without a
 * broker is provisioned all the same: the runtime starts, its link has no
 * host to reach (docs/spec/provisioning.md: host and port both 0).
 */
export function readDeviceProvisioning(hal: ProvisioningHal): DeviceProvisioning {
  const flash = hal.partition(PROVISIONING_PARTITION_LABEL);
  if (flash === undefined) return failed(hal, 'partition-missing', `no partition labelled ${PROVISIONING_PARTITION_LABEL}`);
  const length = Math.min(flash.status().size, PROVISIONING_MAX_RECORD);
  const bytes = new Uint8Array(length);
  try {
    flash.read(0, bytes);
  } catch (error) {
    if (!(error instanceof StorageError)) throw error;
    return failed(hal, 'unreadable', `the partition does not read: ${error.code}`);
  }
  try {
    const reading = readProvisioning(hal.crypto, bytes);
    if (reading.state === 'blank') {
      hal.log.write('error', 'boot', 'not provisioned: hf_prov is erased; the runtime does not start, no network', { state: 'not-provisioned' });
      return Object.freeze({ state: 'not-provisioned' as const });
    }
    const { identity } = reading;
    hal.log.write('info', 'boot', 'provisioned', { device: hex(identity.deviceId), board: identity.boardId, format: reading.formatVersion });
    return Object.freeze({ state: 'provisioned' as const, config: runtimeConfigOf(hal.crypto, identity), consoleKey: identity.consoleKey, revocationKey: identity.revocationKey, boardId: identity.boardId });
  } catch (error) {
    if (!(error instanceof ProvisioningError)) throw error;
    return failed(hal, error.code, error.message);
  } finally {
    bytes.fill(0);
  }
}

function failed(hal: ProvisioningHal, code: ProvisioningFailed['code'], message: string): ProvisioningFailed {
  const row = failureRow('provisioning-unreadable');
  const failure: BootFailure = Object.freeze({ code: row.code, stage: row.stage, cause: code, message });
  const bits = failureBit(row.code);
  let safeMode: SafeModeState | undefined;
  const safeFlash = hal.partition(PARTITION_LABELS.safeMode);
  if (safeFlash !== undefined && row.safeMode !== undefined) {
    const store = SafeModeStore.open(safeFlash);
    try {
      store.enter(row.safeMode);
    } catch (error) {
      if (!(error instanceof StorageError)) throw error;
    }
    safeMode = store.status();
  }
  hal.log.write('error', 'boot', `provisioning-unreadable: ${message}; safe mode, the runtime does not start, no network`, { code, bootFailures: bits, safeMode: safeMode?.cause ?? 'no-partition' });
  return Object.freeze({ state: 'failed' as const, failure, code, bootFailureBits: bits, safeMode });
}
