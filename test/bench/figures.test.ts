/**
 * The pure logic of the benchmark report (bench/figures.ts): targets checked
 * as numbers, the met column of BENCHMARKS.md, partial reruns that keep the
 * other figures with the commit they were measured at, `--only` selection.
 * No benchmark runs here.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  describeMiss,
  evaluate,
  figureProblems,
  mergeFigures,
  misses,
  parseResultsJson,
  renderDocument,
  renderResultsJson,
  selectGroups,
  type BenchResults,
  type Figure,
  type RecordedFigure,
} from '../../bench/figures.ts';

const GROUPS = [
  { title: 'Outbox', prefix: 'outbox.', workload: 'W1, W2, W3.' },
  { title: 'Outbox under power cuts', prefix: 'outbox.powercut.', workload: 'Random cuts.' },
  { title: 'Counter', prefix: 'counter.', workload: 'Increments.' },
  { title: 'XS harness', prefix: 'xs.', workload: 'Round trips.' },
];

/** Today's published eraseSpread: 62 against its own target of ≤ 1. */
const spread = (value: number, commit = 'aaa1111'): RecordedFigure => ({
  name: 'outbox.wear.eraseSpread.plain',
  value,
  unit: 'erases',
  label: 'spread of per-sector erase counts',
  kind: 'count',
  target: '≤ 1',
  limit: 1,
  direction: 'max',
  commit,
});
const cuts = (value: number, commit = 'aaa1111'): RecordedFigure => ({
  name: 'outbox.powercut.random.plain.cuts',
  value,
  unit: 'cuts',
  label: 'random power cuts survived',
  kind: 'count',
  target: '≥ 10,000',
  limit: 10_000,
  direction: 'min',
  commit,
});
const plain = (name: string, value: number, commit = 'aaa1111'): RecordedFigure => ({ name, value, unit: 'x', label: name, kind: 'count', commit });

describe('evaluate: a figure against its numeric target', () => {
  it('max: met at and below the limit, missed above it', () => {
    assert.equal(evaluate(spread(0)), 'met');
    assert.equal(evaluate(spread(1)), 'met');
    assert.equal(evaluate(spread(62)), 'missed');
  });
  it('min: met at and above the limit, missed below it', () => {
    assert.equal(evaluate(cuts(10_000)), 'met');
    assert.equal(evaluate(cuts(10_338)), 'met');
    assert.equal(evaluate(cuts(9_999)), 'missed');
  });
  it('no numeric target: neither met nor missed', () => {
    assert.equal(evaluate(plain('xs.bridge.rate', 5)), undefined);
    // A figure kept from a results.json written before limits existed.
    assert.equal(evaluate({ ...plain('counter.old', 5), target: '≤ 1' } as unknown as Figure), undefined);
  });
  it('misses lists only the missed figures, and describeMiss names value, target and commit', () => {
    const figures = [spread(62, 'bbb2222'), cuts(10_338), plain('xs.rate', 1)];
    assert.deepEqual(misses(figures).map((f) => f.name), ['outbox.wear.eraseSpread.plain']);
    const line = describeMiss(misses(figures)[0]);
    assert.match(line, /outbox\.wear\.eraseSpread\.plain = 62 erases/);
    assert.match(line, /target ≤ 1 \(must be ≤ 1\)/);
    assert.match(line, /bbb2222/);
  });
});

describe('figureProblems: malformed fresh figures are refused', () => {
  it('accepts well-formed figures', () => {
    assert.deepEqual(figureProblems([spread(62), cuts(1), plain('xs.rate', 3)], GROUPS), []);
  });
  it('a target without numbers, a bad direction, a duplicate, a NaN, a name outside every group', () => {
    const bad = [
      { ...plain('counter.a', 1), target: '≤ 1' },
      { ...spread(0), direction: 'less' },
      spread(0),
      plain('xs.nan', Number.NaN),
      plain('nosuch.figure', 1),
    ] as unknown as Figure[];
    const problems = figureProblems(bad, GROUPS);
    assert.equal(problems.length, 6, problems.join('\n'));
    assert.match(problems.join('\n'), /counter\.a: target "≤ 1" without a finite numeric limit/);
    assert.match(problems.join('\n'), /neither 'max' nor 'min'/);
    assert.match(problems.join('\n'), /measured twice/);
    assert.match(problems.join('\n'), /xs\.nan: value NaN/);
    assert.match(problems.join('\n'), /nosuch\.figure: no group/);
  });
});

describe('selectGroups: what --only runs', () => {
  const prefixes = (only?: string) => selectGroups(GROUPS, only).map((g) => g.prefix);
  it('everything without --only', () => assert.deepEqual(prefixes(undefined), ['outbox.', 'outbox.powercut.', 'counter.', 'xs.']));
  it('a prefix of group prefixes runs each of those groups', () => {
    assert.deepEqual(prefixes('outbox.'), ['outbox.', 'outbox.powercut.']);
    assert.deepEqual(prefixes('out'), ['outbox.', 'outbox.powercut.']);
  });
  it('a narrower prefix runs only the group its figures belong to', () => {
    assert.deepEqual(prefixes('outbox.wa.'), ['outbox.']);
    assert.deepEqual(prefixes('outbox.powercut.random.strict'), ['outbox.powercut.']);
  });
  it('a prefix no group can measure selects nothing (the runner refuses)', () => {
    assert.deepEqual(prefixes('nosuch'), []);
    assert.deepEqual(prefixes('xsx.'), []);
  });
});

describe('mergeFigures: a partial rerun keeps the other figures as they were', () => {
  const previous = [spread(62, 'old0001'), plain('outbox.wa.plain.16', 1.28, 'old0001'), plain('outbox.gone', 3, 'old0001'), cuts(10_338, 'old0001'), plain('counter.bytes', 0.004, 'old0002'), plain('xs.rate', 9, 'old0001')];
  it('--only outbox.wear. replaces that figure only; the others keep value and commit', () => {
    const merged = mergeFigures(GROUPS, previous, [spread(1, 'new0003')], 'outbox.wear.');
    assert.deepEqual(
      merged.map((f) => [f.name, f.value, f.commit]),
      [
        ['outbox.wear.eraseSpread.plain', 1, 'new0003'],
        ['outbox.wa.plain.16', 1.28, 'old0001'],
        ['outbox.gone', 3, 'old0001'],
        ['outbox.powercut.random.plain.cuts', 10_338, 'old0001'],
        ['counter.bytes', 0.004, 'old0002'],
        ['xs.rate', 9, 'old0001'],
      ],
    );
  });
  it('figures under the prefix that the rerun no longer measures go away; new ones follow the old ones of their group', () => {
    const merged = mergeFigures(GROUPS, previous, [plain('outbox.new', 7, 'new0003'), spread(0, 'new0003'), plain('outbox.wa.plain.16', 1.2, 'new0003')], 'outbox.');
    assert.deepEqual(
      merged.map((f) => f.name),
      ['outbox.wear.eraseSpread.plain', 'outbox.wa.plain.16', 'outbox.new', 'counter.bytes', 'xs.rate'],
    );
  });
  it('a full run writes exactly what it measured', () => {
    assert.deepEqual(mergeFigures(GROUPS, previous, [plain('xs.rate', 1, 'new0003')], undefined).map((f) => f.name), ['xs.rate']);
  });
});

describe('results.json', () => {
  it('carries limit, direction and commit per figure, keyed by name, and reads back the same', () => {
    const results: BenchResults = { commit: 'new0003', node: '20.20.2', figures: [spread(62, 'new0003'), cuts(10_338, 'old0001')] };
    const text = renderResultsJson(results);
    const raw = JSON.parse(text);
    assert.deepEqual(raw.figures['outbox.wear.eraseSpread.plain'], { name: 'outbox.wear.eraseSpread.plain', value: 62, unit: 'erases', label: 'spread of per-sector erase counts', kind: 'count', target: '≤ 1', limit: 1, direction: 'max', commit: 'new0003' });
    assert.equal(raw.figures['outbox.powercut.random.plain.cuts'].direction, 'min');
    assert.equal(raw.figures['outbox.powercut.random.plain.cuts'].commit, 'old0001');
    assert.deepEqual(parseResultsJson(text), results);
  });
  it('a results.json from before per-figure commits: each figure takes the file commit', () => {
    const legacy = JSON.stringify({ commit: 'fc76722', node: '20', figures: { 'xs.rate': { name: 'xs.rate', value: 1, unit: '/s', label: 'r', kind: 'timing' } } });
    assert.equal(parseResultsJson(legacy).figures[0].commit, 'fc76722');
  });
});

describe('BENCHMARKS.md', () => {
  const row = (doc: string, name: string) => doc.split('\n').find((l) => l.startsWith(`| \`${name}\``)) ?? assert.fail(`no row for ${name}`);
  const cells = (line: string) => line.split(' | ').map((c) => c.replace(/^\| |\s\|$/g, ''));

  it('a met column: ✅ met, ❌ missed, — without a numeric target; the header sentence lists the misses', () => {
    const doc = renderDocument({ commit: 'abc1234', node: '20', figures: [spread(62, 'abc1234'), cuts(10_338, 'abc1234'), plain('counter.x', 1, 'abc1234')] }, GROUPS, 'npm run bench');
    assert.ok(doc.includes('| figure | what | value | target | met | anchor |'));
    assert.equal(cells(row(doc, 'outbox.wear.eraseSpread.plain'))[4], '❌');
    assert.equal(cells(row(doc, 'outbox.powercut.random.plain.cuts'))[4], '✅');
    assert.equal(cells(row(doc, 'counter.x'))[4], '—');
    assert.match(doc, /Targets: 1 of 2 met; \*\*missed\*\*: `outbox\.wear\.eraseSpread\.plain` \(62 erases, target ≤ 1\)/);
  });
  it('all met: the header sentence says so', () => {
    const doc = renderDocument({ commit: 'abc1234', node: '20', figures: [spread(1, 'abc1234'), cuts(10_338, 'abc1234')] }, GROUPS, 'npm run bench');
    assert.match(doc, /Targets: 2 of 2 met\./);
    assert.doesNotMatch(doc, /❌/);
  });
  it('the commit per group, and a commit column in a group whose figures were measured at different commits', () => {
    const doc = renderDocument(
      { commit: 'new0003', node: '20', figures: [spread(62, 'new0003'), plain('outbox.wa.plain.16', 1.28, 'old0001'), cuts(10_338, 'old0001'), plain('counter.x', 1, 'old0002')] },
      GROUPS,
      'npm run bench',
    );
    const section = (title: string) => doc.split('\n## ').find((s) => s.startsWith(`${title}\n`)) ?? assert.fail(`no section ${title}`);
    assert.match(section('Outbox'), /Measured at commits new0003, old0001 \(column \*commit\*\)/);
    assert.match(section('Outbox'), /\| figure \| what \| value \| target \| met \| anchor \| commit \|/);
    assert.equal(cells(row(doc, 'outbox.wa.plain.16'))[6], 'old0001');
    assert.equal(cells(row(doc, 'outbox.wear.eraseSpread.plain'))[6], 'new0003');
    assert.match(section('Outbox under power cuts'), /Measured at commit old0001\./);
    assert.match(section('Counter'), /Measured at commit old0002\./);
    assert.doesNotMatch(section('Counter'), /\| commit \|/);
    assert.doesNotMatch(doc, /## XS harness/, 'a group without figures gets no section');
  });
  it('a target kept from an older run without numbers is reported as not checked', () => {
    const legacy = { ...plain('counter.old', 5, 'fc76722'), target: '≤ 1' } as unknown as RecordedFigure;
    const doc = renderDocument({ commit: 'abc1234', node: '20', figures: [legacy] }, GROUPS, 'npm run bench');
    assert.equal(cells(row(doc, 'counter.old'))[4], '—');
    assert.match(doc, /1 not checked \(target text without a limit, from an older run: `counter\.old`\)/);
  });
});
