/**
 * A rollout in memory, fed with accepted records: what `holdfast sim
 * --rollout` (or any in-process service) calls once per step, with the same
 * functions `holdfast rollout step` uses (docs/spec/rollout.md):
 *
 *   const driver = RolloutDriver.start(plan, members, now, crypto, secretOf);
 *   createUpdateResponder({ ..., allow: driver.allow });
 *   // each step: the records the ingest accepted since the last one
 *   const { decisions } = driver.step(records, members, now);
 *   // offered devices: decisions of kind 'offered' (push the manifest);
 *   // 'roll-back': the devices to tell to go back; the report: driver.breakdown(where)
 *
 * Time is the caller's clock in seconds (a record's `arrivedAt` is in
 * milliseconds on the same clock). Nothing here reads a wall clock.
 *
 * Host tool (Node).
 */
import type { Crypto } from '../../firmware/hal/crypto.ts';
import type { FleetMember } from './cohort.ts';
import { Rollout, type Decision } from './engine.ts';
import { rolloutGate } from './gate.ts';
import type { RolloutPlan } from './plan.ts';
import { auditKeys, signalsFrom, type AcceptedRecord, type SignalCounts } from './signals.ts';
import { rolloutBreakdown, type RolloutBreakdown } from './status.ts';

export class RolloutDriver {
  /** Every decision so far, in order (a hash chain: firstTrailBreak checks it). */
  readonly trail: Decision[] = [];
  /** Signal counts over every step (bad tags, undecodable entries, records of unknown devices). */
  readonly counts: SignalCounts = { badTags: 0, undecodable: 0, unknownDevice: 0 };
  /** The update responder's gate (createUpdateResponder's `allow`). */
  readonly allow: (deviceHex: string) => boolean;
  private readonly keyFor: (device: string, keyId: number) => Uint8Array | undefined;

  private constructor(
    readonly rollout: Rollout,
    private readonly crypto: Crypto,
    secretOf: (device: string) => string | undefined,
  ) {
    this.keyFor = auditKeys(crypto, secretOf);
    this.allow = rolloutGate(() => this.rollout);
  }

  /** Start `plan` at `now` over `members`; `secretOf` gives a device's secret (hex) for its audit key. */
  static start(plan: RolloutPlan, members: readonly FleetMember[], now: number, crypto: Crypto, secretOf: (device: string) => string | undefined): { driver: RolloutDriver; decisions: Decision[] } {
    const started = Rollout.start(plan, members, now);
    const driver = new RolloutDriver(started.rollout, crypto, secretOf);
    driver.trail.push(...started.decisions);
    return { driver, decisions: started.decisions };
  }

  /** Observe the records accepted since the last step (any order), then decide at `now`. */
  step(records: readonly AcceptedRecord[], members: readonly FleetMember[], now: number): { decisions: Decision[]; counts: SignalCounts } {
    const batch = signalsFrom(this.crypto, records, this.keyFor);
    for (const s of batch.signals) this.rollout.observe(s);
    const decisions = this.rollout.step(members, now);
    this.trail.push(...decisions);
    this.counts.badTags += batch.counts.badTags;
    this.counts.undecodable += batch.counts.undecodable;
    this.counts.unknownDevice += batch.counts.unknownDevice;
    return { decisions, counts: batch.counts };
  }

  /** Devices by outcome and cause, per cohort and gateway. */
  breakdown(where: (device: string) => { cohort: string; gateway: string }): RolloutBreakdown {
    return rolloutBreakdown(this.rollout, where);
  }
}
