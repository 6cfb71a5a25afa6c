/**
 * The trusted root in flash (firmware/update/trust-store.ts) under power
 * cuts, in Node and XS: provision root 1, rotate to root 5 one save at a
 * time, cut at every flash operation. After every recovery the store holds
 * the last root whose save returned, or the one being saved, never an older
 * one and never nothing once root 1 was saved.
 */
import type { Crypto } from '../../firmware/hal/crypto.ts';
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { rotateRoot, trustProvisionedRoot, type TrustedRoot } from '../../firmware/update/root.ts';
import { TrustStore } from '../../firmware/update/trust-store.ts';
import { StorageError } from '../../firmware/storage/errors.ts';
import { runExhaustive, runRandom, type CutScenario, type CuttableFlash } from '../../tools/sim/power-cut.ts';
import type { FlashMode, SimFlashSnapshot } from '../../tools/sim/flash/sim-flash.ts';
import { bytesEqual, equal, ok, throws } from '../support/check.ts';
import type { CaseEnv, CaseSuite } from '../support/cases.ts';
import { runDamageSuite, type DamageReport, type DamageSubject } from '../support/damage.ts';
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
      name: 'double cuts: a second cut at every operation of the recovery boot, both tear modes (plain, 3 roots)',
      run: (env) => {
        const crypto = createNobleCrypto();
        return { ...runExhaustive(storeScenario('plain', rootChain(crypto, 3), crypto), { ...runnerOptions(env), variants: 2, secondCuts: 'every' }) };
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
      name: 'refuses an older root, keeps blocks outside its two, falls back from a damaged older copy only',
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
        equal(states.filter((s) => s.record.kind === 'root').length, 2, 'two copies');
        const newest = states.findIndex((s) => s.record.kind === 'root' && s.record.version === 3);
        const older = 1 - newest;
        equal(states[newest].complete.kind === 'mark' ? states[newest].complete.version : -1, 3, 'C mark of root 3 beside it');
        equal(states[older].successor.kind === 'mark' ? states[older].successor.version : -1, 3, 'S mark of root 3 in the older block');
        const image = flash.snapshot();
        // Damage the older copy: one bit inside its envelope; the newest is intact, and read.
        flipBit(flash, (2 + older) * 4096 + 16 + 40);
        equal(new TrustStore(flash, crypto, { firstBlock: 2 }).load()?.version, 3, 'a damaged older copy is ignored');
        // Damage the newest copy: its C mark and the older block's S mark say root 3 was stored: refuse, never fall back to root 2.
        restore(flash, image);
        flipBit(flash, (2 + newest) * 4096 + 16 + 40);
        expectStorageError(() => new TrustStore(flash, crypto, { firstBlock: 2 }).load(), 'damaged', 'damaged newest copy');
        expectStorageError(() => new TrustStore(flash, crypto, { firstBlock: 2 }).save(roots[2]), 'damaged', 'save over a damaged store');
        // The whole newest block erased: the older block's S mark still remembers root 3.
        restore(flash, image);
        flash.eraseBlock(2 + newest);
        expectStorageError(() => new TrustStore(flash, crypto, { firstBlock: 2 }).load(), 'damaged', 'newest block erased');
        restore(flash, image);
        const blank = new Uint8Array(4096 * 2);
        flash.read(0, blank);
        ok(blank.every((b) => b === 0xff), 'blocks 0 and 1 untouched');
        throws(() => new TrustStore(flash, crypto, { firstBlock: 3 }), 'StorageError', 'only one block left', 'needs blocks');
      },
    },
    {
      name: 'a trust store of a newer format is refused (format-too-new), never read as not provisioned (issue 15.2)',
      run: (env) => {
        const crypto = createNobleCrypto();
        const roots = rootChain(crypto, 2);
        for (const which of ['newest record', 'older record', 'only record', 'a mark'] as const) {
          const flash = env.createFlash({ blocks: 2, mode: 'plain' });
          const store = new TrustStore(flash, crypto);
          store.save(roots[0]);
          if (which !== 'only record') store.save(roots[1]);
          const newest = [0, 1].findIndex((b) => headerVersion(flash, b) === (which === 'only record' ? 1 : 2));
          // What a later firmware might write: the same magic, format 3 (with its complement), bytes this firmware cannot judge.
          const block = which === 'older record' ? 1 - newest : newest;
          const header = new Uint8Array(16);
          flash.read(block * 4096, header);
          const newer = new Uint8Array(4096).fill(0xff);
          if (which === 'a mark') {
            flash.read(block * 4096, newer);
            newer.set([0x48, 0x46, 0x54, 0x4d, 3, 0xfc, 0x43, 0, 9, 0, 0, 0, 1, 2, 3, 4], 4096 - 32);
          } else {
            newer.set([...header.subarray(0, 4), 3, 0xfc, 0x10, 0x00, 9, 0, 0, 0, 1, 2, 3, 4], 0);
          }
          flash.eraseBlock(block);
          flash.write(block * 4096, newer);
          expectStorageError(() => new TrustStore(flash, crypto).load(), 'format-too-new', which);
          expectStorageError(() => new TrustStore(flash, crypto).save(roots[1]), 'format-too-new', `save over ${which}`);
        }
        // Format 1 (before marks): not this format, refused as not-formatted rather than trusted without its marks.
        const flash = env.createFlash({ blocks: 2, mode: 'plain' });
        new TrustStore(flash, crypto).save(roots[0]);
        mutateBlock(flash, 0, (bytes) => {
          bytes[4] = 1; // format 1: the byte after it was reserved, 0x00
          bytes[5] = 0;
        });
        expectStorageError(() => new TrustStore(flash, crypto).load(), 'not-formatted', 'a format 1 record');
      },
    },
    {
      name: 'blank reads as never provisioned; a torn first save too; a completed first save never does (issue 15.2)',
      run: (env) => {
        const crypto = createNobleCrypto();
        const [root1] = rootChain(crypto, 1);
        const flash = env.createFlash({ blocks: 2, mode: 'strict' });
        equal(new TrustStore(flash, crypto).load(), undefined, 'blank');
        // A first save cut in its record program: garbage in block 0, nothing anywhere else.
        flash.eraseBlock(0);
        const torn = new Uint8Array(64);
        torn.set([0x48, 0x46, 0x54, 0x52, 2, 0xfd, 0x9b, 0]);
        flash.write(0, torn);
        equal(new TrustStore(flash, crypto).load(), undefined, 'torn first save: never provisioned');
        new TrustStore(flash, crypto).save(root1);
        equal(new TrustStore(flash, crypto).load()?.version, 1, 'saved over the torn attempt');
        const image = flash.snapshot();
        // After the first save, damage to its only record is refused.
        for (const at of [0, 5, 8, 16, 100]) {
          restore(flash, image);
          flipBit(flash, at);
          expectStorageError(() => new TrustStore(flash, crypto).load(), 'damaged', `bit flipped at byte ${at} of the only record`);
        }
        restore(flash, image);
        flash.eraseBlock(0);
        expectStorageError(() => new TrustStore(flash, crypto).load(), 'damaged', 'the only record erased');
      },
    },
    {
      name: 'damage suite: bit, unit, entry and block damage never read as not provisioned or as an older root; refusals typed (plain)',
      run: () => ({ ...runDamageSuite(trustDamageSubject('plain', 1, createNobleCrypto())), ...prefix('three', runDamageSuite(trustDamageSubject('plain', 3, createNobleCrypto()))) }),
    },
    {
      name: 'damage suite: bit, unit, entry and block damage never read as not provisioned or as an older root; refusals typed (strict)',
      run: () => ({ ...runDamageSuite(trustDamageSubject('strict', 1, createNobleCrypto())), ...prefix('three', runDamageSuite(trustDamageSubject('strict', 3, createNobleCrypto()))) }),
    },
  ],
};

function expectStorageError(run: () => unknown, code: string, what: string): void {
  const error = throws(run, 'StorageError', what);
  ok(error instanceof StorageError, `${what}: a StorageError`);
  equal((error as StorageError).code, code, `${what}: code (${error.message})`);
}

function restore(flash: CuttableFlash, image: SimFlashSnapshot): void {
  for (let b = 0; b < flash.status().blocks; b++) flash.eraseBlock(b);
  const data = image.data;
  for (let at = 0; at < data.length; at += 16) {
    const unit = data.subarray(at, at + 16);
    if (!unit.every((x) => x === 0xff)) flash.write(at, unit);
  }
}

/** Rewrite block `block` with `change` applied (erase, then program its non-erased units back). */
function mutateBlock(flash: CuttableFlash, block: number, change: (bytes: Uint8Array) => void): void {
  const length = flash.status().blockLength;
  const bytes = new Uint8Array(length);
  flash.read(block * length, bytes);
  change(bytes);
  flash.eraseBlock(block);
  for (let at = 0; at < length; at += 16) {
    const unit = bytes.subarray(at, at + 16);
    if (!unit.every((x) => x === 0xff)) flash.write(block * length + at, unit);
  }
}

/** The root version in the record header of `block` (bytes 8..11), 0 when it holds none. */
function headerVersion(flash: FlashPartition, block: number): number {
  const header = new Uint8Array(16);
  flash.read(block * flash.status().blockLength, header);
  if (header[0] !== 0x48 || header[1] !== 0x46 || header[2] !== 0x54 || header[3] !== 0x52) return 0;
  return new DataView(header.buffer).getUint32(8, true);
}

function flipBit(flash: CuttableFlash, at: number): void {
  const length = flash.status().blockLength;
  mutateBlock(flash, Math.floor(at / length), (bytes) => {
    bytes[at % length] ^= 0x04;
  });
}

function prefix(name: string, report: DamageReport): Record<string, number> {
  return Object.fromEntries(Object.entries(report).map(([k, v]) => [`${name}.${k}`, v]));
}

interface TrustFacts {
  readonly roots: readonly TrustedRoot[];
  readonly durable: number;
}

/** A small chain for the damage suite: one root key (replaced each rotation) and one targets key. */
function smallChain(crypto: Crypto, count: number): TrustedRoot[] {
  const target = testKey(crypto, 70);
  const spec = (v: number) => ({ version: v, rootThreshold: 1, rootKeys: [testKey(crypto, 60 + v)], targetsThreshold: 1, targetsKeys: [target] });
  const first = trustProvisionedRoot(crypto, signedRoot(spec(1), [testKey(crypto, 61)]));
  if (!first.ok) throw new Error(`fixture: ${first.reason}`);
  const roots = [first.root];
  for (let v = 2; v <= count; v++) {
    const next = rotateRoot(crypto, roots[v - 2], signedRoot(spec(v), [testKey(crypto, 60 + v - 1), testKey(crypto, 60 + v)]));
    if (!next.ok) throw new Error(`fixture: ${next.reason}: ${next.message}`);
    roots.push(next.root);
  }
  return roots;
}

/**
 * The trust store as a damage-suite subject: roots 1..count saved one after
 * the other, then every damage; the store must read root `count` or refuse
 * with a StorageError, never nothing and never an older root.
 */
function trustDamageSubject(mode: FlashMode, count: number, crypto: Crypto): DamageSubject<TrustFacts> {
  const blockLength = 4096;
  return {
    name: `trust-store/${mode}/${count} root(s)`,
    flash: { blocks: 2, mode },
    populate(flash) {
      const roots = smallChain(crypto, count);
      const store = new TrustStore(flash, crypto);
      for (const root of roots) store.save(root);
      return { roots, durable: count };
    },
    ranges(facts) {
      const longest = Math.max(...facts.roots.map((r) => r.bytes.length));
      const record = Math.ceil((16 + longest) / 16) * 16;
      return [0, 1].flatMap((b) => [
        { byteOffset: b * blockLength, byteLength: record },
        { byteOffset: (b + 1) * blockLength - 32, byteLength: 32 },
      ]);
    },
    entries(flash, facts) {
      return [0, 1].flatMap((b) => {
        const out = [
          { byteOffset: (b + 1) * blockLength - 32, byteLength: 16 },
          { byteOffset: (b + 1) * blockLength - 16, byteLength: 16 },
        ];
        const version = headerVersion(flash, b);
        if (version >= 1 && version <= facts.roots.length) {
          const length = facts.roots[version - 1].bytes.length;
          out.push({ byteOffset: b * blockLength, byteLength: Math.ceil((16 + length) / 16) * 16 });
        }
        return out;
      });
    },
    verify(flash, facts) {
      let root: TrustedRoot | undefined;
      try {
        root = new TrustStore(flash, crypto).load();
      } catch (error) {
        if (error instanceof StorageError && (error.code === 'damaged' || error.code === 'format-too-new' || error.code === 'not-formatted')) return 'refused';
        throw error;
      }
      ok(root !== undefined, `read as never provisioned; root ${facts.durable} was stored`);
      ok(root.version >= facts.durable, `read root ${root.version}, root ${facts.durable} was stored`);
      bytesEqual(root.bytes, facts.roots[root.version - 1].bytes, `root ${root.version} envelope`);
      return 'recovered';
    },
  };
}
