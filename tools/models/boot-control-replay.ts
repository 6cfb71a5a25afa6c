/**
 * Replays a trace of the boot-control model against the TypeScript
 * (docs/models/boot-control.md, "Conformance"): one SimFlash laid out with
 * `otaLayout` (otadata, ota_0, ota_1), the SimBootloader's plan with a
 * SimEfuse floor for boots, the otadata functions (setBootSlot, markValid,
 * writeOtadataCopy, readOtadata) and the UpdateAgent's commit for the app.
 * Each model flash step is one flash operation: an erase the model cut
 * after is an erase with nothing after it; a torn program is a SimFlash cut
 * armed on the program with a seed whose torn result leaves the copy
 * invalid (checked).
 *
 * Two modes:
 * - conformance (simulations of the correct model): every plan (row and
 *   slot), every otadata write (copy, seq, state), every floor raise and
 *   every boot (slot, otadata state of that slot, floor, image) must be the
 *   model's;
 * - counterexample (trails of a planted bug): the same until the first step
 *   the correct TypeScript would not take; that step must be the bug's
 *   (a floor raised before VALID, NEW over the active copy, NEW for an
 *   image that does not verify as the signed one), and the replay stops there.
 */
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import type { SlotIndex } from '../../firmware/hal/boot-control.ts';
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { UpdateAgent, type UpdateDeps } from '../../firmware/update/agent.ts';
import { ESP_CHIPS, readEspAppDesc, verifyEspAppImage, type EspImageRules } from '../../firmware/update/esp-app-image.ts';

/** The simulated bootloader's rules with anti-rollback on an ESP32 (SimBootloader's defaults with an eFuse). */
const RULES: EspImageRules = { chip: ESP_CHIPS.esp32, requireAppDesc: true, requireHash: false };
import {
  activeCopy,
  isEntryInitial,
  isEntryValid,
  markValid,
  OTA_SEQ_BLANK,
  planSetBootSlot,
  readOtadata,
  setBootSlot,
  slotForSeq,
  stateOfSlot,
  withSeqAndState,
  writeOtadataCopy,
  type CopyIndex,
  type OtaStateReading,
} from '../../firmware/update/otadata.ts';
import type { BootEffect, BootPlan } from '../../firmware/update/decide.ts';
import { buildAppImage, otaLayout, otaLayoutBlocks, provisionDevice, SimBootloader, SimEfuse, type OtaLayout } from '../sim/bootloader.ts';
import { isPowerCut } from '../sim/flash/errors.ts';
import { SimFlash, type FlashMode } from '../sim/flash/sim-flash.ts';
import type { BootEvent, BootTrace, ModelImage, ModelState } from './boot-control-trace.ts';
import { TraceDivergence, type ReplayMode } from './trace-file.ts';

/** Where the correct TypeScript leaves a planted bug's path. */
export type Divergence = 'floor-before-valid' | 'select-over-active' | 'select-unverified';

export interface ReplayReport {
  readonly events: number;
  readonly boots: number;
  readonly otadataWrites: number;
  readonly cuts: number;
  readonly torn: number;
  readonly realCalls: number;
  /** Counterexample mode: where and how the TypeScript refused the bug's step. */
  readonly divergence?: { readonly at: number; readonly kind: Divergence; readonly detail: string };
}

/** otadata is two 4 KiB sectors (docs/spec/otadata.md): the whole replay flash uses ESP32 sectors. */
const BLOCK = 4096;
const SLOT_BLOCKS = 4;
/** A torn stage writes the first PARTIAL bytes; images stay small (each boot hashes both slots). */
const PARTIAL = 512;
const BODY_LENGTH = 2 * PARTIAL + 100;
const STATE_NAMES: Readonly<Record<OtaStateReading, ModelState | undefined>> = {
  new: 'NEW',
  'pending-verify': 'PV',
  valid: 'VALID',
  invalid: 'INVALID',
  aborted: 'ABORTED',
  undefined: 'UNDEF',
  unrecognized: undefined,
};
const EXPECTED_DIVERGENCE: Readonly<Record<string, Divergence>> = {
  '!(floor_early)': 'floor-before-valid',
  '!(hang_committed)': 'select-over-active',
  '!(boot_unverified)': 'select-unverified',
};

class Stop extends Error {
  constructor(readonly kind: Divergence, readonly detail: string) {
    super(detail);
  }
}

/** A pending otadata copy write: the bytes the TypeScript writes and the real call that writes them whole. */
interface CopyWrite {
  readonly copy: CopyIndex;
  readonly bytes: Uint8Array;
  readonly who: 'boot' | 'agent';
  /** Performs erase and program through the real function; returns the copy it wrote. */
  readonly call?: () => CopyIndex | undefined;
  erased: boolean;
}

/** Replay `trace`; throws TraceDivergence where the TypeScript decides differently. */
export function replayBootTrace(trace: BootTrace, options: { mode: ReplayMode; flashMode?: FlashMode }): ReplayReport {
  const events = trace.events;
  const config = events[0];
  if (!config || config.kind !== 'config') throw new Error('a trace starts with its EVENT config line');
  const conformance = options.mode === 'conformance';
  if (conformance && config.bug !== 0) throw new Error(`a trace of planted bug ${config.bug} is replayed in counterexample mode`);
  const expected = conformance ? undefined : EXPECTED_DIVERGENCE[trace.meta.violates ?? ''];
  if (!conformance && !expected) throw new Error(`the trace header names no known violated property (violates: ${JSON.stringify(trace.meta.violates)})`);

  const crypto = createNobleCrypto();
  const createSha256 = () => crypto.createSha256();
  const signedImage = (sv: number) => buildAppImage({ imageVersion: sv, secureVersion: sv }, BODY_LENGTH, createSha256);
  /** Complete and self-consistent (the bootloader loads it), but not the signed image of that version. */
  const forgedImage = (sv: number) => buildAppImage({ imageVersion: sv + 100, secureVersion: sv }, BODY_LENGTH, createSha256);

  let flash = new SimFlash({ blocks: otaLayoutBlocks(SLOT_BLOCKS), blockLength: BLOCK, mode: options.flashMode ?? 'plain', onBitSet: 'throw' });
  let layout: OtaLayout = otaLayout(flash, SLOT_BLOCKS);
  const efuse = new SimEfuse(1);
  const bootloader = () => new SimBootloader({ otadata: layout.otadata, slots: layout.slots, createSha256, efuse });
  provisionDevice(layout, signedImage(1));
  const images: [ModelImage, ModelImage] = ['GOOD', 'ABSENT'];
  const sector = layout.otadata.status().blockLength;

  let running: SlotIndex | undefined;
  let plan: BootPlan | undefined;
  let effects: BootEffect[] = [];
  let write: CopyWrite | undefined;
  let boots = 0, otadataWrites = 0, cuts = 0, torn = 0, realCalls = 0;
  const skip = new Set<number>();

  const agentFor = (onFlash: OtaLayout, floor: SimEfuse, slot: SlotIndex): UpdateAgent =>
    // commit() uses only otadata, slots, runningSlot, floor, audit and the (here blank) staging progress log.
    new UpdateAgent({ otadata: onFlash.otadata, slots: onFlash.slots, runningSlot: slot, floor, progress: new SimFlash({ blocks: 2 }), audit: { emit: () => undefined } } as unknown as UpdateDeps);

  const reset = () => {
    running = undefined;
    plan = undefined;
    effects = [];
    write = undefined;
  };

  for (let i = 1; i < events.length; i++) {
    if (skip.has(i)) continue;
    const event = events[i];
    const fail = (message: string): never => {
      throw new TraceDivergence(i, trace.lines[i], message);
    };
    const readings = () => readOtadata(layout.otadata);
    const checkCopy = (copy: number, seq: number, state: ModelState) => {
      const r = readings()[copy];
      const got = `seq ${r.seq === OTA_SEQ_BLANK ? 'blank' : r.seq} ${STATE_NAMES[r.state] ?? r.state} crc ${r.crcOk ? 'ok' : 'bad'}`;
      if (r.seq !== seq || STATE_NAMES[r.state] !== state || !r.crcOk) fail(`the model's copy ${copy} is seq ${seq} ${state} crc ok, the TypeScript's ${got}`);
    };
    const runningSlot = (): SlotIndex => (running === undefined ? fail('no slot is running') : running);
    try {
      switch (event.kind) {
        case 'config':
          fail('a second config line');
          break;
        case 'plan': {
          plan = bootloader().plan();
          const slot = plan.bootSlot ?? 2;
          if (plan.row.id !== `R${event.row}` || slot !== event.slot) fail(`the model's bootloader takes R${event.row} slot ${event.slot}, the TypeScript ${plan.row.id} slot ${slot}`);
          effects = [...plan.effects];
          break;
        }
        case 'erase':
        case 'write':
        case 'torn': {
          if (!write) {
            const effect = effects[0];
            if (plan && effect?.kind === 'write-otadata') {
              effects.shift();
              write = { copy: effect.copy, bytes: effect.bytes, who: 'boot', erased: false };
            } else fail(`the model writes otadata copy ${event.copy}, the TypeScript has no write pending`);
          }
          const w = write as CopyWrite;
          if (w.copy !== event.copy) fail(`the model writes copy ${event.copy}, the TypeScript copy ${w.copy}`);
          if (event.kind === 'erase') {
            if (w.erased) fail('a second erase');
            const next = events[i + 1];
            if (next?.kind === 'write' && next.copy === event.copy) {
              // Erase and program both happen: the real call does them.
              realCalls++;
              if (w.call) {
                const wrote = w.call();
                if (wrote !== w.copy) fail(`the TypeScript call wrote copy ${wrote}, expected ${w.copy}`);
              } else writeOtadataCopy(layout.otadata, w.copy, w.bytes);
              otadataWrites++;
              checkCopy(next.copy, next.seq, next.state);
              skip.add(i + 1);
              write = undefined;
            } else {
              layout.otadata.eraseBlock(w.copy);
              w.erased = true;
              const r = readings()[w.copy];
              if (isEntryValid(r) || !isEntryInitial(r)) fail('an erased copy reads as valid');
            }
          } else if (event.kind === 'write') {
            if (!w.erased) fail('a program without its erase');
            layout.otadata.write(w.copy * sector, w.bytes);
            otadataWrites++;
            checkCopy(event.copy, event.seq, event.state);
            write = undefined;
          } else {
            if (!w.erased) fail('a torn program without its erase');
            flash = tearProgram(flash, w.copy, w.bytes, sector, 0x7e4a0000 + i * 16);
            layout = otaLayout(flash, SLOT_BLOCKS);
            torn++;
            reset();
          }
          break;
        }
        case 'cut':
          cuts++;
          flash.powerOn();
          reset();
          break;
        case 'raise': {
          if (event.by === 'boot') {
            const effect = effects.shift();
            if (!plan || effect?.kind !== 'raise-floor') fail('the model\'s bootloader raises the floor, the TypeScript\'s plan does not (now)');
            efuse.raise((effect as Extract<BootEffect, { kind: 'raise-floor' }>).secureVersion);
          } else {
            const slot = runningSlot();
            const state = stateOfSlot(readings(), slot);
            if (state !== 'valid') {
              throw new Stop('floor-before-valid', `the model raises the floor to ${event.floor} while slot ${slot} reads ${state ?? 'no entry'}; ${commitOrder(flash, efuse, slot, agentFor)}`);
            }
            const header = readEspAppDesc(layout.slots[slot]);
            if (header.kind !== 'desc') fail('the running slot has no app description');
            efuse.raise((header as Extract<typeof header, { kind: 'desc' }>).desc.secureVersion);
          }
          if (efuse.secureVersion !== event.floor) fail(`the model's floor is ${event.floor}, the TypeScript's ${efuse.secureVersion}`);
          break;
        }
        case 'boot': {
          boots++;
          if (!plan || effects.length > 0 || write) fail(`a boot with the bootloader's plan not done (${effects.length} effects left)`);
          const slot = (plan as BootPlan).bootSlot;
          if (slot !== event.slot) fail(`the model boots slot ${event.slot}, the TypeScript ${slot ?? 'none'}`);
          const state = stateOfSlot(readings(), event.slot);
          const name = state === undefined ? 'none' : STATE_NAMES[state];
          if (name !== event.state) fail(`the model boots slot ${event.slot} in state ${event.state}, the TypeScript in ${state}`);
          if (efuse.secureVersion !== event.floor) fail(`the model's floor is ${event.floor}, the TypeScript's ${efuse.secureVersion}`);
          if (images[event.slot] !== event.image) fail(`the model boots image ${event.image}, the replayer wrote ${images[event.slot]} there`);
          if (!verifyEspAppImage(layout.slots[event.slot], RULES, createSha256).ok) fail(`the TypeScript's bootloader boots slot ${event.slot}, whose image does not verify`);
          running = event.slot as SlotIndex;
          plan = undefined;
          break;
        }
        case 'hang':
          if (images[runningSlot()] !== 'HANG') fail('a hang of an image that does not hang');
          reset();
          break;
        case 'trial': {
          const slot = runningSlot();
          const r = readings();
          const state = stateOfSlot(r, slot);
          if (state === 'valid' || state === undefined) fail(`the model starts a trial, the TypeScript's beginTrial sees ${state ?? 'no entry'}`);
          const next = events[i + 1];
          if (state !== 'pending-verify' && (next?.kind === 'erase' || next?.kind === 'torn')) {
            // markPendingVerify (agent.ts): the active copy, in place, if it names the running slot.
            const active = activeCopy(r);
            if (active === undefined || slotForSeq(r[active].seq) !== slot) fail('the model marks PENDING_VERIFY, the TypeScript would not');
            const a = active as CopyIndex;
            write = { copy: a, bytes: withSeqAndState(r[a], r[a].seq, 'pending-verify'), who: 'agent', erased: false };
          }
          break;
        }
        case 'commit': {
          const slot = runningSlot();
          const r = readings();
          const active = activeCopy(r);
          if (active === undefined || slotForSeq(r[active].seq) !== slot) fail('the model commits, the TypeScript\'s commit would skip (active copy names another slot)');
          const a = active as CopyIndex;
          const kinds = events.slice(i + 1, i + 4).map((e) => e.kind + (e.kind === 'raise' ? `:${e.by}` : ''));
          const whole = r[a].state === 'valid' ? kinds[0] === 'raise:agent' : kinds.join(' ') === 'erase write raise:agent';
          if (whole) {
            // The real commit: VALID, then the floor.
            realCalls++;
            const before = flash.counters.operations;
            agentFor(layout, efuse, slot).commit();
            otadataWrites += flash.counters.operations > before ? 1 : 0;
            const raise = events[i + (r[a].state === 'valid' ? 1 : 3)] as Extract<BootEvent, { kind: 'raise' }>;
            if (r[a].state !== 'valid') {
              const w = events[i + 2] as Extract<BootEvent, { kind: 'write' }>;
              checkCopy(w.copy, w.seq, w.state);
              skip.add(i + 1).add(i + 2);
            }
            skip.add(i + (r[a].state === 'valid' ? 1 : 3));
            if (efuse.secureVersion !== raise.floor) fail(`the model's floor after the commit is ${raise.floor}, the TypeScript's ${efuse.secureVersion}`);
          } else if (r[a].state !== 'valid') {
            write = { copy: a, bytes: withSeqAndState(r[a], r[a].seq, 'valid'), who: 'agent', erased: false, call: () => markValid(layout.otadata)?.copy };
          }
          break;
        }
        case 'commit-skipped': {
          const r = readings();
          const active = activeCopy(r);
          if (active !== undefined && slotForSeq(r[active].seq) === runningSlot()) fail('the model skips the commit, the TypeScript would commit');
          break;
        }
        case 'stage': {
          const slot = runningSlot() === 0 ? 1 : 0;
          if (event.slot !== slot) fail(`the model stages slot ${event.slot}, the inactive slot is ${slot}`);
          const target = layout.slots[slot];
          if (event.part === 'erase') {
            for (let block = 0; block < SLOT_BLOCKS; block++) target.eraseBlock(block);
            images[slot] = 'ABSENT';
            if (readEspAppDesc(target).kind === 'desc') fail('an erased slot has an app description');
          } else {
            const sv = event.sv as number;
            const done = event.part === 'done' ? event : (events.slice(i + 1).find((e) => e.kind === 'stage' && e.slot === slot) as BootEvent | undefined);
            const image = done?.kind === 'stage' && done.part === 'done' && done.image === 'FORGED' ? forgedImage(sv) : signedImage(sv);
            if (event.part === 'partial') {
              target.write(0, image.subarray(0, PARTIAL));
              images[slot] = 'TORN';
              const header = readEspAppDesc(target);
              if (header.kind !== 'desc' || header.desc.secureVersion !== sv || verifyEspAppImage(target, RULES, createSha256).ok) fail('a partly written image must have its app description and not verify');
            } else {
              const rest = new Uint8Array(Math.ceil((image.length - PARTIAL) / target.status().writeAlign) * target.status().writeAlign).fill(0xff);
              rest.set(image.subarray(PARTIAL));
              target.write(PARTIAL, rest);
              images[slot] = event.image as ModelImage;
              if (!verifyEspAppImage(target, RULES, createSha256).ok) fail('a complete image does not verify');
            }
          }
          break;
        }
        case 'refuse': {
          if (matchesSigned(layout.slots[event.slot], signedImage)) fail('the model refuses the image, but it is the signed one');
          break;
        }
        case 'select': {
          const target = layout.slots[event.slot];
          if (!verifyEspAppImage(target, RULES, createSha256).ok || !matchesSigned(target, signedImage)) {
            throw new Stop('select-unverified', `the model selects slot ${event.slot} (image ${images[event.slot]}) for a trial; the TypeScript agent calls setBootSlot only after stageImage matched the signed digest and checkStagedImage passed, which this slot does not`);
          }
          const r = readings();
          const tsPlan = planSetBootSlot(r, event.slot);
          if (tsPlan.copy !== event.copy || tsPlan.seq !== event.seq) {
            const active = activeCopy(r);
            if (!conformance && active === event.copy && tsPlan.copy !== active) {
              throw new Stop('select-over-active', `the model writes NEW seq ${event.seq} over copy ${event.copy}, the active copy; planSetBootSlot writes copy ${tsPlan.copy} seq ${tsPlan.seq}, keeping the active entry`);
            }
            fail(`the model selects copy ${event.copy} seq ${event.seq}, planSetBootSlot copy ${tsPlan.copy} seq ${tsPlan.seq}`);
          }
          const slot = event.slot as SlotIndex;
          write = { copy: tsPlan.copy, bytes: withSeqAndState(r[tsPlan.copy], tsPlan.seq, 'new'), who: 'agent', erased: false, call: () => setBootSlot(layout.otadata, slot).copy };
          break;
        }
        case 'restart':
        case 'settle':
          if (event.kind === 'restart') reset();
          break;
      }
    } catch (error) {
      if (!(error instanceof Stop)) throw error;
      if (conformance) throw new TraceDivergence(i, trace.lines[i], `the TypeScript refuses a step of the correct model: ${error.detail}`);
      if (error.kind !== expected) throw new TraceDivergence(i, trace.lines[i], `expected the TypeScript to refuse with ${expected}, it refused with ${error.kind}: ${error.detail}`);
      return { events: events.length, boots, otadataWrites, cuts, torn, realCalls, divergence: { at: i, kind: error.kind, detail: error.detail } };
    }
  }
  if (!conformance) throw new Error(`the TypeScript followed the ${trace.meta.violates} counterexample to its end: expected it to refuse with ${expected}`);
  return { events: events.length, boots, otadataWrites, cuts, torn, realCalls };
}

/** Does the slot hold exactly the signed image of its header's secure version (what stageImage's digest check accepts)? */
function matchesSigned(slot: FlashPartition, signedImage: (sv: number) => Uint8Array): boolean {
  const header = readEspAppDesc(slot);
  if (header.kind !== 'desc') return false;
  const expected = signedImage(header.desc.secureVersion);
  const bytes = new Uint8Array(expected.length);
  slot.read(0, bytes);
  return bytes.every((b, k) => b === expected[k]);
}

/**
 * Program `bytes` into `copy` (already erased) with a power cut tearing the
 * program; seeds are tried on copies of the flash until the torn copy
 * reads as invalid and "initial" (CRC mismatch), the model's torn program.
 */
function tearProgram(flash: SimFlash, copy: CopyIndex, bytes: Uint8Array, sector: number, seed: number): SimFlash {
  const before = flash.snapshot();
  for (let attempt = 0; attempt < 32; attempt++) {
    const trial = SimFlash.fromSnapshot(before, { onBitSet: 'throw' });
    const otadata = otaLayout(trial, SLOT_BLOCKS).otadata;
    trial.armCut({ atOperation: 0, seed: seed + attempt });
    try {
      otadata.write(copy * sector, bytes);
    } catch (error) {
      if (!isPowerCut(error)) throw error;
    }
    trial.disarmCut();
    trial.powerOn();
    const reading = readOtadata(otadata)[copy];
    if (!isEntryValid(reading) && isEntryInitial(reading)) return trial;
  }
  throw new Error(`32 torn programs of otadata copy ${copy} all left a valid copy`);
}

/**
 * The real UpdateAgent.commit on copies of the flash, cut at its first and
 * at its second flash operation (the erase and the program of VALID): the
 * floor must not move; uncut, VALID and then the floor.
 */
function commitOrder(flash: SimFlash, efuse: SimEfuse, slot: SlotIndex, agentFor: (l: OtaLayout, f: SimEfuse, s: SlotIndex) => UpdateAgent): string {
  const snapshot = flash.snapshot();
  for (const at of [0, 1]) {
    const copy = SimFlash.fromSnapshot(snapshot, { onBitSet: 'throw' });
    const floor = new SimEfuse(efuse.secureVersion);
    copy.armCut({ atOperation: at, seed: 0x5eed + at });
    try {
      agentFor(otaLayout(copy, SLOT_BLOCKS), floor, slot).commit();
      throw new Error(`UpdateAgent.commit made no flash operation ${at}`);
    } catch (error) {
      if (!isPowerCut(error)) throw error;
    }
    if (floor.secureVersion !== efuse.secureVersion) throw new Error(`UpdateAgent.commit cut at flash operation ${at} raised the floor to ${floor.secureVersion}: the TypeScript has the bug too`);
  }
  const whole = SimFlash.fromSnapshot(snapshot, { onBitSet: 'throw' });
  const layout = otaLayout(whole, SLOT_BLOCKS);
  const floor = new SimEfuse(efuse.secureVersion);
  agentFor(layout, floor, slot).commit();
  const state = stateOfSlot(readOtadata(layout.otadata), slot);
  return `UpdateAgent.commit cut at its erase or its program leaves the floor at ${efuse.secureVersion}; uncut it writes ${state} and then raises the floor to ${floor.secureVersion}`;
}
