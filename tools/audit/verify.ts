/**
 * Host verification of an audit log (docs/spec/audit-log.md,
 * "Verification"): a flash image of the audit partition or an export file.
 * Checks every entry's format and CRC, its tag under the audit key, the
 * hash chain (each prevHash is the hash of the entry before), that
 * counters increase and that each event body decodes; names the first
 * break (entry index, counter, what is wrong) and lists every problem.
 *
 * The input is attacker-controlled: every length is checked before use and
 * nothing is trusted before its tag checks.
 */
import type { Crypto } from '../../firmware/hal/crypto.ts';
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import {
  AUDIT_ENTRY_FIXED,
  AUDIT_FORMAT_VERSION,
  AUDIT_HASH_LENGTH,
  bytesEqual,
  entryHash,
  entryLength,
  readEntry,
  tagChecks,
  type AuditEntryRaw,
} from '../../firmware/storage/_audit-format.ts';
import { AuditDecodeError, auditKindOf, decodeAuditEvent, type AuditEvent } from '../../firmware/storage/_audit-events.ts';
import { orderRing, readHeaders, walkChain, type ChainBreak } from '../../firmware/storage/_audit-walk.ts';
import { EXPORT_HEADER_LENGTH, EXPORT_VERSION, isExport } from './export.ts';

/** What is wrong at a break. */
export type AuditProblem =
  /** Not an audit log of a format this verifier reads (header, magic, version). */
  | 'format'
  /** The export ends inside an entry, or holds fewer entries than its header says. */
  | 'truncated'
  /** Bytes after the last entry the export's header announces. */
  | 'trailing'
  /** The entry's bytes do not check (CRC-32, shape): changed or torn. */
  | 'unreadable'
  /** The entry's tag does not check under this key: forged, altered with its CRC fixed, or another key. */
  | 'tag'
  /** Its prevHash is not the hash of the entry before: an entry deleted, inserted or moved. */
  | 'chain'
  /** Its counter is not above the one before. */
  | 'counter'
  /** Its tag checks but its body does not decode as an event this verifier knows. */
  | 'event';

export interface AuditFinding {
  /** Index of the entry (0 = the first entry read); for 'trailing', the count of entries. */
  readonly index: number;
  /** Its counter, when its bytes give one. */
  readonly counter: number | null;
  /** Byte offset in the input (the partition for a flash image, the file for an export). */
  readonly byteOffset: number;
  readonly problem: AuditProblem;
  readonly message: string;
}

export interface AuditVerifiedEntry {
  readonly index: number;
  readonly counter: number;
  readonly kind: string;
  readonly event: AuditEvent | null;
  readonly tagOk: boolean;
}

export interface AuditVerifyResult {
  readonly ok: boolean;
  readonly source: 'flash-image' | 'export';
  readonly entries: number;
  readonly firstCounter: number | null;
  readonly lastCounter: number | null;
  /** The first entry's prevHash: 'genesis' (32 zero bytes: nothing was dropped before it) or its hex (entries before it were dropped). */
  readonly start: string | null;
  readonly firstBreak: AuditFinding | null;
  /** Every problem, in order (at most MAX_PROBLEMS). */
  readonly problems: AuditFinding[];
  /** Things that are not breaks: the torn newest entry of a flash image, torn appends the chain steps over. */
  readonly notes: string[];
  readonly events: AuditVerifiedEntry[];
}

export const MAX_PROBLEMS = 100;

interface Candidate {
  readonly entry: AuditEntryRaw | undefined;
  readonly byteOffset: number;
  /** A problem found before the entry's own checks (unreadable bytes, a break the flash walk saw). */
  readonly before: Omit<AuditFinding, 'index'>[];
}

/** Verify an export file (its bytes). */
export function verifyExport(crypto: Crypto, key: Uint8Array, bytes: Uint8Array): AuditVerifyResult {
  const problems: AuditFinding[] = [];
  if (!isExport(bytes) || bytes.length < EXPORT_HEADER_LENGTH) {
    return formatFailure('export', bytes.length < EXPORT_HEADER_LENGTH && isExport(bytes) ? 'the export ends inside its 16-byte header' : 'not an audit export (magic HFAUDEX1)');
  }
  if (bytes[8] !== EXPORT_VERSION) return formatFailure('export', `export version ${bytes[8]}; this verifier reads ${EXPORT_VERSION}`);
  if (bytes[9] !== 0 || bytes[10] !== 0 || bytes[11] !== 0) return formatFailure('export', 'export header bytes 9..11 are not zero');
  const announced = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(12, true);
  const candidates: Candidate[] = [];
  let at = EXPORT_HEADER_LENGTH;
  while (at < bytes.length && candidates.length < announced) {
    if (bytes.length - at < 4) {
      problems.push({ index: candidates.length, counter: null, byteOffset: at, problem: 'truncated', message: `the export ends ${bytes.length - at} bytes into entry ${candidates.length}` });
      at = bytes.length;
      break;
    }
    const bodyLength = bytes[at + 2];
    const length = entryLength(bodyLength);
    if (at + length > bytes.length) {
      problems.push({ index: candidates.length, counter: null, byteOffset: at, problem: 'truncated', message: `the export ends ${bytes.length - at} bytes into entry ${candidates.length} of ${length} bytes` });
      at = bytes.length;
      break;
    }
    const read = readEntry(bytes, at, at + length);
    if (read.state === 'entry') candidates.push({ entry: read.entry, byteOffset: at, before: [] });
    else {
      const reason = read.state === 'invalid' ? read.reason : read.state === 'newer' ? `entry format ${read.version}; this verifier reads ${AUDIT_FORMAT_VERSION}` : 'erased bytes';
      candidates.push({ entry: undefined, byteOffset: at, before: [{ counter: null, byteOffset: at, problem: read.state === 'newer' ? 'format' : 'unreadable', message: `entry bytes do not check: ${reason}` }] });
    }
    at += length;
  }
  const result = checkCandidates(crypto, key, candidates, 'export', []);
  const all = [...result.problems, ...problems];
  if (candidates.length < announced && problems.length === 0) {
    all.push({ index: candidates.length, counter: null, byteOffset: at, problem: 'truncated', message: `the export holds ${candidates.length} entries, its header announces ${announced}` });
  } else if (at < bytes.length) {
    all.push({ index: candidates.length, counter: null, byteOffset: at, problem: 'trailing', message: `${bytes.length - at} bytes after the ${announced} entries the header announces` });
  }
  return finish(result, all);
}

/** Verify the audit partition held by a flash (a decoded .hfimg). */
export function verifyFlash(crypto: Crypto, key: Uint8Array, flash: FlashPartition): AuditVerifyResult {
  const s = flash.status();
  const unitShift = Math.log2(s.writeAlign);
  if (s.blockLength % 16 !== 0 || s.blockLength < 512) return formatFailure('flash-image', `blocks of ${s.blockLength} bytes cannot hold an audit log`);
  const headers = readHeaders((o, t) => flash.read(o, t), s.blocks, s.blockLength);
  const r = orderRing(headers, unitShift);
  if (r.state === 'blank') return formatFailure('flash-image', 'the partition is blank');
  if (r.state === 'not-formatted') return formatFailure('flash-image', r.reason);
  if (r.state === 'newer') return formatFailure('flash-image', `block ${r.block} holds audit format ${r.version}; this verifier reads ${AUDIT_FORMAT_VERSION}`);
  const ring = r.ring;
  const readBlock = (index: number): Uint8Array => {
    const bytes = new Uint8Array(s.blockLength);
    flash.read(index * s.blockLength, bytes);
    return bytes;
  };
  const walk = walkChain(crypto, ring, readBlock, headers);
  if (walk.newer !== undefined) return formatFailure('flash-image', `block ${walk.newer.block} holds an entry of audit format ${walk.newer.version}; this verifier reads ${AUDIT_FORMAT_VERSION}`);
  // Each break is reported at the entry after it (or at the end).
  const candidates: Candidate[] = walk.entries.map((p) => ({ entry: p.entry, byteOffset: p.byteOffset, before: breaksAt(walk.breaks, p.byteOffset) }));
  const notes: string[] = [];
  if (walk.tornRegions > 0) notes.push(`${walk.tornRegions} torn append(s) stepped over: the chain continues across them, nothing is missing`);
  const headBytes = readBlock(ring.head);
  let end = headBytes.length;
  while (end > 0 && headBytes[end - 1] === 0xff) end--;
  const lastInHead = walk.entries.filter((p) => p.block === ring.head).pop();
  const headEnd = lastInHead !== undefined ? lastInHead.byteOffset - ring.head * s.blockLength + Math.ceil(lastInHead.entry.bytes.length / 16) * 16 : 96;
  if (end > headEnd) notes.push(`unreadable bytes at the end of the head block (offset ${ring.head * s.blockLength + headEnd}, ${end - headEnd} bytes): the newest append was cut (it never returned), or the newest entries were damaged; the device discards them`);
  if (ring.badHeaders.length > 0) notes.push(`block header(s) ${ring.badHeaders.join(', ')} torn or damaged (their entries are still read)`);
  const result = checkCandidates(crypto, key, candidates, 'flash-image', notes);
  const tailBreaks = walk.breaks.filter((b) => !walk.entries.some((p) => p.byteOffset === b.byteOffset));
  const extra: AuditFinding[] = tailBreaks
    .filter((b) => !candidates.some((c) => c.before.some((x) => x.byteOffset === b.byteOffset && x.message === b.message)))
    .map((b) => ({ index: indexAfter(walk.entries.map((p) => p.byteOffset), b.byteOffset), counter: b.counter ?? null, byteOffset: b.byteOffset, problem: problemOf(b), message: b.message }));
  return finish(result, [...result.problems, ...extra].sort((a, b) => a.index - b.index || a.byteOffset - b.byteOffset));
}

function breaksAt(breaks: readonly ChainBreak[], byteOffset: number): Omit<AuditFinding, 'index'>[] {
  return breaks.filter((b) => b.byteOffset === byteOffset && b.counter !== undefined).map((b) => ({ counter: b.counter ?? null, byteOffset: b.byteOffset, problem: problemOf(b), message: b.oldest ? `${b.message} (in the oldest block: a reclaim a cut interrupted leaves this too; look for its dropped-unacknowledged record)` : b.message }));
}

function problemOf(b: ChainBreak): AuditProblem {
  return b.reason === 'counter' ? 'counter' : b.reason === 'chain' ? 'chain' : 'unreadable';
}

function indexAfter(offsets: readonly number[], byteOffset: number): number {
  const i = offsets.findIndex((o) => o > byteOffset);
  return i < 0 ? offsets.length : i;
}

interface Checked {
  source: 'flash-image' | 'export';
  entries: number;
  firstCounter: number | null;
  lastCounter: number | null;
  start: string | null;
  problems: AuditFinding[];
  notes: string[];
  events: AuditVerifiedEntry[];
}

/**
 * The checks every entry gets, in order: readable, tag, chain, counter,
 * event. For a flash image the chain and counter breaks come from the
 * walk (it reads past unreadable bytes); for an export they are checked
 * here against the entry before.
 */
function checkCandidates(crypto: Crypto, key: Uint8Array, candidates: readonly Candidate[], source: 'flash-image' | 'export', notes: string[]): Checked {
  const problems: AuditFinding[] = [];
  const events: AuditVerifiedEntry[] = [];
  let previous: AuditEntryRaw | undefined;
  let previousHash: Uint8Array | undefined;
  let firstCounter: number | null = null;
  let lastCounter: number | null = null;
  let start: string | null = null;
  candidates.forEach((c, index) => {
    for (const b of c.before) problems.push({ index, ...b });
    const e = c.entry;
    if (e === undefined) {
      previous = undefined;
      previousHash = undefined;
      return;
    }
    const at = (problem: AuditProblem, message: string) => problems.push({ index, counter: e.counter, byteOffset: c.byteOffset, problem, message });
    const tagOk = tagChecks(crypto, key, e);
    if (!tagOk) at('tag', `the tag of entry ${index} (counter ${e.counter}) does not check under this key`);
    if (source === 'export') {
      if (previousHash !== undefined && !bytesEqual(e.prevHash, previousHash)) at('chain', `prevHash of entry ${index} (counter ${e.counter}) is not the hash of entry ${index - 1} (counter ${previous?.counter})`);
      if (previous !== undefined && e.counter <= previous.counter) at('counter', `counter ${e.counter} of entry ${index} is not above ${previous.counter}`);
      if (previous === undefined && index > 0) at('chain', `entry ${index} (counter ${e.counter}) follows unreadable bytes: the chain cannot be checked across them`);
    }
    let event: AuditEvent | null = null;
    try {
      event = decodeAuditEvent(e.kind, e.body);
    } catch (error) {
      if (!(error instanceof AuditDecodeError)) throw error;
      at('event', `entry ${index} (counter ${e.counter}): ${error.code}: ${error.message}`);
    }
    if (firstCounter === null) {
      firstCounter = e.counter;
      start = isZero(e.prevHash) ? 'genesis' : hex(e.prevHash);
    }
    lastCounter = e.counter;
    events.push({ index, counter: e.counter, kind: auditKindOf(e.kind) ?? `0x${e.kind.toString(16)}`, event, tagOk });
    previous = e;
    previousHash = entryHash(crypto, e.bytes);
  });
  return { source, entries: candidates.length, firstCounter, lastCounter, start, problems, notes, events };
}

function finish(p: Checked, problems: AuditFinding[]): AuditVerifyResult {
  return {
    ok: problems.length === 0,
    source: p.source,
    entries: p.entries,
    firstCounter: p.firstCounter,
    lastCounter: p.lastCounter,
    start: p.start,
    firstBreak: problems[0] ?? null,
    problems: problems.slice(0, MAX_PROBLEMS),
    notes: p.notes,
    events: p.events,
  };
}

function formatFailure(source: 'flash-image' | 'export', message: string): AuditVerifyResult {
  const finding: AuditFinding = { index: 0, counter: null, byteOffset: 0, problem: 'format', message };
  return { ok: false, source, entries: 0, firstCounter: null, lastCounter: null, start: null, firstBreak: finding, problems: [finding], notes: [], events: [] };
}

function isZero(bytes: Uint8Array): boolean {
  return bytes.length === AUDIT_HASH_LENGTH && bytes.every((b) => b === 0);
}

export function hex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

/** One line for a finding: `entry <i> (counter <c>): <problem>: <message>`. */
export function describeFinding(f: AuditFinding): string {
  return `entry ${f.index}${f.counter !== null ? ` (counter ${f.counter})` : ''} at byte ${f.byteOffset}: ${f.problem}: ${f.message}`;
}

/** Bytes before an entry's body: exported for tests that build entries by hand. */
export const ENTRY_FIXED_BYTES = AUDIT_ENTRY_FIXED;
