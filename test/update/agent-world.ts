/**
 * A simulated device for the update agent (engine-neutral: runs in Node and
 * XS): one cuttable flash holding otadata, two app slots and the staging
 * log; the simulated ESP-IDF bootloader with its eFuse floor (ESP32); real
 * ESP-IDF app images (buildAppImage: header, a DROM segment holding
 * esp_app_desc_t, a DRAM segment, checksum, appended SHA-256) whose
 * behaviour on a trial boot is chosen by the test.
 */
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import type { Crypto } from '../../firmware/hal/crypto.ts';
import type { ResetReason } from '../../firmware/hal/system.ts';
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { isTrustUnavailable, loadTrust, UpdateAgent, type TrialState, type TrustReading } from '../../firmware/update/agent.ts';
import { TrustStore } from '../../firmware/update/trust-store.ts';
import { combinedFloor, FloorStore } from '../../firmware/update/floor-store.ts';
import type { UpdateAuditEvent } from '../../firmware/update/audit.ts';
import { runtimeStarted, selfTest } from '../../firmware/update/health.ts';
import { ESP_CHIPS, type EspChip } from '../../firmware/update/esp-app-image.ts';
import { buildAppImage, otaLayout, otaLayoutBlocks, PartitionView, SimBootloader, SimEfuse, type BootDecision } from '../../tools/sim/bootloader.ts';
import { VirtualClock } from '../../tools/sim/clock.ts';
import { DeviceReset, SimWatchdog } from '../../tools/sim/watchdog.ts';
import { SimFlash, type FlashMode, type SimFlashOptions } from '../../tools/sim/flash/sim-flash.ts';
import { BOARD, manifestFields, signedManifest, testWorld } from './manifest-fixtures.ts';
import { ok } from '../support/check.ts';

/** ESP32 sectors: otadata must be two 4 KiB sectors (docs/spec/otadata.md), and one flash holds every partition. */
export const BLOCK = 4096;
export const SLOT_BLOCKS = 4;
export const PROGRESS_BLOCKS = 2;

/** Two chunks (resume is exercised) while keeping SHA-256 in XS affordable: every boot hashes both slots. */
export const BODY_LENGTH = BLOCK + 100;
export const WATCHDOG_MS = 2_000;

export type Behaviour = 'good' | 'hang' | 'fails-self-test';

export interface Release {
  image: Uint8Array;
  manifest: Uint8Array;
  imageVersion: number;
  securityVersion: number;
}

export interface World {
  crypto: Crypto;
  /** The device's chip: its bootloader's and agent's, and the chip id of every release image. */
  chip: EspChip;
  root: ReturnType<typeof testWorld>;
  factory: Release;
  release(imageVersion: number, securityVersion: number, overrides?: Parameters<typeof manifestFields>[2]): Release;
}

export function makeWorld(chip: EspChip = ESP_CHIPS.esp32): World {
  const crypto = createNobleCrypto();
  const root = testWorld(crypto);
  const release = (imageVersion: number, securityVersion: number, overrides = {}): Release => {
    const image = buildAppImage({ imageVersion, secureVersion: securityVersion, chipId: chip.chipId }, BODY_LENGTH, () => crypto.createSha256());
    const manifest = signedManifest(manifestFields(crypto, image, { imageVersion, securityVersion, ...overrides }), [root.targetsKeys[0]]);
    return { image, manifest, imageVersion, securityVersion };
  };
  return { crypto, chip, root, factory: release(1, 1), release };
}

export function flashOptions(mode: FlashMode): SimFlashOptions {
  return { blocks: otaLayoutBlocks(SLOT_BLOCKS) + PROGRESS_BLOCKS, blockLength: BLOCK, mode };
}

export function partitionsOf(flash: FlashPartition) {
  const { otadata, slots } = otaLayout(flash, SLOT_BLOCKS);
  return { otadata, slots, progress: new PartitionView(flash, otaLayoutBlocks(SLOT_BLOCKS), PROGRESS_BLOCKS) };
}

/** What the test knows across reboots (the device's RAM is rebuilt each boot). */
export interface DeviceState {
  efuse: SimEfuse;
  resetReason: ResetReason;
  behaviours: Record<number, Behaviour>;
  /** The release to install when the running version is below it. */
  offer: Release | undefined;
  /** Audit events, in order. */
  events: UpdateAuditEvent['kind'][];
  boots: { slot: number; version: number; state: string | undefined }[];
  /** Highest security version of an image confirmed VALID (by the agent, or booted VALID by the bootloader). */
  committedSecure: number;
  transferred: number;
  /**
   * The trust store's own partition: 4 KiB sectors (a root record does not
   * fit the small blocks of the cut flash). Its power cuts are covered by
   * test/update/root-store.cases.ts.
   */
  trustFlash: SimFlash;
  /** The security floor's flash copy (the eFuse is `efuse`). */
  floorFlash: SimFlash;
  /** Root rotations the server hands the device at its next boot. */
  roots: Uint8Array[];
  /** Root version the device trusted at each boot. */
  rootVersions: number[];
  /**
   * Runs that ended in the documented exposure (docs/spec/update-states.md):
   * a torn NEW read as VALID, the bootloader burnt the new secure version,
   * the trial failed and no rollback target remains.
   */
  exposed: number;
}

export function newDeviceState(world: World, behaviours: Record<number, Behaviour>, offer: Release | undefined): DeviceState {
  const floorFlash = new SimFlash({ blocks: 2, blockLength: 256 });
  // A floor store is provisioned before first use: a blank floor partition is refused, never read as 0.
  FloorStore.format(floorFlash);
  return { efuse: new SimEfuse(world.factory.securityVersion), resetReason: 'power-on', behaviours, offer, events: [], boots: [], committedSecure: world.factory.securityVersion, transferred: 0, trustFlash: new SimFlash({ blocks: 2 }), floorFlash, roots: [], rootVersions: [], exposed: 0 };
}

/** The trust store's reading at boot; a factory-fresh device is provisioned with root 1 first. */
function provisionedTrust(store: TrustStore, world: World): TrustReading {
  const reading = loadTrust(store);
  if (!isTrustUnavailable(reading) || (reading.unavailable !== 'not-provisioned' && reading.unavailable !== 'blank')) return reading;
  store.save(world.root.root1);
  return loadTrust(store);
}

/**
 * One boot of the device, through the simulated bootloader. Returns the
 * trial's outcome or 'idle'; throws DeviceReset (watchdog, software restart)
 * or PowerCut, which the caller turns into the next boot.
 */
export function bootOnce(flash: FlashPartition, world: World, state: DeviceState): TrialState | 'idle' {
  const { otadata, slots } = partitionsOf(flash);
  const bootloader = new SimBootloader({ otadata, slots, createSha256: () => world.crypto.createSha256(), efuse: state.efuse, chip: world.chip });
  const decision: BootDecision = bootloader.boot();
  const version = decision.header.imageVersion;
  if (version === undefined) throw new Error(`slot ${decision.slot} booted with an app version that is not a holdfast version: ${JSON.stringify(decision.header.desc.version)}`);
  state.boots.push({ slot: decision.slot, version, state: decision.state });
  if (decision.state === 'valid') state.committedSecure = Math.max(state.committedSecure, decision.header.secureVersion);
  checkFloor(state);
  const clock = new VirtualClock();
  const { agent, store } = agentFor(flash, world, state, decision.slot, clock);
  if (state.roots.length > 0) {
    const chain = state.roots;
    state.roots = [];
    agent.applyRoots(chain, store);
  }
  const behaviour = state.behaviours[version] ?? 'good';
  const trial = agent.beginTrial([runtimeStarted(), selfTest(() => behaviour !== 'fails-self-test')], { watchdogTimeoutMs: WATCHDOG_MS });
  if (trial) {
    ok(state.efuse.secureVersion <= state.committedSecure, 'the floor rose before the commit');
    // A hanging image never steps its trial: time passes, the watchdog fires.
    if (behaviour === 'hang') clock.advance(WATCHDOG_MS * 3);
    let outcome: TrialState = 'running';
    for (let i = 0; i < 100 && outcome === 'running'; i++) {
      outcome = trial.step();
      clock.advance(100);
    }
    checkFloor(state);
    return outcome;
  }
  const offer = state.offer;
  if (offer) {
    agent.install(offer.manifest, {
      read: (offset, length) => {
        state.transferred += length;
        return offer.image.subarray(offset, offset + length);
      },
    });
  }
  return 'idle';
}

/**
 * The update agent of one boot running from `runningSlot`, wired to the
 * world's flash, stores and audit record, with a fresh watchdog on `clock`.
 * `trust` replaces the trust store's reading (tests of an unreadable store).
 */
export function agentFor(flash: FlashPartition, world: World, state: DeviceState, runningSlot: 0 | 1, clock: VirtualClock, trust?: TrustReading): { agent: UpdateAgent; store: TrustStore; watchdog: SimWatchdog } {
  const { otadata, slots, progress } = partitionsOf(flash);
  const watchdog = new SimWatchdog(clock);
  // The root of trust comes from flash on every boot; a factory-fresh device is provisioned with root 1.
  const store = new TrustStore(state.trustFlash, world.crypto);
  const trusted = trust ?? provisionedTrust(store, world);
  state.rootVersions.push(isTrustUnavailable(trusted) ? -1 : trusted.version);
  const agent = new UpdateAgent({
    otadata,
    slots,
    runningSlot,
    progress,
    crypto: world.crypto,
    trust: trusted,
    floor: combinedFloor(new FloorStore(state.floorFlash), state.efuse),
    boardId: BOARD,
    chip: world.chip,
    watchdog,
    clock,
    system: { lastResetReason: () => state.resetReason, restart: (why: string) => { throw new DeviceReset('software', why); } },
    audit: {
      emit: (event) => {
        state.events.push(event.kind);
        // Staged or refused: the server has its answer and stops offering.
        if (event.kind === 'update-staged' || event.kind === 'update-rejected') state.offer = undefined;
        if (event.kind === 'update-committed') state.committedSecure = Math.max(state.committedSecure, event.securityVersion);
      },
    },
  });
  return { agent, store, watchdog };
}

function checkFloor(state: DeviceState): void {
  const floor = Math.max(state.efuse.secureVersion, new FloorStore(state.floorFlash).secureVersion);
  ok(floor <= state.committedSecure, `the anti-rollback floor ${floor} is above every committed image (${state.committedSecure})`);
}

/**
 * Boot until the device settles (idle twice in a row), turning resets into
 * reboots; a PowerCut propagates to the power-cut runner.
 */
export function runDevice(flash: FlashPartition, world: World, state: DeviceState, maxBoots = 12): void {
  let idle = 0;
  for (let boot = 0; boot < maxBoots; boot++) {
    try {
      const outcome = bootOnce(flash, world, state);
      idle = outcome === 'idle' || outcome === 'committed' ? idle + 1 : 0;
      state.resetReason = 'power-on';
      if (outcome === 'rollback-impossible' && exposure(world, state)) return;
      if (idle >= 2) return;
    } catch (error) {
      if (!(error instanceof DeviceReset)) throw error;
      state.resetReason = error.reason;
      idle = 0;
    }
  }
  // A hanging image in the same exposure loops through watchdog resets: that is the documented outcome too.
  if (exposure(world, state)) return;
  throw new Error(`device did not settle within ${maxBoots} boots: ${JSON.stringify(state.boots.slice(-4))}`);
}

/**
 * The documented exposure, and only it: the agent found a VALID it never
 * confirmed (a torn NEW) and the eFuse floor is above the factory image's
 * secure version, burnt by the bootloader before any health check.
 */
function exposure(world: World, state: DeviceState): boolean {
  if (!state.events.includes('unconfirmed-valid') || state.efuse.secureVersion <= world.factory.securityVersion) return false;
  state.exposed++;
  return true;
}

export function running(state: DeviceState): { slot: number; version: number; state: string | undefined } {
  return state.boots[state.boots.length - 1];
}
