/**
 * Seeded pseudo-random numbers for the simulator (SplitMix32-style mixing).
 * Engine-neutral and deterministic: the same seed gives the same torn writes
 * in Node and in XS, so a failing cut replays exactly anywhere.
 */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Next unsigned 32-bit value. */
  nextU32(): number {
    this.state = (this.state + 0x9e3779b9) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  }

  /** Integer in [0, bound). */
  below(bound: number): number {
    if (bound <= 0) return 0;
    return Math.floor((this.nextU32() / 0x1_0000_0000) * bound);
  }

  /** Integer in [low, high]. */
  between(low: number, high: number): number {
    return low + this.below(high - low + 1);
  }

  chance(probability: number): boolean {
    return this.nextU32() / 0x1_0000_0000 < probability;
  }

  fill(target: Uint8Array): void {
    for (let i = 0; i < target.length; i++) target[i] = this.nextU32() & 0xff;
  }
}

/**
 * Derive a seed for sub-case `parts` of a run from its base seed. The base
 * is mixed before any part is folded in, and each part after the previous,
 * so (base, parts) families never overlap by XOR symmetry.
 */
export function deriveSeed(base: number, ...parts: number[]): number {
  let h = new Rng(base ^ 0x6a09e667).nextU32();
  for (const p of parts) h = new Rng((h ^ Math.imul(p >>> 0, 0x9e3779b1)) >>> 0).nextU32();
  return h;
}
