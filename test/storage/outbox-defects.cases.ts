/**
 * Outbox regressions from issue 15, one case per defect, in Node and in XS.
 * Each reproduces the exact fault sequence of the issue with a wrapper that
 * tears one chosen write after a chosen number of bytes (or cuts right after
 * an erase), so the case does not depend on the runner's random tears.
 */
import { Outbox, type OutboxStats } from '../../firmware/storage/outbox.ts';
import { entryLength, makeLayout } from '../../firmware/storage/outbox-format.ts';
import type { FlashPartition, FlashStatus } from '../../firmware/hal/flash.ts';
import type { CaseSuite, CaseEnv } from '../support/cases.ts';
import { equal, ok } from '../support/check.ts';
import { replayCuts } from '../../tools/sim/power-cut.ts';
import type { CutPlan, FlashMode } from '../../tools/sim/flash/sim-flash.ts';
import { workloads } from './outbox.cases.ts';
import { outboxScenario } from './outbox-model.ts';
import { setErrorName } from '../../firmware/base/error-name.ts';

/** Thrown by TearingFlash where the power goes. */
class SimulatedCut extends Error {
  constructor() {
    super('simulated power cut');
    setErrorName(this, 'SimulatedCut');
  }
}

/**
 * A flash that tears the next write after `keep` bytes (the rest stays as
 * it was: a prefix tear), or cuts right after the next erase completed.
 * Counts erases per block, independently of anything the outbox records.
 */
class TearingFlash implements FlashPartition {
  private tearWriteAfter: number | undefined;
  private cutAfterErase = false;
  readonly erasesPerBlock: number[];

  constructor(readonly inner: FlashPartition) {
    this.erasesPerBlock = new Array<number>(inner.status().blocks).fill(0);
  }

  status(): FlashStatus {
    return this.inner.status();
  }

  read(byteOffset: number, target: Uint8Array): void {
    this.inner.read(byteOffset, target);
  }

  write(byteOffset: number, data: Uint8Array): void {
    const keep = this.tearWriteAfter;
    if (keep === undefined) {
      this.inner.write(byteOffset, data);
      return;
    }
    this.tearWriteAfter = undefined;
    if (keep > 0) this.inner.write(byteOffset, data.subarray(0, keep));
    throw new SimulatedCut();
  }

  eraseBlock(block: number): void {
    this.inner.eraseBlock(block);
    this.erasesPerBlock[block]++;
    if (this.cutAfterErase) {
      this.cutAfterErase = false;
      throw new SimulatedCut();
    }
  }

  tearNextWrite(keep: number): void {
    this.tearWriteAfter = keep;
  }

  cutNextErase(): void {
    this.cutAfterErase = true;
  }
}

function cut(run: () => unknown, what: string): void {
  try {
    run();
  } catch (error) {
    if (error instanceof Error && error.name === 'SimulatedCut') return;
    throw error;
  }
  throw new Error(`${what}: the planned cut did not strike`);
}

function payload(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let x = (seed * 2_654_435_761 + 12_345) >>> 0;
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1_103_515_245) + 12_345) >>> 0;
    bytes[i] = x >>> 24;
  }
  return bytes;
}

function flashOf(env: CaseEnv, blocks: number, blockLength: number, mode: 'plain' | 'strict' = 'plain'): TearingFlash {
  return new TearingFlash(env.createFlash({ blocks, blockLength, mode }));
}

/** Read every queued record twice (two peek passes) and return the stats after each pass. */
function twoPasses(outbox: Outbox): [OutboxStats, OutboxStats] {
  const passes: OutboxStats[] = [];
  for (let pass = 0; pass < 2; pass++) {
    for (let record = outbox.peek(); record !== undefined; record = outbox.next());
    passes.push(outbox.stats());
  }
  return [passes[0], passes[1]];
}

export const suite: CaseSuite = {
  name: 'outbox defects (issue 15)',
  cases: [
    {
      // Found by the runner's second cuts (exhaustive tier): a torn number between the ack point and the
      // oldest sector's end, with nothing deliverable after it, made policy reject refuse every append for good.
      name: 'policy reject never blocks for good on numbers that hold no deliverable record (double cuts)',
      run(env) {
        const report: Record<string, number> = {};
        const replays: [FlashMode, CutPlan[]][] = [
          ['plain', [{ atOperation: 20, seed: 3542859091, tear: 'bit-subset' }, { atOperation: 2, seed: 624858844, tear: 'bit-subset' }]],
          ['strict', [{ atOperation: 26, seed: 1769619628, tear: 'prefix' }, { atOperation: 2, seed: 1182445665, tear: 'bit-subset' }]],
        ];
        for (const [mode, plans] of replays) {
          const workload = workloads(mode).find((w) => w.name === 'full-reject')!;
          report[mode] = replayCuts(outboxScenario(workload), plans, { createFlash: env.createFlash }).boots;
        }
        return report;
      },
    },
    {
      // Issue 15, defect 9.
      name: 'acks reported as saved survive two torn flushes of a later ack',
      run(env) {
        const flash = flashOf(env, 2, 512);
        let outbox = Outbox.open(flash, { maxUnpersistedAcks: 0 });
        for (let i = 0; i < 4; i++) outbox.append(payload(20, i));
        outbox.ack(0);
        outbox.ack(1);
        equal(outbox.stats().unpersistedAcks, 0, 'acks 0 and 1 reported as saved');
        for (let attempt = 0; attempt < 2; attempt++) {
          flash.tearNextWrite(3);
          cut(() => outbox.ack(2), `flush of ack(2), attempt ${attempt + 1}`);
          outbox = Outbox.open(flash, { maxUnpersistedAcks: 0 });
          ok(outbox.stats().ackSeq >= 2, `after torn flush ${attempt + 1} the ack point fell back to ${outbox.stats().ackSeq} (acks up to 1 were saved)`);
          equal(outbox.peek()?.seq, 2, `after torn flush ${attempt + 1}, the oldest record delivered`);
        }
        return { ackSeq: outbox.stats().ackSeq };
      },
    },
    {
      // The same with many torn flushes in a row: no number of torn ack entries hides an older saved one.
      name: 'acks reported as saved survive six torn flushes of a later ack (strict and plain)',
      run(env) {
        const report: Record<string, number> = {};
        for (const mode of ['plain', 'strict'] as const) {
          const flash = flashOf(env, 2, 1024, mode);
          let outbox = Outbox.open(flash, { maxUnpersistedAcks: 0 });
          for (let i = 0; i < 6; i++) outbox.append(payload(20, i));
          outbox.ack(2);
          for (let attempt = 0; attempt < 6; attempt++) {
            flash.tearNextWrite(mode === 'plain' ? 3 + attempt : 0);
            cut(() => outbox.ack(4), `flush of ack(4), attempt ${attempt + 1}`);
            outbox = Outbox.open(flash, { maxUnpersistedAcks: 0 });
            ok(outbox.stats().ackSeq >= 3, `${mode}: after torn flush ${attempt + 1} the ack point fell back to ${outbox.stats().ackSeq}`);
          }
          report[mode] = outbox.stats().ackSeq;
        }
        return report;
      },
    },
    {
      // Issue 15, defect 10.
      name: 'the persistent dropped count never goes backwards after a drop found at recovery',
      run(env) {
        const flash = flashOf(env, 2, 128);
        let outbox = Outbox.open(flash, { maxUnpersistedAcks: 0 });
        let i = 0;
        while (outbox.stats().usedSectors < 2 || outbox.stats().nextSeq < 8) outbox.append(payload(16, i++));
        // Fill the head until the next append must reclaim the oldest sector; cut right after that erase.
        flash.cutNextErase();
        cut(() => {
          for (;;) outbox.append(payload(16, i++));
        }, 'reclaim erase');
        outbox = Outbox.open(flash, { maxUnpersistedAcks: 0 });
        const dropped = outbox.stats().dropped;
        ok(dropped > 0, `records of the erased sector counted as dropped (got ${dropped})`);
        const oldest = outbox.peek();
        ok(oldest !== undefined, 'a record is left to acknowledge');
        outbox.ack(oldest.seq);
        equal(outbox.stats().dropped, dropped, 'dropped after the ack');
        outbox = Outbox.open(flash, { maxUnpersistedAcks: 0 });
        equal(outbox.stats().dropped, dropped, 'dropped after a clean reboot');
        outbox.append(payload(16, i++));
        outbox = Outbox.open(flash, { maxUnpersistedAcks: 0 });
        equal(outbox.stats().dropped, dropped, 'dropped after an append and another reboot');
        return { dropped };
      },
    },
    {
      // Issue 15, defect 11 (plain): the data area of sector 0 ends exactly at its end.
      name: 'no damage reported when a sector stream ends exactly at its end (plain 3×128)',
      run(env) {
        const flash = flashOf(env, 3, 128);
        const layout = makeLayout(128, 1);
        const stream = layout.closeStart - layout.dataStart;
        const first = 40;
        const second = stream - entryLength(first, false, 1) - entryLength(0, false, 1);
        const outbox = Outbox.open(flash);
        outbox.append(payload(first, 1));
        outbox.append(payload(second, 2));
        outbox.append(payload(10, 3));
        const [a, b] = twoPasses(outbox);
        equal(a.damagedSectors, 0, 'damagedSectors after one pass');
        equal(b.damagedSectors, 0, 'damagedSectors after two passes');
        const reopened = Outbox.open(flash);
        const [c] = twoPasses(reopened);
        equal(c.damagedSectors, 0, 'damagedSectors after a reboot');
        ok(reopened.eraseCounts().every((count, index) => count === -1 || count === flash.erasesPerBlock[index]), `erase counts ${reopened.eraseCounts()} against ${flash.erasesPerBlock}`);
        return { second };
      },
    },
    {
      // Issue 15, defect 11 (strict): 16-byte records, many sector ends crossed cleanly.
      name: 'no damage reported over a wrapping strict ring of 16-byte records',
      run(env) {
        const flash = flashOf(env, 4, 512, 'strict');
        const outbox = Outbox.open(flash);
        let damage = 0;
        for (let i = 0; i < 400; i++) {
          const seq = outbox.append(payload(16, i));
          if (i % 10 === 9) {
            for (let record = outbox.peek(); record !== undefined; record = outbox.next());
            damage = outbox.stats().damagedSectors;
            outbox.ack(seq - 3);
          }
        }
        equal(damage, 0, 'damagedSectors in one boot');
        const [a] = twoPasses(Outbox.open(flash));
        equal(a.damagedSectors, 0, 'damagedSectors after a reboot');
        equal(a.corrupt + a.lost + a.torn, 0, 'corrupt + lost + torn');
      },
    },
    {
      // Issue 15, defect 8: the header's eraseCount is the sector's real erase count.
      name: 'eraseCount in each sector header equals the erases the flash counted for it',
      run(env) {
        const report: Record<string, string> = {};
        for (const mode of ['plain', 'strict'] as const) {
          const flash = flashOf(env, 5, 512, mode);
          const outbox = Outbox.open(flash);
          for (let i = 0; i < 300; i++) {
            const seq = outbox.append(payload(10 + ((i * 7) % 50), i));
            if (i % 5 === 4) outbox.ack(seq);
          }
          const counts = Outbox.open(flash).eraseCounts();
          equal(counts.join(','), flash.erasesPerBlock.join(','), `${mode}: erase counts in the headers against the flash's own count`);
          report[mode] = counts.join(',');
        }
        return report;
      },
    },
    {
      // Issue 15, defect 12: a prefix tear of a 154-byte entry whose 0xFF tail matched the entry's CRC-16.
      name: 'a torn record whose erased tail matched a 16-bit check is not delivered',
      run(env) {
        const flash = flashOf(env, 2, 512);
        let outbox = Outbox.open(flash);
        outbox.append(payload(20, 7));
        // Found by search against format 1 (any position: the CRC is linear): record 1, payload(150, 530), torn after 80 of its 154 bytes.
        flash.tearNextWrite(80);
        cut(() => outbox.append(payload(150, 530)), 'append of the record to tear');
        outbox = Outbox.open(flash);
        equal(outbox.peek()?.seq, 0, 'the record before it');
        equal(outbox.next(), undefined, 'a torn record delivered as intact');
        equal(outbox.stats().torn, 1, 'torn');
      },
    },
    {
      // Issue 15, defect 13: a torn record that is no longer the newest is counted once per boot.
      name: 'corrupt and lost count each damaged record once per boot, however many peek passes',
      run(env) {
        const flash = flashOf(env, 3, 512);
        let outbox = Outbox.open(flash);
        outbox.append(payload(30, 0));
        flash.tearNextWrite(20); // word and CRC land, payload torn: the entry can be stepped over
        cut(() => outbox.append(payload(30, 1)), 'append of the record to tear');
        outbox = Outbox.open(flash);
        outbox.append(payload(30, 2));
        flash.tearNextWrite(1); // one byte of the word: the chain breaks, the sector is sealed
        cut(() => outbox.append(payload(30, 3)), 'append of the record whose word tears');
        outbox = Outbox.open(flash);
        outbox.append(payload(30, 4));
        outbox.append(payload(30, 5));
        outbox = Outbox.open(flash);
        const [a, b] = twoPasses(outbox);
        equal(a.corrupt, 1, 'corrupt after one pass');
        equal(a.lost, 1, 'lost after one pass');
        equal(b.corrupt, a.corrupt, 'corrupt after a second pass');
        equal(b.lost, a.lost, 'lost after a second pass');
        return { corrupt: b.corrupt, lost: b.lost };
      },
    },
  ],
};
