/**
 * A rollout plan and a fleet for the rollout tests: the canary 1 %,
 * then 10 %, 50 %, 100 %, halting at 20 % failures once 5 devices have an
 * outcome.
 */
import type { FleetMember } from '../../tools/rollout/cohort.ts';
import type { RolloutPlan } from '../../tools/rollout/plan.ts';

export const TARGET = 0x0001_0400;

export function examplePlan(overrides: Partial<RolloutPlan> = {}): RolloutPlan {
  return {
    format: 1,
    id: 'fw-1.4.0',
    target: { imageVersion: TARGET, securityVersion: 3 },
    stages: [
      { name: 'canary', percent: 1, minReports: 5, soakSeconds: 600 },
      { name: 'early', percent: 10, minReports: 20, soakSeconds: 600 },
      { name: 'half', percent: 50, minReports: 50, soakSeconds: 600 },
      { name: 'all', percent: 100, minReports: 100, soakSeconds: 0 },
    ],
    halt: { failureRatePercent: 20, minExecuted: 5 },
    timeouts: { inProgressSeconds: 3600, silentSeconds: 7200 },
    onHalt: 'stop',
    ...overrides,
  };
}

/** `n` active devices on image 0x00010300, in two cohorts behind four gateways. */
export function exampleFleet(n: number): FleetMember[] {
  return Array.from({ length: n }, (_, i) => ({
    device: i.toString(16).padStart(16, '0'),
    cohort: i % 2 === 0 ? 'line-a' : 'line-b',
    gateway: `gw-${i % 4}`,
    standing: 'active' as const,
    imageVersion: 0x0001_0300,
  }));
}
