/**
 * The runtime's inbox: command and update messages that arrived on the
 * device's topics wait here, in arrival order, until the cooperative
 * scheduler hands them to their handlers (those queued when the inbox's
 * turn comes, oldest first), instead of being
 * handled inside the MQTT socket callback (docs/spec/boot-sequence.md,
 * "Messages"). Handling writes flash (the replay store, the command journal,
 * staging) and may restart the device (the last chunk of an update), which
 * must not happen inside a network callback.
 *
 * Bounded twice: at most `capacity` messages and `maxBytes` payload bytes
 * held at once (each payload is copied: the MQTT client may reuse its
 * receive buffer). A message that does not fit is dropped and counted per
 * channel; nothing grows without bound. A dropped command gets no answer
 * (the cloud sends it again); a dropped update chunk is asked for again
 * after the request retry period.
 */

/** Commands, update messages, and the fleet's revocation list (counted with the update messages when dropped). */
export type InboxChannel = 'command' | 'update' | 'revocation';

export interface InboxOptions {
  /** Messages held at most (default 8). */
  readonly capacity?: number;
  /** Payload bytes held at most (default 16 KiB). */
  readonly maxBytes?: number;
}

export interface InboxMessage {
  readonly channel: InboxChannel;
  readonly payload: Uint8Array;
}

export interface InboxStats {
  readonly queued: number;
  readonly queuedBytes: number;
  readonly capacity: number;
  readonly maxBytes: number;
  /** Messages taken in, and handed out, since boot. */
  readonly accepted: number;
  readonly handled: number;
  /** Messages dropped because the inbox was full, by channel, since boot. */
  readonly droppedCommands: number;
  readonly droppedUpdates: number;
  /** Most messages held at once. */
  readonly highWater: number;
}

export const DEFAULT_INBOX_CAPACITY = 8;
export const DEFAULT_INBOX_MAX_BYTES = 16_384;

export class Inbox {
  private readonly capacity: number;
  private readonly maxBytes: number;
  /** A ring of `capacity` slots. */
  private readonly slots: (InboxMessage | undefined)[];
  private head = 0;
  private count = 0;
  private bytes = 0;
  private accepted = 0;
  private handled = 0;
  private droppedCommands = 0;
  private droppedUpdates = 0;
  private highWater = 0;

  constructor(options: InboxOptions = {}) {
    const capacity = options.capacity ?? DEFAULT_INBOX_CAPACITY;
    const maxBytes = options.maxBytes ?? DEFAULT_INBOX_MAX_BYTES;
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 256) throw new RangeError(`inbox capacity must be an integer in 1..256, got ${capacity}`);
    if (!Number.isInteger(maxBytes) || maxBytes < 1) throw new RangeError(`inbox maxBytes must be a positive integer, got ${maxBytes}`);
    this.capacity = capacity;
    this.maxBytes = maxBytes;
    this.slots = new Array<InboxMessage | undefined>(capacity).fill(undefined);
  }

  get length(): number {
    return this.count;
  }

  /** Take a copy of `payload` in; false (counted) when it does not fit. */
  push(channel: InboxChannel, payload: Uint8Array): boolean {
    if (this.count === this.capacity || this.bytes + payload.length > this.maxBytes) {
      if (channel === 'command') this.droppedCommands++;
      else this.droppedUpdates++;
      return false;
    }
    this.slots[(this.head + this.count) % this.capacity] = { channel, payload: payload.slice() };
    this.count++;
    this.bytes += payload.length;
    this.accepted++;
    if (this.count > this.highWater) this.highWater = this.count;
    return true;
  }

  /** The oldest message, removed; undefined when empty. */
  shift(): InboxMessage | undefined {
    if (this.count === 0) return undefined;
    const message = this.slots[this.head] as InboxMessage;
    this.slots[this.head] = undefined;
    this.head = (this.head + 1) % this.capacity;
    this.count--;
    this.bytes -= message.payload.length;
    this.handled++;
    return message;
  }

  /** Messages dropped so far (both channels). */
  dropped(): number {
    return this.droppedCommands + this.droppedUpdates;
  }

  stats(): InboxStats {
    return {
      queued: this.count,
      queuedBytes: this.bytes,
      capacity: this.capacity,
      maxBytes: this.maxBytes,
      accepted: this.accepted,
      handled: this.handled,
      droppedCommands: this.droppedCommands,
      droppedUpdates: this.droppedUpdates,
      highWater: this.highWater,
    };
  }
}
