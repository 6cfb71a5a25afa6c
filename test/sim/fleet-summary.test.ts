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
import { buildSummary, NO_AUDIT_NOTE, NO_UPDATE_NOTE, summaryLines, type FleetSummary } from '../../tools/sim/fleet/summary.ts';

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

interface FakeDevice {
  index: number;
  hexId: string;
  durable: Map<number, Uint8Array>;
  uncertain: Uint8Array[];
  counterRegressions: number;
  bricked: string | undefined;
  isAlive: boolean;
}

function device(index: number, durable: [number, string][], uncertain: string[] = []): FakeDevice {
  return { index, hexId: `00000${index}0000000000`.slice(0, 16), durable: new Map(durable.map(([c, p]) => [c, bytes(p)])), uncertain: uncertain.map(bytes), counterRegressions: 0, bricked: undefined, isAlive: true };
}

function summarize(devices: FakeDevice[], records: { device: string; counter: number; payload: string }[]): FleetSummary {
  return buildSummary({
    scenario: { ...DEFAULT_SCENARIO, devices: devices.length },
    broker: { kind: 'aedes', protocol: 'MQTT 3.1.1' },
    devices: devices as unknown as FleetDevice[],
    records: records.map((r) => ({ ...r, payload: bytes(r.payload) })),
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
    assert.deepEqual([s.rolledBack, s.committed, s.auditBreaks], [0, 0, 0]);
    assert.ok(s.notes.includes(NO_UPDATE_NOTE) && s.notes.includes(NO_AUDIT_NOTE));
    const text = summaryLines(s).join('\n');
    assert.match(text, /rolledBack\s+0\s+\(no update in this scenario\)/);
    assert.match(text, /auditBreaks\s+0\s+\(no audit log/);
  });

  it('a durable record missing from the store is lost', () => {
    const d = a();
    const s = summarize([d], good(d).slice(0, 1));
    assert.equal(s.lost, 1);
    assert.equal(s.ok, false);
    assert.match(s.failures.join('\n'), /never accepted, counters 2/);
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
