/**
 * What `holdfast flash` writes where (docs/spec/partition-table.md, "What
 * holdfast flash writes"), checked against the board's layout before any
 * port is opened. No serial or native dependency: the CLI loads the flasher
 * (esptool-js, serialport's native binding) only when it flashes.
 */
import { PROVISIONING_PARTITION, type Board, type BoardPartition } from '../boards/board.ts';
import { encodeBoardPartitionTable } from './partition-table.ts';

/** The ROM loader's baud rate after reset (esptool docs, "Initial Synchronisation"). */
export const ROM_BAUD = 115200;

/** ESP image magic byte (esptool docs, "Firmware Image Format"). */
export const ESP_IMAGE_MAGIC = 0xe9;

/** The fixed regions, or a data partition's label (the factory's stores and hf_prov, with --factory). */
export type RegionName = 'bootloader' | 'partition-table' | 'otadata' | 'app' | `hf_${string}`;

/** A data partition's whole contents from a provisioning run (tools/provision/factory-load.ts). */
export interface DataRegion {
  readonly label: string;
  readonly offset: number;
  readonly data: Uint8Array;
}

export interface FlashRegion {
  readonly name: RegionName;
  /** What it is, for messages ("the app image (ota_0)"). */
  readonly what: string;
  readonly offset: number;
  readonly data: Uint8Array;
}

export interface EraseRegion {
  readonly name: string;
  readonly offset: number;
  readonly size: number;
}

export interface FlashPlan {
  readonly board: Board;
  readonly regions: readonly FlashRegion[];
  /** Data partitions erased first (only with eraseData). */
  readonly erase: readonly EraseRegion[];
}

export class FlashPlanError extends Error {
  constructor(message: string, readonly field: string) {
    super(message);
    Object.defineProperty(this, 'name', { value: 'FlashPlanError', enumerable: false, configurable: true, writable: true });
  }
}

function partition(board: Board, name: string): BoardPartition {
  const p = board.partitions.find((q) => q.name === name);
  if (p === undefined) throw new FlashPlanError(`board ${board.id} has no ${name} partition`, '--board');
  return p;
}

/** What to write where, checked against the board's layout before the port is opened. */
export function planFlash(board: Board, input: { bootloader: Uint8Array; app: Uint8Array; eraseData: boolean; data?: readonly DataRegion[] }): FlashPlan {
  const bootloaderRoom = board.partitionTableOffset - board.bootloaderOffset;
  if (input.bootloader.length === 0) throw new FlashPlanError('is empty: expected an ESP-IDF bootloader image', '--bootloader');
  if (input.bootloader.length > bootloaderRoom) throw new FlashPlanError(`is ${input.bootloader.length} bytes: expected at most ${bootloaderRoom} (0x${board.bootloaderOffset.toString(16)}..0x${board.partitionTableOffset.toString(16)} on ${board.chip})`, '--bootloader');
  if (input.bootloader[0] !== ESP_IMAGE_MAGIC) throw new FlashPlanError(`starts with 0x${input.bootloader[0].toString(16).padStart(2, '0')}: expected an ESP image (magic 0xe9), the bootloader.bin ESP-IDF builds`, '--bootloader');
  const ota0 = partition(board, 'ota_0');
  const otadata = partition(board, 'otadata');
  if (input.app.length === 0) throw new FlashPlanError('is empty: expected an app image', '--app');
  if (input.app.length > ota0.size) throw new FlashPlanError(`is ${input.app.length} bytes: expected at most ${ota0.size}, the size of ota_0 on ${board.id}`, '--app');
  const regions: FlashRegion[] = [
    { name: 'bootloader', what: 'the bootloader', offset: board.bootloaderOffset, data: input.bootloader },
    { name: 'partition-table', what: 'the partition table', offset: board.partitionTableOffset, data: encodeBoardPartitionTable(board) },
    { name: 'otadata', what: 'otadata (ota_data_initial.bin, erased)', offset: otadata.offset, data: new Uint8Array(otadata.size).fill(0xff) },
    { name: 'app', what: 'the app image (ota_0)', offset: ota0.offset, data: input.app },
  ];
  // With --factory: each store and hf_prov whole, as the provisioning run made them (the ROM erases their sectors at BEGIN).
  // hf_prov last: a flash cut short on a fresh chip leaves the device "not provisioned" (it starts nothing), never an identity over half-made stores.
  const data = [...(input.data ?? [])].sort((a, b) => Number(a.label === PROVISIONING_PARTITION) - Number(b.label === PROVISIONING_PARTITION) || a.offset - b.offset);
  const written = new Set<string>();
  for (const d of data) {
    const p = board.partitions.find((q) => q.name === d.label);
    if (p === undefined || p.type !== 'data' || !d.label.startsWith('hf_') || p.offset !== d.offset || p.size !== d.data.length) throw new FlashPlanError(`${d.label} at 0x${d.offset.toString(16)} (${d.data.length} bytes) is not one of ${board.id}'s holdfast data partitions`, '--factory');
    if (written.has(d.label)) throw new FlashPlanError(`${d.label} twice`, '--factory');
    written.add(d.label);
    regions.push({ name: d.label as `hf_${string}`, what: d.label === PROVISIONING_PARTITION ? 'the provisioning record (hf_prov)' : `the factory image of ${d.label}`, offset: d.offset, data: d.data });
  }
  // The provisioning record (hf_prov) is the device's identity: erasing it would leave the device unprovisioned, so --erase-data keeps it
  // (--factory writes it: that is asking). A partition written anyway is not erased first.
  const erase = input.eraseData ? board.partitions.filter((p) => p.type === 'data' && p.name !== 'otadata' && p.name !== PROVISIONING_PARTITION && !written.has(p.name)).map((p) => ({ name: p.name, offset: p.offset, size: p.size })) : [];
  return { board, regions, erase };
}

