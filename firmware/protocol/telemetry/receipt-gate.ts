/**
 * The receipt gate (docs/spec/receipt.md, "The device: the receipt gate"):
 * the session's RecordSource over the sealed telemetry outbox, under which a
 * record leaves flash only when an authenticated receipt from the ingest
 * covers its counter. The broker's PUBACK (the session's `ack`) only frees
 * the MQTT flow-control slot and marks the record "brokered".
 *
 * - `peekFrom` / `ack`: the session's side. The gate hands records out under
 *   its own sequence numbers (one per send, so a record can be sent again
 *   without the session going back), and `ack(upto)` marks what the broker
 *   took; the outbox is never acknowledged from here.
 * - `onReceipt(bytes)`: verify (openReceipt), then acknowledge the outbox up
 *   to the last record, from the oldest, that the receipt covers.
 * - Hold-back: no record is handed out while its counter is ≥ the oldest
 *   unreceipted record's counter + W − 1, so the ingest's window can never
 *   move past a record the device still holds.
 * - Resend: on every new connection, and after `receiptTimeoutMs` without
 *   receipt progress while sent records wait, everything unreceipted is
 *   handed out again from the oldest (except what the session still holds).
 * - Never stuck silently: the oldest record sent 1 + `maxResends` times
 *   without a receipt is reported (`unreceipted`); policy `keep` (default)
 *   keeps sending it, `drop` releases it (`dropped-unreceipted`).
 *
 * RAM: O(maxInFlight) (what the session holds), one receipt (136 bytes),
 * one look-ahead record; never O(records queued). All of it is lost at a
 * reboot, on purpose: the outbox's ack point, moved only by verified
 * receipts, is the whole durable state, and everything after it is sent
 * again.
 */
import type { Outbox, OutboxRecord } from '../../storage/outbox.ts';
import { elapsedMs } from '../../base/ticks.ts';
import { seqAdd, seqDiff } from '../../base/seq.ts';
import { peekHeader } from '../../security/envelope-format.ts';
import type { DeviceKeys } from '../../security/envelope-keys.ts';
import { openReceipt, RECEIPT_WINDOW_BITS, ReceiptError, type OpenedReceipt, type ReceiptErrorCode, type ReceiptMac } from '../../security/receipt.ts';
import type { RecordSource, SourceRecord } from '../mqtt-session/session.ts';

/** What to do with the oldest record once it was sent 1 + maxResends times without a receipt. */
export type UnreceiptedPolicy = 'keep' | 'drop';

export interface ReceiptGateOptions {
  /** The sealed telemetry outbox (every record an envelope: SealedOutbox). The gate is its only reader and the only one to acknowledge it. */
  readonly outbox: Outbox;
  /** This device's keys (their receipt key, device id and key id). */
  readonly keys: DeviceKeys;
  /** HMAC-SHA-256: the Crypto HAL or envelopePrimitives(crypto). */
  readonly mac: ReceiptMac;
  /** No receipt progress for this long while sent records wait → send them again (default 30,000 ms). */
  readonly receiptTimeoutMs?: number;
  /** Resends of the oldest record before it is reported (default 8). */
  readonly maxResends?: number;
  /** Default 'keep' (docs/spec/receipt.md, "Never stuck silently"). */
  readonly unreceiptedPolicy?: UnreceiptedPolicy;
  readonly onEvent?: (event: ReceiptGateEvent) => void;
}

export type ReceiptGateEvent =
  /** A verified receipt released `released` records: the outbox is acknowledged up to `uptoSeq`. */
  | { readonly kind: 'receipt'; readonly highest: number; readonly released: number; readonly uptoSeq: number }
  /** A verified receipt that released nothing (old, replayed, or the oldest record not covered yet). */
  | { readonly kind: 'receipt-no-progress'; readonly highest: number }
  /** Bytes on the receipt topic that are no receipt for this device: nothing changed. */
  | { readonly kind: 'receipt-refused'; readonly code: ReceiptErrorCode }
  /** Unreceipted records are handed out again from the oldest (`fromSeq`, an outbox sequence number). */
  | { readonly kind: 'resend'; readonly reason: 'connection' | 'timeout'; readonly fromSeq: number }
  /** The next record waits: its counter is ≥ the oldest unreceipted record's + W − 1. Once per oldest record. */
  | { readonly kind: 'held-back'; readonly seq: number; readonly counter: number; readonly oldestCounter: number }
  /** The oldest record was sent `sends` times without a receipt (policy keep: it stays and is sent again). */
  | { readonly kind: 'unreceipted'; readonly seq: number; readonly counter: number; readonly sends: number }
  /** Policy drop: the oldest record left flash without a receipt, after `sends` sends. The audit log must record it. */
  | { readonly kind: 'dropped-unreceipted'; readonly seq: number; readonly counter: number; readonly sends: number };

export interface ReceiptGateStats {
  /** Records handed to the session (first sends and resends). */
  handedOut: number;
  /** Handed out again (a resend pass). */
  resent: number;
  /** Records the broker acknowledged (PUBACK, in order). */
  brokered: number;
  receipts: number;
  refusedReceipts: number;
  /** Records released from flash by receipts. */
  released: number;
  resendPasses: number;
  heldBack: number;
  unreceipted: number;
  droppedUnreceipted: number;
  /** Outbox flushes the gate asked for so that released records could not come back below the ingest's window after a reboot. */
  ackFlushes: number;
}

/** Default `receiptTimeoutMs`. */
export const DEFAULT_RECEIPT_TIMEOUT_MS = 30_000;
/** Default `maxResends`. */
export const DEFAULT_MAX_RESENDS = 8;

/** A record the session holds: handed out under `vseq`, not yet PUBACKed in order. */
interface Held {
  readonly vseq: number;
  readonly seq: number;
}

/** The oldest record not yet released (the outbox's oldest unacknowledged record). */
interface Head {
  readonly seq: number;
  readonly counter: number;
  /** Times it was handed out this boot. */
  sends: number;
  heldBackReported: boolean;
}

/** The counter sealed in a record (NaN when the record is not a well-formed envelope: never covered, never holds back). */
export function recordCounter(payload: Uint8Array): number {
  const header = peekHeader(payload);
  return header === undefined ? Number.NaN : header.counter;
}

export class ReceiptGate implements RecordSource {
  private readonly outbox: Outbox;
  private readonly keys: DeviceKeys;
  private readonly mac: ReceiptMac;
  private readonly timeoutMs: number;
  private readonly maxResends: number;
  private readonly policy: UnreceiptedPolicy;
  private readonly emit: (event: ReceiptGateEvent) => void;
  private held: Held[] = [];
  private head: Head | undefined;
  /** The outbox's ack point when `head` was read. */
  private headAckSeq = -1;
  /** Outbox sequence number of the next record to hand out (undefined: from the oldest). */
  private sendSeq: number | undefined;
  /** One past the newest outbox record handed out this boot (undefined: none yet): below it, a hand-out is a resend. */
  private highWater: number | undefined;
  /** The outbox's own cursor is positioned for `next()` to continue from `lookahead` (false: start again with `peek()`). */
  private cursorOk = false;
  /** A record read from the outbox and not handed out yet (held back). */
  private lookahead: OutboxRecord | undefined;
  /** The verified receipt with the highest H seen this boot. */
  private best: OpenedReceipt | undefined;
  /**
   * The counter of the oldest record released whose ack is not on flash yet
   * (undefined: none). After a reboot it would be the oldest record again, so
   * hold-back must keep the ingest's window within reach of it too.
   */
  private floor: number | undefined;
  /** Since when sent records wait without receipt progress (undefined: not waiting, or not yet noticed by `tick`). */
  private waitingSince: number | undefined;
  private readonly counters: ReceiptGateStats = { handedOut: 0, resent: 0, brokered: 0, receipts: 0, refusedReceipts: 0, released: 0, resendPasses: 0, heldBack: 0, unreceipted: 0, droppedUnreceipted: 0, ackFlushes: 0 };

  constructor(options: ReceiptGateOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError('receipt gate options must be an object');
    if (typeof options.outbox !== 'object' || options.outbox === null || typeof options.outbox.peek !== 'function') throw new TypeError('outbox must be an Outbox');
    if (typeof options.keys !== 'object' || options.keys === null || !(options.keys.receipt instanceof Uint8Array)) throw new TypeError('keys must be DeviceKeys with a receipt key (deriveDeviceKeys)');
    if (typeof options.mac !== 'object' || options.mac === null || typeof options.mac.hmacSha256 !== 'function') throw new TypeError('mac must have hmacSha256');
    const timeoutMs = options.receiptTimeoutMs ?? DEFAULT_RECEIPT_TIMEOUT_MS;
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 0x7fff_ffff) throw new RangeError(`receiptTimeoutMs ${String(timeoutMs)} outside 1..2^31-1`);
    const maxResends = options.maxResends ?? DEFAULT_MAX_RESENDS;
    if (!Number.isInteger(maxResends) || maxResends < 0 || maxResends > 0xffff) throw new RangeError(`maxResends ${String(maxResends)} outside 0..65535`);
    const policy = options.unreceiptedPolicy ?? 'keep';
    if (policy !== 'keep' && policy !== 'drop') throw new RangeError(`unreceiptedPolicy ${String(policy)} is not keep or drop`);
    this.outbox = options.outbox;
    this.keys = options.keys;
    this.mac = options.mac;
    this.timeoutMs = timeoutMs;
    this.maxResends = maxResends;
    this.policy = policy;
    const onEvent = options.onEvent;
    this.emit = onEvent === undefined ? () => undefined : (event) => onEvent(event);
  }

  stats(): ReceiptGateStats {
    return { ...this.counters };
  }

  /** The oldest unreceipted record (outbox seq and counter), undefined when every record is released. */
  oldest(): { readonly seq: number; readonly counter: number; readonly sends: number } | undefined {
    this.refreshHead();
    const head = this.head;
    return head === undefined ? undefined : { seq: head.seq, counter: head.counter, sends: head.sends };
  }

  // ------------------------------------------------------------ session side

  /**
   * The next record to send, under the sequence number `seq` the session asks
   * for (MqttSession asks for one past the last it took, and takes every
   * record it is given). Undefined when nothing is due or the next record is
   * held back.
   */
  peekFrom(seq: number): SourceRecord | undefined {
    if (this.head === undefined) this.refreshHead();
    for (;;) {
      const record = this.fetch();
      if (record === undefined) return undefined;
      const counter = recordCounter(record.payload);
      const best = this.best;
      if (!this.isHeld(record.seq) && best !== undefined && best.covers(counter) && record.seq === this.head?.seq) {
        // The oldest record is one the ingest already has: it became the oldest without a receipt (the record before it
        // left by the outbox's full policy or the unreceipted drop policy). Release it now: skipped on every resend, it
        // would never be sent, so no receipt would ever come back for it.
        this.releaseCovered((c) => best.covers(c), best.highest);
        continue;
      }
      if (this.isHeld(record.seq) || (best !== undefined && best.covers(counter))) {
        // The session sends it already, or the ingest has it: skip.
        this.skip(record);
        continue;
      }
      const head = this.head;
      if (head !== undefined && record.seq !== head.seq && counter >= head.counter + RECEIPT_WINDOW_BITS - 1) {
        // Hold-back: sending it could move the ingest's window past the oldest record, which would then be stale forever.
        if (!head.heldBackReported) {
          head.heldBackReported = true;
          this.counters.heldBack += 1;
          this.emit({ kind: 'held-back', seq: record.seq, counter, oldestCounter: head.counter });
        }
        return undefined;
      }
      if (this.floor !== undefined && counter >= this.floor + RECEIPT_WINDOW_BITS - 1) {
        // Released records whose acks are not on flash yet would come back after a reboot, and this record could take the
        // ingest's window past them: write the acks first. If the outbox cannot write them now (a ring full of records), wait.
        if (!this.persistReleases()) return undefined;
        continue;
      }
      this.skip(record);
      if (head !== undefined && record.seq === head.seq) head.sends += 1;
      this.held.push({ vseq: seq, seq: record.seq });
      this.counters.handedOut += 1;
      if (this.highWater !== undefined && seqDiff(record.seq, this.highWater) < 0) this.counters.resent += 1;
      else this.highWater = seqAdd(record.seq, 1);
      return { seq, payload: record.payload };
    }
  }

  /** The broker PUBACKed every record the gate handed out up to `uptoSeq` (the gate's numbers): they are brokered, not released. */
  ack(uptoSeq: number): void {
    let count = 0;
    while (count < this.held.length && seqDiff(this.held[count].vseq, uptoSeq) <= 0) count++;
    if (count === 0) return;
    this.held = this.held.slice(count);
    this.counters.brokered += count;
  }

  // ------------------------------------------------------------ receipts and resends

  /**
   * Bytes from the receipt topic. Verified with `openReceipt` first; a
   * refusal changes nothing (event `receipt-refused`). A receipt then
   * releases, from the oldest, every record whose counter it covers, up to
   * the first it does not: the outbox is acknowledged up to there (the only
   * place the gate acknowledges it). Returns the number of records released.
   */
  onReceipt(bytes: Uint8Array): number {
    let receipt: OpenedReceipt;
    try {
      receipt = openReceipt(bytes, this.keys, this.mac);
    } catch (error) {
      if (!(error instanceof ReceiptError)) throw error;
      this.counters.refusedReceipts += 1;
      this.emit({ kind: 'receipt-refused', code: error.code });
      return 0;
    }
    this.counters.receipts += 1;
    if (this.best === undefined || receipt.highest >= this.best.highest) this.best = receipt;
    const released = this.releaseCovered((counter) => receipt.covers(counter), receipt.highest);
    if (released === 0) this.emit({ kind: 'receipt-no-progress', highest: receipt.highest });
    return released;
  }

  /**
   * Releases, from the oldest, every record `covers` accepts, up to the
   * first it does not; returns how many.
   */
  private releaseCovered(covers: (counter: number) => boolean, highest: number): number {
    let upto: number | undefined;
    let released = 0;
    let firstCounter = Number.NaN;
    this.invalidateCursor();
    for (let record = this.outbox.peek(); record !== undefined; record = this.outbox.next()) {
      const counter = recordCounter(record.payload);
      if (!covers(counter)) break;
      if (released === 0) firstCounter = counter;
      upto = record.seq;
      released += 1;
    }
    this.invalidateCursor();
    if (upto === undefined) return 0;
    this.releaseUpTo(upto, firstCounter);
    this.counters.released += released;
    this.waitingSince = undefined;
    this.refreshHead();
    this.emit({ kind: 'receipt', highest, released, uptoSeq: upto });
    return released;
  }

  /** A new connection is opening: everything unreceipted will be sent again, from the oldest (receipts for it may have been lost). */
  connectionOpened(): void {
    this.resend('connection');
  }

  /**
   * Time passed: after `receiptTimeoutMs` without receipt progress while sent
   * records wait, send them again. "Wait" means the oldest record was handed
   * out and the broker took it: while the session still holds it (no PUBACK
   * yet) no receipt can move past it, and only the session can send it again
   * (on the next connection, MQTT 5 §4.4), so the clock does not run.
   */
  tick(now: number): void {
    this.refreshHead();
    if (!this.waiting()) {
      this.waitingSince = undefined;
      return;
    }
    if (this.waitingSince === undefined) {
      this.waitingSince = now;
      return;
    }
    if (elapsedMs(this.waitingSince, now) >= this.timeoutMs) {
      this.waitingSince = now;
      this.resend('timeout');
    }
  }

  /** Milliseconds until `tick` has a resend to make (0: due); undefined when no sent record waits. */
  nextDueMs(now: number): number | undefined {
    if (!this.waiting()) return undefined;
    if (this.waitingSince === undefined) return 0;
    return Math.max(0, this.timeoutMs - elapsedMs(this.waitingSince, now));
  }

  /**
   * Acknowledge the outbox up to `upto` (whose oldest record carries
   * `firstCounter`), noting the counter of the oldest released record whose
   * ack is not on flash yet: after a reboot it would be back in the outbox.
   */
  private releaseUpTo(upto: number, firstCounter: number): void {
    const pendingBefore = this.outbox.stats().unpersistedAcks;
    this.outbox.ack(upto);
    if (this.outbox.stats().unpersistedAcks === 0) this.floor = undefined;
    else if (pendingBefore === 0 || this.floor === undefined) this.floor = firstCounter;
  }

  /**
   * Writes the pending acks (Outbox.flush) so released records cannot come
   * back after a reboot; true when none is pending any more. The outbox may
   * have to wait (a ring full of unacknowledged records): then false.
   */
  private persistReleases(): boolean {
    if (this.outbox.stats().unpersistedAcks > 0) {
      this.outbox.flush();
      this.invalidateCursor();
      this.counters.ackFlushes += 1;
    }
    if (this.outbox.stats().unpersistedAcks > 0) return false;
    this.floor = undefined;
    return true;
  }

  /** The oldest record was sent and brokered, and no receipt covers it yet. */
  private waiting(): boolean {
    const head = this.head;
    return head !== undefined && head.sends > 0 && !this.isHeld(head.seq);
  }

  private resend(reason: 'connection' | 'timeout'): void {
    this.refreshHead();
    let head = this.head;
    if (head === undefined) return;
    if (head.sends >= 1 + this.maxResends && !this.isHeld(head.seq)) {
      this.counters.unreceipted += 1;
      if (this.policy === 'drop') {
        // Released without a receipt: reported, and the audit log records it.
        this.releaseUpTo(head.seq, head.counter);
        this.counters.droppedUnreceipted += 1;
        this.emit({ kind: 'dropped-unreceipted', seq: head.seq, counter: head.counter, sends: head.sends });
        this.head = undefined;
        this.refreshHead();
        head = this.head;
        if (head === undefined) return;
      } else {
        this.emit({ kind: 'unreceipted', seq: head.seq, counter: head.counter, sends: head.sends });
      }
    }
    // Nothing from the oldest record on was handed out yet: nothing to send again.
    if (head.sends === 0) return;
    this.sendSeq = head.seq;
    this.invalidateCursor();
    this.counters.resendPasses += 1;
    this.emit({ kind: 'resend', reason, fromSeq: head.seq });
  }

  // ------------------------------------------------------------ outbox walking

  /** The first record at or after `sendSeq` (the look-ahead when it is still due). */
  private fetch(): OutboxRecord | undefined {
    const from = this.sendSeq;
    const ahead = this.lookahead;
    if (ahead !== undefined && (from === undefined || seqDiff(ahead.seq, from) >= 0)) return ahead;
    let record = this.cursorOk ? this.outbox.next() : this.outbox.peek();
    this.cursorOk = true;
    while (record !== undefined && from !== undefined && seqDiff(record.seq, from) < 0) record = this.outbox.next();
    this.lookahead = record;
    return record;
  }

  /** Done with `record` (handed out or skipped): continue after it. */
  private skip(record: OutboxRecord): void {
    this.sendSeq = seqAdd(record.seq, 1);
    this.lookahead = undefined;
  }

  private invalidateCursor(): void {
    this.cursorOk = false;
    this.lookahead = undefined;
  }

  private isHeld(seq: number): boolean {
    for (const h of this.held) if (h.seq === seq) return true;
    return false;
  }

  /** Re-reads the oldest record when the outbox's ack point moved (a receipt, or the full policy dropped records). */
  private refreshHead(): void {
    const ackSeq = this.outbox.stats().ackSeq;
    const head = this.head;
    if (head !== undefined && ackSeq === this.headAckSeq) return;
    this.invalidateCursor();
    const record = this.outbox.peek();
    this.invalidateCursor();
    this.headAckSeq = ackSeq;
    if (record === undefined) {
      this.head = undefined;
      return;
    }
    if (head !== undefined && head.seq === record.seq) return;
    const sendSeq = this.sendSeq;
    // A record below the high-water mark was handed out in this boot before it became the oldest: it counts as sent
    // once. Not the send cursor: a resend pass moves it back, and a record handed out before it (still in flight, or
    // lost on the way) would count as never sent: no receipt timeout and no resend would ever run for it.
    const highWater = this.highWater;
    const sentBefore = highWater !== undefined && seqDiff(highWater, record.seq) > 0;
    this.head = { seq: record.seq, counter: recordCounter(record.payload), sends: sentBefore ? 1 : 0, heldBackReported: false };
    if (sendSeq !== undefined && seqDiff(sendSeq, record.seq) < 0) this.sendSeq = record.seq;
  }
}
