/**
 * The Moddable HAL over each board's real partition table answers every
 * label the runtime asks for (PARTITION_LABELS): the hf_* data partitions
 * through the flash module by label, otadata as the boot control's, and
 * ota_0 / ota_1 as the app slots (ESP32's flash module opens app partitions
 * only as "running" / "nextota"; the HAL maps them from the running
 * partition's label). Node only: the board tables come from board.json
 * (loadBoard reads files); the label mapping itself is also covered in both
 * engines by moddable-hal.cases.ts and moddable-device.cases.ts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PARTITION_LABELS } from '../../firmware/runtime/boot.ts';
import { createModdableHal } from '../../firmware/targets/moddable/hal.ts';
import { listBoards, loadBoard } from '../../tools/boards/board.ts';
import { SimFlash } from '../../tools/sim/flash/sim-flash.ts';
import { createEmuModdable, type EmuPartition } from '../../tools/xs/moddable-emu/index.ts';

describe("Moddable HAL over every board's partition table: every runtime label opens", () => {
  for (const id of listBoards()) {
    for (const running of ['ota_0', 'ota_1'] as const) {
      it(`${id}, running ${running}`, () => {
        const board = loadBoard(id);
        const partitions: Record<string, EmuPartition> = {};
        for (const p of board.partitions) {
          const encrypted = p.flags.split(':').includes('encrypted');
          partitions[p.name] = { flash: new SimFlash({ blocks: p.size / board.flash.blockLength, blockLength: board.flash.blockLength, mode: encrypted ? 'strict' : 'plain' }), encrypted };
        }
        const emu = createEmuModdable({ partitions, runningPartition: running });
        const hal = createModdableHal(emu.modules, { writeLine: () => {} });
        for (const label of Object.values(PARTITION_LABELS)) {
          const opened = hal.partition(label);
          assert.ok(opened !== undefined, `${id}: the HAL opens ${label}`);
          const p = board.partitions.find((q) => q.name === label)!;
          assert.equal(opened.status().size, p.size, `${label}: the board's size`);
        }
        assert.equal(hal.partition(PARTITION_LABELS.otadata), hal.otadata);
        assert.equal(hal.partition(PARTITION_LABELS.ota0), hal.slots[0], 'ota_0 is slot 0');
        assert.equal(hal.partition(PARTITION_LABELS.ota1), hal.slots[1], 'ota_1 is slot 1');
        assert.equal(hal.runningSlot, running === 'ota_0' ? 0 : 1);
        for (const label of Object.values(PARTITION_LABELS)) {
          if (label === PARTITION_LABELS.otadata || label === PARTITION_LABELS.ota0 || label === PARTITION_LABELS.ota1) continue;
          assert.equal(hal.partition(label)!.status().writeAlign, 16, `${label}: encrypted on the board, strict through the HAL`);
          assert.ok(emu.flash.opens.includes(label), `${label} opened through the flash module by label`);
        }
      });
    }
  }
});
