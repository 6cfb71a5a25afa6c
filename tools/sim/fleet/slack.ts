/**
 * How device time moves while the runner waits for the network to quiesce
 * at a simulated second (docs/design/fleet-sim.md, "Time"). The devices'
 * clocks may move past the second by at most the slack (`capMs`, short of
 * the next whole second) and only when something needs time: a receipt
 * timeout after a spoiled record or a lost receipt, a reconnect backoff, a
 * response deadline. While bytes move (on any link, or through the ingest)
 * nothing needs time, so time does not move; once the network has been idle
 * for `idleMs` of real time, device time jumps straight to the earliest
 * timer of a device that still waits. The slack is therefore spent on
 * timers only, however long a loaded machine takes to carry the traffic.
 *
 * (Before: time followed the real clock at 5 device ms per real ms, capped
 * at the slack. On a loaded machine a window whose traffic took more than
 * 20 s of real time used the slack up while devices still waited, and a
 * device whose record or receipt the gateway spoiled after that could never
 * send it again: the window waited 15 s more for nothing and went on
 * unquiesced. The bench's Node ramp stalled so at 100 devices.)
 *
 * Host tool (Node); no I/O: the runner feeds it.
 */
export interface SlackStep {
  /** Move every device's clock to the second plus this many device ms (undefined: leave time where it is). */
  readonly slackMs: number | undefined;
  /** The network is idle and no waiting device has a timer within the slack: nothing the runner can do will help. */
  readonly stuck: boolean;
}

export class SlackClock {
  private slack = 0;
  private motion: number | undefined;
  private movedAt: number;
  private jumpedAt: number;
  private idleSince: number | undefined;

  /**
   * @param startedAt real ms (performance.now()) the wait began at
   * @param capMs the most the clocks may move past the second (undefined: no bound, the final drain)
   * @param idleMs real ms without motion after which the network counts as idle
   */
  constructor(
    startedAt: number,
    private readonly capMs: number | undefined,
    private readonly idleMs: number,
  ) {
    this.movedAt = startedAt;
    this.jumpedAt = startedAt;
  }

  /** Device ms moved past the second so far. */
  get used(): number {
    return this.slack;
  }

  /** Real ms the network has been idle with nothing left to wait for within the slack (0: not stuck). */
  stuckFor(now: number): number {
    return this.idleSince === undefined ? 0 : now - this.idleSince;
  }

  /**
   * One poll at real time `now`: `motion` is any number that changes when bytes move (the sum of the links' byte
   * counts and the ingest's counts), `due` the earliest timer (device ms from the devices' current time) of a
   * device that still waits (undefined: none has one).
   */
  poll(now: number, motion: number, due: number | undefined): SlackStep {
    // The first poll only sets the baseline: the wait began at `startedAt`.
    if (this.motion === undefined) this.motion = motion;
    else if (motion !== this.motion) {
      this.motion = motion;
      this.movedAt = now;
      this.idleSince = undefined;
    }
    if (now - this.movedAt < this.idleMs || now - this.jumpedAt < this.idleMs) return { slackMs: undefined, stuck: this.idleSince !== undefined };
    const step = due === undefined ? undefined : Math.max(1, due);
    if (step !== undefined && (this.capMs === undefined || this.slack + step <= this.capMs)) {
      this.slack += step;
      this.jumpedAt = now;
      return { slackMs: this.slack, stuck: false };
    }
    this.idleSince ??= now;
    return { slackMs: undefined, stuck: true };
  }
}
