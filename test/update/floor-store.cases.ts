/**
 * The security floor in flash under power cuts, in Node and XS: raised
 * through many values and both block rotations; after every recovery it is
 * never below a raise that returned and never above one that was asked for.
 */
import { FloorStore } from '../../firmware/update/floor-store.ts';
import { StorageError } from '../../firmware/storage/errors.ts';
import { runExhaustive, type CutScenario } from '../../tools/sim/power-cut.ts';
import type { FlashMode } from '../../tools/sim/flash/sim-flash.ts';
import { equal, ok, throws } from '../support/check.ts';
import type { CaseSuite } from '../support/cases.ts';
import { runDamageSuite, type DamageSubject } from '../support/damage.ts';

interface FloorState {
  formatted: boolean;
  durable: number;
  asked: number;
}

function floorScenario(mode: FlashMode): CutScenario<FloorState> {
  return {
    name: `floor-store/${mode}`,
    flash: { blocks: 2, blockLength: 128, mode },
    createState: () => ({ formatted: false, durable: 0, asked: 0 }),
    boot(flash, state) {
      if (!state.formatted) {
        FloorStore.format(flash);
        state.formatted = true;
      }
      const store = new FloorStore(flash);
      ok(store.secureVersion >= state.durable, `floor ${store.secureVersion} fell below ${state.durable}, a raise that returned`);
      ok(store.secureVersion <= state.asked, `floor ${store.secureVersion} above anything asked (${state.asked})`);
      state.durable = store.secureVersion;
      for (let v = state.durable + 1; v <= 14; v++) {
        state.asked = v;
        store.raise(v);
        state.durable = v;
      }
      equal(new FloorStore(flash).secureVersion, 14, 'final floor read back');
    },
  };
}

/** Damage subject: after the raises, a damaged floor never reads lower (a downgrade window); refusals are StorageErrors. */
function floorDamageSubject(mode: FlashMode, blockLength: number, raises: readonly number[]): DamageSubject<number> {
  return {
    name: `floor-store/${mode}/block${blockLength}`,
    flash: { blocks: 2, blockLength, mode },
    populate(flash) {
      FloorStore.format(flash);
      const store = new FloorStore(flash);
      for (const v of raises) store.raise(v);
      return store.secureVersion;
    },
    verify(flash, floor) {
      try {
        const read = new FloorStore(flash).secureVersion;
        ok(read >= floor, `floor reads ${read}, below ${floor}`);
        return 'recovered';
      } catch (error) {
        if (error instanceof StorageError) return 'refused';
        throw error;
      }
    },
  };
}

export const suite: CaseSuite = {
  name: 'security floor in flash',
  cases: [
    ...(['plain', 'strict'] as const).map((mode) => ({
      name: `exhaustive cuts over raises and rotations, ${mode}`,
      run: (env: Parameters<CaseSuite['cases'][number]['run']>[0]) => ({
        ...runExhaustive(floorScenario(mode), { createFlash: env.createFlash, saveFailureImage: env.saveFailureImage, secondCuts: { sample: 2 } }),
      }),
    })),
    ...(['plain', 'strict'] as const).flatMap((mode) => [
      {
        name: `issue 15.1: floor raised to 7 on 4 KiB sectors, any damaged unit or entry, any bit of what was written, never reads it lower, ${mode}`,
        run: () => {
          // ESP32 sectors: every unit and entry of both blocks; one bit of every byte of what was written (headers, the raise, the handoff).
          const units = runDamageSuite(floorDamageSubject(mode, 4096, [7]), { kinds: ['unit', 'entry'] });
          const written = [0, 4064, 4096, 8160].map((byteOffset) => ({ byteOffset, byteLength: byteOffset % 4096 === 0 ? 64 : 32 }));
          const bits = runDamageSuite({ ...floorDamageSubject(mode, 4096, [7]), ranges: () => written }, { kinds: ['bit'], allBits: true });
          return { cases: units.cases + bits.cases, recovered: units.recovered + bits.recovered, refused: units.refused + bits.refused };
        },
      },
      {
        name: `damage after rotations: every bit (all 8), unit and block, ${mode}`,
        run: () => ({ ...runDamageSuite(floorDamageSubject(mode, 128, [1, 2, 3, 5, 8, 13, 21]), { allBits: true }) }),
      },
    ]),
    {
      name: 'issue 15.1: a garbage slot 100 of block 1 does not read the floor as 0',
      run(env) {
        const flash = env.createFlash({ blocks: 2, blockLength: 4096 });
        FloorStore.format(flash);
        new FloorStore(flash).raise(7);
        flash.write(4096 + 100 * 16, new Uint8Array(16).map((_, i) => (i * 29 + 3) & 0x7f));
        equal(new FloorStore(flash).secureVersion, 7, 'floor after garbage in block 1');
      },
    },
    {
      name: 'the floor never goes down and bad versions are refused',
      run(env) {
        const fresh = env.createFlash({ blocks: 2, blockLength: 128 });
        throws(() => new FloorStore(fresh), 'StorageError', 'a blank floor partition is refused, never floor 0', 'blank');
        FloorStore.format(fresh);
        const store = new FloorStore(fresh);
        store.raise(5);
        store.raise(3);
        equal(store.secureVersion, 5, 'a lower raise is ignored');
        throws(() => store.raise(-1), 'RangeError', 'negative');
        throws(() => store.raise(1.5), 'RangeError', 'fractional');
        const garbage = env.createFlash({ blocks: 2, blockLength: 128 });
        garbage.write(0, new Uint8Array(32).map((_, i) => (i * 37 + 1) & 0x7f));
        throws(() => new FloorStore(garbage), 'StorageError', 'an unreadable floor fails closed', 'neither block');
        FloorStore.format(garbage);
        equal(new FloorStore(garbage).secureVersion, 0, 'provisioned again');
        return {};
      },
    },
  ],
};
