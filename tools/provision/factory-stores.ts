/**
 * The factory's formatting of the runtime's stores (docs/spec/provisioning.md,
 * "Factory data images"; docs/design/fleet-identity.md, "Provisioning runs").
 *
 * The runtime never formats a store: a blank or damaged one is a boot
 * failure (docs/spec/boot-sequence.md), so every store it opens must be
 * formatted before its first boot, by the firmware's own `format`
 * functions. One table, FACTORY_STORES, says how each is made; both the
 * simulator (tools/sim/fleet/fleet-firmware.ts, over its simulated flash)
 * and `holdfast provision` (over an in-memory flash of each partition's
 * size, for `holdfast flash --factory`) use it, so what a simulated device
 * starts from is what a real one is flashed with.
 *
 * The table is keyed by every store of the runtime's PARTITION_LABELS (the
 * app slots and otadata excepted): a store the runtime gains does not
 * compile here until the factory knows how to make it.
 *
 * Host tool (Node).
 */
import type { Crypto } from '../../firmware/hal/crypto.ts';
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { PARTITION_LABELS, type PartitionKey } from '../../firmware/runtime/boot.ts';
import { Counter } from '../../firmware/storage/counter.ts';
import { Outbox } from '../../firmware/storage/outbox.ts';
import { AuditLog } from '../../firmware/storage/audit-log.ts';
import { ReplayStore } from '../../firmware/security/replay-store.ts';
import { RevocationStore } from '../../firmware/security/revocation-store.ts';
import { KeyStore } from '../../firmware/security/key-store.ts';
import { CommandJournal } from '../../firmware/runtime/commands.ts';
import { SafeModeStore } from '../../firmware/runtime/safe-mode.ts';
import { FloorStore } from '../../firmware/update/floor-store.ts';
import { TrustStore } from '../../firmware/update/trust-store.ts';
import type { TrustedRoot } from '../../firmware/update/root.ts';
import type { Board } from '../boards/board.ts';
import { SimFlash } from '../sim/flash/sim-flash.ts';

/** The runtime's stores: every partition it opens but the app slots and otadata (the bootloader's). */
export type StoreKey = Exclude<PartitionKey, 'otadata' | 'ota0' | 'ota1'>;

export interface FactoryContext {
  readonly crypto: Crypto;
  /** The fleet's root for the trust store; undefined leaves the store erased (the runtime's `trust-unavailable`, not-provisioned). */
  readonly root: TrustedRoot | undefined;
}

function eraseAll(flash: FlashPartition): void {
  for (let b = 0; b < flash.status().blocks; b++) flash.eraseBlock(b);
}

/** How the factory makes each store, in the firmware's own words. */
export const FACTORY_STORES: Readonly<Record<StoreKey, (flash: FlashPartition, context: FactoryContext) => void>> = Object.freeze({
  counter: (flash: FlashPartition) => Counter.format(flash),
  outbox: (flash: FlashPartition) => Outbox.format(flash),
  audit: (flash: FlashPartition) => AuditLog.format(flash),
  replay: (flash: FlashPartition) => ReplayStore.format(flash),
  journal: (flash: FlashPartition) => CommandJournal.format(flash),
  trust: (flash: FlashPartition, context: FactoryContext) => {
    eraseAll(flash);
    if (context.root !== undefined) new TrustStore(flash, context.crypto).save(context.root);
  },
  floor: (flash: FlashPartition) => FloorStore.format(flash),
  safeMode: (flash: FlashPartition) => SafeModeStore.format(flash),
  // Erased is the progress log's empty state (docs/spec/staging-progress.md): nothing staged.
  progress: (flash: FlashPartition) => eraseAll(flash),
  revocation: (flash: FlashPartition, context: FactoryContext) => RevocationStore.format(flash, context.crypto),
  // Blank is the key store's factory state: the provisioning record's key is current (docs/spec/key-rotation.md).
  keys: (flash: FlashPartition) => KeyStore.format(flash),
});

export const STORE_KEYS: readonly StoreKey[] = Object.freeze(Object.keys(FACTORY_STORES) as StoreKey[]);

/** Format every store of `parts` (a device's partitions by key) but those in `except` (left as they are). */
export function formatStores(parts: Readonly<Record<StoreKey, FlashPartition>>, context: FactoryContext, except: readonly StoreKey[] = []): void {
  for (const key of STORE_KEYS) if (!except.includes(key)) FACTORY_STORES[key](parts[key], context);
}

/**
 * Program unit the images are formatted for: 1 without flash encryption,
 * 16 with it (the Moddable HAL's writeAlign of an `encrypted` partition when
 * flash encryption is on; the audit log records its unit and refuses the
 * other one).
 */
export type WriteUnit = 1 | 16;

export interface StoreImage {
  readonly key: StoreKey;
  readonly label: string;
  readonly offset: number;
  readonly size: number;
  /** The partition's bytes as the device reads them (plaintext), exactly its size. */
  readonly data: Uint8Array;
}

/** Each store of `board` formatted over an in-memory flash of its partition's geometry, in address order. */
export function factoryStoreImages(board: Board, context: FactoryContext, writeUnit: WriteUnit): StoreImage[] {
  const blockLength = board.flash.blockLength;
  const images: StoreImage[] = [];
  for (const key of STORE_KEYS) {
    const label = PARTITION_LABELS[key];
    const p = board.partitions.find((q) => q.name === label);
    if (p === undefined) throw new RangeError(`board ${board.id} has no ${label} partition`);
    const flash = new SimFlash({ blocks: p.size / blockLength, blockLength, mode: writeUnit === 16 ? 'strict' : 'plain', writeAlign: writeUnit });
    FACTORY_STORES[key](flash, context);
    images.push({ key, label, offset: p.offset, size: p.size, data: flash.data.slice() });
  }
  return images.sort((a, b) => a.offset - b.offset);
}
