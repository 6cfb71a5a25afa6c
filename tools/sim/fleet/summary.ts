/**
 * The fleet run's summary: the books of every device checked against the
 * ingest's store, the invariants that decide the exit code, and the lines
 * printed at the end (docs/design/fleet-sim.md, "The summary").
 *
 * Invariants (all must be 0): lost (a record whose append returned is not
 * in the store), counterRegressions (an append returned a counter not above
 * an earlier one, or the store holds a device's counter with content the
 * device never appended under it), replaysAccepted (one record stored
 * twice), forgeriesAccepted (the store holds content the device never
 * appended), bricked (a device that could not boot), auditBreaks.
 *
 * Host tool (Node).
 */
import type { IngestCounts } from '../../ingest/ingest.ts';
import type { AuditVerifyResult } from '../../audit/verify.ts';
import type { UpdateResponderStats } from '../../update-server/responder.ts';
import { RECORD_TYPES } from '../../../firmware/runtime/health-record.ts';
import type { FleetDevice } from './fleet-device.ts';
import { FLEET_CONSTANTS, type Scenario } from './scenario.ts';
import type { SimRolloutSummary } from './rollout.ts';
import type { RevocationSummary } from './revocation.ts';

export interface BrokerInfo {
  readonly kind: 'mosquitto' | 'aedes' | 'external';
  readonly protocol: 'MQTT 5' | 'MQTT 3.1.1';
  readonly version?: string;
  readonly url?: string;
}

/** The figures the invariants are made of: each must be 0. */
export const INVARIANTS = ['lost', 'counterRegressions', 'replaysAccepted', 'forgeriesAccepted', 'bricked', 'auditBreaks', 'revokedAccepted'] as const;
export type InvariantName = (typeof INVARIANTS)[number];

/** Figures that follow from flash and the schedule alone: equal for the same seed, in either engine. */
export const DETERMINISTIC = ['appended', 'accepted', 'cutAppends', 'cutAppendsLanded', 'lost', 'undelivered', 'counterRegressions', 'replaysAccepted', 'forgeriesAccepted', 'bricked', 'rolledBack', 'committed', 'auditBreaks', 'powerCuts', 'linkFlaps', 'brokerRestarts', 'clockSkews'] as const;

/** A commit or a rollback, with its cause, device and simulated second. */
export interface UpdateOutcome {
  readonly device: number;
  readonly kind: 'committed' | 'rolled-back';
  readonly t: number;
  readonly imageVersion: number | undefined;
  readonly cause: string;
}

export interface FleetSummary {
  readonly ok: boolean;
  readonly engine: Scenario['engine'];
  readonly seed: number;
  readonly devices: number;
  /** Simulated seconds. */
  readonly duration: number;
  readonly broker: BrokerInfo;
  readonly rates: { readonly powerCutsPerHour: number; readonly linkFlapsPerHour: number; readonly brokerRestartsPerHour: number; readonly replays: number; readonly recordEverySec: number };
  /** Appends that returned (durable records). */
  readonly appended: number;
  /** Distinct records in the ingest's store. */
  readonly accepted: number;
  /** Appends a power cut interrupted (each may land or not). */
  readonly cutAppends: number;
  /** Of those, the ones that landed on flash and reached the ingest. */
  readonly cutAppendsLanded: number;
  /** Durable readings not in the store but still in the device's outbox at the end (not lost: the device still holds them). */
  readonly undelivered: number;
  /** Records of the runtime's own in the store: health records, audit entries, update requests, command replies. */
  readonly runtimeRecords: number;
  readonly duplicatesDropped: number;
  readonly replaysRejected: number;
  readonly forgeriesRejected: number;
  readonly lost: number;
  readonly counterRegressions: number;
  readonly replaysAccepted: number;
  readonly forgeriesAccepted: number;
  readonly bricked: number;
  readonly rolledBack: number;
  readonly committed: number;
  readonly auditBreaks: number;
  /** --revoke: records of the revoked identity the ingest accepted after its reload returned (0 without --revoke). */
  readonly revokedAccepted: number;
  /** --revoke: what was revoked and how long it took to take effect (absent without --revoke). */
  readonly revocation?: RevocationSummary;
  readonly powerCuts: number;
  readonly linkFlaps: number;
  readonly brokerRestarts: number;
  /** Signed times that jumped (--clock-skew) delivered to running devices, and the clock jumps their audit logs hold. */
  readonly clockSkews: number;
  readonly clockJumpsAudited: number;
  /** Audit entries verified over the fleet (every chain checked at the end). */
  readonly auditEntries: number;
  /** The updates offered (version, behaviour, when), the responder's counts, and every commit and rollback with its cause. */
  readonly updates: { readonly offered: readonly { imageVersion: number; behaviour: string; atSec: number; source: string }[]; readonly manifestsSent: number; readonly chunksSent: number; readonly rollbackCauses: Readonly<Record<string, number>>; readonly outcomes: readonly UpdateOutcome[] };
  /** What the hostile gateway did, by act. */
  readonly gateway: Readonly<Record<string, number>>;
  /** Why some figures are 0 by construction, and anything the run noticed. */
  readonly notes: readonly string[];
  /** Devices that broke an invariant, with what (empty when ok). */
  readonly failures: readonly string[];
  readonly realSeconds: number;
  /** Real seconds of each phase: start (broker, store, devices), the simulated run, the final drain. */
  readonly phases: { readonly startSec: number; readonly runSec: number; readonly drainSec: number };
  /** `--rollout`: the staged rollout (stage, halt, outcomes by cohort, gateway and hardware revision, its decisions). */
  readonly rollout?: SimRolloutSummary;
}

export interface SummaryInput {
  readonly scenario: Scenario;
  readonly broker: BrokerInfo;
  readonly devices: readonly FleetDevice[];
  readonly records: readonly { device: string; counter: number; payload: Uint8Array }[];
  readonly ingest: IngestCounts;
  readonly counts: { readonly appended: number; readonly powerCuts: number; readonly linkFlaps: number; readonly brokerRestarts: number; readonly clockSkews?: number };
  /** Every device's audit chain, verified (same order as devices); absent: not checked. */
  readonly audits?: readonly AuditVerifyResult[];
  /** Counters still in each device's outbox at the end (undefined: the outbox did not open). */
  readonly undelivered?: readonly (Set<number> | undefined)[];
  readonly updates?: readonly { imageVersion: number; behaviour: string; atSec: number; source: string }[];
  readonly revocation?: RevocationSummary;
  readonly responder?: UpdateResponderStats;
  readonly gatewayEvents: Readonly<Record<string, number>>;
  readonly notes: readonly string[];
  readonly realSeconds: number;
  readonly phases: FleetSummary['phases'];
  readonly rollout?: SimRolloutSummary;
}

export const NO_UPDATE_NOTE = 'rolledBack and committed are 0: no update was offered in this scenario (--no-update)';

const round1 = (v: number): number => Math.round(v * 10) / 10;

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

export function buildSummary(input: SummaryInput): FleetSummary {
  const s = input.scenario;
  const byDevice = new Map<string, { counter: number; payload: Uint8Array }[]>();
  for (const r of input.records) {
    const list = byDevice.get(r.device) ?? [];
    list.push(r);
    byDevice.set(r.device, list);
  }
  const failures: string[] = [];
  let appended = 0;
  let lost = 0;
  let undelivered = 0;
  let counterRegressions = 0;
  let replaysAccepted = 0;
  let forgeriesAccepted = 0;
  let bricked = 0;
  let cutAppends = 0;
  let landed = 0;
  let accepted = 0;
  let runtimeRecords = 0;
  input.devices.forEach((d, index) => {
    const stored = byDevice.get(d.hexId) ?? [];
    byDevice.delete(d.hexId);
    appended += d.durable.size;
    cutAppends += d.uncertain.length;
    const counters = new Set(stored.map((r) => r.counter));
    const missing = [...d.durable.keys()].filter((c) => !counters.has(c));
    const kept = input.undelivered?.[index];
    const stillThere = missing.filter((c) => kept?.has(c) === true);
    const deviceLost = missing.filter((c) => kept?.has(c) !== true);
    undelivered += stillThere.length;
    lost += deviceLost.length;
    if (deviceLost.length) failures.push(`device ${d.index} (${d.hexId}): ${deviceLost.length} durable record(s) never accepted and gone from its flash, counters ${deviceLost.slice(0, 5).join(', ')}`);
    counterRegressions += d.counterRegressions;
    if (d.counterRegressions) failures.push(`device ${d.index} (${d.hexId}): ${d.counterRegressions} append(s) returned a counter not above an earlier one`);
    const seenPayloads: Uint8Array[] = [];
    for (const r of stored) {
      const durable = d.durable.get(r.counter);
      if (r.payload[0] !== RECORD_TYPES.reading) {
        // The runtime's own records (health, audit, update requests): authenticated by the ingest, never a reading's counter.
        runtimeRecords++;
        if (durable !== undefined) {
          counterRegressions++;
          failures.push(`device ${d.index} (${d.hexId}): counter ${r.counter} stored as a runtime record, but a reading was appended under it`);
        }
        continue;
      }
      accepted++;
      const reading = r.payload.subarray(1);
      const replayed = seenPayloads.some((p) => same(p, reading));
      seenPayloads.push(reading);
      if (replayed) {
        replaysAccepted++;
        failures.push(`device ${d.index} (${d.hexId}): one record stored twice (again under counter ${r.counter})`);
      } else if (durable !== undefined) {
        if (!same(durable, reading)) {
          counterRegressions++;
          failures.push(`device ${d.index} (${d.hexId}): counter ${r.counter} stored with content the device appended under another counter or never`);
        }
      } else if (d.uncertain.some((p) => same(p, reading))) {
        landed++;
      } else {
        forgeriesAccepted++;
        failures.push(`device ${d.index} (${d.hexId}): counter ${r.counter} stored with content the device never appended`);
      }
    }
    if (d.bricked !== undefined || !d.isAlive) {
      bricked++;
      failures.push(`device ${d.index} (${d.hexId}): bricked: ${d.bricked ?? 'not running at the end'}`);
    }
  });
  // Records stored under a device of no fleet member: forged identities.
  for (const [device, stored] of byDevice) {
    forgeriesAccepted += stored.length;
    failures.push(`${stored.length} record(s) stored for ${device}, which is no device of this fleet`);
  }
  let auditBreaks = 0;
  let auditEntries = 0;
  let clockJumpsAudited = 0;
  (input.audits ?? []).forEach((a, i) => {
    auditEntries += a.entries;
    clockJumpsAudited += a.events.filter((e) => e.kind === 'clock-jump').length;
    if (!a.ok) {
      auditBreaks += Math.max(1, a.problems.length);
      failures.push(`device ${i}: audit chain broken: ${a.firstBreak ? `${a.firstBreak.problem} at entry ${a.firstBreak.index}` : 'does not verify'}`);
    }
  });
  const outcomes: UpdateOutcome[] = [];
  input.devices.forEach((d) => {
    for (const e of d.events) outcomes.push({ device: d.index, kind: e.kind, t: Math.floor(e.t / 1000 / FLEET_CONSTANTS.timeScale), imageVersion: e.imageVersion, cause: e.cause });
  });
  outcomes.sort((a, b) => a.t - b.t || a.device - b.device);
  const rollbackCauses: Record<string, number> = {};
  for (const o of outcomes) if (o.kind === 'rolled-back') rollbackCauses[causeClass(o.cause)] = (rollbackCauses[causeClass(o.cause)] ?? 0) + 1;
  const committed = outcomes.filter((o) => o.kind === 'committed').length;
  const rolledBack = outcomes.length - committed;
  const revokedAccepted = input.revocation?.revokedAccepted ?? 0;
  if (revokedAccepted > 0) failures.push(`device ${input.revocation?.device}: ${revokedAccepted} record(s) of its revoked identity accepted after the ingest reloaded its inventory`);
  const invariantsOk = lost + counterRegressions + replaysAccepted + forgeriesAccepted + bricked + auditBreaks + revokedAccepted === 0;
  return {
    ok: invariantsOk,
    engine: s.engine,
    seed: s.seed,
    devices: s.devices,
    duration: s.durationSec,
    broker: input.broker,
    rates: { powerCutsPerHour: s.powerCutsPerHour, linkFlapsPerHour: s.linkFlapsPerHour, brokerRestartsPerHour: s.brokerRestartsPerHour, replays: s.replays, recordEverySec: s.recordEverySec },
    appended,
    accepted,
    cutAppends,
    cutAppendsLanded: landed,
    undelivered,
    runtimeRecords,
    duplicatesDropped: input.ingest.duplicates,
    replaysRejected: input.ingest.replays,
    forgeriesRejected: input.ingest.forgeries,
    lost,
    counterRegressions,
    replaysAccepted,
    forgeriesAccepted,
    bricked,
    rolledBack,
    committed,
    auditBreaks,
    revokedAccepted,
    ...(input.revocation !== undefined ? { revocation: input.revocation } : {}),
    powerCuts: input.counts.powerCuts,
    linkFlaps: input.counts.linkFlaps,
    brokerRestarts: input.counts.brokerRestarts,
    clockSkews: input.counts.clockSkews ?? 0,
    clockJumpsAudited,
    auditEntries,
    updates: { offered: input.updates ?? [], manifestsSent: input.responder?.manifestsSent ?? 0, chunksSent: input.responder?.chunksSent ?? 0, rollbackCauses, outcomes },
    gateway: input.gatewayEvents,
    notes: [...((input.updates ?? []).length === 0 ? [NO_UPDATE_NOTE] : []), ...(input.audits === undefined ? ['auditBreaks is 0: the audit chains were not checked'] : []), ...input.notes],
    failures,
    realSeconds: round1(input.realSeconds),
    phases: { startSec: round1(input.phases.startSec), runSec: round1(input.phases.runSec), drainSec: round1(input.phases.drainSec) },
    ...(input.rollout === undefined ? {} : { rollout: input.rollout }),
  };
}

/** A rollback's cause as a class (the chart and the summary count by it): the detail stays in `outcomes`. */
export function causeClass(cause: string): string {
  if (/watchdog/.test(cause)) return 'watchdog (image hung)';
  if (/self-test/.test(cause)) return 'health check: self-test';
  if (/broker reached/.test(cause)) return 'health check: broker not reached';
  if (/first record acknowledged/.test(cause)) return 'health check: no record acknowledged';
  if (/power/.test(cause)) return 'power cut during the trial';
  return cause;
}

/** The deterministic part of a summary (for comparing runs and engines). */
export function deterministicFigures(summary: FleetSummary): Record<(typeof DETERMINISTIC)[number], number> {
  return Object.fromEntries(DETERMINISTIC.map((k) => [k, summary[k]])) as Record<(typeof DETERMINISTIC)[number], number>;
}

/** One line per figure, for the end of a run. */
export function summaryLines(summary: FleetSummary): string[] {
  const b = summary.broker;
  const gateway = Object.entries(summary.gateway).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
  const mark = (v: number): string => (v === 0 ? '0' : `${v}  <-- INVARIANT BROKEN`);
  return [
    `fleet: ${summary.devices} device(s), firmware in ${summary.engine === 'xs' ? 'XS' : 'Node'}, ${summary.duration} simulated s, seed ${summary.seed}`,
    `real time: ${summary.realSeconds} s (start ${summary.phases.startSec} s, run ${summary.phases.runSec} s, final drain ${summary.phases.drainSec} s)`,
    `broker: ${b.kind}${b.version ? ` ${b.version}` : ''} (${b.protocol})${b.url ? ` at ${b.url}` : ''}, behind the hostile gateway`,
    `appended            ${summary.appended}  (records whose append returned)`,
    `accepted            ${summary.accepted}  (records in the ingest's store, each once)`,
    `cut appends         ${summary.cutAppends}  (interrupted by a power cut; ${summary.cutAppendsLanded} landed and were delivered)`,
    `undelivered         ${summary.undelivered}  (durable readings still in a device's flash at the end: not lost)`,
    `runtime records     ${summary.runtimeRecords}  (health records, audit entries, update requests in the store)`,
    `duplicatesDropped   ${summary.duplicatesDropped}`,
    `replaysRejected     ${summary.replaysRejected}`,
    `forgeriesRejected   ${summary.forgeriesRejected}`,
    `powerCuts           ${summary.powerCuts}  (every one survived: ${summary.bricked === 0 ? 'yes' : 'no'})`,
    `linkFlaps           ${summary.linkFlaps}`,
    `brokerRestarts      ${summary.brokerRestarts}`,
    `clockSkews          ${summary.clockSkews}  (signed times that jumped; ${summary.clockJumpsAudited} clock jumps in the audit logs, none refused a message)`,
    `gateway             ${gateway}`,
    `lost                ${mark(summary.lost)}`,
    `counterRegressions  ${mark(summary.counterRegressions)}`,
    `replaysAccepted     ${mark(summary.replaysAccepted)}`,
    `forgeriesAccepted   ${mark(summary.forgeriesAccepted)}`,
    `bricked             ${mark(summary.bricked)}`,
    `auditBreaks         ${mark(summary.auditBreaks)}  (${summary.auditEntries} audit entries verified over ${summary.devices} chain(s))`,
    `updates             ${summary.updates.offered.map((u) => `v${u.imageVersion} ${u.behaviour} at ${u.atSec} s`).join(', ') || 'none offered'} (${summary.updates.manifestsSent} manifests, ${summary.updates.chunksSent} chunks served)`,
    `committed           ${summary.committed}`,
    ...revocationLines(summary),
    `rolledBack          ${summary.rolledBack}${Object.keys(summary.updates.rollbackCauses).length ? `  (${Object.entries(summary.updates.rollbackCauses).map(([k, v]) => `${k}: ${v}`).join(', ')})` : ''}`,
    ...(summary.rollout === undefined ? [] : rolloutLines(summary.rollout)),
    ...summary.notes.map((n) => `note: ${n}`),
    ...summary.failures.slice(0, 10).map((f) => `FAILED: ${f}`),
    summary.ok ? `sim: every promise kept (lost, counterRegressions, replaysAccepted, forgeriesAccepted, bricked, auditBreaks${summary.revocation ? ', revokedAccepted' : ''} all 0)` : 'sim: FAILED: an invariant is broken (see above)',
  ];
}

/** The --revoke lines (none without it). */
function revocationLines(summary: FleetSummary): string[] {
  const r = summary.revocation;
  if (r === undefined) return [];
  const mark = (v: number): string => (v === 0 ? '0' : `${v}  <-- INVARIANT BROKEN`);
  const spread = r.devicesRefusingAfter.p50 === null ? 'none' : `p50 ${r.devicesRefusingAfter.p50} s, max ${r.devicesRefusingAfter.max} s`;
  return [
    `revocation          ${r.target === 'device' ? `device ${r.device}'s identity` : 'the command key'} at ${r.at} s: ${r.refusing} of ${r.onlineDevices} online device(s) ${r.target === 'device' ? 'in safe mode (revoked)' : 'refusing it'} after ${spread}${r.target === 'command-key' ? ` (${r.commandsRefused} of ${r.commandsSent} commands refused key-revoked)` : ''}`,
    ...(r.target === 'device' ? [`revokedAccepted     ${mark(r.revokedAccepted)}  (ingest refused it ${r.ingestRefusesAfter} simulated s after, its reload took ${r.ingestReloadMs} ms; ${r.acceptedBefore} record(s) accepted before)`] : []),
  ];
}


/** The rollout's lines (--rollout): where it stopped and why, outcomes, and the failures by gateway and revision. */
export function rolloutLines(r: SimRolloutSummary): string[] {
  const failing = (rows: SimRolloutSummary['byGateway']): string => Object.entries(rows).map(([k, v]) => `${k} ${v.failed}/${v.offered}`).join(', ');
  return [
    `rollout             ${r.id}: ${r.state} at stage ${r.stage ?? '-'}${r.halted ? ` (${r.haltReason})` : ''}`,
    `rollout outcomes    offered ${r.offered} (${r.offeredAfterCanary} after the first stage), committed ${r.committed}, failed ${r.failed}, rolled back ${r.rolledBack} (${r.rolledBackByCommand} by command; ${r.rollBackCommandsSent} roll-back command(s) sent to ${r.rollBackDevices} device(s), answered: ${Object.entries(r.rollBackAnswers).map(([k, v]) => `${k} ${v}`).join(', ') || 'none yet'})`,
    `rollout failures    by gateway: ${failing(r.byGateway)}; by revision: ${failing(r.byRevision)} (failed/offered)`,
  ];
}
