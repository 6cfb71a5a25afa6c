/**
 * The benchmark runner (bench/run.ts) and `holdfast bench` with stand-in
 * groups or refusals only: no real benchmark runs here. A miss is written
 * (so it is visible) and then reported; `--only` that matches nothing is
 * refused before anything is written; a partial rerun keeps the other
 * figures with their own commits.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runBenchmarks, UnknownFigureError } from '../../bench/run.ts';
import type { BenchGroup, Figure } from '../../bench/figures.ts';
import { main } from '../../tools/cli/main.ts';

function groups(spreadValue: number): BenchGroup[] {
  return [
    {
      title: 'Outbox',
      prefix: 'outbox.',
      workload: 'stand-in',
      run: async (): Promise<Figure[]> => [
        { name: 'outbox.wear.eraseSpread.plain', value: spreadValue, unit: 'erases', label: 'spread', kind: 'count', target: '≤ 1', limit: 1, direction: 'max' },
        { name: 'outbox.wa.plain.64', value: 1.07, unit: '×', label: 'wa', kind: 'count', target: '≤ 1.08', limit: 1.08, direction: 'max' },
      ],
    },
    { title: 'XS', prefix: 'xs.', workload: 'stand-in', run: async (): Promise<Figure[]> => [{ name: 'xs.rate', value: 5, unit: '/s', label: 'rate', kind: 'timing' }] },
  ];
}

function withDir(body: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'holdfast-bench-'));
    try {
      await body(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

const read = (dir: string) => ({ json: JSON.parse(readFileSync(join(dir, 'bench/results.json'), 'utf8')), md: readFileSync(join(dir, 'BENCHMARKS.md'), 'utf8') });

describe('runBenchmarks', () => {
  it(
    'writes a miss (❌ in BENCHMARKS.md, limit and direction in results.json) and returns it',
    withDir(async (dir) => {
      const run = await runBenchmarks({ outDir: dir, progress: () => {}, groups: groups(62), commit: 'c0ffee1' });
      assert.deepEqual(run.missed.map((f) => f.name), ['outbox.wear.eraseSpread.plain']);
      const { json, md } = read(dir);
      assert.deepEqual(
        { limit: json.figures['outbox.wear.eraseSpread.plain'].limit, direction: json.figures['outbox.wear.eraseSpread.plain'].direction, commit: json.figures['outbox.wear.eraseSpread.plain'].commit },
        { limit: 1, direction: 'max', commit: 'c0ffee1' },
      );
      assert.match(md, /\| `outbox\.wear\.eraseSpread\.plain` \| spread \| 62 erases \| ≤ 1 \| ❌ \|/);
      assert.match(md, /\| `outbox\.wa\.plain\.64` \| wa \| 1\.070 × \| ≤ 1\.08 \| ✅ \|/);
    }),
  );

  it(
    '--only that matches no group is refused and writes nothing',
    withDir(async (dir) => {
      await assert.rejects(runBenchmarks({ only: 'nosuch', outDir: dir, progress: () => {}, groups: groups(0), commit: 'c0ffee1' }), UnknownFigureError);
      await assert.rejects(runBenchmarks({ only: 'outbox.nosuch', outDir: dir, progress: () => {}, groups: groups(0), commit: 'c0ffee1' }), UnknownFigureError);
      assert.equal(existsSync(join(dir, 'BENCHMARKS.md')), false);
      assert.equal(existsSync(join(dir, 'bench/results.json')), false);
    }),
  );

  it(
    'a partial rerun keeps the other figures, each with the commit it was measured at',
    withDir(async (dir) => {
      await runBenchmarks({ outDir: dir, progress: () => {}, groups: groups(62), commit: 'first01' });
      const run = await runBenchmarks({ only: 'outbox.wear.', outDir: dir, progress: () => {}, groups: groups(1), commit: 'second2' });
      assert.deepEqual(run.fresh.map((f) => f.name), ['outbox.wear.eraseSpread.plain']);
      assert.deepEqual(run.missed, []);
      const { json, md } = read(dir);
      assert.equal(json.commit, 'second2');
      assert.deepEqual(
        Object.values(json.figures as Record<string, { name: string; value: number; commit: string }>).map((f) => [f.name, f.value, f.commit]),
        [
          ['outbox.wear.eraseSpread.plain', 1, 'second2'],
          ['outbox.wa.plain.64', 1.07, 'first01'],
          ['xs.rate', 5, 'first01'],
        ],
      );
      assert.match(md, /Measured at commits second2, first01 \(column \*commit\*\)/);
      assert.match(md, /## XS\n\nstand-in\n\nCommand: .*Measured at commit first01\./);
    }),
  );
});

describe('holdfast bench', () => {
  it(
    '--only nosuch exits 2 with a message and writes nothing',
    withDir(async (dir) => {
      const errors: string[] = [];
      const write = process.stderr.write.bind(process.stderr);
      process.stderr.write = ((chunk: string | Uint8Array) => (errors.push(String(chunk)), true)) as typeof process.stderr.write;
      let code: number;
      try {
        code = await main(['node', 'holdfast', 'bench', '--only', 'nosuch', '--out', dir]);
      } finally {
        process.stderr.write = write;
      }
      assert.equal(code, 2);
      assert.match(errors.join(''), /--only "nosuch" matches no benchmark group/);
      assert.equal(existsSync(join(dir, 'BENCHMARKS.md')), false);
      assert.equal(existsSync(join(dir, 'bench/results.json')), false);
    }),
  );
});
