/**
 * The boot decision table (docs/spec/update-states.md): one test per row,
 * the abort pass, anti-rollback selection, the table's own consistency, and
 * a check that the spec's table is BOOT_ROWS.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  ANY,
  BOOT_ROWS,
  bootFacts,
  matchBootRow,
  planBoot,
  type BootFacts,
  type BootInput,
  type BootPlan,
  type OtadataSummary,
  type SlotCheck,
  type SlotImage,
} from '../../firmware/update/decide.ts';
import { decodeOtaEntry, encodeOtaEntry, encodeRawEntry, otaSeqCrc, type OtaEntryReading, type OtaState, type OtaStateReading } from '../../firmware/update/otadata.ts';

const entry = (seq: number, state: OtaState): OtaEntryReading => decodeOtaEntry(encodeOtaEntry({ seq, state }));
const BLANK = decodeOtaEntry(new Uint8Array(32).fill(0xff));
const good = (secureVersion = 1): SlotCheck => ({ secureVersion, verifies: true });
const corrupt = (secureVersion = 1): SlotCheck => ({ secureVersion, verifies: false });
const ABSENT: SlotCheck = { secureVersion: undefined, verifies: false };

/** `floor` 'off': anti-rollback disabled. */
function plan(copies: [OtaEntryReading, OtaEntryReading], slots: [SlotCheck, SlotCheck], floor: number | 'off' = 0): BootPlan {
  return planBoot({ copies, slots, floor: floor === 'off' ? undefined : floor });
}

/** Effects as short strings: "copy 1 pending-verify", "floor 3". */
function effects(p: BootPlan): string[] {
  return p.effects.map((e) => (e.kind === 'write-otadata' ? `copy ${e.copy} ${e.what}` : `floor ${e.secureVersion}`));
}

function facts(otadata: OtadataSummary, state: OtaStateReading | undefined, start: SlotImage, other: SlotImage): BootFacts {
  return { otadata, state, start, other };
}

describe('decision rows (one test each)', () => {
  it('R1: NEW copy, its image loads -> trial boot, PENDING_VERIFY written first', () => {
    assert.equal(matchBootRow(facts('active', 'new', 'bootable', 'corrupt')).id, 'R1');
    const p = plan([entry(1, 'valid'), entry(2, 'new')], [good(), good()]);
    assert.deepEqual([p.row.id, p.active, p.bootSlot, effects(p)], ['R1', 1, 1, ['copy 1 pending-verify']]);
    const write = p.effects[0];
    assert.ok(write.kind === 'write-otadata');
    assert.deepEqual(decodeOtaEntry(write.bytes).state, 'pending-verify');
    assert.equal(decodeOtaEntry(write.bytes).seq, 2);
  });

  it('R2: NEW copy, its image does not load -> PENDING_VERIFY written, the other slot boots', () => {
    assert.equal(matchBootRow(facts('active', 'new', 'corrupt', 'bootable')).id, 'R2');
    const p = plan([entry(1, 'valid'), entry(2, 'new')], [good(), corrupt()]);
    assert.deepEqual([p.row.id, p.bootSlot, effects(p)], ['R2', 0, ['copy 1 pending-verify']]);
  });

  it('R3: NEW copy, nothing loads -> PENDING_VERIFY written, nothing boots', () => {
    assert.equal(matchBootRow(facts('active', 'new', 'corrupt', 'refused')).id, 'R3');
    const p = plan([BLANK, entry(1, 'new')], [corrupt(), ABSENT]);
    assert.deepEqual([p.row.id, p.bootSlot, effects(p)], ['R3', undefined, ['copy 1 pending-verify']]);
  });

  it('R4: VALID copy, its image loads -> boots, floor raised to its secure version', () => {
    assert.equal(matchBootRow(facts('active', 'valid', 'bootable', 'refused')).id, 'R4');
    const p = plan([entry(1, 'valid'), BLANK], [good(3), good(1)], 2);
    assert.deepEqual([p.row.id, p.bootSlot, effects(p), p.floorAfter], ['R4', 0, ['floor 3'], 3]);
  });

  it('R5: VALID copy, its image does not load -> the other slot boots', () => {
    assert.equal(matchBootRow(facts('active', 'valid', 'corrupt', 'bootable')).id, 'R5');
    const p = plan([entry(1, 'valid'), entry(2, 'aborted')], [corrupt(1), good(1)], 1);
    assert.deepEqual([p.row.id, p.bootSlot, effects(p)], ['R5', 1, ['floor 1']]);
  });

  it('R6: VALID copy, nothing loads -> nothing boots (here: the raise from a damaged header refuses the older image)', () => {
    assert.equal(matchBootRow(facts('active', 'valid', 'corrupt', 'corrupt')).id, 'R6');
    const p = plan([entry(1, 'valid'), entry(2, 'aborted')], [corrupt(5), good(3)], 3);
    assert.deepEqual([p.row.id, p.facts.other, p.bootSlot, effects(p)], ['R6', 'refused', undefined, ['floor 5']]);
  });

  it('R7: UNDEFINED (or unrecognized) copy, its image loads -> boots, no write', () => {
    assert.equal(matchBootRow(facts('active', 'undefined', 'bootable', 'bootable')).id, 'R7');
    assert.equal(matchBootRow(facts('active', 'unrecognized', 'bootable', 'refused')).id, 'R7');
    const p = plan([entry(1, 'undefined'), BLANK], [good(), good()]);
    assert.deepEqual([p.row.id, p.bootSlot, effects(p)], ['R7', 0, []]);
  });

  it('R8: UNDEFINED copy, its image does not load -> the other slot boots', () => {
    assert.equal(matchBootRow(facts('active', 'undefined', 'corrupt', 'bootable')).id, 'R8');
    const p = plan([BLANK, entry(2, 'undefined')], [good(), corrupt()]);
    assert.deepEqual([p.row.id, p.startSlot, p.bootSlot, effects(p)], ['R8', 1, 0, []]);
  });

  it('R9: blank otadata -> ota_0 boots and copy 0 becomes {seq 1, VALID}', () => {
    assert.equal(matchBootRow(facts('initial', undefined, 'bootable', 'refused')).id, 'R9');
    const p = plan([BLANK, BLANK], [good(2), ABSENT], 0);
    assert.deepEqual([p.row.id, p.bootSlot, effects(p), p.floorAfter], ['R9', 0, ['copy 0 initial', 'floor 2'], 2]);
    const write = p.effects[0];
    assert.ok(write.kind === 'write-otadata');
    assert.deepEqual(write.bytes, encodeOtaEntry({ seq: 1, state: 'valid' }));
  });

  it('R10: blank otadata, ota_0 does not load -> ota_1 boots and copy 0 becomes {seq 2, VALID}', () => {
    assert.equal(matchBootRow(facts('initial', undefined, 'refused', 'bootable')).id, 'R10');
    const p = plan([BLANK, BLANK], [ABSENT, good()]);
    assert.deepEqual([p.row.id, p.bootSlot, effects(p)], ['R10', 1, ['copy 0 initial', 'floor 1']]);
    const write = p.effects[0];
    assert.ok(write.kind === 'write-otadata');
    assert.deepEqual(write.bytes, encodeOtaEntry({ seq: 2, state: 'valid' }));
  });

  it('R11: no usable copy -> ota_0 boots, no write', () => {
    assert.equal(matchBootRow(facts('no-active', undefined, 'bootable', 'bootable')).id, 'R11');
    const p = plan([entry(1, 'aborted'), entry(2, 'invalid')], [good(), good()]);
    assert.deepEqual([p.row.id, p.bootSlot, effects(p)], ['R11', 0, []]);
  });

  it('R12: no usable copy, ota_0 does not load -> ota_1 boots, no write', () => {
    assert.equal(matchBootRow(facts('no-active', undefined, 'corrupt', 'bootable')).id, 'R12');
    const p = plan([entry(1, 'aborted'), entry(2, 'invalid')], [corrupt(), good()]);
    assert.deepEqual([p.row.id, p.bootSlot, effects(p)], ['R12', 1, []]);
  });

  it('R13: nothing loads -> bricked, no write', () => {
    assert.equal(matchBootRow(facts('initial', undefined, 'refused', 'corrupt')).id, 'R13');
    assert.equal(matchBootRow(facts('no-active', undefined, 'corrupt', 'refused')).id, 'R13');
    const p = plan([BLANK, BLANK], [ABSENT, corrupt()]);
    assert.deepEqual([p.row.id, p.bootSlot, effects(p)], ['R13', undefined, []]);
  });
});

describe('rule 0: the abort pass', () => {
  it('an unconfirmed trial is rewritten ABORTED (CRC as read) and the other copy boots', () => {
    const pending = entry(2, 'pending-verify');
    const p = plan([entry(1, 'valid'), pending], [good(), good()]);
    assert.deepEqual([p.aborted, p.active, p.row.id, p.bootSlot, effects(p)], [[1], 0, 'R4', 0, ['copy 1 aborted', 'floor 1']]);
    const write = p.effects[0];
    assert.ok(write.kind === 'write-otadata');
    const expected = pending.bytes.slice();
    expected[24] = 4;
    assert.deepEqual(write.bytes, expected);
  });

  it('runs on a copy with a bad CRC too, and keeps that CRC', () => {
    const bad = decodeOtaEntry(encodeRawEntry(7, new Uint8Array(20).fill(0xff), 1, 0xdeadbeef));
    const p = plan([bad, BLANK], [good(), good()]);
    assert.deepEqual(p.aborted, [0]);
    const write = p.effects[0];
    assert.ok(write.kind === 'write-otadata');
    assert.equal(decodeOtaEntry(write.bytes).crc, 0xdeadbeef);
    assert.equal(decodeOtaEntry(write.bytes).state, 'aborted');
    assert.equal(p.row.id, 'R9', 'both copies still initial (bad CRC, blank)');
  });

  it('both copies pending: both aborted, copy 0 first', () => {
    const p = plan([entry(1, 'pending-verify'), entry(2, 'pending-verify')], [good(), good()]);
    assert.deepEqual([effects(p).slice(0, 2), p.row.id], [['copy 0 aborted', 'copy 1 aborted'], 'R11']);
  });
});

describe('anti-rollback in the selection', () => {
  it('a copy whose slot is below the floor is not selected', () => {
    const copies: [OtaEntryReading, OtaEntryReading] = [entry(1, 'valid'), entry(2, 'new')];
    const slots: [SlotCheck, SlotCheck] = [good(2), good(1)];
    const withFloor = plan(copies, slots, 2);
    assert.deepEqual([withFloor.active, withFloor.row.id, withFloor.bootSlot, effects(withFloor)], [0, 'R4', 0, ['floor 2']]);
    const without = plan(copies, slots, 'off');
    assert.deepEqual([without.active, without.row.id, without.bootSlot, effects(without)], [1, 'R1', 1, ['copy 1 pending-verify']]);
  });

  it('with anti-rollback a copy naming a slot with no readable header is not selected', () => {
    const p = plan([entry(1, 'valid'), entry(2, 'undefined')], [good(), ABSENT], 0);
    assert.deepEqual([p.active, p.facts.start, p.row.id, p.bootSlot], [0, 'bootable', 'R4', 0]);
  });

  it('without anti-rollback the selection ignores images: that copy is selected and the load falls back', () => {
    const p = plan([entry(1, 'valid'), entry(2, 'undefined')], [good(), ABSENT], 'off');
    assert.deepEqual([p.active, p.facts.start, p.row.id, p.bootSlot, effects(p)], [1, 'refused', 'R8', 0, []]);
  });

  it('without anti-rollback "initial" also needs both copies invalid (bootloader_utility.c, #ifndef branch)', () => {
    const corruptValid = decodeOtaEntry(encodeRawEntry(3, new Uint8Array(20).fill(0xff), 2, (otaSeqCrc(3) ^ 1) >>> 0));
    assert.equal(bootFacts({ copies: [BLANK, corruptValid], slots: [good(), good()], floor: undefined }).facts.otadata, 'no-active');
    assert.equal(bootFacts({ copies: [BLANK, corruptValid], slots: [good(), good()], floor: 0 }).facts.otadata, 'initial');
    assert.equal(bootFacts({ copies: [BLANK, BLANK], slots: [good(), good()], floor: undefined }).facts.otadata, 'initial');
  });
});

describe('the table itself', () => {
  const OTADATA: readonly OtadataSummary[] = ['active', 'initial', 'no-active'];
  const STATES: readonly (OtaStateReading | undefined)[] = ['new', 'pending-verify', 'valid', 'invalid', 'aborted', 'undefined', 'unrecognized', undefined];
  const IMAGES: readonly SlotImage[] = ['bootable', 'corrupt', 'refused'];

  it('every combination of facts gets a row that boots a bootable slot, or none only when no slot is bootable', () => {
    const used = new Set<string>();
    for (const otadata of OTADATA) for (const state of STATES) for (const start of IMAGES) for (const other of IMAGES) {
      const r = matchBootRow({ otadata, state, start, other });
      used.add(r.id);
      const label = `${otadata}/${String(state)}/${start}/${other} -> ${r.id}`;
      if (r.boot === 'start') assert.equal(start, 'bootable', label);
      if (r.boot === 'other') assert.deepEqual([start === 'bootable', other], [false, 'bootable'], label);
      if (r.boot === 'none') assert.ok(start !== 'bootable' && other !== 'bootable', label);
      if (r.write === 'pending-verify') assert.deepEqual([otadata, state], ['active', 'new'], label);
      if (r.write === 'initial') assert.equal(otadata, 'initial', label);
    }
    assert.deepEqual([...used].sort(), BOOT_ROWS.map((r) => r.id).sort(), 'every row is reachable');
  });

  it('rows and their cells are frozen', () => {
    assert.ok(Object.isFrozen(BOOT_ROWS));
    for (const r of BOOT_ROWS) assert.ok(Object.isFrozen(r) && Object.isFrozen(r.when), r.id);
  });

  it('the wildcard is not a storable state (compile-time)', () => {
    // @ts-expect-error ANY is a table wildcard, not an OtaState: it cannot be encoded.
    assert.throws(() => encodeOtaEntry({ seq: 1, state: ANY }), TypeError);
  });

  it('docs/spec/update-states.md shows exactly BOOT_ROWS, in order', () => {
    const spec = readFileSync(new URL('../../docs/spec/update-states.md', import.meta.url), 'utf8');
    const rows = spec
      .split('\n')
      .filter((line) => /^\| R\d+ \| /.test(line) && line.split('|').length === 11)
      .map((line) => line.split('|').slice(1, -1).map((cell) => cell.trim()));
    const expected = BOOT_ROWS.map((r) => [r.id, r.when.otadata, r.when.state, r.when.start, r.when.other, r.boot, r.write, r.raise, r.reason]);
    assert.deepEqual(rows, expected);
  });
});

describe('plan inputs', () => {
  it('does not mutate the readings it was given', () => {
    const copies: [OtaEntryReading, OtaEntryReading] = [entry(1, 'pending-verify'), entry(2, 'new')];
    const before = copies.map((c) => c.bytes.slice());
    const input: BootInput = { copies, slots: [good(), good()], floor: 0 };
    planBoot(input);
    assert.deepEqual(copies.map((c) => c.bytes), before);
  });
});
