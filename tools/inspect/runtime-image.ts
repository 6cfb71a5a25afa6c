/**
 * What a runtime device's flash image holds (`holdfast sim --keep-flash`):
 * the partitions of tools/sim/runtime-device.ts read one by one from a copy
 * (never the file's own bytes): the counter, the outbox, the audit log (its
 * chain and counters; tags need the device's key, which the image does not
 * hold), otadata and the slots' app descriptions, the trust store. Each
 * store that does not open is reported as damaged with the store's own
 * error, not read as empty; an image whose size fits no runtime layout is
 * foreign (the demo's frame log, a power-cut run's partition).
 *
 * Host tool (Node).
 */
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { Counter } from '../../firmware/storage/counter.ts';
import { Outbox } from '../../firmware/storage/outbox.ts';
import { readOtadata, stateOfSlot } from '../../firmware/update/otadata.ts';
import { imageVersionOf, readPartitionDescription } from '../../firmware/update/esp-app-image.ts';
import { TrustStore } from '../../firmware/update/trust-store.ts';
import { verifyFlash } from '../audit/verify.ts';
import { SimFlash } from '../sim/flash/sim-flash.ts';
import { layoutBlocks, partitionsOf, RUNTIME_BLOCK, type RuntimeLayout } from '../sim/runtime-device.ts';
import { FLEET_CONSTANTS } from '../sim/fleet/scenario.ts';

export type StoreReading<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly damaged: string };

export interface RuntimeImageReport {
  readonly layout: RuntimeLayout;
  readonly counter: StoreReading<{ reservedUpTo: number }>;
  readonly outbox: StoreReading<{ queued: number; nextSeq: number; ackSeq: number; dropped: number; damagedSectors: number }>;
  readonly audit: StoreReading<{ entries: number; firstCounter: number | null; lastCounter: number | null; chainBreaks: number; kinds: Record<string, number> }>;
  readonly otadata: StoreReading<{ slots: { slot: number; state: string | null; imageVersion: number | null; project: string | null }[] }>;
  readonly trust: StoreReading<{ rootVersion: number | null }>;
}

/** The runtime layout whose size is `blocks` blocks of 4 KiB, or undefined (a foreign image). */
export function runtimeLayoutFor(blocks: number, blockLength: number): RuntimeLayout | undefined {
  if (blockLength !== RUNTIME_BLOCK) return undefined;
  for (let slotBlocks = 1; slotBlocks <= 1024; slotBlocks++) {
    const layout = { slotBlocks, outboxBlocks: FLEET_CONSTANTS.outboxBlocks };
    const n = layoutBlocks(layout);
    if (n === blocks) return layout;
    if (n > blocks) return undefined;
  }
  return undefined;
}

function read<T>(what: () => T): StoreReading<T> {
  try {
    return { ok: true, value: what() };
  } catch (error) {
    return { ok: false, damaged: error instanceof Error ? error.message.split('\n')[0] : String(error) };
  }
}

/** Read every store of a runtime image (from a copy of `flash`). */
export function readRuntimeImage(flash: SimFlash, layout: RuntimeLayout): RuntimeImageReport {
  const copy = SimFlash.fromSnapshot(flash.snapshot());
  copy.powerOn();
  const p = partitionsOf(copy, layout);
  const crypto = createNobleCrypto();
  return {
    layout,
    counter: read(() => ({ reservedUpTo: Counter.open(p.counter).stats().reservedUpTo })),
    outbox: read(() => {
      const s = Outbox.open(p.outbox, { policy: 'reject' }).stats();
      return { queued: s.queued, nextSeq: s.nextSeq, ackSeq: s.ackSeq, dropped: s.dropped, damagedSectors: s.damagedSectors };
    }),
    audit: read(() => {
      // Without the device's audit key every tag fails: count the other problems (chain, counters, unreadable entries).
      const r = verifyFlash(crypto, new Uint8Array(32), p.audit);
      const structural = r.problems.filter((f) => f.problem !== 'tag' && f.problem !== 'event');
      const format = r.problems.find((f) => f.problem === 'format');
      if (format !== undefined) throw new Error(`not an audit log: ${format.message}`);
      const kinds: Record<string, number> = {};
      for (const e of r.events) kinds[e.kind] = (kinds[e.kind] ?? 0) + 1;
      return { entries: r.entries, firstCounter: r.firstCounter, lastCounter: r.lastCounter, chainBreaks: structural.length, kinds };
    }),
    otadata: read(() => {
      const readings = readOtadata(p.otadata);
      return {
        slots: ([p.ota0, p.ota1] as FlashPartition[]).map((slot, i) => {
          const desc = readPartitionDescription(slot);
          return { slot: i, state: stateOfSlot(readings, i) ?? null, imageVersion: desc === undefined ? null : (imageVersionOf(desc) ?? null), project: desc?.projectName ?? null };
        }),
      };
    }),
    trust: read(() => ({ rootVersion: new TrustStore(p.trust, crypto).load()?.version ?? null })),
  };
}

/** Lines for a person. */
export function runtimeImageLines(r: RuntimeImageReport): string[] {
  const line = <T>(name: string, s: StoreReading<T>, show: (v: T) => string): string => `${name.padEnd(9)} ${s.ok ? show(s.value) : `DAMAGED: ${s.damaged}`}`;
  return [
    `runtime device image: app slots of ${r.layout.slotBlocks} block(s), outbox of ${r.layout.outboxBlocks}`,
    line('counter', r.counter, (v) => `reserved up to ${v.reservedUpTo}`),
    line('outbox', r.outbox, (v) => `${v.queued} record(s) not yet released (seq ${v.ackSeq}..${v.nextSeq}), ${v.dropped} dropped, ${v.damagedSectors} damaged sector(s)`),
    line('audit', r.audit, (v) => `${v.entries} entries (counters ${v.firstCounter ?? '-'}..${v.lastCounter ?? '-'}), ${v.chainBreaks} chain break(s); tags not checked (the image holds no key): ${Object.entries(v.kinds).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}`),
    line('otadata', r.otadata, (v) => v.slots.map((s) => `ota_${s.slot} ${s.state ?? 'no entry'}${s.imageVersion !== null ? ` v${s.imageVersion}` : ''}${s.project ? ` (${s.project})` : ''}`).join('; ')),
    line('trust', r.trust, (v) => (v.rootVersion === null ? 'never provisioned' : `root version ${v.rootVersion}`)),
  ];
}
