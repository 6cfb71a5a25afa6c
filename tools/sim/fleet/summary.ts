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
import type { FleetDevice } from './fleet-device.ts';
import type { Scenario } from './scenario.ts';

export interface BrokerInfo {
  readonly kind: 'mosquitto' | 'aedes' | 'external';
  readonly protocol: 'MQTT 5' | 'MQTT 3.1.1';
  readonly version?: string;
  readonly url?: string;
}

/** The figures the invariants are made of: each must be 0. */
export const INVARIANTS = ['lost', 'counterRegressions', 'replaysAccepted', 'forgeriesAccepted', 'bricked', 'auditBreaks'] as const;
export type InvariantName = (typeof INVARIANTS)[number];

/** Figures that follow from flash and the schedule alone: equal for the same seed, in either engine. */
export const DETERMINISTIC = ['appended', 'accepted', 'cutAppends', 'cutAppendsLanded', 'lost', 'counterRegressions', 'replaysAccepted', 'forgeriesAccepted', 'bricked', 'rolledBack', 'committed', 'auditBreaks', 'powerCuts', 'linkFlaps', 'brokerRestarts'] as const;

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
  readonly powerCuts: number;
  readonly linkFlaps: number;
  readonly brokerRestarts: number;
  /** What the hostile gateway did, by act. */
  readonly gateway: Readonly<Record<string, number>>;
  /** Why some figures are 0 by construction, and anything the run noticed. */
  readonly notes: readonly string[];
  /** Devices that broke an invariant, with what (empty when ok). */
  readonly failures: readonly string[];
  readonly realSeconds: number;
  /** Real seconds of each phase: start (broker, store, devices), the simulated run, the final drain. */
  readonly phases: { readonly startSec: number; readonly runSec: number; readonly drainSec: number };
}

export interface SummaryInput {
  readonly scenario: Scenario;
  readonly broker: BrokerInfo;
  readonly devices: readonly FleetDevice[];
  readonly records: readonly { device: string; counter: number; payload: Uint8Array }[];
  readonly ingest: IngestCounts;
  readonly counts: { readonly appended: number; readonly powerCuts: number; readonly linkFlaps: number; readonly brokerRestarts: number };
  readonly gatewayEvents: Readonly<Record<string, number>>;
  readonly notes: readonly string[];
  readonly realSeconds: number;
  readonly phases: FleetSummary['phases'];
}

export const NO_UPDATE_NOTE = 'rolledBack and committed are 0: no update in this scenario (over-the-air updates in the simulator come with the device runtime)';
export const NO_AUDIT_NOTE = 'auditBreaks is 0: the simulated devices run the telemetry path only, which keeps no audit log yet, so there is no chain to check';

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
  let counterRegressions = 0;
  let replaysAccepted = 0;
  let forgeriesAccepted = 0;
  let bricked = 0;
  let cutAppends = 0;
  let landed = 0;
  for (const d of input.devices) {
    const stored = byDevice.get(d.hexId) ?? [];
    byDevice.delete(d.hexId);
    appended += d.durable.size;
    cutAppends += d.uncertain.length;
    const counters = new Set(stored.map((r) => r.counter));
    const deviceLost = [...d.durable.keys()].filter((c) => !counters.has(c));
    lost += deviceLost.length;
    if (deviceLost.length) failures.push(`device ${d.index} (${d.hexId}): ${deviceLost.length} durable record(s) never accepted, counters ${deviceLost.slice(0, 5).join(', ')}`);
    counterRegressions += d.counterRegressions;
    if (d.counterRegressions) failures.push(`device ${d.index} (${d.hexId}): ${d.counterRegressions} append(s) returned a counter not above an earlier one`);
    const seenPayloads: Uint8Array[] = [];
    for (const r of stored) {
      const durable = d.durable.get(r.counter);
      const replayed = seenPayloads.some((p) => same(p, r.payload));
      seenPayloads.push(r.payload);
      if (replayed) {
        replaysAccepted++;
        failures.push(`device ${d.index} (${d.hexId}): one record stored twice (again under counter ${r.counter})`);
      } else if (durable !== undefined) {
        if (!same(durable, r.payload)) {
          counterRegressions++;
          failures.push(`device ${d.index} (${d.hexId}): counter ${r.counter} stored with content the device appended under another counter or never`);
        }
      } else if (d.uncertain.some((p) => same(p, r.payload))) {
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
  }
  // Records stored under a device of no fleet member: forged identities.
  for (const [device, stored] of byDevice) {
    forgeriesAccepted += stored.length;
    failures.push(`${stored.length} record(s) stored for ${device}, which is no device of this fleet`);
  }
  const accepted = input.records.length;
  const auditBreaks = 0;
  const invariantsOk = lost + counterRegressions + replaysAccepted + forgeriesAccepted + bricked + auditBreaks === 0;
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
    duplicatesDropped: input.ingest.duplicates,
    replaysRejected: input.ingest.replays,
    forgeriesRejected: input.ingest.forgeries,
    lost,
    counterRegressions,
    replaysAccepted,
    forgeriesAccepted,
    bricked,
    rolledBack: 0,
    committed: 0,
    auditBreaks,
    powerCuts: input.counts.powerCuts,
    linkFlaps: input.counts.linkFlaps,
    brokerRestarts: input.counts.brokerRestarts,
    gateway: input.gatewayEvents,
    notes: [NO_UPDATE_NOTE, NO_AUDIT_NOTE, ...input.notes],
    failures,
    realSeconds: round1(input.realSeconds),
    phases: { startSec: round1(input.phases.startSec), runSec: round1(input.phases.runSec), drainSec: round1(input.phases.drainSec) },
  };
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
    `duplicatesDropped   ${summary.duplicatesDropped}`,
    `replaysRejected     ${summary.replaysRejected}`,
    `forgeriesRejected   ${summary.forgeriesRejected}`,
    `powerCuts           ${summary.powerCuts}  (every one survived: ${summary.bricked === 0 ? 'yes' : 'no'})`,
    `linkFlaps           ${summary.linkFlaps}`,
    `brokerRestarts      ${summary.brokerRestarts}`,
    `gateway             ${gateway}`,
    `lost                ${mark(summary.lost)}`,
    `counterRegressions  ${mark(summary.counterRegressions)}`,
    `replaysAccepted     ${mark(summary.replaysAccepted)}`,
    `forgeriesAccepted   ${mark(summary.forgeriesAccepted)}`,
    `bricked             ${mark(summary.bricked)}`,
    `auditBreaks         ${mark(summary.auditBreaks)}  (no audit log in this scenario's firmware yet)`,
    `rolledBack          ${summary.rolledBack}  (no update in this scenario)`,
    `committed           ${summary.committed}  (no update in this scenario)`,
    ...summary.notes.slice(2).map((n) => `note: ${n}`),
    ...summary.failures.slice(0, 10).map((f) => `FAILED: ${f}`),
    summary.ok ? 'sim: every promise kept (lost, counterRegressions, replaysAccepted, forgeriesAccepted, bricked, auditBreaks all 0)' : 'sim: FAILED: an invariant is broken (see above)',
  ];
}

