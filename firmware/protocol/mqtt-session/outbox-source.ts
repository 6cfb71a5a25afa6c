/**
 * The flash outbox as the session's RecordSource (docs/spec/mqtt-session.md):
 * the session asks for records by sequence number and acknowledges them
 * cumulatively, in order, once their PUBACKs arrived; the outbox keeps a
 * delivery cursor. `peekFrom(seq)` continues that cursor when asked for the
 * record after the last one it returned, and restarts from the oldest
 * unacknowledged record otherwise (a reconnect, a reboot), skipping what
 * lies before `seq`. No copies: the record is the outbox's.
 */
import type { Outbox } from '../../storage/outbox.ts';
import { seqAdd, seqDiff } from '../../base/seq.ts';
import type { RecordSource, SourceRecord } from './session.ts';

export class OutboxSource implements RecordSource {
  private last: number | undefined;

  constructor(private readonly outbox: Outbox) {}

  peekFrom(seq: number): SourceRecord | undefined {
    let record = this.last !== undefined && seqAdd(this.last, 1) === seq ? this.outbox.next() : this.outbox.peek();
    while (record !== undefined && seqDiff(record.seq, seq) < 0) record = this.outbox.next();
    if (record !== undefined) this.last = record.seq;
    return record;
  }

  /** Every record up to `uptoSeq` was acknowledged by the broker: it may leave flash. */
  ack(uptoSeq: number): void {
    this.outbox.ack(uptoSeq);
  }
}
