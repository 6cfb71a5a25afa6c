/**
 * The signed roll-back command (`roll-back-update`, 0x21; docs/spec/commands.md
 * "Roll-back"), in Node and XS: a device that committed release 2 is told to
 * leave version 2 and goes back to the factory image (otadata INVALID, audited
 * `update-rolled-back` `commanded`, restart scheduled, the bootloader boots the
 * old slot); a command naming another version is refused `not-running`
 * (audited); the same envelope again is a replay; in safe mode it is allowed;
 * below the security floor (anti-downgrade) it is refused `rollback-impossible`
 * and nothing changes. Power cuts at every flash operation of confirming the
 * release and rolling it back (plain and strict flash): the bootloader boots
 * one of the two images every time, never neither, and an answered roll-back
 * is never undone.
 */
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { readOtadata, stateOfSlot } from '../../firmware/update/otadata.ts';
import { provisionDevice, SimBootloader } from '../../tools/sim/bootloader.ts';
import { PartitionView } from '../../tools/sim/flash/partition-view.ts';
import type { FlashMode } from '../../tools/sim/flash/sim-flash.ts';
import { DeviceReset } from '../../tools/sim/watchdog.ts';
import { exhaustiveTier, runExhaustive, type CutScenario } from '../../tools/sim/power-cut.ts';
import { bootOnce, flashOptions as updateFlashOptions, makeWorld, newDeviceState, partitionsOf as updatePartitionsOf, WATCHDOG_MS, type Release, type World } from '../update/agent-world.ts';
import { BOARD } from '../update/manifest-fixtures.ts';
import { equal, ok } from '../support/check.ts';
import { runnerOptions } from '../support/case-helpers.ts';
import type { CaseEnv, CaseReport, CaseSuite, FirmwareCase } from '../support/cases.ts';
import { auditSummary, bootDevice, flashOptions, makeFleet, memoCrypto, provision, readAudit, TOTAL_BLOCKS, type Device, type Fleet } from './runtime-world.ts';

/** The rate limiter starts spent at boot: commands wait a minute (docs/spec/commands.md). */
const AFTER_BOOT_MS = 61_000;

/** The runtime's partitions, then the update's (otadata, two slots, progress) in one flash. */
function oneFlash(mode: FlashMode) {
  return { ...flashOptions(mode), blocks: TOTAL_BLOCKS + updateFlashOptions(mode).blocks };
}

function updateOf(flash: FlashPartition) {
  return updatePartitionsOf(new PartitionView(flash, TOTAL_BLOCKS, updateFlashOptions('plain').blocks));
}

/** The agent's test world with Ed25519 verification memoised, and the release built once. */
function worldWith(securityVersion: number): { world: World; release: Release } {
  const made = makeWorld();
  const world: World = { ...made, crypto: memoCrypto(made.crypto) };
  return { world, release: world.release(2, securityVersion) };
}

/** The factory: every store formatted, the factory image (version 1, security 1) in ota_0, `release` staged into ota_1 by the factory boot. */
function factory(flash: FlashPartition, fleet: Fleet, world: World, release: Release): void {
  provision(flash, fleet);
  provisionDevice(updateOf(flash), world.factory.image);
  const state = newDeviceState(world, {}, release);
  try {
    bootOnce(new PartitionView(flash, TOTAL_BLOCKS, updateFlashOptions('plain').blocks), world, state);
  } catch (error) {
    if (error instanceof DeviceReset) return;
    throw error;
  }
  throw new Error('the factory boot should stage the release and restart');
}

/** What the bootloader boots now, and the runtime booted on it (update agent on). */
function bootBoth(flash: FlashPartition, fleet: Fleet, world: World): { slot: number; state: string; d: Device } {
  const update = updateOf(flash);
  const decision = new SimBootloader({ otadata: update.otadata, slots: update.slots, createSha256: () => world.crypto.createSha256(), chip: world.chip }).boot();
  const d = bootDevice(flash, fleet, {
    extraPartitions: { otadata: update.otadata, ota_0: update.slots[0], ota_1: update.slots[1], hf_progress: update.progress },
    bootControl: { runningSlot: () => decision.slot, runningState: () => {
      throw new Error('the runtime does not ask');
    }, requestTrial: () => undefined, confirmRunning: () => undefined, rejectRunning: () => undefined },
    config: { update: { boardId: BOARD, chip: world.chip, watchdogTimeoutMs: WATCHDOG_MS } },
  });
  return { slot: decision.slot, state: String(decision.state), d };
}

/** A device that committed release 2 (security `securityVersion`) over the factory image. */
function committed(env: CaseEnv, securityVersion: number) {
  const fleet = makeFleet();
  const { world, release } = worldWith(securityVersion);
  const flash = env.createFlash(oneFlash('plain'));
  factory(flash, fleet, world, release);
  const b = bootBoth(flash, fleet, world);
  equal(b.slot, 1, 'the trial of release 2');
  equal(b.d.runtime.confirmTrial().ok, true, 'committed');
  b.d.clock.advance(AFTER_BOOT_MS);
  equal(b.d.runtime.status().imageVersion, 2, 'running version 2');
  return { fleet, world, flash, d: b.d };
}

function rollBack(d: Device, fleet: Fleet, counter: number, version: number): string {
  const o = d.runtime.handleCommand(fleet.command(counter, 'roll-back-update', { version }));
  return o.result.status === 'refused' ? `refused:${o.result.reason}` : `${o.result.status}:${o.rollBack ?? '-'}`;
}

function tail(flash: FlashPartition, fleet: Fleet, n: number): string {
  const all = auditSummary(flash, fleet);
  return all.slice(Math.max(0, all.length - n)).join(',');
}

/** Run the device's next service: it must restart (a scheduled restart). */
function restartsAtService(d: Device): void {
  try {
    d.runtime.service();
  } catch (error) {
    if (error instanceof DeviceReset) return;
    throw error;
  }
  throw new Error('no restart at the next service');
}

const cases: FirmwareCase[] = [
  {
    name: 'roll-back-update: a committed release named by its version goes back to the old slot (INVALID, audited update-rolled-back commanded, restart after the answer); another version is refused not-running (audited); the same envelope again is a replay; once back, a new command naming 2 is refused not-running',
    run(env) {
      const { fleet, world, flash, d } = committed(env, 1);
      equal(rollBack(d, fleet, 500, 3), 'accepted:not-running', 'version 3 does not run');
      equal(tail(flash, fleet, 1), 'rollback-impossible:not-running', 'audited');
      equal(d.runtime.restartPending(), undefined, 'nothing scheduled');
      const envelope = fleet.command(501, 'roll-back-update', { version: 2 });
      const o = d.runtime.handleCommand(envelope);
      equal(`${o.result.status}:${o.rollBack}`, 'accepted:rolling-back', 'rolling back');
      equal(tail(flash, fleet, 1), 'update-rolled-back:commanded', 'audited');
      equal(stateOfSlot(readOtadata(updateOf(flash).otadata), 1), 'invalid', 'slot 1 INVALID');
      ok(d.runtime.restartPending() !== undefined, 'restart scheduled, not done: the answer goes out first');
      const again = d.runtime.handleCommand(envelope).result;
      equal(again.status === 'refused' ? again.reason : again.status, 'replay', 'the same envelope again: a replay, not run twice');
      restartsAtService(d);
      const back = bootBoth(flash, fleet, world);
      back.d.clock.advance(AFTER_BOOT_MS);
      equal(back.slot, 0, 'the bootloader boots the old slot');
      equal(back.d.runtime.status().imageVersion, 1, 'version 1 runs');
      equal(rollBack(back.d, fleet, 5_000, 2), 'accepted:not-running', 'a late command naming 2: refused');
      equal(back.d.runtime.restartPending(), undefined, 'nothing scheduled');
    },
  },
  {
    name: 'roll-back-update in safe mode is allowed and goes back; without an update agent refused no-update-agent (audited)',
    run(env) {
      const { fleet, flash, d } = committed(env, 1);
      equal(d.runtime.handleCommand(fleet.command(600, 'enter-safe-mode')).mode, 'entered', 'safe mode');
      equal(rollBack(d, fleet, 601, 2), 'accepted:rolling-back', 'allowed in safe mode');
      equal(tail(flash, fleet, 1), 'update-rolled-back:commanded', 'audited');

      const plainFleet = makeFleet();
      const plain = env.createFlash(flashOptions('plain'));
      provision(plain, plainFleet);
      const p = bootDevice(plain, plainFleet);
      p.clock.advance(AFTER_BOOT_MS);
      equal(rollBack(p, plainFleet, 10, 2), 'accepted:no-update-agent', 'no agent');
      equal(tail(plain, plainFleet, 1), 'rollback-impossible:no-update-agent', 'audited');
    },
  },
  {
    name: 'roll-back-update below the security floor (release 2 raised the floor to 2, the factory image is security 1): refused rollback-impossible (audited), otadata unchanged, no restart',
    run(env) {
      const { fleet, flash, d } = committed(env, 2);
      equal(d.runtime.status().securityFloor, 2, 'floor 2');
      const before = readOtadata(updateOf(flash).otadata);
      equal(rollBack(d, fleet, 700, 2), 'accepted:rollback-impossible', 'anti-downgrade holds');
      equal(tail(flash, fleet, 1), 'rollback-impossible:commanded', 'audited');
      equal(d.runtime.restartPending(), undefined, 'no restart');
      equal(JSON.stringify(readOtadata(updateOf(flash).otadata)), JSON.stringify(before), 'otadata unchanged');
      equal(stateOfSlot(before, 1), 'valid', 'slot 1 stays VALID');
    },
  },
];

// ------------------------------------------------------------ power cuts

interface CutState {
  provisioned: boolean;
  /** 0 confirm, 1 roll back, 2 done. */
  step: number;
  committed: boolean;
  trialLost: boolean;
  /** The roll-back was answered rolling-back: the old slot from now on. */
  rolledBack: boolean;
  inFlight: boolean;
  /** Roll-back commands signed so far (the cloud re-signs above the restart floor after a cut). */
  sent: number;
}

interface CutTally {
  bootsOld: number;
  bootsNew: number;
  rollbackLanded: number;
  trialLost: number;
}

function rollBackCutScenario(mode: FlashMode, tally: CutTally): CutScenario<CutState> {
  const fleet = makeFleet();
  const { world, release } = worldWith(1);
  return {
    name: `runtime/roll-back/${mode}`,
    flash: oneFlash(mode),
    createState: () => ({ provisioned: false, step: 0, committed: false, trialLost: false, rolledBack: false, inFlight: false, sent: 0 }),
    boot(flash, state) {
      if (!state.provisioned) {
        factory(flash, fleet, world, release);
        state.provisioned = true;
      }
      for (;;) {
        // The bootloader must find an image every time (SimBootloader throws when neither slot boots).
        const b = bootBoth(flash, fleet, world);
        ok(b.slot === 0 || b.slot === 1, `booted slot ${b.slot}`);
        if (b.slot === 0) tally.bootsOld++;
        else tally.bootsNew++;
        if (state.rolledBack) equal(b.slot, 0, 'an answered roll-back boots the old slot');
        else if (state.committed && b.slot === 0) {
          ok(state.inFlight, 'a committed release left without a roll-back');
          // Cut after the otadata write, before the answer: it landed.
          state.rolledBack = true;
          tally.rollbackLanded++;
        } else if (state.committed) equal(`${b.slot}:${b.state}`, '1:valid', 'a confirmed release stays VALID');
        state.inFlight = false;
        if (state.rolledBack) equal(b.d.runtime.status().imageVersion, 1, 'back on version 1');
        const read = readAudit(flash, fleet);
        equal(read.breaks.length, 0, `audit chain breaks: ${JSON.stringify(read.breaks)}`);
        if (state.step >= 2 || state.rolledBack) return;
        try {
          if (state.step === 0) {
            const r = b.d.runtime.confirmTrial();
            if (r.ok) state.committed = true;
            else if (b.slot === 1) {
              equal(`${r.ok ? 'ok' : r.code}:${b.state}`, 'not-in-trial:valid', 'the unanswered confirm landed');
              state.committed = true;
            } else {
              // The bootloader aborted the unconfirmed trial: nothing to roll back; a roll-back naming 2 is refused.
              state.trialLost = true;
              tally.trialLost++;
            }
            state.step = 1;
          }
          if (state.step === 1) {
            b.d.clock.advance(AFTER_BOOT_MS);
            state.sent++;
            state.inFlight = true;
            const answer = rollBack(b.d, fleet, 2_000 * state.sent, 2);
            state.inFlight = false;
            if (state.trialLost) {
              equal(answer, 'accepted:not-running', 'no release runs');
              state.step = 2;
              return;
            }
            equal(answer, 'accepted:rolling-back', 'rolling back');
            ok(auditSummary(flash, fleet).includes('update-rolled-back:commanded'), 'audited before the answer');
            state.rolledBack = true;
            state.step = 2;
            restartsAtService(b.d);
          }
        } catch (error) {
          if (!(error instanceof DeviceReset)) throw error;
        }
      }
    },
  };
}

function factoryOperations(env: CaseEnv, mode: FlashMode): number {
  const flash = env.createFlash(oneFlash(mode));
  const before = flash.counters.operations;
  const { world, release } = worldWith(1);
  factory(flash, makeFleet(), world, release);
  return flash.counters.operations - before;
}

for (const mode of ['plain', 'strict'] as const) {
  cases.push({
    name: `power cuts at every flash operation of confirming release 2 and rolling it back by command (${mode}): the bootloader always boots one of the two images, an answered roll-back is never undone, a cut after the otadata write lands`,
    run(env): CaseReport {
      // XS is slow at this: its strict run is in the exhaustive tier (HOLDFAST_EXHAUSTIVE=1), as the console's.
      if (env.engine === 'xs' && mode === 'strict' && !exhaustiveTier()) return { xsStrictInExhaustiveTierOnly: true };
      const tally: CutTally = { bootsOld: 0, bootsNew: 0, rollbackLanded: 0, trialLost: 0 };
      const from = factoryOperations(env, mode);
      const tears = env.engine === 'xs' && !exhaustiveTier() ? { tears: ['prefix'] as const } : {};
      const report = runExhaustive(rollBackCutScenario(mode, tally), runnerOptions(env, { variants: exhaustiveTier() ? 4 : 1, ...tears, cutRange: { from, to: Number.MAX_SAFE_INTEGER } }));
      ok(report.cutPoints > 0, 'cut points');
      ok(tally.rollbackLanded > 0, `cuts after the roll-back's otadata write: ${tally.rollbackLanded}`);
      ok(tally.bootsOld > 0 && tally.bootsNew > 0, `both images booted: old ${tally.bootsOld}, new ${tally.bootsNew}`);
      return { ...report, factoryOperations: from, ...tally };
    },
  });
}

export const suite: CaseSuite = { name: 'runtime roll-back command', cases };
