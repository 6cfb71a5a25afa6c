/**
 * The runtime's formats are registered in FORMAT_VERSIONS and `holdfast
 * version --json` lists them (safe mode's log was defined locally before).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { FORMAT_VERSIONS } from '../../firmware/base/format-versions.ts';
import { SAFE_MODE_FORMAT, SAFE_MODE_LOG } from '../../firmware/runtime/safe-mode.ts';

const BIN = fileURLToPath(new URL('../../bin/holdfast.js', import.meta.url));

test("the runtime's, the console's and the update messages' formats are registered and listed by holdfast version", () => {
  assert.equal(SAFE_MODE_FORMAT, FORMAT_VERSIONS.safeMode);
  assert.equal(SAFE_MODE_LOG.version, FORMAT_VERSIONS.safeMode);
  const out = JSON.parse(execFileSync(process.execPath, [BIN, 'version', '--json'], { encoding: 'utf8' })) as { formats: Record<string, number> };
  assert.equal(out.formats.safeMode, 1);
  assert.equal(out.formats.commandReply, 1);
  assert.equal(out.formats.healthRecord, 1);
  assert.equal(out.formats.console, 1);
  assert.equal(out.formats.consoleChallenge, 1);
  assert.equal(out.formats.updateMessage, 1);
});
