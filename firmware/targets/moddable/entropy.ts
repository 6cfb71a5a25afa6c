/**
 * `Entropy` over ESP-IDF's `esp_fill_random` (glue `fillRandom`): the
 * hardware RNG, a true random source while Wi-Fi or Bluetooth runs (and
 * seeded from SAR ADC noise at boot otherwise; ESP-IDF "Random Number
 * Generation"). Moddable has no module for it.
 */
import type { Entropy } from '../../hal/entropy.ts';
import type { HoldfastNative } from './modules.ts';

export function createModdableEntropy(native: HoldfastNative): Entropy {
  return Object.freeze<Entropy>({
    fill(target: Uint8Array): void {
      if (!(target instanceof Uint8Array)) throw new TypeError('target must be a Uint8Array');
      if (target.length > 0) native.fillRandom(target);
    },
  });
}
