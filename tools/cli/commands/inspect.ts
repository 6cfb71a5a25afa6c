/**
 * `holdfast inspect <image.hfimg>`: what a saved flash image holds (the
 * demo's, a failing power-cut run's): geometry, mode, erase counts, how much
 * is programmed. Read with its size checked first; a damaged header is
 * refused naming the field.
 */
import type { Command } from 'commander';
import { CliError } from '../errors.ts';
import { readInput } from '../files.ts';

/** 64 MiB of partition, its unit map and counts: far above any ESP32 data partition. */
export const MAX_FLASH_IMAGE_BYTES = 96 * 1024 * 1024;

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('describe a flash image file (.hfimg: holdfast demo, power-cut runs): geometry, mode, erase counts, programmed bytes')
    .argument('<image>', 'flash image file (.hfimg)')
    .option('--json', 'print {file, mode, blocks, blockLength, writeAlign, bytes, programmedBytes, eraseCounts}')
    .action(async (image: string, flags: { json?: boolean }) => {
      const bytes = readInput(image, 'a holdfast flash image (.hfimg)', MAX_FLASH_IMAGE_BYTES);
      const { decodeImage } = await import('../../sim/flash/image-codec.ts');
      let flash;
      try {
        flash = decodeImage(bytes);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        const field = /header field (\w+)/.exec(message)?.[1];
        throw new CliError(message.replace(/^flash image header field \w+: /, ''), { file: image, field: field ?? 'header', code: 'invalid-file' });
      }
      const snap = flash.snapshot();
      const programmedBytes = snap.data.reduce((n, b) => n + (b === 0xff ? 0 : 1), 0);
      const info = { file: image, mode: snap.mode, blocks: snap.blocks, blockLength: snap.blockLength, writeAlign: snap.writeAlign, bytes: snap.data.length, programmedBytes, eraseCounts: Array.from(snap.eraseCounts) };
      if (flags.json) console.log(JSON.stringify(info, null, 2));
      else {
        console.log(`${image}: ${info.mode} NOR flash, ${info.blocks} blocks of ${info.blockLength} bytes, write unit ${info.writeAlign}`);
        console.log(`${programmedBytes} of ${info.bytes} bytes programmed (not 0xFF); erase counts ${info.eraseCounts.join(', ')}`);
      }
    });
}
