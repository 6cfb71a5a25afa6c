/**
 * The outbox under flash damage that no power cut produces (bit rot, a
 * sector overwritten by something else, a sector erased behind its back):
 * reopening never fails with anything but a StorageError, never hangs,
 * never delivers garbage or a payload under the wrong sequence number, and
 * never loses an unacknowledged record silently: what is not delivered is
 * reported in stats() as corrupt, lost or dropped. Appending after the
 * damage keeps working.
 *
 * Damage is injected straight into SimFlash.data. In strict mode the unit
 * map of the damaged units is derived from their bytes (units not all 0xFF
 * count as programmed), as loadRawImage does for a raw dump.
 *
 * Every trial is seeded (tools/sim/rng.ts): failure messages carry the
 * configuration, the seed and the damaged offset, so a failure replays with
 * `damageTrial(buildBaseline(config), seed, damage)`.
 *
 * The random trials collect every broken promise and each test asserts one
 * kind, so one run shows which promises hold and which do not; the targeted
 * tests after them pin each kind of damage to a sector role (middle, head).
 */
import { BudgetFlash, Hang } from '../support/budget-flash.ts';
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { Outbox, type OutboxStats } from '../../firmware/storage/outbox.ts';
import { StorageError } from '../../firmware/storage/errors.ts';
import { ACK_FIELD_LENGTH, encodeWord, HEADER_LENGTH, makeLayout, RECORD_HEADER_LENGTH, type Layout } from '../../firmware/storage/outbox-format.ts';
import { SimFlash, type FlashMode, type SimFlashSnapshot } from '../../tools/sim/flash/sim-flash.ts';
import { deriveSeed, Rng } from '../../tools/sim/rng.ts';
import { dumpOutbox } from '../../tools/inspect/outbox-dump.ts';

// ─── Configurations ──────────────────────────────────────────────────────

interface Config {
  name: string;
  mode: FlashMode;
  blocks: number;
  blockLength: number;
  appends: number;
  size: (index: number) => number;
  /** The app acknowledges records 0..ackUpTo early on (acks then stop: the rest stays queued). */
  ackUpTo: number;
}

const CONFIGS: Config[] = [
  // Large sectors, not yet full: a few hundred queued records across several sectors.
  { name: 'plain 8×4096', mode: 'plain', blocks: 8, blockLength: 4096, appends: 300, size: (i) => 1 + ((i * 37) % 120), ackUpTo: 39 },
  // Small strict sectors: the ring wraps many times (drop-oldest), records span sector ends.
  { name: 'strict 6×512', mode: 'strict', blocks: 6, blockLength: 512, appends: 300, size: (i) => 1 + ((i * 13) % 40), ackUpTo: 59 },
  // Small plain sectors with large records: most sector ends are crossed by a record (121 appends: the head then holds inner entries).
  { name: 'plain 8×1024 spanning', mode: 'plain', blocks: 8, blockLength: 1024, appends: 121, size: (i) => 60 + ((i * 53) % 200), ackUpTo: 9 },
];

// ─── The undamaged outbox every trial starts from ───────────────────────

interface SectorMap {
  index: number;
  sectorSeq: number;
  /** Where the entry chain ends (first erased word, or closeStart). */
  chainEnd: number;
  /** Records (seq) with at least one byte in this sector. */
  seqs: Set<number>;
  /** Record entries that start in this sector: offset, seq, payload length, whether they spill into the next sector. */
  entries: { offset: number; seq: number; length: number; hasAck: boolean; spills: number }[];
}

interface Baseline {
  config: Config;
  layout: Layout;
  snapshot: SimFlashSnapshot;
  /** Payload of every record ever appended, by seq. */
  records: Map<number, Uint8Array>;
  /** A clean reopen: its stats and what it delivers (every queued record). */
  stats: OutboxStats;
  expected: number[];
  sectors: SectorMap[];
  head: SectorMap;
}

function payloadFor(seed: number, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  new Rng(seed * 7919 + 17).fill(bytes);
  bytes[0] = seed & 0xff;
  return bytes;
}

function drainOk(outbox: Outbox, cap: number): { seq: number; payload: Uint8Array }[] {
  const out: { seq: number; payload: Uint8Array }[] = [];
  for (let record = outbox.peek(); record !== undefined; record = outbox.next()) {
    out.push(record);
    assert.ok(out.length <= cap, `delivery did not end after ${cap} records`);
  }
  return out;
}

function buildBaseline(config: Config): Baseline {
  const flash = new SimFlash({ blocks: config.blocks, blockLength: config.blockLength, mode: config.mode });
  const outbox = Outbox.open(flash, { policy: 'drop-oldest', maxUnpersistedAcks: 4 });
  const records = new Map<number, Uint8Array>();
  for (let i = 0; i < config.appends; i++) {
    const payload = payloadFor(i, config.size(i));
    const seq = outbox.append(payload);
    assert.equal(seq, i);
    records.set(seq, payload);
    if (i === config.ackUpTo) outbox.ack(i);
  }
  outbox.flush();
  const clean = Outbox.open(SimFlash.fromSnapshot(flash.snapshot()));
  const stats = clean.stats();
  const delivered = drainOk(clean, config.appends + 10);
  const expected = delivered.map((r) => r.seq);
  // The undamaged outbox delivers every queued record, intact and in order.
  assert.deepEqual(expected, range(stats.ackSeq, stats.nextSeq), `${config.name}: clean delivery`);
  for (const r of delivered) assert.deepEqual(r.payload, records.get(r.seq), `${config.name}: clean payload ${r.seq}`);
  assert.equal(stats.corrupt + stats.lost, 0);
  assert.ok(expected.length >= 40, `${config.name}: ${expected.length} records queued`);
  const layout = makeLayout(config.blockLength, flash.writeAlign);
  const sectors = mapSectors(flash, layout);
  const head = sectors.reduce((a, b) => (b.sectorSeq > a.sectorSeq ? b : a));
  return { config, layout, snapshot: flash.snapshot(), records, stats, expected, sectors, head };
}

function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let s = from; s < to; s++) out.push(s);
  return out;
}

/** Which records live in which sector (from tools/inspect/outbox-dump.ts). */
function mapSectors(flash: SimFlash, layout: Layout): SectorMap[] {
  const dump = dumpOutbox(flash);
  const live = dump.filter((s) => typeof s.header === 'object').sort((a, b) => seqOf(a) - seqOf(b));
  const maps: SectorMap[] = live.map((s) => ({ index: s.index, sectorSeq: seqOf(s), chainEnd: layout.closeStart, seqs: new Set(), entries: [] }));
  for (let k = 0; k < live.length; k++) {
    const sector = live[k];
    const header = sector.header as Exclude<typeof sector.header, string>;
    let seq = header!.firstRecordSeq;
    for (const entry of sector.entries) {
      if (entry.kind === 'erased' || entry.kind === 'bad') {
        maps[k].chainEnd = entry.offset;
        break;
      }
      if (entry.kind !== 'record') continue;
      maps[k].seqs.add(seq);
      maps[k].entries.push({ offset: entry.offset, seq, length: entry.length!, hasAck: entry.ack !== undefined, spills: entry.spills ?? 0 });
      if ((entry.spills ?? 0) > 0 && k + 1 < live.length) maps[k + 1].seqs.add(seq);
      seq++;
    }
  }
  return maps;
}

function seqOf(sector: ReturnType<typeof dumpOutbox>[number]): number {
  return typeof sector.header === 'object' ? sector.header!.sectorSeq : -1;
}

// ─── Damage trials ───────────────────────────────────────────────────────



type Violation =
  | 'open-threw'
  | 'open-wrote'
  | 'hang'
  | 'delivery-threw'
  | 'garbage'
  | 'wrong-order'
  | 'silent-loss'
  | 'under-reported'
  | 'seq-reused'
  | 'append-threw'
  | 'new-record-lost';

interface TrialResult {
  label: string;
  violations: { kind: Violation; detail: string }[];
  refused?: string;
  /** Queued records not delivered after the damage. */
  missing: number;
  corrupt: number;
  lost: number;
  droppedGrowth: number;
  /** Sectors reported damaged with an unknown number of records lost. */
  damagedSectors: number;
  /**
   * Records reported torn: the newest record failing its check is what a
   * power cut leaves, and damage to it looks the same; it is reported as
   * torn (stats().torn), never silently dropped.
   */
  torn: number;
  /** Where the damage landed (see roleOf). */
  role: string;
}

type Damage = (flash: SimFlash, rng: Rng, base: Baseline) => { offsets: number[]; note: string };

/** Strict mode: re-derive the unit map of the damaged bytes (non-0xFF units count as programmed). */
function deriveUnits(flash: SimFlash, offsets: Iterable<number>): void {
  if (flash.mode === 'strict') flash.deriveUnitsFromContents(offsets);
}

/** What a damaged byte held in the undamaged outbox. */
function roleOf(base: Baseline, offset: number): string {
  const { blockLength } = base.config;
  const index = Math.floor(offset / blockLength);
  const within = offset % blockLength;
  const sector = base.sectors.find((s) => s.index === index);
  if (sector === undefined) return 'unused sector';
  const where = sector === base.head ? 'head ' : sector.sectorSeq === base.sectors[0].sectorSeq ? 'oldest ' : '';
  if (within < HEADER_LENGTH) return `${where}header`;
  if (within < base.layout.dataStart) return `${where}header padding`;
  if (within >= base.layout.closeStart) return `${where}closing slots`;
  if (within >= sector.chainEnd) return `${where}free space`;
  return `${where}entries`;
}

const NEW_RECORDS = 12;

/**
 * Damage a copy of the baseline, reopen it, drain it, append, drain again,
 * reopen and drain once more; collect every broken promise.
 */
function damageTrial(base: Baseline, seed: number, damage: Damage): TrialResult {
  const { config } = base;
  const rng = new Rng(seed);
  const sim = SimFlash.fromSnapshot(base.snapshot);
  const { offsets, note } = damage(sim, rng, base);
  deriveUnits(sim, offsets);
  const label = `${config.name}, seed ${seed}, ${note}`;
  const result: TrialResult = { label, violations: [], missing: 0, corrupt: 0, lost: 0, droppedGrowth: 0, damagedSectors: 0, torn: 0, role: offsets.length > 0 && offsets.length <= 16 ? roleOf(base, offsets[0]) : 'whole sector' };
  const violation = (kind: Violation, detail: string) => result.violations.push({ kind, detail: `${label} [${result.role}]: ${detail}` });
  const flash = new BudgetFlash(sim, 200_000);
  const damaged = sim.snapshot().data;

  let outbox: Outbox;
  try {
    outbox = Outbox.open(flash, { policy: 'drop-oldest', maxUnpersistedAcks: 4 });
  } catch (error) {
    if (error instanceof StorageError) {
      result.refused = error.code;
      if (!Buffer.from(sim.data).equals(Buffer.from(damaged))) violation('open-wrote', `open refused (${error.code}) after writing`);
    } else if (error instanceof Hang) violation('hang', 'open');
    else violation('open-threw', `open threw ${describeError(error)}`);
    return result;
  }
  if (!Buffer.from(sim.data).equals(Buffer.from(damaged))) violation('open-wrote', 'open changed the flash');

  // Delivery: only intact records under their own seq, strictly increasing.
  const check = (box: Outbox, what: string, known: Map<number, Uint8Array>): Set<number> | undefined => {
    const seen = new Set<number>();
    let previous = -1;
    try {
      flash.reset();
      let count = 0;
      for (let record = box.peek(); record !== undefined; record = box.next()) {
        flash.reset();
        if (++count > config.appends + 10 * NEW_RECORDS) {
          violation('hang', `${what}: delivery did not end after ${count} records`);
          return undefined;
        }
        const expected = known.get(record.seq);
        if (expected === undefined || !Buffer.from(record.payload).equals(Buffer.from(expected))) {
          const owner = [...known].find(([, payload]) => Buffer.from(payload).equals(Buffer.from(record.payload)))?.[0];
          const whose = owner === undefined ? 'bytes never appended' : `the payload of record ${owner}`;
          violation('garbage', `${what}: seq ${record.seq} delivered ${record.payload.length} bytes that were not appended under it (${whose})`);
        }
        if (record.seq <= previous) violation('wrong-order', `${what}: seq ${record.seq} after ${previous}`);
        previous = record.seq;
        seen.add(record.seq);
      }
    } catch (error) {
      violation(error instanceof Hang ? 'hang' : 'delivery-threw', `${what}: ${describeError(error)}`);
      return undefined;
    }
    return seen;
  };

  const seen = check(outbox, 'after damage', base.records);
  if (seen === undefined) return result;
  const stats = outbox.stats();
  const missing = base.expected.filter((seq) => !seen.has(seq) && seq >= base.stats.ackSeq);
  result.missing = missing.length;
  result.corrupt = stats.corrupt;
  result.lost = stats.lost;
  result.droppedGrowth = stats.dropped - base.stats.dropped;
  result.damagedSectors = stats.damagedSectors;
  result.torn = stats.torn;
  const reported = stats.corrupt + stats.lost + stats.torn + Math.max(0, result.droppedGrowth);
  if (missing.length > 0 && reported === 0 && stats.damagedSectors === 0) {
    violation('silent-loss', `${missing.length} queued records not delivered (${fmtSeqs(missing)}) and stats report nothing: ${fmtStats(stats)}`);
  } else if (reported < missing.length && stats.damagedSectors === 0) {
    // (damagedSectors > 0 says records were lost in numbers the outbox cannot know: no count to check.)
    violation('under-reported', `${missing.length} queued records not delivered (${fmtSeqs(missing)}) but stats account for ${reported}: ${fmtStats(stats)}`);
  }
  if (stats.nextSeq < base.stats.nextSeq) {
    violation('seq-reused', `nextSeq went back from ${base.stats.nextSeq} to ${stats.nextSeq}: the next appends reuse sequence numbers of records already handed out`);
  }

  // Appending after the damage keeps working and the new records come back, also after a reopen.
  const known = new Map(base.records);
  const added: number[] = [];
  for (let i = 0; i < NEW_RECORDS; i++) {
    const payload = payloadFor(100_000 + seed * 31 + i, 1 + ((seed + i * 7) % 40));
    try {
      flash.reset();
      const seq = outbox.append(payload);
      // A reused seq was reported above (seq-reused); from here on the new payload owns it.
      known.set(seq, payload);
      added.push(seq);
    } catch (error) {
      violation(error instanceof Hang ? 'hang' : 'append-threw', `append ${i} after damage threw ${describeError(error)}`);
      return result;
    }
  }
  for (const [what, box] of [
    ['same boot', outbox],
    ['reopened', reopen(flash, violation)],
  ] as const) {
    if (box === undefined) continue;
    const after = check(box, `${what}, after ${NEW_RECORDS} appends`, known);
    if (after === undefined) continue;
    const notBack = added.filter((seq) => !after.has(seq));
    if (notBack.length > 0) {
      violation('new-record-lost', `${what}: ${notBack.length} of the ${NEW_RECORDS} records appended after the damage are not delivered (${fmtSeqs(notBack)}); ${fmtStats(box.stats())}`);
    }
  }
  return result;
}

function reopen(flash: BudgetFlash, violation: (kind: Violation, detail: string) => void): Outbox | undefined {
  try {
    flash.reset();
    return Outbox.open(flash, { policy: 'drop-oldest', maxUnpersistedAcks: 4 });
  } catch (error) {
    violation(error instanceof Hang ? 'hang' : 'open-threw', `reopen after appends threw ${describeError(error)}`);
    return undefined;
  }
}

function describeError(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

function fmtSeqs(seqs: number[]): string {
  if (seqs.length <= 6) return seqs.join(', ');
  return `${seqs.slice(0, 3).join(', ')} … ${seqs.slice(-2).join(', ')}`;
}

function fmtStats(stats: OutboxStats): string {
  return `queued ${stats.queued}, nextSeq ${stats.nextSeq}, ackSeq ${stats.ackSeq}, corrupt ${stats.corrupt}, lost ${stats.lost}, dropped ${stats.dropped}, damagedSectors ${stats.damagedSectors}`;
}

/** Assert no violation of the given kinds; the message lists the first few with their seeds. */
function assertNone(results: TrialResult[], kinds: Violation[], what: string): void {
  const found = results.flatMap((r) => r.violations.filter((v) => kinds.includes(v.kind)));
  const byRole = new Map<string, number>();
  for (const r of results) if (r.violations.some((v) => kinds.includes(v.kind))) byRole.set(r.role, (byRole.get(r.role) ?? 0) + 1);
  assert.equal(
    found.length,
    0,
    `${what}: ${found.length} violation(s) in ${results.length} trials (by damaged area: ${[...byRole].map(([k, v]) => `${k} ×${v}`).join(', ')}); first:\n  ${found
      .slice(0, 6)
      .map((v) => `${v.kind}: ${v.detail}`)
      .join('\n  ')}`,
  );
}

/** How the loss was reported, for the diagnostics. */
function summarize(results: TrialResult[]): string {
  const withLoss = results.filter((r) => r.missing > 0);
  const count = (f: (r: TrialResult) => boolean) => withLoss.filter(f).length;
  const refused = results.filter((r) => r.refused !== undefined).length;
  const counted = (r: TrialResult) => r.corrupt + r.lost + Math.max(0, r.droppedGrowth);
  return (
    `${results.length} trials, ${refused} refused at open, ${withLoss.length} lost queued records: ` +
    `reported as corrupt only ${count((r) => r.corrupt > 0 && r.lost === 0 && r.droppedGrowth <= 0)}, ` +
    `lost only ${count((r) => r.lost > 0 && r.corrupt === 0 && r.droppedGrowth <= 0)}, ` +
    `dropped only ${count((r) => r.droppedGrowth > 0 && r.corrupt === 0 && r.lost === 0)}, ` +
    `several ${count((r) => [r.corrupt > 0, r.lost > 0, r.droppedGrowth > 0].filter(Boolean).length > 1)}, ` +
    `damagedSectors only ${count((r) => counted(r) === 0 && r.damagedSectors > 0)}, ` +
    `silently ${count((r) => counted(r) === 0 && r.damagedSectors === 0)}; ` +
    `under-counted without damagedSectors ${count((r) => counted(r) < r.missing && r.damagedSectors === 0)}`
  );
}

// ─── Damage kinds ────────────────────────────────────────────────────────

/** One bit anywhere in the partition. */
const flipAnywhere: Damage = (flash, rng) => {
  const offset = rng.below(flash.data.length);
  const bit = rng.below(8);
  flash.data[offset] ^= 1 << bit;
  return { offsets: [offset], note: `bit ${bit} of byte ${offset}` };
};

/** One bit in a byte the outbox wrote (not 0xFF in the undamaged partition). */
const flipWritten: Damage = (flash, rng) => {
  for (;;) {
    const offset = rng.below(flash.data.length);
    if (flash.data[offset] === 0xff) continue;
    const bit = rng.below(8);
    flash.data[offset] ^= 1 << bit;
    return { offsets: [offset], note: `bit ${bit} of written byte ${offset}` };
  }
};

/** One written byte replaced by another value (several bits at once: a header word may then still pass its check nibble). */
const smashWrittenByte: Damage = (flash, rng) => {
  for (;;) {
    const offset = rng.below(flash.data.length);
    if (flash.data[offset] === 0xff) continue;
    const value = (flash.data[offset] + 1 + rng.below(255)) & 0xff;
    flash.data[offset] = value;
    return { offsets: [offset], note: `written byte ${offset} set to 0x${value.toString(16)}` };
  }
};

function sectorBytes(base: Baseline, sector: SectorMap): number[] {
  const start = sector.index * base.config.blockLength;
  return range(start, start + base.config.blockLength);
}

/** A live sector that is neither the oldest nor the head. */
function middleSector(base: Baseline, rng: Rng): SectorMap {
  const inner = base.sectors.slice(1, -1);
  assert.ok(inner.length > 0, `${base.config.name}: no middle sector`);
  return inner[rng.below(inner.length)];
}

const garbageMiddleSector: Damage = (flash, rng, base) => {
  const sector = middleSector(base, rng);
  const start = sector.index * base.config.blockLength;
  rng.fill(flash.data.subarray(start, start + base.config.blockLength));
  return { offsets: sectorBytes(base, sector), note: `random bytes over sector ${sector.index} (sectorSeq ${sector.sectorSeq})` };
};

const erasedMiddleSector: Damage = (flash, rng, base) => {
  const sector = middleSector(base, rng);
  flash.eraseBlock(sector.index);
  return { offsets: [], note: `sector ${sector.index} (sectorSeq ${sector.sectorSeq}) erased` };
};

function headerFlip(pick: (base: Baseline, rng: Rng) => SectorMap, name: string): Damage {
  return (flash, rng, base) => {
    const sector = pick(base, rng);
    const offset = sector.index * base.config.blockLength + rng.below(HEADER_LENGTH);
    const bit = rng.below(8);
    flash.data[offset] ^= 1 << bit;
    return { offsets: [offset], note: `bit ${bit} of the ${name} header byte ${offset % base.config.blockLength} (sector ${sector.index})` };
  };
}

/** A record entry that starts and ends in the sector and is not its last entry. */
function innerEntry(base: Baseline, sector: SectorMap, rng: Rng) {
  const candidates = sector.entries.filter((e, i) => e.spills === 0 && i < sector.entries.length - 1);
  assert.ok(candidates.length > 0, `${base.config.name}: sector ${sector.index} has no inner entry`);
  return candidates[rng.below(candidates.length)];
}

function wordFlip(pick: (base: Baseline, rng: Rng) => SectorMap, name: string): Damage {
  return (flash, rng, base) => {
    const sector = pick(base, rng);
    const entry = innerEntry(base, sector, rng);
    const offset = sector.index * base.config.blockLength + entry.offset + rng.below(2);
    const bit = rng.below(8);
    flash.data[offset] ^= 1 << bit;
    return { offsets: [offset], note: `bit ${bit} of the header word of record ${entry.seq} in the ${name} sector ${sector.index}` };
  };
}

function payloadFlip(pick: (base: Baseline, rng: Rng) => SectorMap, which: 'inner' | 'last', name: string): Damage {
  return (flash, rng, base) => {
    const sector = pick(base, rng);
    const entry = which === 'inner' ? innerEntry(base, sector, rng) : sector.entries.filter((e) => e.spills === 0).at(-1)!;
    const start = entry.offset + RECORD_HEADER_LENGTH + (entry.hasAck ? ACK_FIELD_LENGTH : 0);
    const offset = sector.index * base.config.blockLength + start + rng.below(entry.length);
    const bit = rng.below(8);
    flash.data[offset] ^= 1 << bit;
    return { offsets: [offset], note: `bit ${bit} of a payload byte of record ${entry.seq} (${which}) in the ${name} sector ${sector.index}` };
  };
}

/** A bit in the head sector's free space past the first program unit after the last entry. */
const headFreeSpaceFlip: Damage = (flash, rng, base) => {
  const head = base.head;
  const from = head.chainEnd + Math.max(RECORD_HEADER_LENGTH, flash.writeAlign);
  const within = from + rng.below(Math.min(48, base.layout.closeStart - from));
  const offset = head.index * base.config.blockLength + within;
  const bit = rng.below(8);
  flash.data[offset] ^= 1 << bit;
  return { offsets: [offset], note: `bit ${bit} of free byte ${within} in the head sector ${head.index} (chain ends at ${head.chainEnd})` };
};

/**
 * Multi-bit damage to a record header word that still passes its check
 * nibble (1 in 16 random changes do) and whose new length ends exactly where
 * a later record of the same sector starts: the entry chain stays in step
 * with real record boundaries but skips records.
 */
const wordToOtherBoundary: Damage = (flash, rng, base) => {
  const candidates: { sector: SectorMap; from: SectorMap['entries'][number]; to: SectorMap['entries'][number] }[] = [];
  for (const sector of base.sectors.slice(1, -1)) {
    const entries = sector.entries;
    for (let i = 0; i < entries.length; i++) {
      for (let k = i + 2; k < entries.length; k++) {
        const from = entries[i];
        const to = entries[k];
        const length = to.offset - from.offset - RECORD_HEADER_LENGTH - (from.hasAck ? ACK_FIELD_LENGTH : 0);
        if (from.spills === 0 && length >= 1 && length <= 0x7ff) candidates.push({ sector, from, to });
      }
    }
  }
  assert.ok(candidates.length > 0, `${base.config.name}: no record pair for the word rewrite`);
  const { sector, from, to } = candidates[rng.below(candidates.length)];
  const length = to.offset - from.offset - RECORD_HEADER_LENGTH - (from.hasAck ? ACK_FIELD_LENGTH : 0);
  const word = encodeWord(length, from.hasAck);
  const offset = sector.index * base.config.blockLength + from.offset;
  flash.data[offset] = word & 0xff;
  flash.data[offset + 1] = word >>> 8;
  return {
    offsets: [offset, offset + 1],
    note: `header word of record ${from.seq} (sector ${sector.index}, offset ${from.offset}) rewritten to a valid length ${length} that ends at record ${to.seq}`,
  };
};

const pickHead = (base: Baseline) => base.head;
const pickMiddle = (base: Baseline, rng: Rng) => middleSector(base, rng);

// ─── Tests ───────────────────────────────────────────────────────────────

const FLIP_TRIALS = 400;

for (const config of CONFIGS) {
  describe(`outbox damage: ${config.name}`, () => {
    let base: Baseline;
    let anywhere: TrialResult[];
    let written: TrialResult[];
    let smashed: TrialResult[];
    before(() => {
      // (deriveSeed mixes base ^ part first: bases 1, 2, 3 with parts 0..n would share seeds; shifted bases do not.)
      base = buildBaseline(config);
      anywhere = range(0, FLIP_TRIALS).map((i) => damageTrial(base, deriveSeed(1 << 16, i), flipAnywhere));
      written = range(0, FLIP_TRIALS).map((i) => damageTrial(base, deriveSeed(2 << 16, i), flipWritten));
      smashed = range(0, FLIP_TRIALS).map((i) => damageTrial(base, deriveSeed(3 << 16, i), smashWrittenByte));
    });

    test('random single bit flips: open throws nothing but StorageError, writes nothing, never hangs', (t) => {
      t.diagnostic(`bit flips anywhere: ${summarize(anywhere)}`);
      t.diagnostic(`bit flips in written bytes: ${summarize(written)}`);
      assertNone([...anywhere, ...written], ['open-threw', 'open-wrote', 'hang', 'delivery-threw'], 'open and delivery');
    });

    test('random written bytes replaced (multi-bit): open and delivery never fail, hang, or deliver garbage or a wrong seq', (t) => {
      t.diagnostic(`bytes replaced: ${summarize(smashed)}`);
      assertNone(smashed, ['open-threw', 'open-wrote', 'hang', 'delivery-threw', 'garbage', 'wrong-order'], 'replaced bytes');
    });

    test('random single bit flips: delivery returns only intact records under their own seq, in order', () => {
      assertNone([...anywhere, ...written], ['garbage', 'wrong-order'], 'delivery');
    });

    test('random single bit flips: no queued record disappears without stats() reporting it', () => {
      assertNone([...anywhere, ...written], ['silent-loss', 'under-reported'], 'silent loss');
    });

    test('random single bit flips: sequence numbers already handed out are never reused', () => {
      assertNone([...anywhere, ...written], ['seq-reused'], 'sequence numbers');
    });

    test('random single bit flips: appending afterwards works and the new records are delivered', () => {
      assertNone([...anywhere, ...written], ['append-threw', 'new-record-lost'], 'appends after damage');
    });

    /** Records with no byte in `sector` must all come back; loss must be reported. */
    const sectorDamage = (damage: Damage, seeds: number[], expectReport: (r: TrialResult) => boolean) => {
      for (const seed of seeds) {
        const result = damageTrial(base, seed, damage);
        assertNone([result], ['open-threw', 'open-wrote', 'hang', 'delivery-threw', 'garbage', 'wrong-order', 'silent-loss', 'seq-reused', 'append-threw', 'new-record-lost'], result.label);
        assert.equal(result.refused, undefined, `${result.label}: open refused the partition`);
        assert.ok(result.missing > 0, `${result.label}: the damage destroyed no queued record (test setup)`);
        assert.ok(expectReport(result), `${result.label}: reported corrupt ${result.corrupt}, lost ${result.lost}, dropped +${result.droppedGrowth} for ${result.missing} missing`);
      }
    };

    test('a garbage sector in the middle: every record outside it is delivered, the loss is reported as lost', () => {
      sectorDamage(garbageMiddleSector, [11, 12, 13, 14, 15], (r) => r.lost >= r.missing);
      for (const seed of [11, 12, 13, 14, 15]) assertOthersDelivered(base, seed, garbageMiddleSector);
    });

    test('a sector erased to 0xFF in the middle: every record outside it is delivered, the loss is reported as lost', () => {
      sectorDamage(erasedMiddleSector, [21, 22, 23], (r) => r.lost >= r.missing);
      for (const seed of [21, 22, 23]) assertOthersDelivered(base, seed, erasedMiddleSector);
    });

    test('one bit of a middle sector header: the sector is rebuilt from its neighbour (damage reported), or its loss is reported as lost', () => {
      const damage = headerFlip(pickMiddle, 'middle');
      for (const seed of range(30, 46)) {
        const result = damageTrial(base, seed, damage);
        assertNone([result], ['open-threw', 'open-wrote', 'hang', 'delivery-threw', 'garbage', 'wrong-order', 'silent-loss', 'under-reported', 'seq-reused', 'append-threw', 'new-record-lost'], result.label);
        const rebuilt = result.missing === 0 && result.damagedSectors >= 1;
        const reported = result.missing > 0 && result.lost >= result.missing;
        assert.ok(rebuilt || reported, `${result.label}: missing ${result.missing}, lost ${result.lost}, damagedSectors ${result.damagedSectors}`);
        assertOthersDelivered(base, seed, damage);
      }
    });

    test('one bit of a record header word in a middle sector: the records before it and in other sectors are delivered, the loss is reported', () => {
      const damage = wordFlip(pickMiddle, 'middle');
      sectorDamage(damage, range(50, 66), (r) => r.lost + r.corrupt >= r.missing);
    });

    test('a record header word rewritten to another valid length (multi-bit): no record is delivered under another record\'s seq', () => {
      sectorDamage(wordToOtherBoundary, range(180, 190), (r) => r.lost + r.corrupt >= r.missing);
    });

    test('one bit of a payload in a middle sector: counted corrupt, every other record still comes', () => {
      sectorDamage(payloadFlip(pickMiddle, 'inner', 'middle'), range(70, 86), (r) => r.corrupt === 1 && r.missing === 1 && r.lost === 0);
    });

    test('one bit of a payload of a record inside the head sector: counted corrupt, every other record still comes', () => {
      sectorDamage(payloadFlip(pickHead, 'inner', 'head'), range(90, 106), (r) => r.corrupt === 1 && r.missing === 1 && r.lost === 0);
    });

    test('one bit of the payload of the newest record (head sector): reported (as torn: indistinguishable from a cut append), never silent', () => {
      sectorDamage(payloadFlip(pickHead, 'last', 'head'), range(110, 116), (r) => r.corrupt + r.torn === 1 && r.missing === 1);
    });

    test('one bit of a record header word in the head sector: the loss is reported and no seq is reused', () => {
      sectorDamage(wordFlip(pickHead, 'head'), range(120, 136), (r) => r.lost + r.corrupt >= r.missing);
    });

    test('one bit of the head sector header: the sector is rebuilt (nothing lost, damage reported) and no seq is reused', () => {
      for (const seed of range(140, 156)) {
        const result = damageTrial(base, seed, headerFlip(pickHead, 'head'));
        assertNone([result], ['open-threw', 'open-wrote', 'hang', 'delivery-threw', 'garbage', 'wrong-order', 'silent-loss', 'under-reported', 'seq-reused', 'append-threw', 'new-record-lost'], result.label);
        assert.equal(result.missing, 0, `${result.label}: records lost although the sector could be rebuilt`);
        assert.ok(result.damagedSectors >= 1, `${result.label}: the damaged header is not reported`);
      }
    });

    test('one bit in the head sector free space: the next appends are still delivered', () => {
      for (const seed of range(160, 176)) {
        const result = damageTrial(base, seed, headFreeSpaceFlip);
        assertNone([result], ['open-threw', 'open-wrote', 'hang', 'delivery-threw', 'garbage', 'wrong-order', 'silent-loss', 'seq-reused', 'append-threw', 'new-record-lost'], result.label);
      }
    });
  });
}

/** Every queued record with no byte in the damaged sector is delivered intact. */
function assertOthersDelivered(base: Baseline, seed: number, damage: Damage): void {
  const sim = SimFlash.fromSnapshot(base.snapshot);
  const rng = new Rng(seed);
  const { offsets, note } = damage(sim, rng, base);
  deriveUnits(sim, offsets);
  const damagedIndex = Math.floor((offsets[0] ?? findErased(sim, base)) / base.config.blockLength);
  const damagedSeqs = base.sectors.find((s) => s.index === damagedIndex)?.seqs ?? new Set<number>();
  const outbox = Outbox.open(sim);
  const delivered = new Set(drainOk(outbox, base.config.appends + 10).map((r) => r.seq));
  const others = base.expected.filter((seq) => !damagedSeqs.has(seq));
  const missing = others.filter((seq) => !delivered.has(seq));
  assert.deepEqual(missing, [], `${base.config.name}, seed ${seed}, ${note}: records outside the damaged sector not delivered`);
}

function findErased(flash: SimFlash, base: Baseline): number {
  for (const sector of base.sectors) {
    const start = sector.index * base.config.blockLength;
    if (flash.data.subarray(start, start + HEADER_LENGTH).every((b) => b === 0xff)) return start;
  }
  assert.fail('no erased sector');
}
