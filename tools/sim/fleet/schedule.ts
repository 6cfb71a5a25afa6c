/**
 * The fault scheduler: what happens to each device in each window of
 * simulated time (one record interval, 10 s by default). At the start of a
 * window: the broker may restart; a device whose dark spell is over boots;
 * a lost link comes back or a link is lost. Within it: each running device
 * appends one record at its own second (a seeded phase), and the power may
 * fail during that append.
 *
 * Every decision comes from the seed and simulated time only: device i
 * draws from its own stream `deriveSeed(seed, 10, i)`, the same number of
 * values every window whatever happens, and the broker from
 * `deriveSeed(seed, 11)`. So a device's schedule does not depend on the
 * fleet's size, the engine, the machine's speed or the network, and the
 * same seed gives the same schedule (docs/design/fleet-sim.md).
 *
 * Why windows: the runner lets the network run until every online device
 * has delivered everything (quiescence) at the end of each window; with
 * every fault at a window's start and at most one append per device per
 * window, each device's flash sees the same operations whatever the
 * network's timing.
 *
 * Host tool (Node).
 */
import type { TearMode } from '../flash/sim-flash.ts';
import { deriveSeed, Rng } from '../rng.ts';
import { FLEET_CONSTANTS, type Scenario } from './scenario.ts';

/** A power cut that strikes during an append: at that append's `atOperation`-th flash operation, or right after it returned when it has fewer. */
export interface CutPlan {
  readonly atOperation: number;
  readonly seed: number;
  readonly tear: TearMode;
}

export type BoundaryAction =
  /** The dark spell after a power cut is over: power on, recover from flash. */
  | { readonly kind: 'reboot' }
  /** The link comes back. */
  | { readonly kind: 'link-up' }
  /** The link is lost (connections dropped, reconnects refused) for `windows` windows. */
  | { readonly kind: 'link-down'; readonly windows: number };

export interface PlannedAppend {
  /** Simulated second. */
  readonly t: number;
  readonly device: number;
  /** The device's record number (its payload says it). */
  readonly n: number;
  /** The power fails during this append; the device stays dark for `darkWindows` windows. */
  readonly cut?: CutPlan & { readonly darkWindows: number };
}

export interface WindowPlan {
  /** First simulated second of the window. */
  readonly t0: number;
  /** Simulated seconds in the window. */
  readonly seconds: number;
  readonly brokerRestart: boolean;
  /** Device index → what happens to it at the window's start, in order. */
  readonly boundary: ReadonlyMap<number, readonly BoundaryAction[]>;
  /** The window's appends, by second then device. */
  readonly appends: readonly PlannedAppend[];
}

interface DeviceTrack {
  readonly rng: Rng;
  readonly phase: number;
  /** Windows left dark (0: running). */
  dark: number;
  /** Windows left without a link (0: link up). */
  linkDown: number;
  appends: number;
}

/** The longest link loss, in windows: the backlog it leaves stays within FLEET_CONSTANTS.maxBacklog records. */
export const MAX_FLAP_WINDOWS = FLEET_CONSTANTS.maxBacklog - 1;
/** The longest dark spell, in windows. */
export const MAX_DARK_WINDOWS = 6;

export class FaultScheduler {
  private readonly tracks: DeviceTrack[];
  private readonly brokerRng: Rng;
  private readonly pCut: number;
  private readonly pFlap: number;
  private readonly pRestart: number;
  private readonly window: number;
  private t0 = 0;

  constructor(private readonly scenario: Scenario) {
    this.window = scenario.recordEverySec;
    this.tracks = Array.from({ length: scenario.devices }, (_, i) => {
      const rng = new Rng(deriveSeed(scenario.seed, 10, i));
      return { rng, phase: rng.below(this.window), dark: 0, linkDown: 0, appends: 0 };
    });
    this.brokerRng = new Rng(deriveSeed(scenario.seed, 11));
    const perWindow = (ratePerHour: number) => Math.min(1, (ratePerHour * this.window) / 3600);
    this.pCut = perWindow(scenario.powerCutsPerHour);
    this.pFlap = perWindow(scenario.linkFlapsPerHour);
    this.pRestart = perWindow(scenario.brokerRestartsPerHour);
  }

  /** Whether windows remain. */
  get done(): boolean {
    return this.t0 >= this.scenario.durationSec;
  }

  /** The plan of the next window. */
  next(): WindowPlan {
    const t0 = this.t0;
    const seconds = Math.min(this.window, this.scenario.durationSec - t0);
    this.t0 += seconds;
    // The first window is quiet: the fleet connects.
    const faultsAllowed = t0 > 0;
    const brokerRestart = faultsAllowed && this.brokerRng.nextU32() / 0x1_0000_0000 < this.pRestart;
    const boundary = new Map<number, BoundaryAction[]>();
    const appends: PlannedAppend[] = [];
    this.tracks.forEach((track, i) => {
      const actions: BoundaryAction[] = [];
      // Fixed draws per window, whatever the device's state: its stream never shifts.
      const r = track.rng;
      const flapRoll = r.nextU32() / 0x1_0000_0000;
      const flapWindows = r.between(1, MAX_FLAP_WINDOWS);
      const cutRoll = r.nextU32() / 0x1_0000_0000;
      const cut: CutPlan & { darkWindows: number } = { atOperation: r.below(3), seed: r.nextU32(), tear: r.chance(0.5) ? 'prefix' : 'bit-subset', darkWindows: r.between(1, MAX_DARK_WINDOWS) };

      if (track.dark > 0 && --track.dark === 0) actions.push({ kind: 'reboot' });
      let cameBack = false;
      if (track.linkDown > 0 && --track.linkDown === 0) {
        cameBack = true;
        actions.push({ kind: 'link-up' });
      }
      // A link that just came back drains its backlog before it can be lost again.
      if (faultsAllowed && !cameBack && track.linkDown === 0 && flapRoll < this.pFlap) {
        track.linkDown = flapWindows;
        actions.push({ kind: 'link-down', windows: flapWindows });
      }
      if (actions.length > 0) boundary.set(i, actions);
      if (track.dark === 0 && track.phase < seconds) {
        const n = track.appends++;
        const t = t0 + track.phase;
        if (faultsAllowed && cutRoll < this.pCut) {
          track.dark = cut.darkWindows;
          appends.push({ t, device: i, n, cut });
        } else {
          appends.push({ t, device: i, n });
        }
      }
    });
    appends.sort((a, b) => a.t - b.t || a.device - b.device);
    return { t0, seconds, brokerRestart, boundary, appends };
  }
}
