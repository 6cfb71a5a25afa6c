/**
 * How device time moves while the fleet runner waits for quiescence
 * (tools/sim/fleet/slack.ts, docs/design/fleet-sim.md "Time"). The event
 * order of the Node ramp's stall (bench sim.node.largestFleet at 100
 * devices): traffic keeps the network busy for longer than the slack lasted
 * at 5 device ms per real ms (20 s of real time on a loaded machine), then
 * one device whose receipt the gateway spoiled needs its 2-device-second
 * receipt timeout to send the record again. Under the old rule its clock was
 * frozen at the slack's end, so it never resent and the window gave up
 * unquiesced; under SlackClock time has not moved while bytes moved, so the
 * timer fires as soon as the network is idle.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SlackClock } from '../../tools/sim/fleet/slack.ts';

/** The slack of one simulated second at timeScale 100 (the runner's SLACK_MS). */
const CAP = 99_900;
const IDLE = 50;
const RECEIPT_TIMEOUT = 2000;

/** The rule before: device time followed the real clock at 5 device ms per real ms, capped at the slack. */
function oldRuleSlack(realMsSinceStart: number): number {
  return Math.min(CAP, Math.floor(realMsSinceStart * 5));
}

describe('SlackClock: device time during a quiescence', () => {
  it('30 s of real time of traffic, then a spoiled receipt: the receipt timeout still fires (the old rule had frozen the clock)', () => {
    const clock = new SlackClock(0, CAP, IDLE);
    let bytes = 0;
    // 30 s of real time with bytes moving every 4 ms poll: no device needs time, none moves.
    for (let now = 0; now < 30_000; now += 4) {
      bytes += 10;
      const step = clock.poll(now, bytes, RECEIPT_TIMEOUT);
      assert.equal(step.slackMs, undefined, `no time moves while bytes move (at ${now} ms)`);
    }
    assert.equal(clock.used, 0);
    // The old rule had used the whole slack by then: the receipt timeout (2 s past the waiting device's clock) could never come.
    assert.equal(oldRuleSlack(30_000), CAP);
    assert.ok(oldRuleSlack(30_000) + RECEIPT_TIMEOUT > CAP);
    // The network goes idle: after IDLE ms, time jumps straight to the waiting device's timer.
    let fired: number | undefined;
    for (let now = 30_000; now < 30_200 && fired === undefined; now += 4) fired = clock.poll(now, bytes, RECEIPT_TIMEOUT).slackMs;
    assert.equal(fired, RECEIPT_TIMEOUT);
    assert.equal(clock.stuckFor(30_200), 0);
  });

  it('time moves by the earliest timer only, once per idle spell, and never past the slack', () => {
    const clock = new SlackClock(0, CAP, IDLE);
    const jumps: number[] = [];
    for (let now = 0; now < 5000; now += 4) {
      const step = clock.poll(now, 7, 480);
      if (step.slackMs !== undefined) jumps.push(step.slackMs);
    }
    // One jump per idle spell of 50 ms: 480 device ms each (a reconnect backoff, say).
    assert.ok(jumps.length >= 90 && jumps.length <= 100, `${jumps.length} jumps`);
    jumps.forEach((j, i) => assert.equal(j, 480 * (i + 1)));
    // A timer beyond the slack never moves time: the clock says it is stuck instead.
    const late = new SlackClock(0, CAP, IDLE);
    assert.equal(late.poll(100, 1, CAP + 1).slackMs, undefined);
    assert.equal(late.poll(200, 1, CAP + 1).stuck, true);
    assert.equal(late.stuckFor(3200), 3100);
    assert.equal(late.used, 0);
  });

  it('no waiting device with a timer: idle is stuck, and motion ends it', () => {
    const clock = new SlackClock(0, CAP, IDLE);
    assert.equal(clock.poll(60, 1, undefined).stuck, true);
    assert.equal(clock.stuckFor(1060), 1000);
    assert.equal(clock.poll(1100, 2, undefined).stuck, false, 'bytes moved: not stuck');
    assert.equal(clock.stuckFor(1100), 0);
  });

  it('the final drain (no cap): a timer of any length fires once idle (a CONNECT whose CONNACK never came)', () => {
    const clock = new SlackClock(0, undefined, IDLE);
    assert.equal(clock.poll(60, 1, 300_000).slackMs, 300_000);
    assert.equal(clock.poll(120, 1, 0).slackMs, 300_001, 'a timer due now still moves time by 1 ms, so a poll never spins in place');
  });
});
