/**
 * The security floor in flash under power cuts, in Node and XS: raised
 * through many values and both block rotations; after every recovery it is
 * never below a raise that returned and never above one that was asked for.
 */
import { FloorStore } from '../../firmware/update/floor-store.ts';
import { runExhaustive, type CutScenario } from '../../tools/sim/power-cut.ts';
import type { FlashMode } from '../../tools/sim/flash/sim-flash.ts';
import { equal, ok, throws } from '../support/check.ts';
import type { CaseSuite } from '../support/cases.ts';

interface FloorState {
  durable: number;
  asked: number;
}

function floorScenario(mode: FlashMode): CutScenario<FloorState> {
  return {
    name: `floor-store/${mode}`,
    flash: { blocks: 2, blockLength: 64, mode },
    createState: () => ({ durable: 0, asked: 0 }),
    boot(flash, state) {
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

export const suite: CaseSuite = {
  name: 'security floor in flash',
  cases: [
    ...(['plain', 'strict'] as const).map((mode) => ({
      name: `exhaustive cuts over raises and rotations, ${mode}`,
      run: (env: Parameters<CaseSuite['cases'][number]['run']>[0]) => ({ ...runExhaustive(floorScenario(mode), { createFlash: env.createFlash, saveFailureImage: env.saveFailureImage }) }),
    })),
    {
      name: 'the floor never goes down and bad versions are refused',
      run(env) {
        const store = new FloorStore(env.createFlash({ blocks: 2, blockLength: 64 }));
        store.raise(5);
        store.raise(3);
        equal(store.secureVersion, 5, 'a lower raise is ignored');
        throws(() => store.raise(-1), 'RangeError', 'negative');
        throws(() => store.raise(1.5), 'RangeError', 'fractional');
        const garbage = env.createFlash({ blocks: 2, blockLength: 64 });
        garbage.write(0, new Uint8Array(32).map((_, i) => (i * 37 + 1) & 0x7f));
        throws(() => new FloorStore(garbage), 'StorageError', 'an unreadable floor fails closed', 'no valid entry');
        FloorStore.format(garbage);
        equal(new FloorStore(garbage).secureVersion, 0, 'provisioned again');
        return {};
      },
    },
  ],
};
