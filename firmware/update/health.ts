/**
 * Health checks of a trial boot (docs/design/update.md, "Trial boot"). Each
 * is polled until it passes or fails, and fails by itself once its deadline
 * passes. "Broker reached" and "first record acknowledged" take a probe
 * from the runtime (its telemetry link), so a trial boot that cannot reach
 * the broker, or whose records the ingest never acknowledges, rolls back.
 */
export type HealthStatus = { readonly state: 'pending' } | { readonly state: 'passed' } | { readonly state: 'failed'; readonly reason: string };

export interface HealthCheck {
  readonly name: string;
  /** Milliseconds from the start of the trial within which it must pass. */
  readonly deadlineMs: number;
  poll(): HealthStatus;
}

export const PENDING: HealthStatus = Object.freeze({ state: 'pending' });
export const PASSED: HealthStatus = Object.freeze({ state: 'passed' });

/** Passes as soon as it is polled: the runtime got far enough to run the checks. */
export function runtimeStarted(deadlineMs = 5_000): HealthCheck {
  return { name: 'runtime started', deadlineMs, poll: () => PASSED };
}

/** Runs `test` once; passes when it returns true. */
export function selfTest(test: () => boolean, deadlineMs = 10_000): HealthCheck {
  return {
    name: 'self-test passed',
    deadlineMs,
    poll: () => (test() ? PASSED : { state: 'failed', reason: 'self-test failed' }),
  };
}

/** Passes once `reached()` says the broker accepted a connection in this boot (a CONNACK with success); fails at its deadline. */
export function brokerReached(reached: () => boolean, deadlineMs = 60_000): HealthCheck {
  return { name: 'broker reached', deadlineMs, poll: () => (reached() ? PASSED : PENDING) };
}

/** Passes once `acknowledged()` says a record was acknowledged end to end in this boot (a receipt from the ingest released it); fails at its deadline. */
export function firstRecordAcknowledged(acknowledged: () => boolean, deadlineMs = 120_000): HealthCheck {
  return { name: 'first record acknowledged', deadlineMs, poll: () => (acknowledged() ? PASSED : PENDING) };
}
