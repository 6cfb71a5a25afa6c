/**
 * The device's RAM budget (docs/design/ram-budget.md): in XS 13.3 with the
 * built-ins frozen, the live slots the device keeps after boot, a drain, an
 * update check and a command (bench/device.bench.ts measureDevice) stay
 * within the smallest slot budget of any board (boards/<id>/board.json
 * `jsHeap`). Deterministic: live slot counts after gc, no time.
 *
 * The check is shown able to fail: the same run with a base-point table of
 * noble's size (8-bit window, 4,224 points) and noble's own `verify`
 * exceed the budget.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { boards, DEVICE_PHASES, measureDevice, measureWindow } from '../../bench/device.bench.ts';

function smallestBudget(): { slots: number; board: string } {
  let smallest: { slots: number; board: string } | undefined;
  for (const b of boards()) if (smallest === undefined || b.jsHeap.budgetSlots < smallest.slots) smallest = { slots: b.jsHeap.budgetSlots, board: b.id };
  assert.ok(smallest, 'no boards');
  return smallest;
}

describe('RAM budget in XS', () => {
  it('every phase keeps no more live slots than the smallest board budget (the firmware default Crypto)', async (t) => {
    const budget = smallestBudget();
    const device = await measureDevice();
    t.diagnostic(`bundle=${device.bundleSlots} ${DEVICE_PHASES.map((p) => `${p}=${device.phases[p].deviceSlots}`).join(' ')} budget=${budget.slots} (${budget.board})`);
    for (const phase of DEVICE_PHASES) {
      const kept = device.phases[phase].deviceSlots;
      assert.ok(kept > 0, `${phase}: ${kept} slots: the measurement sees nothing`);
      assert.ok(kept <= budget.slots, `${phase}: the device keeps ${kept} live slots, over the ${budget.slots}-slot budget of ${budget.board}`);
    }
  });

  it("the default verifier keeps no table; a table of noble's size, or noble's own verify, breaks the budget", async (t) => {
    const budget = smallestBudget();
    const none = await measureWindow(0);
    const noble = await measureWindow('noble');
    const device8 = await measureDevice(8);
    t.diagnostic(`kept: default=${none.keptSlots} noble=${noble.keptSlots} device with w=8 table: command=${device8.phases.command.deviceSlots}`);
    assert.ok(none.keptSlots < 64, `the default verifier keeps ${none.keptSlots} slots after a verify: a table?`);
    assert.ok(noble.keptSlots > budget.slots, `noble's verify keeps ${noble.keptSlots} slots: expected its 4,224-point table to exceed ${budget.slots}`);
    assert.ok(device8.highWaterSlots > budget.slots, `with an 8-bit base table the device keeps ${device8.highWaterSlots} slots: the budget check would not catch it`);
  });
});
