/**
 * `MonotonicClock` over Moddable's `Time.ticks` (module `time`). On ESP32
 * `Time.ticks` is `modMilliseconds()` passed through `xsmcSetInteger`: a
 * signed 32-bit integer, so after 2^31 ms (24.8 days) it reads negative and
 * after 2^32 ms it is back at 0. `>>> 0` turns it into the HAL's unsigned
 * 32-bit value, which wraps at 2^32 as `elapsedMs` (base/ticks.ts) expects.
 */
import type { MonotonicClock } from '../../hal/clock.ts';
import type { TimeModule } from './modules.ts';

export function createModdableClock(time: TimeModule): MonotonicClock {
  return Object.freeze<MonotonicClock>({
    ticks(): number {
      return time.ticks >>> 0;
    },
  });
}
