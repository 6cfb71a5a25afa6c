/**
 * App files for the sign/verify CLI tests: valid ESP-IDF app images
 * (tools/sim/bootloader.ts buildAppImage: esp_app_desc_t with the decimal
 * version, checksum, appended SHA-256), as `holdfast sign` requires.
 */
import { writeFileSync } from 'node:fs';
import { sha256 } from '@noble/hashes/sha2.js';
import { buildAppImage } from '../../tools/sim/bootloader.ts';

export interface EspImageOptions {
  imageVersion: number;
  securityVersion: number;
  /** Bytes of body after the app description (default 4000). */
  bodyLength?: number;
  /** esp_chip_id_t; default ESP32 (the test board esp32-wroom-32e-4mb). */
  chipId?: number;
}

export function espImage(options: EspImageOptions): Uint8Array {
  return buildAppImage({ imageVersion: options.imageVersion, secureVersion: options.securityVersion, chipId: options.chipId }, options.bodyLength ?? 4000, () => sha256.create());
}

/** Write an ESP-IDF app image to `path`; returns its bytes. */
export function writeEspImage(path: string, options: EspImageOptions): Uint8Array {
  const bytes = espImage(options);
  writeFileSync(path, bytes);
  return bytes;
}
