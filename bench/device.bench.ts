/**
 * The device's RAM against each board's budget (issue 18, "Memory";
 * docs/design/ram-budget.md): the XS heap after each phase of a device's
 * life, one phase after the other in one XS machine with the built-ins
 * frozen as on the device (bench/device-guest.ts), and what Ed25519
 * verification keeps and costs for each base-point window.
 *
 * What is measured is XS 13.3's live slot count after gc, minus the count
 * with the firmware bundle loaded (on the device a Moddable build preloads
 * that code into flash). Not measured: chunk bytes (xsnap-worker reports
 * slots only) and the peak between two collections. So the targets are the
 * slot budgets of boards/<id>/board.json `jsHeap` (Moddable's heap.initial
 * less the margin), which is why they keep a margin.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as ed from '@noble/ed25519';
import { createNobleCrypto, configureEd25519 } from '../firmware/security/noble-crypto.ts';
import { commandKeyId, ed25519Signer, sealCommand } from '../firmware/security/envelope-command.ts';
import { COMMAND_POLICY, encodeCommandPayload } from '../firmware/runtime/commands.ts';
import { BOARD, manifestFields, signedManifest, SLOT_SIZE, testImage, testWorld } from '../test/update/manifest-fixtures.ts';
import { listBoards, loadBoard, type Board } from '../tools/boards/board.ts';
import { bundleForXs } from '../tools/xs/bundle.ts';
import { HostServices } from '../tools/xs/host-services.ts';
import { fromUtf8, utf8 } from '../tools/xs/wire.ts';
import { spawnFrozenWorker } from '../tools/xs/suite-runner.ts';
import type { XsMeter } from '../tools/xs/xsnap-worker.ts';
import type { DeviceBenchRequest } from './device-guest.ts';
import type { BenchGroup, Figure } from './figures.ts';

/** The phases measured, in the order a device goes through them. */
export const DEVICE_PHASES = ['boot', 'drain', 'update', 'command'] as const;
export type DevicePhase = (typeof DEVICE_PHASES)[number];

const PHASE_LABEL: Record<DevicePhase, string> = {
  boot: 'boot: counter, outbox (with its backlog), audit log, trust store (root loaded and checked), replay store opened over their partitions',
  drain: 'after draining the outbox backlog (read + ack of every record), the stores still open',
  update: 'after an update check: manifest signature (Ed25519) under the stored root + SHA-256 of the image',
  command: 'after the command processor opened its journal and handled one Ed25519-signed physical command',
};

/** Outbox backlog at boot: records and payload bytes. */
export const BACKLOG_RECORDS = 200;
const RECORD_BYTES = 64;
/** The image the manifest names (hashed in XS in pure JavaScript: kept small). */
const IMAGE_LENGTH = 16 * 1024;
const DEVICE_ID = Uint8Array.of(0xd1, 0, 0, 0, 0, 0, 0, 0x0e);
const COMMAND_SECRET = new Uint8Array(32).fill(0x5d);
/** Verifications per cost sample: the per-verify compute is (c(1 + N) - c(1)) / N. */
const VERIFY_SAMPLE = 4;

/** Windows whose cost the trade-off table shows; 'noble' is @noble/ed25519's own verify (its fixed 8-bit window table). */
export const WINDOW_CANDIDATES: readonly (number | 'noble')[] = Object.freeze([0, 2, 3, 4, 5, 6, 8, 'noble']);

export interface PhaseFigures {
  /** Live slots after gc, the whole machine. */
  liveSlots: number;
  /** liveSlots minus the loaded bundle's: what the device keeps in RAM at this point. */
  deviceSlots: number;
  /** XS compute of the phase. */
  compute: number;
}

export interface DeviceMeasurement {
  /** undefined: the firmware's default. */
  baseWindow: number | undefined;
  bundleSlots: number;
  phases: Record<DevicePhase, PhaseFigures>;
  /** The largest deviceSlots over the phases. */
  highWaterSlots: number;
}

export interface WindowMeasurement {
  window: number | 'noble';
  /** Live slots a first verify left behind (the table), after gc. */
  keptSlots: number;
  /** Compute of the first verify (builds the table, if any). */
  firstVerifyCompute: number;
  /** Compute per verify once the table exists. */
  computePerVerify: number;
}

function hex(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16);
  return out;
}

/** The signed inputs, made on the Node side. */
function inputs() {
  const crypto = createNobleCrypto();
  configureEd25519();
  const world = testWorld(crypto);
  const image = testImage(IMAGE_LENGTH);
  const manifest = signedManifest(manifestFields(crypto, image), [world.targetsKeys[0]]);
  const publicKey = ed.getPublicKey(COMMAND_SECRET);
  const keyId = commandKeyId(crypto, publicKey);
  const row = COMMAND_POLICY.find((r) => r.name === 'set-output');
  if (row === undefined) throw new Error('no set-output row in COMMAND_POLICY');
  const command = sealCommand(encodeCommandPayload(row, { target: 0, value: 1 }), { deviceId: DEVICE_ID, counter: { next: () => 1 }, keyId, sign: ed25519Signer(COMMAND_SECRET) });
  const message = Uint8Array.of(0x68, 0x66);
  return { world, manifest, publicKey, keyId, command, message, signature: ed.sign(message, COMMAND_SECRET) };
}

interface Guest {
  call(request: DeviceBenchRequest): { reply: Record<string, unknown>; meter: XsMeter };
  close(): void;
}

/** bench/device-guest.ts in a fresh XS worker, bundle loaded, then the built-ins frozen as a Moddable device build leaves them. */
async function openDeviceGuest(): Promise<Guest> {
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-device-'));
  let code: string;
  try {
    const entry = join(dir, 'entry.ts');
    writeFileSync(entry, `import { serveDeviceBench } from ${JSON.stringify(resolve('bench/device-guest.ts'))};\nserveDeviceBench();\n`);
    code = await bundleForXs(entry);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const worker = spawnFrozenWorker(code, new HostServices());
  return {
    call(request) {
      const { reply, meter } = worker.command(utf8(JSON.stringify(request)));
      return { reply: JSON.parse(fromUtf8(reply)) as Record<string, unknown>, meter };
    },
    close: () => worker.close(),
  };
}

/**
 * Runs the device's phases in one XS machine, the device's Crypto with
 * `baseWindow` (undefined: createNobleCrypto's default, what the firmware
 * uses), and returns the live slots after each.
 */
export async function measureDevice(baseWindow?: number): Promise<DeviceMeasurement> {
  const input = inputs();
  const guest = await openDeviceGuest();
  try {
    const bundleSlots = guest.call({ op: 'baseline' }).meter.currentHeapCount;
    guest.call({ op: 'provision', baseWindow, rootHex: hex(input.world.root1Bytes), records: BACKLOG_RECORDS, recordBytes: RECORD_BYTES });
    const requests: Record<DevicePhase, DeviceBenchRequest> = {
      boot: { op: 'boot' },
      drain: { op: 'drain' },
      update: { op: 'update', manifestHex: hex(input.manifest), imageLength: IMAGE_LENGTH, boardId: BOARD, slotSize: SLOT_SIZE },
      command: { op: 'command', deviceIdHex: hex(DEVICE_ID), commandKeyId: input.keyId, commandPublicKeyHex: hex(input.publicKey), commandHex: hex(input.command) },
    };
    const phases = {} as Record<DevicePhase, PhaseFigures>;
    for (const phase of DEVICE_PHASES) {
      const { reply, meter } = guest.call(requests[phase]);
      if (phase === 'boot' && reply.queued !== BACKLOG_RECORDS) throw new Error(`boot: ${JSON.stringify(reply)}`);
      if (phase === 'drain' && reply.drained !== BACKLOG_RECORDS) throw new Error(`drain: ${JSON.stringify(reply)}`);
      if (phase === 'command' && (reply.status !== 'applied' || reply.applied !== 1)) throw new Error(`command: ${JSON.stringify(reply)}`);
      phases[phase] = { liveSlots: meter.currentHeapCount, deviceSlots: meter.currentHeapCount - bundleSlots, compute: meter.compute };
    }
    const highWaterSlots = Math.max(...DEVICE_PHASES.map((p) => phases[p].deviceSlots));
    return { baseWindow, bundleSlots, phases, highWaterSlots };
  } finally {
    guest.close();
  }
}

/** What one verifier keeps and costs, in a fresh machine: a first verify, then VERIFY_SAMPLE more. */
export async function measureWindow(window: number | 'noble'): Promise<WindowMeasurement> {
  const input = inputs();
  const guest = await openDeviceGuest();
  try {
    guest.call({ op: 'provision', baseWindow: 0, rootHex: hex(input.world.root1Bytes), records: 0 });
    const before = guest.call({ op: 'verifier', baseWindow: window }).meter.currentHeapCount;
    const request: DeviceBenchRequest = { op: 'verify', signatureHex: hex(input.signature), messageHex: hex(input.message), publicKeyHex: hex(input.publicKey) };
    const first = guest.call({ ...request, count: 1 });
    if (first.reply.valid !== 1) throw new Error(`window ${window}: the signature did not verify`);
    const one = guest.call({ ...request, count: 1 }).meter.compute;
    const many = guest.call({ ...request, count: 1 + VERIFY_SAMPLE });
    if (many.reply.valid !== 1 + VERIFY_SAMPLE) throw new Error(`window ${window}: ${JSON.stringify(many.reply)}`);
    return {
      window,
      keptSlots: first.meter.currentHeapCount - before,
      firstVerifyCompute: first.meter.compute,
      computePerVerify: Math.round((many.meter.compute - one) / VERIFY_SAMPLE),
    };
  } finally {
    guest.close();
  }
}

/** Every board, loaded and validated. */
export function boards(): Board[] {
  return listBoards().map((id) => loadBoard(id));
}

function windowKey(w: number | 'noble'): string {
  return w === 'noble' ? 'noble' : `w${w}`;
}

export const deviceBench: BenchGroup = {
  title: "Device RAM: the XS heap against each board's budget",
  prefix: 'device.',
  workload:
    'One XS 13.3 machine, built-ins frozen as on the device, the firmware bundle loaded (what a Moddable build preloads into flash: subtracted), flash on the Node side. ' +
    `Phases in order, each keeping what it opened: boot (counter, outbox with ${BACKLOG_RECORDS} queued ${RECORD_BYTES}-byte records, audit log, trust store with a root of 3+3 keys loaded, replay store), ` +
    `drain (read and ack the ${BACKLOG_RECORDS} records), update (manifest signed by one targets key checked under the root, SHA-256 of a ${IMAGE_LENGTH / 1024} KiB image), ` +
    'command (command processor opens its journal, handles one signed set-output command). Value: live slots after gc minus the loaded bundle; target: the board’s jsHeap budget in slots (Moddable heap.initial less the margin, board.json). ' +
    `Ed25519: per base window, a fresh machine verifies once (slots kept after gc, compute including any table build), then ${VERIFY_SAMPLE} more (compute per verify). Chunk bytes and the peak between collections are not measured (xsnap reports live slots only).`,
  async run(progress) {
    const figures: Figure[] = [];
    progress('  device: phases in XS (the firmware default: no base table)');
    const device = await measureDevice();
    figures.push({ name: 'device.heap.bundle', value: device.bundleSlots, unit: 'slots', label: 'XS live slots with the firmware bundle loaded and the built-ins frozen (preloaded into flash on the device; subtracted below)', kind: 'count' });
    for (const board of boards()) {
      for (const phase of DEVICE_PHASES) {
        figures.push({
          name: `device.heap.${phase}.${board.id}`,
          value: device.phases[phase].deviceSlots,
          unit: 'slots',
          label: `XS live slots the device keeps ${PHASE_LABEL[phase]} (${(device.phases[phase].deviceSlots * 16).toLocaleString('en-US')} bytes at 16 per slot)`,
          kind: 'count',
          target: `≤ ${board.jsHeap.budgetSlots.toLocaleString('en-US')} (${board.id}: heap.initial ${board.jsHeap.slots.toLocaleString('en-US')} slots less ${board.jsHeap.marginPercent}%)`,
          limit: board.jsHeap.budgetSlots,
          direction: 'max',
        });
      }
    }
    for (const phase of DEVICE_PHASES) {
      figures.push({ name: `device.compute.${phase}`, value: device.phases[phase].compute, unit: 'compute', label: `XS compute of the phase: ${PHASE_LABEL[phase]}`, kind: 'count' });
    }
    for (const w of WINDOW_CANDIDATES) {
      progress(`  device: Ed25519 verify, base window ${w}`);
      const m = await measureWindow(w);
      const what = w === 'noble' ? "@noble/ed25519's own verify (fixed 8-bit window, 4,224 points in its module state)" : w === 0 ? 'no base table (Straus-Shamir), the firmware default' : `a ${w}-bit base window table in the verifier instance`;
      const key = windowKey(w);
      figures.push(
        { name: `device.ed25519.${key}.keptSlots`, value: m.keptSlots, unit: 'slots', label: `XS live slots left after the first verify, ${what}`, kind: 'count' },
        { name: `device.ed25519.${key}.firstVerifyCompute`, value: m.firstVerifyCompute, unit: 'compute', label: `XS compute of the first verify (table build included), ${what}`, kind: 'count' },
        { name: `device.ed25519.${key}.computePerVerify`, value: m.computePerVerify, unit: 'compute', label: `XS compute per verify once built, ${what}`, kind: 'count' },
      );
    }
    return figures;
  },
};
