/**
 * `holdfast sim --json --report FILE.html --keep-flash DIR` end to end
 * through the real CLI, then the report in a real browser: Debian's
 * chromium driven by playwright-core loads the page from disk with every
 * network request refused and counted; it must load with no console
 * error, every chart must have data, and every figure on the page must
 * equal the JSON summary. `holdfast inspect` reads the flash images the run
 * kept.
 *
 * Without chromium the browser test is skipped with the reason, unless CI
 * is set: then it fails (.ci/run installs chromium).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, isAbsolute, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { findTool, requireComponents, skipUnless } from '../../tools/net/common.ts';
import { expectExit, holdfast } from '../cli/cli-harness.ts';

const chromium = findTool('chromium', ['--version'], 'chromium', ['/usr/bin']);

/** playwright wants the executable's full path; findTool may answer with the bare name it found on PATH. */
function executablePath(name: string): string {
  if (isAbsolute(name)) return name;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir !== '' && existsSync(join(dir, name))) return join(dir, name);
  }
  return name;
}

interface ReportState {
  summary: Record<string, unknown>;
  charts: { id: string; series: string[]; points: number; nonEmpty: boolean }[];
}

describe('holdfast sim --report: the page in a real browser', { concurrency: false }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-sim-report-'));
  const reportPath = join(dir, 'out', 'report.html');
  const flashDir = join(dir, 'flash');
  let summary: Record<string, unknown> | undefined;

  it('a short run through the CLI: JSON summary, the report page, the flash images', async () => {
    const run = await holdfast(['sim', '--engine', 'node', '--devices', '3', '--duration', '200', '--seed', '7', '--power-cuts', '40', '--link-flaps', '30', '--bad-update', 'fail-checks', '--revoke', 'device:1@60', '--json', '--report', reportPath, '--keep-flash', flashDir], { timeout: 300_000 });
    expectExit(run, 0, 'sim --json');
    summary = JSON.parse(run.stdout) as Record<string, unknown>;
    for (const key of ['appended', 'accepted', 'duplicatesDropped', 'lost', 'undelivered', 'counterRegressions', 'replaysAccepted', 'forgeriesAccepted', 'bricked', 'rolledBack', 'committed', 'powerCuts', 'linkFlaps', 'clockSkews', 'auditBreaks', 'updates', 'engine', 'seed', 'devices', 'duration', 'broker']) {
      assert.ok(key in summary, `--json has ${key}`);
    }
    assert.equal(summary.ok, true, run.stdout);
    // The sim's own update: a good image commits, the bad one (fails its self-test) rolls back by itself.
    assert.ok((summary.committed as number) > 0, `an update committed: ${run.stdout.slice(0, 2000)}`);
    assert.ok((summary.rolledBack as number) > 0, `the bad update rolled back: ${run.stdout.slice(0, 2000)}`);
    assert.ok(((summary.updates as { rollbackCauses: Record<string, number> }).rollbackCauses['health check: self-test'] ?? 0) > 0, 'rolled back for its failed self-test');
    assert.equal(summary.report, reportPath);
    const html = readFileSync(reportPath, 'utf8');
    // Self-contained: no script, style or image comes from elsewhere.
    assert.doesNotMatch(html, /<(script|link|img)[^>]+(src|href)=/i);
    const images = readdirSync(flashDir).filter((f) => f.endsWith('.hfimg'));
    assert.equal(images.length, 3);
    const inspect = await holdfast(['inspect', join(flashDir, images[1]), '--json']);
    expectExit(inspect, 0, 'inspect a kept flash image');
    const info = JSON.parse(inspect.stdout) as { blocks: number; mode: string; programmedBytes: number };
    assert.ok(info.blocks > 20, `every partition of the runtime: ${info.blocks} blocks`);
    assert.equal(info.mode, 'strict', 'odd devices run strict flash');
    assert.ok(info.programmedBytes > 0);
  });

  it('chromium loads it with no console error and no network request; every chart has data; its figures equal the JSON summary', { skip: skipUnless([chromium]) }, async () => {
    requireComponents([chromium]);
    assert.ok(summary, 'the CLI run came first');
    const { chromium: launcher } = await import('playwright-core');
    const browser = await launcher.launch({ executablePath: executablePath(chromium.ok ? chromium.path : 'chromium'), args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      const requests: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      page.on('pageerror', (e) => errors.push(String(e)));
      await page.route('**/*', (route) => {
        const url = route.request().url();
        if (url.startsWith('file:')) return route.continue();
        requests.push(url);
        return route.abort();
      });
      await page.goto(pathToFileURL(reportPath).href, { waitUntil: 'load' });
      await page.waitForFunction(() => (globalThis as { holdfastReport?: unknown }).holdfastReport !== undefined, undefined, { timeout: 30_000 });
      const state = (await page.evaluate(() => (globalThis as unknown as { holdfastReport: unknown }).holdfastReport)) as ReportState;
      assert.deepEqual(errors, [], 'no console errors');
      assert.deepEqual(requests, [], 'no network requests');
      assert.deepEqual(state.charts.map((c) => c.id), ['chart-outbox', 'chart-links', 'chart-deliveries', 'chart-faults', 'chart-updates', 'chart-rollbacks', 'chart-invariants']);
      for (const c of state.charts) {
        // Time series have a point per window; the bar charts a bar per cause or invariant.
        assert.ok(c.points >= (c.id === 'chart-rollbacks' ? 1 : 2) && c.nonEmpty, `${c.id} has data: ${JSON.stringify(c)}`);
        assert.equal(await page.locator(`#${c.id} canvas`).count(), 1, `${c.id} is drawn`);
      }
      // Every figure on the page, as written, equals the summary's.
      const figures = await page.locator('[data-figure]').evaluateAll((els) => els.map((e) => [e.getAttribute('data-figure'), e.textContent]));
      assert.ok(figures.length >= 18, `figures on the page: ${figures.length}`);
      for (const [key, text] of figures) assert.equal(text, String(summary[key as string]), `figure ${key}`);
      assert.equal(await page.locator('[data-broker]').getAttribute('data-broker'), (summary.broker as { kind: string }).kind);
      // The revocation table (--revoke device:1@60) says what the JSON's revocation says.
      const revocation = summary.revocation as Record<string, unknown>;
      const shownRevocation = await page.locator('[data-revocation]').evaluateAll((els) => els.map((e) => [e.getAttribute('data-revocation'), e.textContent]));
      assert.ok(shownRevocation.length >= 10, `revocation figures on the page: ${shownRevocation.length}`);
      for (const [key, text] of shownRevocation) {
        const value = (key as string).split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], revocation);
        assert.equal(text, value === null ? '-' : String(value), `revocation ${key}`);
      }
      assert.equal(revocation.revokedAccepted, 0);
      assert.equal(revocation.safeModeCause, 'revoked');
      // Rollbacks by cause: the table and the chart say what the JSON says.
      const causes = (summary.updates as { rollbackCauses: Record<string, number> }).rollbackCauses;
      const shownCauses = await page.locator('[data-cause]').evaluateAll((els) => els.map((e) => [e.getAttribute('data-cause'), e.textContent]));
      assert.deepEqual(Object.fromEntries(shownCauses.map(([k, v]) => [k, Number(v)])), causes);
      const rollbackChart = state.charts.find((c) => c.id === 'chart-rollbacks');
      assert.equal(rollbackChart?.points, Object.keys(causes).length, 'one bar per cause');
      const updates = await page.evaluate(() => {
        const g = globalThis as unknown as { holdfastReportData?: { last: Record<string, number> } };
        return g.holdfastReportData?.last;
      });
      assert.equal(updates?.committed, summary.committed, 'the update chart ends at the summary\'s commits');
      assert.equal(updates?.rolledBack, summary.rolledBack, 'the update chart ends at the summary\'s rollbacks');
      assert.deepEqual(state.summary, Object.fromEntries(Object.entries(summary).filter(([k]) => k !== 'report' && k !== 'flashImages')));
    } finally {
      await browser.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
