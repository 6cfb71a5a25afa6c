/**
 * The in-memory rollout driver (tools/rollout/driver.ts), as the simulator
 * uses it: signed audit entries in, decisions out. An image that fails on
 * the devices of one gateway halts the rollout at the canary; the report by
 * gateway shows where; the responder's gate then serves nobody; a good
 * image runs through every stage.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { hostCrypto } from '../../tools/keys/signer.ts';
import { RolloutDriver } from '../../tools/rollout/driver.ts';
import { firstTrailBreak } from '../../tools/rollout/engine.ts';
import type { FleetMember } from '../../tools/rollout/cohort.ts';
import type { AcceptedRecord } from '../../tools/rollout/signals.ts';
import { committed, deviceId, healthRecord, rolledBack, secretOf } from './rollout-world.ts';
import { examplePlan, TARGET } from './rollout-fixtures.ts';

const crypto = hostCrypto();

function members(n: number): FleetMember[] {
  return Array.from({ length: n }, (_, i) => ({ device: deviceId(i), cohort: i % 2 === 0 ? 'line-a' : 'line-b', gateway: `gw-${i % 4}`, standing: 'active' as const, imageVersion: 0x0001_0300 }));
}

/** Minute steps: an offered device reports 120 s after its offer (commit, or rollback behind `badGateway`), then a health record every minute. */
function run(n: number, badGateway: string | undefined, minutes: number) {
  const fleet = members(n);
  const gateway = new Map(fleet.map((m) => [m.device, m.gateway]));
  const { driver } = RolloutDriver.start(examplePlan({ halt: { failureRatePercent: 20, minExecuted: 10 } }), fleet, 0, crypto, secretOf);
  const offeredAt = new Map<string, number>();
  const counter = new Map<string, number>();
  const next = (d: string) => {
    const c = (counter.get(d) ?? 0) + 1;
    counter.set(d, c);
    return c;
  };
  for (const d of driver.trail) if (d.kind === 'offered') for (const dev of d.devices) offeredAt.set(dev, 0);
  for (let minute = 1; minute <= minutes; minute++) {
    const now = minute * 60;
    const records: AcceptedRecord[] = [];
    for (const [device, at] of offeredAt) {
      if (now - at === 120) records.push(gateway.get(device) === badGateway ? rolledBack(device, next(device), now, 'self-test') : committed(device, next(device), now));
      else if (now - at > 120) records.push(healthRecord(device, next(device), now));
    }
    const { decisions } = driver.step(records, fleet, now);
    for (const d of decisions) if (d.kind === 'offered') for (const dev of d.devices) offeredAt.set(dev, now);
    if (driver.rollout.status !== 'running') break;
  }
  return { driver, gateway };
}

describe('rollout driver (the simulator\'s per-step API)', () => {
  it('an image failing behind one gateway halts at the canary; the report shows it by gateway; nobody is served after', () => {
    const { driver, gateway } = run(1000, 'gw-2', 120);
    assert.equal(driver.rollout.status, 'halted');
    const halted = driver.trail.find((d) => d.kind === 'halted')!;
    assert.equal(halted.stage, 0, 'halted at the canary');
    const report = driver.breakdown((d) => ({ cohort: '', gateway: gateway.get(d)! }));
    assert.ok(report.byGateway['gw-2']!.failed > 0);
    assert.equal(report.byGateway['gw-2']!.committed, 0);
    assert.equal(report.byGateway['gw-2']!.causes['rolled-back:self-test'], report.byGateway['gw-2']!.failed);
    for (const g of ['gw-0', 'gw-1', 'gw-3']) assert.equal(report.byGateway[g]?.failed ?? 0, 0);
    assert.equal(report.counts.offered, 10, 'only the canary (1 % of 1000) was ever offered');
    assert.equal(driver.allow(driver.rollout.offered()[0]!), false);
    assert.equal(firstTrailBreak(driver.trail), -1);
  });

  it('a good image goes through every stage; only signed commits count', () => {
    const { driver } = run(200, undefined, 120);
    assert.equal(driver.rollout.status, 'completed');
    assert.deepEqual(driver.rollout.counts(), { offered: 200, pending: 0, committed: 200, failed: 0, causes: {} });
    assert.deepEqual(driver.counts, { badTags: 0, undecodable: 0, unknownDevice: 0 });
    assert.equal(driver.rollout.outcomeOf(deviceId(0))?.outcome, 'committed');
    assert.ok(TARGET > 0x0001_0300);
  });
});
