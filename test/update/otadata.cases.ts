/**
 * A/B updates under power cuts (docs/spec/update-states.md), in Node and in
 * XS: every flash operation of whole update cycles is cut, in both flash
 * modes: the bootloader's own writes (first-boot initialisation, NEW ->
 * PENDING_VERIFY, the abort pass), the app's set-boot-partition, mark valid
 * and mark invalid, and the image staging around them.
 *
 * The device under test is one flash holding otadata (2 blocks), ota_0 and
 * ota_1; each "device boot" runs the simulated bootloader, then the app's
 * next step. A boot is named "slot:v<image version>", plus ":trial" when it
 * is the PENDING_VERIFY trial (row R1). Invariants after every recovery:
 * - the bootloader never bricks: it boots a slot whose image verifies;
 * - the boot is what the next boot would have been just before the
 *   interrupted operation, or what it is once that operation is done (the
 *   old or the new choice); for an interrupted boot, the one that boot was
 *   starting or the one that ran before it.
 * One exception is ESP-IDF's own and is counted, not failed: its CRC covers
 * only ota_seq, so an interrupted erase of an otadata sector can leave seq
 * and CRC intact with ota_state bits set back to 1, making that copy select
 * its slot's image with a state the rules never wrote (`tornStateBoots`).
 * The exception is as narrow as the hazard: only the slot named by a copy
 * whose erase was in flight.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import type { SlotIndex } from '../../firmware/hal/boot-control.ts';
import {
  activeCopy,
  encodeOtaEntry,
  markInvalid,
  markValid,
  OTA_SEQ_BLANK,
  planSetBootSlot,
  readOtadata,
  seqForSlot,
  setBootSlot,
  slotForSeq,
  writeOtadataCopy,
  type CopyIndex,
} from '../../firmware/update/otadata.ts';
import { imageVersionOf, readEspAppDesc } from '../../firmware/update/esp-app-image.ts';
import type { BootPlan } from '../../firmware/update/decide.ts';
import {
  BrickedError,
  buildAppImage,
  otaLayout,
  otaLayoutBlocks,
  provisionDevice,
  SimBootloader,
  SimEfuse,
  writeAppImage,
  type BootDecision,
} from '../../tools/sim/bootloader.ts';
import { exhaustiveTier, PowerCutFailure, replayCuts, runExhaustive, runRandom, type CutScenario, type RunnerOptions } from '../../tools/sim/power-cut.ts';
import type { FlashMode } from '../../tools/sim/flash/sim-flash.ts';
import { CheckFailure, equal, ok } from '../support/check.ts';
import type { CaseEnv, CaseSuite, FirmwareCase } from '../support/cases.ts';

const createSha256 = () => sha256.create();
/** 8 KiB slots: small, and an image spans one block so staging is one erase and one program. */
const SLOT_BLOCKS = 2;
/** Small bodies: every boot hashes both slots, and SHA-256 in XS costs about 1.6 s per MiB. */
const BODY_LENGTH = 240;
/** Device boots allowed inside one runner boot before the app is declared stuck. */
const MAX_DEVICE_BOOTS = 40;

export type Ending = 'confirm' | 'abort' | 'reject';

export interface UpdateStep {
  /** Image version to install (its secure version is the same number: every update raises the floor). */
  readonly version: number;
  /** confirm: mark valid during the trial; abort: reset during the trial; reject: mark invalid and reboot. */
  readonly ending: Ending;
}

/** How the app selects a slot: ESP-IDF's `setBootSlot`, or a planted bug. */
export type SetBoot = (otadata: FlashPartition, slot: SlotIndex) => void;

/** What the test knows; it survives reboots and power cuts (the eFuse does too). */
interface UpdateState {
  provisioned: boolean;
  efuse: SimEfuse;
  /** Index of the update under way. */
  update: number;
  /** The trial of the current update ran at least once. */
  trialSeen: boolean;
  /** Boots the next boot may be; undefined: no constraint yet. */
  allowed: string[] | undefined;
  /** Boots acceptable only as ESP-IDF's torn-state hazard (counted). */
  excused: string[];
  /** The app operation under way programs these copies (a torn program can excuse a boot: tornProgramIds). */
  programs: ProgramOf[];
  /** The boot that last completed. */
  lastRunning: string | undefined;
}

export interface ScenarioStats {
  deviceBoots: number;
  /** Boots explained only by ESP-IDF's torn-state hazard (see the file comment). */
  tornStateBoots: number;
  /** Boots that fell back from the start slot to the other one. */
  fallbacks: number;
}

const imageFor = (version: number) => buildAppImage({ imageVersion: version, secureVersion: version }, BODY_LENGTH, createSha256);

function imageId(bootloader: SimBootloader, slot: number): string {
  const reading = readEspAppDesc(bootloader.slots[slot]);
  return reading.kind === 'desc' ? `${slot}:v${imageVersionOf(reading.desc)}` : `${slot}:none`;
}

function planId(bootloader: SimBootloader, plan: BootPlan): string {
  if (plan.bootSlot === undefined) return 'brick';
  return imageId(bootloader, plan.bootSlot) + (plan.row.id === 'R1' ? ':trial' : '');
}

/** What the next boot would be, without writing. */
function nextBoot(bootloader: SimBootloader): string {
  return planId(bootloader, bootloader.plan());
}

/** Boots a torn erase of these copies could produce: their slots' images, as trial or not. */
function tornStateIds(bootloader: SimBootloader, copies: readonly CopyIndex[]): string[] {
  const readings = readOtadata(bootloader.otadata);
  const ids: string[] = [];
  for (const copy of copies) {
    const reading = readings[copy];
    if (!reading.crcOk || reading.seq === OTA_SEQ_BLANK) continue;
    const id = imageId(bootloader, slotForSeq(reading.seq));
    ids.push(id, `${id}:trial`);
  }
  return ids;
}

/**
 * Boots a torn *program* explains: a bit-subset tear can land seq and CRC
 * whole and ota_state only in part (NEW read as VALID or as an unrecognized
 * value), so the new copy's slot boots without its trial. Only when the
 * copy on flash now holds exactly that seq with a good CRC and a state
 * other than the one written (an erase with no program after it, as in the
 * planted bug below, is not excused). ESP-IDF's exposure; the update
 * agent's answer is in test/update/agent-fail-closed.cases.ts.
 */
function tornProgramIds(bootloader: SimBootloader, programs: readonly ProgramOf[]): string[] {
  const readings = readOtadata(bootloader.otadata);
  const ids: string[] = [];
  for (const program of programs) {
    const reading = readings[program.copy];
    if (!reading.crcOk || reading.seq !== program.seq || reading.state === program.state) continue;
    const id = imageId(bootloader, slotForSeq(reading.seq));
    ids.push(id, `${id}:trial`);
  }
  return ids;
}

/** A copy an app operation programs, with the seq and state it writes. */
interface ProgramOf {
  readonly copy: CopyIndex;
  readonly seq: number;
  readonly state: string;
}

export function updateScenario(mode: FlashMode, steps: readonly UpdateStep[], stats: ScenarioStats, setBoot: SetBoot = setBootSlot): CutScenario<UpdateState> {
  const planted = setBoot === setBootSlot ? '' : '/planted-bug';
  return {
    name: `ota/${mode}/${steps.map((s) => `v${s.version}-${s.ending}`).join('+')}${planted}`,
    flash: { blocks: otaLayoutBlocks(SLOT_BLOCKS), mode },
    createState: () => ({ provisioned: false, efuse: new SimEfuse(0), update: 0, trialSeen: false, allowed: undefined, excused: [], programs: [], lastRunning: undefined }),
    boot(flash, state) {
      const layout = otaLayout(flash, SLOT_BLOCKS);
      if (!state.provisioned) {
        // Factory programming; a cut here just means it is done again.
        provisionDevice(layout, imageFor(1));
        state.provisioned = true;
        state.allowed = ['0:v1'];
      }
      for (let deviceBoot = 0; deviceBoot < MAX_DEVICE_BOOTS; deviceBoot++) {
        stats.deviceBoots++;
        // A reboot: fresh bootloader, fresh app; only the flash, the eFuse and the test's knowledge remain.
        const bootloader = new SimBootloader({ ...layout, createSha256, efuse: state.efuse });
        const decision = bootAndCheck(bootloader, state, stats);
        if (state.update >= steps.length) return;
        appStep(bootloader, decision, steps[state.update], state, setBoot);
        if (state.update >= steps.length) return;
      }
      throw new CheckFailure(`the update did not finish within ${MAX_DEVICE_BOOTS} device boots`);
    },
  };
}

/** Is `id` allowed for the boot about to happen? Counts the excused ones. */
function checkAllowed(id: string, state: UpdateState, stats: ScenarioStats, bootloader: SimBootloader): void {
  if (state.allowed === undefined || state.allowed.includes(id)) return;
  if (state.excused.includes(id) || tornProgramIds(bootloader, state.programs).includes(id)) {
    stats.tornStateBoots++;
    return;
  }
  throw new CheckFailure(`boot is ${id}; allowed: ${state.allowed.join(' or ')}${state.excused.length ? ` (torn-state exceptions: ${state.excused.join(', ')})` : ''}`);
}

/** The bootloader's turn: boot (its writes can be cut), check the result against what is allowed. */
function bootAndCheck(bootloader: SimBootloader, state: UpdateState, stats: ScenarioStats): BootDecision {
  let planned = 'unplanned';
  let decision: BootDecision;
  try {
    decision = bootloader.boot((plan) => {
      planned = planId(bootloader, plan);
      checkAllowed(planned, state, stats, bootloader);
      // If this boot is cut in its own writes, the next one is what this one was starting, or what ran before.
      const rewrites = plan.effects.flatMap((e) => (e.kind === 'write-otadata' ? [e.copy] : []));
      state.allowed = unique([planned, state.lastRunning]);
      state.excused = tornStateIds(bootloader, rewrites);
      state.programs = [];
    });
  } catch (error) {
    if (error instanceof BrickedError) throw new CheckFailure(`bricked: ${error.message}`);
    throw error;
  }
  const running = `${decision.slot}:v${decision.header.imageVersion}${decision.row === 'R1' ? ':trial' : ''}`;
  equal(running, planned, 'the boot did what its plan said');
  if (decision.row === 'R2' || decision.row === 'R5' || decision.row === 'R8') stats.fallbacks++;
  state.lastRunning = running;
  state.allowed = [nextBoot(bootloader)];
  state.excused = [];
  state.programs = [];
  return decision;
}

/** The app's turn, reentrant: look at what is running, do the next thing towards `step`. */
function appStep(bootloader: SimBootloader, decision: BootDecision, step: UpdateStep, state: UpdateState, setBoot: SetBoot): void {
  const running = decision.header.imageVersion;
  const here = `${decision.slot}:v${running}`;
  const other = (1 - decision.slot) as SlotIndex;
  const active = () => {
    const copy = activeCopy(readOtadata(bootloader.otadata));
    return copy === undefined ? [] : [copy];
  };
  if (running === step.version) {
    if (decision.row !== 'R1') {
      finishUpdate(state); // confirmed earlier (or accepted through a torn state, already counted)
      return;
    }
    state.trialSeen = true;
    if (step.ending === 'confirm') {
      operation(bootloader, state, here, active(), () => markValid(bootloader.otadata));
      state.efuse.raise(decision.header.secureVersion); // esp_ota_mark_app_valid_cancel_rollback's anti-rollback step
      return; // the next boot shows the confirmed image
    }
    if (step.ending === 'reject') {
      operation(bootloader, state, imageId(bootloader, other), active(), () => markInvalid(bootloader.otadata, (slot) => bootloader.checkSlot(slot as SlotIndex).verifies));
    }
    return; // reject: restart; abort: a reset (watchdog, crash) before confirming
  }
  if (state.trialSeen && step.ending !== 'confirm') {
    finishUpdate(state); // rolled back, as this update's ending asks
    return;
  }
  // Not on the new image yet (never tried, or rolled back by a cut): stage it if needed, select it, reboot.
  if (imageId(bootloader, other) !== `${other}:v${step.version}` || !bootloader.checkSlot(other).verifies) {
    operation(bootloader, state, state.allowed?.[0] ?? 'unknown', [], () => writeAppImage(bootloader.slots[other], imageFor(step.version)));
  }
  const target = planSetBootSlot(readOtadata(bootloader.otadata), other);
  operation(bootloader, state, `${other}:v${step.version}:trial`, [target.copy], () => setBoot(bootloader.otadata, other), [target]);
}

/**
 * One flash-writing app operation: while it runs, the next boot may be the
 * current one (`state.allowed`: a single boot after every boot and every
 * operation) or `expectedAfter`, or the torn-state exception for the copies
 * it erases; once it returns the next boot must be `expectedAfter`.
 */
function operation(bootloader: SimBootloader, state: UpdateState, expectedAfter: string, erases: readonly CopyIndex[], run: () => unknown, programs: readonly ProgramOf[] = []): void {
  state.allowed = unique([...(state.allowed ?? []), expectedAfter]);
  state.excused = tornStateIds(bootloader, erases);
  state.programs = [...programs];
  run();
  equal(nextBoot(bootloader), expectedAfter, 'the next boot after the operation');
  state.allowed = [expectedAfter];
  state.excused = [];
  state.programs = [];
}

function finishUpdate(state: UpdateState): void {
  state.update++;
  state.trialSeen = false;
}

function unique(values: readonly (string | undefined)[]): string[] {
  const out: string[] = [];
  for (const v of values) if (v !== undefined && !out.includes(v)) out.push(v);
  return out;
}

function newStats(): ScenarioStats {
  return { deviceBoots: 0, tornStateBoots: 0, fallbacks: 0 };
}

function runnerOptions(env: CaseEnv): RunnerOptions {
  return { createFlash: env.createFlash, saveFailureImage: env.saveFailureImage };
}

/**
 * Planted bug: select the slot by rewriting the *active* copy in place (new
 * seq, NEW) instead of the other copy. Correct without cuts; a cut between
 * its erase and its program leaves only the older copy, which can name the
 * slot just staged, and that image then boots with no trial.
 */
export const setBootSlotInPlace: SetBoot = (otadata, slot) => {
  const readings = readOtadata(otadata);
  const active = activeCopy(readings);
  if (active === undefined) {
    setBootSlot(otadata, slot);
    return;
  }
  writeOtadataCopy(otadata, active, encodeOtaEntry({ seq: seqForSlot(readings[active].seq, slot), state: 'new' }));
};

const CONFIRM_TWICE: readonly UpdateStep[] = [
  { version: 2, ending: 'confirm' },
  { version: 3, ending: 'confirm' },
];
const ABORT_REJECT_CONFIRM: readonly UpdateStep[] = [
  { version: 2, ending: 'abort' },
  { version: 3, ending: 'reject' },
  { version: 4, ending: 'confirm' },
];

function exhaustiveCase(mode: FlashMode, steps: readonly UpdateStep[], label: string): FirmwareCase {
  return {
    name: `exhaustive cuts, ${label}, ${mode === 'plain' ? 'plain NOR' : 'strict (16-byte write-once units)'}`,
    run(env) {
      const stats = newStats();
      const report = runExhaustive(updateScenario(mode, steps, stats), runnerOptions(env));
      equal(report.cuts, report.runs + report.doubleCutRuns, 'every run was cut once, and once more if it was a double-cut run (exhaustive tier)');
      return { ...report, ...stats };
    },
  };
}

/**
 * Double faults: every first cut, then a second cut at every operation of
 * the recovery boot that follows it, in both tear modes (the runner's
 * `secondCuts: 'every'`; in XS a sample of 2 per first cut unless
 * HOLDFAST_EXHAUSTIVE is set). One update per case keeps this to about a
 * thousand runs.
 */
function doubleCutCase(mode: FlashMode, step: UpdateStep): FirmwareCase {
  return {
    name: `double cuts (second cuts in the recovery boot: at every operation in Node, a sample in XS), one update ending in ${step.ending}, ${mode}`,
    run(env) {
      const stats = newStats();
      // XS runs a seeded sample of the second cuts (the flash proxy makes every run ~20x dearer); the exhaustive tier runs them all.
      const secondCuts = env.engine === 'xs' && !exhaustiveTier() ? { sample: 2 } : 'every';
      const report = runExhaustive(updateScenario(mode, [step], stats), { ...runnerOptions(env), secondCuts });
      ok(report.doubleCutRuns > 0, 'second cuts ran');
      return { ...report, ...stats };
    },
  };
}

export const suite: CaseSuite = {
  name: 'otadata and boot decision under power cuts',
  cases: [
    {
      name: 'clean run: provision, first boot, two confirmed updates, final state',
      run(env) {
        const stats = newStats();
        const scenario = updateScenario('strict', CONFIRM_TWICE, stats);
        const flash = env.createFlash(scenario.flash);
        const state = scenario.createState();
        scenario.boot(flash, state, 0);
        const bootloader = new SimBootloader({ ...otaLayout(flash, SLOT_BLOCKS), createSha256, efuse: state.efuse });
        const last = bootloader.boot();
        equal(`${last.slot}:v${last.header.imageVersion}:${last.state}`, '0:v3:valid', 'runs v3 from ota_0, confirmed');
        equal(state.efuse.secureVersion, 3, 'floor');
        return { deviceBoots: stats.deviceBoots, flashOperations: flash.counters.operations };
      },
    },
    exhaustiveCase('plain', CONFIRM_TWICE, 'two confirmed updates'),
    exhaustiveCase('strict', CONFIRM_TWICE, 'two confirmed updates'),
    exhaustiveCase('plain', ABORT_REJECT_CONFIRM, 'abort, reject, confirm'),
    exhaustiveCase('strict', ABORT_REJECT_CONFIRM, 'abort, reject, confirm'),
    doubleCutCase('plain', { version: 2, ending: 'confirm' }),
    doubleCutCase('strict', { version: 2, ending: 'confirm' }),
    doubleCutCase('plain', { version: 2, ending: 'abort' }),
    doubleCutCase('strict', { version: 2, ending: 'reject' }),
    {
      name: 'random multi-cut runs, abort, reject, confirm',
      run(env) {
        const stats = newStats();
        const report = runRandom(updateScenario('strict', ABORT_REJECT_CONFIRM, stats), { ...runnerOptions(env), runs: 40, maxCuts: 4, seed: 11 });
        return { ...report, ...stats };
      },
    },
    {
      // Found by a 4,000-variant sweep of this scenario's cut points (1 hit in 24,000 runs, in each flash mode).
      name: "ESP-IDF's blind spot, replayed: a torn abort-pass erase leaves seq and CRC intact, the trial boots unconfirmed",
      run(env) {
        const stats = newStats();
        const scenario = updateScenario('plain', [{ version: 2, ending: 'abort' }], stats);
        // Operation 14 is the erase of otadata sector 1 that starts the abort-pass write (PENDING_VERIFY -> ABORTED);
        // the torn sector keeps seq 2 and its CRC, and ota_state reads 0xFF00FF01.
        const outcome = replayCuts(scenario, [{ atOperation: 14, seed: 0x4c44b502 }], runnerOptions(env));
        equal(
          stats.tornStateBoots,
          1,
          'v2 booted without a trial and without a confirmation (this replay is tied to the torn-erase model of tools/sim/flash/sim-flash.ts and to tools/sim/rng.ts: if they changed, find a new seed by sweeping the variants of operation 14)',
        );
        return { ...outcome, ...stats };
      },
    },
    {
      name: 'the runner catches a set-boot-partition that rewrites the active copy in place',
      run(env) {
        let caught: PowerCutFailure | undefined;
        try {
          runExhaustive(updateScenario('plain', CONFIRM_TWICE, newStats(), setBootSlotInPlace), { ...runnerOptions(env), saveFailureImage: () => undefined });
        } catch (error) {
          if (!(error instanceof PowerCutFailure)) throw error;
          caught = error;
        }
        ok(caught, 'the planted bug passed every power cut');
        ok(caught.failure instanceof CheckFailure, `failure should be an invariant violation, was ${String(caught.failure)}`);
        ok(/boot is 0:v3; allowed: 1:v2 or 0:v3:trial/.test(caught.message), `unexpected failure: ${caught.message}`);
        return { caughtAtOperation: caught.cutPlans[0].atOperation };
      },
    },
  ],
};
