/**
 * SimDevice (tools/sim/device.ts): the boot loop, reset reasons, power cuts,
 * the watchdog expiring in the middle of a timed flash erase, and what
 * survives a reboot (flash) and what does not (RAM).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SimDevice, type DeviceHal } from '../../tools/sim/device.ts';
import { SimFlash } from '../../tools/sim/flash/sim-flash.ts';
import { FlashMisuse } from '../../tools/sim/flash/errors.ts';
import type { ResetReason } from '../../firmware/hal/system.ts';
import type { FlashPartition } from '../../firmware/hal/flash.ts';

const BLOCK = 256;

function newFlash(blocks = 10): SimFlash {
  return new SimFlash({ blocks, blockLength: BLOCK });
}

function readAll(flash: FlashPartition): Uint8Array {
  const out = new Uint8Array(flash.status().size);
  flash.read(0, out);
  return out;
}

/** Number of boots recorded in flash: one cleared byte per boot in block 0. */
function bumpBootCounter(flash: FlashPartition): number {
  const bytes = new Uint8Array(16);
  flash.read(0, bytes);
  const count = bytes.indexOf(0xff);
  flash.write(count, Uint8Array.of(0x00));
  return count + 1;
}

describe('SimDevice boots', () => {
  test('a firmware main that returns gives outcome "returned"; the first boot reason is "power-on"', () => {
    const device = new SimDevice({ data: newFlash() });
    let reason: ResetReason | undefined;
    const outcome = device.boot((hal) => {
      reason = hal.system.lastResetReason();
      hal.flash('data').write(0, Uint8Array.of(1, 2, 3));
    });
    assert.deepEqual(outcome, { kind: 'returned' });
    assert.equal(reason, 'power-on');
    assert.deepEqual(device.history, [{ kind: 'returned' }]);
  });

  test('the HAL exposes the named partition (with its geometry) and refuses an unknown name', () => {
    const flash = newFlash(3);
    const device = new SimDevice({ data: flash });
    device.boot((hal) => {
      assert.deepEqual(hal.flash('data').status(), flash.status());
      assert.throws(() => hal.flash('nvs'), /no flash partition named "nvs"/);
    });
  });

  test('a power cut armed on the SimFlash ends the boot with "power-cut"; the next boot sees "power-on"', () => {
    const flash = newFlash();
    const device = new SimDevice({ data: flash });
    flash.armCut({ atOperation: 2, seed: 17 });
    let wrote = 0;
    const outcome = device.boot((hal) => {
      const data = hal.flash('data');
      for (let i = 0; i < 5; i++) {
        data.write(16 * i, new Uint8Array(16));
        wrote++;
      }
    });
    assert.deepEqual(outcome, { kind: 'power-cut', operation: 2 });
    assert.equal(wrote, 2, 'nothing after the cut ran');
    assert.equal(flash.isPowered, true, 'the device powers the flash back up');
    assert.deepEqual(flash.lastTornOperation(), { kind: 'write', operation: 2, byteOffset: 32, byteLength: 16 });
    let reason: ResetReason | undefined;
    const next = device.boot((hal) => {
      reason = hal.system.lastResetReason();
      hal.flash('data').write(100, Uint8Array.of(0)); // the cut was consumed
    });
    assert.deepEqual(next, { kind: 'returned' });
    assert.equal(reason, 'power-on');
    assert.equal(device.history.length, 2);
  });

  test('system.restart("x") ends the boot with a software reset; the next boot sees "software"', () => {
    const device = new SimDevice({ data: newFlash() });
    let after = false;
    const outcome = device.boot((hal) => {
      hal.system.restart('update applied');
      after = true;
    });
    assert.equal(after, false);
    assert.equal(outcome.kind, 'reset');
    assert.ok(outcome.kind === 'reset');
    assert.equal(outcome.reason, 'software');
    assert.match(outcome.detail, /update applied/);
    let reason: ResetReason | undefined;
    device.boot((hal) => {
      reason = hal.system.lastResetReason();
    });
    assert.equal(reason, 'software');
  });

  test('an error that is not a reset propagates out of boot', () => {
    const device = new SimDevice({ data: newFlash() });
    assert.throws(
      () =>
        device.boot(() => {
          throw new TypeError('firmware bug');
        }),
      TypeError,
    );
  });
});

describe('SimDevice watchdog', () => {
  /** Program every block so an erase (torn or not) is visible. */
  function programmedFlash(): SimFlash {
    const flash = newFlash(10);
    flash.write(0, new Uint8Array(10 * BLOCK).fill(0x00));
    return flash;
  }

  test('a firmware that erases without feeding is reset by the watchdog; the erase in flight is torn', () => {
    const flash = programmedFlash();
    const device = new SimDevice({ data: flash });
    const erased: number[] = [];
    const outcome = device.boot((hal) => {
      hal.watchdog.arm(100);
      const data = hal.flash('data');
      for (let block = 0; block < 10; block++) {
        data.eraseBlock(block); // 45 ms each: the third one spans the 100 ms deadline
        erased.push(block);
      }
    });
    assert.equal(outcome.kind, 'reset');
    assert.ok(outcome.kind === 'reset');
    assert.equal(outcome.reason, 'watchdog');
    assert.deepEqual(erased, [0, 1], 'the firmware stopped in the third erase');
    assert.equal(device.clock.elapsed, 100, 'the reset happened at the watchdog deadline');
    assert.equal(device.watchdog.fired, 1);
    assert.equal(device.watchdog.armed, false, 'a reset disarms the watchdog');
    const torn = flash.lastTornOperation();
    assert.ok(torn, 'the erase in flight should be torn');
    assert.equal(torn.kind, 'erase');
    assert.equal(torn.byteOffset, 2 * BLOCK);
    assert.equal(torn.byteLength, BLOCK);
    assert.equal(flash.isPowered, true);

    const contents = readAll(flash);
    assert.ok(contents.subarray(0, 2 * BLOCK).every((b) => b === 0xff), 'blocks 0 and 1 erased completely');
    assert.ok(contents.subarray(3 * BLOCK).every((b) => b === 0x00), 'blocks 3.. never erased');
    assert.deepEqual([...flash.eraseCounts], [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]);

    let reason: ResetReason | undefined;
    const next = device.boot((hal) => {
      reason = hal.system.lastResetReason();
    });
    assert.deepEqual(next, { kind: 'returned' });
    assert.equal(reason, 'watchdog');
  });

  test('a firmware that feeds the watchdog between erases completes', () => {
    const flash = programmedFlash();
    const device = new SimDevice({ data: flash });
    const outcome = device.boot((hal) => {
      hal.watchdog.arm(100);
      const data = hal.flash('data');
      for (let block = 0; block < 10; block++) {
        data.eraseBlock(block);
        hal.watchdog.feed();
      }
      hal.watchdog.disarm();
    });
    assert.deepEqual(outcome, { kind: 'returned' });
    assert.equal(device.watchdog.fired, 0);
    assert.equal(flash.lastTornOperation(), undefined);
    assert.ok(readAll(flash).every((b) => b === 0xff));
    assert.equal(device.clock.elapsed, 450, '10 erases of 45 ms');
  });

  test('a timer that is not the watchdog does not tear a flash operation', () => {
    const flash = programmedFlash();
    const device = new SimDevice({ data: flash });
    let timerFired = 0;
    const outcome = device.boot((hal) => {
      hal.clock.schedule(10, () => timerFired++); // some periodic work, not a reset
      const data = hal.flash('data');
      data.eraseBlock(0);
      data.eraseBlock(1);
    });
    assert.equal(timerFired, 1);
    assert.deepEqual(outcome, { kind: 'returned' });
    assert.equal(flash.lastTornOperation(), undefined, 'no reset happened, so nothing may be torn');
    assert.ok(readAll(flash).subarray(0, 2 * BLOCK).every((b) => b === 0xff));
  });

  test('a reset disarms the watchdog: the next boot starts without one', () => {
    const flash = programmedFlash();
    const device = new SimDevice({ data: flash });
    const first = device.boot((hal) => {
      hal.watchdog.arm(100);
      hal.system.restart('after arming');
    });
    assert.equal(first.kind, 'reset');
    assert.equal(device.watchdog.armed, false);
    let armedAtStart: boolean | undefined;
    const second = device.boot((hal) => {
      armedAtStart = hal.watchdog.armed;
      const data = hal.flash('data');
      for (let block = 0; block < 10; block++) data.eraseBlock(block);
    });
    assert.equal(armedAtStart, false);
    assert.deepEqual(second, { kind: 'returned' });
    assert.equal(device.watchdog.fired, 0);
    assert.ok(readAll(flash).every((b) => b === 0xff));
  });

  test('a flash misuse propagates even while the watchdog is about to expire', () => {
    const device = new SimDevice({ data: newFlash(2) });
    assert.throws(
      () =>
        device.boot((hal) => {
          hal.watchdog.arm(10);
          hal.flash('data').eraseBlock(5); // out of range, during an erase that spans the deadline
        }),
      FlashMisuse,
    );
  });

  test('flash operations take virtual time (ESP32 figures)', () => {
    const device = new SimDevice({ data: newFlash() });
    device.boot((hal) => {
      const data = hal.flash('data');
      const before = hal.clock.elapsed;
      data.eraseBlock(0);
      assert.equal(hal.clock.elapsed - before, 45);
      const t = hal.clock.elapsed;
      data.write(0, new Uint8Array(256));
      assert.ok(hal.clock.elapsed > t, 'a write takes time');
    });
  });
});

describe('SimDevice state across reboots', () => {
  test('flash contents survive reboots; RAM state (a fresh object per boot) does not', () => {
    const flash = newFlash(2);
    const device = new SimDevice({ data: flash });
    interface Ram {
      bootCount: number | undefined;
      cache: Map<string, number>;
    }
    const rams: Ram[] = [];
    const seen: Array<{ flashBoots: number; ramBootsAtStart: number | undefined; cacheSize: number }> = [];
    const firmware = (hal: DeviceHal) => {
      const ram: Ram = { bootCount: undefined, cache: new Map() };
      rams.push(ram);
      const ramBootsAtStart = ram.bootCount;
      const cacheSize = ram.cache.size;
      const flashBoots = bumpBootCounter(hal.flash('data'));
      ram.bootCount = flashBoots;
      ram.cache.set('boots', flashBoots);
      seen.push({ flashBoots, ramBootsAtStart, cacheSize });
      if (flashBoots < 4) hal.system.restart(`boot ${flashBoots}`);
    };
    const outcomes = [device.boot(firmware), device.boot(firmware), device.boot(firmware), device.boot(firmware)];
    assert.deepEqual(
      outcomes.map((o) => o.kind),
      ['reset', 'reset', 'reset', 'returned'],
    );
    assert.deepEqual(
      seen.map((s) => s.flashBoots),
      [1, 2, 3, 4],
    );
    assert.ok(seen.every((s) => s.ramBootsAtStart === undefined && s.cacheSize === 0), 'every boot starts with empty RAM');
    assert.equal(new Set(rams).size, 4);
    const bytes = new Uint8Array(16);
    flash.read(0, bytes);
    assert.deepEqual([...bytes.subarray(0, 5)], [0, 0, 0, 0, 0xff]);
  });

  test('a power cut between boots keeps what was durable before it', () => {
    const flash = newFlash(2);
    const device = new SimDevice({ data: flash });
    const firmware = (hal: DeviceHal) => {
      const data = hal.flash('data');
      const slot = new Uint8Array(16);
      let i = 0;
      for (; i < 8; i++) {
        data.read(64 + 16 * i, slot);
        if (slot.every((b) => b === 0xff)) break;
      }
      for (; i < 8; i++) data.write(64 + 16 * i, new Uint8Array(16).fill(i + 1));
    };
    flash.armCut({ atOperation: 3, seed: 5 });
    assert.equal(device.boot(firmware).kind, 'power-cut');
    const afterCut = readAll(flash);
    for (let i = 0; i < 3; i++) {
      assert.ok(afterCut.subarray(64 + 16 * i, 80 + 16 * i).every((b) => b === i + 1), `slot ${i} durable`);
    }
    assert.deepEqual(device.boot(firmware), { kind: 'returned' });
    const final = readAll(flash);
    for (let i = 0; i < 3; i++) {
      assert.ok(final.subarray(64 + 16 * i, 80 + 16 * i).every((b) => b === i + 1), `slot ${i} still there`);
    }
  });
});
