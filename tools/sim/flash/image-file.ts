/**
 * Flash images on disk (Node only), so a failing power cut can be replayed,
 * inspected and shared. A raw dump (`esptool read_flash` output) loads with
 * `loadRawImage`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { SimFlash, type FlashMode, type SimFlashSnapshot } from './sim-flash.ts';
import { decodeImage, encodeImage } from './image-codec.ts';

export function saveImage(path: string, source: SimFlash | SimFlashSnapshot): void {
  writeFileSync(path, encodeImage(source));
}

export function loadImage(path: string): SimFlash {
  return decodeImage(new Uint8Array(readFileSync(path)));
}

/** A raw partition dump: contents only; strict-mode unit state is inferred (non-0xFF units count as programmed). */
export function loadRawImage(path: string, options: { mode?: FlashMode; blockLength?: number } = {}): SimFlash {
  const data = new Uint8Array(readFileSync(path));
  const blockLength = options.blockLength ?? 4096;
  if (data.length === 0 || data.length % blockLength !== 0) {
    throw new Error(`raw image of ${data.length} bytes is not a whole number of ${blockLength}-byte blocks`);
  }
  const flash = new SimFlash({ blocks: data.length / blockLength, blockLength, mode: options.mode });
  flash.data.set(data);
  return flash.deriveUnitsFromContents();
}
