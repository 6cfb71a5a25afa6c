/**
 * An emulation of the ESP32-family ROM serial loader, the download mode a
 * chip enters when reset with GPIO0 (GPIO9 on the C3) low, following
 * Espressif's documented protocol (esptool docs, "Serial Protocol"; byte
 * layouts in packet.ts and slip.ts), writing into a simulated NOR flash.
 *
 * What it answers, as the ROM does (4 status bytes: status, error, 0, 0):
 * - SYNC: 8 responses (value 0x20120707, non-zero as from a ROM; the stub
 *   answers 0).
 * - READ_REG: the chip-detect magic at 0x40001000 (ESP32 0x00F01D83,
 *   ESP32-S3 0x00000009, ESP32-C3 0x6921506F), 0 for any other address.
 * - GET_SECURITY_INFO: unsupported on the ESP32 ROM; 20 bytes with the chip
 *   id (S3 9, C3 5) otherwise.
 * - SPI_ATTACH (8 bytes from the ROM's point of view), SPI_SET_PARAMS (24),
 *   CHANGE_BAUDRATE (8), WRITE_REG (accepted, no effect).
 * - FLASH_BEGIN / FLASH_DEFL_BEGIN (4 or 5 words): erases every 4 KiB
 *   sector the erase size touches, as the ROM does at BEGIN; a BEGIN with 0
 *   blocks is therefore an erase.
 * - FLASH_DATA / FLASH_DEFL_DATA: checks the header, length and XOR checksum
 *   (error 0x07), writes the block (inflating the zlib stream for DEFL,
 *   error 0x0B on a deflate error or output beyond the declared size).
 * - FLASH_END / FLASH_DEFL_END: "run user code" leaves the loader (further
 *   input is ignored and counted).
 * - SPI_FLASH_MD5: 32 hex ASCII digits of the region's MD5.
 * - Everything else (MEM_* stub upload, the stub-only ERASE_FLASH /
 *   ERASE_REGION / READ_FLASH): error 0x05, as a ROM rejects them.
 *
 * Bounded: frames are capped by the SLIP decoder, every length and offset
 * from the wire is checked, malformed input is counted in `stats`, and no
 * input makes it throw. Host tool (Node: node:zlib, node:crypto).
 */
import { createHash } from 'node:crypto';
import { createInflate, type Inflate } from 'node:zlib';
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { SlipDecoder, slipEncode } from './slip.ts';
import { checksum, decodeCommand, encodeResponse, Op, RomError, SYNC_PAYLOAD, u32le, words, type CommandPacket } from './packet.ts';

export type EmulatedChip = 'ESP32' | 'ESP32-S3' | 'ESP32-C3';

export const CHIP_DETECT_MAGIC_REG = 0x40001000;

interface ChipFacts {
  readonly magic: number;
  /** GET_SECURITY_INFO chip id; undefined: the ROM lacks the command. */
  readonly securityChipId: number | undefined;
}

/** Values esptool-js 0.7.0 maps to these chips (esploader.js magic2Chip, targets/*.js IMAGE_CHIP_ID). */
export const CHIPS: Readonly<Record<EmulatedChip, ChipFacts>> = Object.freeze({
  ESP32: { magic: 0x00f01d83, securityChipId: undefined },
  'ESP32-S3': { magic: 0x00000009, securityChipId: 9 },
  'ESP32-C3': { magic: 0x6921506f, securityChipId: 5 },
});

export const SYNC_VALUE = 0x20120707;
export const SECTOR = 4096;
/** Largest data packet the emulated ROM accepts (esptool's stub block size; the ROM path uses 0x400). */
export const MAX_BLOCK = 0x4000;

export interface RomLoaderStats {
  frames: number;
  malformed: number;
  unsupported: number;
  checksumErrors: number;
  rejected: number;
  ignoredAfterExit: number;
  /** Flash bytes written by *_DATA (uncompressed). */
  bytesWritten: number;
  sectorsErased: number;
}

export interface FlashProgress {
  readonly compressed: boolean;
  /** Start of the current write. */
  readonly offset: number;
  /** Flash bytes written so far in it. */
  readonly written: number;
  readonly seq: number;
}

export interface RomLoaderEmulatorOptions {
  readonly chip: EmulatedChip;
  /** The whole flash chip (offset 0 = flash address 0). */
  readonly flash: FlashPartition;
  /** Sends bytes to the host (already SLIP framed). */
  readonly send: (bytes: Uint8Array) => void;
  /** After each data block is in flash (tests cut the link from here). */
  readonly onFlashData?: (progress: FlashProgress) => void;
  readonly onBaudRate?: (baud: number) => void;
}

interface Download {
  readonly compressed: boolean;
  readonly offset: number;
  /** Bytes erased at BEGIN: writes must stay inside. */
  readonly eraseSize: number;
  readonly blocks: number;
  readonly blockSize: number;
  nextSeq: number;
  written: number;
  inflater: StreamingInflate | undefined;
}

type Reply = { ok: true; value?: number; data?: Uint8Array } | { ok: false; error: number; why: string };

export class RomLoaderEmulator {
  readonly chip: EmulatedChip;
  readonly stats: RomLoaderStats = { frames: 0, malformed: 0, unsupported: 0, checksumErrors: 0, rejected: 0, ignoredAfterExit: 0, bytesWritten: 0, sectorsErased: 0 };
  /** Why the last commands were refused (newest last, at most 32). */
  readonly refusals: string[] = [];
  readonly slip = new SlipDecoder();
  baudRate = 115200;
  attached = false;
  /** Flash size from SPI_SET_PARAMS (the physical size until then). */
  flashSize: number;
  exited = false;
  private download: Download | undefined;
  private queue: Promise<void> = Promise.resolve();
  private readonly options: RomLoaderEmulatorOptions;

  constructor(options: RomLoaderEmulatorOptions) {
    if (!(options.chip in CHIPS)) throw new RangeError(`unknown chip ${JSON.stringify(options.chip)}: expected ${Object.keys(CHIPS).join(', ')}`);
    this.options = options;
    this.chip = options.chip;
    this.flashSize = options.flash.status().size;
  }

  /** Bytes from the host; resolves once every command they completed has been answered. */
  receive(bytes: Uint8Array): Promise<void> {
    for (const frame of this.slip.push(bytes)) {
      this.queue = this.queue.then(() => this.handleFrame(frame)).catch((error: unknown) => {
        // Defensive: handlers do not throw; a flash misuse would be an emulator bug, reported as a refusal.
        this.refuse(`internal: ${error instanceof Error ? error.message : String(error)}`);
      });
    }
    return this.queue;
  }

  private async handleFrame(frame: Uint8Array): Promise<void> {
    this.stats.frames++;
    if (this.exited) {
      this.stats.ignoredAfterExit++;
      return;
    }
    const decoded = decodeCommand(frame);
    if (decoded.kind === 'malformed') {
      this.stats.malformed++;
      this.refuse(`malformed: ${decoded.reason}`);
      return;
    }
    const command = decoded.packet;
    const reply = await this.execute(command);
    if (!reply.ok) {
      this.stats.rejected++;
      this.refuse(`op 0x${command.op.toString(16)}: ${reply.why}`);
      this.respond(command.op, 0, new Uint8Array([1, reply.error, 0, 0]));
      return;
    }
    const data = reply.data ?? new Uint8Array(0);
    const body = new Uint8Array(data.length + 4);
    body.set(data);
    const times = command.op === Op.SYNC ? 8 : 1;
    for (let i = 0; i < times; i++) this.respond(command.op, reply.value ?? 0, body);
    if (command.op === Op.CHANGE_BAUDRATE) this.options.onBaudRate?.(this.baudRate);
  }

  private respond(op: number, value: number, data: Uint8Array): void {
    this.options.send(slipEncode(encodeResponse(op, value, data)));
  }

  private refuse(why: string): void {
    this.refusals.push(why);
    if (this.refusals.length > 32) this.refusals.shift();
  }

  private async execute(command: CommandPacket): Promise<Reply> {
    const { op, data } = command;
    const w = words(data);
    const invalid = (why: string): Reply => ({ ok: false, error: RomError.INVALID_MESSAGE, why });
    switch (op) {
      case Op.SYNC:
        if (data.length !== SYNC_PAYLOAD.length || data.some((b, i) => b !== SYNC_PAYLOAD[i])) return invalid('SYNC payload is not 07 07 12 20 + 32 × 55');
        return { ok: true, value: SYNC_VALUE };
      case Op.READ_REG:
        if (data.length !== 4) return invalid(`READ_REG carries ${data.length} bytes, expected 4`);
        return { ok: true, value: w[0] === CHIP_DETECT_MAGIC_REG ? CHIPS[this.chip].magic : 0 };
      case Op.WRITE_REG:
        if (data.length !== 16 && data.length !== 32) return invalid(`WRITE_REG carries ${data.length} bytes, expected 16 or 32`);
        return { ok: true };
      case Op.GET_SECURITY_INFO: {
        const id = CHIPS[this.chip].securityChipId;
        if (id === undefined) {
          this.stats.unsupported++;
          return invalid('GET_SECURITY_INFO is not in the ESP32 ROM');
        }
        const info = new Uint8Array(20);
        new DataView(info.buffer).setUint32(12, id, true);
        return { ok: true, data: info };
      }
      case Op.SPI_ATTACH:
        if (data.length !== 8) return invalid(`SPI_ATTACH to the ROM carries 8 bytes, got ${data.length}`);
        this.attached = true;
        return { ok: true };
      case Op.SPI_SET_PARAMS: {
        if (data.length !== 24) return invalid(`SPI_SET_PARAMS carries 24 bytes, got ${data.length}`);
        const total = w[1];
        if (total === 0 || total > this.options.flash.status().size) return invalid(`flash size ${total} beyond the ${this.options.flash.status().size}-byte chip`);
        this.flashSize = total;
        return { ok: true };
      }
      case Op.CHANGE_BAUDRATE:
        if (data.length !== 8) return invalid(`CHANGE_BAUDRATE carries ${data.length} bytes, expected 8`);
        if (w[0] < 300 || w[0] > 5_000_000) return invalid(`baud rate ${w[0]} out of range`);
        this.baudRate = w[0];
        return { ok: true };
      case Op.FLASH_BEGIN:
      case Op.FLASH_DEFL_BEGIN:
        return this.begin(op === Op.FLASH_DEFL_BEGIN, data, w);
      case Op.FLASH_DATA:
      case Op.FLASH_DEFL_DATA:
        return this.block(op === Op.FLASH_DEFL_DATA, command);
      case Op.FLASH_END:
      case Op.FLASH_DEFL_END:
        if (data.length !== 4) return invalid(`END carries ${data.length} bytes, expected 4`);
        this.download = undefined;
        if (w[0] === 1) this.exited = true;
        return { ok: true };
      case Op.SPI_FLASH_MD5: {
        if (data.length !== 16) return invalid(`SPI_FLASH_MD5 carries ${data.length} bytes, expected 16`);
        const [address, size] = w;
        if (!this.attached) return { ok: false, error: RomError.FAILED_TO_ACT, why: 'SPI flash not attached (SPI_ATTACH first)' };
        if (address + size > this.flashSize) return { ok: false, error: RomError.FLASH_READ_LENGTH_ERROR, why: `MD5 of ${size} bytes at 0x${address.toString(16)} beyond the flash` };
        const bytes = new Uint8Array(size);
        this.options.flash.read(address, bytes);
        return { ok: true, data: new TextEncoder().encode(createHash('md5').update(bytes).digest('hex')) };
      }
      default:
        this.stats.unsupported++;
        return invalid(`command 0x${op.toString(16)} is not a ROM loader command (or not emulated)`);
    }
  }

  private begin(compressed: boolean, data: Uint8Array, w: number[]): Reply {
    const invalid = (why: string): Reply => ({ ok: false, error: RomError.INVALID_MESSAGE, why });
    if (data.length !== 16 && data.length !== 20) return invalid(`BEGIN carries ${data.length} bytes, expected 16 or 20`);
    if (!this.attached) return { ok: false, error: RomError.FAILED_TO_ACT, why: 'SPI flash not attached (SPI_ATTACH first)' };
    const [eraseSize, blocks, blockSize, offset] = w;
    if (data.length === 20 && w[4] !== 0) return invalid('encrypted download is not emulated');
    if (offset % SECTOR !== 0) return invalid(`offset 0x${offset.toString(16)} is not sector aligned`);
    if (blockSize === 0 || blockSize > MAX_BLOCK) return invalid(`block size ${blockSize} out of 1..${MAX_BLOCK}`);
    if (offset + eraseSize > this.flashSize) return invalid(`erase of ${eraseSize} bytes at 0x${offset.toString(16)} beyond the ${this.flashSize}-byte flash`);
    if (!compressed && blocks * blockSize > eraseSize + blockSize) return invalid(`${blocks} blocks of ${blockSize} do not fit the ${eraseSize}-byte erase`);
    this.download?.inflater?.close();
    const first = offset / SECTOR;
    const end = Math.ceil((offset + eraseSize) / SECTOR);
    for (let sector = first; sector < end; sector++) this.options.flash.eraseBlock(sector);
    this.stats.sectorsErased += end - first;
    this.download = { compressed, offset, eraseSize: (end - first) * SECTOR, blocks, blockSize, nextSeq: 0, written: 0, inflater: compressed ? new StreamingInflate() : undefined };
    return { ok: true };
  }

  private async block(compressed: boolean, command: CommandPacket): Promise<Reply> {
    const invalid = (why: string): Reply => ({ ok: false, error: RomError.INVALID_MESSAGE, why });
    const d = this.download;
    if (d === undefined || d.compressed !== compressed) return { ok: false, error: RomError.FAILED_TO_ACT, why: `DATA without a matching ${compressed ? 'FLASH_DEFL_BEGIN' : 'FLASH_BEGIN'}` };
    if (command.data.length < 16) return invalid(`DATA carries ${command.data.length} bytes, less than its 16-byte header`);
    const [length, seq] = words(command.data.subarray(0, 8));
    const payload = command.data.subarray(16);
    if (length !== payload.length) return invalid(`DATA header says ${length} bytes, ${payload.length} follow`);
    if (length === 0 || length > d.blockSize) return invalid(`block of ${length} bytes, expected 1..${d.blockSize}`);
    if (seq !== d.nextSeq) return invalid(`sequence ${seq}, expected ${d.nextSeq}`);
    if (seq >= d.blocks) return invalid(`block ${seq} beyond the ${d.blocks} announced`);
    if (checksum(payload) !== (command.checksum & 0xff) || command.checksum > 0xff) {
      this.stats.checksumErrors++;
      return { ok: false, error: RomError.INVALID_CRC, why: `checksum 0x${command.checksum.toString(16)}, computed 0x${checksum(payload).toString(16)}` };
    }
    let bytes: Uint8Array;
    if (d.inflater) {
      const room = d.eraseSize - d.written;
      const out = await d.inflater.push(payload, room);
      if (out.kind === 'error') return { ok: false, error: RomError.DEFLATE_ERROR, why: out.why };
      bytes = out.bytes;
    } else {
      bytes = payload;
      if (d.written + bytes.length > d.eraseSize) {
        // The padding of a last block may run past the erased region: only 0xFF may land there.
        const inside = d.eraseSize - d.written;
        if (bytes.subarray(inside).some((b) => b !== 0xff)) return invalid(`data beyond the ${d.eraseSize} bytes erased at 0x${d.offset.toString(16)}`);
        bytes = bytes.subarray(0, inside);
      }
    }
    if (bytes.length > 0) {
      if (d.offset + d.written + bytes.length > this.flashSize) return invalid('write beyond the flash');
      this.options.flash.write(d.offset + d.written, bytes);
      d.written += bytes.length;
      this.stats.bytesWritten += bytes.length;
    }
    d.nextSeq++;
    this.options.onFlashData?.({ compressed, offset: d.offset, written: d.written, seq });
    return { ok: true };
  }
}

/**
 * A zlib stream inflated block by block (node:zlib, asynchronous): each
 * push returns the bytes that block completed, refusing output beyond
 * `room` bytes in total.
 */
class StreamingInflate {
  private readonly z: Inflate = createInflate();
  private readonly out: Buffer[] = [];
  private failure: string | undefined;

  constructor() {
    this.z.on('readable', () => this.drain());
    this.z.on('error', (error) => (this.failure = error.message));
  }

  push(chunk: Uint8Array, room: number): Promise<{ kind: 'bytes'; bytes: Uint8Array } | { kind: 'error'; why: string }> {
    return new Promise((resolve) => {
      if (this.failure !== undefined) return resolve({ kind: 'error', why: `deflate error: ${this.failure}` });
      this.z.write(chunk, (error) => {
        this.drain();
        if (error || this.failure !== undefined) return resolve({ kind: 'error', why: `deflate error: ${error?.message ?? this.failure}` });
        const bytes = new Uint8Array(Buffer.concat(this.out.splice(0)));
        if (bytes.length > room) {
          this.failure = 'output beyond the declared size';
          return resolve({ kind: 'error', why: `inflated data runs ${bytes.length - room} bytes past the declared size` });
        }
        resolve({ kind: 'bytes', bytes });
      });
    });
  }

  close(): void {
    this.z.destroy();
  }

  private drain(): void {
    for (let chunk = this.z.read() as Buffer | null; chunk !== null; chunk = this.z.read() as Buffer | null) this.out.push(chunk);
  }
}
