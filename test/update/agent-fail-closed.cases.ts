/**
 * The update agent fails closed (issue 15), in Node and in XS: an unknown
 * running version, an unreadable trust store or progress log, a rollback
 * ESP-IDF would refuse, a torn NEW that reads VALID, and an otadata
 * geometry the real bootloader would read differently. Each case failed on
 * the code before the fix.
 */
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { OtadataError, encodeOtaEntry, encodeRawEntry, OTA_STATE_CODES, readOtadata, seqLabelOf, stateOfSlot, writeOtadataCopy } from '../../firmware/update/otadata.ts';
import { encodeProgressEntry, ProgressKind } from '../../firmware/update/staging-progress.ts';
import { loadTrust } from '../../firmware/update/agent.ts';
import { StorageError } from '../../firmware/storage/errors.ts';
import { crc32 } from '../../firmware/base/crc32.ts';
import { buildAppImage, provisionDevice } from '../../tools/sim/bootloader.ts';
import { ESP_CHIPS } from '../../firmware/update/esp-app-image.ts';
import { manifestFields, signedManifest } from './manifest-fixtures.ts';
import { VirtualClock } from '../../tools/sim/clock.ts';
import { DeviceReset } from '../../tools/sim/watchdog.ts';
import type { FlashMode } from '../../tools/sim/flash/sim-flash.ts';
import { bytesEqual, equal, ok } from '../support/check.ts';
import type { CaseEnv, CaseSuite } from '../support/cases.ts';
import { agentFor, BODY_LENGTH, bootOnce, flashOptions, makeWorld, newDeviceState, partitionsOf, running, runDevice, type DeviceState, type World } from './agent-world.ts';

const MODES: readonly FlashMode[] = ['plain', 'strict'];

/** A factory device that booted once (otadata copy 0 = {seq 1, VALID}) and has nothing to install. */
function settledFactory(env: CaseEnv, mode: FlashMode, world: World): { flash: FlashPartition; state: DeviceState } {
  const flash = env.createFlash(flashOptions(mode));
  provisionDevice(partitionsOf(flash), world.factory.image);
  const state = newDeviceState(world, {}, undefined);
  runDevice(flash, world, state);
  return { flash, state };
}

function otadataBytes(flash: FlashPartition): Uint8Array {
  const { otadata } = partitionsOf(flash);
  const bytes = new Uint8Array(otadata.status().size);
  otadata.read(0, bytes);
  return bytes;
}

function install(flash: FlashPartition, world: World, state: DeviceState, offer: ReturnType<World['release']>, trust?: Parameters<typeof agentFor>[5]) {
  const { agent } = agentFor(flash, world, state, 0, new VirtualClock(), trust);
  const source = { read: (offset: number, length: number) => offer.image.subarray(offset, offset + length) };
  try {
    return { agent, outcome: agent.install(offer.manifest, source) };
  } catch (error) {
    if (error instanceof DeviceReset) return { agent, outcome: { ok: false, reason: 'restarted (staged)', message: error.message } };
    throw error;
  }
}

/**
 * Stage `offer` from the factory image and select it (boot 1 restarts into
 * the trial), then rewrite the NEW copy as a bit-subset tear of that program
 * can leave it: every bit landed but bit 1 of ota_state, so the state reads
 * VALID (2) while seq and CRC (which covers only the seq) are intact.
 */
function stageThenTearNewIntoValid(flash: FlashPartition, world: World, state: DeviceState): void {
  try {
    bootOnce(flash, world, state);
    throw new Error('boot 1 should stage the offer and restart');
  } catch (error) {
    if (!(error instanceof DeviceReset)) throw error;
  }
  const { otadata } = partitionsOf(flash);
  const readings = readOtadata(otadata);
  const copy = readings[1].state === 'new' ? 1 : 0;
  equal(readings[copy].state, 'new', 'the update was selected');
  const torn = encodeRawEntry(readings[copy].seq, seqLabelOf(readings[copy]), OTA_STATE_CODES.valid, readings[copy].crc);
  equal(torn[24], 0x02, 'the torn state byte keeps only bit 1 set');
  writeOtadataCopy(otadata, copy, torn);
}

/** A release whose manifest is properly signed over `image` (so only the image check can refuse it). */
function signedOver(world: World, image: Uint8Array, imageVersion: number, securityVersion: number): ReturnType<World['release']> {
  const manifest = signedManifest(manifestFields(world.crypto, image, { imageVersion, securityVersion }), [world.root.targetsKeys[0]]);
  return { image, manifest, imageVersion, securityVersion };
}

export const suite: CaseSuite = {
  name: 'update agent fails closed',
  cases: [
    ...MODES.map((mode) => ({
      name: `a signed image the bootloader would not take is never selected (tampered): another chip, a version or secure_version that is not the manifest's, no appended hash (${mode})`,
      run(env: CaseEnv) {
        const world = makeWorld();
        const sha = () => world.crypto.createSha256();
        const offers: [string, ReturnType<World['release']>, RegExp][] = [
          ['ESP32-S3 image', signedOver(world, buildAppImage({ imageVersion: 2, secureVersion: 1, chipId: ESP_CHIPS.esp32s3.chipId }, BODY_LENGTH, sha), 2, 1), /wrong-chip: image for chip id 0x0009/],
          ['version "3" signed as 2', signedOver(world, buildAppImage({ imageVersion: 3, secureVersion: 1 }, BODY_LENGTH, sha), 2, 1), /esp_app_desc_t\.version is "3", expected "2"/],
          ['secure_version 1 signed as 2', signedOver(world, buildAppImage({ imageVersion: 2, secureVersion: 1 }, BODY_LENGTH, sha), 2, 2), /esp_app_desc_t\.secure_version is 1, expected 2/],
          ['no appended hash', signedOver(world, buildAppImage({ imageVersion: 2, secureVersion: 1, hashAppended: false }, BODY_LENGTH, sha), 2, 1), /no-hash/],
        ];
        for (const [what, offer, says] of offers) {
          const { flash, state } = settledFactory(env, mode, world);
          const before = otadataBytes(flash);
          const { outcome } = install(flash, world, state, offer);
          equal(outcome.reason, 'tampered', `${what}: refused`);
          ok(says.test(outcome.message), `${what}: ${outcome.message}`);
          bytesEqual(otadataBytes(flash), before, `${what}: otadata untouched (nothing selected)`);
          bootOnce(flash, world, state);
          equal(running(state).version, 1, `${what}: the next boot still runs version 1`);
        }
      },
    })),
    {
      name: 'otadata geometry: copy 1 at +0x1000; 512-byte or 64 KiB erase blocks, or a third sector, are refused (bad-geometry)',
      run(env) {
        const refused = (options: Parameters<CaseEnv['createFlash']>[0]): boolean => {
          try {
            readOtadata(env.createFlash(options));
            return false;
          } catch (error) {
            return error instanceof OtadataError && error.code === 'bad-geometry';
          }
        };
        ok(refused({ blocks: 16, blockLength: 512 }), '512-byte blocks (copy 1 would be read at 0x200, ESP-IDF reads 0x1000)');
        ok(refused({ blocks: 2, blockLength: 512 }), 'two 512-byte blocks');
        ok(refused({ blocks: 2, blockLength: 65536 }), '64 KiB blocks (one erase would destroy both copies)');
        ok(refused({ blocks: 3 }), 'three 4 KiB sectors (ESP-IDF otadata is 0x2000 bytes)');
        ok(!refused({ blocks: 2 }), 'two 4 KiB sectors');
        const flash = env.createFlash({ blocks: 2, mode: 'strict' });
        writeOtadataCopy(flash, 1, encodeOtaEntry({ seq: 9, state: 'valid' }));
        const word = new Uint8Array(4);
        flash.read(0x1000, word);
        equal(word[0], 9, 'copy 1 starts at 0x1000');
        return { refusals: 4 };
      },
    },
    {
      name: 'unknown running version: offers are refused (running-version-unknown), never checked against 0',
      run(env) {
        const world = makeWorld();
        for (const mode of MODES) {
          const { flash, state } = settledFactory(env, mode, world);
          // Damage the running image's header (its magic): its version can no longer be read.
          const { slots } = partitionsOf(flash);
          slots[0].eraseBlock(0);
          const before = otadataBytes(flash);
          const { agent, outcome } = install(flash, world, state, world.release(1, 1));
          equal(agent.runningVersion(), undefined, `${mode}: the running version is unknown, not 0`);
          equal(outcome.reason, 'running-version-unknown', `${mode}: an offer of version 1 is refused`);
          equal(agent.blockedBy()?.reason, 'running-version-unknown', `${mode}: and the agent says why`);
          bytesEqual(otadataBytes(flash), before, `${mode}: nothing selected`);
        }
        return {};
      },
    },
    {
      name: 'a staging progress log in a newer format: the agent refuses offers (progress-unreadable: format-too-new), nothing staged',
      run(env) {
        const world = makeWorld();
        for (const mode of MODES) {
          const { flash, state } = settledFactory(env, mode, world);
          const { progress } = partitionsOf(flash);
          const newer = encodeProgressEntry(ProgressKind.BEGIN, 0x1234, 4000);
          newer[0] = 2; // a format-2 entry written by newer firmware, CRC made to match
          resealProgressEntry(newer);
          progress.write(0, newer);
          const before = otadataBytes(flash);
          const { agent, outcome } = install(flash, world, state, world.release(2, 2));
          equal(outcome.reason, 'progress-unreadable', `${mode}: refused`);
          ok(/format-too-new/.test(outcome.message), `${mode}: the message names format-too-new (${outcome.message})`);
          equal(agent.blockedBy()?.reason, 'progress-unreadable', `${mode}: blockedBy says why`);
          bytesEqual(otadataBytes(flash), before, `${mode}: nothing selected`);
          const entry = new Uint8Array(16);
          progress.read(0, entry);
          bytesEqual(entry, newer, `${mode}: the newer log was not erased`);
        }
        return {};
      },
    },
    {
      name: 'a trust store that says format-too-new: offers and rotations refused (trust-unavailable), never "not provisioned"',
      run(env) {
        const world = makeWorld();
        const { flash, state } = settledFactory(env, 'strict', world);
        const newer = loadTrust({
          load: () => {
            throw new StorageError('format-too-new', 'trust record format 2; this firmware reads 1');
          },
        });
        const { agent, outcome } = install(flash, world, state, world.release(2, 2), newer);
        equal(outcome.reason, 'trust-unavailable', 'offer refused');
        ok(/format-too-new/.test(outcome.message), `the refusal names the store's code (${outcome.message})`);
        equal(agent.applyRoots([], { save: () => undefined } as never), false, 'a rotation is refused too');
        ok(state.events.includes('root-rejected'), 'and reported');
        const blank = loadTrust({ load: () => undefined });
        ok('unavailable' in blank && blank.unavailable === 'not-provisioned', 'an empty store reads as not provisioned, and only that');
        // End to end with the real trust store: a record a later firmware wrote (same magic, format 3).
        const fresh = settledFactory(env, 'plain', world);
        const record = new Uint8Array(16).fill(0xff);
        record.set([0x48, 0x46, 0x54, 0x52, 3, 0xfc, 0x10, 0x00, 9, 0, 0, 0, 1, 2, 3, 4]);
        for (const block of [0, 1]) fresh.state.trustFlash.eraseBlock(block);
        fresh.state.trustFlash.write(0, record);
        const real = install(fresh.flash, world, fresh.state, world.release(2, 2));
        equal(real.outcome.reason, 'trust-unavailable', 'a newer trust store refuses the offer');
        ok(/format-too-new/.test(real.outcome.message), `and says format-too-new, not "not provisioned" (${real.outcome.message})`);
        const still = new Uint8Array(16);
        fresh.state.trustFlash.read(0, still);
        bytesEqual(still, record, 'the newer record was neither overwritten nor re-provisioned');
        return {};
      },
    },
    {
      name: 'rollback refused as ESP-IDF refuses it: the other image is below the anti-rollback floor; nothing written, reported, no restart',
      run(env) {
        const world = makeWorld();
        for (const mode of MODES) {
          const flash = env.createFlash(flashOptions(mode));
          provisionDevice(partitionsOf(flash), world.factory.image);
          const state = newDeviceState(world, { 2: 'fails-self-test' }, world.release(2, 2));
          try {
            bootOnce(flash, world, state);
          } catch (error) {
            if (!(error instanceof DeviceReset)) throw error;
          }
          // The floor reaches 2 before the trial's verdict (as a torn NEW read VALID lets the bootloader do).
          state.efuse.raise(2);
          state.committedSecure = 2;
          const outcome = bootOnce(flash, world, state);
          equal(running(state).version, 2, `${mode}: the trial boot runs v2`);
          equal(outcome, 'rollback-impossible', `${mode}: the failed trial cannot roll back to v1 (secure version 1 < floor 2)`);
          equal(stateOfSlot(readOtadata(partitionsOf(flash).otadata), 1), 'pending-verify', `${mode}: nothing written (ESP-IDF writes no INVALID)`);
          ok(state.events.includes('rollback-impossible') && !state.events.includes('update-rolled-back'), `${mode}: reported (${state.events.join(', ')})`);
        }
        return {};
      },
    },
    ...(['fails-self-test', 'hang', 'good'] as const).map((behaviour) => ({
      name: `a torn NEW read as VALID (bit-subset tear) is run as a trial, not as committed: ${behaviour}`,
      run(env: CaseEnv) {
        const world = makeWorld();
        for (const mode of MODES) {
          const flash = env.createFlash(flashOptions(mode));
          provisionDevice(partitionsOf(flash), world.factory.image);
          // Security version 1, as the factory image: the bootloader's floor raise on the VALID boot does not lock v1 out.
          const state = newDeviceState(world, { 2: behaviour }, world.release(2, 1));
          stageThenTearNewIntoValid(flash, world, state);
          runDevice(flash, world, state);
          const v2 = state.boots.find((b) => b.version === 2);
          equal(v2?.state, 'valid', `${mode}: the bootloader booted v2 as VALID (ESP-IDF cannot see the tear)`);
          ok(state.events.includes('unconfirmed-valid'), `${mode}: the agent noticed it never confirmed v2 (${state.events.join(', ')})`);
          equal(state.events.filter((k) => k === 'trial-started').length, 1, `${mode}: one trial`);
          if (behaviour === 'good') {
            equal(`${running(state).version}:${running(state).state}`, '2:valid', `${mode}: v2 passed its checks and is confirmed`);
            ok(state.events.includes('update-committed'), `${mode}: committed`);
            const boots = state.boots.length;
            runDevice(flash, world, state);
            equal(state.events.filter((k) => k === 'trial-started').length, 1, `${mode}: after its own confirmation v2 is no longer a trial (${state.boots.length - boots} more boots)`);
          } else {
            equal(running(state).version, 1, `${mode}: the ${behaviour} v2 rolled back to v1`);
          }
        }
        return {};
      },
    })),
    {
      name: 'what stays exposed: a torn NEW read as VALID with a higher secure version; the bootloader burns the floor first, so a failing or hanging v2 cannot roll back (reported)',
      run(env) {
        const world = makeWorld();
        for (const behaviour of ['fails-self-test', 'hang'] as const) {
          const flash = env.createFlash(flashOptions('plain'));
          provisionDevice(partitionsOf(flash), world.factory.image);
          const state = newDeviceState(world, { 2: behaviour }, world.release(2, 2));
          stageThenTearNewIntoValid(flash, world, state);
          if (behaviour === 'fails-self-test') {
            const outcome = bootOnce(flash, world, state);
            equal(outcome, 'rollback-impossible', 'v1 (secure version 1) is below the floor: no rollback, reported');
          }
          runDevice(flash, world, state);
          equal(state.efuse.secureVersion, 2, `${behaviour}: the bootloader raised the eFuse floor on the VALID boot, before any health check`);
          ok(state.events.includes('unconfirmed-valid'), `${behaviour}: the agent ran v2 as a trial`);
          ok(state.events.includes('rollback-impossible') || behaviour === 'hang', `${behaviour}: the refused rollback is reported (${state.events.join(', ')})`);
          equal(running(state).version, 2, `${behaviour}: v2 stays`);
          ok(state.exposed > 0, `${behaviour}: the test world recognises the documented exposure, and only it`);
          ok(!state.events.includes('update-committed'), `${behaviour}: never confirmed`);
        }
        return {};
      },
    },
  ],
};

/** Recompute an edited progress entry's CRC (IEEE over bytes 0..11). */
function resealProgressEntry(entry: Uint8Array): void {
  new DataView(entry.buffer, entry.byteOffset).setUint32(12, crc32(entry, 0, 12), true);
}
