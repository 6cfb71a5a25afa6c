/**
 * The rollout section of `holdfast sim --report` (with `--rollout`): where
 * the rollout stopped and why, its stages in time (offered, reported,
 * ended, halted), the halt's signals, the outcomes by cohort, by gateway and
 * by hardware revision with the image versions running at the end, and
 * every decision of its trail. Plain HTML tables (they read without
 * JavaScript); every number carries a data attribute the browser test
 * compares with the JSON summary.
 *
 * Host tool (Node).
 */
import type { SimRolloutRow, SimRolloutSummary } from './rollout.ts';

const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function stageRows(r: SimRolloutSummary): string {
  return r.stages
    .map((s, i) => {
      const mine = r.decisions.filter((d) => d.stage === i);
      const at = (kind: string): string => {
        const d = mine.find((x) => x.kind === kind);
        return d === undefined ? '-' : String(d.at);
      };
      const offered = mine.filter((d) => d.kind === 'offered').reduce((n, d) => n + d.devices.length, 0);
      const state = r.halted && r.stageIndex === i ? 'halted here' : i < r.stageIndex || (r.state === 'completed' && i === r.stageIndex) ? 'ended' : i === r.stageIndex ? r.state : 'not reached';
      return `<tr data-stage="${escapeHtml(s.name)}"><th>${escapeHtml(s.name)}</th><td>${s.percent} %</td><td data-stage-offered="${offered}">${offered}</td><td>${at('offered')}</td><td>${at('stage-reported')}</td><td>${at('stage-ended')}</td><td data-stage-state="${escapeHtml(state)}">${escapeHtml(state)}</td></tr>`;
    })
    .join('\n');
}

function outcomeTable(id: string, what: string, rows: Readonly<Record<string, SimRolloutRow>>): string {
  const body = Object.entries(rows)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, row]) => {
      const causes = Object.entries(row.causes).map(([c, n]) => `${escapeHtml(c)} ${n}`).join(', ') || '-';
      const versions = Object.entries(row.versions).map(([v, n]) => `v${escapeHtml(v)} ${n}`).join(', ');
      return `<tr data-key="${escapeHtml(key)}"><th>${escapeHtml(key)}</th><td data-col="devices">${row.devices}</td><td data-col="offered">${row.offered}</td><td data-col="committed">${row.committed}</td><td data-col="failed">${row.failed}</td><td data-col="pending">${row.pending}</td><td>${causes}</td><td>${versions}</td></tr>`;
    })
    .join('\n');
  return `<h3>By ${escapeHtml(what)}</h3>
<table id="${id}"><tr><th>${escapeHtml(what)}</th><th>devices</th><th>offered</th><th>committed</th><th>failed</th><th>pending</th><th>failures by cause</th><th>running at the end</th></tr>
${body}
</table>`;
}

/** The section, or '' without a rollout. */
export function renderRolloutSection(r: SimRolloutSummary | undefined): string {
  if (r === undefined) return '';
  const halt = r.decisions.find((d) => d.kind === 'halted');
  const haltSignals = halt === undefined ? '' : `<table id="rollout-halt-signals">${Object.entries(halt.signals).map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td data-signal="${escapeHtml(k)}">${escapeHtml(String(v))}</td></tr>`).join('')}</table>`;
  const figures: [keyof SimRolloutSummary, string][] = [
    ['offered', 'offered the image'],
    ['offeredAfterCanary', 'offered after the first stage'],
    ['committed', 'committed (signed commit)'],
    ['failed', 'failed'],
    ['rolledBack', 'rolled back (signed)'],
    ['rolledBackByCommand', 'of them told to by the rollout'],
    ['rollBackCommandsSent', 'roll-back commands sent'],
  ];
  const decisions = r.decisions
    .map((d) => `<tr data-kind="${escapeHtml(d.kind)}"><td>${d.seq}</td><td>${d.at}</td><td>${escapeHtml(d.kind)}</td><td>${escapeHtml(r.stages[d.stage]?.name ?? String(d.stage))}</td><td>${d.devices.length}</td><td>${escapeHtml(Object.entries(d.signals).map(([k, v]) => `${k} ${v}`).join(', '))}</td></tr>`)
    .join('\n');
  return `<section id="rollout">
<h2>Rollout ${escapeHtml(r.id)}</h2>
<p class="meta" id="rollout-state">Image v${r.target.imageVersion} (security ${r.target.securityVersion}): <strong data-rollout-state="${escapeHtml(r.state)}">${escapeHtml(r.state)}</strong> at stage <strong data-rollout-stage="${escapeHtml(r.stage ?? '-')}">${escapeHtml(r.stage ?? '-')}</strong>; halt at ${r.halt.failureRatePercent} % failures of at least ${r.halt.minExecuted} outcomes; on halt: ${escapeHtml(r.onHalt)}. Only the devices' signed audit entries count (update-committed, update-rolled-back).</p>
${halt === undefined ? '' : `<p class="verdict broken" id="rollout-halt">Halted at ${halt.at} s: ${escapeHtml(r.haltReason ?? '')}</p>\n${haltSignals}`}
<table id="rollout-figures">
${figures.map(([k, label]) => `<tr><th>${escapeHtml(label)}</th><td data-rollout-figure="${k}">${String(r[k])}</td></tr>`).join('\n')}
</table>
<p class="meta" id="rollout-answers">The devices' signed answers to the roll-back commands: ${Object.entries(r.rollBackAnswers).map(([k, v]) => `<span data-answer="${escapeHtml(k)}">${escapeHtml(k)} ${v}</span>`).join(', ') || 'none'}.</p>
<h3>Stages</h3>
<table id="rollout-stages"><tr><th>stage</th><th>share</th><th>offered</th><th>offered at (s)</th><th>reported at (s)</th><th>ended at (s)</th><th>state</th></tr>
${stageRows(r)}
</table>
${outcomeTable('rollout-by-cohort', 'cohort', r.byCohort)}
${outcomeTable('rollout-by-gateway', 'gateway', r.byGateway)}
${outcomeTable('rollout-by-revision', 'hardware revision', r.byRevision)}
<h3>Decisions (trail${r.trailBreak === -1 ? ', hash chain intact' : `, BROKEN at entry ${r.trailBreak}`})</h3>
<table id="rollout-decisions"><tr><th>#</th><th>at (s)</th><th>decision</th><th>stage</th><th>devices</th><th>signals</th></tr>
${decisions}
</table>
</section>`;
}
