/**
 * The Moddable flash adapter (firmware/targets/moddable/flash.ts) against an
 * emulated `embedded:storage/flash` over simulated partitions
 * (tools/xs/moddable-emu/), in Node and in XS: it keeps the flash contract
 * the simulator keeps (same reads after the same operations, plain and
 * encrypted), recognises erased units under flash encryption, and a Counter
 * over it survives a power cut at every flash operation in both modes.
 */
import { Counter } from '../../firmware/storage/counter.ts';
import { activeCopy, readOtadata, slotForSeq, stateOfSlot } from '../../firmware/update/otadata.ts';
import { createModdableHal } from '../../firmware/targets/moddable/hal.ts';
import { openModdableFlash, ModdableFlash } from '../../firmware/targets/moddable/flash.ts';
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { SimFlash, type FlashMode } from '../../tools/sim/flash/sim-flash.ts';
import { Rng } from '../../tools/sim/rng.ts';
import type { CutScenario } from '../../tools/sim/power-cut.ts';
import { createEmuModdable, type EmuModdable } from '../../tools/xs/moddable-emu/index.ts';
import { bytesEqual, equal, ok, throws } from '../support/check.ts';
import { exhaustiveCase, garbage } from '../support/case-helpers.ts';
import type { CaseEnv, CaseSuite, FirmwareCase } from '../support/cases.ts';

const BLOCK = 4096;

function modeOf(encrypted: boolean): FlashMode {
  return encrypted ? 'strict' : 'plain';
}

/** An emulated device whose partition `label` is `flash`. */
function emuWith(label: string, flash: FlashPartition, encrypted: boolean): EmuModdable {
  return createEmuModdable({ partitions: { [label]: { flash, encrypted } } });
}

function adapterOver(flash: FlashPartition, encrypted: boolean, label = 'hf_counter'): ModdableFlash {
  const emu = emuWith(label, flash, encrypted);
  return openModdableFlash(emu.modules.flash, emu.modules.native, label);
}

/**
 * Differential contract check: the same random erases, writes and reads on
 * the adapter (over an emulated, possibly encrypted partition) and on a
 * reference SimFlash of the HAL mode the adapter reports; every read agrees.
 * Writes respect the mode (strict: aligned units written once per erase).
 */
function contractRun(env: CaseEnv, encrypted: boolean, seed: number): Record<string, number> {
  const blocks = 3;
  const stored = env.createFlash({ blocks, blockLength: BLOCK, mode: modeOf(encrypted) });
  const adapter = adapterOver(stored, encrypted);
  const reference = new SimFlash({ blocks, blockLength: BLOCK, mode: modeOf(encrypted) });
  const status = adapter.status();
  equal(status.size, blocks * BLOCK, 'size');
  equal(status.blockLength, BLOCK, 'blockLength');
  equal(status.blocks, blocks, 'blocks');
  equal(status.writeAlign, encrypted ? 16 : 1, 'writeAlign');
  equal(status.eraseValue, 0xff, 'eraseValue');
  const align = status.writeAlign;
  const units = (blocks * BLOCK) / align;
  const written = new Uint8Array(units); // strict: unit written since its erase
  const rng = new Rng(seed);
  let reads = 0;
  let writes = 0;
  let erases = 0;
  for (let step = 0; step < 400; step++) {
    const op = rng.below(10);
    if (op === 0) {
      const block = rng.below(blocks);
      adapter.eraseBlock(block);
      reference.eraseBlock(block);
      written.fill(0, (block * BLOCK) / align, ((block + 1) * BLOCK) / align);
      erases++;
    } else if (op < 5) {
      const count = 1 + rng.below(8);
      const first = rng.below(units - count);
      if (encrypted && written.subarray(first, first + count).some((w) => w === 1)) continue;
      const data = garbage(count * align, seed * 1000 + step);
      adapter.write(first * align, data);
      reference.write(first * align, data);
      written.fill(1, first, first + count);
      writes++;
    } else {
      const length = 1 + rng.below(300);
      const offset = rng.below(blocks * BLOCK - length);
      const got = new Uint8Array(length);
      const want = new Uint8Array(length);
      adapter.read(offset, got);
      reference.read(offset, want);
      bytesEqual(got, want, `step ${step}: read of ${length} at ${offset}`);
      reads++;
    }
  }
  const whole = new Uint8Array(blocks * BLOCK);
  const wholeRef = new Uint8Array(blocks * BLOCK);
  adapter.read(0, whole);
  reference.read(0, wholeRef);
  bytesEqual(whole, wholeRef, 'whole partition at the end');
  return { reads, writes, erases };
}

function misuseCase(encrypted: boolean): FirmwareCase {
  return {
    name: `misuse is refused before the module sees it (${encrypted ? 'encrypted' : 'plain'})`,
    run(env) {
      const stored = env.createFlash({ blocks: 2, blockLength: BLOCK, mode: modeOf(encrypted) });
      const adapter = adapterOver(stored, encrypted);
      throws(() => adapter.read(2 * BLOCK - 3, new Uint8Array(4)), 'RangeError', 'read past the end');
      throws(() => adapter.read(-1, new Uint8Array(1)), 'RangeError', 'negative offset');
      throws(() => adapter.write(2 * BLOCK, new Uint8Array(16)), 'RangeError', 'write past the end');
      throws(() => adapter.eraseBlock(2), 'RangeError', 'block past the end');
      throws(() => adapter.eraseBlock(0.5), 'RangeError', 'fractional block');
      throws(() => adapter.read(0, [1, 2] as unknown as Uint8Array), 'TypeError', 'target not a Uint8Array');
      if (encrypted) {
        throws(() => adapter.write(8, new Uint8Array(16)), 'RangeError', 'misaligned offset', 'multiples of 16');
        throws(() => adapter.write(16, new Uint8Array(8)), 'RangeError', 'partial unit', 'multiples of 16');
      } else {
        adapter.write(3, new Uint8Array([0x12]));
        const one = new Uint8Array(1);
        adapter.read(3, one);
        equal(one[0], 0x12, 'a single byte at an odd offset (plain)');
      }
      equal(stored.counters.operations, encrypted ? 0 : 1, 'refused calls never reached the flash');
    },
  };
}

const erasedUnderEncryption: FirmwareCase = {
  name: 'erased units under flash encryption read 0xFF through the adapter, not through the decrypting path',
  run(env) {
    const stored = env.createFlash({ blocks: 2, blockLength: BLOCK, mode: 'strict' });
    const emu = emuWith('hf_audit', stored, true);
    const adapter = openModdableFlash(emu.modules.flash, emu.modules.native, 'hf_audit');
    adapter.eraseBlock(0);
    adapter.eraseBlock(1);
    // Through the module alone (what an adapter without the raw check would return): no byte of erased flash reads 0xFF.
    const decrypted = new Uint8Array(64);
    emu.modules.flash.open({ path: 'hf_audit' }).read(decrypted, 32);
    ok(decrypted.every((b) => b !== 0xff), 'the emulated decrypting path turns erased bytes into something other than 0xFF');
    const throughAdapter = new Uint8Array(64);
    adapter.read(32, throughAdapter);
    ok(throughAdapter.every((b) => b === 0xff), 'the adapter reads erased units as 0xFF');
    // Unit 1 programmed (with zeros, then a unit of plaintext 0xFF): a read spanning units 0..3 unaligned.
    adapter.write(16, new Uint8Array(16));
    adapter.write(48, new Uint8Array(16).fill(0xff));
    const span = new Uint8Array(60);
    adapter.read(3, span);
    ok(span.subarray(0, 13).every((b) => b === 0xff), 'unit 0 (erased) reads 0xFF');
    ok(span.subarray(13, 29).every((b) => b === 0), 'unit 1 (zeros) reads its plaintext');
    ok(span.subarray(29, 45).every((b) => b === 0xff), 'unit 2 (erased) reads 0xFF');
    ok(span.subarray(45, 60).every((b) => b === 0xff), 'unit 3 (programmed with 0xFF) reads its plaintext');
    const raw = new Uint8Array(16);
    emu.modules.native.readPartitionRaw('hf_audit', 48, raw);
    ok(!raw.every((b) => b === 0xff), 'a unit programmed with plaintext 0xFF is not stored as 0xFF');
    // A unit torn by a cut (stored garbage) decrypts to garbage: never mistaken for erased.
    const torn = garbage(16, 7);
    stored.write(96, torn);
    const tornRead = new Uint8Array(16);
    adapter.read(96, tornRead);
    const tornDecrypted = new Uint8Array(16);
    emu.modules.flash.open({ path: 'hf_audit' }).read(tornDecrypted, 96);
    bytesEqual(tornRead, tornDecrypted, 'a torn unit reads as the module decrypts it');
    ok(!tornRead.every((b) => b === 0xff), 'a torn unit does not read as erased');
    return { rawReads: 1 };
  },
};

const encryptedGeometry: FirmwareCase = {
  name: 'geometry the HAL cannot describe is refused (TargetError bad-geometry)',
  run(env) {
    const stored = env.createFlash({ blocks: 2, blockLength: BLOCK, mode: 'plain' });
    const lying = { read: () => 0, write: () => {}, eraseBlock: () => {}, close: () => {}, status: () => ({ size: 3 * BLOCK, blockLength: BLOCK, blocks: 2 }) };
    const error = throws(() => new ModdableFlash(lying, { encrypted: false }), 'TargetError', 'size not blocks x blockLength');
    equal((error as Error & { code: string }).code, 'bad-geometry', 'code');
    const odd = { ...lying, status: () => ({ size: 2 * 24, blockLength: 24, blocks: 2 }) };
    throws(() => new ModdableFlash(odd, { encrypted: true, readRaw: () => {} }), 'TargetError', 'block not whole 16-byte units');
    throws(() => new ModdableFlash(lying, { encrypted: true }), 'TargetError', 'bad geometry first');
    const fine = { ...lying, status: () => ({ size: 2 * BLOCK, blockLength: BLOCK, blocks: 2 }) };
    throws(() => new ModdableFlash(fine, { encrypted: true }), 'TypeError', 'encrypted without readRaw');
    const emu = emuWith('hf_counter', stored, false);
    throws(() => openModdableFlash(emu.modules.flash, emu.modules.native, 'nosuch'), 'Error', 'unknown label', "can't find partition");
  },
};

interface CounterRunState {
  formatted: boolean;
  maxReturned: number;
  returned: number;
}

/** Counter.format, then values taken a few per boot, every flash access through the adapter over the emulated module. */
function counterOverAdapter(encrypted: boolean): CutScenario<CounterRunState> {
  const total = 24;
  return {
    name: `moddable-adapter/counter/${encrypted ? 'encrypted' : 'plain'}`,
    flash: { blocks: 2, blockLength: 128, mode: modeOf(encrypted), onBitSet: 'throw' },
    createState: () => ({ formatted: false, maxReturned: 0, returned: 0 }),
    boot(flash, state) {
      const adapter = adapterOver(flash, encrypted);
      if (!state.formatted) {
        Counter.format(adapter);
        state.formatted = true;
      }
      while (state.returned < total) {
        const counter = Counter.open(adapter, { reserve: 3 });
        ok(counter.stats().reservedUpTo >= state.maxReturned, `recovered bound ${counter.stats().reservedUpTo} below ${state.maxReturned}, returned before`);
        for (let i = 0; i < 4 && state.returned < total; i++) {
          const value = counter.next();
          ok(value > state.maxReturned, `value ${value} not above ${state.maxReturned}, returned before`);
          state.maxReturned = value;
          state.returned++;
        }
      }
    },
  };
}

interface BootControlRunState {
  confirmed: boolean;
  trialled: boolean;
}

/**
 * Boot control through the encrypted otadata adapter, cut at every flash
 * operation: trial slot 0, confirm it, then request a trial of slot 1, each
 * step redone from what otadata says (as the agent does). After confirm
 * returned, the active copy is slot 0 VALID (or slot 1 NEW once that write
 * landed); after the trial request returned, slot 1 NEW over a slot 0 VALID.
 */
function bootControlOverAdapter(): CutScenario<BootControlRunState> {
  return {
    name: 'moddable-adapter/boot-control/encrypted',
    flash: { blocks: 2, blockLength: 4096, mode: 'strict' },
    createState: () => ({ confirmed: false, trialled: false }),
    boot(flash, state) {
      const slot = () => new SimFlash({ blocks: 1, blockLength: 4096, mode: 'strict' });
      const emu = createEmuModdable({ partitions: { otadata: { flash, encrypted: true }, ota_0: { flash: slot(), encrypted: true }, ota_1: { flash: slot(), encrypted: true } }, runningPartition: 'ota_0' });
      const hal = createModdableHal(emu.modules, { writeLine: () => {} });
      const readings = readOtadata(hal.otadata);
      const active = activeCopy(readings);
      const activeSlot = active === undefined ? undefined : slotForSeq(readings[active].seq);
      const activeState = active === undefined ? undefined : readings[active].state;
      if (state.trialled) {
        ok(activeSlot === 1 && activeState === 'new', `after the trial request: active slot ${String(activeSlot)} ${String(activeState)}, expected slot 1 new`);
        equal(stateOfSlot(readings, 0), 'valid', 'slot 0 stays VALID beneath');
        return;
      }
      if (state.confirmed) {
        ok((activeSlot === 0 && activeState === 'valid') || (activeSlot === 1 && activeState === 'new'), `after confirm: active slot ${String(activeSlot)} ${String(activeState)}`);
      }
      const zero = stateOfSlot(readings, 0);
      if (zero !== 'new' && zero !== 'valid') hal.bootControl.requestTrial(0);
      if (hal.bootControl.runningState() !== 'valid') hal.bootControl.confirmRunning();
      state.confirmed = true;
      hal.bootControl.requestTrial(1);
      state.trialled = true;
    },
  };
}

export const suite: CaseSuite = {
  name: 'moddable target: flash adapter',
  cases: [
    { name: 'keeps the simulator\'s flash contract, plain partition (differential, 400 random operations)', run: (env) => contractRun(env, false, 3) },
    { name: 'keeps the simulator\'s flash contract, encrypted partition (strict mode, differential, 400 random operations)', run: (env) => contractRun(env, true, 4) },
    misuseCase(false),
    misuseCase(true),
    erasedUnderEncryption,
    encryptedGeometry,
    exhaustiveCase('a Counter over the adapter survives a cut at every flash operation, plain partition', counterOverAdapter(false)),
    exhaustiveCase('a Counter over the adapter survives a cut at every flash operation, encrypted partition', counterOverAdapter(true)),
    exhaustiveCase('boot control over the encrypted otadata adapter: trial, confirm, trial of the other slot, cut at every flash operation', bootControlOverAdapter()),
  ],
};
