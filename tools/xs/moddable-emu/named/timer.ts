/** `timer` by name (default export: Timer). */
import { installed } from '../installed.ts';

const Timer = Object.freeze({
  set: (callback: () => void, delay: number): unknown => installed().timer.set(callback, delay),
  schedule: (id: unknown, delay: number): void => installed().timer.schedule(id, delay),
  clear: (id: unknown): void => installed().timer.clear(id),
});
export default Timer;
