/**
 * The outbox under damage no power cut produces (test/support/damage.ts):
 * one bit flipped at every byte, every 16-byte unit garbled or erased, every
 * entry garbled or erased, every sector garbled or erased, over a populated
 * ring in plain and strict flash, in Node and XS. After each damage:
 *
 * - open either recovers or refuses with a typed StorageError;
 * - nothing is delivered that was not appended, nor under another number,
 *   nor out of order; delivery ends;
 * - the ack point never moves past the saved one unless the records it
 *   skips are counted as dropped, and no queued record goes missing without
 *   a counter saying so;
 * - the saved ack point moves backwards only when the damage hit the head
 *   sector, where the newest ack evidence lives (docs/spec/outbox.md, "Known
 *   limits"), and then the damage is reported (acked records come again:
 *   duplicates, never a loss);
 * - appending still works afterwards, and never hands out a number twice;
 *   damage the bounded recovery does not read (an erased hole among the
 *   head's records) is reported by the first write's free-space check.
 * A newer format is never read as empty: a valid header of the next format
 * anywhere in the populated ring is refused with 'format-too-new'.
 */
import { Outbox } from '../../firmware/storage/outbox.ts';
import { alignUp, encodeHeader, HEADER_LENGTH, makeLayout, OUTBOX_FORMAT_VERSION } from '../../firmware/storage/outbox-format.ts';
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { seqDiff } from '../../firmware/base/seq.ts';
import { SimFlash, type FlashMode } from '../../tools/sim/flash/sim-flash.ts';
import { dumpOutbox } from '../../tools/inspect/outbox-dump.ts';
import { runDamageSuite, type ByteRange, type Damage, type DamageSubject } from '../support/damage.ts';
import type { CaseSuite, FirmwareCase } from '../support/cases.ts';
import { bytesEqual, equal, ok } from '../support/check.ts';

const BLOCKS = 3;
const BLOCK_LENGTH = 512;
const OPTIONS = { maxUnpersistedAcks: 0 } as const;

interface OutboxFacts {
  records: Map<number, Uint8Array>;
  nextSeq: number;
  /** The ack point the outbox reported saved (unpersistedAcks 0) last. */
  savedAck: number;
  /** The saved ack point before that. */
  previousSavedAck: number;
  /** Byte range of the head sector. */
  head: ByteRange;
  /** Partition offset just past the last programmed byte of the head's stream. */
  headDataEnd: number;
}

function payloadFor(seq: number): Uint8Array {
  const bytes = new Uint8Array(20 + ((seq * 23) % 45));
  let x = (seq * 2_654_435_761 + 99) >>> 0;
  for (let i = 0; i < bytes.length; i++) {
    x = (Math.imul(x, 1_103_515_245) + 12_345) >>> 0;
    bytes[i] = x >>> 24;
  }
  return bytes;
}

function isStorageError(error: unknown): error is Error & { code: string } {
  return error instanceof Error && error.name === 'StorageError';
}

function subject(mode: FlashMode): DamageSubject<OutboxFacts> {
  return {
    name: `outbox ${mode} ${BLOCKS}×${BLOCK_LENGTH}`,
    flash: { blocks: BLOCKS, blockLength: BLOCK_LENGTH, mode },
    populate(flash: FlashPartition): OutboxFacts {
      const outbox = Outbox.open(flash, OPTIONS);
      const records = new Map<number, Uint8Array>();
      const appendSome = (count: number) => {
        for (let i = 0; i < count; i++) {
          const seq = outbox.stats().nextSeq;
          records.set(outbox.append(payloadFor(seq)), payloadFor(seq));
        }
      };
      appendSome(10);
      outbox.ack(3);
      appendSome(10);
      outbox.ack(8);
      const previousSavedAck = outbox.stats().ackSeq;
      outbox.ack(12);
      const stats = outbox.stats();
      equal(stats.unpersistedAcks, 0, 'populate: acks saved');
      appendSome(5);
      const after = outbox.stats();
      const headIndex = dumpOutbox(flash).reduce((best, s) => (typeof s.header === 'object' && s.header.sectorSeq > best.seq ? { index: s.index, seq: s.header.sectorSeq } : best), { index: -1, seq: 0 }).index;
      ok(headIndex >= 0 && after.usedSectors >= 2, 'populate: the ring spans at least two sectors');
      const { closeStart } = makeLayout(BLOCK_LENGTH, flash.status().writeAlign);
      const sector = new Uint8Array(closeStart);
      flash.read(headIndex * BLOCK_LENGTH, sector);
      let end = closeStart;
      while (end > 0 && sector[end - 1] === 0xff) end--;
      return { records, nextSeq: after.nextSeq, savedAck: stats.ackSeq, previousSavedAck, head: { byteOffset: headIndex * BLOCK_LENGTH, byteLength: BLOCK_LENGTH }, headDataEnd: headIndex * BLOCK_LENGTH + end };
    },
    entries(flash: SimFlash): ByteRange[] {
      const out: ByteRange[] = [];
      const { writeAlign } = flash.status();
      for (const sector of dumpOutbox(flash)) {
        out.push({ byteOffset: sector.index * BLOCK_LENGTH, byteLength: alignUp(HEADER_LENGTH, writeAlign) });
        const kept = sector.entries.filter((e) => e.kind === 'record' || e.kind === 'ack');
        for (let i = 0; i < kept.length; i++) {
          const end = i + 1 < kept.length ? kept[i + 1].offset : (sector.entries.find((e) => e.offset > kept[i].offset && (e.kind === 'erased' || e.kind === 'bad'))?.offset ?? kept[i].offset + 8);
          const length = Math.max(1, Math.min(end, BLOCK_LENGTH) - kept[i].offset);
          out.push({ byteOffset: sector.index * BLOCK_LENGTH + kept[i].offset, byteLength: length });
        }
      }
      return out;
    },
    verify(flash: SimFlash, facts: OutboxFacts, damage: Damage): 'recovered' | 'refused' {
      let outbox: Outbox;
      try {
        outbox = Outbox.open(flash, OPTIONS);
      } catch (error) {
        ok(isStorageError(error), `open threw ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}, not a StorageError`);
        return 'refused';
      }
      const stats = outbox.stats();
      const inHead = damage.byteOffset < facts.head.byteOffset + facts.head.byteLength && damage.byteOffset + damage.byteLength > facts.head.byteOffset;
      // Erasing the newest entries of the head (everything from some point to the end of its data) leaves
      // exactly what never writing them leaves: nothing can tell, so their numbers may be handed out again
      // and their loss goes unseen (docs/spec/outbox.md, "Known limits"). NOR bit rot does not erase; an
      // erase takes the whole sector.
      // The same for the whole head sector destroyed (garbage or erased): it reads as a cut opening of the sector
      // after the previous head (a torn erase or header write), which holds no record.
      const erasedTail =
        (damage.fill === 'erased' && inHead && damage.byteOffset > facts.head.byteOffset && damage.byteOffset + damage.byteLength >= facts.headDataEnd) ||
        (damage.kind === 'block' && inHead);
      const delivered = new Set<number>();
      let previous: number | undefined;
      let guard = 0;
      for (let record = outbox.peek(); record !== undefined; record = outbox.next()) {
        ok(++guard <= facts.records.size + 1, 'delivery does not end');
        const expected = facts.records.get(record.seq);
        ok(expected !== undefined, `delivered record ${record.seq}, never appended`);
        bytesEqual(record.payload, expected, `record ${record.seq}`);
        if (previous !== undefined) ok(seqDiff(record.seq, previous) > 0, `delivered ${record.seq} after ${previous}`);
        ok(seqDiff(record.seq, stats.ackSeq) >= 0, `delivered ${record.seq} below the ack point ${stats.ackSeq}`);
        previous = record.seq;
        delivered.add(record.seq);
      }
      // Appending continues. The first write after a boot checks the head's free space (recovery reads only
      // up to the first erased entry position), so an erased hole among the head's records is reported by then.
      const payload = Uint8Array.of(0xa5, 0x5a, 0x11);
      const seq = outbox.append(payload);
      if (!erasedTail) ok(seqDiff(seq, facts.nextSeq) >= 0, `append after damage returned ${seq}, a number already handed out (next was ${facts.nextSeq})`);
      const after = outbox.stats();
      const reported = after.corrupt + after.lost + after.torn + after.damagedSectors;
      const behind = seqDiff(facts.savedAck, after.ackSeq);
      if (behind > 0) {
        // The newest ack evidence lives in the head only (docs/spec/outbox.md, "Known limits"): damage there may
        // cost it, never silently, and never damage anywhere else.
        ok(inHead, `the saved ack point ${facts.savedAck} fell back to ${after.ackSeq} after damage outside the head sector`);
        if (!erasedTail) ok(reported > 0, `the saved ack point ${facts.savedAck} fell back to ${after.ackSeq} and nothing was reported`);
      }
      const ahead = seqDiff(after.ackSeq, facts.savedAck);
      if (ahead > 0) ok(after.dropped >= ahead, `the ack point moved ${ahead} past the saved ${facts.savedAck} with dropped ${after.dropped}`);
      let missing = 0;
      for (const seq of facts.records.keys()) if (seqDiff(seq, after.ackSeq) >= 0 && seqDiff(seq, facts.savedAck) >= 0 && !delivered.has(seq)) missing++;
      if (missing > 0 && !erasedTail) ok(reported + after.dropped > 0, `${missing} queued records not delivered and nothing reported`);
      // The record appended after the damage comes back after a reboot.
      const reopened = Outbox.open(flash, OPTIONS);
      let found = false;
      for (let record = reopened.peek(); record !== undefined && !found; record = reopened.next()) found = record.seq === seq;
      ok(found, `record ${seq} appended after the damage is not delivered after a reboot`);
      return 'recovered';
    },
  };
}

function damageCase(mode: FlashMode): FirmwareCase {
  return {
    name: `damage at every byte, unit, entry and sector: ${mode}`,
    run: () => ({ ...runDamageSuite(subject(mode)) }),
  };
}

function newerFormatCase(mode: FlashMode): FirmwareCase {
  return {
    name: `a sector of the next format in a populated ring is refused, never read as empty: ${mode}`,
    run() {
      let refused = 0;
      for (let index = 0; index < BLOCKS; index++) {
        const flash = new SimFlash({ blocks: BLOCKS, blockLength: BLOCK_LENGTH, mode });
        const outbox = Outbox.open(flash);
        for (let i = 0; i < 12; i++) outbox.append(payloadFor(i));
        flash.eraseBlock(index);
        const header = new Uint8Array(alignUp(HEADER_LENGTH, flash.writeAlign)).fill(0xff);
        header.set(encodeHeader({ version: OUTBOX_FORMAT_VERSION + 1, unitShift: Math.log2(flash.writeAlign), firstRecordOffset: header.length, sectorSeq: index + 1, firstRecordSeq: 0, ackSeq: 0, dropped: 0, eraseCount: 1 }));
        flash.write(index * BLOCK_LENGTH, header);
        try {
          Outbox.open(flash);
        } catch (error) {
          ok(isStorageError(error) && error.code === 'format-too-new', `sector ${index}: ${error instanceof Error ? error.message : String(error)}`);
          refused++;
          continue;
        }
        ok(false, `sector ${index} of format ${OUTBOX_FORMAT_VERSION + 1}: open did not refuse`);
      }
      return { refused };
    },
  };
}

export const suite: CaseSuite = {
  name: 'outbox damage',
  cases: (['plain', 'strict'] as const).flatMap((mode) => [damageCase(mode), newerFormatCase(mode)]),
};
