/**
 * The per-device report (docs/spec/ingest.md, "Report"), computed from the
 * store's sender and refusal rows (never from the records).
 *
 * Host tool (Node).
 */
import type { LoadedState } from './store.ts';
import { IngestWindow } from './window.ts';

export interface DeviceReport {
  /** Device id (16 hex digits), or '' for refusals whose topic named no known device. */
  device: string;
  keyIds: number[];
  accepted: number;
  duplicatesDropped: number;
  replaysRejected: number;
  forgeriesRejected: number;
  /** Counter values between a key's first and highest accepted counter that were never accepted, summed over its key ids. */
  gaps: number;
  /** Highest counter accepted (over its key ids), 0 if none. */
  highest: number;
  /** Refusals before authentication, by reason. */
  forgeriesByReason: Record<string, number>;
}

export interface IngestReport {
  devices: DeviceReport[];
  totals: { accepted: number; duplicatesDropped: number; replaysRejected: number; forgeriesRejected: number; gaps: number };
}

export function buildReport(state: LoadedState): IngestReport {
  const byDevice = new Map<string, DeviceReport>();
  const row = (device: string): DeviceReport => {
    let r = byDevice.get(device);
    if (!r) {
      r = { device, keyIds: [], accepted: 0, duplicatesDropped: 0, replaysRejected: 0, forgeriesRejected: 0, gaps: 0, highest: 0, forgeriesByReason: {} };
      byDevice.set(device, r);
    }
    return r;
  };
  for (const s of state.senders) {
    const r = row(s.device);
    const window = new IngestWindow(s.window);
    r.keyIds.push(s.keyId);
    r.accepted += window.accepted;
    r.gaps += window.gaps;
    r.highest = Math.max(r.highest, window.highest);
    r.duplicatesDropped += s.duplicates;
    r.replaysRejected += s.replays;
  }
  for (const f of state.refusals) {
    const r = row(f.device);
    r.forgeriesRejected += f.count;
    r.forgeriesByReason[f.reason] = (r.forgeriesByReason[f.reason] ?? 0) + f.count;
  }
  const devices = [...byDevice.values()].sort((a, b) => (a.device === '' ? 1 : b.device === '' ? -1 : a.device.localeCompare(b.device)));
  for (const d of devices) d.keyIds.sort((a, b) => a - b);
  const sum = (f: (d: DeviceReport) => number) => devices.reduce((n, d) => n + f(d), 0);
  return {
    devices,
    totals: { accepted: sum((d) => d.accepted), duplicatesDropped: sum((d) => d.duplicatesDropped), replaysRejected: sum((d) => d.replaysRejected), forgeriesRejected: sum((d) => d.forgeriesRejected), gaps: sum((d) => d.gaps) },
  };
}

export function formatReport(report: IngestReport): string {
  const header = ['device', 'accepted', 'duplicates', 'replays', 'forgeries', 'gaps', 'highest'];
  const rows = report.devices.map((d) => [d.device === '' ? '(unknown)' : d.device, d.accepted, d.duplicatesDropped, d.replaysRejected, d.forgeriesRejected, d.gaps, d.highest].map(String));
  const t = report.totals;
  rows.push(['total', t.accepted, t.duplicatesDropped, t.replaysRejected, t.forgeriesRejected, t.gaps, ''].map(String));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}
