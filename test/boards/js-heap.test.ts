/**
 * board.json `jsHeap`: the XS machine a Moddable build gives each board
 * (its manifest `creation`: chunk.initial, heap.initial, stack) and the RAM
 * budget derived from it (boards/README.md, "JavaScript heap";
 * docs/design/ram-budget.md). Every board carries the values of the Moddable
 * target it builds with; the budget is the heap less the margin; a wrong
 * field is a one-line error naming the file and the field.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BoardError, JS_SLOT_BYTES, listBoards, loadBoard } from '../../tools/boards/board.ts';

const root = new URL('../..', import.meta.url).pathname;

describe('board.json jsHeap', () => {
  it("every board has the Moddable ESP32 creation values (static 0: chunk 78,848 bytes, heap 4,928 slots, stack 512) and a 25% margin", () => {
    for (const id of listBoards()) {
      const heap = loadBoard(id).jsHeap;
      assert.equal(heap.chunkBytes, 78_848, `${id} chunk.initial`);
      assert.equal(heap.slots, 4_928, `${id} heap.initial`);
      assert.equal(heap.stackSlots, 512, `${id} stack`);
      assert.equal(heap.marginPercent, 25, `${id} margin`);
      assert.match(heap.source, /Moddable SDK build\/devices\/esp32\/targets\/\w+\/manifest\.json/, `${id} names its source`);
    }
  });

  it('the budget is the heap less the margin, rounded down; a slot is 16 bytes on the device', () => {
    const heap = loadBoard('esp32-devkitc').jsHeap;
    assert.equal(heap.budgetSlots, 3_696);
    assert.equal(heap.budgetChunkBytes, 59_136);
    assert.equal(JS_SLOT_BYTES, 16);
    assert.equal(heap.slots * JS_SLOT_BYTES, heap.chunkBytes, "Moddable's ESP32 targets give slots and chunks the same 78,848 bytes");
  });

  describe('errors: one line naming the file and the field', () => {
    const base = JSON.parse(readFileSync(join(root, 'boards/esp32-devkitc/board.json'), 'utf8')) as Record<string, any>;
    const dir = mkdtempSync(join(tmpdir(), 'holdfast-jsheap-'));
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    function fails(name: string, edit: (b: Record<string, any>) => void, expected: RegExp): void {
      it(name, () => {
        const id = `bad-${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}`.slice(0, 60).replace(/-$/, '');
        const board = structuredClone(base);
        board.id = id;
        edit(board);
        mkdirSync(join(dir, id), { recursive: true });
        writeFileSync(join(dir, id, 'board.json'), JSON.stringify(board, null, 2));
        assert.throws(
          () => loadBoard(id, dir),
          (e: unknown) => e instanceof BoardError && e.code === 'invalid-board' && !e.message.includes('\n') && e.message.includes(join(id, 'board.json')) && expected.test(e.message),
        );
      });
    }
    fails('missing jsHeap', (b) => delete b.jsHeap, /jsHeap: missing/);
    fails('missing slots', (b) => delete b.jsHeap.slots, /jsHeap\.slots: missing/);
    fails('margin too large', (b) => (b.jsHeap.marginPercent = 95), /jsHeap\.marginPercent/);
    fails('chunk heap too small', (b) => (b.jsHeap.chunkBytes = 1536), /jsHeap\.chunkBytes/);
    fails('slots not an integer', (b) => (b.jsHeap.slots = 4928.5), /jsHeap\.slots/);
    fails('unknown jsHeap field', (b) => (b.jsHeap.static = 32768), /jsHeap: unknown field static/);
    fails('no source', (b) => (b.jsHeap.source = ''), /jsHeap\.source/);
  });
});
