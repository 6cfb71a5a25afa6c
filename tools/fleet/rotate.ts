/**
 * The fleet authority's side of a device key rotation
 * (docs/spec/key-rotation.md, "The authority"): `holdfast fleet rotate`.
 *
 * - `rotateKeyCommand`: the signed `rotate-key` command that starts one
 *   (the device answers with a rotation request in its telemetry);
 * - `confirmRotation`: verify a rotation request against the inventory's
 *   current public key of the device (old key's signature, and the new
 *   key's proof of possession), derive the new envelope secret (X25519 of
 *   the command key's seed with the device's new key, HKDF: the device
 *   computes the same, nothing secret travels), record the new key in the
 *   inventory (the old one `retired`, the new one `current` with its
 *   secret), and return the authority's countersignature: a signed
 *   `confirm-key-rotation` command (numbered by the command key's counter,
 *   replay-checked by the device like every command). A request already
 *   recorded (the same new public key is current) is confirmed again
 *   without changing the inventory: a lost confirmation is repeated.
 * - `recordKeyBound`: once the first counter of the new key is known (the
 *   device's first record under it, or its key-rotated audit entry), the
 *   retired key's untilCounter, which `fleet export --format ingest` passes
 *   to the ingest.
 *
 * Host tool (Node).
 */
import { COMMAND_POLICY, encodeCommandPayload, findRow } from '../../firmware/runtime/commands.ts';
import { commandKeyId, ed25519Signer, sealCommand } from '../../firmware/security/envelope-command.ts';
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { decodeRotationRequest, KeyRotationError, keyPrefixOf, rotationSecretFrom, verifyRotationRequest } from '../../firmware/security/key-rotation.ts';
import { ed25519PublicKeyOf, x25519WithEd25519 } from '../../firmware/security/key-ed25519.ts';
import { CliError } from '../cli/errors.ts';
import { currentKey, findDevice, nowIso } from './inventory.ts';
import type { FleetStore } from './store.ts';

const ROTATE_KEY = 0x40;
const CONFIRM_KEY_ROTATION = 0x41;

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');
const bytes = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));

/** The command key (the rotation authority): its seed, and the counter value the next command takes. */
export interface Authority {
  readonly seed: Uint8Array;
  /** The command key's counter value for this command (above every value it used before). */
  readonly counter: number;
}

function seal(code: number, values: Record<string, number>, deviceId: string, authority: Authority): Uint8Array {
  const crypto = createNobleCrypto();
  const row = findRow(COMMAND_POLICY, code);
  if (row === undefined) throw new Error(`internal: no command 0x${code.toString(16)}`);
  const publicKey = ed25519PublicKeyOf(authority.seed);
  return sealCommand(encodeCommandPayload(row, values), { deviceId: bytes(deviceId), counter: { next: () => authority.counter }, keyId: commandKeyId(crypto, publicKey), sign: ed25519Signer(authority.seed) });
}

/** `rotate-key` for the device's current key id + 1 (the inventory says which). */
export async function rotateKeyCommand(store: FleetStore, deviceId: string, authority: Authority): Promise<{ deviceId: string; keyId: number; command: Uint8Array }> {
  const device = findDevice(await store.read(), deviceId);
  const current = currentKey(device);
  if (current === undefined || device.state !== 'active') throw new CliError(`device ${deviceId} is ${device.state}: expected an active device with a current key`, { field: '<device>', code: 'failed' });
  const keyId = current.keyId + 1;
  return { deviceId, keyId, command: seal(ROTATE_KEY, { keyId }, deviceId, authority) };
}

export interface ConfirmResult {
  readonly deviceId: string;
  readonly oldKeyId: number;
  readonly newKeyId: number;
  readonly requestCounter: number;
  /** The new Ed25519 public key (hex). */
  readonly publicKey: string;
  /** 'recorded': the inventory changed now; 'already': this request's key was current already (confirmation repeated). */
  readonly inventory: 'recorded' | 'already';
  readonly command: Uint8Array;
}

/** Verify `request`, record the new key, return the signed confirmation (see the file comment). */
export async function confirmRotation(store: FleetStore, request: Uint8Array, authority: Authority, now: Date = new Date()): Promise<ConfirmResult> {
  let decoded;
  try {
    decoded = decodeRotationRequest(request);
  } catch (error) {
    if (error instanceof KeyRotationError) throw new CliError(`not a rotation request: ${error.message}`, { field: '--request', code: 'invalid-file' });
    throw error;
  }
  const deviceId = hex(decoded.deviceId);
  const crypto = createNobleCrypto();
  return store.withLock(async (tx) => {
    const fleet = await tx.load(false);
    const device = findDevice(fleet, deviceId);
    if (device.state !== 'active') throw new CliError(`device ${deviceId} is ${device.state}: a rotation is confirmed only for an active device`, { field: '--request', code: 'failed' });
    const current = currentKey(device);
    if (current === undefined) throw new CliError(`device ${deviceId} has no current key`, { field: '--request', code: 'failed' });
    const newPublic = hex(decoded.newPublicKey);
    const already = current.keyId === decoded.newKeyId && current.publicKey === newPublic;
    const signer = already ? device.keys.find((k) => k.keyId === decoded.oldKeyId) : current;
    if (signer === undefined || signer.keyId !== decoded.oldKeyId) {
      throw new CliError(`the request rotates key ${decoded.oldKeyId}, the inventory's current key of ${deviceId} is ${current.keyId}`, { field: '--request', code: 'failed' });
    }
    try {
      verifyRotationRequest(crypto, request, bytes(signer.publicKey));
    } catch (error) {
      if (error instanceof KeyRotationError) throw new CliError(`refused: ${error.message}`, { field: '--request', code: 'invalid-file' });
      throw error;
    }
    if (!already) {
      const secret = rotationSecretFrom(crypto, x25519WithEd25519(authority.seed, decoded.newPublicKey), decoded.deviceId, decoded.newKeyId);
      const at = nowIso(now);
      current.status = 'retired';
      current.changedAt = at;
      // sinceCounter: the device takes the first counter of the new key above the request's; the exact value is recorded with recordKeyBound.
      device.keys.push({ keyId: decoded.newKeyId, publicKey: newPublic, status: 'current', sinceCounter: decoded.requestCounter + 1, untilCounter: null, changedAt: at, secret: hex(secret) });
      device.history.push({ at, event: 'key-rotated', detail: `key ${decoded.oldKeyId} -> ${decoded.newKeyId}, request counter ${decoded.requestCounter}` });
      secret.fill(0);
      await tx.save(fleet);
    }
    const command = seal(CONFIRM_KEY_ROTATION, { keyId: decoded.newKeyId, keyPrefix: keyPrefixOf(decoded.newPublicKey) }, deviceId, authority);
    return { deviceId, oldKeyId: decoded.oldKeyId, newKeyId: decoded.newKeyId, requestCounter: decoded.requestCounter, publicKey: newPublic, inventory: already ? 'already' : 'recorded', command };
  });
}

/** The first counter of `keyId` is `sinceCounter`: the key before it is bounded there (untilCounter), and the key's own sinceCounter is exact. */
export async function recordKeyBound(store: FleetStore, deviceId: string, keyId: number, sinceCounter: number, now: Date = new Date()): Promise<{ retiredKeyId: number; untilCounter: number }> {
  return store.withLock(async (tx) => {
    const fleet = await tx.load(false);
    const device = findDevice(fleet, deviceId);
    const key = device.keys.find((k) => k.keyId === keyId);
    const before = device.keys.find((k) => k.keyId === keyId - 1);
    if (key === undefined || before === undefined || before.status === 'current') throw new CliError(`device ${deviceId} has no rotation to key ${keyId}`, { field: '--since', code: 'not-found' });
    if (before.untilCounter !== null && before.untilCounter !== sinceCounter) throw new CliError(`key ${before.keyId} is already bounded at ${before.untilCounter}`, { field: '--since', code: 'failed' });
    const at = nowIso(now);
    before.untilCounter = sinceCounter;
    before.changedAt = at;
    key.sinceCounter = sinceCounter;
    await tx.save(fleet);
    return { retiredKeyId: before.keyId, untilCounter: sinceCounter };
  });
}
