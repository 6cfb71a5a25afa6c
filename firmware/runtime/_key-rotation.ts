/**
 * The runtime's side of a device key rotation (docs/spec/key-rotation.md,
 * "On the device"): which envelope key generation seals this boot, and the
 * two signed commands that rotate it.
 *
 * - `rotate-key` (key id N = current + 1): creates (or, when one is
 *   pending for N, reuses) the new generation: a seed from the Entropy HAL,
 *   the secret from X25519 with the authority (the command key), a request
 *   counter from the persistent counter; persists it `pending` in hf_keys;
 *   returns the rotation request (signed by the old key and the new one),
 *   which the runtime appends to the outbox as a record of type 0x06.
 * - `confirm-key-rotation` (key id N, key prefix): commits the pending
 *   generation when the prefix is its public key's and the outbox is
 *   drained, its acknowledgements durable (the receipt gate holds one key
 *   id: a record of the old key delivered again after the restart would
 *   never be released, receipt.md): takes the next counter value as
 *   sinceCounter, writes `current`, and from then on nothing more is sealed
 *   in this boot; the runtime audits `key-rotated` (role device) and
 *   restarts, and the next boot seals with the new generation.
 *
 * The new generation takes effect at the next boot, so no record of this
 * boot is sealed with it and no record sealed at or above sinceCounter
 * carries the old key id.
 */
import type { Crypto } from '../hal/crypto.ts';
import type { Entropy } from '../hal/entropy.ts';
import type { FlashPartition } from '../hal/flash.ts';
import { KeyStore, type KeyGeneration, type KeyState } from '../security/key-store.ts';
import { deviceRotationSecret, keyPrefixOf, signRotationRequest } from '../security/key-rotation.ts';

/** What a rotation command did (the CommandOutcome's `rotation`). */
export type RotationAnswer =
  | { readonly state: 'requested'; readonly keyId: number; readonly request: Uint8Array }
  | { readonly state: 'committed'; readonly fromKeyId: number; readonly keyId: number; readonly sinceCounter: number }
  | { readonly state: 'refused'; readonly reason: RotationRefusal; readonly detail: string };

export type RotationRefusal = 'unavailable' | 'stale' | 'not-pending' | 'wrong-key' | 'not-drained' | 'storage';

export interface KeyRotationOptions {
  readonly crypto: Crypto;
  readonly entropy: Entropy;
  readonly deviceId: Uint8Array;
  /** The provisioning record's generation: key id, secret, Ed25519 seed (undefined: rotation unavailable). */
  readonly provisioned: { readonly keyId: number; readonly secret: Uint8Array; readonly seed: Uint8Array | undefined };
  /** The authority's Ed25519 public key (the command key). */
  readonly authorityKey: Uint8Array;
}

/** The generation that seals: its key id and envelope secret. */
export interface SealingKey {
  readonly keyId: number;
  readonly secret: Uint8Array;
}

export class DeviceKeyRotation {
  private committed = false;

  private constructor(
    private readonly options: KeyRotationOptions,
    private readonly store: KeyStore | undefined,
  ) {}

  /** Open over hf_keys (StorageError propagates: the caller turns it into a boot failure); no partition: the provisioning key, rotation unavailable. */
  static open(options: KeyRotationOptions, flash: FlashPartition | undefined): DeviceKeyRotation {
    return new DeviceKeyRotation(options, flash === undefined ? undefined : KeyStore.open(flash, options.crypto, options.provisioned.keyId));
  }

  /** Without a store (it did not open): the provisioning key seals, rotation unavailable. */
  static provisioningOnly(options: KeyRotationOptions): DeviceKeyRotation {
    return new DeviceKeyRotation(options, undefined);
  }

  state(): KeyState | undefined {
    return this.store?.state();
  }

  /** A rotation was committed in this boot: nothing more may be sealed until the restart. */
  get sealingStopped(): boolean {
    return this.committed;
  }

  sealingKey(): SealingKey {
    const current = this.store?.state().current;
    if (current === undefined || current.source === 'provisioning') return { keyId: this.options.provisioned.keyId, secret: this.options.provisioned.secret };
    return { keyId: current.keyId, secret: current.secret as Uint8Array };
  }

  private unavailable(): string | undefined {
    const { crypto, provisioned } = this.options;
    if (this.store === undefined) return 'no key store (hf_keys)';
    if (provisioned.seed === undefined) return 'no device key seed provisioned';
    if (crypto.ed25519Sign === undefined || crypto.ed25519PublicKey === undefined || crypto.x25519 === undefined) return 'the Crypto HAL cannot sign or do X25519';
    if (this.committed) return 'a rotation was committed in this boot: it takes effect at the restart';
    return undefined;
  }

  private seedOf(current: KeyGeneration): Uint8Array {
    return current.source === 'store' ? (current.seed as Uint8Array) : (this.options.provisioned.seed as Uint8Array);
  }

  /** `rotate-key` to key id `keyId`; `nextCounter` takes the request counter (a persistent counter value). */
  begin(keyId: number, nextCounter: () => number): RotationAnswer {
    const why = this.unavailable();
    if (why !== undefined) return { state: 'refused', reason: 'unavailable', detail: why };
    const store = this.store as KeyStore;
    const { crypto, entropy, deviceId, authorityKey } = this.options;
    const { current, pending } = store.state();
    if (keyId !== current.keyId + 1) return { state: 'refused', reason: 'stale', detail: `the current key id is ${current.keyId}: a rotation makes ${current.keyId + 1}, not ${keyId}` };
    let seed: Uint8Array;
    let secret: Uint8Array;
    if (pending !== undefined && pending.keyId === keyId) {
      seed = pending.seed;
      secret = pending.secret;
    } else {
      seed = new Uint8Array(32);
      entropy.fill(seed);
      secret = deviceRotationSecret(crypto, seed, authorityKey, deviceId, keyId);
    }
    const requestCounter = nextCounter();
    store.begin({ keyId, seed, secret, requestCounter });
    const sign = crypto.ed25519PublicKey as (seed: Uint8Array) => Uint8Array;
    const request = signRotationRequest(crypto, { deviceId, oldKeyId: current.keyId, newKeyId: keyId, requestCounter, newPublicKey: sign(seed) }, this.seedOf(current), seed);
    return { state: 'requested', keyId, request };
  }

  /**
   * `confirm-key-rotation` of key id `keyId` whose public key starts with
   * `keyPrefix`; `drained` says (making its acknowledgements durable) that
   * the outbox holds no record, also after a reboot.
   */
  commit(keyId: number, keyPrefix: number, drained: () => boolean, nextCounter: () => number): RotationAnswer {
    const why = this.unavailable();
    if (why !== undefined) return { state: 'refused', reason: 'unavailable', detail: why };
    const store = this.store as KeyStore;
    const { current, pending } = store.state();
    if (pending === undefined || pending.keyId !== keyId) {
      return keyId <= current.keyId
        ? { state: 'refused', reason: 'stale', detail: `key id ${keyId} is not after the current ${current.keyId}` }
        : { state: 'refused', reason: 'not-pending', detail: `no rotation to key id ${keyId} is pending` };
    }
    const publicKey = (this.options.crypto.ed25519PublicKey as (seed: Uint8Array) => Uint8Array)(pending.seed);
    if (keyPrefixOf(publicKey) !== keyPrefix) return { state: 'refused', reason: 'wrong-key', detail: 'the confirmation names another new key' };
    if (!drained()) return { state: 'refused', reason: 'not-drained', detail: 'records of the old key wait in the outbox: confirm again once they are receipted' };
    const sinceCounter = nextCounter();
    store.commit(sinceCounter);
    this.committed = true;
    return { state: 'committed', fromKeyId: current.keyId, keyId, sinceCounter };
  }
}

/** The command codes of the rotation commands (docs/spec/commands.md). */
export const ROTATE_KEY = 'rotate-key';
export const CONFIRM_KEY_ROTATION = 'confirm-key-rotation';
