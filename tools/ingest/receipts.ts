/**
 * The ingest's receipts (docs/spec/receipt.md, "The ingest's side"): after a
 * batch committed, one receipt per sender the batch touched, stating the
 * sender's window as the database now holds it, sealed with that device's
 * receipt key, for `holdfast/<device>/receipt`. The device releases a record
 * from flash only when a receipt covers it, so a receipt is built only from
 * committed state, never before the commit.
 *
 * Host tool (Node).
 */
import { sealReceipt, type ReceiptMac } from '../../firmware/security/receipt.ts';
import type { Inventory } from './inventory.ts';
import type { SenderState } from './store.ts';

export interface ReceiptMessage {
  readonly topic: string;
  readonly payload: Uint8Array;
}

/** The receipt topic of a device (16 lowercase hex digits). */
export function receiptTopic(device: string): string {
  return `holdfast/${device}/receipt`;
}

/** Receipts for `senders` (committed states); senders the inventory does not know get none. */
export function receiptMessages(senders: readonly SenderState[], inventory: Inventory, mac: ReceiptMac): ReceiptMessage[] {
  const out: ReceiptMessage[] = [];
  for (const sender of senders) {
    const known = inventory.keys.get(`${sender.device}/${sender.keyId}`);
    if (known === undefined) continue;
    out.push({ topic: receiptTopic(sender.device), payload: sealReceipt(mac, known.keys, sender.window) });
  }
  return out;
}
