/**
 * The boards are the single truth of the partition labels: every label the
 * runtime opens (PARTITION_LABELS, firmware/runtime/boot.ts) is a partition
 * of every board, of the right type and at least the size its store needs,
 * and the board schema's list of holdfast's data partitions is exactly the
 * runtime's. Fails when the runtime and the boards drift apart (issue 18:
 * the boards once had outbox/counter/security/audit while the runtime opened
 * hf_*, so every lookup on a real board failed).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PARTITION_LABELS } from '../../firmware/runtime/boot.ts';
import { DATA_ALIGN, HOLDFAST_PARTITION_MIN_BLOCKS, HOLDFAST_PARTITIONS, PROGRESS_ENTRY_BYTES, PROVISIONING_PARTITION, PROGRESS_SPARE_ENTRIES, listBoards, loadBoard } from '../../tools/boards/board.ts';

const APP_SLOTS: ReadonlySet<string> = new Set([PARTITION_LABELS.ota0, PARTITION_LABELS.ota1]);
const runtimeLabels: readonly string[] = Object.values(PARTITION_LABELS);
const runtimeDataLabels = runtimeLabels.filter((l) => l !== PARTITION_LABELS.otadata && !APP_SLOTS.has(l)).sort();

describe("partition labels: the runtime's PARTITION_LABELS and every board agree", () => {
  it("the board schema's holdfast data partitions are exactly the runtime's data labels", () => {
    assert.deepEqual([...HOLDFAST_PARTITIONS].sort(), runtimeDataLabels);
    assert.equal(PARTITION_LABELS.otadata, 'otadata', 'otadata: the label ESP-IDF and the boards use');
    assert.deepEqual([PARTITION_LABELS.ota0, PARTITION_LABELS.ota1], ['ota_0', 'ota_1'], 'the app slots: the labels ESP-IDF and the boards use');
  });

  for (const id of listBoards()) {
    it(`${id}: every runtime label is a partition of the right type and at least its store's size`, () => {
      const board = loadBoard(id);
      const byName = new Map(board.partitions.map((p) => [p.name, p]));
      for (const label of runtimeLabels) {
        const p = byName.get(label);
        assert.ok(p !== undefined, `${id} has a partition labelled ${label}`);
        if (APP_SLOTS.has(label)) {
          assert.equal(p.type, 'app', `${label} is an app slot`);
          assert.equal(p.subtype, label, `${label}'s subtype`);
          continue;
        }
        assert.equal(p.type, 'data', `${label} is a data partition`);
        if (label === PARTITION_LABELS.otadata) {
          assert.equal(p.subtype, 'ota');
          assert.equal(p.size, 2 * DATA_ALIGN, 'otadata: two 4 KiB copies');
          continue;
        }
        const minBlocks = HOLDFAST_PARTITION_MIN_BLOCKS[label];
        assert.ok(minBlocks >= 2, `${label} has a minimum geometry`);
        assert.ok(p.size >= minBlocks * board.flash.blockLength, `${id} ${label}: ${p.size} bytes, at least ${minBlocks} blocks`);
        assert.equal(p.size % board.flash.blockLength, 0, `${label}: whole blocks`);
        // Every holdfast store is written in both flash modes; under flash encryption each is encrypted (boards/README.md says why).
        assert.equal(p.flags, 'encrypted', `${id} ${label} is encrypted`);
      }
      const slot = byName.get('ota_0')!.size;
      const progress = byName.get(PARTITION_LABELS.progress)!;
      assert.ok(progress.size / PROGRESS_ENTRY_BYTES - 2 >= slot / board.flash.blockLength + PROGRESS_SPARE_ENTRIES - 2, `${id}: the progress log holds a whole ${slot}-byte slot's chunks`);
      // The provisioning partition: read by the device target at boot (docs/spec/provisioning.md), one encrypted 4 KiB block at least.
      const prov = byName.get(PROVISIONING_PARTITION);
      assert.ok(prov !== undefined, `${id} has ${PROVISIONING_PARTITION}`);
      assert.equal(prov.type, 'data');
      assert.ok(prov.size >= board.flash.blockLength, `${id} ${PROVISIONING_PARTITION}: at least one block`);
      assert.equal(prov.flags, 'encrypted', `${id} ${PROVISIONING_PARTITION} is encrypted (it holds the device secret)`);
      // Nothing else of holdfast's: a data partition with a custom subtype that neither the runtime nor the target's provisioning read opens would be dead flash.
      for (const p of board.partitions) if (/^0x/.test(p.subtype)) assert.ok(runtimeLabels.includes(p.name) || p.name === PROVISIONING_PARTITION, `${id}: ${p.name} is a label the runtime opens`);
    });
  }
});
