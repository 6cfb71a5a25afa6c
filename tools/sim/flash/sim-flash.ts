/**
 * Simulated NOR flash partition with power-cut injection (docs/spec/sim-flash.md).
 *
 * Engine-neutral (no Node APIs): it runs in Node and, bundled, inside XS.
 *
 * - `eraseBlock` sets a block to 0xFF; `write` can only clear bits.
 * - plain mode: program unit 1 byte; re-programming is allowed (bits AND);
 *   an attempt to set a bit back to 1 is ignored, recorded or thrown, as
 *   configured.
 * - strict mode (ESP32 flash encryption): program unit 16 bytes, aligned, and
 *   a unit may be programmed once between erases. A violation is a firmware
 *   bug and throws FlashMisuse.
 * - A power cut armed at operation N (writes and erases counted together,
 *   from 0) tears that operation, then the flash is off: every call throws
 *   PowerCut until `powerOn()` (the reboot).
 */
import { Rng } from '../rng.ts';
import { FlashMisuse, PowerCut } from './errors.ts';
import type { FlashPartition, FlashStatus } from '../../../firmware/hal/flash.ts';

export type FlashMode = 'plain' | 'strict';
/**
 * How a write cut short lands (docs/spec/sim-flash.md, "Power cuts"):
 * - 'prefix': the bytes (plain) or units (strict) land in address order up
 *   to a random point; the model the runner used first, kept byte-identical
 *   so old replays stay exact;
 * - 'bit-subset': any subset of the intended bit clears lands, anywhere in
 *   the range (plain), or any subset of whole units lands with any of the
 *   others decrypting to garbage (strict), as real NOR programmed in
 *   parallel can leave it.
 */
export type TearMode = 'prefix' | 'bit-subset';
export type BitSetPolicy = 'ignore' | 'record' | 'throw';

export interface SimFlashOptions {
  blocks: number;
  blockLength?: number;
  mode?: FlashMode;
  /** Program unit; defaults to 1 (plain) or 16 (strict). */
  writeAlign?: number;
  /** Plain mode: what to do when a write asks to set a 0 bit back to 1. */
  onBitSet?: BitSetPolicy;
}

export interface FlashCounters {
  bytesProgrammed: number;
  bytesRead: number;
  erases: number;
  reads: number;
  writes: number;
  /** Writes plus erases: the operations a power cut is counted against. */
  operations: number;
}

export interface CutPlan {
  /** Operation index (counted from now) that the cut tears. */
  atOperation: number;
  /** Seed for the torn result. */
  seed: number;
  /** How a torn write lands; 'prefix' when absent. Erases tear the same way in both modes. */
  tear?: TearMode;
}

export interface TornReport {
  kind: 'write' | 'erase';
  operation: number;
  byteOffset: number;
  byteLength: number;
}

export const DEFAULT_BLOCK_LENGTH = 4096;
export const STRICT_WRITE_ALIGN = 16;
const ERASED = 0xff;

export class SimFlash implements FlashPartition {
  readonly mode: FlashMode;
  readonly blockLength: number;
  readonly blocks: number;
  readonly writeAlign: number;
  readonly onBitSet: BitSetPolicy;
  readonly data: Uint8Array;
  /** Strict mode: 1 where a program unit was written since its last erase. */
  readonly unitProgrammed: Uint8Array;
  readonly eraseCounts: Uint32Array;
  readonly counters: FlashCounters = zeroCounters();
  /** Plain mode with onBitSet 'record': every offending write. */
  readonly bitSetAttempts: string[] = [];
  private cut: CutPlan | undefined;
  private operationsSinceArm = 0;
  private powered = true;
  private lastTorn: TornReport | undefined;

  constructor(options: SimFlashOptions) {
    this.mode = options.mode ?? 'plain';
    this.blockLength = options.blockLength ?? DEFAULT_BLOCK_LENGTH;
    this.blocks = options.blocks;
    this.writeAlign = options.writeAlign ?? (this.mode === 'strict' ? STRICT_WRITE_ALIGN : 1);
    this.onBitSet = options.onBitSet ?? 'ignore';
    if (!Number.isInteger(this.writeAlign) || this.writeAlign < 1) throw new RangeError(`writeAlign must be a positive integer, got ${this.writeAlign}`);
    if (!Number.isInteger(this.blocks) || this.blocks < 1) throw new RangeError(`blocks must be a positive integer, got ${this.blocks}`);
    if (!Number.isInteger(this.blockLength) || this.blockLength < 16) throw new RangeError(`blockLength must be an integer of at least 16 bytes, got ${this.blockLength}`);
    if (this.blockLength % this.writeAlign !== 0) throw new RangeError(`blockLength ${this.blockLength} must be a multiple of writeAlign ${this.writeAlign}`);
    this.data = new Uint8Array(this.blocks * this.blockLength).fill(ERASED);
    this.unitProgrammed = new Uint8Array(this.data.length / this.writeAlign);
    this.eraseCounts = new Uint32Array(this.blocks);
  }

  status(): FlashStatus {
    return {
      size: this.data.length,
      blockLength: this.blockLength,
      blocks: this.blocks,
      writeAlign: this.writeAlign,
      eraseValue: ERASED,
    };
  }

  read(byteOffset: number, target: Uint8Array): void {
    this.requirePower();
    this.requireRange('read', byteOffset, target.length);
    target.set(this.data.subarray(byteOffset, byteOffset + target.length));
    this.counters.reads++;
    this.counters.bytesRead += target.length;
  }

  write(byteOffset: number, data: Uint8Array): void {
    this.requirePower();
    this.requireRange('write', byteOffset, data.length);
    if (byteOffset % this.writeAlign !== 0 || data.length % this.writeAlign !== 0) {
      throw new FlashMisuse(`write of ${data.length} bytes at ${byteOffset} is not aligned to the ${this.writeAlign}-byte program unit`);
    }
    if (this.mode === 'strict') this.requireUnitsErased(byteOffset, data.length);
    else this.checkBitSet(byteOffset, data);
    const operation = this.beginOperation();
    if (operation.tear) {
      this.tearWrite(byteOffset, data, operation.tear);
      this.lastTorn = { kind: 'write', operation: operation.index, byteOffset, byteLength: data.length };
      this.powerOff(operation.index);
    }
    for (let i = 0; i < data.length; i++) this.data[byteOffset + i] &= data[i];
    this.markUnits(byteOffset, data.length, 1);
    this.counters.writes++;
    this.counters.bytesProgrammed += data.length;
  }

  eraseBlock(block: number): void {
    this.requirePower();
    if (!Number.isInteger(block) || block < 0 || block >= this.blocks) {
      throw new FlashMisuse(`erase of block ${block} outside 0..${this.blocks - 1}`);
    }
    const start = block * this.blockLength;
    const operation = this.beginOperation();
    this.eraseCounts[block]++;
    if (operation.tear) {
      this.tearErase(start, operation.tear.rng);
      this.lastTorn = { kind: 'erase', operation: operation.index, byteOffset: start, byteLength: this.blockLength };
      this.powerOff(operation.index);
    }
    this.data.fill(ERASED, start, start + this.blockLength);
    this.markUnits(start, this.blockLength, 0);
    this.counters.erases++;
  }

  /** Arm a power cut: the `plan.atOperation`-th write or erase from now tears. */
  armCut(plan: CutPlan): void {
    if (!Number.isInteger(plan.atOperation) || plan.atOperation < 0) throw new RangeError(`bad cut operation ${plan.atOperation}`);
    if (plan.tear !== undefined && plan.tear !== 'prefix' && plan.tear !== 'bit-subset') throw new RangeError(`bad tear mode ${String(plan.tear)}`);
    this.cut = { ...plan };
    this.operationsSinceArm = 0;
  }

  disarmCut(): void {
    this.cut = undefined;
  }

  get isPowered(): boolean {
    return this.powered;
  }

  /** The reboot after a cut: flash contents stay, the cut is consumed. */
  powerOn(): void {
    this.powered = true;
  }

  /** What the last cut tore, for failure reports. */
  lastTornOperation(): TornReport | undefined {
    return this.lastTorn;
  }

  /**
   * After bytes were changed behind the flash's back (`data` edited to
   * inject damage, a raw dump loaded): a unit counts as programmed exactly
   * when it is not all 0xFF, as real hardware would see it. With `offsets`,
   * only the units holding those bytes.
   */
  deriveUnitsFromContents(offsets?: Iterable<number>): this {
    const units = offsets === undefined ? this.unitProgrammed.keys() : [...offsets].map((o) => Math.floor(o / this.writeAlign));
    for (const unit of units) {
      const from = unit * this.writeAlign;
      let erased = true;
      for (let i = from; i < from + this.writeAlign; i++) if (this.data[i] !== ERASED) erased = false;
      this.unitProgrammed[unit] = erased ? 0 : 1;
    }
    return this;
  }

  resetCounters(): void {
    Object.assign(this.counters, zeroCounters());
  }

  /** Copy of contents, unit state and erase counts (for images and forks). */
  snapshot(): SimFlashSnapshot {
    return {
      mode: this.mode,
      blockLength: this.blockLength,
      blocks: this.blocks,
      writeAlign: this.writeAlign,
      data: this.data.slice(),
      unitProgrammed: this.unitProgrammed.slice(),
      eraseCounts: this.eraseCounts.slice(),
    };
  }

  static fromSnapshot(snapshot: SimFlashSnapshot, options: Pick<SimFlashOptions, 'onBitSet'> = {}): SimFlash {
    const flash = new SimFlash({
      blocks: snapshot.blocks,
      blockLength: snapshot.blockLength,
      mode: snapshot.mode,
      writeAlign: snapshot.writeAlign,
      onBitSet: options.onBitSet,
    });
    flash.data.set(snapshot.data);
    flash.unitProgrammed.set(snapshot.unitProgrammed);
    flash.eraseCounts.set(snapshot.eraseCounts);
    return flash;
  }

  /** Counts the operation; returns the torn-result generator if the cut strikes now. */
  private beginOperation(): { index: number; tear: { rng: Rng; mode: TearMode } | undefined } {
    const index = this.counters.operations++;
    const plan = this.cut;
    const sinceArm = this.operationsSinceArm++;
    if (plan === undefined || sinceArm !== plan.atOperation) return { index, tear: undefined };
    this.cut = undefined;
    return { index, tear: { rng: new Rng(plan.seed), mode: plan.tear ?? 'prefix' } };
  }

  /**
   * 'prefix' tears. Plain: a prefix of the bytes lands, then the next byte
   * gets an arbitrary subset of the bits it was to clear. Strict: whole units
   * before the tear land; the unit in flight is left erased or decrypts to
   * garbage and counts as programmed. The random draws must stay exactly
   * these: recorded replays (seed, operation) depend on them.
   */
  private tearWrite(byteOffset: number, data: Uint8Array, tear: { rng: Rng; mode: TearMode }): void {
    if (tear.mode === 'bit-subset') {
      if (this.mode === 'strict') this.tearUnitsSubset(byteOffset, data, tear.rng);
      else this.tearBitsSubset(byteOffset, data, tear.rng);
      return;
    }
    const rng = tear.rng;
    if (this.mode === 'strict') {
      const units = data.length / this.writeAlign;
      const done = rng.below(units + 1);
      const doneBytes = done * this.writeAlign;
      for (let i = 0; i < doneBytes; i++) this.data[byteOffset + i] &= data[i];
      this.markUnits(byteOffset, doneBytes, 1);
      if (done < units && rng.chance(0.75)) {
        const torn = this.data.subarray(byteOffset + doneBytes, byteOffset + doneBytes + this.writeAlign);
        rng.fill(torn);
        this.markUnits(byteOffset + doneBytes, this.writeAlign, 1);
      }
      this.counters.bytesProgrammed += doneBytes;
      return;
    }
    const prefix = rng.below(data.length + 1);
    for (let i = 0; i < prefix; i++) this.data[byteOffset + i] &= data[i];
    if (prefix < data.length) this.data[byteOffset + prefix] &= data[prefix] | (rng.nextU32() & 0xff);
    this.counters.bytesProgrammed += prefix;
  }

  /**
   * Plain, bit-subset: any subset of the bit clears the write asked for
   * lands, anywhere in the range; bits it leaves at 1 are never touched (a
   * cut cannot clear a bit the program did not ask for). Three styles, one
   * per tear, so that both ends are well covered:
   * 0. each clear lands independently, with a landing probability drawn once
   *    per tear (some tears leave almost nothing, some almost everything);
   * 1. every clear lands but 1..4 (a write that all but finished: a mark
   *    written last can read complete over a body missing a bit);
   * 2. only 1..4 clears land (a write that had barely started).
   */
  private tearBitsSubset(byteOffset: number, data: Uint8Array, rng: Rng): void {
    const clears: number[] = [];
    for (let i = 0; i < data.length; i++) {
      const clear = this.data[byteOffset + i] & ~data[i] & 0xff;
      for (let bit = 0; bit < 8; bit++) if ((clear >> bit) & 1) clears.push(i * 8 + bit);
    }
    const style = rng.below(3);
    const landed = new Uint8Array(clears.length);
    if (style === 0) {
      const landing = rng.nextU32() / 0x1_0000_0000;
      for (let k = 0; k < clears.length; k++) landed[k] = rng.chance(landing) ? 1 : 0;
    } else {
      landed.fill(style === 1 ? 1 : 0);
      const few = Math.min(clears.length, 1 + rng.below(4));
      for (let picked = 0; picked < few; ) {
        const k = rng.below(clears.length);
        if (landed[k] === (style === 1 ? 1 : 0)) {
          landed[k] ^= 1;
          picked++;
        }
      }
    }
    const before = this.data.slice(byteOffset, byteOffset + data.length);
    for (let k = 0; k < clears.length; k++) if (landed[k]) this.data[byteOffset + (clears[k] >> 3)] &= ~(1 << (clears[k] & 7));
    for (let i = 0; i < data.length; i++) if (this.data[byteOffset + i] === (before[i] & data[i])) this.counters.bytesProgrammed++;
  }

  /**
   * Strict, bit-subset: the analogue under flash encryption. A unit whose
   * ciphertext bits all landed decrypts to the intended bytes; one where
   * none landed still reads 0xFF and stays writable; one where some landed
   * decrypts to unrelated bytes and counts as programmed. Any unit of the
   * range can end in any of the three states, not only in address order
   * ('prefix' lands whole units in order and garbles at most the one in
   * flight). Styles as in plain mode, per unit instead of per bit: each unit
   * independently; all units but 1..2; only 1..2 units. A unit that does
   * not land is left erased or garbled, even odds, per unit.
   */
  private tearUnitsSubset(byteOffset: number, data: Uint8Array, rng: Rng): void {
    const units = data.length / this.writeAlign;
    const style = rng.below(3);
    const landed = new Uint8Array(units);
    if (style === 0) {
      const landing = rng.nextU32() / 0x1_0000_0000;
      for (let u = 0; u < units; u++) landed[u] = rng.chance(landing) ? 1 : 0;
    } else {
      landed.fill(style === 1 ? 1 : 0);
      const few = Math.min(units, 1 + rng.below(2));
      for (let picked = 0; picked < few; ) {
        const u = rng.below(units);
        if (landed[u] === (style === 1 ? 1 : 0)) {
          landed[u] ^= 1;
          picked++;
        }
      }
    }
    for (let u = 0; u < units; u++) {
      const from = u * this.writeAlign;
      const unit = this.data.subarray(byteOffset + from, byteOffset + from + this.writeAlign);
      if (landed[u]) {
        for (let i = 0; i < this.writeAlign; i++) unit[i] &= data[from + i];
        this.counters.bytesProgrammed += this.writeAlign;
      } else if (rng.chance(0.5)) rng.fill(unit);
      else continue;
      this.markUnits(byteOffset + from, this.writeAlign, 1);
    }
  }

  /**
   * Any mix of old bits and erased bits: per byte, old, erased, or a random
   * bitwise mix. In strict mode a unit that did not come out all 0xFF is not
   * writable (real hardware would give garbage on top of it).
   */
  private tearErase(start: number, rng: Rng): void {
    const style = rng.below(3);
    for (let i = start; i < start + this.blockLength; i++) {
      const pick = style === 0 ? rng.below(3) : style === 1 ? (i - start < rng.below(this.blockLength) ? 1 : 0) : 2;
      if (pick === 1) this.data[i] = ERASED;
      else if (pick === 2) this.data[i] |= rng.nextU32() & 0xff;
    }
    for (let unit = start / this.writeAlign; unit < (start + this.blockLength) / this.writeAlign; unit++) {
      const from = unit * this.writeAlign;
      let erased = true;
      for (let i = from; i < from + this.writeAlign; i++) if (this.data[i] !== ERASED) erased = false;
      this.unitProgrammed[unit] = erased ? 0 : 1;
    }
  }

  private powerOff(operation: number): never {
    this.powered = false;
    throw new PowerCut(operation);
  }

  private requirePower(): void {
    if (!this.powered) throw new PowerCut(this.counters.operations);
  }

  private requireRange(what: string, byteOffset: number, byteLength: number): void {
    if (!Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset + byteLength > this.data.length) {
      throw new FlashMisuse(`${what} of ${byteLength} bytes at ${byteOffset} outside the ${this.data.length}-byte partition`);
    }
  }

  private requireUnitsErased(byteOffset: number, byteLength: number): void {
    for (let unit = byteOffset / this.writeAlign; unit < (byteOffset + byteLength) / this.writeAlign; unit++) {
      if (this.unitProgrammed[unit]) {
        throw new FlashMisuse(`strict mode: the ${this.writeAlign}-byte unit at ${unit * this.writeAlign} was already programmed since its block's last erase`);
      }
    }
  }

  private checkBitSet(byteOffset: number, data: Uint8Array): void {
    if (this.onBitSet === 'ignore') return;
    for (let i = 0; i < data.length; i++) {
      if ((~this.data[byteOffset + i] & data[i] & 0xff) !== 0) {
        const message = `write at ${byteOffset + i} asks to set bits back to 1 (0x${hex(this.data[byteOffset + i])} -> 0x${hex(data[i])})`;
        if (this.onBitSet === 'throw') throw new FlashMisuse(message);
        this.bitSetAttempts.push(message);
        return;
      }
    }
  }

  private markUnits(byteOffset: number, byteLength: number, value: 0 | 1): void {
    this.unitProgrammed.fill(value, byteOffset / this.writeAlign, (byteOffset + byteLength) / this.writeAlign);
  }
}

export interface SimFlashSnapshot {
  mode: FlashMode;
  blockLength: number;
  blocks: number;
  writeAlign: number;
  data: Uint8Array;
  unitProgrammed: Uint8Array;
  eraseCounts: Uint32Array;
}

function zeroCounters(): FlashCounters {
  return { bytesProgrammed: 0, bytesRead: 0, erases: 0, reads: 0, writes: 0, operations: 0 };
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, '0');
}
