/**
 * What the fleet's devices are made of, host side: the fleet's signing keys
 * (a root, a targets key, the command key, the revocation-list key), simulated ESP-IDF app images
 * whose app description declares how they behave (runtime-device.ts,
 * IMAGE_BEHAVIOURS), their signed manifests, and the factory: every store
 * the runtime opens formatted, the trust store holding the fleet's root,
 * the factory image in ota_0 (docs/design/fleet-sim.md, "Images").
 *
 * An update given on the command line (`--update <image> --manifest <file>`,
 * as `holdfast sign` writes them) comes with the root that signed it from a
 * key directory (`--trust <dir>`, default `keys`, as `holdfast sign`).
 *
 * Host tool (Node).
 */
import { readFileSync } from 'node:fs';
import * as ed from '@noble/ed25519';
import type { Crypto } from '../../../firmware/hal/crypto.ts';
import type { FlashPartition } from '../../../firmware/hal/flash.ts';
import { configureEd25519, createNobleCrypto } from '../../../firmware/security/noble-crypto.ts';
import { keyIdOf } from '../../../firmware/security/verify.ts';
import { encodeEnvelope } from '../../../firmware/update/signed-document.ts';
import { encodeRootBody, trustProvisionedRoot, type TrustedRoot } from '../../../firmware/update/root.ts';
import { decodeImageManifest, encodeImageBody, type ImageManifest } from '../../../firmware/update/manifest.ts';
import { ESP_APP_DESC_OFFSET, ESP_CHIPS, encodeEspAppImage, readPartitionDescription, imageVersionOf } from '../../../firmware/update/esp-app-image.ts';
import { encodeRevocationBody, sealRevocationList, type RevocationEntry } from '../../../firmware/security/revocation.ts';
import { commandKeyId, ed25519Signer, sealCommand } from '../../../firmware/security/envelope-command.ts';
import { COMMAND_POLICY, encodeCommandPayload } from '../../../firmware/runtime/_command-policy.ts';
import { loadRootChain } from '../../keys/keystore.ts';
import { formatStores } from '../../provision/factory-stores.ts';
import { provisionDevice, testImageBody } from '../bootloader.ts';
import { PartitionView } from '../flash/partition-view.ts';
import { deriveSeed, Rng } from '../rng.ts';
import { IMAGE_BEHAVIOURS, partitionsOf, RUNTIME_BLOCK, type ImageBehaviour, type RuntimeLayout } from '../runtime-device.ts';

/** The board the simulated devices are (the manifests name it). */
export const SIM_BOARD = 'esp32-wroom-32e-4mb';
/** Body bytes of a simulated image: small, since every boot hashes both slots (in XS too). */
const SIM_BODY_LENGTH = 1024;

/** A file the sim was given is unusable (exit 2). */
export class FleetInputError extends Error {
  constructor(
    message: string,
    /** The flag whose file it is. */
    readonly field = '--update',
  ) {
    super(message);
    this.name = 'FleetInputError';
  }
}

export interface SimRelease {
  readonly image: Uint8Array;
  readonly manifest: Uint8Array;
  readonly imageVersion: number;
  readonly securityVersion: number;
  readonly behaviour: ImageBehaviour;
  /** Where it came from: 'sim' (made here) or the image file. */
  readonly source: string;
}

/** Everything the devices of one run carry and are offered. */
export interface FleetFirmware {
  readonly crypto: Crypto;
  readonly root: TrustedRoot;
  readonly boardId: string;
  readonly factory: Uint8Array;
  readonly commandPublicKey: Uint8Array;
  /** The command key's seed (the sim signs commands with it: a halted rollout's roll-back-update; --revoke command-key keeps commanding with the revoked key). */
  readonly commandSecret: Uint8Array;
  /** The fleet's revocation-list key (spec/revocation.md, "Who signs it"): its public key is in every device, the sim signs lists with its seed. */
  readonly revocationPublicKey: Uint8Array;
  readonly revocationSecret: Uint8Array;
  /** Offered in this order, each at its simulated second. */
  readonly updates: readonly (SimRelease & { readonly atSec: number })[];
  readonly layout: RuntimeLayout;
}

interface Key {
  readonly seed: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly keyId: Uint8Array;
}

function keyFrom(crypto: Crypto, seed: number, n: number): Key {
  configureEd25519();
  const secret = new Uint8Array(32);
  new Rng(deriveSeed(seed, 20, n)).fill(secret);
  const publicKey = ed.getPublicKey(secret);
  return { seed: secret, publicKey, keyId: keyIdOf(crypto, publicKey) };
}

function sign(body: Uint8Array, keys: readonly Key[]): Uint8Array {
  return encodeEnvelope(
    body,
    keys.map((k) => ({ keyId: k.keyId, signature: ed.sign(body, k.seed) })),
  );
}

function sha256(crypto: Crypto, bytes: Uint8Array): Uint8Array {
  const h = crypto.createSha256();
  h.update(bytes);
  return h.digest();
}

/** A simulated app image: esp_app_desc_t with the version and the behaviour's project name, a small body. */
export function simImage(crypto: Crypto, imageVersion: number, securityVersion: number, behaviour: ImageBehaviour): Uint8Array {
  const chip = ESP_CHIPS.esp32;
  const projectName = behaviour === 'hang' ? IMAGE_BEHAVIOURS.hang : behaviour === 'fail-checks' ? IMAGE_BEHAVIOURS.failChecks : behaviour === 'fail-checks-rev-b' ? IMAGE_BEHAVIOURS.failChecksRevB : 'holdfast-sim';
  return encodeEspAppImage(
    {
      chipId: chip.chipId,
      hashAppended: true,
      segments: [
        { loadAddr: chip.drom + ESP_APP_DESC_OFFSET, data: new Uint8Array(0) },
        { loadAddr: chip.dram, data: testImageBody(SIM_BODY_LENGTH, imageVersion) },
      ],
      appDesc: { secureVersion: securityVersion, version: String(imageVersion), projectName },
    },
    () => crypto.createSha256(),
  );
}

function slotBlocksFor(images: readonly Uint8Array[]): number {
  return Math.max(1, ...images.map((i) => Math.ceil(i.length / RUNTIME_BLOCK)));
}

export interface UpdatePlan {
  /** The sim makes its own keys and offers a good update at 1/5 of the run and, with `bad`, a bad one at 1/2. */
  readonly kind: 'sim' | 'none' | 'given';
  readonly bad?: ImageBehaviour;
  /** `holdfast sim --rollout`: instead, one image at the plan's target versions that fails its self-test on hardware revision rev-b, offered by the rollout. */
  readonly rollout?: { readonly imageVersion: number; readonly securityVersion: number };
  /** `given`: the files and the key directory holding the root that signed the manifest. */
  readonly imagePath?: string;
  readonly manifestPath?: string;
  readonly trustDir?: string;
}

/** The run's keys, images and offers. Throws FleetInputError for unusable files. */
export function fleetFirmware(seed: number, durationSec: number, plan: UpdatePlan, outboxBlocks: number): FleetFirmware {
  const crypto = createNobleCrypto();
  const commandKey = keyFrom(crypto, seed, 100);
  const revocationKey = keyFrom(crypto, seed, 101);
  const keys = { commandPublicKey: commandKey.publicKey, commandSecret: commandKey.seed, revocationPublicKey: revocationKey.publicKey, revocationSecret: revocationKey.seed };
  if (plan.kind === 'given') return givenFirmware(crypto, durationSec, plan, outboxBlocks, keys);
  const rootKeys = [keyFrom(crypto, seed, 1), keyFrom(crypto, seed, 2)];
  const targets = keyFrom(crypto, seed, 11);
  const rootBytes = sign(encodeRootBody({ version: 1, root: { threshold: 2, publicKeys: rootKeys.map((k) => k.publicKey) }, targets: { threshold: 1, publicKeys: [targets.publicKey] } }), rootKeys);
  const verdict = trustProvisionedRoot(crypto, rootBytes);
  if (!verdict.ok) throw new Error(`the sim's own root does not verify: ${verdict.reason}`);
  const release = (imageVersion: number, behaviour: ImageBehaviour, securityVersion = 1): SimRelease => {
    const image = simImage(crypto, imageVersion, securityVersion, behaviour);
    const fields: ImageManifest = { rootVersion: 1, imageVersion, securityVersion, imageLength: image.length, imageDigest: sha256(crypto, image), boardId: SIM_BOARD };
    return { image, manifest: sign(encodeImageBody(fields), [targets]), imageVersion, securityVersion, behaviour, source: 'sim' };
  };
  const factory = simImage(crypto, 1, 1, 'good');
  const updates: (SimRelease & { atSec: number })[] = [];
  if (plan.kind === 'sim' && plan.rollout !== undefined) updates.push({ ...release(plan.rollout.imageVersion, 'fail-checks-rev-b', plan.rollout.securityVersion), atSec: roundTo10(durationSec / 5) });
  else if (plan.kind === 'sim') {
    updates.push({ ...release(2, 'good'), atSec: roundTo10(durationSec / 5) });
    if (plan.bad !== undefined) updates.push({ ...release(3, plan.bad), atSec: roundTo10(durationSec / 2) });
  }
  return { crypto, root: verdict.root, boardId: SIM_BOARD, factory, ...keys, updates, layout: { slotBlocks: slotBlocksFor([factory, ...updates.map((u) => u.image)]), outboxBlocks } };
}

/** A signed revocation list as `holdfast fleet revoke` writes it (spec/revocation.md), signed with the sim's revocation key. */
export function simRevocationList(fw: FleetFirmware, number: number, entries: readonly RevocationEntry[]): Uint8Array {
  configureEd25519();
  const body = encodeRevocationBody(fw.crypto, { number, issuedAt: 0, entries }, fw.revocationPublicKey);
  return sealRevocationList(body, ed.sign(body, fw.revocationSecret));
}

/** A command for one device signed with the sim's command key (report-status, section 0: a diagnostic, harmless in any mode). */
export function simCommand(fw: FleetFirmware, deviceId: Uint8Array, counter: number): Uint8Array {
  const row = COMMAND_POLICY.find((r) => r.name === 'report-status');
  if (row === undefined) throw new Error('the command policy has no report-status');
  return sealCommand(encodeCommandPayload(row, { section: 0 }), { deviceId, counter: { next: () => counter }, keyId: commandKeyId(fw.crypto, fw.commandPublicKey), sign: ed25519Signer(fw.commandSecret) });
}

function roundTo10(sec: number): number {
  return Math.max(10, Math.floor(sec / 10) * 10);
}

function readInput(path: string, what: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (error) {
    throw new FleetInputError(`cannot read ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, what.startsWith('--manifest') ? '--manifest' : '--update');
  }
}

function givenFirmware(crypto: Crypto, durationSec: number, plan: UpdatePlan, outboxBlocks: number, keys: Pick<FleetFirmware, 'commandPublicKey' | 'commandSecret' | 'revocationPublicKey' | 'revocationSecret'>): FleetFirmware {
  const image = readInput(plan.imagePath!, '--update image');
  const manifestBytes = readInput(plan.manifestPath!, '--manifest');
  let manifest: ImageManifest;
  try {
    manifest = decodeImageManifest(manifestBytes).manifest;
  } catch (error) {
    throw new FleetInputError(`${plan.manifestPath} is not a signed image manifest: ${(error as Error).message}`, '--manifest');
  }
  if (manifest.imageLength !== image.length) throw new FleetInputError(`--manifest ${plan.manifestPath} is for an image of ${manifest.imageLength} bytes, ${plan.imagePath} has ${image.length}`);
  const digest = sha256(crypto, image);
  if (!digest.every((b, i) => b === manifest.imageDigest[i])) throw new FleetInputError(`--manifest ${plan.manifestPath} does not match ${plan.imagePath} (SHA-256 differs)`);
  const desc = readPartitionDescription(new PartitionView(memoryFlash(image), 0, Math.ceil(image.length / RUNTIME_BLOCK)));
  if (desc === undefined || imageVersionOf(desc) === undefined) throw new FleetInputError(`${plan.imagePath} is not an ESP-IDF app image with a holdfast version in its app description`);
  let root: TrustedRoot;
  try {
    root = loadRootChain(plan.trustDir!).trusted;
  } catch (error) {
    throw new FleetInputError(`${(error as Error).message.split('\n')[0]}`, '--trust');
  }
  // The factory image: version 1 below the update, same chip, so the update is an upgrade.
  const factory = simImage(crypto, 1, Math.min(desc.secureVersion, manifest.securityVersion), 'good');
  const behaviour: ImageBehaviour = desc.projectName === IMAGE_BEHAVIOURS.hang ? 'hang' : desc.projectName === IMAGE_BEHAVIOURS.failChecks ? 'fail-checks' : desc.projectName === IMAGE_BEHAVIOURS.failChecksRevB ? 'fail-checks-rev-b' : 'good';
  const update = { image, manifest: manifestBytes, imageVersion: manifest.imageVersion, securityVersion: manifest.securityVersion, behaviour, source: plan.imagePath!, atSec: roundTo10(durationSec / 5) };
  if (manifest.imageVersion <= 1) throw new FleetInputError(`--manifest ${plan.manifestPath} is image version ${manifest.imageVersion}: the simulated devices run version 1, so it is no upgrade`);
  return { crypto, root, boardId: manifest.boardId, factory, ...keys, updates: [update], layout: { slotBlocks: slotBlocksFor([factory, image]), outboxBlocks } };
}

/** A read-only FlashPartition over bytes (to read an image's app description). */
function memoryFlash(bytes: Uint8Array): FlashPartition {
  const blocks = Math.ceil(bytes.length / RUNTIME_BLOCK);
  const data = new Uint8Array(blocks * RUNTIME_BLOCK).fill(0xff);
  data.set(bytes);
  const status = Object.freeze({ size: data.length, blockLength: RUNTIME_BLOCK, blocks, writeAlign: 1, eraseValue: 0xff });
  return {
    status: () => status,
    read: (offset, target) => target.set(data.subarray(offset, offset + target.length)),
    write: () => {
      throw new Error('read-only');
    },
    eraseBlock: () => {
      throw new Error('read-only');
    },
  };
}

/** The factory: every store formatted as `holdfast provision` formats them (tools/provision/factory-stores.ts), the fleet's root in the trust store, the factory image in ota_0. */
export function provisionRuntimeFlash(flash: FlashPartition, fw: FleetFirmware): void {
  const p = partitionsOf(flash, fw.layout);
  formatStores(p, { crypto: fw.crypto, root: fw.root });
  provisionDevice({ otadata: p.otadata, slots: [p.ota0, p.ota1] }, fw.factory);
}
