/**
 * A staged rollout's decisions (docs/spec/rollout.md): which devices are
 * offered the image, when a stage ends, when the rollout halts by itself,
 * and the trail of every decision with the signals that caused it.
 *
 * Success is what devices prove: a device counts as updated only on its own
 * signed `update-committed` audit entry for the target version (verified
 * upstream, by the ingest), never because it was offered or asked for the
 * image. Failures are its signed `update-rolled-back` / `update-refused`
 * entries, and what the rollout sees of it: no commit in time (`timeout`),
 * no verified record at all (`silent`, also after a commit).
 *
 * The state is plain JSON (`snapshot()` / `Rollout.restore`) so it lives in
 * the inventory's database and a killed process resumes where it stopped;
 * time is an input, never read from a clock, so a run replays exactly.
 *
 * Host tool (Node).
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { covered, isEligible, type FleetMember } from './cohort.ts';
import type { RolloutPlan } from './plan.ts';

/** Format of the persisted rollout state. */
export const ROLLOUT_STATE_FORMAT = 1;
/** The trail's first `prevHash`. */
export const TRAIL_ORIGIN = '0'.repeat(64);

export type RolloutStatus = 'running' | 'halted' | 'completed';

/** Verified signals about a device (times in seconds on the rollout's clock). */
export type RolloutSignal =
  | { readonly kind: 'seen'; readonly device: string; readonly at: number }
  | { readonly kind: 'committed'; readonly device: string; readonly at: number; readonly imageVersion: number }
  | { readonly kind: 'rolled-back' | 'refused'; readonly device: string; readonly at: number; readonly imageVersion: number; readonly reason: string };

export type DecisionKind = 'started' | 'offered' | 'stage-reported' | 'stage-ended' | 'halted' | 'roll-back' | 'completed';

/** One entry of the trail: what was decided, when, and the signals it rests on. */
export interface Decision {
  readonly seq: number;
  readonly at: number;
  readonly kind: DecisionKind;
  readonly stage: number;
  readonly devices: readonly string[];
  readonly signals: Readonly<Record<string, number | string>>;
  readonly prevHash: string;
  readonly hash: string;
}

const deviceSchema = z.strictObject({
  stage: z.number().int().min(0),
  offeredAt: z.number(),
  lastSeenAt: z.number().nullable(),
  outcome: z.enum(['pending', 'committed', 'failed']),
  outcomeAt: z.number().nullable(),
  cause: z.string().nullable(),
});
type DeviceEntry = z.infer<typeof deviceSchema>;

const stateSchema = z.strictObject({
  format: z.literal(ROLLOUT_STATE_FORMAT),
  id: z.string(),
  planHash: z.string().regex(/^[0-9a-f]{64}$/),
  status: z.enum(['running', 'halted', 'completed']),
  stage: z.number().int().min(0),
  stageStartedAt: z.number(),
  stageReportedAt: z.number().nullable(),
  devices: z.record(z.string().regex(/^[0-9a-f]{16}$/), deviceSchema),
  trail: z.strictObject({ seq: z.number().int().min(0), hash: z.string().regex(/^[0-9a-f]{64}$/) }),
});
export type RolloutState = z.infer<typeof stateSchema>;

export class RolloutStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RolloutStateError';
  }
}

/** Counts over the devices in the rollout. */
export interface RolloutCounts {
  readonly offered: number;
  readonly pending: number;
  readonly committed: number;
  readonly failed: number;
  /** Failures by cause (`rolled-back:<reason>`, `refused:<reason>`, `timeout`, `silent`, `silent-after-commit`). */
  readonly causes: Readonly<Record<string, number>>;
}

export function planHash(plan: RolloutPlan): string {
  return createHash('sha256').update(JSON.stringify(plan)).digest('hex');
}

export class Rollout {
  private constructor(
    readonly plan: RolloutPlan,
    private state: RolloutState,
  ) {}

  /** A new rollout at `now`: its first decision offers stage 0. */
  static start(plan: RolloutPlan, fleet: readonly FleetMember[], now: number): { rollout: Rollout; decisions: Decision[] } {
    const state: RolloutState = { format: ROLLOUT_STATE_FORMAT, id: plan.id, planHash: planHash(plan), status: 'running', stage: 0, stageStartedAt: now, stageReportedAt: null, devices: {}, trail: { seq: 0, hash: TRAIL_ORIGIN } };
    const rollout = new Rollout(plan, state);
    const decisions = [rollout.decide(now, 'started', 0, [], { eligible: fleet.filter((m) => isEligible(plan, m)).length, stages: plan.stages.length })];
    decisions.push(...rollout.step(fleet, now));
    return { rollout, decisions };
  }

  /** Resume from a snapshot; refuses a state of another format or another plan. */
  static restore(plan: RolloutPlan, json: unknown): Rollout {
    const parsed = stateSchema.safeParse(json);
    if (!parsed.success) throw new RolloutStateError(`rollout state refused: ${parsed.error.issues[0]!.path.join('.') || 'format'}: ${parsed.error.issues[0]!.message}`);
    if (parsed.data.id !== plan.id || parsed.data.planHash !== planHash(plan)) throw new RolloutStateError(`rollout state refused: it belongs to rollout ${parsed.data.id} with another plan`);
    if (parsed.data.stage >= plan.stages.length) throw new RolloutStateError(`rollout state refused: stage ${parsed.data.stage} is not in the plan`);
    return new Rollout(plan, structuredClone(parsed.data));
  }

  snapshot(): RolloutState {
    return structuredClone(this.state);
  }

  get status(): RolloutStatus {
    return this.state.status;
  }

  get stage(): number {
    return this.state.stage;
  }

  /** The devices offered the image and not yet refused it: those the update server may serve. */
  offered(): string[] {
    return Object.keys(this.state.devices);
  }

  /** Take in one verified signal. Signals about devices outside the rollout, or about another version, change nothing. */
  observe(signal: RolloutSignal): void {
    const entry = this.state.devices[signal.device];
    if (entry === undefined || signal.at < entry.offeredAt) return;
    entry.lastSeenAt = Math.max(entry.lastSeenAt ?? signal.at, signal.at);
    if (signal.kind === 'seen') return;
    if (signal.imageVersion !== this.plan.target.imageVersion) return;
    if (signal.kind === 'committed') {
      // Proof beats presumption: a commit after a timeout or silence counts; a signed failure stays one.
      if (entry.outcome === 'committed' || entry.cause?.startsWith('rolled-back') || entry.cause?.startsWith('refused')) return;
      this.setOutcome(entry, 'committed', signal.at, null);
    } else if (entry.outcome !== 'failed' || !isSigned(entry.cause)) {
      this.setOutcome(entry, 'failed', signal.at, `${signal.kind}:${signal.reason}`);
    }
  }

  /** Decide what is due at `now` given the fleet as the inventory sees it. */
  step(fleet: readonly FleetMember[], now: number): Decision[] {
    const decisions: Decision[] = [];
    this.expire(now);
    if (this.state.status === 'running') this.checkHalt(now, decisions);
    if (this.state.status === 'running') this.offer(fleet, now, decisions);
    if (this.state.status === 'running') this.advance(fleet, now, decisions);
    return decisions;
  }

  /**
   * A manual halt (`holdfast rollout halt`): as the automatic one, nobody
   * else is offered the image; with `onHalt: roll-back`, the devices that
   * committed are named in a `roll-back` decision. A rollout that already
   * halted or completed is left as it is (no decision).
   */
  halt(now: number, reason: string): Decision[] {
    if (this.state.status !== 'running') return [];
    this.state.status = 'halted';
    const counts = this.counts();
    const executed = counts.committed + counts.failed;
    const decisions = [this.decide(now, 'halted', this.state.stage, [], { manual: 1, reason, executed, committed: counts.committed, failed: counts.failed, ...prefixed('cause.', counts.causes) })];
    this.rollBack(now, decisions);
    return decisions;
  }

  /** The devices in the rollout with their stage, outcome and cause (for status by cohort and gateway). */
  devices(): { readonly device: string; readonly stage: number; readonly outcome: DeviceEntry['outcome']; readonly cause: string | null }[] {
    return Object.entries(this.state.devices).map(([device, e]) => ({ device, stage: e.stage, outcome: e.outcome, cause: e.cause }));
  }

  counts(): RolloutCounts {
    let pending = 0;
    let committed = 0;
    let failed = 0;
    const causes: Record<string, number> = {};
    for (const entry of Object.values(this.state.devices)) {
      if (entry.outcome === 'pending') pending++;
      else if (entry.outcome === 'committed') committed++;
      else {
        failed++;
        causes[entry.cause!] = (causes[entry.cause!] ?? 0) + 1;
      }
    }
    return { offered: pending + committed + failed, pending, committed, failed, causes };
  }

  /** Outcome of one device in this rollout (undefined: never offered). */
  outcomeOf(device: string): { readonly outcome: DeviceEntry['outcome']; readonly cause: string | null; readonly stage: number } | undefined {
    const entry = this.state.devices[device];
    return entry && { outcome: entry.outcome, cause: entry.cause, stage: entry.stage };
  }

  private expire(now: number): void {
    const { inProgressSeconds, silentSeconds } = this.plan.timeouts;
    for (const entry of Object.values(this.state.devices)) {
      if (entry.outcome === 'pending') {
        const quietSince = entry.lastSeenAt ?? entry.offeredAt;
        if (now - quietSince >= silentSeconds) this.setOutcome(entry, 'failed', now, 'silent');
        else if (now - entry.offeredAt >= inProgressSeconds) this.setOutcome(entry, 'failed', now, 'timeout');
      } else if (entry.outcome === 'committed') {
        const quietSince = Math.max(entry.outcomeAt!, entry.lastSeenAt ?? entry.outcomeAt!);
        if (now - quietSince >= silentSeconds) this.setOutcome(entry, 'failed', now, 'silent-after-commit');
      }
    }
  }

  private checkHalt(now: number, decisions: Decision[]): void {
    const counts = this.counts();
    const executed = counts.committed + counts.failed;
    const { failureRatePercent, minExecuted } = this.plan.halt;
    if (executed < minExecuted || counts.failed === 0 || counts.failed * 100 < failureRatePercent * executed) return;
    this.state.status = 'halted';
    const failedDevices = Object.entries(this.state.devices).filter(([, e]) => e.outcome === 'failed').map(([d]) => d).sort();
    decisions.push(this.decide(now, 'halted', this.state.stage, failedDevices, { executed, committed: counts.committed, failed: counts.failed, failureRatePercent: round2((counts.failed * 100) / executed), thresholdPercent: failureRatePercent, ...prefixed('cause.', counts.causes) }));
    this.rollBack(now, decisions);
  }

  /** With `onHalt: roll-back`, a decision naming the devices that committed (they are told to go back). */
  private rollBack(now: number, decisions: Decision[]): void {
    if (this.plan.onHalt !== 'roll-back') return;
    const back = Object.entries(this.state.devices).filter(([, e]) => e.outcome === 'committed').map(([d]) => d).sort();
    if (back.length > 0) decisions.push(this.decide(now, 'roll-back', this.state.stage, back, { committed: back.length }));
  }

  /** Offer the current stage's share to the devices it covers that were not offered yet. */
  private offer(fleet: readonly FleetMember[], now: number, decisions: Decision[]): void {
    const eligible = new Map(fleet.filter((m) => isEligible(this.plan, m)).map((m) => [m.device, m]));
    const population = [...new Set([...Object.keys(this.state.devices), ...eligible.keys()])];
    const stage = this.plan.stages[this.state.stage]!;
    const fresh = covered(this.plan.id, population, stage.percent).filter((d) => this.state.devices[d] === undefined && eligible.has(d)).sort();
    if (fresh.length === 0) return;
    for (const device of fresh) this.state.devices[device] = { stage: this.state.stage, offeredAt: now, lastSeenAt: null, outcome: 'pending', outcomeAt: null, cause: null };
    decisions.push(this.decide(now, 'offered', this.state.stage, fresh, { population: population.length, percent: stage.percent }));
  }

  /** End the stage once enough of its devices have an outcome and the soak has passed; then the next stage, or done. */
  private advance(fleet: readonly FleetMember[], now: number, decisions: Decision[]): void {
    const index = this.state.stage;
    const stage = this.plan.stages[index]!;
    const mine = Object.values(this.state.devices).filter((e) => e.stage === index);
    const outcomes = mine.filter((e) => e.outcome !== 'pending').length;
    const required = Math.min(stage.minReports, mine.length);
    if (this.state.stageReportedAt === null) {
      if (outcomes < required) return;
      this.state.stageReportedAt = now;
      decisions.push(this.decide(now, 'stage-reported', index, [], { offered: mine.length, outcomes, required }));
    }
    if (now - this.state.stageReportedAt < stage.soakSeconds) return;
    const counts = this.counts();
    decisions.push(this.decide(now, 'stage-ended', index, [], { offered: mine.length, committed: counts.committed, failed: counts.failed, soakSeconds: stage.soakSeconds }));
    if (index + 1 === this.plan.stages.length) {
      this.state.status = 'completed';
      decisions.push(this.decide(now, 'completed', index, [], { offered: counts.offered, committed: counts.committed, failed: counts.failed, pending: counts.pending }));
      return;
    }
    this.state.stage = index + 1;
    this.state.stageStartedAt = now;
    this.state.stageReportedAt = null;
    this.offer(fleet, now, decisions);
    this.advance(fleet, now, decisions);
  }

  private setOutcome(entry: DeviceEntry, outcome: DeviceEntry['outcome'], at: number, cause: string | null): void {
    entry.outcome = outcome;
    entry.outcomeAt = at;
    entry.cause = cause;
  }

  private decide(at: number, kind: DecisionKind, stage: number, devices: readonly string[], signals: Record<string, number | string>): Decision {
    const seq = this.state.trail.seq + 1;
    const prevHash = this.state.trail.hash;
    const body = { seq, at, kind, stage, devices: [...devices], signals, prevHash };
    const hash = decisionHash(body);
    this.state.trail = { seq, hash };
    return { ...body, hash };
  }
}

/** The hash that chains a decision to the one before it (SHA-256 of its JSON without `hash`, keys in the order of Decision). */
export function decisionHash(d: Omit<Decision, 'hash'>): string {
  const canonical = JSON.stringify({ seq: d.seq, at: d.at, kind: d.kind, stage: d.stage, devices: d.devices, signals: d.signals, prevHash: d.prevHash });
  return createHash('sha256').update(canonical).digest('hex');
}

/** Check a trail: each entry chains to the one before, numbered from 1; returns the first break's index, or -1. */
export function firstTrailBreak(trail: readonly Decision[]): number {
  let prev = TRAIL_ORIGIN;
  for (let i = 0; i < trail.length; i++) {
    const d = trail[i]!;
    if (d.seq !== i + 1 || d.prevHash !== prev || decisionHash(d) !== d.hash) return i;
    prev = d.hash;
  }
  return -1;
}

function isSigned(cause: string | null): boolean {
  return cause !== null && (cause.startsWith('rolled-back:') || cause.startsWith('refused:'));
}

function prefixed(prefix: string, record: Readonly<Record<string, number>>): Record<string, number> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [prefix + k, v]));
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
