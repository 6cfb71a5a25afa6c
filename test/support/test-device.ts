/**
 * The one test device the telemetry and receipt-gate cases share (Node and
 * XS): a fixed device id and key id, a secret derived from a seed, its
 * derived keys, and the receiver's key lookup that knows only this device.
 */
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { envelopePrimitives, type EnvelopePrimitives } from '../../firmware/security/envelope-primitives.ts';
import { deriveDeviceKeys, type DeviceKeys } from '../../firmware/security/envelope-keys.ts';

export const TEST_DEVICE_ID = Uint8Array.of(0xd1, 0, 0, 0, 0, 0, 0, 0x0a);
export const TEST_KEY_ID = 1;

/** A 32-byte device secret: byte i = seed + 7i. */
export function testSecret(seed = 0x11): Uint8Array {
  const bytes = new Uint8Array(32);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (seed + i * 7) & 0xff;
  return bytes;
}

export interface TestDevice {
  primitives: EnvelopePrimitives;
  keys: DeviceKeys;
  /** The receiver's key lookup: this device, key id 1, only. */
  lookup(deviceId: Uint8Array, keyId: number): DeviceKeys | undefined;
}

export function testDevice(): TestDevice {
  const crypto = createNobleCrypto();
  const keys = deriveDeviceKeys(crypto, testSecret(), TEST_DEVICE_ID, TEST_KEY_ID);
  return {
    primitives: envelopePrimitives(crypto),
    keys,
    lookup: (deviceId, keyId) => (keyId === TEST_KEY_ID && deviceId.length === 8 && deviceId.every((b, i) => b === TEST_DEVICE_ID[i]) ? keys : undefined),
  };
}
