/**
 * Devices for the runtime cases that need more than the runtime's own
 * partitions (engine-neutral): `freshDevice` (a provisioned flash) and
 * `trialDevice`, a device whose update partitions (a second flash) hold a
 * staged release in its trial boot, slot 1 pending-verify, built by the
 * update agent's own test world.
 */
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import type { PartitionKey } from '../../firmware/runtime/boot.ts';
import type { HealthCheck } from '../../firmware/update/health.ts';
import type { FlashMode } from '../../tools/sim/flash/sim-flash.ts';
import { provisionDevice, SimBootloader } from '../../tools/sim/bootloader.ts';
import { DeviceReset } from '../../tools/sim/watchdog.ts';
import { bootOnce, flashOptions as updateFlashOptions, makeWorld, newDeviceState, partitionsOf as updatePartitionsOf, WATCHDOG_MS } from '../update/agent-world.ts';
import { BOARD } from '../update/manifest-fixtures.ts';
import { equal } from '../support/check.ts';
import type { CaseEnv } from '../support/cases.ts';
import { bootDevice, flashOptions, makeFleet, partsOf, provision, type Fleet } from './runtime-world.ts';

/** A provisioned device flash (`skip`: partitions left blank). */
export function freshDevice(env: CaseEnv, fleet: Fleet, skip: readonly PartitionKey[] = [], mode: FlashMode = 'plain'): { flash: FlashPartition; parts: ReturnType<typeof partsOf> } {
  const flash = env.createFlash(flashOptions(mode));
  return { flash, parts: provision(flash, fleet, skip) };
}

/** A device whose update partitions hold a staged release in its trial boot (slot 1, pending-verify). */
export function trialDevice(env: CaseEnv, checks?: readonly HealthCheck[], eraseOldSlot = false) {
  const fleet = makeFleet();
  const { flash } = freshDevice(env, fleet);
  const world = makeWorld();
  const updateFlash = env.createFlash(updateFlashOptions('plain'));
  const update = updatePartitionsOf(updateFlash);
  provisionDevice(update, world.factory.image);
  // The factory image installs release 2 and restarts into it (the update agent's own test world).
  const state = newDeviceState(world, {}, world.release(2, 1));
  try {
    bootOnce(updateFlash, world, state);
    throw new Error('the factory boot should stage the release and restart');
  } catch (error) {
    if (!(error instanceof DeviceReset)) throw error;
  }
  const decision = new SimBootloader({ otadata: update.otadata, slots: update.slots, createSha256: () => world.crypto.createSha256(), chip: world.chip }).boot();
  equal(decision.slot, 1, 'the bootloader starts the trial of slot 1');
  // Damage after the bootloader chose: the old image no longer verifies, so a failed trial cannot roll back.
  if (eraseOldSlot) update.slots[0].eraseBlock(0);
  const d = bootDevice(flash, fleet, {
    extraPartitions: { otadata: update.otadata, ota_0: update.slots[0], ota_1: update.slots[1], hf_progress: update.progress },
    bootControl: { runningSlot: () => decision.slot, runningState: () => 'pending-verify', requestTrial: () => undefined, confirmRunning: () => undefined, rejectRunning: () => undefined },
    config: { update: { boardId: BOARD, chip: world.chip, watchdogTimeoutMs: WATCHDOG_MS, ...(checks === undefined ? {} : { checks }) } },
  });
  return { fleet, flash, world, update, d };
}
