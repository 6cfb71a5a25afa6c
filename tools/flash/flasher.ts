/**
 * Writing a board's flash over a serial port through esptool-js 0.7.0,
 * talking to the chip's ROM loader directly (no stub upload: what esptool
 * calls --no-stub), as `holdfast flash` does:
 *
 *   1. open the port at 115200, reset into download mode (DTR/RTS), SYNC;
 *   2. identify the chip by the magic register (READ_REG 0x40001000) and
 *      refuse a chip other than the board's;
 *   3. SPI_ATTACH (8 bytes, as the ROM wants), SPI_SET_PARAMS (flash size);
 *   4. CHANGE_BAUDRATE when --baud differs from 115200;
 *   5. with --erase-data only: erase every data partition but otadata
 *      (FLASH_BEGIN with no blocks: the ROM erases at BEGIN; ERASE_REGION is
 *      a stub-only command);
 *   6. write, in address order, the bootloader, the partition table
 *      (partition-table.ts), otadata as ota_data_initial.bin (all 0xFF: ESP-IDF's
 *      gen_empty_partition.py) and the app into ota_0, each as a compressed
 *      download (FLASH_DEFL_BEGIN/DATA: zlib, 1 KiB packets as the ROM takes);
 *   7. check each region with SPI_FLASH_MD5 (unless verify is off);
 *   8. hard reset (RTS), close the port.
 *
 * What goes where is decided before the port is opened (plan.ts).
 *
 * Where esptool-js did not fit the ROM path, the commands are sent through its
 * checkCommand: SPI_ATTACH (its flashSpiAttach sends 4 bytes), SPI_SET_PARAMS
 * (absent), FLASH_BEGIN for an erase (it sends a 5th word to every chip),
 * and SPI_FLASH_MD5 (its flashMd5sum hex-encodes the ROM's ASCII digits a
 * second time). Chip detection calls its chipFromMagicValue, private in its
 * typings, so the version is pinned exactly.
 *
 * Host tool (Node).
 */
import { createHash } from 'node:crypto';
import { constants as zlibConstants, deflateSync, inflateSync } from 'node:zlib';
import { ESPLoader, type ROM } from 'esptool-js';
import { ROM_BAUD, type EraseRegion, type FlashPlan, type FlashRegion, type RegionName } from './plan.ts';
import { Op, u32le } from './packet.ts';
import { LinkLostError, NodeSerialPort, NodeTransport } from './serial-transport.ts';

export { ROM_BAUD };
/** ROM download packet size (esptool's ESP32ROM.FLASH_WRITE_SIZE; S3 and C3 the same). */
export const ROM_BLOCK = 0x400;

export type FlashFailureKind = 'no-device' | 'wrong-chip' | 'link-lost' | 'refused' | 'verify-failed';

export class FlashFailure extends Error {
  constructor(
    readonly kind: FlashFailureKind,
    message: string,
    /** The flash address the device had confirmed when it failed (link-lost, refused). */
    readonly offsetReached?: number,
  ) {
    super(message);
    Object.defineProperty(this, 'name', { value: 'FlashFailure', enumerable: false, configurable: true, writable: true });
  }
}

export type ProgressEvent =
  | { kind: 'connecting'; port: string }
  | { kind: 'connected'; chip: string }
  | { kind: 'erase'; name: string; offset: number; size: number }
  | { kind: 'write'; region: FlashRegion; done: number; total: number }
  | { kind: 'verified'; region: FlashRegion; md5: string };

export interface FlashOptions {
  readonly port: string;
  readonly baud: number;
  readonly verify: boolean;
  readonly onProgress?: (event: ProgressEvent) => void;
  /** esptool-js's own log lines (debugging). */
  readonly onLog?: (line: string) => void;
  /** Connection attempts (esptool-js: a reset and 5 SYNCs each). */
  readonly attempts?: number;
}

export interface RegionResult {
  readonly name: RegionName;
  readonly offset: number;
  readonly bytes: number;
  readonly md5: string;
  readonly verified: boolean;
}

export interface FlashResult {
  readonly chip: string;
  readonly regions: readonly RegionResult[];
  readonly erased: readonly EraseRegion[];
  readonly baud: number;
  /** False when the port has no modem lines (a pty): DTR/RTS did nothing, the board was not reset. */
  readonly reset: boolean;
}

/** esptool-js CHIP_NAME ("ESP32-S3") as a board chip ("esp32s3"). */
export function boardChipOf(chipName: string): string {
  return chipName.toLowerCase().replace(/-/g, '');
}

interface LoaderInternals {
  chipFromMagicValue(): Promise<ROM>;
  applyDetectedChip(chip: ROM): void;
}

export async function flashDevice(plan: FlashPlan, options: FlashOptions): Promise<FlashResult> {
  const port = new NodeSerialPort(options.port);
  const transport = new NodeTransport(port);
  const log = options.onLog ?? (() => {});
  transport.onTrace = (line) => log(`trace: ${line}`);
  const loader = new ESPLoader({
    transport,
    baudrate: options.baud,
    romBaudrate: ROM_BAUD,
    terminal: { clean: () => {}, writeLine: (line: string) => log(line), write: (text: string) => log(text) },
  });
  const progress = options.onProgress ?? (() => {});
  let stage: { what: string; offset: number; reached: () => number } = { what: 'connecting', offset: 0, reached: () => 0 };
  try {
    progress({ kind: 'connecting', port: options.port });
    try {
      await loader.connect('default_reset', options.attempts ?? 7, false);
    } catch (error) {
      if (error instanceof LinkLostError || port.lost) throw error;
      if (isOpenError(error)) throw error;
      throw new FlashFailure('no-device', `no ESP ROM loader answered (esptool-js: ${messageOf(error)}): expected a board in download mode on this port (hold BOOT, press EN)`);
    }
    const internals = loader as unknown as LoaderInternals;
    if (typeof internals.chipFromMagicValue !== 'function' || typeof internals.applyDetectedChip !== 'function') throw new Error('internal: esptool-js has no chipFromMagicValue/applyDetectedChip (expected esptool-js 0.7.0)');
    stage = { what: 'identifying the chip', offset: 0, reached: () => 0 };
    const rom = await internals.chipFromMagicValue();
    internals.applyDetectedChip(rom);
    const chip = boardChipOf(rom.CHIP_NAME);
    if (chip !== plan.board.chip) throw new FlashFailure('wrong-chip', `the device on ${options.port} is an ${rom.CHIP_NAME}: expected ${plan.board.chip} (board ${plan.board.id}); nothing was written`);
    progress({ kind: 'connected', chip: rom.CHIP_NAME });
    const encryptedWord = rom.CHIP_NAME !== 'ESP32';
    stage = { what: 'attaching the SPI flash', offset: 0, reached: () => 0 };
    await loader.checkCommand('attach SPI flash', Op.SPI_ATTACH, u32le(0, 0));
    await loader.checkCommand('set SPI flash parameters', Op.SPI_SET_PARAMS, u32le(0, plan.board.flashSize, 64 * 1024, 4 * 1024, 256, 0xffff));
    if (options.baud !== ROM_BAUD) {
      stage = { what: `changing to ${options.baud} baud`, offset: 0, reached: () => 0 };
      await loader.changeBaud();
      // esptool-js falls back to 115200 and uploads its stub when the chip stops answering at the new rate;
      // this flasher speaks the ROM protocol only (the stub's MD5 and BEGIN differ).
      if (loader.IS_STUB) throw new FlashFailure('refused', `the board stopped answering at ${options.baud} baud and esptool-js fell back to its stub loader: run again with --baud ${ROM_BAUD}; nothing was written`);
    }
    loader.FLASH_WRITE_SIZE = ROM_BLOCK;
    for (const e of plan.erase) {
      stage = { what: `erasing ${e.name}`, offset: e.offset, reached: () => e.offset };
      progress({ kind: 'erase', name: e.name, offset: e.offset, size: e.size });
      const begin = encryptedWord ? u32le(e.size, 0, ROM_BLOCK, e.offset, 0) : u32le(e.size, 0, ROM_BLOCK, e.offset);
      await loader.checkCommand(`erase ${e.name}`, Op.FLASH_BEGIN, begin, 0, 0, loader.timeoutPerMb(loader.ERASE_REGION_TIMEOUT_PER_MB, e.size));
    }
    const results: RegionResult[] = [];
    for (const region of plan.regions) {
      const data = padTo4(region.data);
      const compressed = new Uint8Array(deflateSync(data, { level: 9 }));
      let acked = 0;
      stage = { what: `writing ${region.what}`, offset: region.offset, reached: () => region.offset + inflatedLength(compressed.subarray(0, acked), data.length) };
      progress({ kind: 'write', region, done: 0, total: data.length });
      const blocks = await loader.flashDeflBegin(data.length, compressed.length, region.offset);
      const blockTimeout = loader.timeoutPerMb(loader.ERASE_WRITE_TIMEOUT_PER_MB, Math.min(data.length, ROM_BLOCK * 1032));
      for (let seq = 0; seq < blocks; seq++) {
        const block = compressed.subarray(seq * ROM_BLOCK, Math.min(compressed.length, (seq + 1) * ROM_BLOCK));
        await loader.flashDeflBlock(block, seq, Math.max(3000, blockTimeout));
        acked += block.length;
        progress({ kind: 'write', region, done: Math.round((data.length * acked) / compressed.length), total: data.length });
      }
      const md5 = createHash('md5').update(data).digest('hex');
      if (options.verify) {
        stage = { what: `verifying ${region.what}`, offset: region.offset, reached: () => region.offset + data.length };
        const reply = await loader.checkCommand('calculate md5sum', Op.SPI_FLASH_MD5, u32le(region.offset, data.length, 0, 0), 0, 32, loader.timeoutPerMb(loader.MD5_TIMEOUT_PER_MB, data.length));
        const device = new TextDecoder().decode(reply as Uint8Array).toLowerCase();
        if (device !== md5) throw new FlashFailure('verify-failed', `${region.what} at 0x${region.offset.toString(16)} reads back with MD5 ${device}, expected ${md5}: the flash does not hold what was sent`, region.offset);
        progress({ kind: 'verified', region, md5 });
      }
      results.push({ name: region.name, offset: region.offset, bytes: data.length, md5, verified: options.verify });
    }
    stage = { what: 'resetting the board', offset: 0, reached: () => 0 };
    await loader.after('hard_reset', false);
    return { chip: rom.CHIP_NAME, regions: results, erased: plan.erase, baud: options.baud, reset: !port.signalsUnsupported };
  } catch (error) {
    if (error instanceof FlashFailure) throw error;
    if (error instanceof LinkLostError || port.lost) {
      const reached = stage.reached();
      throw new FlashFailure('link-lost', `the serial link was lost while ${stage.what} (${port.lostReason || messageOf(error)}); the device had confirmed data up to 0x${reached.toString(16)}; the board is not flashed: reconnect it and run holdfast flash again`, reached);
    }
    if (isOpenError(error)) throw error;
    throw new FlashFailure('refused', `the device failed while ${stage.what}: ${messageOf(error)}; the board is not flashed`, stage.reached());
  } finally {
    await closeQuietly(transport, port);
  }
}

async function closeQuietly(transport: NodeTransport, port: NodeSerialPort): Promise<void> {
  try {
    if (port.lost) await port.close();
    else await transport.disconnect();
  } catch {
    await port.close().catch(() => {});
  }
}

/** Bytes the ROM has written after inflating the acknowledged part of the stream. */
function inflatedLength(prefix: Uint8Array, max: number): number {
  if (prefix.length === 0) return 0;
  try {
    return Math.min(max, inflateSync(prefix, { finishFlush: zlibConstants.Z_SYNC_FLUSH }).length);
  } catch {
    return 0;
  }
}

/** esptool pads every image to a multiple of 4 bytes with 0xFF. */
export function padTo4(data: Uint8Array): Uint8Array {
  if (data.length % 4 === 0) return data;
  const out = new Uint8Array(data.length + (4 - (data.length % 4))).fill(0xff);
  out.set(data);
  return out;
}

function messageOf(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).replace(/\s*\n\s*/g, ' ').trim();
}

/** Opening the port failed (no such device, permission): the caller names the path. */
export function isOpenError(error: unknown): error is Error & { code?: string } {
  return error instanceof Error && /^(Error: )?(Error: )?(No such file|ENOENT|EACCES|Permission denied|EBUSY|Resource busy|Error Resource temporarily unavailable Cannot lock port|cannot open)/i.test(error.message);
}
