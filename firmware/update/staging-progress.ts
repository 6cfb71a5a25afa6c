/**
 * Durable progress of an image download into the inactive slot
 * (docs/spec/staging-progress.md), so a power cut costs at most one chunk
 * of re-transfer.
 *
 * A log of 16-byte entries (one strict-mode unit, written once) over a small
 * partition: BEGIN (the session's tag and image length), then one CHUNK
 * entry per chunk whose bytes are durable in the slot, then COMPLETE. A new
 * session erases the partition first. Recovery reads the log once: the last
 * valid entries of the newest session say where to resume. An entry torn by
 * a cut fails its CRC and is skipped; the next entry goes in the next slot.
 *
 * Fail closed: an entry whose CRC holds but which this firmware does not
 * understand (a newer format version, an unknown kind, nonzero reserved
 * bytes) is refused with a StorageError, never skipped, since skipping it
 * could lower the trial count; unreadable entries after the last TRIAL are
 * counted (`suspect`) so that a possibly lost TRIAL is reported.
 */
import type { FlashPartition } from '../hal/flash.ts';
import { crc32 } from '../base/crc32.ts';
import { FORMAT_VERSIONS } from '../base/format-versions.ts';
import { StorageError } from '../storage/errors.ts';

export const PROGRESS_ENTRY_LENGTH = 16;
/** Entries read per flash read at recovery (256 bytes). */
const RECOVERY_READ_ENTRIES = 16;

/**
 * Entry kinds (docs/spec/staging-progress.md). CONFIRMED was added to format
 * 1 before any release; an entry kind this firmware does not know is refused.
 */
export const ProgressKind = Object.freeze({ BEGIN: 1, CHUNK: 2, COMPLETE: 3, TRIAL: 4, REPORTED: 5, CONFIRMED: 6 });

/** A decoded entry, or 'torn' when its CRC fails (a cut, or damage). */
export type ProgressEntry = { readonly kind: number; readonly tag: number; readonly value: number } | 'torn';

export interface StagingSession {
  /** Identifies the download (derived from the manifest digest): progress of another image never counts. */
  tag: number;
  imageLength: number;
  /** Chunks durable in the slot, counted from 0 without gaps. */
  chunksDone: number;
  complete: boolean;
  /** Trial boots this image was selected for: the highest readable TRIAL. */
  trials: number;
  /**
   * Unreadable entries after the highest TRIAL (once the download read
   * complete). A cut never makes `trials` low (a torn TRIAL is appended
   * again before the image is selected), but damage to a durable TRIAL
   * could: each of these may have been one. The agent reports them.
   */
  suspect: number;
  /** Trials whose end without a commit has been reported (audit). */
  reported: number;
  /**
   * The update agent confirmed this image's latest trial after its health
   * checks (a CONFIRMED for trial `trials`; a later TRIAL makes it unconfirmed again).
   */
  confirmed: boolean;
}

export class StagingProgress {
  private nextSlot = 0;
  private current: StagingSession | undefined;
  private unreadableEntries = 0;
  private readonly slots: number;

  private constructor(private readonly flash: FlashPartition) {
    const status = flash.status();
    if (PROGRESS_ENTRY_LENGTH % status.writeAlign !== 0 || status.eraseValue !== 0xff) {
      throw new RangeError(`staging progress needs 16-byte writable units on NOR flash (writeAlign ${status.writeAlign})`);
    }
    this.slots = status.size / PROGRESS_ENTRY_LENGTH;
  }

  /** Read the log; never writes. Throws StorageError ('format-too-new', 'not-formatted') for an entry it cannot understand. */
  static open(flash: FlashPartition): StagingProgress {
    const progress = new StagingProgress(flash);
    progress.recover();
    return progress;
  }

  /** Most chunks a session can record in this partition. */
  get capacity(): number {
    return this.slots - 2;
  }

  /**
   * Non-blank entries that failed their CRC (torn by cuts, or damaged).
   * With no readable session this is the only trace of a destroyed one: the
   * agent reports it before starting over.
   */
  get unreadable(): number {
    return this.unreadableEntries;
  }

  /** The newest session on flash, if any. */
  session(): StagingSession | undefined {
    return this.current ? { ...this.current } : undefined;
  }

  /** Start a new session: erase the log, then record BEGIN. */
  begin(tag: number, imageLength: number): void {
    const { blocks } = this.flash.status();
    for (let block = 0; block < blocks; block++) this.flash.eraseBlock(block);
    this.nextSlot = 0;
    this.current = undefined;
    this.append(ProgressKind.BEGIN, tag, imageLength);
    this.current = newSession(tag, imageLength);
  }

  /** Record that chunk `index` (the next one) is durable in the slot. */
  chunkDone(index: number): void {
    const session = this.requireSession();
    if (index !== session.chunksDone) throw new RangeError(`chunk ${index} recorded out of order (next is ${session.chunksDone})`);
    this.append(ProgressKind.CHUNK, session.tag, index);
    session.chunksDone = index + 1;
  }

  /** Record that the whole image is written and verified. */
  markComplete(): void {
    const session = this.requireSession();
    this.append(ProgressKind.COMPLETE, session.tag, session.imageLength);
    session.complete = true;
  }

  /** Record that the complete image is being selected for one more trial boot. */
  recordTrial(): void {
    const session = this.requireSession();
    if (!session.complete) throw new Error('a trial needs a complete image');
    this.append(ProgressKind.TRIAL, session.tag, session.trials + 1);
    session.trials++;
  }

  /** Record that the end of trial `trial` without a commit was reported. */
  recordReported(trial: number): void {
    const session = this.requireSession();
    this.append(ProgressKind.REPORTED, session.tag, trial);
    session.reported = Math.max(session.reported, trial);
  }

  /** Record that the update agent confirms this session's latest trial (its health checks passed; written before VALID). */
  recordConfirmed(): void {
    const session = this.requireSession();
    if (!session.complete) throw new Error('only a complete image can be confirmed');
    this.append(ProgressKind.CONFIRMED, session.tag, session.trials);
    session.confirmed = true;
  }

  private requireSession(): StagingSession {
    if (!this.current) throw new Error('no staging session: call begin() first');
    return this.current;
  }

  private append(kind: number, tag: number, value: number): void {
    if (this.nextSlot >= this.slots) throw new RangeError(`staging progress log full (${this.slots} entries)`);
    this.flash.write(this.nextSlot * PROGRESS_ENTRY_LENGTH, encodeProgressEntry(kind, tag, value));
    this.nextSlot++;
  }

  /**
   * Read every entry once, in order. Blank slots between written ones are a
   * hole (damage: appends are sequential and a cut that landed nothing
   * leaves the slot to be written again) and read as unreadable entries;
   * the next append goes after the last written slot.
   */
  private recover(): void {
    const chunk = new Uint8Array(PROGRESS_ENTRY_LENGTH * RECOVERY_READ_ENTRIES);
    let session: StagingSession | undefined;
    // Unreadable entries since the session's last TRIAL, once it read complete: any of them may have been a
    // TRIAL (a TRIAL is written only after a readable COMPLETE or TRIAL, never before).
    let unreadable = 0;
    // Unreadable entries since the last CONFIRMED: one may be a later TRIAL, so the confirmation no longer holds.
    let sinceConfirmed = 0;
    let maxTrial = 0;
    let blanks = 0;
    let lastWritten = -1;
    let confirmedTrial = 0;
    for (let first = 0; first < this.slots; first += RECOVERY_READ_ENTRIES) {
      const count = Math.min(RECOVERY_READ_ENTRIES, this.slots - first);
      this.flash.read(first * PROGRESS_ENTRY_LENGTH, chunk.subarray(0, count * PROGRESS_ENTRY_LENGTH));
      for (let i = 0; i < count; i++) {
        const slot = first + i;
        const entry = chunk.subarray(i * PROGRESS_ENTRY_LENGTH, (i + 1) * PROGRESS_ENTRY_LENGTH);
        if (entry.every((b) => b === 0xff)) {
          blanks++;
          continue;
        }
        // A hole before this entry: blank slots that were written once.
        this.unreadableEntries += blanks;
        if (session?.complete) unreadable += blanks;
        sinceConfirmed += blanks;
        blanks = 0;
        lastWritten = slot;
        const decoded = decodeProgressEntry(entry, slot);
        if (decoded === 'torn') {
          this.unreadableEntries++;
          if (session?.complete) unreadable++; // torn by a cut, or damaged: skipped, never rewritten
          sinceConfirmed++;
          continue;
        }
        if (decoded.kind === ProgressKind.BEGIN) {
          session = newSession(decoded.tag, decoded.value);
          unreadable = 0;
          maxTrial = 0;
          confirmedTrial = 0;
          continue;
        }
        if (!session && decoded.kind !== ProgressKind.CHUNK) {
          // A COMPLETE, TRIAL, REPORTED or CONFIRMED with no readable BEGIN before it: the BEGIN was
          // damaged. Keep the session (its trials count); the length is COMPLETE's, or unknown (0).
          session = newSession(decoded.tag, decoded.kind === ProgressKind.COMPLETE ? decoded.value : 0);
          session.complete = true;
          unreadable = 0;
          maxTrial = 0;
          confirmedTrial = 0;
        }
        if (!session || decoded.tag !== session.tag) continue;
        if (decoded.kind === ProgressKind.CHUNK) {
          if (decoded.value === session.chunksDone) session.chunksDone++;
          unreadable = 0;
        } else if (decoded.kind === ProgressKind.COMPLETE) {
          session.complete = true;
          if (session.imageLength === 0) session.imageLength = decoded.value;
        } else if (decoded.kind === ProgressKind.TRIAL) {
          // A TRIAL is written only for a complete image: it proves completeness even if COMPLETE was lost.
          session.complete = true;
          if (decoded.value >= maxTrial) unreadable = 0;
          maxTrial = Math.max(maxTrial, decoded.value);
        } else if (decoded.kind === ProgressKind.REPORTED) session.reported = Math.max(session.reported, decoded.value);
        else if (decoded.kind === ProgressKind.CONFIRMED) {
          confirmedTrial = Math.max(confirmedTrial, decoded.value);
          sinceConfirmed = 0;
        }
      }
    }
    this.nextSlot = lastWritten + 1;
    if (session) {
      session.trials = maxTrial;
      session.suspect = unreadable;
      // Confirmed only for the latest trial: an unreadable entry after it may be a newer TRIAL.
      session.confirmed = confirmedTrial > 0 && confirmedTrial >= maxTrial && sinceConfirmed === 0;
    }
    this.current = session;
  }
}

function newSession(tag: number, imageLength: number): StagingSession {
  return { tag, imageLength, chunksDone: 0, complete: false, trials: 0, suspect: 0, reported: 0, confirmed: false };
}

export function encodeProgressEntry(kind: number, tag: number, value: number): Uint8Array {
  const out = new Uint8Array(PROGRESS_ENTRY_LENGTH);
  const view = new DataView(out.buffer);
  out[0] = FORMAT_VERSIONS.stagingProgress;
  out[1] = kind;
  view.setUint32(4, tag >>> 0, true);
  view.setUint32(8, value >>> 0, true);
  view.setUint32(12, crc32(out, 0, 12), true);
  return out;
}

/**
 * Decode one entry: 'torn' when the CRC fails (a cut or damage: the caller
 * skips it). An entry whose CRC holds but which is not this format (a newer
 * version, an unknown kind, nonzero reserved bytes) throws StorageError:
 * skipping it could hide a trial. `slot` names the entry in the message.
 */
export function decodeProgressEntry(entry: Uint8Array, slot = 0): ProgressEntry {
  const view = new DataView(entry.buffer, entry.byteOffset, PROGRESS_ENTRY_LENGTH);
  if (view.getUint32(12, true) !== crc32(entry, 0, 12)) return 'torn';
  const version = entry[0];
  if (version > FORMAT_VERSIONS.stagingProgress) {
    throw new StorageError('format-too-new', `staging progress entry ${slot} has format ${version}; this firmware reads format ${FORMAT_VERSIONS.stagingProgress}: refusing rather than losing its trial count`);
  }
  const kind = entry[1];
  if (version !== FORMAT_VERSIONS.stagingProgress || entry[2] !== 0 || entry[3] !== 0 || kind < ProgressKind.BEGIN || kind > ProgressKind.CONFIRMED) {
    throw new StorageError('not-formatted', `staging progress entry ${slot} (format ${version}, kind ${kind}) is not a format-${FORMAT_VERSIONS.stagingProgress} entry although its CRC holds`);
  }
  return { kind, tag: view.getUint32(4, true), value: view.getUint32(8, true) };
}
