/**
 * docs/spec/boot-sequence.md's failure table and docs/spec/safe-mode.md's
 * cause table say what the code says (Node only: it reads the documents).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { BOOT_FAILURES, BOOT_STAGES } from '../../firmware/runtime/boot.ts';
import { SAFE_MODE_CAUSE_CODES } from '../../firmware/runtime/safe-mode.ts';
import { encodeHealthRecord, HEALTH_RECORD_LENGTH } from '../../firmware/runtime/health-record.ts';
import { SAMPLE } from './health-scheduler.cases.ts';

function tableRows(path: string, heading: string): string[][] {
  const text = readFileSync(new URL(`../../docs/spec/${path}`, import.meta.url), 'utf8');
  const start = text.indexOf(heading);
  assert.ok(start >= 0, `${path} has ${heading}`);
  const lines = text.slice(start).split('\n');
  const rows: string[][] = [];
  let inTable = false;
  for (const line of lines) {
    if (line.startsWith('|')) {
      inTable = true;
      const cells = line.split('|').slice(1, -1).map((c) => c.trim());
      if (cells.every((c) => /^-+:?$|^-*:?-+$/.test(c))) continue;
      rows.push(cells);
    } else if (inTable) break;
  }
  return rows.slice(1);
}

const tick = (cell: string): string | undefined => /^`([^`]+)`/.exec(cell)?.[1];

describe('boot sequence and safe mode specs', () => {
  it('the failure table of boot-sequence.md is BOOT_FAILURES, row by row (bit, code, stage, safe-mode cause)', () => {
    const rows = tableRows('boot-sequence.md', '## Failure table');
    assert.equal(rows.length, BOOT_FAILURES.length);
    for (const [i, r] of BOOT_FAILURES.entries()) {
      const [bit, code, stage, , , safe] = rows[i];
      assert.equal(Number(bit), i, `row ${i} bit`);
      assert.equal(tick(code), r.code, `row ${i} code`);
      assert.equal(stage, r.stage, `row ${i} stage`);
      assert.equal(tick(safe), r.safeMode, `row ${i} safe mode (${safe})`);
    }
  });

  it('the stages of boot-sequence.md are BOOT_STAGES, in order', () => {
    const rows = tableRows('boot-sequence.md', '## Stages');
    assert.deepEqual(rows.map((r) => tick(r[1])), [...BOOT_STAGES]);
  });

  it('the causes of safe-mode.md are SAFE_MODE_CAUSE_CODES', () => {
    const rows = tableRows('safe-mode.md', '## Causes');
    const documented = new Map(rows.map((r) => [Number(r[0]), r[1]]));
    for (const [name, code] of Object.entries(SAFE_MODE_CAUSE_CODES)) {
      assert.ok(documented.has(code), `code 0x${code.toString(16)} (${name}) documented`);
    }
    assert.equal(documented.size, Object.keys(SAFE_MODE_CAUSE_CODES).length, 'no undocumented rows');
  });

  it('health-record.md: the byte table covers bytes 0..63 once, in order, and the example is the encoding of the test sample', () => {
    const rows = tableRows('health-record.md', '## Byte table');
    let next = 0;
    for (const r of rows) {
      assert.equal(Number(r[0]), next, `field ${r[2]} at ${next}`);
      next += Number(r[1]);
    }
    assert.equal(next, HEALTH_RECORD_LENGTH);
    const text = readFileSync(new URL('../../docs/spec/health-record.md', import.meta.url), 'utf8');
    const block = /Example[\s\S]*?```\n([\s\S]*?)```/.exec(text)?.[1] ?? '';
    const documented = block.trim().split(/\s+/).join(' ');
    const encoded = Array.from(encodeHealthRecord(SAMPLE), (b) => b.toString(16).padStart(2, '0')).join(' ');
    assert.equal(documented, encoded);
  });
});
