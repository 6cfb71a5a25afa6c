/**
 * The fleet summary's books (tools/sim/fleet/summary.ts): each invariant is
 * counted from the devices' books and the ingest's store, and any of them
 * not 0 makes the run fail (exit 4). Devices and records here are made up,
 * so each violation can be planted on purpose.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { FleetDevice } from '../../tools/sim/fleet/fleet-device.ts';
import { DEFAULT_SCENARIO } from '../../tools/sim/fleet/scenario.ts';
import { buildSummary, NO_UPDATE_NOTE, summaryLines, type FleetSummary } from '../../tools/sim/fleet/summary.ts';
import { RECORD_TYPES } from '../../firmware/runtime/health-record.ts';
import type { AuditVerifyResult } from '../../tools/audit/verify.ts';

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

interface FakeDevice {
  index: number;
  hexId: string;
  durable: Map<number, Uint8Array>;
  uncertain: Uint8Array[];
  counterRegressions: number;
  bricked: string | undefined;
  isAlive: boolean;
  events: { kind: 'committed' | 'rolled-back'; t: number; imageVersion: number | undefined; cause: string }[];
}

function device(index: number, durable: [number, string][], uncertain: string[] = []): FakeDevice {
  return { index, hexId: `00000${index}0000000000`.slice(0, 16), durable: new Map(durable.map(([c, p]) => [c, bytes(p)])), uncertain: uncertain.map(bytes), counterRegressions: 0, bricked: undefined, isAlive: true, events: [] };
}

/** A reading as the ingest stores it: the runtime's record type, then the bytes given to append. */
const stored = (payload: string): Uint8Array => Uint8Array.of(RECORD_TYPES.reading, ...bytes(payload));

interface Extra {
  undelivered?: (Set<number> | undefined)[];
  audits?: AuditVerifyResult[];
  /** Records stored as they are (no reading type byte). */
  raw?: { device: string; counter: number; payload: Uint8Array }[];
}

function summarize(devices: FakeDevice[], records: { device: string; counter: number; payload: string }[], extra: Extra = {}): FleetSummary {
  return buildSummary({
    ...(extra.undelivered ? { undelivered: extra.undelivered } : {}),
    ...(extra.audits ? { audits: extra.audits } : {}),
    scenario: { ...DEFAULT_SCENARIO, devices: devices.length },
    broker: { kind: 'aedes', protocol: 'MQTT 3.1.1' },
    devices: devices as unknown as FleetDevice[],
    records: [...records.map((r) => ({ ...r, payload: stored(r.payload) })), ...(extra.raw ?? [])],
    ingest: { accepted: records.length, duplicates: 0, replays: 0, forgeries: 0, batches: 1, messages: records.length, largestBatch: records.length, receipts: 1 },
    counts: { appended: 0, powerCuts: 0, linkFlaps: 0, brokerRestarts: 0 },
    gatewayEvents: {},
    notes: [],
    realSeconds: 1,
    phases: { startSec: 0, runSec: 1, drainSec: 0 },
  });
}

describe('fleet summary: the invariants from the books', () => {
  const a = () => device(1, [[1, 'a1'], [2, 'a2']], ['a3']);
  const good = (d: FakeDevice) => [{ device: d.hexId, counter: 1, payload: 'a1' }, { device: d.hexId, counter: 2, payload: 'a2' }];

  it('every durable record stored once, a cut append that landed: ok, and the notes say why some figures are 0', () => {
    const d = a();
    const s = summarize([d], [...good(d), { device: d.hexId, counter: 3, payload: 'a3' }]);
    assert.equal(s.ok, true, s.failures.join('; '));
    assert.equal(s.appended, 2);
    assert.equal(s.accepted, 3);
    assert.equal(s.cutAppends, 1);
    assert.equal(s.cutAppendsLanded, 1);
    assert.deepEqual([s.rolledBack, s.committed, s.auditBreaks, s.undelivered], [0, 0, 0, 0]);
    assert.ok(s.notes.includes(NO_UPDATE_NOTE));
    assert.ok(s.notes.some((n) => /audit chains were not checked/.test(n)));
    const text = summaryLines(s).join('\n');
    assert.match(text, /rolledBack\s+0/);
    assert.match(text, /updates\s+none offered/);
  });

  it("a durable record not in the store but still in the device's outbox is undelivered, not lost (lost only when it left flash)", () => {
    const d = a();
    const s = summarize([d], good(d).slice(0, 1), { undelivered: [new Set([2])] });
    assert.equal(s.undelivered, 1);
    assert.equal(s.lost, 0);
    assert.equal(s.ok, true, s.failures.join('; '));
    assert.match(summaryLines(s).join('\n'), /undelivered\s+1/);
    const gone = summarize([a()], good(d).slice(0, 1), { undelivered: [new Set([7])] });
    assert.deepEqual([gone.lost, gone.undelivered], [1, 0]);
  });

  it("the runtime's own records (health, audit, update requests) are counted apart and never taken for forgeries; one under a reading's counter is a regression", () => {
    const d = a();
    const health = { device: d.hexId, counter: 5, payload: Uint8Array.of(RECORD_TYPES.health, 1, 2, 3) };
    const s = summarize([d], good(d), { raw: [health] });
    assert.equal(s.ok, true, s.failures.join('; '));
    assert.equal(s.runtimeRecords, 1);
    assert.equal(s.accepted, 2);
    const clash = summarize([a()], good(d).slice(0, 1), { raw: [{ ...health, counter: 2 }] });
    assert.equal(clash.counterRegressions, 1);
  });

  it('commits and rollbacks are counted from the devices with their causes; a broken audit chain is an auditBreak', () => {
    const d = a();
    d.events = [
      { kind: 'committed', t: 60_000, imageVersion: 2, cause: 'every health check passed' },
      { kind: 'rolled-back', t: 130_000, imageVersion: 3, cause: 'watchdog reset (the image stopped feeding it)' },
    ];
    const e = device(2, []);
    e.events = [{ kind: 'rolled-back', t: 140_000, imageVersion: 3, cause: 'self-test passed: self-test failed' }];
    const okChain = { ok: true, entries: 3, problems: [], events: [{ kind: 'clock-jump' }], firstBreak: null } as unknown as AuditVerifyResult;
    const broken = { ok: false, entries: 2, problems: [{}, {}], events: [], firstBreak: { problem: 'hash-mismatch', index: 1 } } as unknown as AuditVerifyResult;
    const s = summarize([d, e], good(d), { audits: [okChain, broken] });
    assert.deepEqual([s.committed, s.rolledBack], [1, 2]);
    assert.deepEqual(s.updates.rollbackCauses, { 'watchdog (image hung)': 1, 'health check: self-test': 1 });
    assert.equal(s.clockJumpsAudited, 1);
    assert.equal(s.auditBreaks, 2);
    assert.equal(s.ok, false);
    assert.match(s.failures.join('\n'), /device 1: audit chain broken: hash-mismatch at entry 1/);
  });

  it('a durable record missing from the store is lost', () => {
    const d = a();
    const s = summarize([d], good(d).slice(0, 1));
    assert.equal(s.lost, 1);
    assert.equal(s.ok, false);
    assert.match(s.failures.join('\n'), /never accepted and gone from its flash, counters 2/);
  });

  it('content the device never appended is a forgery accepted, also under a device of no fleet member', () => {
    const d = a();
    assert.equal(summarize([d], [...good(d), { device: d.hexId, counter: 9, payload: 'evil' }]).forgeriesAccepted, 1);
    const other = summarize([d], [...good(d), { device: 'ffffffffffffffff', counter: 1, payload: 'a1' }]);
    assert.equal(other.forgeriesAccepted, 1);
    assert.equal(other.ok, false);
  });

  it('the same record stored again under another counter is a replay accepted', () => {
    const d = a();
    const s = summarize([d], [...good(d), { device: d.hexId, counter: 7, payload: 'a2' }]);
    assert.equal(s.replaysAccepted, 1);
    assert.equal(s.ok, false);
  });

  it("a durable counter stored with other content, or the device's own regression, is a counter regression", () => {
    const d = a();
    const s = summarize([d], [{ device: d.hexId, counter: 1, payload: 'a1' }, { device: d.hexId, counter: 2, payload: 'a3' }]);
    assert.equal(s.counterRegressions, 1);
    const e = a();
    e.counterRegressions = 2;
    assert.equal(summarize([e], good(e)).counterRegressions, 2);
  });

  it('a device that could not boot, or is not running at the end, is bricked', () => {
    const d = a();
    d.bricked = 'counter partition unreadable';
    const e = device(2, []);
    e.isAlive = false;
    const s = summarize([d, e], good(d));
    assert.equal(s.bricked, 2);
    assert.equal(s.ok, false);
    assert.match(summaryLines(s).join('\n'), /bricked\s+2\s+<-- INVARIANT BROKEN/);
  });
});
