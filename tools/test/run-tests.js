#!/usr/bin/env node
// `npm test`: every test/**/*.test.ts through node:test (with tsx), then the
// count of firmware cases that ran in each engine. Arguments narrow the run
// to files or folders. Exits with node:test's status.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

const root = new URL('../..', import.meta.url).pathname;
const targets = process.argv.slice(2);
const files = (targets.length ? targets : ['test']).flatMap((t) => collect(join(root, t))).sort();
if (files.length === 0) {
  console.error(`no test files under ${targets.join(' ') || 'test/'}`);
  process.exit(2);
}

const dir = mkdtempSync(join(tmpdir(), 'holdfast-test-'));
const countsFile = join(dir, 'engines.json');
const result = spawnSync(
  process.execPath,
  [
    '--import', 'tsx',
    '--test',
    '--test-concurrency=2',
    '--test-reporter=spec', '--test-reporter-destination=stdout',
    `--test-reporter=${join(root, 'tools/test/engine-count-reporter.js')}`, `--test-reporter-destination=${countsFile}`,
    ...files.map((f) => relative(root, f)),
  ],
  { cwd: root, stdio: 'inherit' },
);
try {
  const counts = JSON.parse(readFileSync(countsFile, 'utf8'));
  const line = (name) => `${counts[name].pass} passed, ${counts[name].fail} failed`;
  console.log(`\nfirmware cases in Node: ${line('node')}`);
  console.log(`firmware cases in XS:   ${line('xs')}`);
  console.log(`other tests:            ${line('other')}`);
} catch {
  console.error('(no per-engine counts: the test run ended early)');
}
rmSync(dir, { recursive: true, force: true });
process.exit(result.status ?? 1);

function collect(path) {
  const info = statSync(path, { throwIfNoEntry: false });
  if (!info) throw new Error(`no such test path: ${path}`);
  if (info.isFile()) return [path];
  return readdirSync(path, { withFileTypes: true }).flatMap((entry) => {
    const full = join(path, entry.name);
    if (entry.isDirectory()) return entry.name === 'fixtures' ? [] : collect(full);
    return entry.name.endsWith('.test.ts') ? [full] : [];
  });
}
