/**
 * Boards: one folder per board under boards/<id>/, holding board.json (chip,
 * flash, partition layout, watchdog, status LED, anti-rollback width). This
 * module reads and validates it (a zod schema for the shape, then the
 * layout rules ESP-IDF's partition tool and holdfast's firmware rely on) and
 * renders the ESP-IDF partition CSV. Every failure is one BoardError line:
 * `<file>: <field>: <what was found>: expected <what is allowed>`.
 *
 * Facts (ESP-IDF v6.0, components/esp_hw_support and partition_table/gen_esp32part.py):
 * - esp_chip_id_t: ESP32 0x0000, ESP32-C3 0x0005, ESP32-S3 0x0009.
 * - The second-stage bootloader sits at 0x1000 on ESP32, at 0x0 on S3 and C3;
 *   the partition table at CONFIG_PARTITION_TABLE_OFFSET (0x8000), one 4 KiB sector.
 * - App partitions start on a 64 KiB boundary (the MMU page), data on 4 KiB.
 * - Names are at most 16 bytes (esp_partition_info_t.label[16]).
 * - The anti-rollback secure version eFuse field holds 32 bits on ESP32
 *   (CONFIG_BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD, 1..32) and 16 on S3/C3
 *   (EFUSE_SECURE_VERSION, 16 bits).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { PROVISIONING_PARTITION_LABEL } from '../../firmware/security/provisioning.ts';

export type Chip = 'esp32' | 'esp32s3' | 'esp32c3';

export interface BoardPartition {
  name: string;
  type: 'app' | 'data';
  /** ESP-IDF subtype: a name (ota_0, ota, nvs, phy…) or 0x hex for holdfast's custom data subtypes. */
  subtype: string;
  offset: number;
  size: number;
  /** ESP-IDF flags column: '' or 'encrypted' / 'readonly', colon-separated. */
  flags: string;
  /** What the partition holds (documentation only). */
  use?: string;
}

export interface Board {
  id: string;
  name: string;
  chip: Chip;
  /** esp_chip_id_t: ESP32 0x0000, S3 0x0009, C3 0x0005. */
  chipId: number;
  /** mcconfig -p value (esp32, esp32/esp32s3, esp32/esp32c3). */
  moddablePlatform: string;
  flashSize: number;
  /** 0x1000 on ESP32, 0x0 on S3/C3. */
  bootloaderOffset: number;
  /** 0x8000 */
  partitionTableOffset: number;
  /** In address order. */
  partitions: BoardPartition[];
  watchdogTimeoutMs: number;
  /** GPIO of the status LED, or null when the board has none the app can drive. */
  statusLedPin: number | null;
  /** 'gpio' (plain LED) or 'ws2812' (addressable RGB LED); null with no LED. */
  statusLedKind: 'gpio' | 'ws2812' | null;
  /** Width of the anti-rollback secure-version eFuse field: 32 on ESP32, 16 on S3/C3. */
  antiRollbackBits: number;
  /** Flash erase unit (4096) and program units, for the simulator. */
  flash: { blockLength: number; eraseValue: number; writeAlignPlain: number; writeAlignEncrypted: number };
  /** The XS machine the Moddable build gives the board, and holdfast's RAM budget within it (boards/README.md, "JavaScript heap"). */
  jsHeap: BoardJsHeap;
  description?: string;
  /** The board.json it came from. */
  file: string;
}

/**
 * The JavaScript heap of a board: the `creation` values of the Moddable
 * manifest (static 0: separate fixed slot and chunk heaps) and the budget
 * holdfast's live data must stay within, after the margin.
 */
export interface BoardJsHeap {
  /** creation.chunk.initial: bytes of the chunk heap (strings, BigInt digits, ArrayBuffers, arrays' items). */
  chunkBytes: number;
  /** creation.heap.initial: slots of the slot heap (JS_SLOT_BYTES each on a 32-bit device). */
  slots: number;
  /** creation.stack: slots of the machine stack. */
  stackSlots: number;
  /** Share of each heap kept free for what the measurement cannot see (the platform's own objects, fragmentation, peaks between collections). */
  marginPercent: number;
  /** Where the numbers come from. */
  source: string;
  /** floor(slots x (100 - margin) / 100): the most live slots holdfast may keep. */
  budgetSlots: number;
  /** floor(chunkBytes x (100 - margin) / 100). */
  budgetChunkBytes: number;
}

/** Bytes of one XS slot on a 32-bit microcontroller (Moddable's manifest documentation, "creation"). */
export const JS_SLOT_BYTES = 16;

export type BoardErrorCode = 'unknown-board' | 'invalid-board';

export class BoardError extends Error {
  readonly code: BoardErrorCode;
  readonly file: string | undefined;
  readonly field: string | undefined;

  constructor(code: BoardErrorCode, message: string, details: { file?: string; field?: string } = {}) {
    const prefix = [details.file, details.field].filter((p) => p !== undefined && p !== '').join(': ');
    super((prefix === '' ? message : `${prefix}: ${message}`).replace(/\s*\n\s*/g, ' ').trim());
    // An own property, not an assignment to `name` (see the firmware's setErrorName note).
    Object.defineProperty(this, 'name', { value: 'BoardError', enumerable: false, configurable: true, writable: true });
    this.code = code;
    this.file = details.file;
    this.field = details.field;
  }
}

/** The checked-in boards/ folder. */
export const BOARDS_DIR = fileURLToPath(new URL('../../boards', import.meta.url));

/** Per-chip facts (ESP-IDF v6.0). */
export const CHIPS: Readonly<Record<Chip, { chipId: number; bootloaderOffset: number; antiRollbackBitsMax: number; idfTarget: string; moddablePlatforms: readonly string[] }>> = Object.freeze({
  esp32: { chipId: 0x0000, bootloaderOffset: 0x1000, antiRollbackBitsMax: 32, idfTarget: 'esp32', moddablePlatforms: ['esp32'] },
  esp32s3: { chipId: 0x0009, bootloaderOffset: 0x0, antiRollbackBitsMax: 16, idfTarget: 'esp32s3', moddablePlatforms: ['esp32/esp32s3'] },
  esp32c3: { chipId: 0x0005, bootloaderOffset: 0x0, antiRollbackBitsMax: 16, idfTarget: 'esp32c3', moddablePlatforms: ['esp32/esp32c3'] },
});

export const PARTITION_TABLE_OFFSET = 0x8000;
/** The partition table occupies one sector (ESP-IDF reads 0xC00 bytes of it, plus the MD5 row). */
export const PARTITION_TABLE_SIZE = 0x1000;
export const APP_ALIGN = 0x10000;
export const DATA_ALIGN = 0x1000;
export const OTADATA_SIZE = 0x2000;
export const MAX_NAME_BYTES = 16;
/**
 * Data partitions holdfast's firmware opens by label: the values of the
 * runtime's PARTITION_LABELS (firmware/runtime/boot.ts) other than otadata
 * and the app slots (test/boards/partition-labels.test.ts keeps the two
 * lists equal), each with the fewest 4 KiB blocks its store needs
 * (docs/spec/partition-table.md, "Holdfast's data partitions").
 * hf_progress needs more with a larger app slot: see PROGRESS_SPARE_ENTRIES.
 */
export const HOLDFAST_PARTITION_MIN_BLOCKS: Readonly<Record<string, number>> = Object.freeze({
  hf_counter: 2, // two-block log (counter.md)
  hf_outbox: 2, // sectors N >= 2 (outbox.md)
  hf_audit: 2, // blocks N >= 2 (audit-log.md)
  hf_replay: 2, // two-block log (replay-window.md)
  hf_journal: 2, // two-block log (commands.md)
  hf_trust: 2, // two blocks (root.md)
  hf_floor: 2, // two-block log (floor-store.md)
  hf_safemode: 2, // two-block log (safe-mode.md)
  hf_progress: 2, // 16-byte entries (staging-progress.md)
  hf_revoke: 4, // two slots of two blocks, each room for the largest list (revocation.md)
  hf_keys: 2, // two one-block slots (key-rotation.md)
});
export const HOLDFAST_PARTITIONS: readonly string[] = Object.freeze(Object.keys(HOLDFAST_PARTITION_MIN_BLOCKS));
/**
 * The provisioning partition (docs/spec/provisioning.md): written once at
 * manufacture by `holdfast provision`, read by the device target at boot
 * (not one of the runtime's PARTITION_LABELS). One 4 KiB block holds the
 * record; every board must have it, as a data partition.
 */
export const PROVISIONING_PARTITION = PROVISIONING_PARTITION_LABEL;
export const PROVISIONING_PARTITION_MIN_BLOCKS = 1;
/** Bytes of one staging-progress entry (staging-progress.md). */
export const PROGRESS_ENTRY_BYTES = 16;
/**
 * Entries of the staging progress log beyond one CHUNK per 4 KiB block of
 * the app slot: BEGIN and COMPLETE (StagingProgress.capacity leaves those
 * two out) plus room for TRIAL, REPORTED and CONFIRMED entries.
 */
export const PROGRESS_SPARE_ENTRIES = 18;

const APP_SUBTYPES = ['factory', 'test', ...Array.from({ length: 16 }, (_, i) => `ota_${i}`)];
const DATA_SUBTYPES = ['ota', 'phy', 'nvs', 'coredump', 'nvs_keys', 'efuse', 'undefined', 'esphttpd', 'fat', 'spiffs', 'littlefs', 'tee_ota', 'tee_sec_stg'];
const MAX_FLASH = 128 << 20;

const hexByte = /^0x[0-9a-fA-F]{1,2}$/;
const partitionSchema = z.strictObject({
  type: z.enum(['app', 'data']),
  subtype: z.string().min(1),
  offset: z.number().int().nonnegative(),
  size: z.number().int().positive(),
  flags: z.array(z.enum(['encrypted', 'readonly'])).optional(),
  /** Kept for the first board's format: same as flags ["encrypted"]. */
  encrypted: z.boolean().optional(),
  use: z.string().optional(),
});

const boardSchema = z.strictObject({
  $comment: z.string().optional(),
  id: z.string().regex(/^[a-z0-9][a-z0-9.-]{0,62}$/, 'lower-case letters, digits, dots and dashes'),
  name: z.string().min(1).max(80),
  description: z.string().optional(),
  chip: z.enum(['esp32', 'esp32s3', 'esp32c3']),
  moddablePlatform: z.string().regex(/^esp32(\/[a-z0-9_]+)?$/, 'a Moddable ESP32 platform id such as esp32 or esp32/esp32s3'),
  flash: z.strictObject({
    size: z.number().int().positive(),
    blockLength: z.literal(4096).optional(),
    eraseValue: z.literal(255).optional(),
    writeAlignPlain: z.literal(1).optional(),
    writeAlignEncrypted: z.literal(16).optional(),
  }),
  bootloaderOffset: z.number().int().nonnegative().optional(),
  partitionTableOffset: z.literal(PARTITION_TABLE_OFFSET).optional(),
  /** A checked-in copy of partitionsCsv(board), for idf.py users; a test keeps it identical. */
  partitionTable: z.literal('partitions.csv').optional(),
  partitions: z.record(z.string(), partitionSchema),
  watchdogTimeoutMs: z.number().int().min(2000).max(60_000).refine((ms) => ms % 1000 === 0, 'a whole number of seconds (CONFIG_ESP_TASK_WDT_TIMEOUT_S)'),
  statusLedPin: z.number().int().min(0).max(48).nullable(),
  statusLedKind: z.enum(['gpio', 'ws2812']).nullable().optional(),
  antiRollbackBits: z.number().int().min(1).max(32),
  jsHeap: z.strictObject({
    chunkBytes: z.number().int().min(4096),
    slots: z.number().int().min(256),
    stackSlots: z.number().int().min(64),
    marginPercent: z.number().int().min(0).max(90),
    source: z.string().min(1),
  }),
});

type BoardJson = z.infer<typeof boardSchema>;

/** Board ids: the folders of `boardsDir` holding a board.json, sorted. */
export function listBoards(boardsDir: string = BOARDS_DIR): string[] {
  let entries;
  try {
    entries = readdirSync(boardsDir, { withFileTypes: true });
  } catch (error) {
    throw new BoardError('unknown-board', `cannot read the boards folder (${(error as NodeJS.ErrnoException).code ?? String(error)})`, { file: boardsDir });
  }
  return entries
    .filter((e) => e.isDirectory() && statSync(join(boardsDir, e.name, 'board.json'), { throwIfNoEntry: false })?.isFile() === true)
    .map((e) => e.name)
    .sort();
}

/** boards/<id>/board.json, validated (schema, then layout rules). */
export function loadBoard(id: string, boardsDir: string = BOARDS_DIR): Board {
  const shown = (path: string): string => {
    const rel = relative(process.cwd(), path);
    return rel !== '' && !rel.startsWith('..') ? rel : path;
  };
  if (!/^[a-z0-9][a-z0-9.-]{0,62}$/.test(id) || id.includes('..')) {
    throw new BoardError('unknown-board', `unknown board ${JSON.stringify(id)}: expected one of ${safeList(boardsDir)}`);
  }
  const path = join(boardsDir, id, 'board.json');
  const file = shown(path);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new BoardError('unknown-board', `unknown board ${JSON.stringify(id)}: expected one of ${safeList(boardsDir)}`);
    throw new BoardError('invalid-board', `cannot read (${code ?? String(error)})`, { file });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new BoardError('invalid-board', `not JSON (${(error as Error).message})`, { file });
  }
  // JSON.parse keeps the last of two equal keys: two partitions of one name would silently become one.
  const duplicate = firstDuplicateKey(text);
  if (duplicate !== undefined) throw new BoardError('invalid-board', `${JSON.stringify(duplicate.key)} appears twice: expected unique names`, { file, field: duplicate.path || undefined });
  return validateBoard(json, file, id);
}

/** Validates parsed board.json content; `file` names it in errors, `id` (if given) must match its id field. */
export function validateBoard(json: unknown, file: string, id?: string): Board {
  const parsed = boardSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new BoardError('invalid-board', describeIssue(issue, json), { file, field: issue.path.map(String).join('.') || undefined });
  }
  const b = parsed.data;
  const fail = (field: string, message: string): never => {
    throw new BoardError('invalid-board', message, { file, field });
  };
  if (id !== undefined && b.id !== id) fail('id', `${JSON.stringify(b.id)}: expected the folder name ${JSON.stringify(id)}`);
  const chip = CHIPS[b.chip];
  // 'esp32' builds for the ESP32 target; an S3 or C3 board needs a subplatform of that chip (esp32/esp32s3, esp32/esp32c3, or a board's own).
  if (b.chip !== 'esp32' && b.moddablePlatform === 'esp32') fail('moddablePlatform', `"esp32" builds for the ESP32 target, not ${b.chip}: expected ${chip.moddablePlatforms.join(' or ')} (or another ${b.chip} subplatform)`);
  const flashSize = b.flash.size;
  if ((flashSize & (flashSize - 1)) !== 0 || flashSize < 1 << 20 || flashSize > MAX_FLASH) fail('flash.size', `${flashSize}: expected a power of two from 1 MiB to 128 MiB (CONFIG_ESPTOOLPY_FLASHSIZE)`);
  const bootloaderOffset = b.bootloaderOffset ?? chip.bootloaderOffset;
  if (bootloaderOffset !== chip.bootloaderOffset) fail('bootloaderOffset', `${hex(bootloaderOffset)}: expected ${hex(chip.bootloaderOffset)} on ${b.chip}`);
  if (b.antiRollbackBits > chip.antiRollbackBitsMax) fail('antiRollbackBits', `${b.antiRollbackBits}: expected at most ${chip.antiRollbackBitsMax} (the secure-version eFuse field of ${b.chip})`);
  if (b.statusLedPin === null && b.statusLedKind !== undefined && b.statusLedKind !== null) fail('statusLedKind', `${b.statusLedKind} without a statusLedPin: expected null`);
  const partitions = Object.entries(b.partitions).map(([name, p]) => toPartition(name, p, fail));
  checkLayout(partitions, flashSize, (name, field, message) => fail(name === '' ? 'partitions' : `partitions.${name}${field === '' ? '' : `.${field}`}`, message));
  partitions.sort((x, y) => x.offset - y.offset);
  return {
    id: b.id,
    name: b.name,
    chip: b.chip,
    chipId: chip.chipId,
    moddablePlatform: b.moddablePlatform,
    flashSize,
    bootloaderOffset,
    partitionTableOffset: b.partitionTableOffset ?? PARTITION_TABLE_OFFSET,
    partitions,
    watchdogTimeoutMs: b.watchdogTimeoutMs,
    statusLedPin: b.statusLedPin,
    statusLedKind: b.statusLedPin === null ? null : (b.statusLedKind ?? 'gpio'),
    antiRollbackBits: b.antiRollbackBits,
    flash: { blockLength: 4096, eraseValue: 255, writeAlignPlain: 1, writeAlignEncrypted: 16 },
    jsHeap: {
      ...b.jsHeap,
      budgetSlots: Math.floor((b.jsHeap.slots * (100 - b.jsHeap.marginPercent)) / 100),
      budgetChunkBytes: Math.floor((b.jsHeap.chunkBytes * (100 - b.jsHeap.marginPercent)) / 100),
    },
    ...(b.description !== undefined ? { description: b.description } : {}),
    file,
  };
}

function toPartition(name: string, p: BoardJson['partitions'][string], fail: (field: string, message: string) => never): BoardPartition {
  const field = `partitions.${name}`;
  if (name === '' || Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) fail(field, `name is ${Buffer.byteLength(name, 'utf8')} bytes: expected 1 to ${MAX_NAME_BYTES} bytes (esp_partition_info_t.label)`);
  if (!/^[\x21-\x7e]+$/.test(name) || name.includes(',') || name.includes('#')) fail(field, `name ${JSON.stringify(name)}: expected printable ASCII without spaces, commas or #`);
  const subtype = p.subtype;
  if (p.type === 'app' && !APP_SUBTYPES.includes(subtype)) fail(`${field}.subtype`, `${JSON.stringify(subtype)}: expected an app subtype (factory, test, ota_0..ota_15)`);
  if (p.type === 'data' && !DATA_SUBTYPES.includes(subtype) && !hexByte.test(subtype)) fail(`${field}.subtype`, `${JSON.stringify(subtype)}: expected a data subtype name (${DATA_SUBTYPES.join(', ')}) or 0x00..0xfe`);
  if (hexByte.test(subtype) && Number(subtype) === 0xff) fail(`${field}.subtype`, `${subtype}: 0xff is reserved (ESP_PARTITION_SUBTYPE_ANY)`);
  const flags = [...new Set([...(p.flags ?? []), ...(p.encrypted === true ? ['encrypted'] : [])])];
  if (flags.includes('readonly') && (p.type === 'app' || subtype === 'ota' || subtype === 'coredump')) fail(`${field}.flags`, `readonly on ${p.type === 'app' ? 'an app' : `a ${subtype}`} partition: expected readonly only on data partitions other than ota and coredump`);
  return { name, type: p.type, subtype, offset: p.offset, size: p.size, flags: flags.join(':'), ...(p.use !== undefined ? { use: p.use } : {}) };
}

/**
 * The layout rules: app partitions 64 KiB-aligned, data 4 KiB-aligned, sizes
 * whole sectors, after the partition table, inside the flash, no overlap;
 * otadata exactly 0x2000; ota_0 and ota_1 present and of equal size; nvs and
 * holdfast's data partitions present, each of its store's minimum size, and
 * hf_progress large enough for a whole app slot's download. `fail(name, field, message)` throws.
 */
export function checkLayout(partitions: readonly BoardPartition[], flashSize: number, fail: (name: string, field: string, message: string) => never, partitionTableOffset = PARTITION_TABLE_OFFSET): void {
  const firstFree = partitionTableOffset + PARTITION_TABLE_SIZE;
  const names = new Set<string>();
  for (const p of partitions) {
    if (names.has(p.name)) fail(p.name, '', `name used twice: expected unique partition names`);
    names.add(p.name);
    const align = p.type === 'app' ? APP_ALIGN : DATA_ALIGN;
    if (p.offset % align !== 0) fail(p.name, 'offset', `${hex(p.offset)} is not ${align / 1024} KiB-aligned: expected a multiple of ${hex(align)} for ${p.type === 'app' ? 'an app' : 'a data'} partition`);
    if (p.size % DATA_ALIGN !== 0) fail(p.name, 'size', `${hex(p.size)} is not a whole number of 4 KiB sectors: expected a multiple of 0x1000`);
    if (p.offset < firstFree) fail(p.name, 'offset', `${hex(p.offset)} is inside the bootloader or partition table: expected ${hex(firstFree)} or above`);
    if (p.offset + p.size > flashSize) fail(p.name, 'size', `ends at ${hex(p.offset + p.size)}, past the ${flashSize / (1 << 20)} MiB flash (${hex(flashSize)}): expected the partition inside the flash`);
  }
  const sorted = [...partitions].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i += 1) {
    const prev = sorted[i - 1];
    const p = sorted[i];
    if (prev.offset + prev.size > p.offset) fail(p.name, 'offset', `${hex(p.offset)} overlaps ${prev.name} (${hex(prev.offset)}..${hex(prev.offset + prev.size)}): expected partitions not to overlap`);
  }
  const subtypeCount = new Map<string, string>();
  for (const p of partitions) {
    const key = `${p.type}/${p.subtype}`;
    const unique = p.type === 'app' || p.subtype === 'ota' || p.subtype === 'phy' || (/^0x/.test(p.subtype) && false);
    if (unique && subtypeCount.has(key)) fail(p.name, 'subtype', `${p.subtype} is also ${subtypeCount.get(key)}'s: expected one ${p.type} partition of subtype ${p.subtype}`);
    subtypeCount.set(key, p.name);
  }
  const byName = new Map(partitions.map((p) => [p.name, p]));
  const otadata = byName.get('otadata');
  if (otadata === undefined) fail('', '', 'no otadata partition: expected otadata (data, ota, 0x2000) for A/B boot control');
  else {
    if (otadata.type !== 'data' || otadata.subtype !== 'ota') fail('otadata', 'subtype', `${otadata.type}/${otadata.subtype}: expected data/ota`);
    if (otadata.size !== OTADATA_SIZE) fail('otadata', 'size', `${hex(otadata.size)}: expected exactly 0x2000 (two 4 KiB otadata copies)`);
  }
  if (partitions.some((p) => p.name !== 'otadata' && p.type === 'data' && p.subtype === 'ota')) fail(partitions.find((p) => p.name !== 'otadata' && p.subtype === 'ota' && p.type === 'data')!.name, 'subtype', 'a second otadata partition: expected the one named otadata');
  const slots = ['ota_0', 'ota_1'].map((name) => {
    const slot = byName.get(name);
    if (slot === undefined) return fail('', '', `no ${name} partition: expected two app slots, ota_0 and ota_1`);
    if (slot.type !== 'app' || slot.subtype !== name) fail(name, 'subtype', `${slot.type}/${slot.subtype}: expected app/${name}`);
    return slot;
  });
  if (slots[0].size !== slots[1].size) fail('ota_1', 'size', `${hex(slots[1].size)} differs from ota_0's ${hex(slots[0].size)}: expected two app slots of equal size`);
  if (partitions.some((p) => p.type === 'app' && p.subtype === 'factory')) fail(partitions.find((p) => p.subtype === 'factory')!.name, 'subtype', 'a factory app: expected none (with a factory app the bootloader can fall back to it, outside holdfast\'s A/B control)');
  const nvs = byName.get('nvs');
  if (nvs === undefined || nvs.type !== 'data' || nvs.subtype !== 'nvs') fail(nvs === undefined ? '' : 'nvs', nvs === undefined ? '' : 'subtype', 'no nvs data partition: expected nvs (data, nvs) for Wi-Fi and PHY calibration');
  for (const name of HOLDFAST_PARTITIONS) {
    const p = byName.get(name);
    if (p === undefined) fail('', '', `no ${name} partition: expected holdfast's data partitions ${HOLDFAST_PARTITIONS.join(', ')}`);
    else {
      if (p.type !== 'data') fail(name, 'type', `${p.type}: expected data`);
      const minBlocks = HOLDFAST_PARTITION_MIN_BLOCKS[name];
      if (p.size < minBlocks * DATA_ALIGN) fail(name, 'size', `${hex(p.size)}: expected at least ${minBlocks} 4 KiB sectors (the store's minimum geometry)`);
    }
  }
  const prov = byName.get(PROVISIONING_PARTITION);
  if (prov === undefined) fail('', '', `no ${PROVISIONING_PARTITION} partition: expected the provisioning partition (data, at least one 4 KiB sector; docs/spec/provisioning.md)`);
  else {
    if (prov.type !== 'data') fail(PROVISIONING_PARTITION, 'type', `${prov.type}: expected data`);
    if (prov.size < PROVISIONING_PARTITION_MIN_BLOCKS * DATA_ALIGN) fail(PROVISIONING_PARTITION, 'size', `${hex(prov.size)}: expected at least ${PROVISIONING_PARTITION_MIN_BLOCKS} 4 KiB sector`);
  }
  // The staging progress log records one CHUNK entry per 4 KiB block of the app slot: it must hold a whole slot's download.
  const progress = byName.get('hf_progress')!;
  const progressNeeds = (slots[0].size / DATA_ALIGN + PROGRESS_SPARE_ENTRIES) * PROGRESS_ENTRY_BYTES;
  if (progress.size < progressNeeds) fail('hf_progress', 'size', `${hex(progress.size)} holds ${progress.size / PROGRESS_ENTRY_BYTES} entries: expected at least ${hex(Math.ceil(progressNeeds / DATA_ALIGN) * DATA_ALIGN)} (one 16-byte entry per 4 KiB block of the ${hex(slots[0].size)} app slot, plus ${PROGRESS_SPARE_ENTRIES})`);
}

/** ESP-IDF partition CSV (gen_esp32part.py input): header comment, one row per partition in address order, hex offsets and sizes. */
export function partitionsCsv(board: Board): string {
  const rows = [...board.partitions].sort((a, b) => a.offset - b.offset).map((p) => [`${p.name},`, `${p.type},`, `${p.subtype},`, `${hex(p.offset)},`, `${hex(p.size)},`, p.flags]);
  const widths = [0, 1, 2, 3, 4].map((i) => Math.max(...rows.map((r) => r[i].length), ['# Name,', 'Type,', 'SubType,', 'Offset,', 'Size,'][i].length));
  const line = (cells: string[]): string => cells.map((c, i) => (i < 5 ? c.padEnd(widths[i] + 1) : c)).join('').trimEnd();
  return [
    `# holdfast partition table for ${board.id} (${board.name}), generated from boards/${board.id}/board.json by tools/boards/board.ts.`,
    `# ESP-IDF format, flashed at ${hex(board.partitionTableOffset)}; ${board.flashSize / (1 << 20)} MiB flash.`,
    line(['# Name,', 'Type,', 'SubType,', 'Offset,', 'Size,', 'Flags']),
    ...rows.map(line),
    '',
  ].join('\n');
}

export function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

function safeList(boardsDir: string): string {
  try {
    const ids = listBoards(boardsDir);
    return ids.length > 0 ? ids.join(', ') : `a folder of ${boardsDir}`;
  } catch {
    return `a folder of ${boardsDir}`;
  }
}

function describeIssue(issue: z.core.$ZodIssue, json: unknown): string {
  const found = valueAt(json, issue.path);
  const shownValue = found === undefined ? 'missing' : JSON.stringify(found)?.slice(0, 60);
  switch (issue.code) {
    case 'unrecognized_keys':
      return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')}: expected only the documented fields (boards/README.md)`;
    case 'invalid_type':
      return `${shownValue}: expected ${issue.expected}`;
    case 'invalid_value':
      return `${shownValue}: expected ${issue.values.map((v) => JSON.stringify(v)).join(' or ')}`;
    case 'too_small':
      return `${shownValue}: expected at least ${String(issue.minimum)}`;
    case 'too_big':
      return `${shownValue}: expected at most ${String(issue.maximum)}`;
    default:
      return `${shownValue}: expected ${issue.message}`;
  }
}

/** The first key that appears twice in one object of valid JSON text, with the path of that object. */
export function firstDuplicateKey(text: string): { key: string; path: string } | undefined {
  let at = 0;
  const space = (): void => {
    while (at < text.length && ' \t\n\r'.includes(text[at])) at += 1;
  };
  const string = (): string => {
    const start = at;
    at += 1;
    while (text[at] !== '"') at += text[at] === '\\' ? 2 : 1;
    at += 1;
    return JSON.parse(text.slice(start, at)) as string;
  };
  const value = (path: string): { key: string; path: string } | undefined => {
    space();
    const c = text[at];
    if (c === '{') {
      at += 1;
      const seen = new Set<string>();
      space();
      if (text[at] === '}') {
        at += 1;
        return undefined;
      }
      for (;;) {
        space();
        const key = string();
        if (seen.has(key)) return { key, path };
        seen.add(key);
        space();
        at += 1; // ':'
        const inner = value(path === '' ? key : `${path}.${key}`);
        if (inner) return inner;
        space();
        if (text[at++] === '}') return undefined;
      }
    }
    if (c === '[') {
      at += 1;
      space();
      if (text[at] === ']') {
        at += 1;
        return undefined;
      }
      for (let i = 0; ; i += 1) {
        const inner = value(`${path}.${i}`);
        if (inner) return inner;
        space();
        if (text[at++] === ']') return undefined;
      }
    }
    if (c === '"') string();
    else while (at < text.length && !',]} \t\n\r'.includes(text[at])) at += 1;
    return undefined;
  };
  return value('');
}

function valueAt(json: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = json;
  for (const key of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return v;
}
