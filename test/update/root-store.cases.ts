/**
 * The trusted root in flash (firmware/update/trust-store.ts) under power
 * cuts, in Node and XS: provision root 1, rotate to root 5 one save at a
 * time, cut at every flash operation. After every recovery the store holds
 * the last root whose save returned, or the one being saved, never an older
 * one and never nothing once root 1 was saved.
 */
import type { Crypto } from '../../firmware/hal/crypto.ts';
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { rotateRoot, type TrustedRoot } from '../../firmware/update/root.ts';
import { TrustStore } from '../../firmware/update/trust-store.ts';
import { runExhaustive, runRandom, type CutScenario } from '../../tools/sim/power-cut.ts';
import type { FlashMode } from '../../tools/sim/flash/sim-flash.ts';
import { bytesEqual, equal, ok, throws } from '../support/check.ts';
import type { CaseEnv, CaseSuite } from '../support/cases.ts';
import { signedRoot, testKey, testWorld } from './manifest-fixtures.ts';

interface StoreState {
  /** Highest version whose save returned (0: none yet). */
  durable: number;
  /** The version being saved when the power went. */
  inFlight: number | undefined;
}

/** Roots 1..count of one chain: each rotation replaces one root key and one targets key. */
function rootChain(crypto: Crypto, count: number): TrustedRoot[] {
  const w = testWorld(crypto);
  const roots = [w.root1];
  let spec = w.spec;
  for (let v = 2; v <= count; v++) {
    const fresh = testKey(crypto, 20 + v);
    const next = { ...spec, version: v, rootKeys: [fresh, ...spec.rootKeys.slice(1)], targetsKeys: [testKey(crypto, 40 + v), ...spec.targetsKeys.slice(1)] };
    // The kept keys meet both thresholds; the added key signs for itself (docs/spec/root.md, "Rotation").
    const verdict = rotateRoot(crypto, roots[roots.length - 1], signedRoot(next, [...spec.rootKeys.slice(1), fresh]));
    if (!verdict.ok) throw new Error(`fixture chain: ${verdict.reason}: ${verdict.message}`);
    roots.push(verdict.root);
    spec = next;
  }
  return roots;
}

function storeScenario(mode: FlashMode, roots: readonly TrustedRoot[], crypto: Crypto): CutScenario<StoreState> {
  return {
    name: `trust-store/${mode}/${roots.length}`,
    flash: { blocks: 3, mode },
    createState: () => ({ durable: 0, inFlight: undefined }),
    boot(flash, state) {
      const store = new TrustStore(flash, crypto, { firstBlock: 1 });
      const loaded = store.load();
      if (loaded === undefined) {
        ok(state.durable === 0, `nothing loaded, but root ${state.durable} was saved`);
      } else {
        ok(loaded.version === state.durable || loaded.version === state.inFlight, `loaded root ${loaded.version}; durable ${state.durable}, in flight ${state.inFlight}`);
        bytesEqual(loaded.bytes, roots[loaded.version - 1].bytes, `root ${loaded.version} envelope`);
        state.durable = loaded.version;
      }
      state.inFlight = undefined;
      for (let v = state.durable + 1; v <= roots.length; v++) {
        state.inFlight = v;
        store.save(roots[v - 1]);
        state.durable = v;
        state.inFlight = undefined;
      }
      equal(store.load()?.version, roots.length, 'newest root after the saves');
    },
  };
}

function runnerOptions(env: CaseEnv) {
  return { createFlash: env.createFlash, saveFailureImage: env.saveFailureImage };
}

export const suite: CaseSuite = {
  name: 'trusted root store under power cuts',
  cases: [
    {
      name: 'exhaustive cuts, plain NOR',
      run: (env) => {
        const crypto = createNobleCrypto();
        return { ...runExhaustive(storeScenario('plain', rootChain(crypto, 4), crypto), runnerOptions(env)) };
      },
    },
    {
      name: 'exhaustive cuts, strict (16-byte write-once units)',
      run: (env) => {
        const crypto = createNobleCrypto();
        return { ...runExhaustive(storeScenario('strict', rootChain(crypto, 4), crypto), runnerOptions(env)) };
      },
    },
    {
      name: 'random multi-cut runs',
      run: (env) => {
        const crypto = createNobleCrypto();
        return { ...runRandom(storeScenario('plain', rootChain(crypto, 4), crypto), { ...runnerOptions(env), runs: 20, maxCuts: 3, seed: 11 }) };
      },
    },
    {
      name: 'refuses an older root, ignores a damaged copy, and keeps blocks outside its two',
      run: (env) => {
        const crypto = createNobleCrypto();
        const roots = rootChain(crypto, 3);
        const flash = env.createFlash({ blocks: 4, mode: 'plain' });
        const store = new TrustStore(flash, crypto, { firstBlock: 2 });
        equal(store.load(), undefined, 'blank store');
        store.save(roots[0]);
        store.save(roots[1]);
        throws(() => store.save(roots[0]), 'RangeError', 'saving an older root', 'not newer');
        throws(() => store.save(roots[1]), 'RangeError', 'saving the same root', 'not newer');
        store.save(roots[2]);
        const states = store.inspect();
        equal(states.filter((s) => s.kind === 'root').length, 2, 'two copies');
        // Damage the newest copy: one bit inside its envelope; the store falls back to root 2.
        const newest = states.findIndex((s) => s.kind === 'root' && s.version === 3);
        const envelope = new Uint8Array(roots[2].bytes.length);
        const start = (2 + newest) * 4096 + 16;
        flash.read(start, envelope);
        const at = envelope.findIndex((b, i) => i >= 40 && b !== 0);
        flash.write(start + at, Uint8Array.of(0)); // NOR: clears the bits that were set
        equal(new TrustStore(flash, crypto, { firstBlock: 2 }).load()?.version, 2, 'falls back to the intact copy');
        const blank = new Uint8Array(4096 * 2);
        flash.read(0, blank);
        ok(blank.every((b) => b === 0xff), 'blocks 0 and 1 untouched');
        throws(() => new TrustStore(flash, crypto, { firstBlock: 3 }), 'StorageError', 'only one block left', 'needs blocks');
      },
    },
  ],
};
