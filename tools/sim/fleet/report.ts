/**
 * `holdfast sim --report FILE.html`: one self-contained page (no network
 * fetch: the charting library, its CSS and the run's data are inlined)
 * with the run's scenario and broker, every figure of the summary, and
 * charts over simulated time: outbox depth, link state, deliveries, faults,
 * update progress (devices per image version, trials, commits and
 * rollbacks), rollbacks by cause, and the invariant counters.
 *
 * Charts: uPlot (npm `uplot`, MIT, ~50 KB minified, no dependencies): made
 * for time series, small enough to inline into every report, and drawn on
 * canvas so a long run's thousands of points stay fast. Chart.js would do
 * too at four times the size.
 *
 * The figures are written into the HTML (they read right without
 * JavaScript); the script draws the charts from the same JSON and lists
 * them in `window.holdfastReport` (what the browser test checks).
 *
 * Host tool (Node).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { TimelineSample } from './runner.ts';
import { INVARIANTS, type FleetSummary } from './summary.ts';
import { renderRolloutSection } from './rollout-report.ts';
import { renderRevocationSection } from './revocation.ts';

/** Time series longer than this are thinned (every k-th sample, the last kept) to keep the page small. */
const MAX_POINTS = 2000;

function uplotAssets(): { js: string; css: string } {
  const require = createRequire(import.meta.url);
  return {
    js: readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8'),
    css: readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8'),
  };
}

const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
/** JSON inside a <script> element: no `</script>` or `<!--` can end it early. */
const scriptJson = (value: unknown): string => JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');

/** Figures shown in the table, in order: [key, label, what it means]. */
export const REPORT_FIGURES: readonly (readonly [keyof FleetSummary, string, string])[] = [
  ['appended', 'appended', 'records whose append returned (durable)'],
  ['accepted', 'accepted', "records in the ingest's store, each once"],
  ['cutAppends', 'cut appends', 'appends a power cut interrupted'],
  ['cutAppendsLanded', 'cut appends landed', 'of those, records that landed on flash and were delivered'],
  ['undelivered', 'undelivered', "durable records still in a device's flash at the end (not lost)"],
  ['runtimeRecords', 'runtime records', "the runtime's own records in the store: health, audit entries, update requests"],
  ['duplicatesDropped', 'duplicates dropped', 'copies the ingest recognised and dropped'],
  ['replaysRejected', 'replays rejected', 'authentic records below the window'],
  ['forgeriesRejected', 'forgeries rejected', 'messages that failed authentication'],
  ['powerCuts', 'power cuts', 'each one during an append'],
  ['linkFlaps', 'link flaps', "a device's link lost for a while"],
  ['brokerRestarts', 'broker restarts', 'the broker stopped and started again'],
  ['clockSkews', 'clock skews', 'signed times that jumped by minutes (never a reason to refuse)'],
  ['clockJumpsAudited', 'clock jumps audited', "clock-jump entries in the devices' audit logs"],
  ['auditEntries', 'audit entries', 'entries verified over every device\'s audit chain'],
  ['lost', 'lost', 'INVARIANT: durable records never accepted'],
  ['counterRegressions', 'counter regressions', 'INVARIANT: a counter not above an earlier one'],
  ['replaysAccepted', 'replays accepted', 'INVARIANT: a record stored twice'],
  ['forgeriesAccepted', 'forgeries accepted', 'INVARIANT: content the device never appended'],
  ['bricked', 'bricked', 'INVARIANT: devices that could not boot'],
  ['auditBreaks', 'audit breaks', "INVARIANT: a device's audit chain does not verify"],
  ['revokedAccepted', 'revoked accepted', "INVARIANT: a revoked identity's record accepted after the ingest dropped it (--revoke)"],
  ['committed', 'committed', 'trial boots that passed every health check and committed'],
  ['rolledBack', 'rolled back', 'trial boots that rolled back by themselves (causes below)'],
];

function thin(timeline: readonly TimelineSample[]): TimelineSample[] {
  if (timeline.length <= MAX_POINTS) return [...timeline];
  const step = Math.ceil(timeline.length / MAX_POINTS);
  const out = timeline.filter((_, i) => i % step === 0);
  if (out[out.length - 1] !== timeline[timeline.length - 1]) out.push(timeline[timeline.length - 1]);
  return out;
}

export function renderReport(summary: FleetSummary, timeline: readonly TimelineSample[]): string {
  const { js, css } = uplotAssets();
  const b = summary.broker;
  const rows = REPORT_FIGURES.map(([key, label, meaning]) => {
    const value = summary[key] as number;
    const invariant = (INVARIANTS as readonly string[]).includes(key);
    const cls = invariant ? (value === 0 ? ' class="ok"' : ' class="broken"') : '';
    return `<tr${cls}><th>${escapeHtml(label)}</th><td data-figure="${key}">${value}</td><td>${escapeHtml(meaning)}</td></tr>`;
  }).join('\n');
  const gateway = Object.entries(summary.gateway).map(([k, v]) => `${escapeHtml(k)} ${v}`).join(', ') || 'none';
  const verdict = summary.ok ? 'Every promise kept: lost, counter regressions, replays and forgeries accepted, bricked devices and audit breaks are all 0.' : 'FAILED: an invariant is broken.';
  // Image versions seen on the fleet (the factory's 1 and every version offered), for the update chart.
  const versions = [...new Set(['1', ...summary.updates.offered.map((u) => String(u.imageVersion)), ...timeline.flatMap((s) => Object.keys(s.versions ?? {}))])].sort((a, b) => Number(a) - Number(b));
  const data = { summary, timeline: thin(timeline), invariants: INVARIANTS, versions };
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>holdfast sim: ${summary.devices} devices, seed ${summary.seed}</title>
<style>${css}</style>
<style>
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1000px; padding: 0 1rem; color: #1d2328; }
h1 { font-size: 1.5rem; margin-bottom: 0.2rem; }
.meta { color: #555; margin: 0.2rem 0; }
.verdict { padding: 0.6rem 0.8rem; border-radius: 4px; margin: 1rem 0; }
.verdict.ok { background: #e5f5e8; } .verdict.broken { background: #fbe3e1; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { text-align: left; padding: 0.2rem 0.8rem 0.2rem 0; border-bottom: 1px solid #eee; }
td[data-figure] { text-align: right; font-variant-numeric: tabular-nums; }
tr.ok td[data-figure] { color: #1b7a32; } tr.broken td[data-figure] { color: #b3261e; font-weight: bold; }
section.chart { margin: 1.5rem 0; } section.chart h2 { font-size: 1.1rem; margin-bottom: 0.3rem; }
.note { color: #555; font-size: 0.9rem; }
</style>
</head>
<body>
<h1>holdfast sim: ${summary.devices} devices, firmware in ${summary.engine === 'xs' ? 'XS' : 'Node'}</h1>
<p class="meta" id="scenario">${summary.duration} simulated seconds, seed <span data-figure="seed">${summary.seed}</span>; power cuts ${summary.rates.powerCutsPerHour}/device/h, link flaps ${summary.rates.linkFlapsPerHour}/device/h, broker restarts ${summary.rates.brokerRestartsPerHour}/h, gateway hostility ${summary.rates.replays} per PUBLISH; one record per device every ${summary.rates.recordEverySec} s; ${summary.realSeconds} s of real time.</p>
<p class="meta" id="broker">Broker: <strong data-broker="${escapeHtml(b.kind)}">${escapeHtml(b.kind)}${b.version ? ` ${escapeHtml(b.version)}` : ''}</strong> (${escapeHtml(b.protocol)})${b.url ? ` at ${escapeHtml(b.url)}` : ''}, behind the hostile gateway (${gateway}).</p>
<p class="verdict ${summary.ok ? 'ok' : 'broken'}">${escapeHtml(verdict)}</p>
<table id="figures">
${rows}
</table>
<table id="rollback-causes">
${Object.entries(summary.updates.rollbackCauses).map(([cause, n]) => `<tr><th>rolled back: ${escapeHtml(cause)}</th><td data-cause="${escapeHtml(cause)}">${n}</td></tr>`).join('\n')}
</table>
<p class="meta" id="updates">Updates offered: ${summary.updates.offered.map((u) => `v${u.imageVersion} (${escapeHtml(u.behaviour)}) at ${u.atSec} s`).join(', ') || 'none'}; the responder sent ${summary.updates.manifestsSent} manifests and ${summary.updates.chunksSent} chunks.</p>
${renderRolloutSection(summary.rollout)}
${renderRevocationSection(summary.revocation)}
${summary.notes.map((n) => `<p class="note">${escapeHtml(n)}</p>`).join('\n')}
${summary.failures.slice(0, 50).map((f) => `<p class="note broken">${escapeHtml(f)}</p>`).join('\n')}
<section class="chart"><h2>Outbox depth</h2><p class="note">Records in the fleet's outboxes not yet released by an ingest receipt, at the end of each window (links that are down hold their backlog).</p><div id="chart-outbox"></div></section>
<section class="chart"><h2>Link state</h2><p class="note">Devices online, dark after a power cut, and with their link down.</p><div id="chart-links"></div></section>
<section class="chart"><h2>Deliveries</h2><p class="note">Records appended and records the ingest accepted, cumulative.</p><div id="chart-deliveries"></div></section>
<section class="chart"><h2>Faults</h2><p class="note">Power cuts, link flaps and broker restarts, cumulative.</p><div id="chart-faults"></div></section>
<section class="chart"><h2>Update progress</h2><p class="note">Devices running each image version, devices on a trial boot, and trials committed and rolled back (cumulative).</p><div id="chart-updates"></div></section>
<section class="chart"><h2>Rollbacks by cause</h2><p class="note">Why each trial boot rolled back: the bad image hung (watchdog) or failed its self-test, a power cut during the trial, a health check not passed in time.</p><div id="chart-rollbacks"></div></section>
<section class="chart"><h2>Invariant counters</h2><p class="note">Each must be 0.</p><div id="chart-invariants"></div></section>
<script id="sim-data" type="application/json">${scriptJson(data)}</script>
<script>${js}</script>
<script>
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('sim-data').textContent);
  var t = data.timeline.map(function (s) { return s.t; });
  var col = function (k) { return data.timeline.map(function (s) { return s[k]; }); };
  var width = Math.min(960, document.body.clientWidth || 960);
  var charts = [];
  var colors = ['#1f6feb', '#d1242f', '#8250df', '#1a7f37', '#bf8700'];
  function draw(id, series, xs, ys, extra) {
    var opts = Object.assign({
      width: width, height: 240,
      scales: { x: { time: false } },
      axes: [{ label: 'simulated seconds' }, {}],
      series: [{ label: 't' }].concat(series.map(function (name, i) { return { label: name, stroke: colors[i % colors.length], width: 2 }; })),
    }, extra || {});
    var plot = new uPlot(opts, [xs].concat(ys), document.getElementById(id));
    charts.push({ id: id, series: series, points: xs.length, nonEmpty: ys.every(function (y) { return y.length === xs.length && y.length > 0; }), plot: plot });
  }
  draw('chart-outbox', ['outbox depth'], t, [col('outboxDepth')]);
  draw('chart-links', ['online', 'dark', 'links down'], t, [col('online'), col('dark'), col('linksDown')]);
  draw('chart-deliveries', ['appended', 'accepted'], t, [col('appended'), col('accepted')]);
  draw('chart-faults', ['power cuts', 'link flaps', 'broker restarts'], t, [col('powerCuts'), col('linkFlaps'), col('brokerRestarts')]);
  var versions = data.versions;
  draw('chart-updates', versions.map(function (v) { return 'running v' + v; }).concat(['on trial', 'committed', 'rolled back']), t,
    versions.map(function (v) { return data.timeline.map(function (s) { return (s.versions && s.versions[v]) || 0; }); }).concat([col('onTrial'), col('committed'), col('rolledBack')]));
  function bars(id, label, names, values, color) {
    var xs = names.map(function (_, i) { return i; });
    draw(id, [label], xs, [values], {
      scales: { x: { time: false, range: [-0.5, names.length - 0.5] }, y: { range: [0, Math.max(1, Math.max.apply(null, values))] } },
      axes: [{ values: function (_, ticks) { return ticks.map(function (i) { return names[i] === undefined ? '' : names[i]; }); }, splits: function () { return xs; } }, {}],
      series: [{ label: 'x' }, { label: label, stroke: color, fill: color.replace('rgb', 'rgba').replace(')', ',0.35)'), paths: uPlot.paths.bars({ size: [0.6] }), points: { show: false } }],
    });
  }
  var causes = Object.keys(data.summary.updates.rollbackCauses);
  if (causes.length === 0) causes = ['none'];
  bars('chart-rollbacks', 'rollbacks', causes, causes.map(function (c) { return data.summary.updates.rollbackCauses[c] || 0; }), 'rgb(191,135,0)');
  var names = data.invariants;
  bars('chart-invariants', 'count', names, names.map(function (n) { return data.summary[n]; }), 'rgb(209,36,47)');
  var lastSample = data.timeline[data.timeline.length - 1] || {};
  window.holdfastReportData = { last: { committed: lastSample.committed, rolledBack: lastSample.rolledBack, onTrial: lastSample.onTrial } };
  window.holdfastReport = { summary: data.summary, charts: charts.map(function (c) { return { id: c.id, series: c.series, points: c.points, nonEmpty: c.nonEmpty }; }) };
})();
</script>
</body>
</html>
`;
}
