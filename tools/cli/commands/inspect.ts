/**
 * `holdfast inspect <image.hfimg>`: what a saved flash image holds (the
 * demo's, a failing power-cut run's, a simulated fleet device's): geometry,
 * mode, erase counts, how much is programmed; for a runtime device's image
 * (`holdfast sim --keep-flash`) also its counter, outbox, audit log,
 * otadata and slots, and trust store, each store that does not open named
 * as damaged (tools/inspect/runtime-image.ts). Read with its size checked
 * first; a damaged header is refused naming the field.
 */
import type { Command } from 'commander';
import { CliError } from '../errors.ts';
import { readInput } from '../files.ts';

/** 64 MiB of partition, its unit map and counts: far above any ESP32 data partition. */
export const MAX_FLASH_IMAGE_BYTES = 96 * 1024 * 1024;

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('describe a flash image file (.hfimg: holdfast demo, power-cut runs, holdfast sim devices): geometry, mode, erase counts, programmed bytes; a sim device\'s counter, outbox, audit log, otadata and trust store')
    .argument('<image>', 'flash image file (.hfimg)')
    .option('--json', 'print {file, mode, blocks, blockLength, writeAlign, bytes, programmedBytes, eraseCounts, runtime}')
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
      const { readRuntimeImage, runtimeImageLines, runtimeLayoutFor } = await import('../../inspect/runtime-image.ts');
      const layout = runtimeLayoutFor(snap.blocks, snap.blockLength);
      // A runtime device's image (its size fits the layout) with its factory stores: read each; anything else is described as flash only.
      const runtime = layout === undefined ? null : readRuntimeImage(flash, layout);
      const info = { file: image, mode: snap.mode, blocks: snap.blocks, blockLength: snap.blockLength, writeAlign: snap.writeAlign, bytes: snap.data.length, programmedBytes, eraseCounts: Array.from(snap.eraseCounts), runtime };
      if (flags.json) console.log(JSON.stringify(info, null, 2));
      else {
        console.log(`${image}: ${info.mode} NOR flash, ${info.blocks} blocks of ${info.blockLength} bytes, write unit ${info.writeAlign}`);
        console.log(`${programmedBytes} of ${info.bytes} bytes programmed (not 0xFF); erase counts ${info.eraseCounts.join(', ')}`);
        if (runtime === null) console.log('not a holdfast sim device image (its size fits no runtime layout): flash only');
        else for (const line of runtimeImageLines(runtime)) console.log(line);
      }
    });
}
