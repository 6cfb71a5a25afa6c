/**
 * Damage suite subjects of the update path (test/support/damage.ts), in
 * Node and XS, both flash modes:
 * - otadata: a device that staged v2 and selected it (copy 1 NEW, never
 *   tried), then single-bit (every bit of the state fields, one bit of every
 *   other entry byte), 16-byte unit, whole-entry and whole-sector damage to
 *   either copy. One boot through the simulated bootloader and the agent:
 *   nothing unverified boots (the bootloader verifies), nothing bricks, and
 *   the untried v2 never runs without a trial (the bootloader's, or the
 *   agent's when damage made it read VALID or unrecognized).
 * - staging progress: a log of one complete download with two trials. The
 *   trial count is never read below 2 while evidence of it survives unless
 *   the unreadable entries that may hold it are counted (`suspect`: the
 *   agent reports them); a log that cannot be understood is refused with a
 *   StorageError; a session destroyed with no readable trace leaves
 *   unreadable entries the agent reports.
 */
import { BrickedError, provisionDevice } from '../../tools/sim/bootloader.ts';
import { DeviceReset } from '../../tools/sim/watchdog.ts';
import type { FlashMode } from '../../tools/sim/flash/sim-flash.ts';
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { OtadataError } from '../../firmware/update/otadata.ts';
import { encodeProgressEntry, PROGRESS_ENTRY_LENGTH, ProgressKind, StagingProgress } from '../../firmware/update/staging-progress.ts';
import { StorageError } from '../../firmware/storage/errors.ts';
import { runDamageSuite, type ByteRange, type DamageOptions, type DamageSubject } from '../support/damage.ts';
import { CheckFailure, ok } from '../support/check.ts';
import type { CaseSuite, FirmwareCase } from '../support/cases.ts';
import { bootOnce, flashOptions, makeWorld, newDeviceState, partitionsOf, type World } from './agent-world.ts';

const COPY_OFFSETS = [0, 0x1000] as const;
const ENTRY = 32;
const STATE_FIELD = 24;

function otadataSubject(mode: FlashMode, world: World, ranges: readonly ByteRange[]): DamageSubject<{ staged: number }> {
  return {
    name: `otadata/${mode}`,
    flash: flashOptions(mode),
    populate(flash) {
      provisionDevice(partitionsOf(flash), world.factory.image);
      const state = newDeviceState(world, { 2: 'hang' }, world.release(2, 2));
      try {
        bootOnce(flash, world, state);
      } catch (error) {
        if (!(error instanceof DeviceReset)) throw error;
      }
      ok(state.events.includes('update-staged'), 'v2 staged and selected');
      return { staged: 2 };
    },
    ranges: () => ranges,
    entries: () => COPY_OFFSETS.map((byteOffset) => ({ byteOffset, byteLength: ENTRY })),
    verify(flash, facts) {
      // The otadata partition is the first 8 KiB of the device flash (agent-world's layout).
      const state = newDeviceState(world, { 2: 'hang' }, undefined);
      try {
        bootOnce(flash, world, state);
      } catch (error) {
        if (error instanceof BrickedError) throw new CheckFailure(`bricked: ${error.message}`);
        if (error instanceof OtadataError) return 'refused';
        if (!(error instanceof DeviceReset)) throw error;
      }
      const boot = state.boots[0];
      ok(boot !== undefined, 'the device booted');
      if (boot.version === facts.staged) {
        ok(boot.state === 'pending-verify' || state.events.includes('trial-started'), `the untried v2 ran as ${boot.state} without a trial (${state.events.join(', ')})`);
      }
      return 'recovered';
    },
  };
}

/** Every byte of both entries, and every bit of both state fields. */
const ENTRY_RANGES: readonly ByteRange[] = COPY_OFFSETS.map((byteOffset) => ({ byteOffset, byteLength: ENTRY }));
const STATE_RANGES: readonly ByteRange[] = COPY_OFFSETS.map((byteOffset) => ({ byteOffset: byteOffset + STATE_FIELD, byteLength: 4 }));

const TAG = 0x0dd5eed;
const LENGTH = 3 * 4096 + 10;
/** BEGIN, three chunks, COMPLETE, TRIAL 1, REPORTED 1, TRIAL 2. */
const LOG: readonly (readonly [number, number])[] = [
  [ProgressKind.BEGIN, LENGTH],
  [ProgressKind.CHUNK, 0],
  [ProgressKind.CHUNK, 1],
  [ProgressKind.CHUNK, 2],
  [ProgressKind.COMPLETE, LENGTH],
  [ProgressKind.TRIAL, 1],
  [ProgressKind.REPORTED, 1],
  [ProgressKind.TRIAL, 2],
];
const LOG_BYTES = LOG.length * PROGRESS_ENTRY_LENGTH;

interface ProgressTally {
  /** Damage that erased every trace of the trial count (an erased newest TRIAL, erased log): nothing left to read. */
  noEvidence: number;
  /** Trial count read low, with the unreadable entries that may have been the lost TRIAL (`suspect`): the agent reports it. */
  lowReported: number;
  /** Session unreadable, trace left (unreadable entries) for the agent to report. */
  lostReported: number;
}

function progressSubject(mode: FlashMode, tally: ProgressTally): DamageSubject<{ trials: number }> {
  return {
    name: `staging-progress/${mode}`,
    flash: { blocks: 2, blockLength: 4096, mode },
    populate(flash: FlashPartition) {
      LOG.forEach(([kind, value], slot) => flash.write(slot * PROGRESS_ENTRY_LENGTH, encodeProgressEntry(kind, TAG, value)));
      return { trials: 2 };
    },
    ranges: () => [{ byteOffset: 0, byteLength: LOG_BYTES }],
    entries: () => LOG.map((_, slot) => ({ byteOffset: slot * PROGRESS_ENTRY_LENGTH, byteLength: PROGRESS_ENTRY_LENGTH })),
    verify(flash, facts, damage) {
      let progress: StagingProgress;
      try {
        progress = StagingProgress.open(flash);
      } catch (error) {
        if (error instanceof StorageError) return 'refused';
        throw error;
      }
      const session = progress.session();
      // Erasing the newest TRIAL (or everything from it on) to 0xFF leaves no evidence it was written.
      const erasedNewest = damage.fill === 'erased' && damage.byteOffset <= (LOG.length - 1) * PROGRESS_ENTRY_LENGTH && damage.byteOffset + damage.byteLength >= LOG_BYTES;
      if (session?.tag === TAG) {
        ok(session.complete, 'the download still reads complete');
        if (erasedNewest && session.trials < facts.trials) {
          tally.noEvidence++;
          return 'recovered';
        }
        if (session.trials < facts.trials) {
          ok(session.trials + session.suspect >= facts.trials, `trial count read as ${session.trials} with ${session.suspect} suspect entries, ${facts.trials} were durable`);
          tally.lowReported++;
          return 'recovered';
        }
        return 'recovered';
      }
      ok(session === undefined, `a session of another image appeared (tag ${session?.tag})`);
      if (progress.unreadable > 0) {
        tally.lostReported++;
        return 'recovered';
      }
      ok(erasedNewest, 'the session vanished without a trace');
      tally.noEvidence++;
      return 'recovered';
    },
  };
}

function otadataCase(mode: FlashMode): FirmwareCase {
  return {
    name: `damage suite, otadata (${mode}): bit, unit, entry and sector damage never boot v2 untried, never brick`,
    run() {
      const world = makeWorld();
      const bits: DamageOptions = { kinds: ['bit'], allBits: true };
      const all = runDamageSuite(otadataSubject(mode, world, ENTRY_RANGES));
      const state = runDamageSuite(otadataSubject(mode, world, STATE_RANGES), bits);
      return { cases: all.cases + state.cases, recovered: all.recovered + state.recovered, refused: all.refused + state.refused, unchanged: all.unchanged + state.unchanged };
    },
  };
}

function progressCase(mode: FlashMode): FirmwareCase {
  return {
    name: `damage suite, staging progress (${mode}): the trial count never reads lower unnoticed while evidence survives; refusals typed`,
    run() {
      const tally: ProgressTally = { noEvidence: 0, lowReported: 0, lostReported: 0 };
      const report = runDamageSuite(progressSubject(mode, tally), { allBits: true });
      return { ...report, ...tally };
    },
  };
}

export const suite: CaseSuite = {
  name: 'update damage suite',
  cases: [otadataCase('plain'), otadataCase('strict'), progressCase('plain'), progressCase('strict')],
};
