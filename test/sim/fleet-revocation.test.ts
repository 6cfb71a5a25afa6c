/**
 * `holdfast sim --revoke` (docs/design/fleet-sim.md, "Revocation"): the sim
 * revokes as an operator does (the ingest's inventory, then the signed list
 * published retained on holdfast/fleet/revocation) and measures how soon it
 * takes effect. A revoked device: the ingest refuses its records from the
 * moment its reload returned (`revokedAccepted` 0, an invariant), the device
 * itself holds the list and is in safe mode with cause `revoked`, its later
 * records stay in its flash (undelivered, not lost). A revoked command key:
 * every device online at the moment holds the list within the same
 * quiescence (bounded by the second's slack), every device that was offline
 * gets it when it comes back (bounded by the run), and the commands the sim
 * keeps signing with it are refused key-revoked (audited command-revoked).
 *
 * Node engine (fast); one XS case for the device side in XS.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runFleet } from '../../tools/sim/fleet/runner.ts';
import { DEFAULT_SCENARIO, FLEET_CONSTANTS, parseRevoke, type Scenario } from '../../tools/sim/fleet/scenario.ts';
import { INVARIANTS, summaryLines, type FleetSummary } from '../../tools/sim/fleet/summary.ts';

/** A second's slack, in simulated seconds: how far the network may move the devices' clocks past a whole second. */
const SLACK_SEC = (FLEET_CONSTANTS.timeScale * 1000 - 100) / FLEET_CONSTANTS.timeScale / 1000;

function scenario(over: Partial<Scenario>): Scenario {
  return { ...DEFAULT_SCENARIO, engine: 'node', devices: 4, durationSec: 100, brokerRestartsPerHour: 0, update: { kind: 'none' }, ...over };
}

function invariantsHold(summary: FleetSummary, what: string): void {
  for (const name of INVARIANTS) assert.equal(summary[name], 0, `${name} must be 0 (${what}): ${summary.failures.slice(0, 5).join('; ')}`);
  assert.equal(summary.ok, true);
}

describe('holdfast sim --revoke', { concurrency: false }, () => {
  it('parses device@S, device:N@S and command-key@S, and nothing else', () => {
    assert.deepEqual(parseRevoke('device@120'), { target: 'device', device: 0, atSec: 120 });
    assert.deepEqual(parseRevoke('device:7@30'), { target: 'device', device: 7, atSec: 30 });
    assert.deepEqual(parseRevoke('command-key@300'), { target: 'command-key', atSec: 300 });
    for (const bad of ['device', 'device@', 'device:@5', 'command-key:1@5', 'key@5', 'device@-1', 'device@1.5', ' device@5']) assert.equal(parseRevoke(bad), undefined, bad);
  });

  it('a revoked device: the ingest refuses it at once (revokedAccepted 0), the device is in safe mode (revoked) within the slack, its later records stay in its flash', async () => {
    const s = scenario({ seed: 21, powerCutsPerHour: 0, linkFlapsPerHour: 0, replays: 0.05, revoke: { target: 'device', device: 1, atSec: 40 } });
    const { summary } = await runFleet(s);
    invariantsHold(summary, 'revoked device 1 at 40 s');
    const r = summary.revocation;
    assert.ok(r !== undefined, 'the summary has the revocation');
    assert.equal(r.target, 'device');
    assert.equal(r.device, 1);
    assert.equal(r.at, 40);
    assert.equal(r.ingestRefusesAfter, 0, 'the ingest reloaded before the simulated clock moved on');
    assert.equal(r.revokedAccepted, 0);
    assert.ok(r.acceptedBefore > 0, `records of device 1 were accepted before: ${JSON.stringify(r)}`);
    assert.ok(r.lastAcceptedAppendedAt !== null && r.lastAcceptedAppendedAt <= 40, `none appended after the revocation was accepted: ${JSON.stringify(r)}`);
    assert.equal(r.onlineDevices, 1, 'no link losses or power cuts: device 1 was online');
    assert.equal(r.refusing, 1);
    assert.equal(r.safeModeCause, 'revoked', 'the device says why it is in safe mode');
    assert.ok(r.devicesRefusingAfter.max !== null && r.devicesRefusingAfter.max <= SLACK_SEC, `held within the second's slack: ${JSON.stringify(r.devicesRefusingAfter)}`);
    // Device 1 kept collecting (safe mode keeps telemetry): those readings are refused upstream and stay in its flash.
    assert.ok(summary.undelivered > 0, 'the revoked device still holds its later readings');
    assert.equal(summary.accepted + summary.undelivered, summary.appended + summary.cutAppendsLanded);
    assert.ok(summaryLines(summary).some((l) => l.startsWith('revokedAccepted     0')));
  });

  it('a revoked command key: every online device refuses it within the slack, offline ones when they come back, and the commands signed with it are refused', async () => {
    const s = scenario({ seed: 22, powerCutsPerHour: 24, linkFlapsPerHour: 24, replays: 0.05, durationSec: 150, revoke: { target: 'command-key', atSec: 43 } });
    const { summary } = await runFleet(s);
    invariantsHold(summary, 'revoked command key at 43 s');
    const r = summary.revocation;
    assert.ok(r !== undefined);
    assert.equal(r.target, 'command-key');
    assert.equal(r.ingestRefusesAfter, null, 'a command key is not the ingest\'s business');
    assert.ok(r.onlineDevices > 0);
    assert.equal(r.refusing, r.onlineDevices, `every online device refuses it: ${JSON.stringify(r)}`);
    assert.ok(r.devicesRefusingAfter.max !== null && r.devicesRefusingAfter.max <= SLACK_SEC, `within the second's slack: ${JSON.stringify(r.devicesRefusingAfter)}`);
    assert.equal(r.onlineDevices + r.offlineDevices, s.devices);
    // An offline device gets the retained list at its next connection: after its dark spell or lost link, within the run.
    for (const v of [r.offlineRefusingAfter.p50, r.offlineRefusingAfter.max]) if (v !== null) assert.ok(v > 0 && v <= s.durationSec - r.at + 1, `offline devices: ${JSON.stringify(r)}`);
    assert.equal(r.offlineRefusing, r.offlineDevices, `every device held the list by the end (all boot and reconnect for the final drain): ${JSON.stringify(r)}`);
    assert.ok(r.commandsSent > 0, 'the sim kept commanding with the revoked key');
    assert.ok(r.commandsRefused > 0, `the devices refused them (command-revoked in their audit logs): ${JSON.stringify(r)}`);
  });

  it('XS engine: a revoked device holds the list and enters safe mode (revoked); the ingest accepts nothing of it afterwards', async () => {
    const s = scenario({ engine: 'xs', seed: 23, devices: 2, durationSec: 60, powerCutsPerHour: 0, linkFlapsPerHour: 0, replays: 0, clockSkewPerHour: 0, revoke: { target: 'device', device: 0, atSec: 20 } });
    const { summary } = await runFleet(s);
    invariantsHold(summary, 'XS, revoked device 0 at 20 s');
    assert.equal(summary.revocation?.refusing, 1);
    assert.equal(summary.revocation?.safeModeCause, 'revoked');
    assert.equal(summary.revocation?.revokedAccepted, 0);
  });
});
