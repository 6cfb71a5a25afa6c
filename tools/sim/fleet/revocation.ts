/**
 * `holdfast sim --revoke` (docs/design/fleet-sim.md, "Revocation"): the
 * books the runner keeps while it revokes as an operator would (the
 * ingest's inventory first, then the signed list published retained), and
 * what they come to: how soon the ingest refused the identity, whether any
 * record of it was accepted after that (`revokedAccepted`, an invariant),
 * and how soon each device that was online at the moment held the list
 * (a revoked device in safe mode, cause `revoked`; every device refusing a
 * revoked command key), in simulated seconds of the devices' own clocks.
 *
 * Host tool (Node).
 */
import type { AuditVerifyResult } from '../../audit/verify.ts';
import { RECORD_TYPES } from '../../../firmware/runtime/health-record.ts';
import type { FleetDevice } from './fleet-device.ts';
import { FLEET_CONSTANTS, type Scenario } from './scenario.ts';

/** What the runner did and when (filled as the run goes). */
export interface RevocationBooks {
  /** The number of the list published (undefined: not yet). */
  published: number | undefined;
  /** performance.now() when the list was handed to the broker. */
  publishedAtReal: number;
  /** Real ms from publishing until the runner first saw each device hold the list. */
  seenRealMs: Map<number, number>;
  /** The device whose identity was revoked (its records are refused: the quiescence waits for none of its receipts). */
  revokedDevice: number | undefined;
  /** Simulated second of the revocation. */
  at: number | undefined;
  /** Real ms the ingest took to reload its inventory (a commit under way ends first). */
  reloadMs: number;
  /** Wall clock (ms) once the reload returned: a record of the identity that arrived after it and was accepted breaks the invariant. */
  reloadedAtWall: number;
  /** The devices the revocation targets that were online at that moment. */
  online: number[];
  /** Commands signed by the revoked command key sent afterwards. */
  commandsSent: number;
}

export interface RevocationSummary {
  readonly target: 'device' | 'command-key';
  /** The device revoked (target device). */
  readonly device: number | null;
  /** Simulated second of `holdfast fleet revoke` (the operator's act). */
  readonly at: number;
  /** Simulated seconds until the ingest refused every record of the identity (0: before the simulated clock moved on; null: command key, the ingest is not involved). */
  readonly ingestRefusesAfter: number | null;
  /** Real ms the ingest's inventory reload took. */
  readonly ingestReloadMs: number;
  /** Readings of the identity in the store (all accepted before the revocation took effect). */
  readonly acceptedBefore: number;
  /** Simulated second at which the newest of them was appended (null: none). */
  readonly lastAcceptedAppendedAt: number | null;
  /** Records of the identity accepted after the ingest's reload returned: an invariant, must be 0. */
  readonly revokedAccepted: number;
  /** Targeted devices online at the revocation (the revoked device, or the whole fleet for a command key). */
  readonly onlineDevices: number;
  /** Of those, the ones that held the list by the end (device: in safe mode, cause revoked; command key: refusing it). */
  readonly refusing: number;
  /** Simulated seconds from the revocation until each of those held the list. */
  readonly devicesRefusingAfter: { readonly p50: number | null; readonly max: number | null };
  /** The same in real ms from publishing the list (broker, gateway, link, the device's verify and flash write, as the runner saw it). */
  readonly devicesRefusingAfterRealMs: { readonly p50: number | null; readonly max: number | null };
  /** Targeted devices dark or without a link at the revocation, the ones of them holding the list by the end, and how long it took them (their dark spell or lost link, then a connection). */
  readonly offlineDevices: number;
  readonly offlineRefusing: number;
  readonly offlineRefusingAfter: { readonly p50: number | null; readonly max: number | null };
  /** The revoked device's safe-mode cause at the end (target device). */
  readonly safeModeCause: string | null;
  /** Commands signed by the revoked key sent after it, and the refusals (command-revoked) the devices' audit logs hold (a command the gateway replayed or duplicated is refused again). */
  readonly commandsSent: number;
  readonly commandsRefused: number;
}

function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

const round3 = (v: number): number => Math.round(v * 1000) / 1000;

export function revocationSummary(
  s: Scenario,
  books: RevocationBooks,
  devices: readonly FleetDevice[],
  records: readonly { device: string; payload: Uint8Array; arrivedAt?: Date }[],
  audits: readonly AuditVerifyResult[],
): RevocationSummary | undefined {
  const plan = s.revoke;
  if (plan === undefined || books.at === undefined) return undefined;
  const at = books.at;
  const revoked = plan.target === 'device' ? devices[plan.device] : undefined;
  let acceptedBefore = 0;
  let revokedAccepted = 0;
  let lastAppended: number | null = null;
  if (revoked !== undefined) {
    for (const r of records) {
      if (r.device !== revoked.hexId) continue;
      if (r.arrivedAt !== undefined && r.arrivedAt.getTime() > books.reloadedAtWall) revokedAccepted++;
      else acceptedBefore++;
      // A reading carries the simulated second it was appended at (the runner's payload); the runtime's own records do not.
      if (r.payload[0] === RECORD_TYPES.reading) {
        try {
          const t = (JSON.parse(new TextDecoder().decode(r.payload.subarray(1))) as { t?: unknown }).t;
          if (typeof t === 'number' && (lastAppended === null || t > lastAppended)) lastAppended = t;
        } catch {
          // not one of the runner's readings: no time to read
        }
      }
    }
  }
  /** Seconds from the revocation until device i refused, undefined when it does not (yet). */
  const refusedAfter = (i: number): number | undefined => {
    const r = devices[i].last?.revocation;
    if (r === undefined || books.published === undefined || r.number < books.published || r.sinceMs === undefined) return undefined;
    const refusing = plan.target === 'device' ? devices[i].last?.safeModeCause === 'revoked' : r.commandKeyRevoked;
    return refusing ? Math.max(0, round3(r.sinceMs / FLEET_CONSTANTS.timeScale / 1000 - at)) : undefined;
  };
  const times = (indices: readonly number[]): number[] => indices.flatMap((i) => refusedAfter(i) ?? []).sort((a, b) => a - b);
  const after = times(books.online);
  const real = books.online.flatMap((i) => (refusedAfter(i) !== undefined && books.seenRealMs.has(i) ? [Math.round(books.seenRealMs.get(i)!)] : [])).sort((a, b) => a - b);
  const targets = plan.target === 'device' ? [plan.device] : devices.map((_, i) => i);
  const offline = targets.filter((i) => !books.online.includes(i));
  const later = times(offline);
  let commandsRefused = 0;
  for (const a of audits) commandsRefused += a.events.filter((e) => e.kind === 'command-revoked').length;
  return {
    target: plan.target,
    device: plan.target === 'device' ? plan.device : null,
    at,
    ingestRefusesAfter: plan.target === 'device' ? 0 : null,
    ingestReloadMs: Math.round(books.reloadMs * 10) / 10,
    acceptedBefore,
    lastAcceptedAppendedAt: lastAppended,
    revokedAccepted,
    onlineDevices: books.online.length,
    refusing: after.length,
    devicesRefusingAfter: { p50: percentile(after, 0.5), max: percentile(after, 1) },
    devicesRefusingAfterRealMs: { p50: percentile(real, 0.5), max: percentile(real, 1) },
    offlineDevices: offline.length,
    offlineRefusing: later.length,
    offlineRefusingAfter: { p50: percentile(later, 0.5), max: percentile(later, 1) },
    safeModeCause: revoked?.last?.safeModeCause ?? null,
    commandsSent: books.commandsSent,
    commandsRefused,
  };
}

const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The report's revocation table (`--report` with `--revoke`; '' without): each figure carries `data-revocation` (the browser test compares it with the JSON). */
export function renderRevocationSection(r: RevocationSummary | undefined): string {
  if (r === undefined) return '';
  const cell = (key: string, value: number | string | null): string => `<td data-revocation="${key}">${escapeHtml(value === null ? '-' : String(value))}</td>`;
  const rows: [string, string, number | string | null][] = [
    ['at', 'revoked at (simulated s)', r.at],
    ...(r.target === 'device'
      ? ([
          ['ingestRefusesAfter', 'the ingest refuses the identity after (simulated s)', r.ingestRefusesAfter],
          ['ingestReloadMs', "the ingest's inventory reload (real ms)", r.ingestReloadMs],
          ['acceptedBefore', 'its records accepted before', r.acceptedBefore],
          ['revokedAccepted', 'its records accepted after (INVARIANT: 0)', r.revokedAccepted],
          ['safeModeCause', "the device's safe-mode cause", r.safeModeCause],
        ] as [string, string, number | string | null][])
      : ([
          ['commandsSent', 'commands signed with it sent afterwards', r.commandsSent],
          ['commandsRefused', 'refused key-revoked (audited, replays included)', r.commandsRefused],
        ] as [string, string, number | string | null][])),
    ['onlineDevices', 'targeted devices online then', r.onlineDevices],
    ['refusing', 'of them refusing by the end', r.refusing],
    ['devicesRefusingAfter.p50', 'refusing after, p50 (simulated s)', r.devicesRefusingAfter.p50],
    ['devicesRefusingAfter.max', 'refusing after, max (simulated s)', r.devicesRefusingAfter.max],
    ['devicesRefusingAfterRealMs.max', 'refusing after, max (real ms)', r.devicesRefusingAfterRealMs.max],
    ['offlineDevices', 'targeted devices offline then', r.offlineDevices],
    ['offlineRefusingAfter.max', 'they refused after, max (simulated s: their dark spell or lost link)', r.offlineRefusingAfter.max],
  ];
  return `<section id="revocation">
<h2>Revocation: ${r.target === 'device' ? `device ${r.device}'s identity` : 'the fleet command key'}</h2>
<p class="note">Done as an operator does it: the ingest's inventory first, then the signed list published retained on holdfast/fleet/revocation.</p>
<table id="revocation-figures">
${rows.map(([key, label, value]) => `<tr><th>${escapeHtml(label)}</th>${cell(key, value)}</tr>`).join('\n')}
</table>
</section>`;
}
