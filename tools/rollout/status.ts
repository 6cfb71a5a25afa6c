/**
 * A rollout's devices counted by outcome and failure cause, by cohort and
 * by gateway (`holdfast rollout status`, and the simulator's report of a
 * rollout, docs/spec/rollout.md).
 *
 * Host tool (Node).
 */
import type { Rollout, RolloutCounts } from './engine.ts';

export interface OutcomeRow {
  offered: number;
  pending: number;
  committed: number;
  failed: number;
  /** Failures by cause. */
  causes: Record<string, number>;
}

export interface RolloutBreakdown {
  readonly counts: RolloutCounts;
  readonly byCohort: Readonly<Record<string, OutcomeRow>>;
  readonly byGateway: Readonly<Record<string, OutcomeRow>>;
}

/** `where` names a device's cohort and gateway ('' for none: shown as '-'). */
export function rolloutBreakdown(rollout: Rollout, where: (device: string) => { cohort: string; gateway: string }): RolloutBreakdown {
  const byCohort: Record<string, OutcomeRow> = {};
  const byGateway: Record<string, OutcomeRow> = {};
  const add = (table: Record<string, OutcomeRow>, key: string, outcome: 'pending' | 'committed' | 'failed', cause: string | null): void => {
    const row = (table[key] ??= { offered: 0, pending: 0, committed: 0, failed: 0, causes: {} });
    row.offered++;
    row[outcome]++;
    if (cause !== null) row.causes[cause] = (row.causes[cause] ?? 0) + 1;
  };
  for (const d of rollout.devices()) {
    const w = where(d.device);
    add(byCohort, w.cohort || '-', d.outcome, d.cause);
    add(byGateway, w.gateway || '-', d.outcome, d.cause);
  }
  return { counts: rollout.counts(), byCohort, byGateway };
}
