/**
 * `holdfast sim --rollout default --json --report FILE.html` through the
 * real CLI, then the page's rollout section in chromium (playwright-core,
 * every network request refused): the state and stage, the halt with its
 * signals, every rollout figure, the stage timeline, the outcomes by
 * cohort, gateway and hardware revision and the decisions all equal the
 * JSON summary's `rollout`; the report shows the failures behind gw-3
 * (rev-b) and the halt at the canary.
 *
 * Without chromium the browser part is skipped with the reason, unless CI
 * is set: then it fails.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, isAbsolute, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { findTool, requireComponents, skipUnless } from '../../tools/net/common.ts';
import type { SimRolloutSummary } from '../../tools/sim/fleet/rollout.ts';
import { expectExit, holdfast } from '../cli/cli-harness.ts';

const chromium = findTool('chromium', ['--version'], 'chromium', ['/usr/bin']);

function fullPath(name: string): string {
  if (isAbsolute(name)) return name;
  const dir = (process.env.PATH ?? '').split(delimiter).find((d) => d !== '' && existsSync(join(d, name)));
  return dir === undefined ? name : join(dir, name);
}

describe('holdfast sim --rollout --report: the rollout section in a real browser', { concurrency: false }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-sim-rollout-report-'));
  const reportPath = join(dir, 'report.html');
  let rollout: SimRolloutSummary | undefined;

  it('a run through the CLI halts at the canary and writes the report', async () => {
    const run = await holdfast(['sim', '--engine', 'node', '--devices', '20', '--duration', '150', '--seed', '2', '--power-cuts', '0', '--link-flaps', '0', '--broker-restarts', '0', '--replays', '0', '--clock-skew', '0', '--rollout', 'default', '--json', '--report', reportPath], { timeout: 300_000 });
    expectExit(run, 0, 'sim --rollout default --json');
    rollout = (JSON.parse(run.stdout) as { rollout: SimRolloutSummary }).rollout;
    for (const key of ['id', 'state', 'stage', 'halted', 'haltReason', 'offered', 'committed', 'failed', 'rolledBack', 'byCohort', 'byGateway', 'decisions']) assert.ok(key in rollout, `--json rollout has ${key}`);
    const context = JSON.stringify({ ...rollout, decisions: rollout.decisions.map((d) => `${d.at} ${d.kind} ${d.devices.length}`) });
    assert.equal(`${rollout.state}:${rollout.stage}:${rollout.halted}`, 'halted:canary:true', context);
    assert.equal(`${rollout.committed}:${rollout.rolledBackByCommand}:${rollout.committedNow}`, '1:1:0', `the committed canary rolled back when told: ${context}`);
  });

  it('chromium shows the rollout as the JSON says: halt, stages, outcomes by cohort, gateway and revision, decisions', { skip: skipUnless([chromium]) }, async () => {
    requireComponents([chromium]);
    const r = rollout;
    assert.ok(r, 'the CLI run came first');
    const { chromium: launcher } = await import('playwright-core');
    const browser = await launcher.launch({ executablePath: fullPath(chromium.ok ? chromium.path : 'chromium'), args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage();
      const problems: string[] = [];
      page.on('pageerror', (e) => problems.push(String(e)));
      page.on('console', (m) => void (m.type() === 'error' && problems.push(m.text())));
      await page.route('**/*', (route) => (route.request().url().startsWith('file:') ? route.continue() : (problems.push(`request ${route.request().url()}`), route.abort())));
      await page.goto(pathToFileURL(reportPath).href, { waitUntil: 'load' });
      assert.deepEqual(problems, [], 'no console error, no network request');
      const attr = (selector: string, name: string) => page.locator(selector).getAttribute(name);
      assert.equal(await attr('[data-rollout-state]', 'data-rollout-state'), r.state);
      assert.equal(await attr('[data-rollout-stage]', 'data-rollout-stage'), r.stage);
      assert.match((await page.locator('#rollout-halt').textContent()) ?? '', new RegExp(`Halted at ${r.haltedAt} s: failure rate 50 %`));
      const halted = r.decisions.find((d) => d.kind === 'halted')!;
      const signals = await page.locator('[data-signal]').evaluateAll((els) => els.map((e) => [e.getAttribute('data-signal'), e.textContent]));
      assert.deepEqual(Object.fromEntries(signals), Object.fromEntries(Object.entries(halted.signals).map(([k, v]) => [k, String(v)])), 'the halt\'s signals');
      const figures = await page.locator('[data-rollout-figure]').evaluateAll((els) => els.map((e) => [e.getAttribute('data-rollout-figure'), e.textContent]));
      assert.equal(figures.length, 7);
      const answers = await page.locator('[data-answer]').evaluateAll((els) => els.map((e) => e.getAttribute('data-answer')));
      assert.deepEqual(answers, Object.keys(r.rollBackAnswers), 'the answers to the roll-back commands');
      for (const [key, text] of figures) assert.equal(text, String(r[key as keyof SimRolloutSummary]), `figure ${key}`);
      // The stages: the canary halted with its 2 devices, the others never reached.
      const stages = await page.locator('#rollout-stages tr[data-stage]').evaluateAll((els) => els.map((e) => `${e.getAttribute('data-stage')}:${e.querySelector('[data-stage-offered]')?.textContent}:${e.querySelector('[data-stage-state]')?.textContent}`));
      assert.deepEqual(stages, ['canary:2:halted here', 'half:0:not reached', 'all:0:not reached']);
      // Outcomes by cohort, gateway and revision: every number as in the JSON.
      for (const [table, rows] of [['rollout-by-cohort', r.byCohort], ['rollout-by-gateway', r.byGateway], ['rollout-by-revision', r.byRevision]] as const) {
        const shown = await page.locator(`#${table} tr[data-key]`).evaluateAll((els) => els.map((e) => [e.getAttribute('data-key'), Object.fromEntries([...e.querySelectorAll('[data-col]')].map((c) => [c.getAttribute('data-col'), Number(c.textContent)]))]));
        assert.deepEqual(Object.fromEntries(shown), Object.fromEntries(Object.entries(rows).map(([k, v]) => [k, { devices: v.devices, offered: v.offered, committed: v.committed, failed: v.failed, pending: v.pending }])), table);
      }
      // The failures by self-test are where the rev-b boards are.
      const gw3 = (await page.locator('#rollout-by-gateway tr[data-key="gw-3"]').textContent()) ?? '';
      assert.match(gw3, /rolled-back:self-test/);
      assert.match((await page.locator('#rollout-by-revision tr[data-key="rev-a"]').textContent()) ?? '', /rolled-back:commanded 1/);
      const kinds = await page.locator('#rollout-decisions tr[data-kind]').evaluateAll((els) => els.map((e) => e.getAttribute('data-kind')));
      assert.deepEqual(kinds, r.decisions.map((d) => d.kind));
    } finally {
      await browser.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
