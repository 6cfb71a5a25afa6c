/**
 * What `holdfast flash --factory <dir> --device <id>` writes beside the app:
 * the files a provisioning run (provision.ts) wrote for one device, read
 * back from its manifest and checked before any port is opened: manifest
 * format, board, the device listed, each file's size and SHA-256, and each
 * region being exactly one of the board's data partitions (label, offset,
 * size). Nothing read here is printed (the hf_prov image holds the device
 * secret and private key).
 *
 * Host tool (Node).
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Board } from '../boards/board.ts';
import { CliError } from '../cli/errors.ts';
import { readInput, readTextInput } from '../cli/files.ts';
import { MANIFEST_FILE, MANIFEST_FORMAT, type ProvisionManifest } from './provision.ts';

export interface FactoryRegion {
  readonly label: string;
  readonly offset: number;
  readonly data: Uint8Array;
}

export interface DeviceFactory {
  readonly deviceId: string;
  /** The stores and the device's hf_prov, in address order. */
  readonly regions: readonly FactoryRegion[];
  readonly flashEncryption: string;
}

const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;

/** The regions of device `deviceId` from the provisioning run in `dir`, for `board`. Throws CliError. */
export function loadDeviceFactory(dir: string, deviceId: string, board: Board): DeviceFactory {
  const path = join(dir, MANIFEST_FILE);
  const text = readTextInput(path, 'the manifest of a provisioning run (holdfast provision --out)', MAX_MANIFEST_BYTES);
  let manifest: ProvisionManifest;
  try {
    manifest = JSON.parse(text) as ProvisionManifest;
  } catch {
    throw new CliError('is not JSON: expected the manifest holdfast provision writes', { file: path, code: 'invalid-file' });
  }
  if (manifest === null || typeof manifest !== 'object' || manifest.format !== MANIFEST_FORMAT) {
    const found = manifest !== null && typeof manifest === 'object' ? JSON.stringify(manifest.format) : 'no format';
    throw new CliError(`format ${found}: expected ${MANIFEST_FORMAT} (a run of this holdfast's provision, which writes the store images)`, { file: path, field: 'format', code: 'invalid-file' });
  }
  if (manifest.board !== board.id) throw new CliError(`is a run for board ${JSON.stringify(manifest.board)}: expected ${board.id} (--board)`, { file: path, field: 'board', code: 'invalid-file' });
  const device = Array.isArray(manifest.devices) ? manifest.devices.find((d) => d.deviceId === deviceId) : undefined;
  if (device === undefined) throw new CliError(`does not list device ${deviceId}: expected one of the run's devices (--device)`, { file: path, field: 'devices', code: 'invalid-file' });
  const stores = manifest.factory?.stores;
  if (!Array.isArray(stores)) throw new CliError('has no factory stores: expected the manifest holdfast provision writes', { file: path, field: 'factory', code: 'invalid-file' });
  const wanted = [
    ...stores.map((s) => ({ label: s.label, offset: s.offset, size: s.size, file: s.file, sha256: s.sha256, what: `the factory image of ${s.label}` })),
    { label: manifest.partition.label, offset: manifest.partition.offset, size: manifest.partition.size, file: device.file, sha256: device.sha256, what: `the provisioning image of ${deviceId}` },
  ];
  const regions: FactoryRegion[] = [];
  for (const w of wanted) {
    if (typeof w.file !== 'string' || w.file.includes('/') || w.file.includes('\\') || w.file.startsWith('.')) throw new CliError(`names file ${JSON.stringify(w.file)}: expected a file name inside the run's folder`, { file: path, code: 'invalid-file' });
    const partition = board.partitions.find((p) => p.name === w.label);
    if (partition === undefined || partition.type !== 'data' || partition.offset !== w.offset || partition.size !== w.size) {
      throw new CliError(`puts ${w.label} at 0x${Number(w.offset).toString(16)} (${w.size} bytes): expected the board's data partition ${partition === undefined ? '(it has none by that label)' : `at 0x${partition.offset.toString(16)} (${partition.size} bytes)`}`, { file: path, code: 'invalid-file' });
    }
    const file = join(dir, w.file);
    const data = readInput(file, w.what, w.size);
    if (data.length !== w.size) throw new CliError(`is ${data.length} bytes: expected ${w.size}, the size of ${w.label}`, { file, code: 'invalid-file' });
    if (createHash('sha256').update(data).digest('hex') !== w.sha256) throw new CliError('does not match the SHA-256 the manifest lists for it: expected the file the provisioning run wrote', { file, code: 'invalid-file' });
    regions.push({ label: w.label, offset: w.offset, data });
  }
  regions.sort((a, b) => a.offset - b.offset);
  return { deviceId, regions, flashEncryption: String(manifest.factory.flashEncryption) };
}
