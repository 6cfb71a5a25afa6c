/**
 * The audit export file (docs/spec/audit-log.md, "Export"): the entries a
 * device published (or `exportFromFlash` read off an image), unpadded and
 * back to back after a 16-byte header, in the order they were chained.
 *
 *   0        8      9      12           16
 *   | magic  | ver  | 0 0 0| entryCount | entries ...
 *
 * magic "HFAUDEX1", version 1, entryCount u32 LE. Nothing in the file is
 * trusted by the verifier: the count only lets it name a truncation.
 */
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { AUDIT_HEADER_LENGTH } from '../../firmware/storage/_audit-format.ts';
import { orderRing, readHeaders, walkBlock } from '../../firmware/storage/_audit-walk.ts';

export const EXPORT_MAGIC = 'HFAUDEX1';
export const EXPORT_VERSION = 1;
export const EXPORT_HEADER_LENGTH = 16;

/** An export file holding `entries` (each an entry's unpadded bytes), in order. */
export function encodeExport(entries: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(EXPORT_HEADER_LENGTH + entries.reduce((n, e) => n + e.length, 0));
  for (let i = 0; i < 8; i++) out[i] = EXPORT_MAGIC.charCodeAt(i);
  out[8] = EXPORT_VERSION;
  new DataView(out.buffer).setUint32(12, entries.length, true);
  let at = EXPORT_HEADER_LENGTH;
  for (const e of entries) {
    out.set(e, at);
    at += e.length;
  }
  return out;
}

/** Does `bytes` start with the export magic? */
export function isExport(bytes: Uint8Array): boolean {
  if (bytes.length < 8) return false;
  for (let i = 0; i < 8; i++) if (bytes[i] !== EXPORT_MAGIC.charCodeAt(i)) return false;
  return true;
}

/**
 * The readable entries of an audit partition, oldest first, as an export
 * (no check of the chain or the tags: that is `verify`'s job).
 */
export function exportFromFlash(flash: FlashPartition): Uint8Array {
  const s = flash.status();
  const headers = readHeaders((o, t) => flash.read(o, t), s.blocks, s.blockLength);
  const r = orderRing(headers, Math.log2(s.writeAlign));
  if (r.state !== 'ring') throw new Error(`not an audit partition (${r.state})`);
  const entries: Uint8Array[] = [];
  for (const index of r.ring.order) {
    const block = new Uint8Array(s.blockLength);
    flash.read(index * s.blockLength, block);
    if (block.length < AUDIT_HEADER_LENGTH) continue;
    for (const placed of walkBlock(block, index).entries) entries.push(placed.entry.bytes);
  }
  return encodeExport(entries);
}
