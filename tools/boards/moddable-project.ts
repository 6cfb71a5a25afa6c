/**
 * The Moddable SDK project `holdfast build --board <id>` writes: manifest.json
 * (Moddable's documented format, documentation/tools/manifest.md), the
 * board's partitions.csv, sdkconfig/sdkconfig.defaults composed from
 * bootloader-config/ and board.json, the device entry and the native glue
 * (tools/boards/moddable/), and the resolved board.json. The firmware
 * bundle itself (moddable/holdfast.js) is build.ts's: the device entry
 * DEVICE_ENTRY (firmware/targets/moddable/device.ts: the runtime plus every
 * HAL adapter), with the Moddable SDK's module specifiers left as imports
 * (MODDABLE_EXTERNALS), which the manifest's includes provide.
 *
 * Moddable facts used (SDK 8.2, tools/mcmanifest.js): `build` values that
 * start with "./" resolve against the manifest's folder; SDKCONFIGPATH is a
 * folder whose sdkconfig.defaults is merged over the SDK's own;
 * PARTITIONS_FILE replaces the SDK's partitions.csv; "defines" become
 * MODDEF_* C macros (mc.defines.h) and "config" the "mc/config" module; a
 * module path names a .js and, beside it, a .c of the same name.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Board, BoardError, partitionsCsv } from './board.ts';

export const BOOTLOADER_CONFIG_DIR = fileURLToPath(new URL('../../bootloader-config', import.meta.url));
export const DEVICE_TEMPLATE_DIR = fileURLToPath(new URL('./moddable', import.meta.url));

export interface ProjectOptions {
  /** Turn on anti-rollback with this secure version (0..board.antiRollbackBits). */
  secureVersion?: number;
}

export interface ProjectFile {
  /** Relative to the project folder, with '/'. */
  path: string;
  data: string;
  kind: string;
}

/** The firmware bundle's place in the project (build.ts writes it). */
export const BUNDLE_PATH = 'moddable/holdfast.js';

/** The Moddable bundle's entry: the runtime and the target's adapters (createDeviceHal). */
export const DEVICE_ENTRY = fileURLToPath(new URL('../../firmware/targets/moddable/device.ts', import.meta.url));

/**
 * Specifiers the device bundle leaves as imports, for the Moddable build to
 * resolve: the SDK's modules (the manifest includes them) and holdfast's
 * glue. The same names firmware-rules allows under targets/moddable.
 */
export const MODDABLE_EXTERNALS: readonly string[] = Object.freeze(['embedded:*', 'time', 'timer', 'socket', 'securesocket', 'crypt', 'holdfast-native']);

/** Every project file except the bundle, in the order to rename them (the manifest last: it is what makes the folder a project). */
export function projectFiles(board: Board, options: ProjectOptions = {}): ProjectFile[] {
  const template = (name: string): string => readFileSync(join(DEVICE_TEMPLATE_DIR, name), 'utf8');
  return [
    { path: 'partitions.csv', data: partitionsCsv(board), kind: 'ESP-IDF partition table' },
    { path: 'sdkconfig/sdkconfig.defaults', data: sdkconfigDefaults(board, options), kind: 'ESP-IDF sdkconfig defaults' },
    { path: 'board.json', data: `${JSON.stringify(resolvedBoard(board), null, 2)}\n`, kind: 'resolved board' },
    { path: 'main.js', data: template('main.js'), kind: 'device entry' },
    { path: 'native/holdfast-native.js', data: template('holdfast-native.js'), kind: 'native glue (JS)' },
    { path: 'native/holdfast-native.c', data: template('holdfast-native.c'), kind: 'native glue (C)' },
    { path: 'manifest.json', data: `${JSON.stringify(moddableManifest(board), null, 2)}\n`, kind: 'Moddable manifest' },
  ];
}

/** manifest.json for the board. */
export function moddableManifest(board: Board): Record<string, unknown> {
  const led = board.statusLedPin === null ? {} : { statusLed: { pin: board.statusLedPin, kind: board.statusLedKind } };
  return {
    build: {
      NAME: `holdfast-${board.id}`,
      SDKCONFIGPATH: './sdkconfig',
      PARTITIONS_FILE: './partitions.csv',
    },
    include: [
      '$(MODDABLE)/examples/manifest_base.json',
      // ECMA-419 io for esp32: builtinCommon (which the flash module's C needs), embedded:provider/builtin, sockets and Wi-Fi.
      '$(MODDABLE)/modules/io/manifest.json',
      // embedded:storage/flash: data partitions by label (the runtime's hf_* and otadata), app slots as "running" and "nextota".
      '$(MODDABLE)/modules/io/flash/manifest.json',
      // socket (the MQTT stream's TCP, host names resolved by lwIP) and Wi-Fi setup (setup/network joins config.ssid when set).
      '$(MODDABLE)/examples/manifest_net.json',
      // securesocket: the MQTT stream over TLS (ModdableHalOptions.tls).
      '$(MODDABLE)/modules/crypt/tls.json',
      // crypt's Digest: SHA-256 on the chip's engine (the adapter falls back to @noble without it).
      '$(MODDABLE)/modules/crypt/digest/manifest.json',
      // time and timer come with every esp32 build (build/devices/esp32/manifest.json).
    ],
    // The board's XS machine (board.json jsHeap; boards/README.md, "JavaScript heap"): manifest_base.json's
    // "static" 32768 bytes would be all of JavaScript. static 0 (set, not omitted: the included manifest sets it)
    // gives separate fixed heaps; incremental 0 keeps them from growing (Moddable's manifest documentation, "creation").
    creation: moddableCreation(board),
    modules: {
      main: './main',
      holdfast: `./${BUNDLE_PATH.replace(/\.js$/, '')}`,
    },
    preload: ['holdfast'],
    config: {
      holdfast: {
        board: board.id,
        chip: board.chip,
        flashSize: board.flashSize,
        watchdogTimeoutMs: board.watchdogTimeoutMs,
        ...led,
        partitions: Object.fromEntries(board.partitions.map((p) => [p.name, { offset: p.offset, size: p.size }])),
      },
    },
    defines: {
      holdfast: {
        chip_id: board.chipId,
        flash_size: board.flashSize,
        watchdog_timeout_ms: board.watchdogTimeoutMs,
        status_led_pin: board.statusLedPin ?? -1,
        anti_rollback_bits: board.antiRollbackBits,
      },
    },
    platforms: {
      esp32: {
        modules: { 'holdfast-native': './native/holdfast-native' },
        preload: ['holdfast-native'],
      },
      '...': { error: `holdfast board ${board.id} builds only for the esp32 platform (mcconfig -p ${board.moddablePlatform})` },
    },
  };
}

/** The manifest's `creation` object: the board's jsHeap as fixed slot and chunk heaps and stack. */
export function moddableCreation(board: Board): { static: 0; chunk: { initial: number; incremental: 0 }; heap: { initial: number; incremental: 0 }; stack: number } {
  return {
    static: 0,
    chunk: { initial: board.jsHeap.chunkBytes, incremental: 0 },
    heap: { initial: board.jsHeap.slots, incremental: 0 },
    stack: board.jsHeap.stackSlots,
  };
}

/**
 * sdkconfig.defaults for the board: bootloader-config/common, then
 * bootloader-config/<chip>, then the lines board.json decides, then (with a
 * secure version) bootloader-config/anti-rollback and its two values.
 */
export function sdkconfigDefaults(board: Board, options: ProjectOptions = {}, configDir: string = BOOTLOADER_CONFIG_DIR): string {
  const read = (name: string): string => {
    try {
      return readFileSync(join(configDir, name, 'sdkconfig.defaults'), 'utf8').trimEnd();
    } catch (error) {
      throw new BoardError('invalid-board', `cannot read (${(error as NodeJS.ErrnoException).code ?? String(error)})`, { file: join(configDir, name, 'sdkconfig.defaults') });
    }
  };
  const mib = board.flashSize / (1 << 20);
  const parts = [
    `# Generated by \`holdfast build --board ${board.id}\` from bootloader-config/ and boards/${board.id}/board.json:`,
    '# edit those and rebuild, not this file. The CONFIG_BOOTLOADER_* lines are',
    '# compiled into the bootloader, which an OTA update never replaces',
    '# (bootloader-config/README.md).',
    '',
    '### bootloader-config/common/sdkconfig.defaults',
    read('common'),
    '',
    `### bootloader-config/${board.chip}/sdkconfig.defaults`,
    read(board.chip),
    '',
    `### boards/${board.id}/board.json`,
    `# Why: the board has ${mib} MiB of flash (flash.size); esptool writes it into`,
    '# the image header and ESP-IDF checks the partition table against it.',
    `CONFIG_ESPTOOLPY_FLASHSIZE_${mib}MB=y`,
    `# Why: watchdogTimeoutMs ${board.watchdogTimeoutMs}: a task (the XS loop) that does not feed the`,
    '# task watchdog for this long panics and resets the chip.',
    `CONFIG_ESP_TASK_WDT_TIMEOUT_S=${board.watchdogTimeoutMs / 1000}`,
  ];
  if (options.secureVersion !== undefined) {
    if (!Number.isInteger(options.secureVersion) || options.secureVersion < 0 || options.secureVersion > board.antiRollbackBits) {
      throw new RangeError(`secure version ${options.secureVersion}: expected 0..${board.antiRollbackBits} (the ${board.antiRollbackBits}-bit eFuse field of ${board.chip})`);
    }
    parts.push(
      '',
      '### bootloader-config/anti-rollback/sdkconfig.defaults',
      read('anti-rollback'),
      `# Why: this image's secure_version (--secure-version); the bootloader refuses`,
      '# images below the eFuse floor, which holdfast raises to it only after the commit.',
      `CONFIG_BOOTLOADER_APP_SECURE_VERSION=${options.secureVersion}`,
      `# Why: the secure-version eFuse field of ${board.chip} holds ${board.antiRollbackBits} bits (antiRollbackBits).`,
      `CONFIG_BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD=${board.antiRollbackBits}`,
    );
  }
  return `${parts.join('\n')}\n`;
}

/** board.json as the tools read it after validation (numbers resolved, partitions in address order). */
export function resolvedBoard(board: Board): Record<string, unknown> {
  const { file: _file, ...rest } = board;
  return rest;
}

/** mcconfig's arguments for a debug build that flashes the device: `mcconfig -d -m -p <platform> <manifest>`. */
export function mcconfigArgs(board: Board, manifestPath: string): string[] {
  return ['-d', '-m', '-p', board.moddablePlatform, manifestPath];
}

/** A command line a POSIX shell runs as shown. */
export function shellCommand(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}
