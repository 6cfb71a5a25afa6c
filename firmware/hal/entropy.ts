/** Random bytes from the platform (the ESP32 hardware RNG on the device). */
export interface Entropy {
  /** Fill `target` with random bytes. */
  fill(target: Uint8Array): void;
}
