/**
 * The device key store `hf_keys` (firmware/security/key-store.ts,
 * docs/spec/key-rotation.md "Key store") in Node and XS: a blank store is
 * the provisioning key; begin/commit round trips and survive a reopen;
 * refusals (newer format, foreign bytes, a damaged only record, slots that
 * no write leaves, a wrong key id); one damaged header copy is repaired;
 * power cuts at every flash operation of two rotations in a row (plain and
 * strict flash): after every cut exactly one generation is current, the
 * old one or the new one, never damaged, and a repeated begin/commit
 * finishes the rotation.
 */
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { StorageError } from '../../firmware/base/storage-error.ts';
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { KEY_STORE_HEADER, KEY_STORE_FORMAT, KeyStore, type PendingRotation } from '../../firmware/security/key-store.ts';
import { bytesEqual, equal, ok, throws } from '../support/check.ts';
import type { CaseEnv, CaseSuite, FirmwareCase } from '../support/cases.ts';
import { runnerOptions, throwsCode } from '../support/case-helpers.ts';
import { runExhaustive, type CutScenario } from '../../tools/sim/power-cut.ts';
import type { FlashMode } from '../../tools/sim/flash/sim-flash.ts';

const FLASH = { blocks: 2, blockLength: 4096 } as const;
const PROVISIONED_KEY_ID = 7;

function freshFlash(env: CaseEnv, mode: FlashMode = 'plain'): FlashPartition {
  const flash = env.createFlash({ ...FLASH, mode });
  KeyStore.format(flash);
  return flash;
}

function pendingFor(keyId: number, requestCounter: number): PendingRotation {
  return { keyId, seed: new Uint8Array(32).fill(keyId), secret: new Uint8Array(32).fill(0x80 | keyId), requestCounter };
}

const crypto = () => createNobleCrypto();

const cases: FirmwareCase[] = [
  {
    name: 'a blank store is the provisioning key; begin and commit survive a reopen',
    run(env) {
      const flash = freshFlash(env);
      const store = KeyStore.open(flash, crypto(), PROVISIONED_KEY_ID);
      equal(store.state().current.source, 'provisioning', 'blank: provisioning');
      equal(store.state().current.keyId, PROVISIONED_KEY_ID, 'key id');
      equal(store.state().pending, undefined, 'nothing pending');
      store.begin(pendingFor(8, 100));
      const reopened = KeyStore.open(flash, crypto(), PROVISIONED_KEY_ID).state();
      equal(reopened.current.keyId, PROVISIONED_KEY_ID, 'old key still current');
      equal(reopened.pending?.keyId, 8, 'pending key id');
      equal(reopened.pending?.requestCounter, 100, 'request counter');
      const again = KeyStore.open(flash, crypto(), PROVISIONED_KEY_ID);
      again.commit(101);
      const after = KeyStore.open(flash, crypto(), PROVISIONED_KEY_ID).state();
      equal(after.current.keyId, 8, 'new key current');
      equal(after.current.source, 'store', 'source');
      equal(after.current.sinceCounter, 101, 'since');
      bytesEqual(after.current.seed ?? new Uint8Array(0), new Uint8Array(32).fill(8), 'seed');
      bytesEqual(after.current.secret ?? new Uint8Array(0), new Uint8Array(32).fill(0x88), 'secret');
      equal(after.previous?.keyId, PROVISIONED_KEY_ID, 'previous');
      equal(after.previous?.untilCounter, 101, 'until');
      equal(after.pending, undefined, 'no pending');
      // A counter above 2^32 round trips.
      const big = KeyStore.open(flash, crypto(), PROVISIONED_KEY_ID);
      big.begin(pendingFor(9, 2 ** 40));
      big.commit(2 ** 40 + 1);
      equal(KeyStore.open(flash, crypto(), PROVISIONED_KEY_ID).state().current.sinceCounter, 2 ** 40 + 1, 'u64 counter');
    },
  },
  {
    name: 'begin and commit refuse a wrong key id, a counter going back and a commit with nothing pending',
    run(env) {
      const store = KeyStore.open(freshFlash(env), crypto(), PROVISIONED_KEY_ID);
      throws(() => store.commit(5), 'RangeError', 'nothing pending');
      let refused = 0;
      for (const bad of [() => store.begin(pendingFor(9, 1)), () => store.begin(pendingFor(PROVISIONED_KEY_ID, 1))]) {
        try {
          bad();
        } catch (error) {
          if ((error as Error).name === 'RangeError') refused++;
        }
      }
      equal(refused, 2, 'wrong key ids refused');
      store.begin(pendingFor(8, 50));
      let below = false;
      try {
        store.commit(50);
      } catch (error) {
        below = (error as Error).name === 'RangeError';
      }
      ok(below, 'a since counter at the request counter is refused');
    },
  },
  {
    name: 'damage: a newer format, foreign bytes, a damaged only record and disagreeing slots are refused; one damaged header copy is repaired',
    run(env) {
      const make = (): FlashPartition => {
        const flash = freshFlash(env);
        const store = KeyStore.open(flash, crypto(), PROVISIONED_KEY_ID);
        store.begin(pendingFor(8, 10));
        return flash;
      };
      const slotOf = (flash: FlashPartition): number => {
        const b = new Uint8Array(4);
        flash.read(0, b);
        return b[0] === 0x48 ? 0 : 1;
      };
      // Newer format in copy A.
      {
        const flash = make();
        const at = slotOf(flash) * FLASH.blockLength;
        const block = new Uint8Array(FLASH.blockLength);
        flash.read(at, block);
        flash.eraseBlock(slotOf(flash));
        block[4] = KEY_STORE_FORMAT + 1;
        flash.write(at, block);
        throwsCode<StorageError>(() => KeyStore.open(flash, crypto(), PROVISIONED_KEY_ID), 'StorageError', 'format-too-new', 'newer');
      }
      // One damaged header copy: repaired from the other.
      {
        const flash = make();
        const slot = slotOf(flash);
        const block = new Uint8Array(FLASH.blockLength);
        flash.read(slot * FLASH.blockLength, block);
        flash.eraseBlock(slot);
        block[20] ^= 0xff;
        flash.write(slot * FLASH.blockLength, block);
        equal(KeyStore.open(flash, crypto(), PROVISIONED_KEY_ID).state().pending?.keyId, 8, 'copy B repairs');
        // Both copies damaged (the body): the only record is lost: refused, never read as the provisioning key.
        flash.eraseBlock(slot);
        block[20] ^= 0xff;
        block[2 * KEY_STORE_HEADER + 5] ^= 0x01;
        flash.write(slot * FLASH.blockLength, block);
        throwsCode<StorageError>(() => KeyStore.open(flash, crypto(), PROVISIONED_KEY_ID), 'StorageError', 'damaged', 'damaged body');
      }
      // Foreign bytes over the whole partition.
      {
        const flash = env.createFlash({ ...FLASH, mode: 'plain' });
        flash.eraseBlock(0);
        flash.eraseBlock(1);
        const junk = new Uint8Array(FLASH.blockLength);
        for (let i = 0; i < junk.length; i++) junk[i] = (i * 131 + 7) & 0xff;
        flash.write(0, junk);
        throwsCode<StorageError>(() => KeyStore.open(flash, crypto(), PROVISIONED_KEY_ID), 'StorageError', 'damaged', 'foreign');
      }
      // Two valid slots whose sequences no write leaves.
      {
        const flash = make();
        const slot = slotOf(flash);
        const block = new Uint8Array(FLASH.blockLength);
        flash.read(slot * FLASH.blockLength, block);
        const other = freshFlash(env);
        const s2 = KeyStore.open(other, crypto(), PROVISIONED_KEY_ID);
        s2.begin(pendingFor(8, 10));
        s2.commit(11);
        s2.begin(pendingFor(9, 12));
        const otherBlock = new Uint8Array(FLASH.blockLength);
        const otherSlot = slotOf(other);
        other.read(otherSlot * FLASH.blockLength, otherBlock);
        flash.eraseBlock(1 - slot);
        flash.write((1 - slot) * FLASH.blockLength, otherBlock);
        throwsCode<StorageError>(() => KeyStore.open(flash, crypto(), PROVISIONED_KEY_ID), 'StorageError', 'damaged', 'sequences 1 and 3');
      }
      // A store record naming another provisioning key id.
      {
        const flash = make();
        throwsCode<StorageError>(() => KeyStore.open(flash, crypto(), PROVISIONED_KEY_ID + 1), 'StorageError', 'damaged', 'other provisioning key id');
      }
    },
  },
  ...(['plain', 'strict'] as const).map(
    (mode): FirmwareCase => ({
      name: `power cuts at every flash operation of two rotations (${mode}): one current generation after every cut, the old or the new, and a repeated begin/commit finishes`,
      run: (env) => ({ ...runExhaustive(rotationScenario(mode), runnerOptions(env, { variants: 2 })) }),
    }),
  ),
];

interface RotationState {
  formatted: boolean;
  /** Generation known committed. */
  committed: number;
  /** Generation whose commit was in flight. */
  committing: number | undefined;
  /** Pending known durable (key id), or undefined. */
  pendingDurable: number | undefined;
}

const LAST = PROVISIONED_KEY_ID + 2;

function rotationScenario(mode: FlashMode): CutScenario<RotationState> {
  return {
    name: `security/key-store/${mode}`,
    flash: { ...FLASH, mode },
    createState: () => ({ formatted: false, committed: PROVISIONED_KEY_ID, committing: undefined, pendingDurable: undefined }),
    boot(flash, state) {
      if (!state.formatted) {
        KeyStore.format(flash);
        state.formatted = true;
      }
      const store = KeyStore.open(flash, crypto(), PROVISIONED_KEY_ID);
      const s = store.state();
      const current = s.current.keyId;
      ok(current === state.committed || current === state.committing, `current key ${current}: neither the committed ${state.committed} nor the one in flight ${String(state.committing)}`);
      if (s.current.source === 'store') equal(s.current.seed?.[0], current, 'the current seed belongs to the current key');
      if (state.pendingDurable !== undefined && current === state.committed) equal(s.pending?.keyId, state.pendingDurable, 'a durable pending rotation was lost');
      state.committed = current;
      state.committing = undefined;
      for (let next = current + 1; next <= LAST; next++) {
        const counter = next * 10;
        if (store.state().pending === undefined) {
          store.begin(pendingFor(next, counter));
          state.pendingDurable = next;
        } else equal(store.state().pending?.keyId, next, 'pending is the next key');
        state.committing = next;
        store.commit(counter + 1);
        state.committed = next;
        state.committing = undefined;
        state.pendingDurable = undefined;
      }
      equal(store.state().current.keyId, LAST, 'both rotations done');
    },
  };
}

export const suite: CaseSuite = { name: 'key store', cases };
