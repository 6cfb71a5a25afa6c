/**
 * VirtualClock (tools/sim/clock.ts) and SimWatchdog (tools/sim/watchdog.ts):
 * time moves only when told, ticks wrap at 2^32, timers fire in deadline
 * order at their own times, and the watchdog resets only when starved.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { VirtualClock } from '../../tools/sim/clock.ts';
import { DeviceReset, SimWatchdog } from '../../tools/sim/watchdog.ts';
import { TICK_MODULUS } from '../../firmware/hal/clock.ts';
import { elapsedMs } from '../../firmware/base/ticks.ts';

function expectWatchdogReset(op: () => void): DeviceReset {
  let caught: unknown;
  try {
    op();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof DeviceReset, `expected DeviceReset, got ${String(caught)}`);
  assert.equal(caught.reason, 'watchdog');
  assert.equal(caught.name, 'DeviceReset');
  return caught;
}

describe('VirtualClock', () => {
  test('time moves only by advance', () => {
    const clock = new VirtualClock();
    assert.equal(clock.ticks(), 0);
    assert.equal(clock.elapsed, 0);
    assert.equal(clock.ticks(), 0, 'reading the clock does not move it');
    clock.advance(0);
    assert.equal(clock.elapsed, 0);
    clock.advance(250);
    assert.equal(clock.ticks(), 250);
    clock.advance(1);
    assert.equal(clock.ticks(), 251);
    assert.equal(clock.elapsed, 251);
  });

  test('startMs sets the origin', () => {
    const clock = new VirtualClock(1000);
    assert.equal(clock.ticks(), 1000);
    assert.equal(clock.elapsed, 1000);
  });

  test('ticks wrap at 2^32 while elapsed keeps counting', () => {
    const start = TICK_MODULUS - 10;
    const clock = new VirtualClock(start);
    assert.equal(clock.ticks(), 0xffff_fff6);
    const before = clock.ticks();
    clock.advance(9);
    assert.equal(clock.ticks(), 0xffff_ffff);
    clock.advance(1);
    assert.equal(clock.ticks(), 0);
    clock.advance(25);
    assert.equal(clock.ticks(), 25);
    assert.equal(clock.elapsed, TICK_MODULUS + 25);
    assert.equal(elapsedMs(before, clock.ticks()), 35, 'the firmware helper sees 35 ms across the wrap');
    clock.advance(TICK_MODULUS);
    assert.equal(clock.ticks(), 25, 'a whole period later');
  });

  test('ticks are whole milliseconds (an unsigned 32-bit value) even after fractional advances', () => {
    // SimDevice advances by fractional milliseconds per flash byte (ESP32_FLASH_TIMING).
    const clock = new VirtualClock();
    clock.advance(0.7);
    clock.advance(0.7);
    const t = clock.ticks();
    assert.ok(Number.isInteger(t) && t >= 0 && t < TICK_MODULUS, `ticks() returned ${t}`);
    assert.equal(t, 1);
  });

  test('timers fire in deadline order, each at its own time', () => {
    const clock = new VirtualClock(500);
    const fired: Array<[string, number]> = [];
    clock.schedule(30, () => fired.push(['c', clock.elapsed]));
    clock.schedule(10, () => fired.push(['a', clock.elapsed]));
    clock.schedule(20, () => fired.push(['b', clock.elapsed]));
    clock.schedule(100, () => fired.push(['late', clock.elapsed]));
    assert.equal(clock.nextDueMs(), 510);
    clock.advance(35);
    assert.deepEqual(fired, [
      ['a', 510],
      ['b', 520],
      ['c', 530],
    ]);
    assert.equal(clock.elapsed, 535);
    assert.equal(clock.nextDueMs(), 600);
    clock.advance(64);
    assert.equal(fired.length, 3, 'not due yet at 599');
    clock.advance(1);
    assert.deepEqual(fired[3], ['late', 600], 'a timer due exactly at the target fires');
    assert.equal(clock.nextDueMs(), undefined);
  });

  test('timers with the same deadline fire in the order they were scheduled; a negative delay means now', () => {
    const clock = new VirtualClock();
    const fired: string[] = [];
    clock.schedule(5, () => fired.push('first'));
    clock.schedule(5, () => fired.push('second'));
    clock.schedule(-3, () => fired.push('now'));
    clock.schedule(5, () => fired.push('third'));
    clock.advance(0);
    assert.deepEqual(fired, ['now']);
    clock.advance(5);
    assert.deepEqual(fired, ['now', 'first', 'second', 'third']);
  });

  test('a timer scheduled by a timer fires in the same advance when it falls inside it', () => {
    const clock = new VirtualClock();
    const fired: Array<[string, number]> = [];
    clock.schedule(10, () => {
      fired.push(['outer', clock.elapsed]);
      clock.schedule(5, () => fired.push(['inner', clock.elapsed]));
      clock.schedule(50, () => fired.push(['beyond', clock.elapsed]));
    });
    clock.advance(20);
    assert.deepEqual(fired, [
      ['outer', 10],
      ['inner', 15],
    ]);
    assert.equal(clock.elapsed, 20);
    assert.equal(clock.nextDueMs(), 60);
  });

  test('cancel removes a timer and leaves the others', () => {
    const clock = new VirtualClock();
    const fired: string[] = [];
    const a = clock.schedule(10, () => fired.push('a'));
    clock.schedule(20, () => fired.push('b'));
    const c = clock.schedule(5, () => fired.push('c'));
    clock.cancel(a);
    clock.cancel(c);
    clock.cancel(9999); // unknown id: no effect
    assert.equal(clock.nextDueMs(), 20);
    clock.advance(100);
    assert.deepEqual(fired, ['b']);
  });

  test('a throwing timer stops time at its deadline; later timers stay pending', () => {
    const clock = new VirtualClock();
    const fired: number[] = [];
    clock.schedule(10, () => {
      throw new Error('boom');
    });
    clock.schedule(15, () => fired.push(clock.elapsed));
    assert.throws(() => clock.advance(100), /boom/);
    assert.equal(clock.elapsed, 10);
    assert.deepEqual(fired, []);
    clock.advance(10);
    assert.deepEqual(fired, [15]);
    assert.equal(clock.elapsed, 20);
  });

  test('advance rejects negative and NaN durations with RangeError and does not move', () => {
    const clock = new VirtualClock(42);
    assert.throws(() => clock.advance(-1), RangeError);
    assert.throws(() => clock.advance(-0.001), RangeError);
    assert.throws(() => clock.advance(Number.NaN), RangeError);
    assert.equal(clock.elapsed, 42);
  });
});

describe('SimWatchdog', () => {
  test('fires (DeviceReset "watchdog") only when not fed within the timeout', () => {
    const clock = new VirtualClock();
    const dog = new SimWatchdog(clock);
    dog.arm(100);
    assert.equal(dog.armed, true);
    clock.advance(99);
    assert.equal(dog.fired, 0);
    const reset = expectWatchdogReset(() => clock.advance(5));
    assert.match(reset.message, /watchdog/);
    assert.equal(clock.elapsed, 100, 'time stops at the expiry');
    assert.equal(dog.fired, 1);
    assert.equal(dog.armed, false, 'a fired watchdog is no longer armed');
    clock.advance(1000);
    assert.equal(dog.fired, 1, 'fires once');
  });

  test('feeding postpones the expiry by a full timeout from the feed', () => {
    const clock = new VirtualClock();
    const dog = new SimWatchdog(clock);
    dog.arm(100);
    for (let i = 0; i < 10; i++) {
      clock.advance(60);
      dog.feed();
    }
    assert.equal(dog.fired, 0);
    assert.equal(clock.elapsed, 600);
    clock.advance(99);
    assert.equal(dog.fired, 0);
    expectWatchdogReset(() => clock.advance(1));
    assert.equal(clock.elapsed, 700);
  });

  test('disarm stops it', () => {
    const clock = new VirtualClock();
    const dog = new SimWatchdog(clock);
    dog.arm(50);
    clock.advance(40);
    dog.disarm();
    assert.equal(dog.armed, false);
    clock.advance(10_000);
    assert.equal(dog.fired, 0);
    assert.equal(clock.nextDueMs(), undefined);
    dog.disarm(); // disarming twice is harmless
  });

  test('feed when unarmed does nothing', () => {
    const clock = new VirtualClock();
    const dog = new SimWatchdog(clock);
    dog.feed();
    assert.equal(dog.armed, false);
    assert.equal(clock.nextDueMs(), undefined);
    clock.advance(10_000);
    assert.equal(dog.fired, 0);
    // After a disarm too.
    dog.arm(10);
    dog.disarm();
    dog.feed();
    assert.equal(dog.armed, false);
    clock.advance(10_000);
    assert.equal(dog.fired, 0);
  });

  test('re-arming replaces the timeout instead of adding a second timer', () => {
    const clock = new VirtualClock();
    const dog = new SimWatchdog(clock);
    dog.arm(10);
    dog.arm(100);
    clock.advance(99);
    assert.equal(dog.fired, 0);
    expectWatchdogReset(() => clock.advance(1));
    clock.advance(1000);
    assert.equal(dog.fired, 1);
  });

  test('arm rejects a timeout that is not positive with RangeError', () => {
    const clock = new VirtualClock();
    const dog = new SimWatchdog(clock);
    for (const timeout of [0, -5, Number.NaN]) {
      assert.throws(() => dog.arm(timeout), RangeError, `timeout ${timeout}`);
    }
    assert.equal(dog.armed, false);
    assert.equal(clock.nextDueMs(), undefined);
  });
});
