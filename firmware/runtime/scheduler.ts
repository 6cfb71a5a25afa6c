/**
 * The cooperative scheduler: no timers, no promises. The host (the
 * simulator, or the Moddable target's one Timer) calls `service(now)` when
 * `nextDueMs(now)` says, and after any stream callback; each due task runs
 * once per call, in the order it was added. Times are monotonic ticks that
 * wrap at 2^32 (hal/clock.ts): every comparison goes through `elapsedMs`
 * (base/ticks.ts), so a task is due after its delay across a wrap too.
 *
 * Two kinds of task:
 * - periodic: `run(now)` every `periodMs` (the health record, the audit
 *   publisher, the trial boot's steps);
 * - polled: an object that says when it is due (`nextDueMs(now)`:
 *   milliseconds, 0 now, undefined only on an event) and is serviced then:
 *   TelemetryLink fits it as it is.
 */
import { elapsedMs } from '../base/ticks.ts';

/** Longest delay a task may ask for: half the tick range, so `elapsedMs` stays unambiguous. */
export const MAX_DELAY_MS = 0x7fff_ffff;

export interface PolledTask {
  service(now: number): void;
  nextDueMs(now: number): number | undefined;
}

interface Entry {
  readonly name: string;
  readonly run: (now: number) => void;
  /** Periodic tasks: the period; polled: undefined. */
  readonly periodMs: number | undefined;
  readonly polled: PolledTask | undefined;
  /** Periodic: ticks of the last run (or of `add`) and the delay from it. */
  since: number;
  delay: number;
  runs: number;
  enabled: boolean;
}

export interface TaskStats {
  readonly name: string;
  readonly runs: number;
  readonly enabled: boolean;
}

export class Scheduler {
  private readonly tasks: Entry[] = [];

  /** Run `run(now)` every `periodMs`, first after `firstDelayMs` (default: the period; 0: at the next service). */
  every(name: string, periodMs: number, run: (now: number) => void, now: number, firstDelayMs: number = periodMs): void {
    checkDelay(periodMs, 'period');
    checkDelay(firstDelayMs, 'first delay');
    if (periodMs < 1) throw new RangeError(`task ${name}: period must be at least 1 ms`);
    this.tasks.push({ name, run, periodMs, polled: undefined, since: now >>> 0, delay: firstDelayMs, runs: 0, enabled: true });
  }

  /** Service `task` whenever it says it is due. */
  poll(name: string, task: PolledTask): void {
    this.tasks.push({ name, run: (now) => task.service(now), periodMs: undefined, polled: task, since: 0, delay: 0, runs: 0, enabled: true });
  }

  /** Stop (or resume) a task by name; a resumed periodic task is due one period after `now`. */
  setEnabled(name: string, enabled: boolean, now: number): void {
    for (const t of this.tasks) {
      if (t.name !== name) continue;
      t.enabled = enabled;
      if (enabled && t.periodMs !== undefined) {
        t.since = now >>> 0;
        t.delay = t.periodMs;
      }
    }
  }

  /** Run every task due at `now`, once each, in order; returns how many ran. */
  service(now: number): number {
    const t0 = now >>> 0;
    let ran = 0;
    for (const t of this.tasks) {
      if (!t.enabled) continue;
      if (t.polled !== undefined) {
        if (t.polled.nextDueMs(t0) !== 0) continue;
      } else if (elapsedMs(t.since, t0) < t.delay) continue;
      if (t.periodMs !== undefined) {
        t.since = t0;
        t.delay = t.periodMs;
      }
      t.runs++;
      ran++;
      t.run(t0);
    }
    return ran;
  }

  /** Milliseconds until some task is due (0: now); undefined when none is, until an event. */
  nextDueMs(now: number): number | undefined {
    const t0 = now >>> 0;
    let best: number | undefined;
    for (const t of this.tasks) {
      if (!t.enabled) continue;
      let due: number | undefined;
      if (t.polled !== undefined) due = t.polled.nextDueMs(t0);
      else {
        const waited = elapsedMs(t.since, t0);
        due = waited >= t.delay ? 0 : t.delay - waited;
      }
      if (due !== undefined && (best === undefined || due < best)) best = Math.max(0, due);
    }
    return best;
  }

  stats(): TaskStats[] {
    return this.tasks.map((t) => ({ name: t.name, runs: t.runs, enabled: t.enabled }));
  }
}

function checkDelay(ms: number, what: string): void {
  if (!Number.isInteger(ms) || ms < 0 || ms > MAX_DELAY_MS) throw new RangeError(`${what} must be an integer in 0..${MAX_DELAY_MS} ms, got ${ms}`);
}
