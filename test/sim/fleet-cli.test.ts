/**
 * `holdfast sim` refuses bad flags and bad output paths with one line on
 * stderr and exit 2 (under --json also one JSON error object), never a
 * stack trace, before it starts anything.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertOneLineError, batch, expectExit, jsonErrorOf } from '../cli/cli-harness.ts';

describe('holdfast sim: bad flags and bad files', () => {
  it('each is one line and exit 2, also under --json', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'holdfast-sim-cli-'));
    try {
      const file = join(dir, 'a-file');
      writeFileSync(file, 'not a folder');
      mkdirSync(join(dir, 'folder.html'));
      const cases: [string, string[]][] = [
        ['no devices', ['--devices', '0']],
        ['too many devices', ['--devices', '5001']],
        ['devices not a number', ['--devices', 'many']],
        ['an unknown engine', ['--engine', 'java']],
        ['a duration under 10 s', ['--duration', '5']],
        ['a negative seed', ['--seed', '-1']],
        ['a seed over 2^32-1', ['--seed', '4294967296']],
        ['a negative power-cut rate', ['--power-cuts', '-1']],
        ['a power-cut rate that is not a number', ['--power-cuts', 'often']],
        ['a link-flap rate over the bound', ['--link-flaps', '100000']],
        ['a replay chance over 0.5', ['--replays', '0.9']],
        ['a broker that is not mqtt://host:port', ['--broker', 'http://localhost:1883']],
        ['a broker port out of range', ['--broker', 'mqtt://localhost:70000']],
        ['broker restarts with a given broker', ['--broker', 'mqtt://127.0.0.1:1883', '--broker-restarts', '5']],
        ['a report that is not .html', ['--report', join(dir, 'report.txt')]],
        ['a report that is a folder', ['--report', join(dir, 'folder.html')]],
        ['a report under a file', ['--report', join(file, 'report.html')]],
        ['keep-flash that is a file', ['--keep-flash', file]],
        ['keep-flash under a file', ['--keep-flash', join(file, 'images')]],
        ['an unknown flag', ['--clock-drift', '5']],
        ['a clock-skew rate that is not a number', ['--clock-skew', 'lots']],
        ['an unknown bad-update kind', ['--bad-update', 'explode']],
        ['--update without --manifest', ['--update', file]],
        ['--manifest without --update', ['--manifest', file]],
        ['--bad-update with a given update', ['--update', file, '--manifest', file, '--bad-update']],
        ['--no-update with --bad-update', ['--no-update', '--bad-update', 'hang']],
        ['an update image that does not exist', ['--update', join(dir, 'missing.bin'), '--manifest', file]],
        ['a manifest that is not one', ['--update', file, '--manifest', file]],
        ['a revoke that names nothing', ['--revoke', 'gateway@10']],
        ['a revoke without a second', ['--revoke', 'device:1']],
        ['a revoke of a device outside the fleet', ['--devices', '3', '--revoke', 'device:3@20']],
        ['a revoke after the run', ['--duration', '100', '--revoke', 'command-key@100']],
      ];
      const runs = await batch([...cases.map(([, args]) => ['sim', ...args]), ...cases.map(([, args]) => ['sim', ...args, '--json'])]);
      cases.forEach(([what], i) => {
        expectExit(runs[i], 2, what);
        const line = assertOneLineError(runs[i], 'sim', what);
        assert.ok(line.length < 300, `${what}: a short line: ${line}`);
        const json = runs[cases.length + i];
        expectExit(json, 2, `${what} --json`);
        assert.equal(jsonErrorOf(json, `${what} --json`).error.code, 'usage');
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
