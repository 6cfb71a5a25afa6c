/**
 * The damage suite's harness: populate a store on a simulated flash, then
 * for every damage of the chosen kinds restore that image, damage it, open
 * the store again and let the subject check what it reads.
 *
 * Damage kinds (each over the byte range the subject names, usually every
 * byte of the store's blocks):
 * - 'bit': one bit flipped at every byte (every bit with `allBits`);
 * - 'unit': every 16-byte unit overwritten with garbage, and erased to 0xFF;
 * - 'entry': every entry the subject lists overwritten with garbage, and erased;
 * - 'block': every block overwritten with garbage, and erased.
 *
 * The subject's `verify` decides what "never lower, never empty" means for
 * its store and returns 'recovered' or 'refused' (it must check that a
 * refusal is typed); anything else is a CheckFailure naming the damage.
 * Engine-neutral: it uses its own local SimFlash, in Node and in XS alike.
 */
import { SimFlash, type SimFlashOptions } from '../../tools/sim/flash/sim-flash.ts';
import { deriveSeed, Rng } from '../../tools/sim/rng.ts';
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { CheckFailure } from './check.ts';

export type DamageKind = 'bit' | 'unit' | 'entry' | 'block';
export const DAMAGE_KINDS: readonly DamageKind[] = Object.freeze(['bit', 'unit', 'entry', 'block']);

export interface Damage {
  readonly kind: DamageKind;
  readonly byteOffset: number;
  readonly byteLength: number;
  /** 'bit': the bit flipped (0..7); otherwise undefined. */
  readonly bit?: number;
  /** 'unit', 'entry', 'block': garbage written, or erased to 0xFF. */
  readonly fill?: 'garbage' | 'erased';
  readonly describe: string;
}

export interface ByteRange {
  readonly byteOffset: number;
  readonly byteLength: number;
}

export interface DamageSubject<Facts> {
  readonly name: string;
  readonly flash: SimFlashOptions;
  /** Build the store's history on the fresh flash; return what the test knows was durably written. */
  populate(flash: FlashPartition): Facts;
  /** Bytes to damage (default: the whole partition). */
  ranges?(facts: Facts): readonly ByteRange[];
  /** The entries of the populated image, for the 'entry' kind (default: none). */
  entries?(flash: SimFlash, facts: Facts): readonly ByteRange[];
  /**
   * Open the store from the damaged flash and check it against `facts`:
   * 'recovered' when it opened and read nothing below what was durably
   * written (and nothing newer read as empty), 'refused' when it threw the
   * store's typed error. Throw a CheckFailure otherwise.
   */
  verify(flash: SimFlash, facts: Facts, damage: Damage): 'recovered' | 'refused';
}

export interface DamageOptions {
  kinds?: readonly DamageKind[];
  /** 'bit': flip every bit of every byte, not one bit per byte. */
  allBits?: boolean;
  seed?: number;
}

export interface DamageReport {
  readonly cases: number;
  readonly recovered: number;
  readonly refused: number;
  /** Damages that left the bytes unchanged (garbage equal to what was there, an erase of erased bytes): not counted. */
  readonly unchanged: number;
}

const UNIT = 16;
const DEFAULT_SEED = 0xda3a6e;

/** Populate once, then verify the store after every damage of every kind. */
export function runDamageSuite<F>(subject: DamageSubject<F>, options: DamageOptions = {}): DamageReport {
  const flash = new SimFlash(subject.flash);
  const facts = subject.populate(flash);
  const image = flash.snapshot();
  const ranges = subject.ranges?.(facts) ?? [{ byteOffset: 0, byteLength: flash.data.length }];
  const entries = subject.entries?.(flash, facts) ?? [];
  const seed = options.seed ?? DEFAULT_SEED;
  let cases = 0;
  let recovered = 0;
  let refused = 0;
  let unchanged = 0;
  for (const damage of listDamages(ranges, entries, flash.blockLength, options)) {
    flash.data.set(image.data);
    flash.unitProgrammed.set(image.unitProgrammed);
    if (!applyDamage(flash, damage, new Rng(deriveSeed(seed, damage.byteOffset, damage.bit ?? 8, damage.byteLength)))) {
      unchanged++;
      continue;
    }
    // Only the damaged units can have changed state: the rest was restored with the image.
    flash.deriveUnitsFromContents(unitOffsets(damage, flash.writeAlign));
    cases++;
    let verdict: 'recovered' | 'refused';
    try {
      verdict = subject.verify(flash, facts, damage);
    } catch (error) {
      const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      throw new CheckFailure(`[${subject.name}] after ${damage.describe}: ${text}`);
    }
    if (verdict === 'recovered') recovered++;
    else refused++;
  }
  return { cases, recovered, refused, unchanged };
}

/** Every damage of the chosen kinds over `ranges` (entries for 'entry', whole blocks for 'block'). */
export function listDamages(
  ranges: readonly ByteRange[],
  entries: readonly ByteRange[],
  blockLength: number,
  options: DamageOptions = {},
): Damage[] {
  const kinds = options.kinds ?? DAMAGE_KINDS;
  const out: Damage[] = [];
  if (kinds.includes('bit')) {
    for (const range of ranges) {
      for (let at = range.byteOffset; at < range.byteOffset + range.byteLength; at++) {
        const bits = options.allBits ? [0, 1, 2, 3, 4, 5, 6, 7] : [at % 8];
        for (const bit of bits) out.push({ kind: 'bit', byteOffset: at, byteLength: 1, bit, describe: `bit ${bit} of byte ${at} flipped` });
      }
    }
  }
  const regions = (kind: DamageKind, list: readonly ByteRange[]) => {
    for (const r of list) {
      for (const fill of ['garbage', 'erased'] as const) {
        out.push({ kind, byteOffset: r.byteOffset, byteLength: r.byteLength, fill, describe: `${kind} [${r.byteOffset}, ${r.byteOffset + r.byteLength}) ${fill === 'garbage' ? 'overwritten with garbage' : 'erased to 0xFF'}` });
      }
    }
  };
  if (kinds.includes('unit')) regions('unit', split(ranges, UNIT));
  if (kinds.includes('entry')) regions('entry', entries);
  if (kinds.includes('block')) regions('block', split(ranges, blockLength));
  return out;
}

/** Apply `damage` to the flash contents; false when the bytes did not change. */
export function applyDamage(flash: SimFlash, damage: Damage, rng: Rng): boolean {
  const bytes = flash.data.subarray(damage.byteOffset, damage.byteOffset + damage.byteLength);
  const before = bytes.slice();
  if (damage.kind === 'bit') bytes[0] ^= 1 << (damage.bit ?? 0);
  else if (damage.fill === 'erased') bytes.fill(0xff);
  else rng.fill(bytes);
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== before[i]) return true;
  return false;
}

/** One byte offset in each program unit `damage` touched. */
function unitOffsets(damage: Damage, writeAlign: number): number[] {
  const offsets: number[] = [];
  const first = damage.byteOffset - (damage.byteOffset % writeAlign);
  for (let at = first; at < damage.byteOffset + damage.byteLength; at += writeAlign) offsets.push(at);
  return offsets;
}

/** The aligned `size`-byte pieces that cover `ranges`. */
function split(ranges: readonly ByteRange[], size: number): ByteRange[] {
  const out: ByteRange[] = [];
  const seen = new Set<number>();
  for (const range of ranges) {
    const first = Math.floor(range.byteOffset / size) * size;
    for (let at = first; at < range.byteOffset + range.byteLength; at += size) {
      if (seen.has(at)) continue;
      seen.add(at);
      out.push({ byteOffset: at, byteLength: size });
    }
  }
  return out;
}
