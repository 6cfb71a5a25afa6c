/**
 * `holdfast audit verify` through the real CLI (one batch child process):
 * a clean log verifies (flash image and export); a flipped body byte (with
 * and without its CRC recomputed), a truncated export (inside an entry and
 * at an entry boundary), two entries swapped, a deleted middle entry and a
 * wrong key are each caught, and the first break is named (entry index,
 * counter, problem). Bad inputs and keys give one-line errors (JSON under
 * --json) with the documented exit codes.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SimFlash } from '../../tools/sim/flash/sim-flash.ts';
import { encodeImage } from '../../tools/sim/flash/image-codec.ts';
import { AuditLog } from '../../firmware/storage/audit-log.ts';
import { crc32Final, crc32Init, crc32Update } from '../../firmware/base/crc32.ts';
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { encodeExport, exportFromFlash, EXPORT_HEADER_LENGTH } from '../../tools/audit/export.ts';
import { auditEventFor, AUDIT_TEST_KEY } from '../storage/audit-log.cases.ts';
import { assertOneLineError, batch, expectExit, jsonErrorOf, type Run } from './cli-harness.ts';

const KEY_HEX = Buffer.from(AUDIT_TEST_KEY).toString('hex');

interface Verdict {
  ok: boolean;
  source: string;
  entries: number;
  firstCounter: number | null;
  lastCounter: number | null;
  start: string | null;
  firstBreak: { index: number; counter: number | null; byteOffset: number; problem: string; message: string } | null;
  problems: { index: number; problem: string }[];
  notes: string[];
  events: { index: number; counter: number; kind: string; tagOk: boolean }[];
}

/** A formatted audit log with `events` entries (a ring big enough that nothing is dropped unless `small`). */
function buildLog(events: number, blocks: number, ack?: number): SimFlash {
  const flash = new SimFlash({ blocks, blockLength: 1024, mode: 'strict' });
  AuditLog.format(flash);
  let c = 0;
  const log = AuditLog.open(flash, { crypto: createNobleCrypto(), key: AUDIT_TEST_KEY, counter: { next: () => (c += 2) } });
  for (let i = 0; i < events; i++) {
    log.append(auditEventFor(i));
    if (ack !== undefined && i === ack) log.ack(log.stats().lastCounter);
  }
  return flash;
}

/** The entries of an export: [offset, length] pairs. */
function entriesOf(exported: Uint8Array): { at: number; length: number }[] {
  const out: { at: number; length: number }[] = [];
  for (let at = EXPORT_HEADER_LENGTH; at < exported.length; ) {
    const length = 64 + exported[at + 2];
    out.push({ at, length });
    at += length;
  }
  return out;
}

function entryBytes(exported: Uint8Array): Uint8Array[] {
  return entriesOf(exported).map(({ at, length }) => exported.slice(at, at + length));
}

/** Recompute an entry's CRC-32 (bytes 0..3 and 8..end), as a forger would. */
function fixCrc(entry: Uint8Array): void {
  const crc = crc32Final(crc32Update(crc32Update(crc32Init(), entry, 0, 4), entry, 8, entry.length));
  new DataView(entry.buffer, entry.byteOffset).setUint32(4, crc, true);
}

function verdict(run: Run, what: string): Verdict {
  try {
    return JSON.parse(run.stdout) as Verdict;
  } catch {
    assert.fail(`${what}: stdout is not JSON: ${run.stdout}\n${run.stderr}`);
  }
}

describe('holdfast audit verify', () => {
  let dir: string;
  const files: Record<string, string> = {};
  let cleanExport: Uint8Array;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'holdfast-audit-'));
    const put = (name: string, bytes: Uint8Array | string): string => {
      const path = join(dir, name);
      writeFileSync(path, bytes);
      files[name] = path;
      return path;
    };
    const flash = buildLog(12, 4);
    put('clean.hfimg', encodeImage(flash));
    cleanExport = exportFromFlash(flash);
    put('clean.hfaud', cleanExport);
    put('key.hex', `${KEY_HEX}\n`);
    put('key.bin', AUDIT_TEST_KEY);
    put('wrong.hex', '11'.repeat(32));
    put('short.bin', new Uint8Array(5));
    // A wrapped ring (entries dropped, acknowledged and not): verification starts at its oldest entry.
    put('wrapped.hfimg', encodeImage(buildLog(40, 2, 20)));

    const entries = entryBytes(cleanExport);
    const flipped = entries.map((e) => e.slice());
    flipped[3][50] ^= 0x10;
    put('flipped.hfaud', encodeExport(flipped));
    const forged = entries.map((e) => e.slice());
    forged[3][50] ^= 0x10;
    fixCrc(forged[3]);
    put('forged.hfaud', encodeExport(forged));
    const cut = entriesOf(cleanExport)[5];
    put('truncated-inside.hfaud', cleanExport.slice(0, cut.at + 30));
    put('truncated-boundary.hfaud', cleanExport.slice(0, cut.at));
    const swapped = entries.slice();
    [swapped[2], swapped[3]] = [swapped[3], swapped[2]];
    put('swapped.hfaud', encodeExport(swapped));
    put('deleted.hfaud', encodeExport(entries.filter((_, i) => i !== 4)));

    // Flash image tampering: a body byte of an entry in the middle of the ring, without and with its CRC fixed.
    for (const fix of [false, true]) {
      const f = buildLog(12, 4);
      const snap = f.snapshot();
      const at = findEntryOffset(snap.data, 5);
      snap.data[at + 50] ^= 0x04;
      if (fix) fixCrc(snap.data.subarray(at, at + 64 + snap.data[at + 2]));
      put(fix ? 'forged.hfimg' : 'flipped.hfimg', encodeImage(SimFlash.fromSnapshot(snap)));
    }
    // A power cut tore the newest append: the device discards it, the verifier notes it.
    {
      const f = buildLog(6, 4);
      let c = 1000;
      const log = AuditLog.open(f, { crypto: createNobleCrypto(), key: AUDIT_TEST_KEY, counter: { next: () => ++c } });
      f.armCut({ atOperation: 0, seed: 7, tear: 'prefix' });
      assert.throws(() => log.append(auditEventFor(6)), /power cut/i);
      f.powerOn();
      put('torn.hfimg', encodeImage(f));
    }
    put('blank.hfimg', encodeImage(new SimFlash({ blocks: 2, blockLength: 1024 })));
    put('not-audit.txt', 'hello, this is not an audit log\n');
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a clean log verifies; each tampering is caught and the first break named', async () => {
    const jobs: string[][] = [
      ['audit', 'verify', files['clean.hfimg'], '--key', KEY_HEX, '--json'],
      ['audit', 'verify', files['clean.hfaud'], '--key', files['key.hex'], '--json'],
      ['audit', 'verify', files['clean.hfaud'], '--key', files['key.bin']],
      ['audit', 'verify', files['wrapped.hfimg'], '--key', KEY_HEX, '--json'],
      ['audit', 'verify', files['flipped.hfaud'], '--key', KEY_HEX, '--json'],
      ['audit', 'verify', files['forged.hfaud'], '--key', KEY_HEX, '--json'],
      ['audit', 'verify', files['truncated-inside.hfaud'], '--key', KEY_HEX, '--json'],
      ['audit', 'verify', files['truncated-boundary.hfaud'], '--key', KEY_HEX, '--json'],
      ['audit', 'verify', files['swapped.hfaud'], '--key', KEY_HEX, '--json'],
      ['audit', 'verify', files['deleted.hfaud'], '--key', KEY_HEX, '--json'],
      ['audit', 'verify', files['clean.hfaud'], '--key', files['wrong.hex'], '--json'],
      ['audit', 'verify', files['flipped.hfimg'], '--key', KEY_HEX, '--json'],
      ['audit', 'verify', files['forged.hfimg'], '--key', KEY_HEX, '--json'],
      ['audit', 'verify', files['forged.hfaud'], '--key', KEY_HEX],
      ['audit', 'verify', files['torn.hfimg'], '--key', KEY_HEX, '--json'],
    ];
    const runs = await batch(jobs);
    const [cleanImage, cleanExp, cleanText, wrapped, flipped, forged, truncInside, truncBoundary, swapped, deleted, wrongKey, flippedImg, forgedImg, forgedText, tornImg] = runs;

    const img = verdict(expectExit(cleanImage, 0, 'clean image'), 'clean image');
    assert.equal(img.ok, true);
    assert.equal(img.source, 'flash-image');
    assert.equal(img.entries, 12);
    assert.equal(img.start, 'genesis', 'a log that never dropped starts at the genesis hash');
    assert.equal(img.firstBreak, null);
    assert.ok(img.events.every((e) => e.tagOk));
    const exp = verdict(expectExit(cleanExp, 0, 'clean export'), 'clean export');
    assert.deepEqual([exp.ok, exp.source, exp.entries, exp.firstCounter, exp.lastCounter], [true, 'export', 12, 2, 24]);
    assert.match(expectExit(cleanText, 0, 'clean export, raw key file').stdout, /^ok: .*12 entries, counters 2\.\.24, chain from genesis/);
    assert.equal(cleanText.stderr, '');

    const w = verdict(expectExit(wrapped, 0, 'wrapped ring'), 'wrapped ring');
    assert.ok(w.entries > 0 && w.entries < 40, `a wrapped ring keeps part of its history (${w.entries})`);
    assert.notEqual(w.start, 'genesis', 'after drops, verification starts from the first retained entry');
    assert.ok(w.events.some((e) => e.kind === 'dropped-unacknowledged'), 'unacknowledged drops are recorded');

    const expect = (run: Run, what: string, index: number, problem: string, counter?: number | null): Verdict => {
      const v = verdict(expectExit(run, 1, what), what);
      assert.equal(v.ok, false, `${what}: not ok`);
      assert.ok(v.firstBreak, `${what}: a first break`);
      assert.equal(v.firstBreak.problem, problem, `${what}: problem (${v.firstBreak.message})`);
      assert.equal(v.firstBreak.index, index, `${what}: entry index (${v.firstBreak.message})`);
      if (counter !== undefined) assert.equal(v.firstBreak.counter, counter, `${what}: counter`);
      assert.equal(run.stderr, '', `${what}: a broken log is a finding, not an error`);
      return v;
    };
    expect(flipped, 'flipped body byte', 3, 'unreadable');
    expect(forged, 'flipped body byte, CRC recomputed', 3, 'tag', 8);
    expect(truncInside, 'export cut inside entry 5', 5, 'truncated');
    expect(truncBoundary, 'export cut at an entry boundary', 5, 'truncated');
    expect(swapped, 'entries 2 and 3 swapped', 2, 'chain', 8);
    expect(deleted, 'entry 4 deleted', 4, 'chain', 12);
    const wrong = expect(wrongKey, 'wrong key', 0, 'tag', 2);
    assert.equal(wrong.problems.length, 12, 'every tag fails under another key');
    const fi = verdict(expectExit(flippedImg, 1, 'flipped byte in a flash image'), 'flipped image');
    assert.equal(fi.firstBreak?.problem, 'unreadable', `flash image: ${fi.firstBreak?.message}`);
    assert.equal(fi.firstBreak?.index, 5, 'flash image: named at the entry after the unreadable one');
    assert.equal(fi.entries, 11);
    expect(forgedImg, 'forged entry in a flash image', 5, 'tag', 12);
    const torn = verdict(expectExit(tornImg, 0, 'torn newest append'), 'torn');
    assert.equal(torn.entries, 6, 'the torn append is not an entry');
    assert.ok(torn.notes.some((n) => /newest append was cut/.test(n)), `the torn tail is noted: ${JSON.stringify(torn.notes)}`);
    assert.match(forgedText.stdout, /^broken: .*entry 3 \(counter 8\) at byte \d+: tag: /);
  });

  it('bad inputs and keys: one line, --json error objects, documented exit codes', async () => {
    const missing = join(dir, 'missing.hfimg');
    const runs = await batch([
      ['audit', 'verify', missing, '--key', KEY_HEX],
      ['audit', 'verify', missing, '--key', KEY_HEX, '--json'],
      ['audit', 'verify', files['clean.hfaud'], '--key', 'abcd', '--json'],
      ['audit', 'verify', files['clean.hfaud'], '--key', files['short.bin'], '--json'],
      ['audit', 'verify', files['clean.hfaud']],
      ['audit', 'verify', files['not-audit.txt'], '--key', KEY_HEX, '--json'],
      ['audit', 'verify', files['blank.hfimg'], '--key', KEY_HEX, '--json'],
      ['audit', 'verify', dir, '--key', KEY_HEX],
      ['audit', 'verify', '--help'],
    ]);
    const [notFound, notFoundJson, shortHex, shortFile, noKey, notAudit, blank, directory, help] = runs;
    assert.match(assertOneLineError(expectExit(notFound, 1, 'missing file'), 'audit verify', 'missing file'), /missing\.hfimg: does not exist/);
    assert.equal(jsonErrorOf(expectExit(notFoundJson, 1, 'missing file --json'), 'missing --json').error.code, 'not-found');
    const e = jsonErrorOf(expectExit(shortHex, 2, 'short hex key'), 'short hex key');
    assert.equal(e.error.field, '--key');
    assert.equal(jsonErrorOf(expectExit(shortFile, 1, 'short key file'), 'short key file').error.code, 'invalid-file');
    assertOneLineError(expectExit(noKey, 2, 'no --key'), 'audit verify', 'no --key');
    assert.equal(jsonErrorOf(expectExit(notAudit, 1, 'not an audit file'), 'not audit').error.code, 'invalid-file');
    const b = verdict(expectExit(blank, 1, 'blank partition'), 'blank');
    assert.equal(b.firstBreak?.problem, 'format', 'a blank partition is not an empty log');
    assert.match(assertOneLineError(expectExit(directory, 1, 'a directory'), 'audit verify', 'a directory'), /is a directory/);
    assert.match(expectExit(help, 0, '--help').stdout, /--key <key>/);
    for (const run of runs) assert.ok(!run.stdout.includes(KEY_HEX) && !run.stderr.includes(KEY_HEX), 'the key is never printed');
  });
});

/** Partition offset of the `n`-th entry (0-based, ring order of a log that never wrapped), found by walking the blocks. */
function findEntryOffset(data: Uint8Array, n: number): number {
  let seen = 0;
  for (let block = 0; block * 1024 < data.length; block++) {
    for (let at = block * 1024 + 96; at + 16 <= (block + 1) * 1024; ) {
      if (data[at] !== 1) break;
      const length = Math.ceil((64 + data[at + 2]) / 16) * 16;
      if (seen === n) return at;
      seen++;
      at += length;
    }
  }
  throw new Error(`no entry ${n}`);
}
