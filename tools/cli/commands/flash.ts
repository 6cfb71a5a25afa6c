/**
 * `holdfast flash --board <id> --port PATH --bootloader FILE --app FILE`:
 * write a board's bootloader, partition table, otadata and app (into ota_0)
 * over a serial port through esptool-js, talking to the chip's ROM loader,
 * and check each region with SPI_FLASH_MD5 (tools/flash/flasher.ts).
 * `--erase-data` erases the data partitions first; it is never implied.
 * `--factory <dir> --device <id>` also writes, from a provisioning run
 * (holdfast provision --out), the factory images of the runtime's stores
 * and the device's hf_prov record, each checked against the run's manifest
 * (tools/provision/factory-load.ts) before the port is opened.
 * Progress goes to stderr: a bar on a terminal, a line per quarter
 * otherwise. A run that fails reports nothing as flashed.
 */
import { statSync } from 'node:fs';
import type { Command } from 'commander';
import { BoardError, listBoards, loadBoard, type Board } from '../../boards/board.ts';
import { FlashPlanError, planFlash, ROM_BAUD } from '../../flash/plan.ts';
import type { FlashResult, ProgressEvent } from '../../flash/flasher.ts';
import { parseInteger } from '../../keys/cli-options.ts';
import { CliError, EnvironmentError, UsageError } from '../errors.ts';
import { ExitCode } from '../exit-codes.ts';
import { readInput } from '../files.ts';
import { loadDeviceFactory } from '../../provision/factory-load.ts';

interface FlashFlags {
  board: string;
  port: string;
  baud: number;
  bootloader?: string;
  app: string;
  eraseData?: boolean;
  factory?: string;
  device?: string;
  verify: boolean;
  json?: boolean;
}

/** Baud rates the ESP32 UART and common USB-UART bridges take (esptool's usual choices). */
export const DEFAULT_BAUD = 460800;

export function registerFlash(program: Command): void {
  program
    .command('flash')
    .description("write a board's bootloader, partition table, otadata and app (into ota_0) over a serial port through the chip's ROM loader, then check each with SPI_FLASH_MD5")
    .requiredOption('--board <id>', 'board id (boards/<id>): chip, flash size and partition layout')
    .requiredOption('--port <path>', 'serial device of the board (e.g. /dev/ttyUSB0)')
    .option('--baud <n>', `baud rate after connecting at ${ROM_BAUD}, 9600..3000000`, parseInteger(9600, 3_000_000), DEFAULT_BAUD)
    .option('--bootloader <file>', "ESP-IDF second-stage bootloader for the board's chip (build/bootloader/bootloader.bin of idf.py build); required")
    .requiredOption('--app <file>', 'app image to write into ota_0')
    .option('--erase-data', 'also erase every data partition except otadata and the provisioning record hf_prov (nvs, phy_init and the hf_* stores the run does not write): never implied')
    .option('--factory <dir>', 'a provisioning run\'s folder (holdfast provision --out): also write the factory images of the runtime\'s stores and the --device\'s hf_prov record, checked against its manifest.json')
    .option('--device <id>', 'with --factory: the device (16 hex digits) whose hf_prov record to write')
    .option('--no-verify', 'skip the MD5 check of each region after writing it')
    .option('--json', 'print the result as JSON')
    .action(async (flags: FlashFlags) => {
      const board = boardOf(flags.board);
      if (flags.bootloader === undefined) {
        throw new UsageError(`missing: holdfast does not build the ESP-IDF bootloader; give the bootloader.bin that ESP-IDF builds for ${board.chip} (idf.py set-target ${board.chip} && idf.py bootloader: build/bootloader/bootloader.bin), written at 0x${board.bootloaderOffset.toString(16)}`, { field: '--bootloader' });
      }
      const ota0 = board.partitions.find((p) => p.name === 'ota_0');
      const bootloader = readInput(flags.bootloader, 'an ESP-IDF bootloader image (bootloader.bin)', board.partitionTableOffset - board.bootloaderOffset);
      const app = readInput(flags.app, `an app image for ota_0 (at most ${ota0?.size ?? 0} bytes on ${board.id})`, ota0?.size ?? 0);
      if ((flags.factory === undefined) !== (flags.device === undefined)) throw new UsageError('--factory and --device go together: the run\'s folder and the device of it to flash', { field: flags.factory === undefined ? '--factory' : '--device' });
      if (flags.device !== undefined && !/^[0-9a-f]{16}$/.test(flags.device)) throw new UsageError(`${JSON.stringify(flags.device)}: expected a device id, 16 lowercase hex digits`, { field: '--device' });
      const factory = flags.factory === undefined || flags.device === undefined ? undefined : loadDeviceFactory(flags.factory, flags.device, board);
      let plan;
      try {
        plan = planFlash(board, { bootloader, app, eraseData: flags.eraseData === true, ...(factory !== undefined ? { data: factory.regions } : {}) });
      } catch (error) {
        if (error instanceof FlashPlanError) throw new CliError(error.message, { code: 'invalid-file', file: error.field === '--bootloader' ? flags.bootloader : error.field === '--app' ? flags.app : error.field === '--factory' ? flags.factory : undefined, field: error.field === '--board' ? '--board' : undefined });
        throw error;
      }
      const port = statSync(flags.port, { throwIfNoEntry: false });
      if (port === undefined) throw new CliError('does not exist: expected the serial device of the board (--port)', { file: flags.port, code: 'not-found' });
      if (port.isDirectory()) throw new CliError('is a directory: expected the serial device of the board (--port)', { file: flags.port, code: 'not-a-file' });
      // Loaded only here: esptool-js and serialport's native binding (loaded at import) cost every other command nothing.
      let flasher: typeof import('../../flash/flasher.ts');
      try {
        flasher = await import('../../flash/flasher.ts');
      } catch (error) {
        throw new EnvironmentError(`the serial flasher does not load (${(error instanceof Error ? error.message : String(error)).split('\n')[0]}): expected serialport's prebuilt binding for ${process.platform}-${process.arch} and esptool-js; run npm ci`);
      }
      const progress = new ProgressReporter(process.stderr);
      let result: FlashResult;
      try {
        result = await flasher.flashDevice(plan, { port: flags.port, baud: flags.baud, verify: flags.verify, onProgress: (event) => progress.report(event) });
      } catch (error) {
        progress.end();
        throw toFlashError(error, flags.port, flasher);
      }
      progress.end();
      if (flags.json) {
        console.log(JSON.stringify({ ok: true, board: board.id, chip: result.chip, port: flags.port, baud: result.baud, verified: flags.verify, reset: result.reset, regions: result.regions, erased: result.erased.map((e) => e.name), device: factory?.deviceId ?? null }, null, 2));
      } else {
        const regions = result.regions.map((r) => `${r.name} at 0x${r.offset.toString(16)} (${r.bytes} bytes)`).join(', ');
        const erased = result.erased.length > 0 ? `; erased ${result.erased.map((e) => e.name).join(', ')}` : '; data partitions left as they were';
        const device = factory === undefined ? '' : `; device ${factory.deviceId} with its run's store images (flash encryption ${factory.flashEncryption})`;
        console.log(`flashed ${board.id} (${result.chip}) on ${flags.port}: ${regions}${erased}${device}; ${flags.verify ? 'each region verified (MD5)' : 'not verified (--no-verify)'}; ${result.reset ? 'board reset (RTS)' : 'the port has no modem lines: reset the board by hand'}`);
      }
      process.exitCode = ExitCode.OK;
    });
}

function boardOf(id: string): Board {
  try {
    return loadBoard(id);
  } catch (error) {
    if (error instanceof BoardError && error.code === 'unknown-board') throw new UsageError(`${JSON.stringify(id)} is not a board: expected one of ${safeBoards()}`, { field: '--board' });
    if (error instanceof BoardError) throw new CliError(error.message, { code: 'invalid-file', file: error.file, field: error.field });
    throw error;
  }
}

function safeBoards(): string {
  try {
    return listBoards().join(', ');
  } catch {
    return 'a folder of boards/';
  }
}

function toFlashError(error: unknown, port: string, flasher: typeof import('../../flash/flasher.ts')): CliError {
  if (error instanceof flasher.FlashFailure) return new CliError(error.message, { code: 'failed', file: port });
  if (flasher.isOpenError(error)) {
    const message = error.message.replace(/^(Error: )+/, '');
    const code = /EACCES|Permission/i.test(message) ? 'permission' : /ENOENT|No such file/i.test(message) ? 'not-found' : 'io';
    return new CliError(`cannot open (${message}): expected a serial device this user may open${code === 'permission' ? ' (on Debian: add yourself to the dialout group)' : ''}`, { file: port, code });
  }
  if (error instanceof CliError) return error;
  return new CliError(error instanceof Error ? error.message : String(error), { file: port });
}

/**
 * Progress on stderr: on a terminal one bar redrawn in place per region; on
 * anything else one line per region start and per quarter, so logs stay short.
 */
class ProgressReporter {
  private readonly tty: boolean;
  private lastQuarter = -1;
  private drawn = false;

  constructor(private readonly out: NodeJS.WriteStream) {
    this.tty = out.isTTY === true;
  }

  report(event: ProgressEvent): void {
    switch (event.kind) {
      case 'connecting':
        this.line(`flash: connecting to ${event.port}…`);
        break;
      case 'connected':
        this.line(`flash: ${event.chip} in download mode`);
        break;
      case 'erase':
        this.line(`flash: erasing ${event.name} at 0x${event.offset.toString(16)} (${event.size} bytes)`);
        break;
      case 'write': {
        const fraction = event.total === 0 ? 1 : event.done / event.total;
        if (event.done === 0) this.lastQuarter = -1;
        if (this.tty) {
          const width = 30;
          const filled = Math.round(fraction * width);
          this.out.write(`\r\x1b[2Kflash: ${event.region.name.padEnd(15)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.floor(fraction * 100)).padStart(3)}% of ${event.total} bytes at 0x${event.region.offset.toString(16)}`);
          this.drawn = true;
        } else {
          const quarter = Math.floor(fraction * 4);
          if (quarter !== this.lastQuarter) {
            this.lastQuarter = quarter;
            this.out.write(`flash: writing ${event.region.name} at 0x${event.region.offset.toString(16)}: ${quarter * 25}% of ${event.total} bytes\n`);
          }
        }
        break;
      }
      case 'verified':
        this.line(`flash: ${event.region.name} verified (MD5 ${event.md5})`);
        break;
    }
  }

  end(): void {
    if (this.drawn) this.out.write('\n');
    this.drawn = false;
  }

  private line(text: string): void {
    if (this.drawn) this.out.write('\n');
    this.drawn = false;
    this.out.write(`${text}\n`);
  }
}
