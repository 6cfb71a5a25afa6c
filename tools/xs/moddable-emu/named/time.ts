/** `time` by name (default export: Time, with the signed `ticks`). */
import { installed } from '../installed.ts';

const Time = Object.freeze({
  get ticks(): number {
    return installed().time.ticks;
  },
});
export default Time;
