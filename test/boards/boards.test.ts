import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { listBoards, loadBoard, partitionsCsv } from '../../tools/boards/board.ts';

const root = new URL('../..', import.meta.url).pathname;

it('the boards the issue asks for are there', () => {
  const ids = listBoards();
  for (const id of ['esp32-devkitc', 'esp32-s3-devkitc-1', 'esp32-c3-devkitm-1', 'esp32-wroom-32e-4mb']) assert.ok(ids.includes(id), id);
});

for (const id of listBoards()) {
  describe(`board ${id}`, () => {
    it('loads, and its checked-in partitions.csv is the generated one', () => {
      const board = loadBoard(id);
      assert.equal(readFileSync(join(root, 'boards', id, 'partitions.csv'), 'utf8'), partitionsCsv(board));
    });
  });
}
