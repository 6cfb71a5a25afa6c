/**
 * The update agent end to end, in Node and in the real XS engine: stage,
 * trial boot under the watchdog, commit or roll back, through the simulated
 * ESP-IDF bootloader, with real ESP-IDF app images (docs/spec/esp-app-image.md)
 * that the agent and the bootloader both check by esp_image_verify's rules;
 * exhaustive power cuts over the whole flow in both flash modes; the failures
 * real systems hit; and attacks, each refused with a reason and nothing
 * written to the running slot.
 */
import { countOperations, exhaustiveTier, runExhaustive, runRandom, type CutScenario } from '../../tools/sim/power-cut.ts';
import type { FlashMode } from '../../tools/sim/flash/sim-flash.ts';
import { provisionDevice } from '../../tools/sim/bootloader.ts';
import { readOtadata, stateOfSlot } from '../../firmware/update/otadata.ts';
import { MAX_TRIALS } from '../../firmware/update/agent.ts';
import { ESP_CHIPS } from '../../firmware/update/esp-app-image.ts';
import { bytesEqual, equal, ok } from '../support/check.ts';
import type { CaseEnv, CaseSuite, FirmwareCase } from '../support/cases.ts';
import { manifestFields, signedManifest, signedRoot, testKey } from './manifest-fixtures.ts';
import { BLOCK, bootOnce, flashOptions, makeWorld, newDeviceState, partitionsOf, running, runDevice, type Behaviour, type DeviceState, type World } from './agent-world.ts';

function provisioned(env: CaseEnv, mode: FlashMode, world: World) {
  const flash = env.createFlash(flashOptions(mode));
  provisionDevice(partitionsOf(flash), world.factory.image);
  return flash;
}

/** Outcome expected when the device settles after being offered release 2 with this behaviour. */
function expectSettled(state: DeviceState, behaviour: Behaviour): void {
  const now = running(state);
  if (state.exposed > 0 && behaviour !== 'good') {
    // The documented exposure (update-states.md): the new image stays, reported, never confirmed by the agent.
    equal(now.version, 2, `a ${behaviour} update the bootloader committed through a torn NEW stays (no rollback target above the floor)`);
    ok(!state.events.includes('update-committed'), 'and the agent never confirmed it');
    return;
  }
  if (behaviour === 'good') {
    equal(now.version, 2, 'the good update is running');
    equal(now.state, 'valid', 'and confirmed');
    equal(state.efuse.secureVersion, 2, 'the floor rose to the new security version after the commit');
  } else {
    equal(now.version, 1, `a ${behaviour} update rolled back to the factory image`);
    equal(state.efuse.secureVersion, 1, 'the floor never rose for an image that was not committed');
  }
}

export function updateScenario(mode: FlashMode, behaviour: Behaviour, world: World): CutScenario<DeviceState> {
  const offer = world.release(2, 2);
  return {
    name: `update/${behaviour}/${mode}`,
    flash: flashOptions(mode),
    createState: () => newDeviceState(world, { 2: behaviour }, offer),
    boot(flash, state) {
      runDevice(flash, world, state);
      // A cut between the erase and the program of the VALID entry rolls the
      // trial back (ESP-IDF rewrites the active copy in place): the device is
      // safe on the old image and the server offers the update again.
      for (let retry = 0; retry < 3 && behaviour === 'good' && running(state).version === 1; retry++) {
        state.offer = offer;
        runDevice(flash, world, state);
      }
      expectSettled(state, behaviour);
      ok(state.transferred <= offer.image.length * 2 + BLOCK_GUARD, `transferred ${state.transferred} bytes for a ${offer.image.length}-byte image`);
      exposedRuns.count += state.exposed > 0 ? 1 : 0;
    },
  };
}

/** Runs that ended in the documented torn-VALID exposure (reported by the cases). */
const exposedRuns = { count: 0 };

/** At most one chunk (one erase block) re-transferred per cut, and one extra full transfer if a cut lands after the image was checked but before it was selected. */
const BLOCK_GUARD = BLOCK;

/** The factory image is flashed before the run: provisioning is not part of what is cut. */
function provisionedFlash(env: CaseEnv, world: World): CaseEnv['createFlash'] {
  return (options) => {
    const flash = env.createFlash(options);
    provisionDevice(partitionsOf(flash), world.factory.image);
    return flash;
  };
}

function flowCase(behaviour: Behaviour): FirmwareCase {
  return {
    name: `stage, trial boot, ${behaviour === 'good' ? 'commit' : behaviour === 'hang' ? 'hang, watchdog, rollback' : 'failed self-test, rollback'}`,
    run(env) {
      const world = makeWorld();
      for (const mode of ['plain', 'strict'] as const) {
        const flash = provisioned(env, mode, world);
        const state = newDeviceState(world, { 2: behaviour }, world.release(2, 2));
        runDevice(flash, world, state);
        expectSettled(state, behaviour);
        const kinds = state.events;
        ok(kinds.includes('update-staged') && kinds.includes('trial-started'), `${mode}: staged and trial events (${kinds.join(', ')})`);
        ok(kinds.includes(behaviour === 'good' ? 'update-committed' : 'update-rolled-back'), `${mode}: outcome event (${kinds.join(', ')})`);
        equal(kinds.filter((k) => k === 'update-rolled-back').length, behaviour === 'good' ? 0 : 1, `${mode}: a rollback is reported exactly once`);
      }
      return { behaviour };
    },
  };
}

function exhaustiveCase(mode: FlashMode, behaviour: Behaviour): FirmwareCase {
  return {
    name: `exhaustive cuts over the whole update (${behaviour}), ${mode}`,
    run(env) {
      const world = makeWorld();
      exposedRuns.count = 0;
      return { ...runExhaustive(updateScenario(mode, behaviour, world), { createFlash: provisionedFlash(env, world), saveFailureImage: env.saveFailureImage }), exposedRuns: exposedRuns.count };
    },
  };
}

/**
 * Double faults over the whole update: every first cut, then two sampled
 * second cuts during the recovery boot; in XS one, and only for first cuts
 * in the boot-control tail of the update (the last 8 operations: TRIAL,
 * otadata selection, the trial's writes), since every XS run costs ~10x.
 * HOLDFAST_EXHAUSTIVE widens both to every cut point and every operation of
 * the recovery boot.
 */
const XS_DOUBLE_CUT_TAIL = 8;

function doubleCutCase(mode: FlashMode, behaviour: Behaviour): FirmwareCase {
  return {
    name: `double cuts over the whole update (${behaviour}): a second cut during the recovery boot, ${mode}`,
    run(env) {
      const world = makeWorld();
      exposedRuns.count = 0;
      const scenario = updateScenario(mode, behaviour, world);
      const options = { createFlash: provisionedFlash(env, world), saveFailureImage: env.saveFailureImage };
      const xsSlice = env.engine === 'xs' && !exhaustiveTier();
      const operations = xsSlice ? countOperations(scenario, options) : 0;
      const report = runExhaustive(scenario, {
        ...options,
        secondCuts: { sample: xsSlice ? 1 : 2 },
        cutRange: xsSlice ? { from: Math.max(0, operations - XS_DOUBLE_CUT_TAIL), to: operations } : undefined,
      });
      ok(report.doubleCutRuns > 0, 'second cuts ran');
      return { ...report, exposedRuns: exposedRuns.count };
    },
  };
}

/** The same flow on the other chips holdfast has boards for: images, bootloader and agent for that chip. */
function otherChipsCase(): FirmwareCase {
  return {
    name: 'stage, trial boot, commit or roll back on an ESP32-S3 and an ESP32-C3 (images built for that chip id)',
    run(env) {
      for (const chip of [ESP_CHIPS.esp32s3, ESP_CHIPS.esp32c3]) {
        const world = makeWorld(chip);
        for (const behaviour of ['good', 'fails-self-test'] as const) {
          const flash = provisioned(env, 'plain', world);
          const state = newDeviceState(world, { 2: behaviour }, world.release(2, 2));
          runDevice(flash, world, state);
          expectSettled(state, behaviour);
          equal(world.release(2, 2).image[12], chip.chipId, `${chip.name}: the image header carries the chip id`);
        }
      }
    },
  };
}

export const suite: CaseSuite = {
  name: 'update agent',
  cases: [
    flowCase('good'),
    flowCase('hang'),
    flowCase('fails-self-test'),
    otherChipsCase(),
    {
      name: `a hanging image offered again is retried at most ${MAX_TRIALS} times, then refused`,
      run(env) {
        const world = makeWorld();
        const flash = provisioned(env, 'plain', world);
        const offer = world.release(2, 2);
        const state = newDeviceState(world, { 2: 'hang' }, offer);
        for (let round = 0; round < MAX_TRIALS + 2; round++) {
          state.offer = offer;
          runDevice(flash, world, state);
          equal(running(state).version, 1, `round ${round}: back on the factory image`);
        }
        equal(state.events.filter((k) => k === 'trial-started').length, MAX_TRIALS, 'trial boots of the hanging image');
        ok(state.events.includes('update-rejected'), 'then the agent refuses it');
        return { trials: MAX_TRIALS };
      },
    },
    {
      name: 'key rotation drill: rotate the root twice, revoke the first targets key; across reboots old-key manifests are refused, new ones installed',
      run(env) {
        const world = makeWorld();
        const crypto = world.crypto;
        const [k1, k2, k3] = world.root.rootKeys;
        const [t11, t12] = world.root.targetsKeys;
        const t14 = testKey(crypto, 14);
        const k4 = testKey(crypto, 4);
        // Root 2 revokes targets key 11 (adds 14); root 3 replaces root key 1 with 4. Each is signed by the old and the new root keys.
        const root2 = { version: 2, rootThreshold: 2, rootKeys: [k1, k2, k3], targetsThreshold: 1, targetsKeys: [t12, t14] };
        const root3 = { version: 3, rootThreshold: 2, rootKeys: [k4, k2, k3], targetsThreshold: 1, targetsKeys: [t12, t14] };
        const chain = [signedRoot(root2, [k1, k2]), signedRoot(root3, [k2, k3, k4])];
        const flash = provisioned(env, 'strict', world);
        const state = newDeviceState(world, {}, undefined);
        state.roots = chain;
        runDevice(flash, world, state);
        ok(state.events.includes('root-rotated'), `rotation applied (${state.events.join(', ')})`);
        equal(state.rootVersions[state.rootVersions.length - 1], 3, 'after a reboot the device trusts root 3, read back from flash');
        const image = world.release(2, 2).image;
        const oldKey = { ...world.release(2, 2), manifest: signedManifest(manifestFields(crypto, image, { imageVersion: 2, securityVersion: 2, rootVersion: 1 }), [t11]) };
        state.offer = oldKey;
        runDevice(flash, world, state);
        equal(running(state).version, 1, 'a manifest signed by the revoked key is refused');
        ok(state.events.includes('update-rejected'), 'and the refusal recorded');
        const newKey = { ...oldKey, manifest: signedManifest(manifestFields(crypto, image, { imageVersion: 2, securityVersion: 2, rootVersion: 3 }), [t14]) };
        state.offer = newKey;
        runDevice(flash, world, state);
        equal(running(state).version, 2, 'a manifest signed by the new key installs');
        equal(running(state).state, 'valid', 'and is committed');
        const rotatedOnlyByNew = signedRoot({ ...root3, version: 4, rootKeys: [testKey(crypto, 5), testKey(crypto, 6), testKey(crypto, 7)] }, [testKey(crypto, 5), testKey(crypto, 6)]);
        state.roots = [rotatedOnlyByNew];
        runDevice(flash, world, state);
        ok(state.events.includes('root-rejected'), 'a root signed only by its own new keys is refused');
        equal(state.rootVersions[state.rootVersions.length - 1], 3, 'the device still trusts root 3');
        return { rootVersion: 3 };
      },
    },
    {
      name: 'the new image is not marked valid before its health checks ran',
      run(env) {
        const world = makeWorld();
        const flash = provisioned(env, 'plain', world);
        const state = newDeviceState(world, { 2: 'hang' }, world.release(2, 2));
        // Boot 1 (factory, VALID) stages and restarts; boot 2 is the trial, which hangs.
        for (let i = 0; i < 3 && !state.events.includes('trial-started'); i++) {
          try {
            bootOnce(flash, world, state);
          } catch {
            // restarts and the watchdog reset end a boot
          }
        }
        const trialBoot = state.boots.find((b) => b.version === 2);
        ok(trialBoot !== undefined, 'the new image booted');
        equal(trialBoot.state, 'pending-verify', 'it booted as a trial, not as valid');
        equal(stateOfSlot(readOtadata(partitionsOf(flash).otadata), trialBoot.slot), 'pending-verify', 'still unconfirmed after a hang');
        equal(state.efuse.secureVersion, 1, 'floor unchanged before any commit');
        return {};
      },
    },
    {
      name: 'attacks are refused with a reason and nothing is written to the running slot',
      run(env) {
        const world = makeWorld();
        const report: Record<string, string> = {};
        const attacks: [string, () => { manifest: Uint8Array; image: Uint8Array }, string][] = [
          ['older version', () => world.release(1, 1), 'old-version'],
          ['wrong board', () => world.release(2, 2, { boardId: 'other-board' }), 'wrong-board'],
          ['below the security floor', () => world.release(2, 0), 'below-security-floor'],
          ['declared length beyond the slot', () => world.release(2, 2, { imageLength: 1 << 20 }), 'too-large'],
          ['tampered image', () => tamper(world.release(2, 2)), 'tampered'],
          ['truncated image', () => truncate(world.release(2, 2)), 'truncated'],
          ['unknown manifest format', () => reformat(world.release(2, 2)), 'unknown-format'],
        ];
        for (const [name, make, reason] of attacks) {
          const flash = provisioned(env, 'strict', world);
          const state = newDeviceState(world, {}, make() as DeviceState['offer']);
          const before = activeSlotBytes(flash);
          runDevice(flash, world, state);
          equal(running(state).version, 1, `${name}: still on the factory image`);
          bytesEqual(activeSlotBytes(flash), before, `${name}: running slot untouched`);
          ok(state.events.includes('update-rejected'), `${name}: rejection recorded`);
          report[name] = reason;
        }
        return { attacks: attacks.length };
      },
    },
    ...(['plain', 'strict'] as const).flatMap((mode) => [exhaustiveCase(mode, 'good'), exhaustiveCase(mode, 'hang'), exhaustiveCase(mode, 'fails-self-test')]),
    doubleCutCase('plain', 'fails-self-test'),
    {
      name: 'random multi-cut runs over an update that fails its self-test (strict)',
      run(env) {
        const world = makeWorld();
        return { ...runRandom(updateScenario('strict', 'fails-self-test', world), { createFlash: provisionedFlash(env, world), runs: 20, maxCuts: 3, seed: 9 }) };
      },
    },
  ],
};

function activeSlotBytes(flash: Parameters<typeof partitionsOf>[0]): Uint8Array {
  const bytes = new Uint8Array(4096);
  partitionsOf(flash).slots[0].read(0, bytes);
  return bytes;
}

function tamper(release: { manifest: Uint8Array; image: Uint8Array }) {
  const image = release.image.slice();
  image[image.length - 3] ^= 0x10;
  return { ...release, image };
}

function truncate(release: { manifest: Uint8Array; image: Uint8Array }) {
  return { ...release, image: release.image.subarray(0, release.image.length - 700) };
}

function reformat(release: { manifest: Uint8Array; image: Uint8Array }) {
  const manifest = release.manifest.slice();
  manifest[4] = 9; // the envelope's format version byte
  return { ...release, manifest };
}

