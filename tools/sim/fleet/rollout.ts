/**
 * `holdfast sim --rollout <plan>` (docs/design/fleet-sim.md, "Rollout";
 * docs/spec/rollout.md): a staged rollout run on simulated time by the same
 * RolloutDriver `holdfast rollout` uses. The sim's image for it fails its
 * self-test on boards of hardware revision rev-b (declared in its app
 * description, fleet-firmware.ts); each device carries labels drawn from
 * the seed (cohort, gateway, hardware revision: every board behind gw-3 is
 * a rev-b, as when one site was fitted with a later board revision).
 *
 * Per simulated window the runner calls `step`: the records the ingest
 * committed since the last step (tapped in-process from its store's
 * commit, each stamped with the simulated second it is taken at) go to the
 * driver; the driver decides who is offered (the update responder's `allow`
 * is the driver's gate, so nobody else gets a manifest or a chunk), halts
 * on the failure rate, and names the devices to roll back; those get a
 * signed roll-back-update command (sent again with a new counter until the
 * device's own signed `update-rolled-back` entry arrives, at most
 * ROLL_BACK_ATTEMPTS times). Outcomes count only from the devices' signed
 * audit entries.
 *
 * Host tool (Node).
 */
import { readFileSync } from 'node:fs';
import * as ed from '@noble/ed25519';
import type { Crypto } from '../../../firmware/hal/crypto.ts';
import { commandKeyId } from '../../../firmware/security/envelope-command.ts';
import type { FleetMember } from '../../rollout/cohort.ts';
import { RolloutDriver } from '../../rollout/driver.ts';
import { firstTrailBreak, type Decision } from '../../rollout/engine.ts';
import { COMMAND_REPLY_TYPE, CommandReplyError, decodeCommandReply } from '../../../firmware/runtime/command-reply.ts';
import { checkPlan, parsePlan, RolloutPlanError, type RolloutPlan } from '../../rollout/plan.ts';
import { rollBackCommand, type CommandSigner } from '../../rollout/roll-back-command.ts';
import type { OutcomeRow } from '../../rollout/status.ts';
import { deriveSeed, Rng } from '../rng.ts';
import { FleetInputError } from './fleet-firmware.ts';

/** A roll-back command is sent at most this often to one device (each time with a new counter)... */
export const ROLL_BACK_ATTEMPTS = 5;
/** ...and again only after this many simulated seconds without the device's signed rollback. */
export const ROLL_BACK_RESEND_SEC = 20;
/** Command counters step by this much (above any ceiling a device's replay window reserved across its reboots). */
const COUNTER_STEP = 100_000;

/** The plan `--rollout default` runs: canary 10 %, then 50 %, then everyone; halt at 20 % failures of at least 2 outcomes; committed devices roll back. */
export const DEFAULT_ROLLOUT_PLAN: RolloutPlan = checkPlan({
  format: 1,
  id: 'sim-rollout',
  target: { imageVersion: 2, securityVersion: 1 },
  stages: [
    { name: 'canary', percent: 10, minReports: 2, soakSeconds: 60 },
    { name: 'half', percent: 50, minReports: 5, soakSeconds: 60 },
    { name: 'all', percent: 100, minReports: 10, soakSeconds: 0 },
  ],
  halt: { failureRatePercent: 20, minExecuted: 2 },
  timeouts: { inProgressSeconds: 240, silentSeconds: 240 },
  onHalt: 'roll-back',
});

/** The plan named by `--rollout`: `default`, or a plan file (docs/spec/rollout.md, format 1). Throws FleetInputError (exit 2). */
export function loadRolloutPlan(arg: string): RolloutPlan {
  let plan: RolloutPlan;
  if (arg === 'default') plan = DEFAULT_ROLLOUT_PLAN;
  else {
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(readFileSync(arg));
    } catch (error) {
      throw new FleetInputError(`cannot read the rollout plan ${arg}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, '--rollout');
    }
    try {
      plan = parsePlan(bytes);
    } catch (error) {
      if (error instanceof RolloutPlanError) throw new FleetInputError(`rollout plan ${arg}: ${error.message}`, '--rollout');
      throw error;
    }
  }
  if (plan.target.imageVersion < 2) throw new FleetInputError(`rollout plan: target.imageVersion ${plan.target.imageVersion} is no upgrade (the simulated devices run version 1)`, '--rollout');
  return plan;
}

/** A simulated device's labels (the inventory's cohort and gateway, and its board revision). */
export interface SimLabels {
  readonly cohort: string;
  readonly gateway: string;
  readonly revision: string;
}

const GATEWAYS = ['gw-1', 'gw-2', 'gw-3'] as const;
/** The gateway whose site has the rev-b boards. */
export const REV_B_GATEWAY = 'gw-3';

/** Device `index`'s labels, from the seed alone. With one hostile gateway process in the run, the gateway is a label (every device's traffic still crosses the one hostile gateway). */
export function simLabels(seed: number, index: number): SimLabels {
  const r = new Rng(deriveSeed(seed, 30, index));
  const cohort = r.chance(0.5) ? 'line-a' : 'line-b';
  const gateway = GATEWAYS[r.below(GATEWAYS.length)];
  return { cohort, gateway, revision: gateway === REV_B_GATEWAY ? 'rev-b' : 'rev-a' };
}

/** A row of the report by cohort, gateway or revision: the rollout's outcomes and the image versions running at the end. */
export interface SimRolloutRow extends OutcomeRow {
  readonly devices: number;
  readonly versions: Readonly<Record<string, number>>;
}

export interface SimRolloutSummary {
  readonly id: string;
  readonly target: { readonly imageVersion: number; readonly securityVersion: number };
  readonly stages: readonly { readonly name: string; readonly percent: number }[];
  readonly onHalt: RolloutPlan['onHalt'];
  readonly halt: RolloutPlan['halt'];
  /** running, halted or completed; never started: 'not-started'. */
  readonly state: string;
  /** The stage the rollout is at (or halted at). */
  readonly stage: string | null;
  readonly stageIndex: number;
  readonly halted: boolean;
  readonly haltedAt: number | null;
  readonly haltReason: string | null;
  /** Devices ever offered the image, and of them offered in a stage after the first. */
  readonly offered: number;
  readonly offeredAfterCanary: number;
  /** Devices whose signed commit of the target arrived (also those later told to roll back). */
  readonly committed: number;
  /** Devices counted committed now. */
  readonly committedNow: number;
  readonly failed: number;
  /** Devices whose signed update-rolled-back of the target arrived, and of them after a roll-back command. */
  readonly rolledBack: number;
  readonly rolledBackByCommand: number;
  /** Devices the rollout told to roll back, and the signed commands sent to them (resends included). */
  readonly rollBackDevices: number;
  readonly rollBackCommandsSent: number;
  /** The devices' signed answers to them (command-reply records: `accepted`, `refused:<reason>`, ...). */
  readonly rollBackAnswers: Readonly<Record<string, number>>;
  readonly causes: Readonly<Record<string, number>>;
  readonly byCohort: Readonly<Record<string, SimRolloutRow>>;
  readonly byGateway: Readonly<Record<string, SimRolloutRow>>;
  readonly byRevision: Readonly<Record<string, SimRolloutRow>>;
  /** Audit entries refused for their tag, undecodable entries, records of unknown devices (each should be 0). */
  readonly signals: { readonly badTags: number; readonly undecodable: number; readonly unknownDevice: number };
  /** The trail's first broken entry (-1: intact). */
  readonly trailBreak: number;
  readonly decisions: readonly Decision[];
}

/** What the ingest's store commits (the part the tap reads). */
interface CommittedRecords {
  readonly records: readonly { readonly device: string; readonly keyId: number; readonly counter: number; readonly payload: Uint8Array }[];
}

export class SimRollout {
  private driver: RolloutDriver | undefined;
  private readonly taken: { device: string; keyId: number; counter: number; payload: Uint8Array }[] = [];
  private readonly rollBacks = new Map<string, { sent: number; lastAt: number }>();
  private readonly indexOf: Map<string, number>;
  private readonly secrets: Map<string, string>;
  private readonly signer: CommandSigner;
  private counter = 0;
  private commandsSent = 0;
  /** Roll-back commands sent, by counter (their device), and the devices' signed answers (command-reply records) to them. */
  private readonly sentCounters = new Map<number, string>();
  private readonly answers: Record<string, number> = {};
  /** The update responder's gate: only devices the rollout offered, nobody once it halted. */
  readonly allow = (deviceHex: string): boolean => this.driver?.allow(deviceHex) ?? false;

  constructor(
    readonly plan: RolloutPlan,
    /** When the rollout starts (simulated second: the image's offer time). */
    readonly startSec: number,
    private readonly hex: readonly string[],
    secretsHex: readonly string[],
    readonly labels: readonly SimLabels[],
    private readonly crypto: Crypto,
    commandPublicKey: Uint8Array,
    commandSecret: Uint8Array,
  ) {
    this.indexOf = new Map(hex.map((h, i) => [h, i]));
    this.secrets = new Map(hex.map((h, i) => [h, secretsHex[i]]));
    this.signer = { keyId: commandKeyId(crypto, commandPublicKey), sign: (m) => ed.sign(m, commandSecret) };
  }

  /** The store as the ingest should see it: every batch it commits is also kept for the next step. */
  tap<S extends { commit(batch: CommittedRecords): Promise<void> }>(store: S): S {
    return new Proxy(store, {
      get: (target, prop) => {
        if (prop === 'commit') {
          return async (batch: CommittedRecords): Promise<void> => {
            await target.commit(batch);
            for (const r of batch.records) this.taken.push({ device: r.device, keyId: r.keyId, counter: r.counter, payload: r.payload });
          };
        }
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
  }

  private members(running: readonly (number | undefined)[]): FleetMember[] {
    return this.hex.map((device, i) => ({ device, cohort: this.labels[i].cohort, gateway: this.labels[i].gateway, standing: 'active' as const, imageVersion: running[i] ?? 1 }));
  }

  /**
   * One step at simulated second `t` (`running`: each device's image version
   * as it last reported, by index): start once the start time came, feed the
   * records taken since the last step, decide; returns the roll-back
   * commands to publish now.
   */
  step(t: number, running: readonly (number | undefined)[]): { device: number; topic: string; payload: Uint8Array }[] {
    const members = this.members(running);
    if (this.driver === undefined) {
      if (t < this.startSec) {
        this.taken.length = 0;
        return [];
      }
      this.driver = RolloutDriver.start(this.plan, members, t, this.crypto, (d) => this.secrets.get(d)).driver;
    }
    const driver = this.driver;
    const records = this.taken.splice(0).map((r) => ({ ...r, arrivedAt: t * 1000 }));
    for (const r of records) if (r.payload[0] === COMMAND_REPLY_TYPE) this.noteReply(r.device, r.payload);
    const { decisions } = driver.step(records, members, t);
    for (const d of decisions) if (d.kind === 'roll-back') for (const device of d.devices) if (!this.rollBacks.has(device)) this.rollBacks.set(device, { sent: 0, lastAt: -Infinity });
    const out: { device: number; topic: string; payload: Uint8Array }[] = [];
    for (const [device, rb] of this.rollBacks) {
      if (driver.rollout.outcomeOf(device)?.cause?.startsWith('rolled-back:') === true) continue;
      if (rb.sent >= ROLL_BACK_ATTEMPTS || t - rb.lastAt < ROLL_BACK_RESEND_SEC) continue;
      rb.sent++;
      rb.lastAt = t;
      this.counter += COUNTER_STEP;
      this.sentCounters.set(this.counter, device);
      out.push({ device: this.indexOf.get(device)!, topic: `holdfast/${device}/cmd`, payload: rollBackCommand(Buffer.from(device, 'hex'), this.plan.target.imageVersion, this.counter, this.signer) });
    }
    this.commandsSent += out.length;
    return out;
  }

  /** A command-reply record (authenticated by the ingest): counted when it answers one of our roll-back commands. */
  private noteReply(device: string, payload: Uint8Array): void {
    let reply;
    try {
      reply = decodeCommandReply(payload);
    } catch (error) {
      if (error instanceof CommandReplyError) return;
      throw error;
    }
    if (this.sentCounters.get(reply.counter) !== device) return;
    const key = reply.reason === null ? reply.status : `${reply.status}:${reply.reason}`;
    this.answers[key] = (this.answers[key] ?? 0) + 1;
  }

  /** Is the rollout still waiting for something it asked for (a roll-back not yet proven)? */
  get awaitingRollBack(): boolean {
    const driver = this.driver;
    if (driver === undefined) return false;
    for (const [device, rb] of this.rollBacks) if (rb.sent < ROLL_BACK_ATTEMPTS && driver.rollout.outcomeOf(device)?.cause?.startsWith('rolled-back:') !== true) return true;
    return false;
  }

  /** The rollout for `--json` and the report; `running`: each device's image version at the end. */
  summary(running: readonly (number | undefined)[]): SimRolloutSummary {
    const plan = this.plan;
    const driver = this.driver;
    const base = {
      id: plan.id,
      target: plan.target,
      stages: plan.stages.map((s) => ({ name: s.name, percent: s.percent })),
      onHalt: plan.onHalt,
      halt: plan.halt,
    };
    const byLabel = (label: (l: SimLabels) => string, breakdown?: Readonly<Record<string, OutcomeRow>>): Record<string, SimRolloutRow> => {
      const rows: Record<string, SimRolloutRow> = {};
      this.labels.forEach((l, i) => {
        const key = label(l);
        const row = (rows[key] ??= { devices: 0, versions: {}, offered: 0, pending: 0, committed: 0, failed: 0, causes: {}, ...breakdown?.[key] });
        (row as { devices: number }).devices++;
        const v = String(running[i] ?? '?');
        (row.versions as Record<string, number>)[v] = (row.versions[v] ?? 0) + 1;
      });
      return rows;
    };
    if (driver === undefined) {
      return { ...base, state: 'not-started', stage: null, stageIndex: -1, halted: false, haltedAt: null, haltReason: null, offered: 0, offeredAfterCanary: 0, committed: 0, committedNow: 0, failed: 0, rolledBack: 0, rolledBackByCommand: 0, rollBackDevices: 0, rollBackCommandsSent: 0, rollBackAnswers: {}, causes: {}, byCohort: byLabel((l) => l.cohort), byGateway: byLabel((l) => l.gateway), byRevision: byLabel((l) => l.revision), signals: { badTags: 0, undecodable: 0, unknownDevice: 0 }, trailBreak: -1, decisions: [] };
    }
    const rollout = driver.rollout;
    const devices = rollout.devices();
    const counts = rollout.counts();
    const halted = driver.trail.find((d) => d.kind === 'halted');
    const where = (device: string): SimLabels => this.labels[this.indexOf.get(device)!];
    const breakdown = driver.breakdown(where);
    const revisions: Record<string, OutcomeRow> = {};
    for (const d of devices) {
      const row = (revisions[where(d.device).revision] ??= { offered: 0, pending: 0, committed: 0, failed: 0, causes: {} });
      row.offered++;
      row[d.outcome]++;
      if (d.cause !== null) row.causes[d.cause] = (row.causes[d.cause] ?? 0) + 1;
    }
    const rolledBack = devices.filter((d) => d.cause?.startsWith('rolled-back:') === true);
    const byCommand = rolledBack.filter((d) => d.cause === 'rolled-back:commanded').length;
    return {
      ...base,
      state: rollout.status,
      stage: plan.stages[rollout.stage]?.name ?? null,
      stageIndex: rollout.stage,
      halted: rollout.status === 'halted',
      haltedAt: halted?.at ?? null,
      haltReason: halted === undefined ? null : haltReason(halted),
      offered: counts.offered,
      offeredAfterCanary: devices.filter((d) => d.stage > 0).length,
      committed: counts.committed + byCommand,
      committedNow: counts.committed,
      failed: counts.failed,
      rolledBack: rolledBack.length,
      rolledBackByCommand: byCommand,
      rollBackDevices: this.rollBacks.size,
      rollBackCommandsSent: this.commandsSent,
      rollBackAnswers: { ...this.answers },
      causes: counts.causes,
      byCohort: byLabel((l) => l.cohort, breakdown.byCohort),
      byGateway: byLabel((l) => l.gateway, breakdown.byGateway),
      byRevision: byLabel((l) => l.revision, revisions),
      signals: { ...driver.counts },
      trailBreak: firstTrailBreak(driver.trail),
      decisions: driver.trail,
    };
  }
}

/** One line for a halt decision: its rate against the threshold and the failures by cause. */
export function haltReason(d: Decision): string {
  const s = d.signals;
  const causes = Object.entries(s).filter(([k]) => k.startsWith('cause.')).map(([k, v]) => `${k.slice(6)} ${v}`).join(', ');
  if (s.manual === 1) return `halted by hand: ${String(s.reason)} (${s.failed} failed of ${s.executed} with an outcome${causes ? `: ${causes}` : ''})`;
  return `failure rate ${s.failureRatePercent} % ≥ ${s.thresholdPercent} % (${s.failed} failed of ${s.executed} with an outcome${causes ? `: ${causes}` : ''})`;
}
