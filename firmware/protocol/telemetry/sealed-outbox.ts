/**
 * Sealed telemetry on the device (docs/spec/telemetry.md): every record is
 * sealed when it is appended, and the outbox keeps the sealed bytes.
 *
 * `SealedOutbox.append(payload)` takes one value of the persistent counter
 * (through `EnvelopeSealer`), seals the payload into an envelope (format
 * version, suite, key id, counter, payload, tag over all of it and the
 * device id; docs/spec/envelope.md) and appends the envelope to the outbox; it returns
 * once the append is durable. The bytes in flash are the bytes the session
 * sends (`OutboxSource` hands the outbox's records to the session
 * unchanged), so a resend, after any number of reboots, is byte-identical
 * and the receiver's window turns it into a duplicate.
 *
 * A power cut at any step leaves a skipped counter value at worst (a gap
 * the ingest sees), never two records with one counter value and never one
 * AEAD nonce twice: the counter never returns a value twice, and each append
 * takes exactly one.
 */
import type { Counter } from '../../storage/counter.ts';
import type { Outbox } from '../../storage/outbox.ts';
import { EnvelopeSealer } from '../../security/envelope.ts';
import { ENVELOPE_MAX_OVERHEAD, type TelemetrySuite } from '../../security/envelope-format.ts';
import type { DeviceKeys } from '../../security/envelope-keys.ts';
import type { EnvelopePrimitives } from '../../security/envelope-primitives.ts';

export interface SealedOutboxOptions {
  /** The telemetry outbox (its own partition). Nothing else may append to it: every record in it is an envelope. */
  readonly outbox: Outbox;
  /**
   * The persistent counter (its own partition) of this device and key id:
   * the envelope's counter and, for the AEAD suites, its nonce. One counter
   * per (device, key id) for good (docs/spec/envelope.md, "Nonce").
   */
  readonly counter: Counter;
  readonly primitives: EnvelopePrimitives;
  /** This device's keys for the key id in use (deriveDeviceKeys). */
  readonly keys: DeviceKeys;
  /** Default: hmac-sha256 (authenticated, payload in clear). */
  readonly suite?: TelemetrySuite;
}

/** What a durable append wrote. */
export interface SealedRecord {
  /** The outbox sequence number (delivery order). */
  readonly seq: number;
  /** The counter value sealed into the envelope (the receiver's replay-window input; the AEAD nonce). */
  readonly counter: number;
  /** The envelope: the bytes in flash and on the wire. */
  readonly envelope: Uint8Array;
}

export class SealedOutbox {
  readonly suite: TelemetrySuite;
  private readonly outbox: Outbox;
  private readonly sealer: EnvelopeSealer;

  constructor(options: SealedOutboxOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError('sealed outbox options must be an object');
    if (typeof options.outbox !== 'object' || options.outbox === null || typeof options.outbox.append !== 'function') throw new TypeError('outbox must be an Outbox');
    // The sealer checks the counter, keys, primitives and suite.
    this.sealer = new EnvelopeSealer({ primitives: options.primitives, keys: options.keys, counter: options.counter, suite: options.suite });
    this.suite = this.sealer.suite;
    this.outbox = options.outbox;
  }

  /** Largest payload `append` takes: the outbox's largest record minus the envelope's largest overhead (31 bytes: any key id, any counter). */
  get maxPayload(): number {
    return Math.max(0, this.outbox.maxPayload - ENVELOPE_MAX_OVERHEAD);
  }

  /**
   * Seal `payload` (0..maxPayload bytes) under the next counter value and
   * append the envelope; returns once the record is durable. Checks the
   * size before taking a counter value. Errors propagate: a power cut, the
   * counter's StorageError ('exhausted', damage), the sealer's
   * EnvelopeError, the outbox's StorageError ('full' under the reject
   * policy, damage). Whatever fails after the counter value was taken
   * leaves that value unused for good (a gap, never a reuse); a retry
   * seals again under a new value.
   */
  append(payload: Uint8Array): SealedRecord {
    if (!(payload instanceof Uint8Array)) throw new TypeError('payload must be a Uint8Array');
    const max = this.maxPayload;
    if (payload.length > max) throw new RangeError(`payload of ${payload.length} bytes: a sealed record on this outbox holds at most ${max}`);
    const envelope = this.sealer.seal(payload);
    const seq = this.outbox.append(envelope);
    return { seq, counter: this.sealer.lastCounter, envelope };
  }
}
